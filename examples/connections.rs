//! # Connections, pools and errors
//!
//! Every operation runs on the connection or pool the application already
//! has, as it is: no `&mut *conn`, and on a Cluster each plan is routed by
//! hash slot because the connection's *type* says it is a Cluster client.
//!
//! | connection | feature of redis-state | routing |
//! |---|---|---|
//! | `redis::Connection`, `redis::cluster::ClusterConnection` | none | one server / per slot |
//! | `aio::ConnectionManager` (recommended), `aio::MultiplexedConnection` | none | one server |
//! | `redis::cluster_async::ClusterConnection` | none | per slot, concurrently |
//! | deadpool-redis `Pool` and `cluster::Pool` | `deadpool` | as the connection inside |
//! | bb8-redis `Pool<RedisConnectionManager>` | `bb8` | as the connection inside |
//! | r2d2 `Pool<Client>`, `Pool<ClusterClient>` (redis' `r2d2` feature) | `r2d2` | as the connection inside |
//! | your wrapper that derefs to one of these | `impl Forward for W {}` | as the connection inside |
//! | your own `ConnectionLike` for one server | `OneServer(conn)` | one server |
//!
//! Anything else does not compile, and the compiler's note says which of
//! these to write. In `Cargo.toml`, with the pool you use:
//!
//! ```toml
//! redis-state = { version = "0.1", features = ["deadpool"] }   # or "bb8", "r2d2"
//! ```
//!
//! **Pools configured like every connection.** With the same feature,
//! `ConnectionOptions` builds the pool itself (`deadpool`, `bb8`, `r2d2`,
//! `r2d2_cluster`): its connections get the options' connect and response
//! timeouts, keepalive and TLS root; a checkout waits at most the connect
//! timeout and `PING`s the connection it hands out (one broken by a restart
//! or `CLIENT KILL` is replaced); and each operation runs through the
//! options' retries with backoff and a circuit breaker shared by the pool.
//! `Pooled::pool()` gives the pool itself.
//!
//! **Which async connection?** `ConnectionManager`: it reconnects after the
//! server closes the connection (a restart, `CLIENT KILL`, an idle timeout).
//! A `MultiplexedConnection` does not: every later call fails until you open
//! a new one.
//!
//! **Errors** say what failed and where: a server error names the command or
//! script and its keys, each message is printed once however deep the
//! `source()` chain, and [`Error::kind`] classifies the failure
//! (connection, timeout, decode, conflict, server, user) so that a caller
//! can decide to retry: [`Error::is_retryable`] is true when the same call
//! can succeed later, and [`Error::may_have_applied`] warns that a write
//! without a reply may have run.
//!
//! This program starts a private `redis-server` (it needs the
//! `test-support` feature for that; with `REDIS_URL` set it uses that
//! server). Run it with `cargo run --example connections`.

use std::time::Duration;

use redis_state::connect::ConnectionOptions;
use redis_state::prelude::*;
use redis_state::{Error, ErrorKind, Namespace};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "player:{id}")]
struct Player {
    #[redis(id)]
    id: u64,
    name: String,
}

