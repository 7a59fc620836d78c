//! Library operations through a connection opened by
//! `redis_state::connect::ConnectionOptions` (timeouts, retries, circuit
//! breaker) beside the same operations on raw redis-rs connections, on the
//! same server, in one run: what the bounds cost.
//!
//! Each comparison alternates the two sides in many short rounds and
//! reports the median of the per-round ratios (`benches/support`). The table
//! is printed and written to `target/bench/connect.json`.
//!
//! ```text
//! cargo bench --bench connect              # full run
//! BENCH_QUICK=1 cargo bench --bench connect  # smoke run (also `cargo test --benches`)
//! ```

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::panic)]

mod support;

use redis_state::connect::ConnectionOptions;
use redis_state::prelude::*;
use support::{Config, Report, Round, Row, Target, alternate, alternate_each, bench_server};

/// Measured rounds per comparison.
const ROUNDS: usize = 41;

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "bench:connect:{id}")]
struct Profile {
    #[redis(id)]
    id: u32,
    name: String,
    score: i64,
    active: bool,
}

fn profile(id: u32) -> Profile {
    Profile {
        id,
        name: format!("user {id}"),
        score: i64::from(id) * 10,
        active: id.is_multiple_of(2),
    }
}

fn main() {
    let cfg = Config::from_args();
    let total: usize = std::env::var("CONNECT_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cfg.scale(40_000, 400));
    let n = (total / ROUNDS).max(1);
    let rounds = cfg.rounds(ROUNDS, 1);
    let server = bench_server();
    let mut report = Report::new("connect", &server, &cfg);
    report.note(format!(
        "{} operations per side and row, in {} rounds of {n}; default ConnectionOptions",
        n * rounds.rounds,
        rounds.rounds
    ));
    let options = ConnectionOptions::new();
    let ids: Vec<u32> = (0..100).collect();

    // -- blocking ---------------------------------------------------------------
    let mut con = options.connect(server.url()).unwrap();
    let mut raw = server.connection();
    Profile::save_many(&ids.iter().map(|&i| profile(i)).collect::<Vec<_>>())
        .run(&mut raw)
        .unwrap();
    let [d, h] = alternate_each(
        &rounds,
        n,
        |i| {
            Profile::load(&(i as u32 % 100))
                .run(&mut con)
                .unwrap()
                .unwrap();
        },
        |i| {
            Profile::load(&(i as u32 % 100))
                .run(&mut raw)
                .unwrap()
                .unwrap();
        },
    );
    report.push(
        Row::new("1", "load, blocking: configured vs redis::Connection", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("the same library operation on a raw redis::Connection"),
    );
    let [d, h] = alternate_each(
        &rounds,
        n,
        |i| {
            profile(i as u32 % 100).save().run(&mut con).unwrap();
        },
        |i| {
            profile(i as u32 % 100).save().run(&mut raw).unwrap();
        },
    );
    report.push(
        Row::new("2", "save, blocking: configured vs redis::Connection", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("the same library operation on a raw redis::Connection"),
    );

    // -- async --------------------------------------------------------------------
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut acon = rt.block_on(options.connect_async(server.url())).unwrap();
    let mut mcon = rt.block_on(server.async_connection());
    let mut manager = rt
        .block_on(server.client().get_connection_manager())
        .unwrap();
    let mut async_pair = |id: &str, name: &str, note: &str, raw: &mut dyn FnMut(usize) -> Round| {
        let [d, h] = alternate(
            &rounds,
            [
                &mut |_| {
                    rt.block_on(Round::each_async(n, async |i| {
                        Profile::load(&(i as u32 % 100))
                            .run_async(&mut acon)
                            .await
                            .unwrap()
                            .unwrap();
                    }))
                },
                raw,
            ],
        );
        report.push(
            Row::new(id, name, &d)
                .hand(&h)
                .target(Target::MinHandRatio(0.95))
                .note(note),
        );
    };
    async_pair(
        "3",
        "load, async: configured vs MultiplexedConnection",
        "the same library operation on a raw MultiplexedConnection",
        &mut |_| {
            rt.block_on(Round::each_async(n, async |i| {
                Profile::load(&(i as u32 % 100))
                    .run_async(&mut mcon)
                    .await
                    .unwrap()
                    .unwrap();
            }))
        },
    );
    async_pair(
        "4",
        "load, async: configured vs ConnectionManager",
        "the same library operation on a raw ConnectionManager (what the configured one wraps)",
        &mut |_| {
            rt.block_on(Round::each_async(n, async |i| {
                Profile::load(&(i as u32 % 100))
                    .run_async(&mut manager)
                    .await
                    .unwrap()
                    .unwrap();
            }))
        },
    );
    let batch: Vec<u32> = (0..10).collect();
    let mut acon2 = rt.block_on(options.connect_async(server.url())).unwrap();
    let mut mcon2 = rt.block_on(server.async_connection());
    let [d, h] = alternate(
        &rounds,
        [
            &mut |_| {
                rt.block_on(Round::each_async(n / 10 + 1, async |_| {
                    Profile::load_many(&batch)
                        .run_async(&mut acon2)
                        .await
                        .unwrap();
                }))
            },
            &mut |_| {
                rt.block_on(Round::each_async(n / 10 + 1, async |_| {
                    Profile::load_many(&batch)
                        .run_async(&mut mcon2)
                        .await
                        .unwrap();
                }))
            },
        ],
    );
    report.push(
        Row::new(
            "5",
            "load_many(10), async: configured vs MultiplexedConnection",
            &d,
        )
        .hand(&h)
        .target(Target::MinHandRatio(0.95))
        .note("one pipeline of 10 HMGET; the configured side copies the plan for a retry"),
    );

    Profile::delete_many(&ids).run(&mut raw).unwrap();
    report.finish();
}
