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
use redis_state::op::command;
use redis_state::{Namespace, batch};

/// Counters and histogram sample counts by key (name and sorted labels).
#[derive(Default)]
struct Recorded {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
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
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
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
