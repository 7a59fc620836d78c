//! Redlock over five private servers: a quorum of three is enough, two are
//! not; failed attempts leave nothing behind; blocking and async.

use std::time::Duration;

use redis_state::redlock::Redlock;
use redis_state::testing::RedisServer;

fn five() -> Vec<RedisServer> {
    (0..5).map(|_| RedisServer::start().unwrap()).collect()
}

fn redlock(servers: &[RedisServer]) -> Redlock {
    Redlock::new(servers.iter().map(RedisServer::client))
        .unwrap()
        .ttl(Duration::from_secs(5))
        .retry(1, Duration::from_millis(20))
        .instance_timeout(Duration::from_millis(200))
}

fn holders(servers: &[RedisServer], key: &str) -> usize {
    servers
        .iter()
        .filter(|s| s.is_running())
        .filter(|s| {
            let mut con = s.connection().unwrap();
            redis::cmd("EXISTS")
                .arg(key)
                .query::<bool>(&mut con)
                .unwrap()
        })
        .count()
}

#[test]
fn quorum_survives_two_stopped_servers_not_three() {
    let mut servers = five();
    let a = redlock(&servers);
    let b = redlock(&servers);
    assert_eq!(a.quorum(), 3);

    // All five up: taken everywhere, exclusive, released everywhere.
    let lease = a.lock("report").unwrap().expect("all servers up");
    assert_eq!(lease.acquired_on(), 5);
    assert!(lease.validity() <= Duration::from_secs(5) - Duration::from_millis(52));
    assert!(lease.validity() > Duration::from_secs(4));
    assert!(b.lock("report").unwrap().is_none(), "held by a");
    assert_eq!(a.unlock(&lease).unwrap(), 5);
    assert_eq!(holders(&servers, lease.key()), 0);

    // Two servers down: three of five is still a majority.
    servers[0].stop();
    servers[3].stop();
    let lease = a.lock("report").unwrap().expect("3 of 5 is a quorum");
    assert_eq!(lease.acquired_on(), 3);
    assert!(b.lock("report").unwrap().is_none());
    let extended = a.extend(&lease).unwrap().expect("extended on the majority");
    assert_eq!(extended.acquired_on(), 3);
    assert_eq!(a.unlock(&lease).unwrap(), 3);

    // Three down: two of five is not, and the failed attempt is undone.
    servers[4].stop();
    assert!(a.lock("report").unwrap().is_none(), "2 of 5 is no quorum");
    assert_eq!(
        holders(&servers, "lock:{report}"),
        0,
        "partial locks released"
    );

    // A server comes back: a majority again.
    servers[0].restart().unwrap();
    let lease = a.lock("report").unwrap().expect("3 of 5 again");
    assert_eq!(lease.acquired_on(), 3);
    assert_eq!(a.unlock(&lease).unwrap(), 3);
}

#[test]
fn async_quorum_survives_two_stopped_servers_not_three() {
    let mut servers = five();
    let a = redlock(&servers);
    let b = redlock(&servers);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let lease = a.lock_async("job").await.unwrap().expect("all up");
        assert_eq!(lease.acquired_on(), 5);
        assert!(b.lock_async("job").await.unwrap().is_none());
        assert_eq!(a.unlock_async(&lease).await.unwrap(), 5);
    });
    servers[1].stop();
    servers[2].stop();
    rt.block_on(async {
        let lease = a.lock_async("job").await.unwrap().expect("3 of 5");
        assert_eq!(lease.acquired_on(), 3);
        assert!(b.lock_async("job").await.unwrap().is_none());
        assert!(a.extend_async(&lease).await.unwrap().is_some());
        assert_eq!(a.unlock_async(&lease).await.unwrap(), 3);
    });
    servers[0].stop();
    rt.block_on(async {
        assert!(a.lock_async("job").await.unwrap().is_none());
    });
    assert_eq!(holders(&servers, "lock:{job}"), 0);
}

/// A TTL too short to be granted with its drift allowance: the majority
/// says yes, but no validity is left, so the lock is refused and released.
#[test]
fn no_lock_without_validity_left() {
    let servers = five();
    let rl = Redlock::new(servers.iter().map(RedisServer::client))
        .unwrap()
        .ttl(Duration::from_millis(2))
        .retry(0, Duration::ZERO);
    assert!(rl.lock("tiny").unwrap().is_none());
    assert_eq!(holders(&servers, "lock:{tiny}"), 0);
}

#[test]
fn needs_at_least_one_server() {
    assert!(Redlock::new(Vec::<redis::Client>::new()).is_err());
}

/// Huge durations are clamped, not a panic: the lock is granted with a TTL
/// Redis accepts, and released.
#[test]
fn huge_durations_do_not_panic() {
    let servers = five();
    let rl = Redlock::new(servers.iter().map(RedisServer::client))
        .unwrap()
        .ttl(Duration::MAX)
        .instance_timeout(Duration::MAX)
        .retry(0, Duration::ZERO);
    let guard = rl.lock("huge").unwrap().expect("all five servers agree");
    assert!(guard.validity() > Duration::from_secs(3600 * 24 * 365));
    assert_eq!(holders(&servers, "lock:{huge}"), 5);
    assert!(rl.unlock(&guard).unwrap() >= 3);
    assert_eq!(holders(&servers, "lock:{huge}"), 0);
}

/// A retry delay of `Duration::MAX` under contention: the pause before the
/// retry is drawn from the first 584 years of the range (it used to
/// overflow computing it). Either the retry finished or it is still
/// pausing when the test stops waiting; neither panics.
#[test]
fn a_retry_delay_of_duration_max_does_not_panic() {
    let servers = five();
    let holder = redlock(&servers);
    let guard = holder.lock("busy").unwrap().expect("free");
    let rl = Redlock::new(servers.iter().map(RedisServer::client))
        .unwrap()
        .retry(1, Duration::MAX);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match tokio::time::timeout(Duration::from_millis(300), rl.lock_async("busy")).await {
            Ok(result) => assert!(result.unwrap().is_none(), "held by another"),
            Err(_still_pausing) => {}
        }
    });
    // The blocking form with a pause that is long but representable.
    let rl = Redlock::new(servers.iter().map(RedisServer::client))
        .unwrap()
        .retry(1, Duration::from_millis(1));
    assert!(rl.lock("busy").unwrap().is_none());
    assert!(holder.unlock(&guard).unwrap() >= 3);
}

/// The verbatim layout: `lock:<resource>` on every server, as other
/// Redlock clients key it.
#[test]
fn verbatim_keys_on_every_server() {
    let servers = five();
    let rl = redlock(&servers).verbatim_keys("lock:");
    let guard = rl.lock("report:2024").unwrap().expect("free");
    assert_eq!(guard.key(), "lock:report:2024");
    assert_eq!(holders(&servers, "lock:report:2024"), 5);
    assert!(rl.lock("report:2024").unwrap().is_none());
    assert_eq!(rl.unlock(&guard).unwrap(), 5);
    assert_eq!(holders(&servers, "lock:report:2024"), 0);
}
