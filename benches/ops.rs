//! What observing operations costs: a GET run as an operation beside the
//! same GET in hand-written redis-rs, on one server in one run.
//!
//! Built without the suite's `observe` feature, redis-state has no
//! `tracing` or `metrics` code at all ("off"); with it, every operation run
//! opens a span and records metrics. Row 1 runs with no subscriber or
//! recorder installed; with `observe`, row 2 installs a tracing subscriber
//! (DEBUG, writing to nothing) and a metrics recorder (counting), so its
//! ratio is the whole cost of being watched.
//!
//! Rows 3 and 4 do the same for a cache hit through
//! `Cache::get_or_load` (a span per read with its outcome, a counter by
//! outcome) beside a hand-written `GET` and JSON decode: row 3 before the
//! subscriber and recorder are installed, row 4 (with `observe`) after.
//!
//! ```text
//! cargo bench --bench ops                      # off
//! cargo bench --bench ops --features observe   # on
//! BENCH_QUICK=1 cargo bench --bench ops        # smoke run
//! ```
//!
//! Rows go to `target/bench/ops.json`.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::panic)]

mod support;

use redis_state::op::command;
use redis_state::prelude::*;
use support::{Config, Report, Row, Target, alternate_each, bench_server};

const ROUNDS: usize = 41;

/// A plain-JSON cache entry: a hit is a `GET` and a JSON decode, exactly
/// what the hand-written side does.
#[derive(Cached, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "bench:ops:item:{id}", ttl = "1h", format = "plain")]
struct Item {
    id: u64,
    name: String,
}

#[cfg(feature = "observe")]
mod watch {
    //! A tracing subscriber and a metrics recorder that do real work per
    //! event (format, count) and keep nothing.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    struct Count(AtomicU64);
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
    struct Rec;
    impl Recorder for Rec {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Count(AtomicU64::new(0))))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(Arc::new(Count(AtomicU64::new(0))))
        }
    }

    pub(crate) fn install() {
        metrics::set_global_recorder(Rec).unwrap();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::set_global_default(sub).unwrap();
    }
}

fn main() {
    let cfg = Config::from_args();
    let total = cfg.scale(40_000, 400);
    let n = (total / ROUNDS).max(1);
    let rounds = cfg.rounds(ROUNDS, 1);
    let server = bench_server();
    let mut con = server.connection();
    let mut hcon = server.connection();
    let mut report = Report::new("ops", &server, &cfg);
    let observe = cfg!(feature = "observe");
    report.note(format!(
        "redis-state built with tracing + metrics: {}",
        if observe {
            "on (feature observe)"
        } else {
            "off"
        }
    ));
    let key = "bench:ops:k";
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("v")
        .query(&mut hcon)
        .unwrap();

    let mut get_row = |id: &str, name: &str, note: &str, target: f64, report: &mut Report| {
        let [d, h] = alternate_each(
            &rounds,
            n,
            |_| {
                let v: String = command::<String>("GET", key).run(&mut con).unwrap();
                assert_eq!(v, "v");
            },
            |_| {
                let v: String = redis::cmd("GET").arg(key).query(&mut hcon).unwrap();
                assert_eq!(v, "v");
            },
        );
        report.push(
            Row::new(id, name, &d)
                .hand(&h)
                .target(Target::MinHandRatio(target))
                .note(note.to_owned()),
        );
    };
    let item = Item {
        id: 1,
        name: "one".into(),
    };
    let mut icon = server.connection();
    Item::set(&1, &item).run(&mut icon).unwrap();
    let cache = redis_state::cache::Cache::<Item>::new();
    let item_key = cache.key(&1);
    let mut ccon = server.connection();
    let mut hit_row = |id: &str, name: &str, note: &str, target: f64, report: &mut Report| {
        let [d, h] = alternate_each(
            &rounds,
            n,
            |_| {
                let v = cache
                    .get_or_load(&mut ccon, &1, || -> Result<Option<Item>, String> {
                        panic!("a hit loads nothing")
                    })
                    .unwrap();
                assert_eq!(v.as_ref(), Some(&item));
            },
            |_| {
                let raw: Vec<u8> = redis::cmd("GET").arg(&item_key).query(&mut icon).unwrap();
                let v: Item = serde_json::from_slice(&raw).unwrap();
                assert_eq!(v, item);
            },
        );
        report.push(
            Row::new(id, name, &d)
                .hand(&h)
                .target(Target::MinHandRatio(target))
                .note(note.to_owned()),
        );
    };
    if cfg.wants("1") {
        get_row(
            "1",
            if observe {
                "GET as an operation, tracing + metrics compiled in, nothing installed"
            } else {
                "GET as an operation, tracing + metrics compiled out"
            },
            "hand-written redis-rs GET on its own connection",
            0.95,
            &mut report,
        );
    }
    if cfg.wants("3") {
        hit_row(
            "3",
            if observe {
                "cache hit (get_or_load), tracing + metrics compiled in, nothing installed"
            } else {
                "cache hit (get_or_load), tracing + metrics compiled out"
            },
            "hand-written redis-rs GET and serde_json decode",
            0.95,
            &mut report,
        );
    }
    #[cfg(feature = "observe")]
    if cfg.wants("2") || cfg.wants("4") {
        watch::install();
    }
    #[cfg(feature = "observe")]
    if cfg.wants("2") {
        get_row(
            "2",
            "GET as an operation, a DEBUG subscriber and a recorder installed",
            "hand-written redis-rs GET (not observed); the subscriber formats one \
             line per operation, the recorder counts two metrics",
            0.75,
            &mut report,
        );
    }
    #[cfg(feature = "observe")]
    if cfg.wants("4") {
        hit_row(
            "4",
            "cache hit (get_or_load), a DEBUG subscriber and a recorder installed",
            "hand-written redis-rs GET and serde_json decode (not observed); a cache-read \
             span and an operation span per hit, two counters and a histogram",
            0.75,
            &mut report,
        );
    }
    server.clear(&["bench:ops:*"]);
    report.finish();
}
