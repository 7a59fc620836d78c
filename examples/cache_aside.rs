//! # Caching: cache-aside, negative caching, stampede protection
//!
//! `#[derive(Cached)]` on a serde type declares how it is cached: the key
//! template, the time to live (with jitter, so entries written together do
//! not expire together), a stale window, negative caching, tags and a format
//! version. [`Cache::get_or_load`] is the cache-aside pattern users write by
//! hand (`GET`, on a miss load and `SETEX`), done right:
//!
//! * a hit is one round trip, a miss two (the first read takes the fill
//!   lease when the entry is missing); "not found" is remembered for
//!   `negative_ttl`;
//! * the first read is a choice per cache ([`FirstRead`]): by default a
//!   script ("get or lease"); `FirstRead::Get` makes a hit a plain `GET`,
//!   as cheap as a hand-written one, at the price of a third round trip on
//!   a miss;
//! * a loader error is returned, never cached;
//! * concurrent misses of one key make **one** loader call: the callers of
//!   one process share a flight, and across processes the first one takes a
//!   short fill lease in Redis while the others wait, for a bounded time,
//!   for the key's wake-up stream, and take the value from it: a blocking
//!   caller blocks on its own connection (`XREAD BLOCK`); an async caller is
//!   woken by a [`CacheWaker`](redis_state::cache::CacheWaker)'s pub/sub
//!   message, or without one polls with backoff (never blocking a shared
//!   connection);
//! * entries store how long they took to compute, and reads refresh early
//!   with XFetch's probability (Vattani et al., VLDB 2015), so a hot key is
//!   recomputed by one caller before it expires instead of by all after;
//! * past the TTL, inside the stale window, one caller refreshes while the
//!   others get the stale value at once.
//!
//! The `get_or_compute` Lua seed (a `__COMPUTING__` placeholder that other
//! readers return as if it were the value) becomes the fill lease: waiters
//! never see a placeholder, and the lease expires if its holder dies.
//!
//! Entries are plain text: `redis-cli GET` shows a header line and the JSON.
//! Bytes that are not a current entry (another program's, an older
//! `version`) read as a miss and are logged, never an error.
//!
//! Without `REDIS_URL` this program starts a private server.
//! Run it with `cargo run --example cache_aside`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis_state::cache::{Cache, CacheOptions, FirstRead};
use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

// ANCHOR: model
/// The seed's `get_user`, as a type: `user:<id>`, an hour, ±6 minutes of
/// jitter, served stale for up to a minute while one caller refreshes, and
/// "no such user" remembered for 30 seconds.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(
    key = "user:{id}",
    ttl = "1h",
    jitter = "10%",
    stale = "1m",
    negative_ttl = "30s",
    version = 1
)]
struct User {
    id: u64,
    name: String,
    email: String,
}
// ANCHOR_END: model

