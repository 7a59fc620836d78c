//! Failover under load, with figures (`cargo test --all-features --test
//! failover -- --nocapture` prints them): tasks write through one
//! configured connection while the primary is killed with `SIGKILL`.
//!
//! Checked: every operation returns (none hangs: each is bounded by the
//! options' worst case), writes are accepted again after the promotion, and
//! no write that met its `WAIT` is lost. Printed: the time from the kill to
//! the first accepted write beside the failover time the servers log,
//! writes acknowledged, failed, lost, and the slowest operation.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_state::connect::{Connection, ConnectionOptions, durable};
use redis_state::keys::key_slot;
use redis_state::testing::{RedisCluster, RedisSentinel, unique_prefix};
use redis_state::{Error, Operation, op};

const WRITERS: usize = 8;
/// Below the response timeout: a `WAIT` that times out still answers in time.
const WAIT_TIMEOUT: Duration = Duration::from_millis(200);

fn options() -> ConnectionOptions {
    ConnectionOptions::new()
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .retries(2)
        .backoff(Duration::from_millis(50), Duration::from_millis(250))
        .circuit_breaker(20, Duration::from_millis(200))
}

#[derive(Default)]
struct Log {
    /// Keys whose write met its WAIT, with the instant it returned.
    acked: Vec<(String, Instant)>,
    failed: usize,
    /// Writes applied on a primary that fewer replicas than asked
    /// acknowledged, with the instant it returned.
    shortfalls: Vec<(String, Instant)>,
    slowest: Duration,
    /// Errors that are neither transport failures nor shortfalls.
    unexpected: Vec<String>,
    /// A few distinct transport errors, for the figures.
    reasons: Vec<String>,
}

