//! # Optimistic transactions
//!
//! The classic credit transfer (the seed's `transfer_credits`): watch both
//! balances, read them, decide, and write both in `MULTI`/`EXEC`; if another
//! client changed a watched key in between, `EXEC` writes nothing and the
//! transaction starts over. redis-state's `Transaction` does the loop with
//! a bound on the tries (`Error::TransactionConflict` after the last), and
//! keeps the logic in two pieces that serve the blocking and the async form
//! alike:
//!
//! * `read`: builds the operation that reads what the decision needs (sent
//!   after `WATCH` in the same round trip);
//! * `decide`: a plain function of what was read: `Decision::Commit(writes,
//!   value)` or `Decision::Abort(value)` (then `UNWATCH`, nothing written).
//!
//! `WATCH` belongs to a connection, so a transaction needs one that nobody
//! else uses while it runs: a blocking `redis::Connection` borrowed mutably,
//! or a `WatchConnection` for async code (opened for the purpose, cannot be
//! cloned). A multiplexed connection shared by tasks would mix one task's
//! `WATCH` with another's `EXEC`; the types rule that out.
//!
//! On a Redis Cluster, commands of one connection are routed one by one, so
//! `MULTI` may not reach the node that saw `WATCH`. There the same transfer
//! is one typed Lua script over keys that share a hash tag, shown at the end
//! (and atomic without retries).
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server`. Run it with `cargo run --example transactions`.

use redis_state::op::{CommandOp, command};
use redis_state::prelude::*;
use redis_state::tx::{Decision, Transaction, WatchConnection};
use redis_state::{Namespace, Result};

// ANCHOR: transfer
fn get(key: &str) -> CommandOp<Option<i64>> {
    command("GET", key)
}

fn set(key: &str, value: i64) -> CommandOp<()> {
    command("SET", key).arg(value)
}

/// Moves `amount` from `from` to `to` unless `from` has too little; `true`
/// when moved.
fn transfer_credits(
    con: &mut redis::Connection,
    from: &str,
    to: &str,
    amount: i64,
) -> Result<bool> {
    Transaction::new(&[from, to]).max_tries(50).perform(
        con,
        || batch((get(from), get(to))),
        |(a, b)| {
            let (a, b) = (a.unwrap_or(0), b.unwrap_or(0));
            if a < amount {
                return Ok(Decision::Abort(false));
            }
            Ok(Decision::Commit(
                batch((set(from, a - amount), set(to, b + amount))),
                true,
            ))
        },
    )
}
// ANCHOR_END: transfer

// ANCHOR: script
redis_state::script! {
    /// The same transfer as one atomic script (for a Cluster: the keys
    /// share the hash tag, so they share a slot).
    pub struct TransferScript {
        name: "example.transfer_credits",
        keys: [from, to],
        args: [amount: i64],
        returns: bool,
        lua: r#"
            local have = tonumber(redis.call('GET', KEYS[1]) or '0')
            if have < tonumber(ARGV[1]) then return 0 end
            redis.call('DECRBY', KEYS[1], ARGV[1])
            redis.call('INCRBY', KEYS[2], ARGV[1])
            return 1
        "#,
    }
}
// ANCHOR_END: script

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;
    let ns = Namespace::new(format!("tx-{}", std::process::id()))?;
    let (alice, bob) = (
        format!("{ns}:user:1:credits"),
        format!("{ns}:user:2:credits"),
    );
    set(&alice, 100).run(&mut con)?;
    set(&bob, 0).run(&mut con)?;

    // ANCHOR: run
    println!("move 30: {}", transfer_credits(&mut con, &alice, &bob, 30)?);
    println!(
        "move 500: {}",
        transfer_credits(&mut con, &alice, &bob, 500)?
    );
    println!(
        "balances: {:?}",
        batch((get(&alice), get(&bob))).run(&mut con)?
    );
    // ANCHOR_END: run

    // ANCHOR: concurrent
    // Eight threads move credits back and forth; conflicts are retried and
    // the total is kept.
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (alice, bob) = (alice.clone(), bob.clone());
            let mut con = client.get_connection()?;
            Ok(std::thread::spawn(move || {
                for _ in 0..50 {
                    let (from, to) = if i % 2 == 0 {
                        (&alice, &bob)
                    } else {
                        (&bob, &alice)
                    };
                    transfer_credits(&mut con, from, to, 3).expect("transfer");
                }
            }))
        })
        .collect::<redis::RedisResult<_>>()?;
    for t in threads {
        t.join().expect("thread");
    }
    let (a, b) = batch((get(&alice), get(&bob))).run(&mut con)?;
    println!(
        "after 400 concurrent transfer attempts: {a:?} + {b:?} = {}",
        a.unwrap_or(0) + b.unwrap_or(0)
    );
    // ANCHOR_END: concurrent

    // ANCHOR: async
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut con = WatchConnection::connect_async(&client).await?;
        let moved = Transaction::new(&[&alice, &bob])
            .perform_async(
                &mut con,
                || batch((get(&alice), get(&bob))),
                |(a, b)| {
                    let (a, b) = (a.unwrap_or(0), b.unwrap_or(0));
                    Ok(Decision::Commit(
                        batch((set(&alice, a - 1), set(&bob, b + 1))),
                        a - 1,
                    ))
                },
            )
            .await?;
        println!("async transfer: alice now has {moved}");
        Ok::<_, redis_state::Error>(())
    })?;
    // ANCHOR_END: async

    // ANCHOR: cluster
    let (carol, dave) = (
        format!("{ns}:{{bank}}:carol"),
        format!("{ns}:{{bank}}:dave"),
    );
    set(&carol, 10).run(&mut con)?;
    println!(
        "script transfer 7: {}",
        TransferScript::new(&carol, &dave, 7).run(&mut con)?
    );
    println!(
        "script transfer 7: {}",
        TransferScript::new(&carol, &dave, 7).run(&mut con)?
    );
    // ANCHOR_END: cluster

    for key in [&alice, &bob, &carol, &dave] {
        command::<i64>("DEL", key).run(&mut con)?;
    }
    Ok(())
}

fn connect() -> std::result::Result<
    (Option<redis_state::testing::RedisServer>, redis::Client),
    Box<dyn std::error::Error>,
> {
    match std::env::var("REDIS_URL") {
        Ok(url) => Ok((None, redis::Client::open(url)?)),
        Err(_) => {
            let server = redis_state::testing::RedisServer::start()?;
            let client = server.client();
            Ok((Some(server), client))
        }
    }
}