/// The "database" of this example.
fn database_get_user(id: u64, calls: &AtomicUsize) -> Result<Option<User>, String> {
    calls.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(50)); // a slow query
    Ok((id < 100).then(|| User {
        id,
        name: format!("user {id}"),
        email: format!("u{id}@example.com"),
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client, url) = connect()?;
    let mut con = client.get_connection()?;
    let ns = Namespace::new(redis_state::testing::unique_prefix("cache-aside"))?;
    let users = Cache::<User>::new().namespace(&ns);
    let calls = AtomicUsize::new(0);

    // ANCHOR: aside
    // get_user(42): a miss loads from the database and caches.
    let user = users.get_or_load(&mut con, &42, || database_get_user(42, &calls))?;
    println!("loaded: {user:?}");
    // A hit: one round trip, no database call.
    let again = users.get_or_load(&mut con, &42, || database_get_user(42, &calls))?;
    assert_eq!(user, again);
    // For read-mostly keys: hits as a plain GET, misses in 3 round trips
    // (GET, the lease, the fill) instead of 2. Same entries, same lease.
    let hot_users = Cache::<User>::new()
        .namespace(&ns)
        .options(CacheOptions::default().first_read(FirstRead::Get));
    let same = hot_users.get_or_load(&mut con, &42, || database_get_user(42, &calls))?;
    assert_eq!(same, user);
    println!("database calls so far: {}", calls.load(Ordering::SeqCst));

    // "Not found" is cached too (negative_ttl), so a missing id does not
    // hit the database on every request.
    for _ in 0..3 {
        let none = users.get_or_load(&mut con, &404, || database_get_user(404, &calls))?;
        assert_eq!(none, None);
    }
    println!(
        "after 3 reads of a missing user: {} calls",
        calls.load(Ordering::SeqCst)
    );

    // A failing loader: the error comes back, nothing is cached.
    let err = users
        .get_or_load(&mut con, &7, || {
            Err::<Option<User>, _>("connection refused".to_owned())
        })
        .unwrap_err();
    println!("loader error returned, not cached: {err}");
    // ANCHOR_END: aside

    // ANCHOR: stampede
    // 32 threads miss the same key at once: one database call.
    let before = calls.load(Ordering::SeqCst);
    std::thread::scope(|s| {
        for _ in 0..32 {
            let users = users.clone();
            let client = client.clone();
            let calls = &calls;
            s.spawn(move || {
                let mut con = client.get_connection().unwrap();
                let u = users
                    .get_or_load(&mut con, &9, || database_get_user(9, calls))
                    .unwrap();
                assert_eq!(u.unwrap().id, 9);
            });
        }
    });
    println!(
        "32 concurrent misses -> {} database call",
        calls.load(Ordering::SeqCst) - before
    );
    assert_eq!(calls.load(Ordering::SeqCst) - before, 1);
    // ANCHOR_END: stampede

    // ANCHOR: waker
    // Two Caches stand for two processes (each has its own single-flight).
    // Process A loads slowly; process B misses the same key meanwhile and
    // waits for A's fill, woken by pub/sub rather than by polling.
    let rt = tokio::runtime::Runtime::new()?;
    let before = calls.load(Ordering::SeqCst);
    let (a, b) = rt.block_on(async {
        let waker = redis_state::cache::CacheWaker::connect_async(&url).await?;
        let process_a = Cache::<User>::new().namespace(&ns);
        let process_b = Cache::<User>::new().namespace(&ns).with_waker(waker);
        let (mut con_a, mut con_b) = (
            client.get_multiplexed_async_connection().await?,
            client.get_multiplexed_async_connection().await?,
        );
        let calls = &calls;
        let a = process_a.get_or_load_async(&mut con_a, &11, || async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            database_get_user(11, calls)
        });
        let b = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            process_b
                .get_or_load_async(&mut con_b, &11, || async { database_get_user(11, calls) })
                .await
        };
        let (a, b) = tokio::join!(a, b);
        Ok::<_, Box<dyn std::error::Error>>((a?, b?))
    })?;
    assert_eq!(a, b);
    println!(
        "process B waited for process A's fill: {} database call",
        calls.load(Ordering::SeqCst) - before
    );
    assert_eq!(calls.load(Ordering::SeqCst) - before, 1);
    // ANCHOR_END: waker

    // ANCHOR: inspect
    // What is stored: plain text, with the load time (d, ms) XFetch uses.
    let raw: String = redis::cmd("GET").arg(users.key(&42)).query(&mut con)?;
    println!("redis-cli GET {} ->\n{raw}", users.key(&42));
    let entry = users.entry(&42).run(&mut con)?.expect("cached");
    println!("stale: {}, computed in {:?}", entry.stale, entry.delta);

    // Bytes another program wrote under the key are a miss, not an error.
    redis::cmd("SET")
        .arg(users.key(&43))
        .arg("{not ours}")
        .query::<()>(&mut con)?;
    let fixed = users.get_or_load(&mut con, &43, || database_get_user(43, &calls))?;
    println!("foreign bytes replaced by a fresh load: {fixed:?}");
    // ANCHOR_END: inspect

    // Plain operations, for code without a loader; they batch like any other.
    let (a, b) = batch((users.get(&42), users.get(&404))).run(&mut con)?;
    println!(
        "batch of two reads, one round trip: {:?} / {b:?}",
        a.map(|u| u.name)
    );
    for id in [9, 11, 42, 43, 404] {
        users.invalidate(&id).run(&mut con)?;
    }
    Ok(())
}

type Connected = (
    Option<redis_state::testing::RedisServer>,
    redis::Client,
    String,
);

/// Connects to `REDIS_URL`, or starts a private server for this run.
fn connect() -> Result<Connected, Box<dyn std::error::Error>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => Ok((None, redis::Client::open(url.as_str())?, url)),
        Err(_) => {
            let server = redis_state::testing::RedisServer::start()?;
            let (client, url) = (server.client(), server.url());
            Ok((Some(server), client, url))
        }
    }
}
