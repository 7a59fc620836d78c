//! Typed pub/sub beside hand-written redis-rs on the same server, in one
//! run:
//!
//! 1. **publish** at concurrency 128 on one multiplexed connection:
//!    `Channel::publish(..).run_async` against a hand-written `PUBLISH` of
//!    the same JSON (target ≥ 0.95×);
//! 2. **delivered messages/s**: a [`Subscriber`] decoding typed messages
//!    against a hand-written RESP3 connection whose push sender is a tokio
//!    channel, drained and JSON-decoded (target ≥ 0.9×); the messages are
//!    published by another thread in pipelines;
//! 3. **end-to-end latency**: one publish, then the wait for that message
//!    on the subscriber; p50 and p99 per side.
//!
//! ```text
//! cargo bench --bench pubsub
//! BENCH_QUICK=1 cargo bench --bench pubsub   # smoke run
//! ```
//! Rows are written to `target/bench/pubsub.json`.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::panic)]

mod support;

use futures_util::StreamExt;
use redis_state::Operation;
use redis_state::pubsub::{Channel, Event, Subscriber, SubscriberOptions, Target as SubTarget};
use serde::{Deserialize, Serialize};
use support::{Config, Report, Round, Row, Target, alternate, bench_server};

/// Measured rounds per comparison.
const ROUNDS: usize = 21;
/// Concurrent publishes in flight on the one connection.
const CONCURRENCY: usize = 128;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tick {
    user: u64,
    kind: String,
    seq: u64,
}

#[derive(redis_state::Channel)]
#[channel(name = "bench:{side}:ticks", message = Tick)]
struct Ticks {
    side: String,
}

fn tick(seq: u64) -> Tick {
    Tick {
        user: 42,
        kind: "login".to_owned(),
        seq,
    }
}

