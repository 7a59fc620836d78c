//! # Caching: a local cache the server keeps honest
//!
//! redis-py's `CacheConfig()` turns on client-side caching for every read.
//! Here it is opt-in per cache: [`LocalCache`] keeps decoded values in
//! process memory (bounded by count and age) and subscribes to the server's
//! RESP3 client tracking (`CLIENT TRACKING ON BCAST PREFIX …`) for the key
//! prefixes it caches. A write through any connection of any client pushes
//! an invalidation that drops the local copy; a lost connection or
//! `FLUSHALL` drops everything. A read racing an invalidation never keeps a
//! stale copy (the read registers before it is sent, and an invalidation in
//! between voids it).
//!
//! A local hit costs no round trip. The stale-read bound: the push's
//! delivery time while the connection is healthy (see the `cache` benchmark
//! for the measured p50/p99), two ping intervals (default 2 s) when the
//! server or network stalls silently, and `max_age` (default 60 s) always.
//!
//! Async only (the tracking connection is supervised by a tokio task).
//! Without `REDIS_URL` this program starts a private server.
//! Run it with `cargo run --example cache_local`.

use std::time::{Duration, Instant};

use redis_state::cache::{Cache, LocalCache, LocalCacheOptions};
use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "config:{name}", ttl = "1h")]
struct Config {
    name: String,
    value: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, url) = connect()?;
    let client = redis::Client::open(url.as_str())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let ns = Namespace::new(redis_state::testing::unique_prefix("local"))?;

    // ANCHOR: setup
    let prefix = format!("{ns}:config:");
    let local = LocalCache::connect_async(
        &url,
        &[&prefix],
        LocalCacheOptions::default().capacity(1_000),
    )
    .await?;
    let configs = Cache::<Config>::new()
        .namespace(&ns)
        .with_local(local.clone());
    // ANCHOR_END: setup

    // ANCHOR: hits
    let flag = Config {
        name: "feature-x".into(),
        value: "on".into(),
    };
    configs
        .set(&"feature-x".to_owned(), &flag)
        .run_async(&mut con)
        .await?;
    tokio::time::sleep(Duration::from_millis(20)).await; // our own write's invalidation
    let load = || async { Err::<Option<Config>, String>("not needed".into()) };
    configs
        .get_or_load_async(&mut con, &"feature-x".to_owned(), load)
        .await?; // from Redis, kept locally
    let started = Instant::now();
    for _ in 0..10_000 {
        configs
            .get_or_load_async(&mut con, &"feature-x".to_owned(), load)
            .await?;
    }
    println!(
        "10,000 local hits in {:?} ({:?})",
        started.elapsed(),
        local.stats()
    );
    // ANCHOR_END: hits

    // ANCHOR: invalidate
    // Another client changes the value with a plain SET (redis-cli would do).
    let mut other = client.get_multiplexed_async_connection().await?;
    let key = configs.key(&"feature-x".to_owned());
    let changed = Config {
        value: "off".into(),
        ..flag
    };
    configs
        .set(&"feature-x".to_owned(), &changed)
        .run_async(&mut other)
        .await?;
    let written = Instant::now();
    while local.contains(&key) {
        tokio::task::yield_now().await;
    }
    println!(
        "local copy dropped {:?} after the write on another connection",
        written.elapsed()
    );
    let now = configs
        .get_or_load_async(&mut con, &"feature-x".to_owned(), load)
        .await?;
    println!("next read: {now:?}");
    assert_eq!(now.unwrap().value, "off");
    // ANCHOR_END: invalidate
    Ok(())
}

/// `REDIS_URL`, or a private server for this run.
fn connect()
-> Result<(Option<redis_state::testing::RedisServer>, String), Box<dyn std::error::Error>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => Ok((None, url)),
        Err(_) => {
            let server = redis_state::testing::RedisServer::start()?;
            let url = server.url();
            Ok((Some(server), url))
        }
    }
}
