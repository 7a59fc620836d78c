//! The caching engine beside hand-written redis-rs, on one private server, in
//! one run:
//!
//! * **cache hit**: `Cache::get` / `get_or_load` on a hit against redis-rs
//!   sending the same `GET` and decoding the same JSON (target ≥ 0.95×);
//! * **local-cache hit**: `get_or_load` served by a `LocalCache` (no round
//!   trip) against the same call answered by Redis: the speed-up (aim ≥ 100×);
//! * **invalidation latency**: from a `SET` on another connection to the
//!   local copy being gone, p50 / p99.
//!
//! The hit rows alternate short rounds of each side; `ratio` is the median
//! of the per-round ratios (adjacent measurements, so load from other
//! processes cancels), the note gives the ratio of the medians too.
//!
//! Rows are printed and written as JSON to `target/bench/cache.json`.
//! Run with `cargo bench --bench cache` (release build). Timings are never
//! asserted in tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis_state::cache::{Cache, LocalCache, LocalCacheOptions};
use redis_state::prelude::*;
use redis_state::testing::RedisServer;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "user:{id}", ttl = "1h", beta = 0)]
struct User {
    id: u64,
    name: String,
    email: String,
    roles: Vec<String>,
}

fn user(id: u64) -> User {
    User {
        id,
        name: format!("user number {id}"),
        email: format!("user{id}@example.com"),
        roles: vec!["reader".into(), "writer".into()],
    }
}

struct Row {
    name: &'static str,
    unit: &'static str,
    ours: f64,
    baseline: f64,
    /// ours / baseline for throughputs, baseline / ours for latencies.
    ratio: f64,
    note: String,
}

const ROUNDS: usize = 7;

/// Rounds of the interleaved hit comparisons: short rounds, alternating
/// which side goes first, so load from other processes on the machine hits
/// both sides alike.
const PAIR_ROUNDS: usize = 150;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Ops per second of `ours` and `base` (each doing `n` operations per
/// call), medians over short interleaved rounds, and the median of the
/// per-round ratios (each from two adjacent measurements, so load drift
/// from other processes cancels out).
fn pair(n: usize, mut ours: impl FnMut(usize), mut base: impl FnMut(usize)) -> (f64, f64, f64) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    // Warm up both.
    ours(n);
    base(n);
    for round in 0..PAIR_ROUNDS {
        let time = |f: &mut dyn FnMut(usize)| {
            let t = Instant::now();
            f(n);
            n as f64 / t.elapsed().as_secs_f64()
        };
        if round % 2 == 0 {
            a.push(time(&mut ours));
            b.push(time(&mut base));
        } else {
            b.push(time(&mut base));
            a.push(time(&mut ours));
        }
    }
    let ratios = a.iter().zip(&b).map(|(x, y)| x / y).collect();
    (median(a), median(b), median(ratios))
}