fn main() {
    let cfg = Config::from_args();
    let n = cfg.scale(20_000, 400);
    let rounds = cfg.rounds(ROUNDS, 1);
    let server = bench_server();
    let mut report = Report::new("pubsub", &server, &cfg);
    report.note(format!(
        "{n} messages per side and round, {} rounds",
        rounds.rounds
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // -- 1. publish at concurrency 128 ------------------------------------
    let con = rt.block_on(server.async_connection());
    let derived_ch = Ticks {
        side: "pub".to_owned(),
    };
    let hand_name = derived_ch.name();
    let [d, h] = alternate(
        &rounds,
        [
            &mut |_| {
                Round::whole(n as u64, || {
                    rt.block_on(
                        futures_util::stream::iter(0..n as u64)
                            .map(|seq| {
                                let mut con = con.clone();
                                let op = derived_ch.publish(&tick(seq));
                                async move { op.run_async(&mut con).await.unwrap() }
                            })
                            .buffer_unordered(CONCURRENCY)
                            .for_each(|_| async {}),
                    )
                })
            },
            &mut |_| {
                Round::whole(n as u64, || {
                    rt.block_on(
                        futures_util::stream::iter(0..n as u64)
                            .map(|seq| {
                                let mut con = con.clone();
                                let body = serde_json::to_vec(&tick(seq)).unwrap();
                                let name = hand_name.clone();
                                async move {
                                    let _: u64 = redis::cmd("PUBLISH")
                                        .arg(name)
                                        .arg(body)
                                        .query_async(&mut con)
                                        .await
                                        .unwrap();
                                }
                            })
                            .buffer_unordered(CONCURRENCY)
                            .for_each(|_| async {}),
                    )
                })
            },
        ],
    );
    report.push(
        Row::new("1", "publish (JSON), 128 in flight, one connection", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.95))
            .note("hand-written: serde_json::to_vec + PUBLISH on a clone of the same MultiplexedConnection"),
    );

    // -- 2. delivered messages/s -------------------------------------------
    let url = server.url().to_owned();
    let opts = SubscriberOptions::new().capacity(n * 2);
    let sub_ch = Ticks {
        side: "deliver".to_owned(),
    };
    let mut sub: Subscriber<Ticks> = rt
        .block_on(Subscriber::connect_async(
            SubTarget::standalone(url.clone()),
            opts.clone(),
        ))
        .unwrap();
    rt.block_on(sub.subscribe_async(&sub_ch)).unwrap();
    let hand_ch = Ticks {
        side: "deliver-hand".to_owned(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let client = redis::Client::open(format!("{url}?protocol=resp3")).unwrap();
    let mut raw = rt
        .block_on(client.get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_push_sender(tx),
        ))
        .unwrap();
    rt.block_on(raw.subscribe(hand_ch.name())).unwrap();
    // The confirmation push.
    rt.block_on(rx.recv()).unwrap();
    let publish_in_thread = |name: String| {
        let mut pcon = server.connection();
        std::thread::spawn(move || {
            for chunk in (0..n as u64).collect::<Vec<_>>().chunks(500) {
                let mut pipe = redis::pipe();
                for &seq in chunk {
                    pipe.cmd("PUBLISH")
                        .arg(&name)
                        .arg(serde_json::to_vec(&tick(seq)).unwrap())
                        .ignore();
                }
                pipe.exec(&mut pcon).unwrap();
            }
        })
    };
    let [d, h] = alternate(
        &rounds,
        [
            &mut |_| {
                Round::whole(n as u64, || {
                    let publisher = publish_in_thread(sub_ch.name());
                    rt.block_on(async {
                        let mut got = 0;
                        while got < n {
                            if let Some(Ok(Event::Message(m))) = sub.next_async().await {
                                assert!(m.message.seq < n as u64);
                                got += 1;
                            }
                        }
                    });
                    publisher.join().unwrap();
                })
            },
            &mut |_| {
                Round::whole(n as u64, || {
                    let publisher = publish_in_thread(hand_ch.name());
                    rt.block_on(async {
                        let mut got = 0;
                        while got < n {
                            let push = rx.recv().await.unwrap();
                            if push.kind == redis::PushKind::Message {
                                let redis::Value::BulkString(b) = &push.data[1] else {
                                    panic!("payload")
                                };
                                let t: Tick = serde_json::from_slice(b).unwrap();
                                assert!(t.seq < n as u64);
                                got += 1;
                            }
                        }
                    });
                    publisher.join().unwrap();
                })
            },
        ],
    );
    report.push(
        Row::new("2", "delivered typed messages/s (subscriber)", &d)
            .hand(&h)
            .target(Target::MinHandRatio(0.9))
            .note("hand-written: RESP3 push sender into a tokio channel, drained and JSON-decoded; publisher: another thread, pipelines of 500"),
    );
    assert_eq!(sub.dropped(), 0);

    // -- 3. end-to-end latency ------------------------------------------------
    let samples = cfg.scale(5_000, 100);
    let mut pcon = rt.block_on(server.async_connection());
    let mut pcon2 = pcon.clone();
    let [d, h] = alternate(
        &rounds,
        [
            &mut |_| {
                rt.block_on(Round::each_async(
                    samples / rounds.rounds.max(1),
                    async |i| {
                        sub_ch
                            .publish(&tick(i as u64))
                            .run_async(&mut pcon)
                            .await
                            .unwrap();
                        loop {
                            if let Some(Ok(Event::Message(_))) = sub.next_async().await {
                                break;
                            }
                        }
                    },
                ))
            },
            &mut |_| {
                rt.block_on(Round::each_async(
                    samples / rounds.rounds.max(1),
                    async |i| {
                        let _: u64 = redis::cmd("PUBLISH")
                            .arg(hand_ch.name())
                            .arg(serde_json::to_vec(&tick(i as u64)).unwrap())
                            .query_async(&mut pcon2)
                            .await
                            .unwrap();
                        loop {
                            let push = rx.recv().await.unwrap();
                            if push.kind == redis::PushKind::Message {
                                let redis::Value::BulkString(b) = &push.data[1] else {
                                    panic!("payload")
                                };
                                let _: Tick = serde_json::from_slice(b).unwrap();
                                break;
                            }
                        }
                    },
                ))
            },
        ],
    );
    report.push(
        Row::new("3", "end-to-end: publish, then receive it (latency)", &d)
            .hand(&h)
            .note("one message in flight; the latency columns are publish-to-delivery"),
    );
    report.finish();
}
