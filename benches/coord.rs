//! The coordination primitives beside hand-written redis-rs code that sends
//! the same commands, on the same server, in one run: lock acquire +
//! release, rate-limiter checks, session reads, plain values and counters.
//!
//! Each comparison alternates the two sides in many short rounds and
//! reports the median of the per-round ratios, so that load from other
//! processes hits both sides of a round alike (`benches/support`). The table
//! is printed and written to `target/bench/coord.json`.
//!
//! ```text
//! cargo bench --bench coord              # full run
//! BENCH_QUICK=1 cargo bench --bench coord  # smoke run (also `cargo test --benches`)
//! COORD_BENCH_OPS=4000 cargo bench --bench coord  # fewer operations per side and row
//! ```
//!
//! `COORD_BENCH_OPS` sets the operations per side and row (default 40,000
//! in a full run), spread over 41 rounds.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use redis_state::lock::Lock;
use redis_state::prelude::*;
use redis_state::ratelimit::{FixedWindow, Gcra, SlidingWindow};
use redis_state::session::JsonSessions;
use redis_state::value::{Counter, StringValue};
use serde::{Deserialize, Serialize};
use support::{Config, Report, Round, Row, Target, alternate, alternate_each, bench_server};

/// Measured rounds per comparison.
const ROUNDS: usize = 41;

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
    let cfg = Config::from_args();
    let total: usize = std::env::var("COORD_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cfg.scale(40_000, 400));
    // Operations per side and round; one round of each side to warm up.
    let n = (total / ROUNDS).max(1);
    let rounds = cfg.rounds(ROUNDS, 1);
    let server = bench_server();
    // One connection per side, to the same server.
    let mut con = server.connection();
    let mut hcon = server.connection();
    let mut report = Report::new("coord", &server, &cfg);
    report.note(format!(
        "{} operations per side and row, in {} rounds of {n}",
        n * rounds.rounds,
        rounds.rounds
    ));

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
    let lock_cycle = |con: &mut redis::Connection| {
        let guard = lock.try_acquire().run(con).unwrap().unwrap();
        assert!(guard.release().run(con).unwrap());
    };
    let [d, h] = alternate_each(
        &rounds,
        n,
        |_| lock_cycle(&mut con),
        |_| {
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
        },
    );
    report.push(
        Row::new("1a", "lock: try_acquire + release (fenced)", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written EVALSHA acquire + EVALSHA release, same scripts"),
    );
    // For reference: the unfenced lock most code writes by hand.
    let [d, h] = alternate_each(
        &rounds,
        n,
        |_| lock_cycle(&mut con),
        |_| {
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
        },
    );
    report.push(
        Row::new("1b", "lock: try_acquire + release (fenced)", &d)
            .hand(&h)
            .note("hand-written SET NX PX + EVALSHA release (no fencing token); for reference"),
    );

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
    for ((label, check, kind, lua, args), id) in limiters.iter().zip(["2a", "2b", "2c"]) {
        let sha = redis::Script::new(lua).get_hash().to_owned();
        assert!(check(7).run(&mut con).unwrap().allowed);
        assert_eq!(check(7).key(), format!("ratelimit:{kind}:bench:7"));
        let [d, h] = alternate_each(
            &rounds,
            n,
            |i| {
                let d = check(i as u64 % 64).run(&mut con).unwrap();
                assert!(d.allowed);
            },
            |i| {
                // the key is built per call, as hand-written code does
                let key = format!("ratelimit:{kind}:bench:{}", i % 64);
                let mut cmd = eval(&sha, &[&key]);
                for a in args {
                    cmd.arg(*a);
                }
                let (allowed, _remaining, _retry, _reset): (i64, i64, i64, i64) =
                    cmd.query(&mut hcon).unwrap();
                assert_eq!(allowed, 1);
            },
        );
        report.push(
            Row::new(id, &format!("rate limit: {label} check"), &d)
                .hand(&h)
                .target(Target::MinHandRatio(0.95))
                .note("hand-written EVALSHA of the same script, reply decoded"),
        );
    }

    // The fixed window counting every request, at the conventional key.
    let all = FixedWindow::new("bench", 1_000_000_000_000, Duration::from_secs(60))
        .count_all_requests()
        .verbatim_keys("bench:rate_limit:");
    let all_sha = redis::Script::new(include_str!(
        "../redis-state/src/ratelimit/lua/fixed_window_all.lua"
    ))
    .get_hash()
    .to_owned();
    assert!(all.check(7u64).run(&mut con).unwrap().allowed);
    let [d, h] = alternate_each(
        &rounds,
        n,
        |i| {
            let d = all.check(i as u64 % 64).run(&mut con).unwrap();
            assert!(d.allowed);
        },
        |i| {
            let key = format!("bench:rate_limit:{}", i % 64);
            let (allowed, _, _, _): (i64, i64, i64, i64) = eval(&all_sha, &[&key])
                .arg(1_000_000_000_000u64)
                .arg(60_000)
                .arg(1)
                .query(&mut hcon)
                .unwrap();
            assert_eq!(allowed, 1);
        },
    );
    report.push(
        Row::new("2d", "rate limit: fixed window counting every request", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("verbatim key rate_limit:<id>; hand-written EVALSHA of the same script"),
    );

    // The noise floor: the hand-written GCRA check against itself, each side
    // on its own connection like every row above.
    let gcra_sha = redis::Script::new(include_str!("../redis-state/src/ratelimit/lua/gcra.lua"))
        .get_hash()
        .to_owned();
    let hand_check = |con: &mut redis::Connection, i: usize| {
        let key = format!("ratelimit:gcra:bench:{}", i % 64);
        let (allowed, _, _, _): (i64, i64, i64, i64) = eval(&gcra_sha, &[&key])
            .arg(1_000_000_000)
            .arg(1)
            .arg(1)
            .query(con)
            .unwrap();
        assert_eq!(allowed, 1);
    };
    let [d, h] = alternate_each(
        &rounds,
        n,
        |i| hand_check(&mut con, i),
        |i| hand_check(&mut hcon, i),
    );
    report.push(
        Row::new("3", "calibration: hand-written GCRA check", &d)
            .hand(&h)
            .note("the same code on the other connection (A/A: the noise floor)"),
    );

    // -- sessions --------------------------------------------------------------
    let store = JsonSessions::<Cart>::new(Duration::from_secs(600));
    let cart = Cart {
        items: vec![1, 2, 3, 4],
        coupon: Some("SPRING".into()),
        theme: "dark".into(),
    };
    let users = 0..64u64;
    let ids: Vec<String> = users
        .clone()
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
    let [d, h] = alternate_each(
        &rounds,
        n,
        |i| {
            let s = store
                .get(&ids[i % ids.len()])
                .run(&mut con)
                .unwrap()
                .unwrap();
            assert_eq!(s.data.items.len(), 4);
        },
        |i| {
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
        },
    );
    report.push(
        Row::new("4", "session: get (sliding expiry, JSON layout)", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written GETEX PX + serde_json + created_at parsed"),
    );

    // -- plain values and counters ---------------------------------------------
    let values: Vec<StringValue<u64>> = (0..64)
        .map(|i| StringValue::new(format!("bench:value:{i}")))
        .collect();
    for (i, v) in values.iter().enumerate() {
        v.set(&(i as u64)).run(&mut con).unwrap();
    }
    let [d, h] = alternate_each(
        &rounds,
        n,
        |i| {
            let got = values[i % 64].get().run(&mut con).unwrap();
            assert_eq!(got, Some((i % 64) as u64));
        },
        |i| {
            let key = format!("bench:value:{}", i % 64);
            let raw: Option<String> = redis::cmd("GET").arg(&key).query(&mut hcon).unwrap();
            let got: Option<u64> = raw.map(|r| r.parse().unwrap());
            assert_eq!(got, Some((i % 64) as u64));
        },
    );
    report.push(
        Row::new("6a", "value: get (u64 as plain text)", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written GET + parse"),
    );
    let [d, h] = alternate_each(
        &rounds,
        n,
        |i| {
            values[i % 64]
                .set(&(i as u64))
                .ttl(Duration::from_secs(600))
                .run(&mut con)
                .unwrap();
        },
        |i| {
            let key = format!("bench:value:{}", i % 64);
            let () = redis::cmd("SET")
                .arg(&key)
                .arg(i as u64)
                .arg("PX")
                .arg(600_000)
                .query(&mut hcon)
                .unwrap();
        },
    );
    report.push(
        Row::new("6b", "value: set with a TTL", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written SET PX"),
    );
    let [d, h] = alternate_each(
        &rounds,
        n,
        |i| {
            let found = values[i % 64]
                .get_or_set(&7)
                .ttl(Duration::from_secs(600))
                .run(&mut con)
                .unwrap();
            assert!(found.is_some());
        },
        |i| {
            let key = format!("bench:value:{}", i % 64);
            let found: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(7)
                .arg("NX")
                .arg("GET")
                .arg("PX")
                .arg(600_000)
                .query(&mut hcon)
                .unwrap();
            let found: Option<u64> = found.map(|r| r.parse().unwrap());
            assert!(found.is_some());
        },
    );
    report.push(
        Row::new("6c", "value: get-or-set", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written SET NX GET PX + parse"),
    );
    let counters: Vec<Counter<i64>> = (0..64)
        .map(|i| Counter::new(format!("bench:counter:{i}")))
        .collect();
    let [d, h] = alternate_each(
        &rounds,
        n,
        |i| {
            assert!(counters[i % 64].incr(1).run(&mut con).unwrap() > 0);
        },
        |i| {
            let key = format!("bench:counter:{}", i % 64);
            let n: i64 = redis::cmd("INCRBY")
                .arg(&key)
                .arg(1)
                .query(&mut hcon)
                .unwrap();
            assert!(n > 0);
        },
    );
    report.push(
        Row::new("6d", "counter: incr", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written INCRBY"),
    );
    let incr_sha = redis::Script::new(include_str!(
        "../redis-state/src/value/lua/incr_with_ttl.lua"
    ))
    .get_hash()
    .to_owned();
    counters[0]
        .incr(1)
        .ttl(Duration::from_secs(600))
        .run(&mut con)
        .unwrap();
    let [d, h] = alternate_each(
        &rounds,
        n,
        |i| {
            let n = counters[i % 64]
                .incr(1)
                .ttl(Duration::from_secs(600))
                .run(&mut con)
                .unwrap();
            assert!(n > 0);
        },
        |i| {
            let key = format!("bench:counter:{}", i % 64);
            let n: i64 = eval(&incr_sha, &[&key])
                .arg("INCRBY")
                .arg(1)
                .arg(600_000)
                .query(&mut hcon)
                .unwrap();
            assert!(n > 0);
        },
    );
    report.push(
        Row::new("6e", "counter: incr, TTL when new (atomic)", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written EVALSHA of the same script"),
    );
    let [d, h] = alternate_each(
        &rounds,
        n,
        |i| {
            let n = counters[i % 64]
                .incr(1)
                .ttl(Duration::from_secs(600))
                .run(&mut con)
                .unwrap();
            assert!(n > 0);
        },
        |i| {
            let key = format!("bench:counter:{}", i % 64);
            let (n, _): (i64, i64) = redis::pipe()
                .cmd("INCRBY")
                .arg(&key)
                .arg(1)
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(600_000)
                .arg("NX")
                .query(&mut hcon)
                .unwrap();
            assert!(n > 0);
        },
    );
    report.push(
        Row::new("6f", "counter: incr, TTL when new (atomic)", &d)
            .hand(&h)
            .note("hand-written pipeline INCRBY + PEXPIRE NX (not atomic); for reference"),
    );

    // -- the same through the async executor --------------------------------------
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut acon = rt.block_on(server.async_connection());
    let mut hacon = rt.block_on(server.async_connection());
    let [d, h] = alternate(
        &rounds,
        [
            &mut |_| {
                rt.block_on(Round::each_async(n, async |_| {
                    let guard = lock
                        .try_acquire()
                        .run_async(&mut acon)
                        .await
                        .unwrap()
                        .unwrap();
                    assert!(guard.release().run_async(&mut acon).await.unwrap());
                }))
            },
            &mut |_| {
                rt.block_on(Round::each_async(n, async |_| {
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
                }))
            },
        ],
    );
    report.push(
        Row::new("5", "lock: try_acquire + release, async", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written async EVALSHA acquire + release"),
    );

    // The benchmark's keys (they matter on a REDIS_URL server only).
    for u in users {
        store.delete_all_for_user(&u).run(&mut con).unwrap();
    }
    server.clear(&[
        "lock:{bench}*",
        "bench:plain",
        "ratelimit:*:bench:*",
        "bench:rate_limit:*",
        "bench:value:*",
        "bench:counter:*",
    ]);
    report.finish();
}
