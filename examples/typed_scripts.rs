//! # Typed Lua scripts
//!
//! A Lua script is where an atomic read-decide-write lives in Redis. Called
//! by hand it is a string, a list of keys and a list of arguments whose
//! order only the Lua source knows, and a reply of no particular type.
//! `redis_state::script!` declares it once: its name, named `KEYS`, typed
//! `ARGV`, the return type and the source (inline, or
//! `include_str!("file.lua")`). What you get is a struct whose values are
//! operations like every other in redis-state:
//!
//! * `Name::new(keys.., args..)` is typed: the compiler checks the number
//!   and types of the arguments, and that each is one Redis argument;
//! * `.run(&mut con)` / `.run_async(&mut con).await` on any connection,
//!   standalone or Cluster, and `batch((..))` with other operations in one
//!   round trip;
//! * calls go out as `EVALSHA`; a server that does not have the script
//!   (fresh, restarted, failed over, `SCRIPT FLUSH`ed) gets it with `EVAL`;
//! * every key goes through `KEYS`, and all keys of a call must share a
//!   Cluster slot: checked before anything is sent;
//! * a literal `KEYS[n]` or `ARGV[n]` beyond the declared ones is a compile
//!   error, and the Lua source is a constant: it is never built from user
//!   input.
//!
//! redis-state declares its own scripts (hash models, locks, rate limiters,
//! sessions) this way.
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server`. Run it with `cargo run --example typed_scripts`.

use redis_state::prelude::*;
use redis_state::{Error, Namespace};

// ANCHOR: declare
redis_state::script! {
    /// Moves `amount` credits between two accounts if the first has enough.
    /// Returns both new balances, or `None` when the funds are short.
    pub struct Transfer {
        name: "example.transfer",
        keys: [from, to],
        args: [amount: i64],
        returns: Option<(i64, i64)>,
        lua: r#"
            local have = tonumber(redis.call('GET', KEYS[1]) or '0')
            if have < tonumber(ARGV[1]) then return false end
            return {redis.call('DECRBY', KEYS[1], ARGV[1]),
                    redis.call('INCRBY', KEYS[2], ARGV[1])}
        "#,
    }
}
// ANCHOR_END: declare

// ANCHOR: decoder
/// The reply of `Top`, decoded into a type of ours.
#[derive(Debug)]
pub struct Podium(pub Vec<(String, f64)>);

fn podium(v: redis::Value) -> redis_state::Result<Podium> {
    let pairs: Vec<(String, f64)> =
        redis::FromRedisValue::from_redis_value(v).map_err(|e| Error::user(e.to_string()))?;
    Ok(Podium(pairs))
}

redis_state::script! {
    /// Adds scores to a board (any number of `score, member` pairs: the
    /// variadic tail) and returns the top `n`.
    pub struct Top {
        name: "example.top",
        keys: [board],
        args: [n: u32, ..entries],
        returns: Podium => podium,
        lua: r#"
            for i = 2, #ARGV, 2 do
              redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
            end
            return redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
        "#,
    }
}
// ANCHOR_END: decoder

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;
    let ns = Namespace::new(format!("scripts-{}", std::process::id()))?;

    // ANCHOR: run
    // The two accounts share the hash tag {bank}: one slot, so one script
    // may touch both on a Cluster too.
    let (alice, bob) = ("{bank}:alice", "{bank}:bob");
    redis_state::op::command::<()>("SET", format!("{ns}:{alice}"))
        .arg(100)
        .run(&mut con)?;
    let moved = Transfer::new(alice, bob, 30).namespace(&ns).run(&mut con)?;
    println!("transfer 30: {moved:?}");
    let refused = Transfer::new(alice, bob, 500)
        .namespace(&ns)
        .run(&mut con)?;
    println!("transfer 500: {refused:?}");
    // ANCHOR_END: run

    // ANCHOR: batch
    // Two script calls and a plain command, one round trip.
    let (a, b, board) = batch((
        Transfer::new(alice, bob, 10).namespace(&ns),
        Transfer::new(bob, alice, 5).namespace(&ns),
        Top::new("board", 2)
            .entries((10, "ada"))
            .entries((30, "grace"))
            .entries((20, "linus"))
            .namespace(&ns),
    ))
    .run(&mut con)?;
    println!("batched: {a:?}, {b:?}, top 2 {board:?}");
    // ANCHOR_END: batch

    // ANCHOR: slot_check
    // Keys in different slots would be CROSSSLOT on a Cluster: refused
    // before anything is sent, on every server.
    match Transfer::new("alice", "bob", 1)
        .namespace(&ns)
        .run(&mut con)
    {
        Err(Error::CrossSlot { unit, keys }) => println!("refused: {unit} over {keys:?}"),
        other => println!("unexpected: {other:?}"),
    }
    // ANCHOR_END: slot_check

    // ANCHOR: async
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut con = client.get_multiplexed_async_connection().await?;
        let moved = Transfer::new(alice, bob, 1)
            .namespace(&ns)
            .run_async(&mut con)
            .await?;
        println!("async transfer 1: {moved:?}");
        Ok::<_, redis_state::Error>(())
    })?;
    // ANCHOR_END: async

    println!(
        "Transfer: KEYS {:?}, ARGV {:?}, sha {}",
        Transfer::KEYS,
        Transfer::ARGS,
        Transfer::script().sha()
    );
    for key in [alice, bob, "board"] {
        redis_state::op::command::<i64>("DEL", format!("{ns}:{key}")).run(&mut con)?;
    }
    Ok(())
}

fn connect()
-> Result<(Option<redis_state::testing::RedisServer>, redis::Client), Box<dyn std::error::Error>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => Ok((None, redis::Client::open(url)?)),
        Err(_) => {
            let server = redis_state::testing::RedisServer::start()?;
            let client = server.client();
            Ok((Some(server), client))
        }
    }
}
