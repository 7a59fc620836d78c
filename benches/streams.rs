//! Streams and job queues beside hand-written redis-rs code on the same
//! server, in one run: typed stream adds (pipelined) against raw pipelined
//! `XADD`, the consumer loop against a raw `XREADGROUP` + `XACK` loop, and
//! the job queue (push, take under a lease, fenced completion) against a
//! hand-written `BLMOVE` reliable-queue loop (`LPUSH`, `BLMOVE` to a
//! processing list, `LREM`).
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
use redis_state::stream::{Retention, Stream};
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
