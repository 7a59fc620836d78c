//! The coordination primitives beside hand-written redis-rs code that sends
//! the same commands, on the same private server, in one run: lock acquire
//! + release, rate-limiter checks, session reads, a typed script call.
//!
//! Each comparison runs the two sides back to back in many short pairs and
//! reports the median of the per-pair ratios, so that load from other
//! processes hits both sides of a pair alike. Rows
//! are printed and written to `target/bench/coord.json`.
//!
//! `cargo bench --bench coord` (`COORD_BENCH_OPS` sets the operations per
//! side and row, default 40,000).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use redis_state::lock::Lock;
use redis_state::prelude::*;
use redis_state::ratelimit::{FixedWindow, Gcra, SlidingWindow};
use redis_state::session::JsonSessions;
use redis_state::testing::RedisServer;
use serde::{Deserialize, Serialize};

/// Pairs of back-to-back runs per comparison.
const PAIRS: usize = 41;

#[derive(Debug, Serialize)]
struct Row {
    name: String,
    unit: &'static str,
    ours: f64,
    baseline_name: String,
    baseline: f64,
    ratio: f64,
    target: Option<f64>,
    pass: Option<bool>,
}

fn row(
    name: &str,
    (ours, baseline, ratio): (f64, f64, f64),
    baseline_name: &str,
    target: Option<f64>,
) -> Row {
    Row {
        name: name.to_owned(),
        unit: "ops/s",
        ours,
        baseline_name: baseline_name.to_owned(),
        baseline,
        ratio,
        target,
        pass: target.map(|t| ratio >= t),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `a` and `b` back to back `PAIRS` times (`n / PAIRS` operations
/// each, alternating which goes first) and returns the median rates and
/// the median of the per-pair ratios a/b. Pairs run within milliseconds of
/// each other, so load from other processes hits both sides of a pair
/// alike; the median ignores the pairs it hit unevenly.
fn compare(n: usize, mut a: impl FnMut(usize), mut b: impl FnMut(usize)) -> (f64, f64, f64) {
    let chunk = (n / PAIRS).max(1);
    a(chunk.min(200));
    b(chunk.min(200));
    let (mut ra, mut rb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let time = |f: &mut dyn FnMut(usize)| {
        let t = Instant::now();
        f(chunk);
        chunk as f64 / t.elapsed().as_secs_f64()
    };
    for pair in 0..PAIRS {
        let (x, y) = if pair % 2 == 0 {
            let x = time(&mut a);
            (x, time(&mut b))
        } else {
            let y = time(&mut b);
            (time(&mut a), y)
        };
        ra.push(x);
        rb.push(y);
        ratios.push(x / y);
    }
    (median(ra), median(rb), median(ratios))
}

/// A lock token from the OS generator, as the library draws it: a careful
/// hand-written lock pays for unguessable tokens too.
fn token() -> String {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).unwrap();
    let mut out = String::with_capacity(32);
    for b in raw {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap());
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap());
    }
    out
}

fn eval(sha: &str, keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(sha).arg(keys.len());
    for k in keys {
        cmd.arg(*k);
    }
    cmd
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cart {
    items: Vec<u32>,
    coupon: Option<String>,
    theme: String,
}

fn main() {
    let n: usize = std::env::var("COORD_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let server = RedisServer::builder()
        .config("save", "")
        .config("appendonly", "no")
        .start()
        .unwrap();
    // One connection per side, to the same server.
    let mut con = server.connection().unwrap();
    let mut hcon = server.connection().unwrap();
    println!(
        "coordination benchmark: private redis-server on port {}, {n} operations per side and row, in {PAIRS} pairs",
        server.port()
    );
    let mut rows = Vec::new();

    // -- lock acquire + release ----------------------------------------------
    let lock = Lock::new("bench").ttl(Duration::from_secs(10));
    let acquire_sha = redis::Script::new(include_str!("../redis-state/src/lock/lua/acquire.lua"))
        .get_hash()
        .to_owned();
    let release_sha = redis::Script::new(include_str!("../redis-state/src/lock/lua/release.lua"))
        .get_hash()
        .to_owned();
    // load both scripts
    let g = lock.try_acquire().run(&mut con).unwrap().unwrap();
    assert!(g.release().run(&mut con).unwrap());
    let (key, fence) = (lock.key().to_owned(), lock.fence_key().to_owned());
    let cmp = compare(
        n,
        |n| {
            for _ in 0..n {
                let guard = lock.try_acquire().run(&mut con).unwrap().unwrap();
                assert!(guard.release().run(&mut con).unwrap());
            }
        },
        |n| {
            for _ in 0..n {
                let t = token();
                let (taken, _fence): (i64, i64) = eval(&acquire_sha, &[&key, &fence])
                    .arg(&t)
                    .arg(10_000)
                    .query(&mut hcon)
                    .unwrap();
                assert_eq!(taken, 1);
                let released: bool = eval(&release_sha, &[&key])
                    .arg(&t)
                    .query(&mut hcon)
                    .unwrap();
                assert!(released);
            }
        },
    );
    rows.push(row(
        "lock: try_acquire + release (fenced)",
        cmp,
        "hand-written EVALSHA acquire + EVALSHA release, same scripts",
        Some(0.95),
    ));
    // For reference: the unfenced lock most code writes by hand.
    let cmp = compare(
        n,
        |n| {
            for _ in 0..n {
                let guard = lock.try_acquire().run(&mut con).unwrap().unwrap();
                assert!(guard.release().run(&mut con).unwrap());
            }
        },
        |n| {
            for _ in 0..n {
                let t = token();
                let ok: Option<String> = redis::cmd("SET")
                    .arg("bench:plain")
                    .arg(&t)
                    .arg("NX")
                    .arg("PX")
                    .arg(10_000)
                    .query(&mut hcon)
                    .unwrap();
                assert!(ok.is_some());
                let released: bool = eval(&release_sha, &["bench:plain"])
                    .arg(&t)
                    .query(&mut hcon)
                    .unwrap();
                assert!(released);
            }
        },
    );
    rows.push(row(
        "lock: try_acquire + release (fenced)",
        cmp,
        "hand-written SET NX PX + EVALSHA release (no fencing token)",
        None,
    ));

    // -- rate limiters ---------------------------------------------------------
    let fixed = FixedWindow::new("bench", 1_000_000_000_000, Duration::from_secs(60));
    let sliding = SlidingWindow::new("bench", 1_000_000, Duration::from_millis(100));
    let gcra = Gcra::new("bench", 1_000_000_000, Duration::from_secs(1));
    type CheckFn<'a> = Box<dyn Fn(u64) -> redis_state::ratelimit::Check + 'a>;
    let limiters: Vec<(&str, CheckFn<'_>, &str, &str, Vec<u64>)> = vec![
        (
            "fixed window",
            Box::new(|s| fixed.check(s)),
            "fixed",
            include_str!("../redis-state/src/ratelimit/lua/fixed_window.lua"),
            vec![1_000_000_000_000, 60_000, 1],
        ),
        (
            "sliding window",
            Box::new(|s| sliding.check(s)),
            "sliding",
            include_str!("../redis-state/src/ratelimit/lua/sliding_log.lua"),
            vec![1_000_000, 100, 1],
        ),
        (
            "GCRA",
            Box::new(|s| gcra.check(s)),
            "gcra",
            include_str!("../redis-state/src/ratelimit/lua/gcra.lua"),
            vec![1_000_000_000, 1, 1],
        ),
    ];
    for (label, check, kind, lua, args) in &limiters {
        let sha = redis::Script::new(lua).get_hash().to_owned();
        assert!(check(7).run(&mut con).unwrap().allowed);
        assert_eq!(check(7).key(), format!("ratelimit:{kind}:bench:7"));
        let cmp = compare(
            n,
            |n| {
                for i in 0..n {
                    let d = check(i as u64 % 64).run(&mut con).unwrap();
                    assert!(d.allowed);
                }
            },
            |n| {
                for i in 0..n {
                    // the key is built per call, as hand-written code does
                    let key = format!("ratelimit:{kind}:bench:{}", i % 64);
                    let mut cmd = eval(&sha, &[&key]);
                    for a in args {
                        cmd.arg(*a);
                    }
                    let (allowed, _remaining, _retry, _reset): (i64, i64, i64, i64) =
                        cmd.query(&mut hcon).unwrap();
                    assert_eq!(allowed, 1);
                }
            },
        );
        rows.push(row(
            &format!("rate limit: {label} check"),
            cmp,
            "hand-written EVALSHA of the same script, reply decoded",
            Some(0.95),
        ));
    }

    // The noise floor: the hand-written GCRA check against itself, each side
    // on its own connection like every row above.
    let gcra_sha = redis::Script::new(include_str!("../redis-state/src/ratelimit/lua/gcra.lua"))
        .get_hash()
        .to_owned();
    let hand_check = |con: &mut redis::Connection, n: usize| {
        for i in 0..n {
            let key = format!("ratelimit:gcra:bench:{}", i % 64);
            let (allowed, _, _, _): (i64, i64, i64, i64) = eval(&gcra_sha, &[&key])
                .arg(1_000_000_000)
                .arg(1)
                .arg(1)
                .query(con)
                .unwrap();
            assert_eq!(allowed, 1);
        }
    };
    let cmp = compare(n, |n| hand_check(&mut con, n), |n| hand_check(&mut hcon, n));
    rows.push(row(
        "calibration: hand-written GCRA check",
        cmp,
        "the same code on the other connection (A/A: the noise floor)",
        None,
    ));

    // -- sessions --------------------------------------------------------------
    let store = JsonSessions::<Cart>::new(Duration::from_secs(600));
    let cart = Cart {
        items: vec![1, 2, 3, 4],
        coupon: Some("SPRING".into()),
        theme: "dark".into(),
    };
    let ids: Vec<String> = (0..64)
        .map(|u| {
            store
                .create(u, cart.clone())
                .run(&mut con)
                .unwrap()
                .id
                .into_string()
        })
        .collect();
    assert_eq!(store.key(&ids[0]).unwrap(), format!("session:{}", ids[0]));
    #[derive(Deserialize)]
    struct Doc {
        #[allow(dead_code)]
        user_id: u64,
        created_at: String,
        data: Cart,
    }
    let cmp = compare(
        n,
        |n| {
            for i in 0..n {
                let s = store
                    .get(&ids[i % ids.len()])
                    .run(&mut con)
                    .unwrap()
                    .unwrap();
                assert_eq!(s.data.items.len(), 4);
            }
        },
        |n| {
            for i in 0..n {
                // the key is built per call, as hand-written code does
                let key = format!("session:{}", ids[i % ids.len()]);
                let raw: Vec<u8> = redis::cmd("GETEX")
                    .arg(&key)
                    .arg("PX")
                    .arg(600_000)
                    .query(&mut hcon)
                    .unwrap();
                let doc: Doc = serde_json::from_slice(&raw).unwrap();
                let created =
                    chrono::NaiveDateTime::parse_from_str(&doc.created_at, "%Y-%m-%dT%H:%M:%S%.f")
                        .unwrap();
                assert!(created.and_utc() <= chrono::Utc::now());
                assert_eq!(doc.data.items.len(), 4);
            }
        },
    );
    rows.push(row(
        "session: get (sliding expiry, JSON layout)",
        cmp,
        "hand-written GETEX PX + serde_json + created_at parsed",
        Some(0.95),
    ));

    // -- the same through the async executor --------------------------------------
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut acon = rt.block_on(server.async_connection()).unwrap();
    let mut hacon = rt.block_on(server.async_connection()).unwrap();
    let cmp = compare(
        n,
        |n| {
            rt.block_on(async {
                for _ in 0..n {
                    let guard = lock
                        .try_acquire()
                        .run_async(&mut acon)
                        .await
                        .unwrap()
                        .unwrap();
                    assert!(guard.release().run_async(&mut acon).await.unwrap());
                }
            })
        },
        |n| {
            rt.block_on(async {
                for _ in 0..n {
                    let t = token();
                    let (taken, _): (i64, i64) = eval(&acquire_sha, &[&key, &fence])
                        .arg(&t)
                        .arg(10_000)
                        .query_async(&mut hacon)
                        .await
                        .unwrap();
                    assert_eq!(taken, 1);
                    let released: bool = eval(&release_sha, &[&key])
                        .arg(&t)
                        .query_async(&mut hacon)
                        .await
                        .unwrap();
                    assert!(released);
                }
            })
        },
    );
    rows.push(row(
        "lock: try_acquire + release, async",
        cmp,
        "hand-written async EVALSHA acquire + release",
        Some(0.95),
    ));

    // -- report --------------------------------------------------------------------
    println!();
    println!(
        "{:<45} {:>12} {:>12} {:>7}  baseline",
        "operation", "ours/s", "baseline/s", "ratio"
    );
    let mut failed = false;
    for r in &rows {
        let verdict = match r.pass {
            Some(true) => "ok",
            Some(false) => {
                failed = true;
                "MISS"
            }
            None => "info",
        };
        println!(
            "{:<45} {:>12.0} {:>12.0} {:>6.3}x  {} [{}{}]",
            r.name,
            r.ours,
            r.baseline,
            r.ratio,
            r.baseline_name,
            verdict,
            r.target.map(|t| format!(" ≥ {t}")).unwrap_or_default()
        );
    }
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("coord.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&rows).unwrap()).unwrap();
    println!("\nrows written to {}", path.display());
    if failed {
        println!("some rows missed their target (see above)");
    }
}
