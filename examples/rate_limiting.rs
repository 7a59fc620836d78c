//! # Rate limiting
//!
//! Three limiters, each check one round trip: a Lua script that reads,
//! decides and writes atomically, timed by the **server's** clock (`TIME`,
//! or the key's TTL), so clients whose clocks disagree still agree on the
//! limit. Every check returns a `Decision`: allowed or not, the quota left
//! (`remaining`), how long to wait before retrying (`retry_after`, for a
//! `Retry-After` header) and when the quota is whole again
//! (`reset_after`).
//!
//! | limiter | guarantee | state per subject |
//! |---|---|---|
//! | `FixedWindow` | at most `limit` per window; a window opens with its first admitted request | one integer |
//! | `SlidingWindow` | at most `limit` in **any** span of `window` (exact sliding log) | one sorted-set entry per admitted request |
//! | `Gcra` | a token bucket: bursts up to `burst`, then `limit` per `period` | one number |
//!
//! The fixed window is the seed pattern (`INCR` + `EXPIRE` on the first
//! hit), made atomic and without counting refused requests; it lets up to
//! twice the limit through around a window edge. The sliding log never
//! does, at the cost of memory per request. GCRA (the algorithm of
//! redis-cell) is smooth and needs one number per subject.
//!
//! Keys: `ratelimit:<kind>:<name>:<subject>`, name and subject escaped.
//! Tests hammer each limiter from eight threads and check that no window
//! ever admits more than its guarantee.
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server`. Run it with `cargo run --example rate_limiting`.

use std::time::Duration;

use redis_state::Namespace;
use redis_state::prelude::*;
use redis_state::ratelimit::{Decision, FixedWindow, Gcra, SlidingWindow};

fn show(label: &str, d: Decision) {
    println!(
        "{label:<22} allowed={:<5} remaining={:<2} retry_after={:>4} ms reset_after={:>4} ms",
        d.allowed,
        d.remaining,
        d.retry_after.as_millis(),
        d.reset_after.as_millis()
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;
    let ns = Namespace::new(format!("ratelimit-{}", std::process::id()))?;

    // ANCHOR: fixed
    // Five login attempts per user per minute.
    let logins = FixedWindow::new("login", 5, Duration::from_secs(60)).namespace(&ns);
    for i in 1..=6 {
        show(
            &format!("login attempt {i}"),
            logins.check("ada").run(&mut con)?,
        );
    }
    // ANCHOR_END: fixed

    // ANCHOR: sliding
    // Three calls in any 500 ms, exactly.
    let api = SlidingWindow::new("api", 3, Duration::from_millis(500)).namespace(&ns);
    for i in 1..=4 {
        show(
            &format!("api call {i}"),
            api.check("key-123").run(&mut con)?,
        );
    }
    let denied = api.check("key-123").run(&mut con)?;
    std::thread::sleep(denied.retry_after);
    show("api call after wait", api.check("key-123").run(&mut con)?);
    // ANCHOR_END: sliding

    // ANCHOR: gcra
    // Uploads: 10 per second sustained, bursts of 3; a big upload costs 2.
    let uploads = Gcra::new("upload", 10, Duration::from_secs(1))
        .burst(3)
        .namespace(&ns);
    show("upload (cost 2)", uploads.check_n("ada", 2).run(&mut con)?);
    show("upload (cost 1)", uploads.check("ada").run(&mut con)?);
    show("upload (cost 1)", uploads.check("ada").run(&mut con)?);
    // ANCHOR_END: gcra

    // ANCHOR: batch
    // Checks are operations: several limits at once, one round trip.
    let (per_user, per_ip) = batch((
        api.check("key-456"),
        logins.check(std::net::Ipv4Addr::new(10, 0, 0, 7).to_string()),
    ))
    .run(&mut con)?;
    println!("both limits allow: {}", per_user.allowed && per_ip.allowed);
    // ANCHOR_END: batch

    // ANCHOR: async
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut con = client.get_multiplexed_async_connection().await?;
        show(
            "async login",
            logins.check("grace").run_async(&mut con).await?,
        );
        Ok::<_, redis_state::Error>(())
    })?;
    // ANCHOR_END: async
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
