//! Streams and job queues beside hand-written redis-rs code on the same
//! server, in one run: typed stream adds (pipelined) against raw pipelined
//! `XADD`, the consumer loop against a raw `XREADGROUP` + `XACK` loop, and
//! the job queue (push, take under a lease, fenced completion) against a
//! hand-written `BLMOVE` reliable-queue loop (`LPUSH`, `BLMOVE` to a
//! processing list, `LREM`). Rows 4 and 5 claim what a dead consumer left
//! pending: the consumer on the commands the server has (`XREADGROUP …
//! CLAIM` on Redis 8.4 and newer) and on the Redis 7.0 ones (`XAUTOCLAIM`,
//! then `XPENDING` for the delivery counts), against a hand-written
//! `XAUTOCLAIM COUNT 16` + `XACK` loop. `REDIS_SERVER_BIN` picks the server
//! (`$(./scripts/redis8 --path)` for Redis 8.6).
//!
//! ```text
//! cargo bench --bench streams
//! BENCH_QUICK=1 cargo bench --bench streams
//! BENCH_ONLY=3 cargo bench --bench streams     # the job queue row alone
//! ```
//!
//! Rows go to `target/bench/streams.json`. BullMQ is not measured here.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::panic)]

mod support;

use redis_state::cache::shutdown;
use redis_state::prelude::*;
use redis_state::queue::{Queue, QueueOptions};
use redis_state::stream::{ConsumerOptions, Retention, Stream, StreamFeatures};
use serde::{Deserialize, Serialize};
use support::{Config, Report, Round, Row, Target, alternate, bench_server};

const ROUNDS: usize = 21;

