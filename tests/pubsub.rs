//! Typed pub/sub against real servers: channels as types, publish counts,
//! pattern subscriptions parsed back, confirmations, bad payloads, the
//! overflow policies, the blocking handler runner, and per-channel order;
//! on every executor (blocking subscriber with its own runtime thread, and
//! async subscriber on the test's runtime) and topology.

mod common;

use std::time::{Duration, Instant};

use common::{Runner, Topology};
use redis_state::Namespace;
use redis_state::pubsub::{
    Channel, Event, Kind, Message, Overflow, Subscriber, SubscriberOptions, Target,
};
use redis_state::testing::{shared_cluster, shared_server};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserEvent {
    kind: String,
    seq: u64,
}

#[derive(redis_state::Channel, Debug, Clone, PartialEq)]
#[channel(name = "t:{run}:user:{id}:events", message = UserEvent)]
struct UserEvents {
    run: String,
    id: u64,
}

#[derive(redis_state::Channel, Debug, Clone, PartialEq)]
#[channel(name = "t:{run}:notes", message = String, format = "plain")]
struct Notes {
    run: String,
}

/// How long any one wait of a test may take before it fails.
const WAIT: Duration = Duration::from_secs(10);

/// A subscriber read the blocking way or the async way.
struct Sub<C: Channel> {
    sub: Option<Subscriber<C>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl<C: Channel + std::fmt::Debug> Sub<C>
where
    C::Message: std::fmt::Debug,
{
    fn new(topology: Topology, asynchronous: bool, opts: SubscriberOptions) -> Self {
        let target = match topology {
            Topology::Standalone => Target::standalone(shared_server().url()),
            Topology::Cluster => Target::cluster(shared_cluster().urls()),
        };
        if asynchronous {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let sub = rt
                .block_on(Subscriber::connect_async(target, opts))
                .unwrap();
            Sub {
                sub: Some(sub),
                rt: Some(rt),
            }
        } else {
            Sub {
                sub: Some(Subscriber::connect(target, opts).unwrap()),
                rt: None,
            }
        }
    }

    fn of(runner: &Runner, opts: SubscriberOptions) -> Self {
        let topology = if runner.is_cluster() {
            Topology::Cluster
        } else {
            Topology::Standalone
        };
        let asynchronous = matches!(runner, Runner::Async(..) | Runner::AsyncCluster(..));
        Self::new(topology, asynchronous, opts)
    }

    fn s(&mut self) -> &mut Subscriber<C> {
        self.sub.as_mut().unwrap()
    }

    fn subscribe(&mut self, c: &C) {
        match &self.rt {
            Some(rt) => rt.block_on(self.sub.as_ref().unwrap().subscribe_async(c)),
            None => self.sub.as_ref().unwrap().subscribe(c),
        }
        .unwrap()
    }

    fn psubscribe(&mut self) {
        let p = C::pattern();
        match &self.rt {
            Some(rt) => rt.block_on(self.sub.as_ref().unwrap().psubscribe_async(&p)),
            None => self.sub.as_ref().unwrap().psubscribe(&p),
        }
        .unwrap()
    }

    fn unsubscribe_all(&mut self) {
        match &self.rt {
            Some(rt) => rt.block_on(self.sub.as_ref().unwrap().unsubscribe_all_async()),
            None => self.sub.as_ref().unwrap().unsubscribe_all(),
        }
        .unwrap()
    }

    /// The next item, failing the test after `WAIT`.
    fn next(&mut self) -> redis_state::Result<Event<C>> {
        self.try_next(WAIT).expect("an item within the wait")
    }

    fn try_next(&mut self, d: Duration) -> Option<redis_state::Result<Event<C>>> {
        match &self.rt {
            Some(rt) => {
                let sub = self.sub.as_mut().unwrap();
                rt.block_on(async {
                    tokio::time::timeout(d, sub.next_async())
                        .await
                        .ok()
                        .flatten()
                })
            }
            None => self.sub.as_mut().unwrap().recv(d),
        }
    }

    /// The next message, skipping confirmations.
    fn message(&mut self) -> Message<C> {
        loop {
            match self.next().unwrap() {
                Event::Message(m) => return m,
                Event::Subscribed { .. } | Event::Unsubscribed { .. } => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// Lets the connection run until `n` messages were received.
    fn wait_received(&mut self, n: u64) {
        let start = Instant::now();
        while self.s().received() < n {
            assert!(
                start.elapsed() < WAIT,
                "received {} of {n}",
                self.s().received()
            );
            match &self.rt {
                Some(rt) => {
                    rt.block_on(async { tokio::time::sleep(Duration::from_millis(5)).await })
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

/// Publishes in one pipeline; one by one on the blocking Cluster client,
/// whose pipelines refuse `PUBLISH`.
fn publish_all(runner: &mut Runner, ops: Vec<redis_state::pubsub::Publish>) {
    if matches!(runner, Runner::SyncCluster(_)) {
        for op in ops {
            runner.run(op).unwrap();
        }
    } else {
        runner.run(redis_state::many(ops)).unwrap();
    }
}

fn run_id(ns: &Namespace) -> String {
    ns.as_str().to_owned()
}

fn publish_and_receive(runner: &mut Runner, ns: &Namespace) {
    let mut sub = Sub::<UserEvents>::of(runner, SubscriberOptions::new());
    let ch = UserEvents {
        run: run_id(ns),
        id: 7,
    };
    sub.subscribe(&ch);
    match sub.next().unwrap() {
        Event::Subscribed { kind, name, count } => {
            assert_eq!(kind, Kind::Channel);
            assert_eq!(name, ch.name());
            assert_eq!(count, 1);
        }
        other => panic!("expected the confirmation, got {other:?}"),
    }
    let ev = UserEvent {
        kind: "login".into(),
        seq: 1,
    };
    let receivers = runner.run(ch.publish(&ev)).unwrap();
    if !runner.is_cluster() {
        // On a Cluster PUBLISH counts the receiving node's subscribers only.
        assert_eq!(receivers, 1);
    }
    let m = sub.message();
    assert_eq!(m.channel, ch);
    assert_eq!(m.message, ev);
    assert_eq!(m.pattern, None);

    sub.unsubscribe_all();
    match sub.next().unwrap() {
        Event::Unsubscribed { kind, name, count } => {
            assert_eq!(
                (kind, name.as_str(), count),
                (Kind::Channel, ch.name().as_str(), 0)
            );
        }
        other => panic!("expected the unsubscription, got {other:?}"),
    }
    assert!(sub.s().subscriptions().is_empty());
    assert_eq!(runner.run(ch.publish(&ev)).unwrap(), 0);
}

fn pattern_parts_parse_back(runner: &mut Runner, ns: &Namespace) {
    let mut sub = Sub::<UserEvents>::of(runner, SubscriberOptions::new());
    sub.psubscribe();
    let run = run_id(ns);
    // Ids with characters that need escaping parse back as well.
    for id in [1u64, 22, 333] {
        let ch = UserEvents {
            run: run.clone(),
            id,
        };
        runner
            .run(ch.publish(&UserEvent {
                kind: "k".into(),
                seq: id,
            }))
            .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = sub.message();
        if m.channel.run != run {
            continue; // another test's channel matches the pattern too
        }
        assert_eq!(m.pattern.as_deref(), Some("t:*:user:*:events"));
        assert_eq!(m.message.seq, m.channel.id);
        got.push(m.channel.id);
    }
    // Order across channels is not promised on a Cluster (each name's
    // messages travel from its slot's owner).
    got.sort();
    assert_eq!(got, vec![1, 22, 333]);
}

fn plain_messages_and_escaped_parts(runner: &mut Runner, ns: &Namespace) {
    let mut sub = Sub::<Notes>::of(runner, SubscriberOptions::new());
    let ch = Notes {
        run: format!("{}:a b{{c}}*", run_id(ns)),
    };
    assert!(!ch.name().contains('{'), "parts are escaped: {}", ch.name());
    sub.subscribe(&ch);
    // Another client publishes plain text on the same name.
    runner
        .cmd::<i64>("PUBLISH", &ch.name())
        .arg("hello from redis-cli")
        .go();
    let m = sub.message();
    assert_eq!(m.channel, ch);
    assert_eq!(m.message, "hello from redis-cli");
}

fn bad_payload_is_an_item_and_the_stream_goes_on(runner: &mut Runner, ns: &Namespace) {
    let mut sub = Sub::<UserEvents>::of(runner, SubscriberOptions::new());
    let ch = UserEvents {
        run: run_id(ns),
        id: 9,
    };
    sub.subscribe(&ch);
    runner
        .cmd::<i64>("PUBLISH", &ch.name())
        .arg("{not json")
        .go();
    let good = UserEvent {
        kind: "ok".into(),
        seq: 2,
    };
    runner.run(ch.publish(&good)).unwrap();
    let err = loop {
        match sub.next() {
            Ok(Event::Subscribed { .. }) => continue,
            Ok(other) => panic!("expected the bad payload first, got {other:?}"),
            Err(e) => break e,
        }
    };
    match &err {
        redis_state::Error::BadMessage {
            channel, preview, ..
        } => {
            assert_eq!(channel, &ch.name());
            assert!(preview.contains("{not json"), "{preview}");
        }
        other => panic!("expected BadMessage, got {other:?}"),
    }
    assert!(err.to_string().contains(&ch.name()), "{err}");
    assert_eq!(sub.message().message, good);
}

/// Publishes `n` numbered messages on `ch`, then reads what the policy
/// left.
fn overflow(runner: &mut Runner, ns: &Namespace, policy: Overflow) -> (Vec<u64>, Vec<String>, u64) {
    let mut sub = Sub::<UserEvents>::of(
        runner,
        SubscriberOptions::new().capacity(4).overflow(policy),
    );
    let ch = UserEvents {
        run: run_id(ns),
        id: 1,
    };
    sub.subscribe(&ch);
    let ops: Vec<_> = (0..10u64)
        .map(|seq| {
            ch.publish(&UserEvent {
                kind: "n".into(),
                seq,
            })
        })
        .collect();
    publish_all(runner, ops);
    sub.wait_received(10);
    let mut seqs = Vec::new();
    let mut notes = Vec::new();
    while let Some(item) = sub.try_next(Duration::from_millis(200)) {
        match item {
            Ok(Event::Message(m)) => seqs.push(m.message.seq),
            Ok(Event::Subscribed { .. }) => {}
            Ok(Event::Lagged { dropped }) => notes.push(format!("lagged {dropped}")),
            Ok(other) => notes.push(format!("{other:?}")),
            Err(e) => notes.push(format!("error: {e}")),
        }
    }
    let dropped = sub.s().dropped();
    (seqs, notes, dropped)
}

fn overflow_drop_oldest(runner: &mut Runner, ns: &Namespace) {
    let (seqs, notes, dropped) = overflow(runner, ns, Overflow::DropOldest);
    assert_eq!(seqs, vec![6, 7, 8, 9]);
    assert_eq!(notes, vec!["lagged 6"]);
    assert_eq!(dropped, 6);
}

fn overflow_drop_newest(runner: &mut Runner, ns: &Namespace) {
    let (seqs, notes, dropped) = overflow(runner, ns, Overflow::DropNewest);
    assert_eq!(seqs, vec![0, 1, 2, 3]);
    assert_eq!(notes, vec!["lagged 6"]);
    assert_eq!(dropped, 6);
}

fn overflow_fail(runner: &mut Runner, ns: &Namespace) {
    let (seqs, notes, dropped) = overflow(runner, ns, Overflow::Fail);
    assert_eq!(seqs, vec![0, 1, 2, 3]);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with("error: subscriber buffer full (4 messages)"),
        "{notes:?}"
    );
    assert_eq!(dropped, 6);
}

fn order_per_channel(runner: &mut Runner, ns: &Namespace) {
    const N: u64 = 20_000;
    let mut sub = Sub::<UserEvents>::of(runner, SubscriberOptions::new().capacity(N as usize));
    let chans: Vec<UserEvents> = (0..4)
        .map(|id| UserEvents {
            run: run_id(ns),
            id,
        })
        .collect();
    for c in &chans {
        sub.subscribe(c);
    }
    for chunk in (0..N).collect::<Vec<_>>().chunks(1000) {
        let ops: Vec<_> = chunk
            .iter()
            .map(|&seq| {
                chans[(seq % 4) as usize].publish(&UserEvent {
                    kind: String::new(),
                    seq,
                })
            })
            .collect();
        publish_all(runner, ops);
    }
    let mut last = [None::<u64>; 4];
    let mut got = 0;
    while got < N {
        let m = sub.message();
        let i = m.channel.id as usize;
        if let Some(prev) = last[i] {
            assert!(
                m.message.seq > prev,
                "channel {i}: {} after {prev}",
                m.message.seq
            );
        }
        last[i] = Some(m.message.seq);
        got += 1;
    }
    assert_eq!(sub.s().dropped(), 0);
}

/// Unsubscribing from one channel keeps the others; the counts are the
/// server's.
fn unsubscribe_one_keeps_the_others(runner: &mut Runner, ns: &Namespace) {
    let mut sub = Sub::<UserEvents>::of(runner, SubscriberOptions::new());
    let (a, b) = (
        UserEvents {
            run: run_id(ns),
            id: 1,
        },
        UserEvents {
            run: run_id(ns),
            id: 2,
        },
    );
    sub.subscribe(&a);
    sub.subscribe(&b);
    sub.psubscribe();
    let mut counts = Vec::new();
    while counts.len() < 3 {
        if let Event::Subscribed { kind, count, .. } = sub.next().unwrap() {
            counts.push((kind, count));
        }
    }
    // Channels and patterns are counted together by the server, per
    // connection: on a Cluster the client spreads them over the nodes.
    let cluster = runner.is_cluster();
    if cluster {
        let kinds: Vec<Kind> = counts.iter().map(|c| c.0).collect();
        assert_eq!(kinds, vec![Kind::Channel, Kind::Channel, Kind::Pattern]);
    } else {
        assert_eq!(
            counts,
            vec![(Kind::Channel, 1), (Kind::Channel, 2), (Kind::Pattern, 3)]
        );
    }
    match &sub.rt {
        Some(rt) => rt.block_on(sub.sub.as_ref().unwrap().unsubscribe_async(&a)),
        None => sub.sub.as_ref().unwrap().unsubscribe(&a),
    }
    .unwrap();
    // Messages published before the unsubscription (by this test, or by
    // another test's channel the pattern matches) may come first.
    let event = loop {
        match sub.next().unwrap() {
            Event::Message(_) => continue,
            other => break other,
        }
    };
    match event {
        Event::Unsubscribed { kind, name, count } => {
            assert_eq!((kind, &name), (Kind::Channel, &a.name()));
            if !cluster {
                assert_eq!(count, 2);
            }
        }
        other => panic!("expected the unsubscription, got {other:?}"),
    }
    let mut left = sub.s().subscriptions();
    left.sort();
    assert_eq!(
        left,
        vec![
            (Kind::Channel, b.name()),
            (Kind::Pattern, UserEvents::pattern().glob().to_owned())
        ]
    );
}

matrix!(
    unsubscribe_one_keeps_the_others,
    publish_and_receive,
    pattern_parts_parse_back,
    plain_messages_and_escaped_parts,
    bad_payload_is_an_item_and_the_stream_goes_on,
    overflow_drop_oldest,
    overflow_drop_newest,
    overflow_fail,
    order_per_channel,
);

/// The blocking handler runner: items reach the handler on its thread;
/// `stop` ends it cleanly and hands the subscriber back, still subscribed.
#[test]
fn blocking_runner_stops_cleanly() {
    let ns = common::namespace("runner");
    let mut runner = Runner::new(Topology::Standalone, false);
    let sub = Subscriber::<UserEvents>::connect(
        Target::standalone(shared_server().url()),
        SubscriberOptions::new(),
    )
    .unwrap();
    let ch = UserEvents {
        run: run_id(&ns),
        id: 5,
    };
    sub.subscribe(&ch).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let handler = sub
        .run(move |item| {
            if let Ok(Event::Message(m)) = item {
                let _ = tx.send(m.message.seq);
            }
        })
        .unwrap();
    for seq in 0..3 {
        runner
            .run(ch.publish(&UserEvent {
                kind: "r".into(),
                seq,
            }))
            .unwrap();
    }
    let got: Vec<u64> = (0..3).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
    assert_eq!(got, vec![0, 1, 2]);
    let sub = handler.stop().expect("the handler thread ended cleanly");
    assert_eq!(sub.subscriptions(), vec![(Kind::Channel, ch.name())]);
    // Still subscribed: the next message waits in the buffer.
    runner
        .run(ch.publish(&UserEvent {
            kind: "r".into(),
            seq: 3,
        }))
        .unwrap();
    let mut sub = sub;
    let m = loop {
        match sub.recv(WAIT).expect("an item").unwrap() {
            Event::Message(m) => break m,
            _ => continue,
        }
    };
    assert_eq!(m.message.seq, 3);
}

#[derive(redis_state::Channel, Debug, Clone, PartialEq)]
#[channel(name = "t:{run}:seq:{id}", message = u64, format = "plain")]
struct Seq {
    run: String,
    id: u8,
}

/// Per-channel order over many messages on four channels (100,000 by
/// default; `PUBSUB_ORDER_MESSAGES=1000000` for a million, about a minute
/// in a debug build): a publisher thread pipelines them (keeping at most
/// 50,000 ahead of the reader, so the buffer's bound holds without drops)
/// while the async stream reads them.
#[test]
fn order_over_many_messages() {
    use futures_util::StreamExt;
    let n: u64 = std::env::var("PUBSUB_ORDER_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    const AHEAD: u64 = 50_000;
    let ns = common::namespace("million");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let opts = SubscriberOptions::new()
        .capacity(AHEAD as usize * 2)
        .overflow(Overflow::Fail);
    let mut sub: Subscriber<Seq> = rt
        .block_on(Subscriber::connect_async(
            Target::standalone(shared_server().url()),
            opts,
        ))
        .unwrap();
    let chans: Vec<Seq> = (0..4)
        .map(|id| Seq {
            run: run_id(&ns),
            id,
        })
        .collect();
    for c in &chans {
        rt.block_on(sub.subscribe_async(c)).unwrap();
    }
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let publisher = {
        let names: Vec<String> = chans.iter().map(Channel::name).collect();
        let read = read.clone();
        std::thread::spawn(move || {
            let mut con = shared_server().connection().unwrap();
            let start = Instant::now();
            let mut seq = 0;
            while seq < n {
                while seq >= read.load(std::sync::atomic::Ordering::Relaxed) + AHEAD {
                    assert!(
                        start.elapsed() < Duration::from_secs(300),
                        "the reader stalled"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                let mut pipe = redis::pipe();
                for s in seq..(seq + 5_000).min(n) {
                    pipe.cmd("PUBLISH")
                        .arg(&names[(s % 4) as usize])
                        .arg(s)
                        .ignore();
                }
                pipe.exec(&mut con).unwrap();
                seq = (seq + 5_000).min(n);
            }
        })
    };
    let start = Instant::now();
    let mut last = [None::<u64>; 4];
    let mut got = 0u64;
    rt.block_on(async {
        let mut stream = std::pin::pin!(sub.stream());
        while got < n {
            let item = tokio::time::timeout(WAIT, stream.next())
                .await
                .expect("a message within the wait")
                .expect("the stream goes on")
                .unwrap();
            if let Event::Message(m) = item {
                let i = m.channel.id as usize;
                assert_eq!(m.message % 4, i as u64, "on its own channel");
                if let Some(prev) = last[i] {
                    assert!(m.message > prev, "channel {i}: {} after {prev}", m.message);
                }
                last[i] = Some(m.message);
                got += 1;
                if got.is_multiple_of(1_000) {
                    read.store(got, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    });
    publisher.join().unwrap();
    println!(
        "{n} messages in order on 4 channels in {:.1?}",
        start.elapsed()
    );
    assert_eq!(sub.dropped(), 0);
}
