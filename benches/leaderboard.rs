//! `#[derive(Leaderboard)]` beside hand-written redis-rs on the same server
//! in one run, and `redis-benchmark`'s `ZADD` ceiling.
//!
//! Every comparison alternates the sides in rounds and reports the median of
//! the per-round ratios, so that load from other processes hits both alike
//! (`benches/support`). The table is printed and written to
//! `target/bench/leaderboard.json`.
//!
//! ```text
//! cargo bench --bench leaderboard                # full run, 1,000,000 members
//! BENCH_QUICK=1 cargo bench --bench leaderboard  # smoke run (also `cargo test --benches`)
//! LB_BENCH_MEMBERS=100000 cargo bench --bench leaderboard  # fewer members in the bulk rows
//! ```

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::panic)]

mod support;

use chrono::Utc;
use redis_state::prelude::*;
use support::{
    BenchServer, Ceiling, Config, RedisBenchmark, Report, Round, Row, Target, alternate,
    alternate_each, bench_server,
};

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
    key = "{{bench:rich:{game}}}",
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
#[leaderboard(key = "{{bench:data:{game}}}")]
struct WithData {
    game: u32,
    #[leaderboard(member)]
    player: u64,
    #[leaderboard(score)]
    points: u32,
    name: String,
}

const BATCH: usize = 10_000;