// ANCHOR: retry
/// Runs `attempt` until it succeeds, fails for good, or `tries` run out:
/// only failures the error itself calls retryable are tried again.
async fn with_retry<T, F, Fut>(tries: u32, mut attempt: F) -> redis_state::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis_state::Result<T>>,
{
    let mut delay = Duration::from_millis(20);
    for _ in 1..tries {
        match attempt().await {
            Err(e) if e.is_retryable() => {
                eprintln!("retrying after {e} ({})", e.kind());
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    attempt().await
}
// ANCHOR_END: retry

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client, url) = connect()?;
    let ns = Namespace::new(format!("connections-{}", std::process::id()))?;
    let players: Vec<Player> = (1..=3)
        .map(|id| Player {
            id,
            name: format!("p{id}"),
        })
        .collect();

    // ANCHOR: plain
    // The recommended async connection: reconnects by itself.
    let mut manager = redis::aio::ConnectionManager::new(client.clone()).await?;
    Player::save_many(&players)
        .namespace(&ns)
        .run_async(&mut manager)
        .await?;
    // A blocking connection.
    let mut con = client.get_connection()?;
    let one = Player::load(&1).namespace(&ns).run(&mut con)?;
    println!("blocking: {one:?}");
    // ANCHOR_END: plain

    // ANCHOR: pools
    // deadpool-redis (feature `deadpool`): the pooled object as is.
    let pool = deadpool_redis::Config::from_url(url.clone())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
    let mut pooled = pool.get().await?;
    let two = Player::load(&2)
        .namespace(&ns)
        .run_async(&mut pooled)
        .await?;
    println!("deadpool: {two:?}");
    // A watched lock takes the pooled connection too: its watchdog renews
    // through a handle on the connection inside.
    let lock = redis_state::lock::Lock::new("nightly-report").namespace(&ns);
    let held = lock.acquire_watched_async(&pooled).await?;
    println!("watched lock held with fence {}", held.fence());
    held.release_async().await?;

    // bb8-redis (feature `bb8`).
    let manager_bb8 = bb8_redis::RedisConnectionManager::new(url.clone())?;
    let pool = bb8_redis::bb8::Pool::builder().build(manager_bb8).await?;
    let mut pooled = pool.get().await?;
    let three = Player::load(&3)
        .namespace(&ns)
        .run_async(&mut pooled)
        .await?;
    println!("bb8: {three:?}");

    // r2d2 (feature `r2d2`), blocking.
    let pool = r2d2::Pool::builder().max_size(2).build(client.clone())?;
    let mut pooled = pool.get()?;
    let all = Player::load_many([1, 2, 3].iter())
        .namespace(&ns)
        .run(&mut pooled)?;
    println!("r2d2: {} players", all.into_iter().flatten().count());
    // ANCHOR_END: pools

    // ANCHOR: configured_pools
    // The pools built from one configuration: bounded checkout, PING on
    // checkout, retries and a circuit breaker per operation.
    let options = ConnectionOptions::new()
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_secs(1))
        .retries(2)
        .circuit_breaker(10, Duration::from_secs(1));
    let mut deadpool = options.deadpool(url.as_str(), 8)?;
    let mut bb8 = options.bb8(url.as_str(), 8)?;
    let mut r2d2 = options.r2d2(url.as_str(), 4)?;
    let one = Player::load(&1)
        .namespace(&ns)
        .run_async(&mut deadpool)
        .await?;
    let two = Player::load(&2).namespace(&ns).run_async(&mut bb8).await?;
    let three = tokio::task::block_in_place(|| Player::load(&3).namespace(&ns).run(&mut r2d2))?;
    println!(
        "configured pools: {:?} {:?} {:?}, deadpool holds {} connection(s)",
        one.map(|p| p.name),
        two.map(|p| p.name),
        three.map(|p| p.name),
        deadpool.pool().status().size
    );
    println!(
        "health check: {:?}",
        deadpool.health_check_async().await.is_ok()
    );
    // ANCHOR_END: configured_pools

    // ANCHOR: errors
    // Another program stored a list where a player belongs.
    let key = format!("{ns}:player:9");
    redis::cmd("RPUSH").arg(&key).arg("x").exec(&mut con)?;
    let err = Player::load(&9).namespace(&ns).run(&mut con).unwrap_err();
    println!("{err}");
    assert_eq!(err.kind(), ErrorKind::Server);
    assert_eq!(err.server_code(), Some("WRONGTYPE"));
    assert_eq!(err.keys(), [key.as_str()]);
    assert!(!err.is_retryable(), "the data needs repair, not a retry");
    if let Error::Server { operation, .. } = &err {
        println!("failed operation: {operation}");
    }
    // ANCHOR_END: errors

    // ANCHOR: retrying
    let loaded = with_retry(3, || {
        let mut manager = manager.clone();
        let ns = ns.clone();
        async move {
            Player::load(&1)
                .namespace(&ns)
                .run_async(&mut manager)
                .await
        }
    })
    .await?;
    println!("with retry: {loaded:?}");
    // ANCHOR_END: retrying
    Ok(())
}

/// A private server, unless `REDIS_URL` names one.
fn connect() -> Result<
    (
        Option<redis_state::testing::RedisServer>,
        redis::Client,
        String,
    ),
    Box<dyn std::error::Error>,
> {
    match std::env::var("REDIS_URL") {
        Ok(url) => Ok((None, redis::Client::open(url.as_str())?, url)),
        Err(_) => {
            let server = redis_state::testing::RedisServer::start()?;
            let client = server.client();
            let url = server.url();
            Ok((Some(server), client, url))
        }
    }
}
