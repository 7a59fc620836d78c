//! Feeds, time windows, tag sets and presence beside hand-written redis-rs
//! code that sends the same commands (the seeds' commands, pipelined in
//! one round trip, or the same script), on the same server, in one run.
//!
//! Each comparison alternates the two sides in many short rounds and
//! reports the median of the per-round ratios (`benches/support`). The
//! table is printed and written to `target/bench/collections.json`.
//!
//! ```text
//! cargo bench --bench collections              # full run
//! BENCH_QUICK=1 cargo bench --bench collections  # smoke run (also `cargo test --benches`)
//! COLLECTIONS_BENCH_OPS=4000 cargo bench --bench collections  # fewer operations per side and row
//! ```

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis_state::collections::{Feed, Presence, TagSet, TimeWindow};
use redis_state::prelude::*;
use serde::{Deserialize, Serialize};
use support::{Config, Report, Row, Target, alternate_each, bench_server};

/// Measured rounds per comparison.
const ROUNDS: usize = 41;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Activity {
    action: String,
    post_id: u64,
    at: String,
}

fn activity(i: usize) -> Activity {
    Activity {
        action: "like".to_owned(),
        post_id: i as u64,
        at: "2026-12-03T19:45:18.123456".to_owned(),
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn eval(sha: &str, keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(sha).arg(keys.len());
    for k in keys {
        cmd.arg(*k);
    }
    cmd
}

fn main() {
    let cfg = Config::from_args();
    let total: usize = std::env::var("COLLECTIONS_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cfg.scale(40_000, 400));
    let n = (total / ROUNDS).max(1);
    let rounds = cfg.rounds(ROUNDS, 1);
    let server = bench_server();
    let mut con = server.connection();
    let mut hcon = server.connection();
    let mut report = Report::new("collections", &server, &cfg);
    report.note(format!(
        "{} operations per side and row, in {} rounds of {n}",
        n * rounds.rounds,
        rounds.rounds
    ));

    // -- feeds -----------------------------------------------------------------
    let feed = Feed::<Activity>::new("bench", 100)
        .ttl(Duration::from_secs(604_800))
        .key_layout("bench:feed:", "");
    if cfg.wants("1") {
        let [d, h] = alternate_each(
            &rounds,
            n,
            |i| {
                let len = feed.push(i % 64, &activity(i)).run(&mut con).unwrap();
                assert!(len > 0);
            },
            |i| {
                let key = format!("bench:hfeed:{}", i % 64);
                let entry = serde_json::to_vec(&activity(i)).unwrap();
                let (len, (), _): (u64, (), bool) = redis::pipe()
                    .cmd("LPUSH")
                    .arg(&key)
                    .arg(entry)
                    .cmd("LTRIM")
                    .arg(&key)
                    .arg(0)
                    .arg(99)
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(604_800_000)
                    .query(&mut hcon)
                    .unwrap();
                assert!(len > 0);
            },
        );
        report.push(
            Row::new("1a", "feed: push (trim, TTL; atomic)", &d)
                .hand(&h)
                .target(Target::MinHandRatio(0.95))
                .note("hand-written pipeline LPUSH + LTRIM + PEXPIRE (the seed's commands, not atomic)"),
        );
        let push_sha = redis::Script::new(include_str!(
            "../redis-state/src/collections/lua/feed_push.lua"
        ))
        .get_hash()
        .to_owned();
        let [d, h] = alternate_each(
            &rounds,
            n,
            |i| {
                let len = feed.push(i % 64, &activity(i)).run(&mut con).unwrap();
                assert!(len > 0);
            },
            |i| {
                let key = format!("bench:hfeed:{}", i % 64);
                let entry = serde_json::to_vec(&activity(i)).unwrap();
                let len: u64 = eval(&push_sha, &[&key])
                    .arg(100)
                    .arg(604_800_000)
                    .arg(entry)
                    .query(&mut hcon)
                    .unwrap();
                assert!(len > 0);
            },
        );
        report.push(
            Row::new("1c", "feed: push (trim, TTL; atomic)", &d)
                .hand(&h)
                .note("hand-written EVALSHA of the same script; for reference: the library's own cost"),
        );
        // At least 20 entries in every feed read below, on both sides (a
        // smoke run pushes fewer above).
        for k in 0..64usize {
            let items: Vec<Activity> = (0..20).map(activity).collect();
            feed.push_all(k, items.iter()).run(&mut con).unwrap();
            let mut pipe = redis::pipe();
            for a in &items {
                pipe.cmd("LPUSH")
                    .arg(format!("bench:hfeed:{k}"))
                    .arg(serde_json::to_vec(a).unwrap())
                    .ignore();
            }
            let _: () = pipe.query(&mut hcon).unwrap();
        }
        let [d, h] = alternate_each(
            &rounds,
            n,
            |i| {
                let page = feed.page(i % 64, 0, 20).run(&mut con).unwrap();
                assert_eq!(page.items.len(), 20);
            },
            |i| {
                let key = format!("bench:hfeed:{}", i % 64);
                let raw: Vec<Vec<u8>> = redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(19)
                    .query(&mut hcon)
                    .unwrap();
                let items: Vec<Activity> = raw
                    .iter()
                    .filter_map(|r| serde_json::from_slice(r).ok())
                    .collect();
                assert_eq!(items.len(), 20);
            },
        );
        report.push(
            Row::new("1b", "feed: page of 20 (JSON decode)", &d)
                .hand(&h)
                .target(Target::MinHandRatio(0.95))
                .note("hand-written LRANGE + serde_json, skipping what does not decode"),
        );
    }

    // -- time windows ------------------------------------------------------------
    let window = TimeWindow::<String>::new("bench", Duration::from_secs(3600))
        .key_layout("bench:window:", "");
    if cfg.wants("2") {
        let [d, h] = alternate_each(
            &rounds,
            n,
            |i| {
                let count = window
                    .add(i % 64, &format!("event-{}", i % 5000))
                    .run(&mut con)
                    .unwrap();
                assert!(count > 0);
            },
            |i| {
                let key = format!("bench:hwindow:{}", i % 64);
                let now = now_secs();
                let member = format!("event-{}", i % 5000);
                let _: () = redis::pipe()
                    .cmd("ZADD")
                    .arg(&key)
                    .arg(now)
                    .arg(member)
                    .ignore()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(now - 3600.0)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(3_600_000)
                    .ignore()
                    .query(&mut hcon)
                    .unwrap();
            },
        );
        report.push(
            Row::new(
                "2a",
                "window: add (trim below cutoff, cap, TTL; atomic)",
                &d,
            )
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written pipeline ZADD + ZREMRANGEBYSCORE + PEXPIRE (the seed's commands)"),
        );
        let add_sha = redis::Script::new(include_str!(
            "../redis-state/src/collections/lua/window_add.lua"
        ))
        .get_hash()
        .to_owned();
        let [d, h] = alternate_each(
            &rounds,
            n,
            |i| {
                let count = window
                    .add(i % 64, &format!("event-{}", i % 5000))
                    .run(&mut con)
                    .unwrap();
                assert!(count > 0);
            },
            |i| {
                let key = format!("bench:hwindow:{}", i % 64);
                let now = now_secs();
                let count: u64 = eval(&add_sha, &[&key])
                    .arg(format!("{now:.3}"))
                    .arg(format!("event-{}", i % 5000))
                    .arg(format!("{:.3}", now - 3600.0))
                    .arg(100_000)
                    .arg(3_600_000)
                    .query(&mut hcon)
                    .unwrap();
                assert!(count > 0);
            },
        );
        report.push(
            Row::new(
                "2d",
                "window: add (trim below cutoff, cap, TTL; atomic)",
                &d,
            )
            .hand(&h)
            .note("hand-written EVALSHA of the same script; for reference: the library's own cost"),
        );
        // At least 10 members in every window read below, on both sides.
        for k in 0..64usize {
            for j in 0..12 {
                let member = format!("fill-{j}");
                window.add(k, &member).run(&mut con).unwrap();
                let _: () = redis::cmd("ZADD")
                    .arg(format!("bench:hwindow:{k}"))
                    .arg(now_secs())
                    .arg(member)
                    .query(&mut hcon)
                    .unwrap();
            }
        }
        let [d, h] = alternate_each(
            &rounds,
            n,
            |i| {
                let page = window.recent(i % 64, 10).run(&mut con).unwrap();
                assert_eq!(page.items.len(), 10);
            },
            |i| {
                let key = format!("bench:hwindow:{}", i % 64);
                let raw: Vec<(String, f64)> = redis::cmd("ZREVRANGEBYSCORE")
                    .arg(&key)
                    .arg("+inf")
                    .arg(format!("({}", now_secs() - 3600.0))
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(10)
                    .query(&mut hcon)
                    .unwrap();
                assert_eq!(raw.len(), 10);
            },
        );
        report.push(
            Row::new("2b", "window: most recent 10 with times", &d)
                .hand(&h)
                .target(Target::MinHandRatio(0.95))
                .note("hand-written ZREVRANGEBYSCORE … WITHSCORES LIMIT 0 10"),
        );
        let [d, h] = alternate_each(
            &rounds,
            n,
            |i| {
                assert!(window.count(i % 64).run(&mut con).unwrap() > 0);
            },
            |i| {
                let key = format!("bench:hwindow:{}", i % 64);
                let c: u64 = redis::cmd("ZCOUNT")
                    .arg(&key)
                    .arg(format!("({}", now_secs() - 3600.0))
                    .arg("+inf")
                    .query(&mut hcon)
                    .unwrap();
                assert!(c > 0);
            },
        );
        report.push(
            Row::new("2c", "window: count", &d)
                .hand(&h)
                .target(Target::MinHandRatio(0.95))
                .note("hand-written ZCOUNT"),
        );
    }

    // -- tag sets ------------------------------------------------------------------
    let tags = TagSet::<u64>::new("bench");
    let htag = "bench:htags:{bench}";
    const TAGS: [&str; 8] = ["rust", "redis", "go", "python", "db", "web", "cli", "ml"];
    if cfg.wants("3") {
        let [d, h] = alternate_each(
            &rounds,
            n,
            |i| {
                let t = [TAGS[i % 8], TAGS[(i + 3) % 8]];
                assert!(tags.tag(&((i % 1000) as u64), t).run(&mut con).unwrap() > 0);
            },
            |i| {
                let item = (i % 1000) as u64;
                let (a, b) = (TAGS[i % 8], TAGS[(i + 3) % 8]);
                let item_key = format!("{htag}:item:{item}");
                let _: () = redis::pipe()
                    .atomic()
                    .cmd("SADD")
                    .arg(&item_key)
                    .arg(a)
                    .arg(b)
                    .ignore()
                    .cmd("SADD")
                    .arg(format!("{htag}:tag:{a}"))
                    .arg(item)
                    .ignore()
                    .cmd("SADD")
                    .arg(format!("{htag}:tag:{b}"))
                    .arg(item)
                    .ignore()
                    .query(&mut hcon)
                    .unwrap();
            },
        );
        report.push(
            Row::new(
                "3a",
                "tags: tag an item with 2 tags (both sides, limit checked)",
                &d,
            )
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written MULTI SADD item + SADD per tag + EXEC (no limit check)"),
        );
        let set_sha = redis::Script::new(concat!(
            include_str!("../redis-state/src/collections/lua/tags_common.lua"),
            include_str!("../redis-state/src/collections/lua/tags_set.lua")
        ))
        .get_hash()
        .to_owned();
        tags.set_tags(&0, ["rust"]).run(&mut hcon).unwrap();
        let [d, h] = alternate_each(
            &rounds,
            n,
            |i| {
                let t = [TAGS[i % 8], TAGS[(i + 5) % 8]];
                assert_eq!(
                    tags.set_tags(&((i % 1000) as u64), t)
                        .run(&mut con)
                        .unwrap(),
                    2
                );
            },
            |i| {
                let item = (i % 1000) as u64;
                let (a, b) = (TAGS[i % 8], TAGS[(i + 5) % 8]);
                let (code, count): (i64, u64) = eval(
                    &set_sha,
                    &[
                        &format!("tags:{{bench}}:item:{item}"),
                        &format!("tags:{{bench}}:tag:{a}"),
                        &format!("tags:{{bench}}:tag:{b}"),
                    ],
                )
                .arg("tags:{bench}:tag:")
                .arg("")
                .arg(1000)
                .arg(item)
                .arg(a)
                .arg(b)
                .query(&mut hcon)
                .unwrap();
                assert_eq!((code, count), (0, 2));
            },
        );
        report.push(
            Row::new(
                "3b",
                "tags: retag an item (stale reverse entries removed)",
                &d,
            )
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written EVALSHA of the same script"),
        );
        let [d, h] = alternate_each(
            &rounds,
            n,
            |i| {
                let page = tags
                    .items_with_all([TAGS[i % 8], TAGS[(i + 1) % 8]])
                    .run(&mut con)
                    .unwrap();
                assert!(page.skipped == 0);
            },
            |i| {
                let items: Vec<u64> = redis::cmd("SINTER")
                    .arg(format!("tags:{{bench}}:tag:{}", TAGS[i % 8]))
                    .arg(format!("tags:{{bench}}:tag:{}", TAGS[(i + 1) % 8]))
                    .query(&mut hcon)
                    .unwrap();
                let _ = items;
            },
        );
        report.push(
            Row::new("3c", "tags: items having 2 tags (SINTER)", &d)
                .hand(&h)
                .target(Target::MinHandRatio(0.95))
                .note("hand-written SINTER + parse"),
        );
    }

    // -- presence --------------------------------------------------------------------
    let presence = Presence::<u64>::new("bench", Duration::from_secs(60));
    let hkey = "bench:hpresence";
    if cfg.wants("4") {
        // At least 20 users online on both sides for the list below.
        for u in 0..25u64 {
            presence.heartbeat(&(1000 + u)).run(&mut con).unwrap();
            let _: () = redis::cmd("ZADD")
                .arg(hkey)
                .arg(now_secs())
                .arg(1000 + u)
                .query(&mut hcon)
                .unwrap();
        }
        let [d, h] = alternate_each(
            &rounds,
            n,
            |i| {
                assert!(
                    presence
                        .heartbeat(&((i % 500) as u64))
                        .run(&mut con)
                        .unwrap()
                        > 0
                );
            },
            |i| {
                let now = now_secs();
                let cutoff = format!("({}", now - 60.0);
                let ((), (), online): ((), (), u64) = redis::pipe()
                    .cmd("ZADD")
                    .arg(hkey)
                    .arg(now)
                    .arg((i % 500) as u64)
                    .ignore()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(hkey)
                    .arg("-inf")
                    .arg(&cutoff)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(hkey)
                    .arg(60_000)
                    .ignore()
                    .cmd("ZCOUNT")
                    .arg(hkey)
                    .arg(&cutoff)
                    .arg("+inf")
                    .query(&mut hcon)
                    .map(|(c,): (u64,)| ((), (), c))
                    .unwrap();
                assert!(online > 0);
            },
        );
        report.push(
            Row::new("4a", "presence: heartbeat (prune, TTL, count online)", &d)
                .hand(&h)
                .target(Target::MinHandRatio(0.95))
                .note(
                    "hand-written pipeline ZADD + ZREMRANGEBYSCORE + PEXPIRE + ZCOUNT (not atomic)",
                ),
        );
        let [d, h] = alternate_each(
            &rounds,
            n,
            |_| {
                assert!(presence.count().run(&mut con).unwrap() > 0);
            },
            |_| {
                let cutoff = format!("({}", now_secs() - 60.0);
                let (online,): (u64,) = redis::pipe()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(hkey)
                    .arg("-inf")
                    .arg(&cutoff)
                    .ignore()
                    .cmd("ZCOUNT")
                    .arg(hkey)
                    .arg(&cutoff)
                    .arg("+inf")
                    .query(&mut hcon)
                    .unwrap();
                assert!(online > 0);
            },
        );
        report.push(
            Row::new("4b", "presence: count online (prune in the same call)", &d)
                .hand(&h)
                .target(Target::MinHandRatio(0.95))
                .note("hand-written pipeline ZREMRANGEBYSCORE + ZCOUNT"),
        );
        let [d, h] = alternate_each(
            &rounds,
            n,
            |_| {
                let page = presence.online(0, 20).run(&mut con).unwrap();
                assert_eq!(page.items.len(), 20);
            },
            |_| {
                let cutoff = format!("({}", now_secs() - 60.0);
                let (users,): (Vec<(u64, f64)>,) = redis::pipe()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(hkey)
                    .arg("-inf")
                    .arg(&cutoff)
                    .ignore()
                    .cmd("ZREVRANGEBYSCORE")
                    .arg(hkey)
                    .arg("+inf")
                    .arg(&cutoff)
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(20)
                    .query(&mut hcon)
                    .unwrap();
                assert_eq!(users.len(), 20);
            },
        );
        report.push(
            Row::new("4c", "presence: 20 users online with last seen", &d)
                .hand(&h)
                .target(Target::MinHandRatio(0.95))
                .note(
                    "hand-written pipeline ZREMRANGEBYSCORE + ZREVRANGEBYSCORE … WITHSCORES LIMIT",
                ),
        );
    }

    server.clear(&[
        "bench:feed:*",
        "bench:hfeed:*",
        "bench:window:*",
        "bench:hwindow:*",
        "tags:{bench}:*",
        "bench:htags:*",
        "presence:bench",
        "bench:hpresence",
    ]);
    report.finish();
}
