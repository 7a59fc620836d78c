//! `#[derive(Leaderboard)]` beside hand-written redis-rs on the same private
//! server in one run, and `redis-benchmark`'s `ZADD` ceiling.
//!
//! Every comparison alternates the two sides in rounds and compares the
//! median rates, so that load from other processes hits both alike. Rows are
//! printed and written to `target/bench/leaderboard.json`.
//!
//! `cargo bench --bench leaderboard` (set `LB_BENCH_MEMBERS` to bulk-load
//! fewer than 1,000,000 members for a quick run).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::panic)]

use std::process::Command;
use std::time::Instant;

use chrono::Utc;
use redis::Value;
use redis_state::prelude::*;
use redis_state::testing::RedisServer;

/// The model of the bulk and read rows: one sorted set, `ZADD` semantics.
#[derive(Leaderboard, Debug, Clone)]
#[leaderboard(key = "bench:{game}")]
struct Plain {
    game: u32,
    #[leaderboard(member)]
    player: u64,
    #[leaderboard(score)]
    points: u32,
}

/// The same board with competition ranks (server-side `ZCOUNT`).
#[derive(Leaderboard, Debug, Clone)]
#[leaderboard(key = "bench:{game}", rank = "competition")]
struct Competition {
    game: u32,
    #[leaderboard(member)]
    player: u64,
    #[leaderboard(score)]
    points: u32,
}

/// Everything on: keep-best, tie-break, member data, a daily window.
#[derive(Leaderboard, Debug, Clone)]
#[leaderboard(
    key = "{{rich:{game}}}",
    update = "keep_best",
    rank = "competition",
    tie_break = "earlier",
    max_score = 1_000_000,
    windows(daily = "2d")
)]
struct Rich {
    game: u32,
    #[leaderboard(member)]
    player: u64,
    #[leaderboard(score)]
    points: u32,
    name: String,
}

/// The hand-written read board, with member data in a hash beside it.
#[derive(Leaderboard, Debug, Clone)]
#[leaderboard(key = "{{data:{game}}}")]
struct WithData {
    game: u32,
    #[leaderboard(member)]
    player: u64,
    #[leaderboard(score)]
    points: u32,
    name: String,
}

const BATCH: usize = 10_000;
const ROUNDS: usize = 15;

