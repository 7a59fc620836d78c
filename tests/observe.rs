//! Features `tracing` and `metrics` (the suite's feature `observe`): one
//! span and one set of measurements per operation run, on both executors
//! and topologies, with what the operation sent and how it ended.

#![cfg(feature = "observe")]

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use common::Runner;
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use redis_state::cache::Cache;
use redis_state::op::command;
use redis_state::prelude::*;
use redis_state::queue::Queue;
use redis_state::stream::{Retention, Stream};
use redis_state::{Namespace, batch};
use serde::{Deserialize, Serialize};

/// Counters and histogram sample counts by key (name and sorted labels).
#[derive(Default)]
struct Recorded {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    /// Gauges: the f64's bits.
    gauges: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

struct Count(Arc<AtomicU64>);
impl CounterFn for Count {
    fn increment(&self, v: u64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    fn absolute(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}
impl metrics::GaugeFn for Count {
    fn increment(&self, v: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) + v);
    }
    fn decrement(&self, v: f64) {
        metrics::GaugeFn::increment(self, -v);
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}
impl HistogramFn for Count {
    fn record(&self, _: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn key_text(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

struct Rec(&'static Recorded);
impl Recorder for Rec {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let c = self
            .0
            .counters
            .lock()
            .unwrap()
            .entry(key_text(key))
            .or_default()
            .clone();
        Counter::from_arc(Arc::new(Count(c)))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let c = self
            .0
            .gauges
            .lock()
            .unwrap()
            .entry(key_text(key))
            .or_default()
            .clone();
        Gauge::from_arc(Arc::new(Count(c)))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let c = self
            .0
            .histograms
            .lock()
            .unwrap()
            .entry(key_text(key))
            .or_default()
            .clone();
        Histogram::from_arc(Arc::new(Count(c)))
    }
}

/// What the tracing subscriber wrote (span closes, with their fields).
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Installed {
    recorded: &'static Recorded,
    log: Buf,
}

/// Installed once for the whole test binary (both facades are global).
fn installed() -> &'static Installed {
    static I: OnceLock<Installed> = OnceLock::new();
    I.get_or_init(|| {
        let recorded: &'static Recorded = Box::leak(Box::default());
        metrics::set_global_recorder(Rec(recorded)).unwrap();
        let log = Buf::default();
        let writer = log.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(sub).unwrap();
        Installed { recorded, log }
    })
}

fn counter(name: &str) -> u64 {
    installed()
        .recorded
        .counters
        .lock()
        .unwrap()
        .get(name)
        .map_or(0, |c| c.load(Ordering::Relaxed))
}

fn gauge(name: &str) -> Option<f64> {
    installed()
        .recorded
        .gauges
        .lock()
        .unwrap()
        .get(name)
        .map(|g| f64::from_bits(g.load(Ordering::Relaxed)))
}

fn log_text() -> String {
    String::from_utf8(
        installed()
            .log
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    )
    .unwrap()
}

fn one_span_and_measurements_per_run(runner: &mut Runner, ns: &Namespace) {
    let i = installed();
    let key = format!("{ns}:{{o}}:k");
    let before_ok = counter(
        "redis_state_operations_total{operation=Batch<(Child<CommandOp<()>>, Child<CommandOp<String>>)>,outcome=ok}",
    );
    let ((), got) = runner
        .run(batch((
            command::<()>("SET", &key).arg("v"),
            command::<String>("GET", &key),
        )))
        .unwrap();
    assert_eq!(got, "v");
    let after_ok = counter(
        "redis_state_operations_total{operation=Batch<(Child<CommandOp<()>>, Child<CommandOp<String>>)>,outcome=ok}",
    );
    assert!(
        after_ok > before_ok,
        "{:?}",
        i.recorded
            .counters
            .lock()
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );

    // An error is counted by kind: GET on a hash is WRONGTYPE.
    let hkey = format!("{ns}:{{o}}:h");
    runner.cmd::<i64>("HSET", &hkey).arg("f").arg("1").go();
    let before_err =
        counter("redis_state_operation_errors_total{kind=server,operation=CommandOp<String>}");
    runner.run(command::<String>("GET", &hkey)).unwrap_err();
    let after_err =
        counter("redis_state_operation_errors_total{kind=server,operation=CommandOp<String>}");
    assert!(after_err > before_err);
    assert!(
        i.recorded
            .histograms
            .lock()
            .unwrap()
            .get("redis_state_operation_seconds{operation=CommandOp<String>}")
            .is_some_and(|h| h.load(Ordering::Relaxed) > 0)
    );

    let log = String::from_utf8(i.log.0.lock().unwrap_or_else(|e| e.into_inner()).clone()).unwrap();
    assert!(
        log.lines().any(|l| l.contains("redis_state.operation")
            && l.contains("operation=\"Batch<(Child<CommandOp<()>>, Child<CommandOp<String>>)>\"")
            && l.contains("commands=2")
            && l.contains("round_trips=1")
            && l.contains("outcome=\"ok\"")),
        "{log}"
    );
    assert!(log.contains("outcome=\"server\""), "{log}");
}

matrix!(one_span_and_measurements_per_run);

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "obsitem:{id}", ttl = "10m")]
struct ObsItem {
    id: u64,
    name: String,
}

/// The cache counters of model `ObsItem` (its own model: no other test
/// reads it, so the counts are this test's alone).
fn cache_counts() -> [u64; 8] {
    let read = |o: &str| {
        counter(&format!(
            "redis_state_cache_reads_total{{model=ObsItem,outcome={o}}}"
        ))
    };
    [
        read("hit"),
        read("local_hit"),
        read("miss"),
        read("stale"),
        read("refresh"),
        read("error"),
        counter("redis_state_cache_fills_total{model=ObsItem}"),
        counter("redis_state_cache_lease_waits_total{model=ObsItem}"),
    ]
}

fn item(id: u64) -> Option<ObsItem> {
    Some(ObsItem {
        id,
        name: format!("item {id}"),
    })
}

/// A scripted sequence of cache reads, blocking and async, counted exactly:
/// hits, misses, fills, an error, and a read that waits for another
/// process's fill (two `Cache` values: two single-flight registries, as
/// two processes have).
#[test]
fn cache_reads_fills_and_lease_waits_are_counted_exactly() {
    installed();
    let server = redis_state::testing::shared_server();
    let ns = common::namespace("obs_cache");
    let cache = Cache::<ObsItem>::new().namespace(&ns);
    let mut con = server.client().get_connection().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut acon = rt
        .block_on(server.client().get_multiplexed_async_connection())
        .unwrap();
    let before = cache_counts();

    // 1: a miss that fills; 2 and 3: hits (blocking, then async).
    let loads = std::sync::atomic::AtomicU32::new(0);
    let load = |id| {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::convert::Infallible>(item(id))
    };
    assert_eq!(
        cache.get_or_load(&mut con, &1, || load(1)).unwrap(),
        item(1)
    );
    assert_eq!(
        cache.get_or_load(&mut con, &1, || load(1)).unwrap(),
        item(1)
    );
    let got = rt
        .block_on(cache.get_or_load_async(&mut acon, &1, || async { load(1) }))
        .unwrap();
    assert_eq!(got, item(1));
    // 4: a loader error: counted as an error, nothing filled.
    let failed = cache.get_or_load(&mut con, &2, || Err::<Option<ObsItem>, _>("source down"));
    assert!(failed.is_err());
    // 5: an async miss that fills.
    let got = rt
        .block_on(cache.get_or_load_async(&mut acon, &3, || async { load(3) }))
        .unwrap();
    assert_eq!(got, item(3));
    assert_eq!(loads.load(Ordering::SeqCst), 2);

    let after = cache_counts();
    let delta: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    // hit, local_hit, miss, stale, refresh, error, fills, lease waits
    assert_eq!(delta, [2, 0, 2, 0, 0, 1, 2, 0], "{after:?}");

    // 6: "process" A holds the lease while "process" B waits for its fill.
    let other = Cache::<ObsItem>::new().namespace(&ns);
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            let mut con = server.client().get_connection().unwrap();
            cache
                .get_or_load(&mut con, &4, || {
                    started_tx.send(()).unwrap();
                    // Loads until B is seen waiting (bounded).
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                    while cache_counts()[7] == after[7] {
                        assert!(std::time::Instant::now() < deadline, "B never waited");
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Ok::<_, std::convert::Infallible>(item(4))
                })
                .unwrap()
        });
        started_rx.recv().unwrap();
        let mut con = server.client().get_connection().unwrap();
        let b = other
            .get_or_load(&mut con, &4, || {
                Err::<Option<ObsItem>, _>("B's loader must not run: A fills")
            })
            .unwrap();
        assert_eq!(b, item(4));
        assert_eq!(a.join().unwrap(), item(4));
    });
    let last = cache_counts();
    let delta: Vec<u64> = last.iter().zip(after).map(|(a, b)| a - b).collect();
    assert_eq!(delta, [0, 0, 2, 0, 0, 0, 1, 1], "{last:?}");

    // The read's span carries its outcome.
    let log = log_text();
    assert!(
        log.lines().any(|l| l.contains("redis_state.cache_read")
            && l.contains("model=\"ObsItem\"")
            && l.contains("outcome=\"hit\"")),
        "{log}"
    );
    assert!(log.contains("outcome=\"miss\""), "{log}");
}