#[derive(RedisHash, Debug, Clone)]
#[redis(key = "bench:order:{id}")]
struct Order {
    #[redis(id)]
    id: u64,
    total: i64,
    note: String,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Job {
    id: u64,
    what: String,
}

fn order(i: usize) -> Order {
    Order {
        id: i as u64,
        total: i as i64 * 7,
        note: "gift wrap".into(),
    }
}

fn main() {
    let cfg = Config::from_args();
    let n = cfg.scale(2_000, 50);
    let rounds = cfg.rounds(ROUNDS, 1);
    let server = bench_server();
    let mut con = server.connection();
    let mut hcon = server.connection();
    let mut report = Report::new("streams", &server, &cfg);
    report.note(format!(
        "{n} operations per side and round, {} rounds",
        rounds.rounds
    ));
    server.clear(&["bench:{s}*", "queue:{bench}*", "bench:q:*"]);

    if cfg.wants("1") {
        // -- stream add, pipelined ------------------------------------------------
        let s = Stream::<Order>::new("bench:{s}:add", Retention::max_len(100_000));
        let [d, h] = alternate(
            &rounds,
            [
                &mut |_| {
                    Round::whole(n as u64, || {
                        redis_state::many((0..n).map(|i| s.add(&order(i))))
                            .run(&mut con)
                            .unwrap();
                    })
                },
                &mut |_| {
                    Round::whole(n as u64, || {
                        let mut p = redis::pipe();
                        for i in 0..n {
                            let o = order(i);
                            p.cmd("XADD")
                                .arg("bench:{s}:raw")
                                .arg("MAXLEN")
                                .arg("~")
                                .arg(100_000)
                                .arg("*")
                                .arg("id")
                                .arg(o.id)
                                .arg("total")
                                .arg(o.total)
                                .arg("note")
                                .arg(&o.note);
                        }
                        let _: Vec<String> = p.query(&mut hcon).unwrap();
                    })
                },
            ],
        );
        report.push(
            Row::new("1", "stream: typed add, pipelined", &d)
                .hand(&h)
                .target(Target::MinHandRatio(0.9))
                .note("hand-written pipeline of XADD MAXLEN ~ with the same fields"),
        );
    }

    if cfg.wants("2") {
        // -- consume with a group -------------------------------------------------
        let cs = Stream::<Order>::new("bench:{s}:consume", Retention::max_len(1_000_000));
        let consumer = cs.group("g").consumer("bench").unwrap();
        let raw_key = "bench:{s}:consume-raw";
        let _: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(raw_key)
            .arg("g")
            .arg("0")
            .arg("MKSTREAM")
            .query(&mut hcon);
        let [d, h] = alternate(
            &rounds,
            [
                &mut |_| {
                    redis_state::many((0..n).map(|i| cs.add(&order(i))))
                        .run(&mut con)
                        .unwrap();
                    Round::whole(n as u64, || {
                        let (trigger, sd) = shutdown();
                        let mut seen = 0;
                        consumer
                            .run(&mut con, &sd, |d| {
                                std::hint::black_box(d.event.total);
                                seen += 1;
                                if seen == n {
                                    trigger.fire();
                                }
                                Ok::<_, String>(())
                            })
                            .unwrap();
                    })
                },
                &mut |_| {
                    let mut p = redis::pipe();
                    for i in 0..n {
                        let o = order(i);
                        p.cmd("XADD")
                            .arg(raw_key)
                            .arg("*")
                            .arg("id")
                            .arg(o.id)
                            .arg("total")
                            .arg(o.total)
                            .arg("note")
                            .arg(&o.note);
                    }
                    let _: Vec<String> = p.query(&mut hcon).unwrap();
                    Round::whole(n as u64, || {
                        let mut seen = 0;
                        while seen < n {
                            let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
                                .arg("GROUP")
                                .arg("g")
                                .arg("raw")
                                .arg("COUNT")
                                .arg(16)
                                .arg("BLOCK")
                                .arg(400)
                                .arg("STREAMS")
                                .arg(raw_key)
                                .arg(">")
                                .query(&mut hcon)
                                .unwrap();
                            for k in reply.keys {
                                for e in k.ids {
                                    let total: i64 = e.get("total").unwrap();
                                    std::hint::black_box(total);
                                    let _: i64 = redis::cmd("XACK")
                                        .arg(raw_key)
                                        .arg("g")
                                        .arg(&e.id)
                                        .query(&mut hcon)
                                        .unwrap();
                                    seen += 1;
                                }
                            }
                        }
                    })
                },
            ],
        );
        report.push(
            Row::new("2", "stream: consume with a group (read, decode, ack)", &d)
                .hand(&h)
                .target(Target::MinHandRatio(0.85))
                .note("hand-written XREADGROUP COUNT 16 + one XACK per entry"),
        );
    }

    if cfg.wants("4") || cfg.wants("5") {
        // -- claim what a dead consumer left ----------------------------------------
        let features = StreamFeatures::detect().run(&mut con).unwrap();
        report.note(format!("stream features of the server: {features:?}"));
        let claim_options = |features: Option<StreamFeatures>| {
            let mut o = ConsumerOptions::default();
            o.claim_idle = std::time::Duration::from_millis(1);
            o.claim_every = std::time::Duration::ZERO;
            o.features = features;
            o
        };
        let newer = Stream::<Order>::new("bench:{s}:claim-newer", Retention::max_len(1_000_000));
        let older = Stream::<Order>::new("bench:{s}:claim-7.0", Retention::max_len(1_000_000));
        let raw_claim = "bench:{s}:claim-raw";
        let mut ocon = server.connection();
        // `n` entries read by a consumer that died: pending, idle.
        let left_pending = |con: &mut redis::Connection, key: &str| {
            let _: Result<(), redis::RedisError> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(key)
                .arg("g")
                .arg("0")
                .arg("MKSTREAM")
                .query(con);
            let mut p = redis::pipe();
            for i in 0..n {
                let o = order(i);
                p.cmd("XADD")
                    .arg(key)
                    .arg("*")
                    .arg("id")
                    .arg(o.id)
                    .arg("total")
                    .arg(o.total)
                    .arg("note")
                    .arg(&o.note)
                    .ignore();
            }
            p.cmd("XREADGROUP")
                .arg("GROUP")
                .arg("g")
                .arg("ghost")
                .arg("COUNT")
                .arg(n)
                .arg("STREAMS")
                .arg(key)
                .arg(">")
                .ignore();
            let () = p.query(con).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
        };
        let claim_with = |con: &mut redis::Connection, s: &Stream<Order>, f| {
            let c = s
                .group("g")
                .consumer("bench")
                .unwrap()
                .options(claim_options(f));
            Round::whole(n as u64, || {
                let (trigger, sd) = shutdown();
                let mut seen = 0;
                c.run(con, &sd, |d| {
                    std::hint::black_box(d.event.total);
                    seen += 1;
                    if seen == n {
                        trigger.fire();
                    }
                    Ok::<_, String>(())
                })
                .unwrap();
            })
        };
        let [d_new, d_old, h] = alternate(
            &rounds,
            [
                &mut |_| {
                    left_pending(&mut con, newer.key());
                    claim_with(&mut con, &newer, None)
                },
                &mut |_| {
                    left_pending(&mut ocon, older.key());
                    claim_with(&mut ocon, &older, Some(StreamFeatures::BASELINE))
                },
                &mut |_| {
                    left_pending(&mut hcon, raw_claim);
                    Round::whole(n as u64, || {
                        let mut seen = 0;
                        while seen < n {
                            let reply: redis::streams::StreamAutoClaimReply =
                                redis::cmd("XAUTOCLAIM")
                                    .arg(raw_claim)
                                    .arg("g")
                                    .arg("raw")
                                    .arg(1)
                                    .arg("0-0")
                                    .arg("COUNT")
                                    .arg(16)
                                    .query(&mut hcon)
                                    .unwrap();
                            for e in reply.claimed {
                                let total: i64 = e.get("total").unwrap();
                                std::hint::black_box(total);
                                let _: i64 = redis::cmd("XACK")
                                    .arg(raw_claim)
                                    .arg("g")
                                    .arg(&e.id)
                                    .query(&mut hcon)
                                    .unwrap();
                                seen += 1;
                            }
                        }
                    })
                },
            ],
        );
        report.push(
            Row::new(
                "4",
                "stream: claim a dead consumer's entries, the server's commands",
                &d_new,
            )
            .hand(&h)
            .target(Target::MinHandRatio(0.85))
            .note(if features.xreadgroup_claim {
                "XREADGROUP … CLAIM reads; hand-written XAUTOCLAIM COUNT 16 + one XACK per entry"
            } else {
                "no CLAIM on this server: the XAUTOCLAIM path, as row 5; hand-written XAUTOCLAIM COUNT 16 + one XACK per entry"
            }),
        );
        report.push(
            Row::new(
                "5",
                "stream: claim a dead consumer's entries, Redis 7.0 commands",
                &d_old,
            )
            .hand(&h)
            .target(Target::MinHandRatio(0.85))
            .note("XAUTOCLAIM + XPENDING per batch; hand-written XAUTOCLAIM COUNT 16 + one XACK per entry"),
        );
    }

    if cfg.wants("3") {
        // -- job queue --------------------------------------------------------------
        let q = Queue::<Job>::new("bench").options(QueueOptions::default());
        let [d, h] = alternate(
            &rounds,
            [
                &mut |r| {
                    Round::whole(n as u64, || {
                        redis_state::many((0..n).map(|i| {
                            q.push(&Job {
                                id: (r * n + i) as u64,
                                what: "resize".into(),
                            })
                        }))
                        .run(&mut con)
                        .unwrap();
                        let (trigger, sd) = shutdown();
                        let mut seen = 0;
                        q.worker()
                            .run(&mut con, &sd, |job| {
                                std::hint::black_box(job.data.id);
                                seen += 1;
                                if seen == n {
                                    trigger.fire();
                                }
                                Ok::<_, String>(())
                            })
                            .unwrap();
                    })
                },
                &mut |r| {
                    Round::whole(n as u64, || {
                        let mut p = redis::pipe();
                        for i in 0..n {
                            let job = serde_json::to_string(&Job {
                                id: (r * n + i) as u64,
                                what: "resize".into(),
                            })
                            .unwrap();
                            p.cmd("LPUSH").arg("bench:q:wait").arg(job).ignore();
                        }
                        let () = p.query(&mut hcon).unwrap();
                        for _ in 0..n {
                            let raw: String = redis::cmd("BLMOVE")
                                .arg("bench:q:wait")
                                .arg("bench:q:active")
                                .arg("RIGHT")
                                .arg("LEFT")
                                .arg(0.4)
                                .query(&mut hcon)
                                .unwrap();
                            let job: Job = serde_json::from_str(&raw).unwrap();
                            std::hint::black_box(job.id);
                            let _: i64 = redis::cmd("LREM")
                                .arg("bench:q:active")
                                .arg(1)
                                .arg(&raw)
                                .query(&mut hcon)
                                .unwrap();
                        }
                    })
                },
            ],
        );
        report.push(
            Row::new("3", "job queue: push (pipelined) + take + complete", &d)
                .hand(&h)
                .target(Target::MinHandRatio(0.8))
                .note(
                    "hand-written LPUSH pipeline, then BLMOVE to a processing list + LREM per job",
                ),
        );
    }

    server.clear(&["bench:{s}*", "queue:{bench}*", "bench:q:*"]);
    report.finish();
}