#[derive(Debug)]
struct Row {
    name: String,
    unit: &'static str,
    ours: f64,
    baseline_name: String,
    baseline: f64,
    target: Option<f64>,
    /// The median of per-round ratios, when the sides ran in paired rounds.
    paired: Option<f64>,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.paired.unwrap_or(self.ours / self.baseline)
    }
    fn pass(&self) -> Option<bool> {
        self.target.map(|t| self.ratio() >= t)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Alternates `a` and `b` for `ROUNDS` rounds of `n` operations each (the
/// order swapped every round); returns the median rate of each side and the
/// median of the per-round ratios `a / b`, which load from other processes
/// affects least.
fn compare(n: usize, mut a: impl FnMut(usize), mut b: impl FnMut(usize)) -> (f64, f64, f64) {
    // Warm up both (scripts loaded, connections hot).
    a(n.min(200));
    b(n.min(200));
    let (mut ra, mut rb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let time = |f: &mut dyn FnMut(usize)| {
            let t = Instant::now();
            f(n);
            n as f64 / t.elapsed().as_secs_f64()
        };
        let (x, y) = if round % 2 == 0 {
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

fn main() {
    let members: usize = std::env::var("LB_BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let server = RedisServer::builder()
        .config("save", "")
        .config("appendonly", "no")
        .start()
        .unwrap();
    let mut con = server.connection().unwrap();
    println!(
        "leaderboard benchmark: private redis-server on port {}, {members} members, load average {}",
        server.port(),
        load_average()
    );
    let mut rows = Vec::new();

    // -- redis-benchmark's ceiling for single-member ZADD -------------------
    let ceiling = ceiling(server.port(), members);
    println!("redis-benchmark ZADD ceiling: {ceiling:.0}/s");

    // -- bulk submit ----------------------------------------------------------
    let plain: Vec<Plain> = (0..members as u64)
        .map(|i| Plain {
            game: 1,
            player: i,
            points: ((i * 7919) % 1_000_000) as u32,
        })
        .collect();
    // Three sides, each round in a rotated order; the ratios are the medians
    // of the per-round ratios.
    let bulk_rounds = 5;
    let mut sides: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..bulk_rounds {
        for k in 0..3 {
            let side = (round + k) % 3;
            flush(&mut con);
            let t = Instant::now();
            match side {
                0 => {
                    for chunk in plain.chunks(BATCH) {
                        Plain::submit_many(chunk).run(&mut con).unwrap();
                    }
                }
                1 => {
                    for chunk in plain.chunks(BATCH) {
                        let mut pipe = redis::pipe();
                        for e in chunk {
                            pipe.cmd("ZADD")
                                .arg("bench:1")
                                .arg(e.points)
                                .arg(e.player)
                                .ignore();
                        }
                        let () = pipe.query(&mut con).unwrap();
                    }
                }
                _ => {
                    for chunk in plain.chunks(BATCH) {
                        let mut pipe = redis::pipe();
                        for part in chunk.chunks(1000) {
                            let cmd = pipe.cmd("ZADD").arg("bench:1").arg("CH");
                            for e in part {
                                cmd.arg(e.points).arg(e.player);
                            }
                            cmd.ignore();
                        }
                        let () = pipe.query(&mut con).unwrap();
                    }
                }
            }
            sides[side].push(members as f64 / t.elapsed().as_secs_f64());
        }
    }
    let paired = |i: usize| median(sides[0].iter().zip(&sides[i]).map(|(a, b)| a / b).collect());
    let (single_ratio, variadic_ratio) = (paired(1), paired(2));
    let [ours, single, variadic] = sides.map(median);
    let bulk = format!("bulk submit, {members} members, batches of {BATCH}");
    rows.push(Row {
        name: bulk.clone(),
        unit: "members/s",
        ours,
        baseline_name: "hand-written pipelined ZADD (one member each)".into(),
        baseline: single,
        target: Some(0.95),
        paired: Some(single_ratio),
    });
    rows.push(Row {
        name: bulk.clone(),
        unit: "members/s",
        ours,
        baseline_name: "hand-written pipelined variadic ZADD (the same commands)".into(),
        baseline: variadic,
        target: Some(0.95),
        paired: Some(variadic_ratio),
    });
    rows.push(Row {
        name: bulk,
        unit: "members/s",
        ours,
        baseline_name: "redis-benchmark ZADD ceiling (ZADD/s)".into(),
        baseline: ceiling,
        target: Some(0.8),
        paired: None,
    });

    // Everything on: each member is one Lua call's worth of work on 3 keys.
    let rich_n = members / 4;
    let rich: Vec<Rich> = (0..rich_n as u64)
        .map(|i| Rich {
            game: 1,
            player: i,
            points: ((i * 7919) % 1_000_000) as u32,
            name: format!("player {i}"),
        })
        .collect();
    flush(&mut con);
    let now = Utc::now();
    let t = Instant::now();
    for chunk in rich.chunks(BATCH) {
        Rich::submit_many(chunk).at(now).run(&mut con).unwrap();
    }
    let rich_rate = rich_n as f64 / t.elapsed().as_secs_f64();
    rows.push(Row {
        name: format!(
            "bulk submit, {rich_n} members, keep_best + tie-break + member data + daily window"
        ),
        unit: "members/s",
        ours: rich_rate,
        baseline_name: "redis-benchmark ZADD ceiling (ZADD/s)".into(),
        baseline: ceiling,
        target: None,
        paired: None,
    });

    // -- reads, one at a time -------------------------------------------------
    flush(&mut con);
    let read_n = 100_000u64;
    for chunk in plain[..read_n as usize].chunks(BATCH) {
        Plain::submit_many(chunk).run(&mut con).unwrap();
    }
    let with_data: Vec<WithData> = (0..read_n)
        .map(|i| WithData {
            game: 1,
            player: i,
            points: ((i * 7919) % 1_000_000) as u32,
            name: format!("player {i}"),
        })
        .collect();
    for chunk in with_data.chunks(BATCH) {
        WithData::submit_many(chunk).run(&mut con).unwrap();
    }
    let mut con2 = server.connection().unwrap();
    let ops = 2_000;
    let board = Plain::board(1u32);
    let member = |i: usize| (i as u64 * 104_729) % read_n;

    let c = compare(
        ops,
        |n| {
            for _ in 0..n {
                let top = board.top(10).run(&mut con).unwrap();
                assert_eq!(top.len(), 10);
            }
        },
        |n| {
            for _ in 0..n {
                let top: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
                    .arg("bench:1")
                    .arg(0)
                    .arg(9)
                    .arg("WITHSCORES")
                    .query(&mut con2)
                    .unwrap();
                assert_eq!(top.len(), 10);
            }
        },
    );
    rows.push(read_row(
        "top 10",
        c,
        "hand-written ZREVRANGE 0 9 WITHSCORES",
        Some(0.95),
    ));

    let c = compare(
        ops,
        |n| {
            for i in 0..n {
                board.rank(&member(i)).run(&mut con).unwrap().unwrap();
            }
        },
        |n| {
            for i in 0..n {
                let r: Option<u64> = redis::cmd("ZREVRANK")
                    .arg("bench:1")
                    .arg(member(i))
                    .query(&mut con2)
                    .unwrap();
                r.unwrap();
            }
        },
    );
    rows.push(read_row("rank", c, "hand-written ZREVRANK", Some(0.95)));

    let around_lua = redis::Script::new(
        r"local r = redis.call('ZREVRANK', KEYS[1], ARGV[1])
          if not r then return false end
          local s = math.max(0, r - tonumber(ARGV[2]))
          return {s, redis.call('ZREVRANGE', KEYS[1], s, r + tonumber(ARGV[2]), 'WITHSCORES')}",
    );
    let c = compare(
        ops,
        |n| {
            for i in 0..n {
                let v = board.around(&member(i), 5).run(&mut con).unwrap().unwrap();
                assert!(!v.is_empty());
            }
        },
        |n| {
            for i in 0..n {
                let (start, items): (u64, Vec<(String, f64)>) = around_lua
                    .key("bench:1")
                    .arg(member(i))
                    .arg(5)
                    .invoke(&mut con2)
                    .unwrap();
                assert!(start < read_n && !items.is_empty());
            }
        },
    );
    rows.push(read_row(
        "around-me (5 above and below)",
        c,
        "hand-written Lua: ZREVRANK + ZREVRANGE (1 round trip)",
        Some(0.95),
    ));
    let c = compare(
        ops,
        |n| {
            for i in 0..n {
                let v = board.around(&member(i), 5).run(&mut con).unwrap().unwrap();
                assert!(!v.is_empty());
            }
        },
        |n| {
            for i in 0..n {
                let r: u64 = redis::cmd("ZREVRANK")
                    .arg("bench:1")
                    .arg(member(i))
                    .query(&mut con2)
                    .unwrap();
                let items: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
                    .arg("bench:1")
                    .arg(r.saturating_sub(5))
                    .arg(r + 5)
                    .arg("WITHSCORES")
                    .query(&mut con2)
                    .unwrap();
                assert!(!items.is_empty());
            }
        },
    );
    rows.push(read_row(
        "around-me (5 above and below)",
        c,
        "hand-written ZREVRANK, then ZREVRANGE (2 round trips)",
        Some(0.95),
    ));

    let data_board = WithData::board(1u32);
    let top_data_lua = redis::Script::new(
        r"local items = redis.call('ZREVRANGE', KEYS[1], 0, 9, 'WITHSCORES')
          local members = {}
          for i = 1, #items, 2 do members[#members + 1] = items[i] end
          return {items, redis.call('HMGET', KEYS[2], unpack(members))}",
    );
    let c = compare(
        ops,
        |n| {
            for _ in 0..n {
                let top = data_board.top(10).run(&mut con).unwrap();
                assert!(top[9].data.is_some());
            }
        },
        |n| {
            for _ in 0..n {
                let (items, data): (Vec<(String, f64)>, Vec<Option<String>>) = top_data_lua
                    .key("{data:1}")
                    .key("{data:1}:#data")
                    .invoke(&mut con2)
                    .unwrap();
                let parsed: Vec<serde_json::Value> = data
                    .iter()
                    .map(|d| serde_json::from_str(d.as_deref().unwrap()).unwrap())
                    .collect();
                assert_eq!((items.len(), parsed.len()), (10, 10));
            }
        },
    );
    rows.push(read_row(
        "top 10 with member data",
        c,
        "hand-written Lua: ZREVRANGE + HMGET, JSON parsed",
        Some(0.95),
    ));

    let cboard = Competition::board(1u32);
    let competition_lua = redis::Script::new(
        r"local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
          if not s then return false end
          return redis.call('ZCOUNT', KEYS[1], '(' .. s, '+inf') + 1",
    );
    let c = compare(
        ops,
        |n| {
            for i in 0..n {
                cboard.rank(&member(i)).run(&mut con).unwrap().unwrap();
            }
        },
        |n| {
            for i in 0..n {
                let r: Option<u64> = competition_lua
                    .key("bench:1")
                    .arg(member(i))
                    .invoke(&mut con2)
                    .unwrap();
                r.unwrap();
            }
        },
    );
    rows.push(read_row(
        "competition rank",
        c,
        "hand-written Lua: ZSCORE + ZCOUNT",
        Some(0.95),
    ));

    let mut next = read_n;
    let mut next2 = read_n + 1_000_000;
    let c = compare(
        ops,
        |n| {
            for _ in 0..n {
                next += 1;
                let e = Plain {
                    game: 2,
                    player: next,
                    points: (next % 1000) as u32,
                };
                e.submit().run(&mut con).unwrap();
            }
        },
        |n| {
            for _ in 0..n {
                next2 += 1;
                let (_, rank): (i64, Option<u64>) = redis::pipe()
                    .cmd("ZADD")
                    .arg("bench:3")
                    .arg(next2 % 1000)
                    .arg(next2)
                    .cmd("ZREVRANK")
                    .arg("bench:3")
                    .arg(next2)
                    .query(&mut con2)
                    .unwrap();
                rank.unwrap();
            }
        },
    );
    rows.push(read_row(
        "submit one entry, returning score and rank",
        c,
        "hand-written pipeline ZADD + ZREVRANK (not atomic)",
        None,
    ));

    report(&rows);
}

fn read_row(
    name: &str,
    (ours, baseline, paired): (f64, f64, f64),
    base: &str,
    target: Option<f64>,
) -> Row {
    Row {
        name: format!("{name}, one at a time"),
        unit: "ops/s",
        ours,
        baseline_name: base.into(),
        baseline,
        target,
        paired: Some(paired),
    }
}

fn flush(con: &mut redis::Connection) {
    let _: Value = redis::cmd("FLUSHALL").query(con).unwrap();
}

/// `redis-benchmark -t zadd` on the server, at a few client / pipeline
/// settings; the best rate is the ceiling.
fn ceiling(port: u16, n: usize) -> f64 {
    let mut best: f64 = 0.0;
    for (clients, pipeline) in [(1, 100), (4, 64), (8, 32)] {
        let out = Command::new("redis-benchmark")
            .args(["-p", &port.to_string(), "-t", "zadd", "--csv"])
            .args(["-n", &n.to_string(), "-r", &n.to_string()])
            .args(["-c", &clients.to_string(), "-P", &pipeline.to_string()])
            .output()
            .unwrap_or_else(|e| {
                panic!("redis-benchmark could not run ({e}); install it with the redis tools (./scripts/ensure-redis)")
            });
        let text = String::from_utf8_lossy(&out.stdout);
        let rate = text
            .lines()
            .filter(|l| l.starts_with("\"ZADD"))
            .filter_map(|l| l.split(',').nth(1)?.trim_matches('"').parse::<f64>().ok())
            .next()
            .unwrap_or_else(|| panic!("unexpected redis-benchmark output: {text}"));
        best = best.max(rate);
    }
    best
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn report(rows: &[Row]) {
    println!();
    println!(
        "| {:<72} | {:>12} | {:<58} | {:>12} | {:>6} | {:>6} |",
        "row", "ours", "baseline", "baseline/s", "ratio", "target"
    );
    println!("|{}|", "-".repeat(186));
    for r in rows {
        let target = match (r.target, r.pass()) {
            (Some(t), Some(true)) => format!(">={t} ok"),
            (Some(t), _) => format!(">={t} MISS"),
            (None, _) => "-".into(),
        };
        println!(
            "| {:<72} | {:>12.0} | {:<58} | {:>12.0} | {:>6.2} | {:>6} |",
            r.name,
            r.ours,
            r.baseline_name,
            r.baseline,
            r.ratio(),
            target
        );
    }
    let json: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "bench": "leaderboard",
                "row": r.name,
                "unit": r.unit,
                "ours": r.ours,
                "baseline": r.baseline_name,
                "baseline_rate": r.baseline,
                "ratio": r.ratio(),
                "target": r.target,
                "pass": r.pass(),
                "load_average": load_average(),
            })
        })
        .collect();
    let dir = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("leaderboard.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("\nrows written to {}", path.display());
}