/// A queue's depth and lag, read by the library, set its gauges.
#[test]
fn queue_depth_sets_its_gauges() {
    installed();
    let server = redis_state::testing::shared_server();
    let mut con = server.client().get_connection().unwrap();
    let name = redis_state::testing::unique_prefix("obs_q");
    let q = Queue::<String>::new(name.clone());
    for i in 0..3 {
        q.push(&format!("job {i}")).run(&mut con).unwrap();
    }
    q.push(&"later".to_owned())
        .delay(std::time::Duration::from_secs(3600))
        .run(&mut con)
        .unwrap();
    let taken = q.take().run(&mut con).unwrap().unwrap();
    let d = q.depth().run(&mut con).unwrap();
    assert_eq!((d.ready, d.delayed, d.active, d.dead), (2, 1, 1, 0));
    assert_eq!(d.lag, std::time::Duration::ZERO);
    let g = |state: &str| {
        gauge(&format!(
            "redis_state_queue_jobs{{queue={name},state={state}}}"
        ))
    };
    assert_eq!(
        [g("ready"), g("delayed"), g("active"), g("dead")],
        [Some(2.0), Some(1.0), Some(1.0), Some(0.0)]
    );
    q.complete(&taken, ()).run(&mut con).unwrap();

    // A job due now that no worker takes: the lag grows past zero.
    q.push(&"due".to_owned())
        .delay(std::time::Duration::from_millis(1))
        .run(&mut con)
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let d = loop {
        let d = q.depth().run(&mut con).unwrap();
        if d.lag > std::time::Duration::ZERO || std::time::Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(d.lag > std::time::Duration::ZERO, "{d:?}");
    assert_eq!(
        gauge(&format!("redis_state_queue_lag_seconds{{queue={name}}}")),
        Some(d.lag.as_secs_f64())
    );
}

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "obsev:{id}")]
struct ObsEvent {
    #[redis(id)]
    id: u64,
}

