//! The test support's replicated topologies: a replica set, Sentinel over
//! one, and the failover helpers (Sentinel and Cluster).

use std::time::Duration;

use redis_state::testing::{RedisCluster, RedisSentinel, ReplicaSet};

fn get(server: &redis_state::testing::RedisServer, key: &str) -> Option<String> {
    server.query(redis::cmd("GET").arg(key)).unwrap()
}

#[test]
fn a_replica_set_replicates_and_promotes_by_hand() {
    let mut set = ReplicaSet::start(2).unwrap();
    assert_eq!(set.primary_index(), Some(0));
    assert_eq!(set.replicas().len(), 2);
    set.nodes()[0]
        .query::<()>(redis::cmd("SET").arg("k").arg("v"))
        .unwrap();
    set.nodes()[0]
        .query::<i64>(redis::cmd("WAIT").arg(2).arg(5000))
        .unwrap();
    // WAIT may return early on a loaded machine: give the replica a bounded
    // while to apply the write.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(&set.nodes()[1], "k").is_none() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(get(&set.nodes()[1], "k").as_deref(), Some("v"));

    let (killed, _) = set.kill_primary().unwrap();
    assert_eq!(killed, 0);
    assert_eq!(set.primary_index(), None);
    set.promote(1).unwrap();
    assert_eq!(set.primary_index(), Some(1));
    assert_eq!(get(&set.nodes()[1], "k").as_deref(), Some("v"));
}

#[test]
fn sentinel_follows_a_requested_failover_and_a_killed_primary() {
    let mut sentinel = RedisSentinel::start().unwrap();
    assert_eq!(sentinel.sentinels().len(), 3);
    let first = sentinel.reported_primary_port().unwrap();
    assert_eq!(first, sentinel.data().nodes()[0].port());

    let old = sentinel.failover().unwrap();
    let second = sentinel
        .wait_for_promotion(old, Duration::from_secs(30))
        .unwrap();
    assert_ne!(second, first);
    assert!(sentinel.reported_failover_time().is_some());

    let (_, killed_port, _) = sentinel.kill_primary().unwrap();
    assert_eq!(killed_port, second);
    let third = sentinel
        .wait_for_promotion(killed_port, Duration::from_secs(30))
        .unwrap();
    assert_ne!(third, second);
    let primary = sentinel.data().primary().unwrap();
    assert_eq!(primary.port(), third);
}

#[test]
fn cluster_failover_promotes_the_replica() {
    let mut cluster = RedisCluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .config("cluster-node-timeout", "1000")
        .start()
        .unwrap();
    let replica = cluster.replicas_of(0)[0].port();
    let promoted = cluster.failover(0, Duration::from_secs(30)).unwrap();
    assert_eq!(promoted, replica);

    cluster.kill_primary(1).unwrap();
    let replica = cluster.replicas_of(1)[0].port();
    let promoted = cluster
        .wait_for_promotion(1, Duration::from_secs(30))
        .unwrap();
    assert_eq!(promoted, replica);
    assert!(cluster.reported_failover_time(1).is_some());
}

/// The test support's clients are bounded: after a node is killed, a
/// command to it fails (within the connect and response timeouts and the
/// cluster client's bounded retries) instead of hanging.
#[test]
fn the_support_clients_fail_within_their_bounds_after_a_kill() {
    use redis_state::testing::{CLUSTER_RETRIES, CONNECT_TIMEOUT, RESPONSE_TIMEOUT, RedisServer};
    use std::time::Instant;

    let retries = CLUSTER_RETRIES + 1;
    let bound = (CONNECT_TIMEOUT + RESPONSE_TIMEOUT) * retries
        + Duration::from_millis(500) * CLUSTER_RETRIES;

    let mut cluster = RedisCluster::start(3).unwrap();
    let first = cluster.primaries()[0].port();
    let key = (0..1000)
        .map(|i| format!("bounded-{i}"))
        .find(|k| cluster.node_for_key(k).port() == first)
        .unwrap();
    let mut con = cluster.connection().unwrap();
    redis::cmd("SET").arg(&key).arg("v").exec(&mut con).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut async_con = rt.block_on(cluster.async_connection()).unwrap();
    cluster.kill_primary(0).unwrap();

    let started = Instant::now();
    let r: redis::RedisResult<Option<String>> = redis::cmd("GET").arg(&key).query(&mut con);
    assert!(r.is_err(), "{r:?}");
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
    let started = Instant::now();
    let r: redis::RedisResult<Option<String>> =
        rt.block_on(redis::cmd("GET").arg(&key).query_async(&mut async_con));
    assert!(r.is_err(), "{r:?}");
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());

    // A standalone server's connections too.
    let mut server = RedisServer::start().unwrap();
    let mut con = server.connection().unwrap();
    let mut async_con = rt.block_on(server.async_connection()).unwrap();
    server.stop();
    let r: redis::RedisResult<String> = redis::cmd("PING").query(&mut con);
    assert!(r.is_err());
    let r: redis::RedisResult<String> = rt.block_on(redis::cmd("PING").query_async(&mut async_con));
    assert!(r.is_err());
    assert!(server.query::<String>(&redis::cmd("PING")).is_err());
}