fn main() {
    let cfg = Config::from_args();
    let members: usize = std::env::var("LB_BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cfg.scale(1_000_000, 10_000));
    let server = bench_server();
    flush(&server);
    let mut con = server.connection();
    let mut report = Report::new("leaderboard", &server, &cfg);
    report.note(format!("{members} members in the bulk rows"));

    // -- redis-benchmark's ceiling for single-member ZADD -------------------
    let ceiling = zadd_ceiling(&server, members);

    // -- bulk submit ----------------------------------------------------------
    let plain: Vec<Plain> = (0..members as u64)
        .map(|i| Plain {
            game: 1,
            player: i,
            points: ((i * 7919) % 1_000_000) as u32,
        })
        .collect();
    // Three sides, each round in a rotated order, each on its own connection.
    let bulk = members as u64;
    let (mut single_con, mut variadic_con) = (server.connection(), server.connection());
    let [ours, single, variadic] = alternate(
        &cfg.rounds(5, 0),
        [
            &mut |_| {
                flush(&server);
                Round::whole(bulk, || {
                    for chunk in plain.chunks(BATCH) {
                        Plain::submit_many(chunk).run(&mut con).unwrap();
                    }
                })
            },
            &mut |_| {
                flush(&server);
                Round::whole(bulk, || {
                    for chunk in plain.chunks(BATCH) {
                        let mut pipe = redis::pipe();
                        for e in chunk {
                            pipe.cmd("ZADD")
                                .arg("bench:1")
                                .arg(e.points)
                                .arg(e.player)
                                .ignore();
                        }
                        let () = pipe.query(&mut single_con).unwrap();
                    }
                })
            },
            &mut |_| {
                flush(&server);
                Round::whole(bulk, || {
                    for chunk in plain.chunks(BATCH) {
                        let mut pipe = redis::pipe();
                        for part in chunk.chunks(1000) {
                            let cmd = pipe.cmd("ZADD").arg("bench:1").arg("CH");
                            for e in part {
                                cmd.arg(e.points).arg(e.player);
                            }
                            cmd.ignore();
                        }
                        let () = pipe.query(&mut variadic_con).unwrap();
                    }
                })
            },
        ],
    );
    let name = format!("bulk submit, {members} members, batches of {BATCH}");
    report.push(
        Row::new("1a", &name, &ours)
            .hand(&single)
            .ceiling(ceiling.clone())
            .target(Target::MinHandRatio(0.95))
            .target(Target::MinCeilingRatio(0.8))
            .note("hand-written pipelined ZADD (one member each)"),
    );
    report.push(
        Row::new("1b", &name, &ours)
            .hand(&variadic)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written pipelined variadic ZADD (the same commands)"),
    );

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
    flush(&server);
    let now = Utc::now();
    let [rich_series] = alternate(
        &cfg.rounds(1, 0),
        [&mut |_| {
            Round::whole(rich_n as u64, || {
                for chunk in rich.chunks(BATCH) {
                    Rich::submit_many(chunk).at(now).run(&mut con).unwrap();
                }
            })
        }],
    );
    report.push(
        Row::new(
            "2",
            &format!(
                "bulk submit, {rich_n} members, keep_best + tie-break + member data + daily window"
            ),
            &rich_series,
        )
        .ceiling(ceiling),
    );

    // -- reads, one at a time -------------------------------------------------
    flush(&server);
    let read_n = 100_000u64.min(members as u64);
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
    let mut con2 = server.connection();
    let ops = cfg.scale(2_000, 50);
    let rounds = cfg.rounds(15, 1);
    let board = Plain::board(1u32);
    let member = |i: usize| (i as u64 * 104_729) % read_n;

    let [d, h] = alternate_each(
        &rounds,
        ops,
        |_| {
            let top = board.top(10).run(&mut con).unwrap();
            assert_eq!(top.len(), 10);
        },
        |_| {
            let top: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
                .arg("bench:1")
                .arg(0)
                .arg(9)
                .arg("WITHSCORES")
                .query(&mut con2)
                .unwrap();
            assert_eq!(top.len(), 10);
        },
    );
    report.push(
        Row::new("3", "top 10, one at a time", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written ZREVRANGE 0 9 WITHSCORES"),
    );

    let [d, h] = alternate_each(
        &rounds,
        ops,
        |i| {
            board.rank(&member(i)).run(&mut con).unwrap().unwrap();
        },
        |i| {
            let r: Option<u64> = redis::cmd("ZREVRANK")
                .arg("bench:1")
                .arg(member(i))
                .query(&mut con2)
                .unwrap();
            r.unwrap();
        },
    );
    report.push(
        Row::new("4", "rank, one at a time", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written ZREVRANK"),
    );

    let around = |con: &mut redis::Connection, i: usize| {
        let v = board.around(&member(i), 5).run(con).unwrap().unwrap();
        assert!(!v.is_empty());
    };
    let around_lua = redis::Script::new(
        r"local r = redis.call('ZREVRANK', KEYS[1], ARGV[1])
          if not r then return false end
          local s = math.max(0, r - tonumber(ARGV[2]))
          return {s, redis.call('ZREVRANGE', KEYS[1], s, r + tonumber(ARGV[2]), 'WITHSCORES')}",
    );
    let [d, h] = alternate_each(
        &rounds,
        ops,
        |i| around(&mut con, i),
        |i| {
            let (start, items): (u64, Vec<(String, f64)>) = around_lua
                .key("bench:1")
                .arg(member(i))
                .arg(5)
                .invoke(&mut con2)
                .unwrap();
            assert!(start < read_n && !items.is_empty());
        },
    );
    report.push(
        Row::new("5a", "around-me (5 above and below), one at a time", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written Lua: ZREVRANK + ZREVRANGE (1 round trip)"),
    );
    let [d, h] = alternate_each(
        &rounds,
        ops,
        |i| around(&mut con, i),
        |i| {
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
        },
    );
    report.push(
        Row::new("5b", "around-me (5 above and below), one at a time", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written ZREVRANK, then ZREVRANGE (2 round trips)"),
    );

    let data_board = WithData::board(1u32);
    let top_data_lua = redis::Script::new(
        r"local items = redis.call('ZREVRANGE', KEYS[1], 0, 9, 'WITHSCORES')
          local members = {}
          for i = 1, #items, 2 do members[#members + 1] = items[i] end
          return {items, redis.call('HMGET', KEYS[2], unpack(members))}",
    );
    let [d, h] = alternate_each(
        &rounds,
        ops,
        |_| {
            let top = data_board.top(10).run(&mut con).unwrap();
            assert!(top[9].data.is_some());
        },
        |_| {
            let (items, data): (Vec<(String, f64)>, Vec<Option<String>>) = top_data_lua
                .key("{bench:data:1}")
                .key("{bench:data:1}:#data")
                .invoke(&mut con2)
                .unwrap();
            let parsed: Vec<serde_json::Value> = data
                .iter()
                .map(|d| serde_json::from_str(d.as_deref().unwrap()).unwrap())
                .collect();
            assert_eq!((items.len(), parsed.len()), (10, 10));
        },
    );
    report.push(
        Row::new("6", "top 10 with member data, one at a time", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written Lua: ZREVRANGE + HMGET, JSON parsed"),
    );

    let cboard = Competition::board(1u32);
    let competition_lua = redis::Script::new(
        r"local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
          if not s then return false end
          return redis.call('ZCOUNT', KEYS[1], '(' .. s, '+inf') + 1",
    );
    let [d, h] = alternate_each(
        &rounds,
        ops,
        |i| {
            cboard.rank(&member(i)).run(&mut con).unwrap().unwrap();
        },
        |i| {
            let r: Option<u64> = competition_lua
                .key("bench:1")
                .arg(member(i))
                .invoke(&mut con2)
                .unwrap();
            r.unwrap();
        },
    );
    report.push(
        Row::new("7", "competition rank, one at a time", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written Lua: ZSCORE + ZCOUNT"),
    );

    let mut next = read_n;
    let mut next2 = read_n + 1_000_000;
    let [d, h] = alternate_each(
        &rounds,
        ops,
        |_| {
            next += 1;
            let e = Plain {
                game: 2,
                player: next,
                points: (next % 1000) as u32,
            };
            e.submit().run(&mut con).unwrap();
        },
        |_| {
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
        },
    );
    report.push(
        Row::new(
            "8",
            "submit one entry, returning score and rank, one at a time",
            &d,
        )
        .hand(&h)
        .note("hand-written pipeline ZADD + ZREVRANK (not atomic); for reference"),
    );

    flush(&server);
    report.finish();
}

/// Removes the benchmark's keys (`FLUSHALL` on the private server).
fn flush(server: &BenchServer) {
    server.clear(&["bench:*", "{bench:*"]);
}

/// `redis-benchmark`'s single-member `ZADD` (the command its `-t zadd` test
/// sends, on a key of the benchmark's own) at a few client / pipeline
/// settings; the best rate is the ceiling.
fn zadd_ceiling(server: &BenchServer, n: usize) -> Result<Ceiling, String> {
    let mut best: Option<Ceiling> = None;
    for (clients, pipeline) in [(1, 100), (4, 64), (8, 32)] {
        let c = RedisBenchmark::new(server)
            .clients(clients)
            .pipeline(pipeline)
            .requests(n as u64)
            .keyspace(n as u64)
            .run(&[
                "ZADD",
                "bench:rb:zset",
                "__rand_int__",
                "element:__rand_int__",
            ])?;
        if best.as_ref().is_none_or(|b| c.ops_per_sec > b.ops_per_sec) {
            best = Some(c);
        }
    }
    best.ok_or_else(|| "no redis-benchmark run".to_owned())
}