/// What a hand-written cache read does with the `GET` reply: check the
/// header, parse the JSON.
fn hand_decode(raw: &[u8]) -> Option<User> {
    let nl = raw.iter().position(|&b| b == b'\n')?;
    if !raw.starts_with(b"rsc1 ") {
        return None;
    }
    serde_json::from_slice(&raw[nl + 1..]).ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = RedisServer::start()?;
    let mut rows = Vec::new();
    let users = Cache::<User>::new();
    let mut con = server.connection()?;
    users.set(&1, &user(1)).run(&mut con)?;
    let key = users.key(&1);

    // -- cache hit, blocking ------------------------------------------------
    let n = 500;
    let (ours, base, ratio) = {
        let mut c1 = server.connection()?;
        let mut c2 = server.connection()?;
        let users = &users;
        let key = &key;
        pair(
            n,
            |n| {
                for _ in 0..n {
                    let v = users.get(&1).run(&mut c1).unwrap();
                    assert!(v.is_some());
                }
            },
            |n| {
                for _ in 0..n {
                    let raw: Vec<u8> = redis::cmd("GET").arg(key).query(&mut c2).unwrap();
                    assert!(hand_decode(&raw).is_some());
                }
            },
        )
    };
    rows.push(Row {
        name: "cache hit: Cache::get (GET + decode), blocking",
        unit: "ops/s",
        ours,
        baseline: base,
        ratio,
        note: format!(
            "vs redis-rs GET + the same JSON decode; ratio of medians {:.2}",
            ours / base
        ),
    });

    let (ours, base, ratio2) = {
        let mut c1 = server.connection()?;
        let mut c2 = server.connection()?;
        let users = &users;
        let key = &key;
        pair(
            n,
            |n| {
                for _ in 0..n {
                    let v = users
                        .get_or_load_blocking(&mut c1, &1, || Ok::<_, String>(None))
                        .unwrap();
                    assert!(v.is_some());
                }
            },
            |n| {
                for _ in 0..n {
                    let raw: Vec<u8> = redis::cmd("GET").arg(key).query(&mut c2).unwrap();
                    assert!(hand_decode(&raw).is_some());
                }
            },
        )
    };
    rows.push(Row {
        name: "cache hit: get_or_load_blocking, blocking",
        unit: "ops/s",
        ours,
        baseline: base,
        ratio: ratio2,
        note: format!(
            "one GET; vs redis-rs GET + decode; ratio of medians {:.2}",
            ours / base
        ),
    });

    // -- async: network hit, local hit, invalidation latency ----------------
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let url = server.url();
    let (net_hit, hand_hit, net_ratio, local_hit, latencies) = rt.block_on(async {
        let mut a1 = server.async_connection().await.unwrap();
        let mut a2 = server.async_connection().await.unwrap();
        let n = 500;
        // Network hit, async, against hand-written; interleaved like `pair`.
        let mut ours_v = Vec::new();
        let mut base_v = Vec::new();
        for round in 0..=PAIR_ROUNDS {
            for side in [round % 2, 1 - round % 2] {
                let t = Instant::now();
                if side == 0 {
                    for _ in 0..n {
                        let v = users
                            .get_or_load(&mut a1, &1, || async { Ok::<_, String>(None) })
                            .await
                            .unwrap();
                        assert!(v.is_some());
                    }
                } else {
                    for _ in 0..n {
                        let raw: Vec<u8> = redis::cmd("GET")
                            .arg(&key)
                            .query_async(&mut a2)
                            .await
                            .unwrap();
                        assert!(hand_decode(&raw).is_some());
                    }
                }
                let rate = n as f64 / t.elapsed().as_secs_f64();
                // Round 0 warms up.
                if round > 0 {
                    if side == 0 {
                        ours_v.push(rate)
                    } else {
                        base_v.push(rate)
                    }
                }
            }
        }
        // Local hits.
        let local = LocalCache::connect(&url, &["user:"], LocalCacheOptions::default())
            .await
            .unwrap();
        let with_local = Cache::<User>::new().with_local(local.clone());
        while !local.contains(&key) {
            with_local
                .get_or_load(&mut a1, &1, || async { Ok::<_, String>(None) })
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let n_local = 500_000;
        let mut local_v = Vec::new();
        for _ in 0..ROUNDS {
            let t = Instant::now();
            for _ in 0..n_local {
                let v = with_local
                    .get_or_load(&mut a1, &1, || async { Ok::<_, String>(None) })
                    .await
                    .unwrap();
                assert!(v.is_some());
            }
            local_v.push(n_local as f64 / t.elapsed().as_secs_f64());
        }
        assert!(local.stats().hits >= (ROUNDS * n_local) as u64);
        let ratio = median(ours_v.iter().zip(&base_v).map(|(x, y)| x / y).collect());
        (
            median(ours_v),
            median(base_v),
            ratio,
            median(local_v),
            (local, with_local),
        )
    });
    rows.push(Row {
        name: "cache hit: get_or_load, async",
        unit: "ops/s",
        ours: net_hit,
        baseline: hand_hit,
        ratio: net_ratio,
        note: format!(
            "one GET on a MultiplexedConnection; ratio of medians {:.2}",
            net_hit / hand_hit
        ),
    });
    rows.push(Row {
        name: "local-cache hit: get_or_load with LocalCache, async",
        unit: "ops/s",
        ours: local_hit,
        baseline: net_hit,
        ratio: local_hit / net_hit,
        note: "speed-up over the network hit above (no round trip)".into(),
    });

    // Invalidation latency: a SET on another connection (another thread)
    // until the local copy is gone.
    let (local, with_local) = latencies;
    let samples = 1_000;
    let mut lat = Vec::with_capacity(samples);
    let mut writer = server.connection()?;
    let body = {
        let raw: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut writer)?;
        raw
    };
    // The writer stamps the instant it sends the SET; this thread stamps the
    // instant it sees the copy gone (spinning), so a descheduled reader can
    // only make a sample longer, never shorter.
    let base = Instant::now();
    let sent_at = Arc::new(AtomicU64::new(0));
    let (tx, rx) = std::sync::mpsc::channel::<bool>();
    let writer_thread = {
        let key = key.clone();
        let body = body.clone();
        let sent_at = sent_at.clone();
        std::thread::spawn(move || {
            while let Ok(true) = rx.recv() {
                sent_at.store(base.elapsed().as_nanos() as u64, Ordering::SeqCst);
                let () = redis::cmd("SET")
                    .arg(&key)
                    .arg(&body)
                    .query(&mut writer)
                    .unwrap();
            }
        })
    };
    let mut a3 = rt.block_on(server.async_connection())?;
    for _ in 0..samples {
        // Make sure the copy is there and stays: the invalidation of the
        // previous sample's SET may be handled after a new read.
        loop {
            while !local.contains(&key) {
                rt.block_on(
                    with_local.get_or_load(&mut a3, &1, || async { Ok::<_, String>(None) }),
                )?;
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(Duration::from_millis(2));
            if local.contains(&key) {
                break;
            }
        }
        sent_at.store(0, Ordering::SeqCst);
        tx.send(true)?;
        let t0 = Instant::now();
        while local.contains(&key) {
            std::hint::spin_loop();
            if t0.elapsed() > Duration::from_secs(2) {
                return Err("an invalidation did not arrive within 2 s".into());
            }
        }
        let gone = base.elapsed().as_nanos() as u64;
        let sent = sent_at.load(Ordering::SeqCst);
        if sent == 0 || sent > gone {
            return Err("the local copy went away before the write was sent".into());
        }
        lat.push((gone - sent) as f64 / 1e3);
    }
    tx.send(false)?;
    writer_thread.join().map_err(|_| "writer thread")?;
    lat.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    rows.push(Row {
        name: "invalidation latency p50: SET elsewhere -> local copy gone",
        unit: "µs",
        ours: p50,
        baseline: f64::NAN,
        ratio: f64::NAN,
        note: format!(
            "{samples} samples: from the writer sending SET to this thread seeing the copy gone"
        ),
    });
    rows.push(Row {
        name: "invalidation latency p99",
        unit: "µs",
        ours: p99,
        baseline: f64::NAN,
        ratio: f64::NAN,
        note: format!("max {:.1} µs", lat[lat.len() - 1]),
    });

    print_rows(&rows);
    write_json(&rows)?;
    Ok(())
}

fn print_rows(rows: &[Row]) {
    println!(
        "{:<58} {:>14} {:>14} {:>9}  note",
        "benchmark", "redis-state", "baseline", "ratio"
    );
    for r in rows {
        let fmt = |v: f64| {
            if v.is_nan() {
                "-".to_owned()
            } else {
                format!("{v:.1}")
            }
        };
        println!(
            "{:<58} {:>11} {:<2} {:>11} {:<2} {:>9}  {}",
            r.name,
            fmt(r.ours),
            r.unit,
            fmt(r.baseline),
            if r.baseline.is_nan() { "" } else { r.unit },
            if r.ratio.is_nan() {
                "-".to_owned()
            } else {
                format!("{:.2}x", r.ratio)
            },
            r.note
        );
    }
}

fn write_json(rows: &[Row]) -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let num = |v: f64| {
        if v.is_nan() {
            serde_json::Value::Null
        } else {
            serde_json::json!(v)
        }
    };
    let json: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "bench": "cache",
                "name": r.name,
                "unit": r.unit,
                "redis_state": num(r.ours),
                "baseline": num(r.baseline),
                "ratio": num(r.ratio),
                "note": r.note,
            })
        })
        .collect();
    let path = dir.join("cache.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!("rows written to {}", path.display());
    Ok(())
}
