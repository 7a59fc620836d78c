//! # Locks with fencing tokens
//!
//! The lock users write by hand (`SET key id NX EX`, then a compare-and-delete
//! script) is here with the parts that usually go missing:
//!
//! * **fencing tokens**: taking the lock also draws a number from a counter
//!   kept beside it, strictly increasing per lock. Pass it with every write
//!   to the protected resource; the resource refuses numbers smaller than
//!   one it has seen, so a holder that stalled past its TTL (and lost the
//!   lock without knowing) cannot overwrite the work of the holder after it;
//! * owner-only release and extend (the random token is compared first);
//! * a blocking acquire with a timeout and jittered exponential backoff;
//! * scoped forms that always release, also on errors and panics;
//! * a **watchdog** that renews the lock at a third of its TTL and tells the
//!   holder at once when the lock is lost (a value to await or poll), with a
//!   cap on how long it keeps renewing.
//!
//! Keys: `lock:{<name>}` holds the holder's token, `lock:{<name>}:#fence`
//! the last fencing token; the hash tag keeps both on one Cluster slot.
//!
//! A lock on one Redis server is as reliable as that server: if it loses
//! data (a failover before replication, a restart without persistence), two
//! holders can overlap. Fencing is what keeps the resource safe then; see
//! also the Redlock chapter for why more servers do not remove the need
//! for it.
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server`. Run it with `cargo run --example locks`.

use std::time::Duration;

use redis_state::lock::fence::{fence_key_for, fenced_set};
use redis_state::lock::{Lock, LostReason};
use redis_state::prelude::*;
use redis_state::{Error, Namespace};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;
    let ns = Namespace::new(format!("locks-{}", std::process::id()))?;

    // ANCHOR: basics
    let lock = Lock::new("invoice:42")
        .namespace(&ns)
        .ttl(Duration::from_secs(10)) // the lock runs out after 10 s unless extended
        .wait(Duration::from_secs(2)); // blocking acquire gives up after 2 s
    let guard = lock.try_acquire().run(&mut con)?.expect("the lock is free");
    println!("held {} with fencing token {}", guard.key(), guard.fence());
    // Held: another try fails at once; a blocking acquire times out.
    assert!(lock.try_acquire().run(&mut con)?.is_none());
    match lock
        .clone()
        .wait(Duration::from_millis(50))
        .acquire(&mut con)
    {
        Err(Error::LockTimeout { waited, .. }) => {
            println!("second caller gave up after {waited:?}")
        }
        other => println!("unexpected: {other:?}"),
    }
    assert!(guard.extend(Duration::from_secs(20)).run(&mut con)?);
    assert!(guard.release().run(&mut con)?); // only the owner's token releases
    // ANCHOR_END: basics

    // ANCHOR: scoped
    // Run code under the lock; released afterwards whatever happens.
    let token = lock.scope(&mut con, |guard| {
        println!("in the critical section with token {}", guard.fence());
        guard.fence()
    })?;
    println!("scoped run returned {token}; the lock is free again");
    // ANCHOR_END: scoped

    // ANCHOR: fencing
    // A holder stalls past its TTL; another takes the lock and writes.
    let short = lock.clone().ttl(Duration::from_millis(100));
    let resource = format!("{ns}:invoice:42:pdf");
    let stalled = short.try_acquire().run(&mut con)?.expect("free");
    std::thread::sleep(Duration::from_millis(200)); // a long GC pause, say
    let fresh = short.try_acquire().run(&mut con)?.expect("the TTL ran out");
    assert!(fenced_set(&resource, fresh.fence(), b"rendered by the new holder").run(&mut con)?);
    // The stalled holder resumes: its lock is gone, and the resource
    // refuses its write because its token is older.
    println!(
        "stalled holder still holds the lock? {}",
        stalled.is_held().run(&mut con)?
    );
    let written = fenced_set(&resource, stalled.fence(), b"stale").run(&mut con)?;
    println!(
        "stalled holder's write (token {}) accepted? {written}; newer token is {}",
        stalled.fence(),
        fresh.fence()
    );
    fresh.release().run(&mut con)?;
    // ANCHOR_END: fencing

    // ANCHOR: watchdog
    // Long work: let a watchdog renew the lock and watch for its loss.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let con = client.get_multiplexed_async_connection().await?;
        let job = Lock::new("nightly-job")
            .namespace(&ns)
            .ttl(Duration::from_millis(300))
            .max_hold(Some(Duration::from_secs(60)));
        let held = job.acquire_watched_async(&con).await?;
        tokio::time::sleep(Duration::from_millis(700)).await; // > 2 TTLs
        println!(
            "after 700 ms the watched lock is lost? {}",
            held.loss().is_lost()
        );
        // Someone deletes the key behind our back: the watchdog notices at
        // its next renewal and the signal fires.
        let mut raw = con.clone();
        redis_state::op::command::<i64>("DEL", job.key())
            .run_async(&mut raw)
            .await?;
        let reason = held.loss().lost_async().await;
        println!("watchdog reports: {reason}");
        assert_eq!(reason, LostReason::Expired);
        drop(held);

        // The scoped form stops the work as soon as the lock is lost.
        let result = job
            .scope_watched_async(&con, |guard, _loss| async move {
                println!("watched job running with token {}", guard.fence());
                "done"
            })
            .await?;
        println!("watched job: {result}");
        Ok::<_, Error>(())
    })?;
    // ANCHOR_END: watchdog

    // Clean up: the server may be a shared one.
    let job_fence = Lock::new("nightly-job")
        .namespace(&ns)
        .fence_key()
        .to_owned();
    for key in [
        lock.fence_key(),
        &resource,
        &fence_key_for(&resource),
        &job_fence,
    ] {
        redis_state::op::command::<i64>("DEL", key).run(&mut con)?;
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
