//! # Redlock over independent servers
//!
//! Redlock takes one lock on N independent Redis primaries (usually five):
//! `SET key token NX PX ttl` on each, with a short timeout per server. The
//! lock is held when a majority said yes and time is left; the **validity**
//! is `ttl − time spent acquiring − drift` (drift: 1% of the TTL + 2 ms).
//! Otherwise the partial lock is released on every server and the attempt
//! repeated after a random delay. Release goes to every server.
//!
//! ## Read this before you use it
//!
//! Redlock is an **efficiency** lock: use it so that work is not done
//! twice, when doing it twice now and then is harmless. It is not a
//! correctness lock. Martin Kleppmann's "How to do distributed locking"
//! shows why: its safety depends on timing (bounded pauses, bounded network
//! delays, clocks that agree on how long a second is); a client paused by
//! GC or a VM migration wakes up after its validity and carries on, while
//! another client holds the lock; and there is no fencing token all
//! servers agree on, so the resource cannot tell the two apart. When an
//! overlap would corrupt data, use the single-server `Lock` with its fencing
//! tokens checked by the resource (previous chapter), or a consensus
//! system.
//!
//! The program starts five private `redis-server`s, takes the lock, stops
//! two servers (still a majority), then a third (no majority). Run it with
//! `cargo run --example redlock`.

use std::time::Duration;

use redis_state::redlock::Redlock;
use redis_state::testing::RedisServer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: setup
    let mut servers = (0..5)
        .map(|_| RedisServer::start())
        .collect::<Result<Vec<_>, _>>()?;
    let redlock = Redlock::new(servers.iter().map(RedisServer::client))?
        .ttl(Duration::from_secs(10))
        .retry(2, Duration::from_millis(100))
        .instance_timeout(Duration::from_millis(50));
    println!("{} servers, quorum {}", servers.len(), redlock.quorum());
    // ANCHOR_END: setup

    // ANCHOR: lock
    let lease = redlock.lock("daily-report")?.expect("all servers are up");
    println!(
        "locked on {} servers, valid for {:?}",
        lease.acquired_on(),
        lease.validity()
    );
    // A second client (another process, say) cannot take it meanwhile.
    let other = Redlock::new(servers.iter().map(RedisServer::client))?.retry(0, Duration::ZERO);
    println!(
        "second client gets it too? {}",
        other.lock("daily-report")?.is_some()
    );
    println!("released on {} servers", redlock.unlock(&lease)?);
    // ANCHOR_END: lock

    // ANCHOR: failures
    servers[0].stop();
    servers[1].stop();
    let lease = redlock.lock("daily-report")?.expect("3 of 5 is a majority");
    println!("two servers down: locked on {}", lease.acquired_on());
    let renewed = redlock.extend(&lease)?.expect("a majority renewed it");
    println!("extended: valid for {:?} more", renewed.validity());
    redlock.unlock(&lease)?;

    servers[2].stop();
    let refused = redlock.lock("daily-report")?;
    println!("three servers down: locked? {}", refused.is_some());
    // ANCHOR_END: failures

    // ANCHOR: async
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    servers[0].restart()?;
    rt.block_on(async {
        // The async form asks all servers at the same time.
        let lease = redlock
            .lock_async("daily-report")
            .await?
            .expect("3 of 5 again");
        println!("async: locked on {} servers", lease.acquired_on());
        redlock.unlock_async(&lease).await?;
        Ok::<_, redis_state::Error>(())
    })?;
    // ANCHOR_END: async
    Ok(())
}