/// Writers: each writes its own keys (`SET`, then `WAIT 1`) until `stop`.
async fn load(
    con: &Connection,
    prefix: &str,
    stop: Arc<std::sync::atomic::AtomicBool>,
    log: Arc<Mutex<Log>>,
    bound: Duration,
) {
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let mut con = con.clone();
            let (stop, log, prefix) = (stop.clone(), log.clone(), prefix.to_owned());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let key = format!("{prefix}:{w}:{i}");
                    let started = Instant::now();
                    let write = durable(op::command::<()>("SET", &key).arg("v"), 1, WAIT_TIMEOUT);
                    let r = tokio::time::timeout(bound, write.run_async(&mut con))
                        .await
                        .unwrap_or_else(|_| panic!("an operation hung past {bound:?}"));
                    let took = started.elapsed();
                    {
                        let mut log = log.lock().unwrap();
                        log.slowest = log.slowest.max(took);
                        match r {
                            Ok(_) => log.acked.push((key, Instant::now())),
                            Err(Error::DurabilityShortfall { .. }) => {
                                log.shortfalls.push((key, Instant::now()))
                            }
                            // A transport failure, or a refusal that
                            // outlasted the retries (`MOVED` while the old
                            // primary rejoins as a replica): not applied,
                            // and the error says to retry.
                            Err(e)
                                if e.is_connection_error()
                                    || (e.is_retryable() && !e.may_have_applied()) =>
                            {
                                log.failed += 1;
                                if log.reasons.len() < 5 && !log.reasons.contains(&e.to_string()) {
                                    log.reasons.push(e.to_string());
                                }
                            }
                            Err(e) => log.unexpected.push(e.to_string()),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sentinel_failover_under_load_loses_no_acknowledged_write() {
    let mut sentinel = RedisSentinel::start().unwrap();
    let urls = sentinel.sentinel_urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let opts = options();
    let bound = opts.worst_case() + WAIT_TIMEOUT;
    let rt = runtime();
    let con = rt
        .block_on(opts.connect_sentinel_async(&urls, sentinel.service_name()))
        .unwrap();
    let prefix = unique_prefix("sentinel-failover");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Log::default()));
    let writers = {
        let (con, prefix, stop, log) = (con.clone(), prefix.clone(), stop.clone(), log.clone());
        rt.spawn(async move { load(&con, &prefix, stop, log, bound).await })
    };
    std::thread::sleep(Duration::from_millis(500));
    let (_, old_port, killed_at) = sentinel.kill_primary().unwrap();
    let new_port = sentinel
        .wait_for_promotion(old_port, Duration::from_secs(60))
        .unwrap();
    let promoted_at = Instant::now();
    // Keep writing until writes are accepted again, then a second more.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && !log
            .lock()
            .unwrap()
            .acked
            .iter()
            .any(|(_, at)| *at > promoted_at)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rt.block_on(writers).unwrap();

    let log = log.lock().unwrap();
    let first_after = log
        .acked
        .iter()
        .map(|(_, at)| *at)
        .filter(|at| *at > killed_at)
        .min()
        .expect("writes are accepted again after the failover");
    let primary = sentinel
        .data()
        .nodes()
        .iter()
        .find(|n| n.port() == new_port)
        .unwrap();
    let mut check = primary.connection().unwrap();
    let lost = log
        .acked
        .iter()
        .filter(|(key, _)| {
            redis::cmd("EXISTS")
                .arg(key)
                .query::<i64>(&mut check)
                .unwrap()
                == 0
        })
        .count();
    println!(
        "sentinel failover: kill -> first accepted write {:?}; sentinel-reported failover {:?}; \
         acknowledged {}, failed {}, WAIT shortfalls {}, lost {lost}; slowest operation {:?} \
         (bound {bound:?})",
        first_after - killed_at,
        sentinel.reported_failover_time(),
        log.acked.len(),
        log.failed,
        log.shortfalls.len(),
        log.slowest,
    );
    assert_eq!(lost, 0, "acknowledged writes lost");
    assert!(log.unexpected.is_empty(), "{:?}", log.unexpected);
}

#[test]
fn cluster_failover_under_load_recovers_and_loses_no_acknowledged_write() {
    let mut cluster = RedisCluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .config("cluster-node-timeout", "1000")
        .start()
        .unwrap();
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let opts = options();
    let bound = opts.worst_case() + WAIT_TIMEOUT;
    let rt = runtime();
    let con = rt.block_on(opts.connect_cluster_async(&urls)).unwrap();
    let prefix = unique_prefix("cluster-failover");
    let killed_range = cluster.slot_range(0).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Log::default()));
    let writers = {
        let (con, prefix, stop, log) = (con.clone(), prefix.clone(), stop.clone(), log.clone());
        rt.spawn(async move { load(&con, &prefix, stop, log, bound).await })
    };
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = cluster.kill_primary(0).unwrap();
    cluster
        .wait_for_promotion(0, Duration::from_secs(60))
        .unwrap();
    let promoted_at = Instant::now();
    // The promoted replica has no replica of its own until the old primary
    // comes back (empty) and rejoins as one: until then every write there
    // is applied but falls short of its WAIT.
    cluster.node_mut(0).unwrap().restart().unwrap();
    let on_killed = |key: &str| killed_range.contains(&key_slot(key.as_bytes()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && !log
            .lock()
            .unwrap()
            .acked
            .iter()
            .any(|(k, at)| *at > promoted_at && on_killed(k))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rt.block_on(writers).unwrap();

    let log = log.lock().unwrap();
    let first_durable = log
        .acked
        .iter()
        .filter(|(k, at)| *at > killed_at && on_killed(k))
        .map(|(_, at)| *at)
        .min();
    let first_after = log
        .acked
        .iter()
        .chain(&log.shortfalls)
        .filter(|(k, at)| *at > killed_at && on_killed(k))
        .map(|(_, at)| *at)
        .min()
        .unwrap_or_else(|| {
            panic!(
                "writes to the killed primary's slots are not accepted again: {} failed, {:?}",
                log.failed, log.reasons
            )
        });
    // A fresh connection checks every acknowledged key.
    let mut check = cluster.connection().unwrap();
    let lost = log
        .acked
        .iter()
        .filter(|(key, _)| {
            redis::cmd("EXISTS")
                .arg(key)
                .query::<i64>(&mut check)
                .unwrap()
                == 0
        })
        .count();
    println!(
        "cluster failover: kill -> first accepted write on the killed slots {:?} (first that met \
         its WAIT {:?}, after the old primary rejoined as a replica); cluster-reported failover \
         {:?}; acknowledged {}, failed {}, WAIT shortfalls {}, lost {lost}; slowest operation \
         {:?} (bound {bound:?})",
        first_after - killed_at,
        first_durable.map(|at| at - killed_at),
        cluster.reported_failover_time(0),
        log.acked.len(),
        log.failed,
        log.shortfalls.len(),
        log.slowest,
    );
    assert_eq!(lost, 0, "acknowledged writes lost");
    assert!(log.unexpected.is_empty(), "{:?}", log.unexpected);
}