/// A group's pending count and lag, read by the library, set its gauges.
#[test]
fn stream_group_info_sets_its_gauges() {
    installed();
    let server = redis_state::testing::shared_server();
    let mut con = server.client().get_connection().unwrap();
    let key = format!(
        "{{{}}}:events",
        redis_state::testing::unique_prefix("obs_s")
    );
    let stream = Stream::<ObsEvent>::new(key.clone(), Retention::max_len(1000));
    let group = stream.group("g");
    group.create().run(&mut con).unwrap();
    for id in 0..3 {
        stream.add(&ObsEvent { id }).run(&mut con).unwrap();
    }
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c1")
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query(&mut con)
        .unwrap();
    let info = group.info().run(&mut con).unwrap().unwrap();
    assert_eq!((info.consumers, info.pending, info.lag), (1, 2, Some(1)));
    assert!(info.oldest_pending_idle.is_some());
    assert_eq!(
        gauge(&format!(
            "redis_state_stream_group_pending{{group=g,stream={key}}}"
        )),
        Some(2.0)
    );
    assert_eq!(
        gauge(&format!(
            "redis_state_stream_group_lag{{group=g,stream={key}}}"
        )),
        Some(1.0)
    );
    assert_eq!(stream.group("none").info().run(&mut con).unwrap(), None);
}
