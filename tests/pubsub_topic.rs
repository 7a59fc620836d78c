//! Reliable topics against real servers of the tests' own: a capped stream
//! behind the channel, sequence numbers in the messages, gaps filled from
//! the stream. `CLIENT KILL` of the subscriber during traffic (0 lost and
//! 0 delivered twice after the backfill, standalone and Cluster, blocking
//! and async); a gap longer than the cap reported as `Lost` with its count;
//! resuming from a position; a sharded topic on a Cluster.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis_state::Operation;
use redis_state::pubsub::{
    Channel, Event, Overflow, SubscriberOptions, Target, Topic, TopicEvent, TopicSubscriber,
};
use redis_state::testing::{RedisCluster, RedisServer};

#[derive(redis_state::Channel, Debug, Clone, PartialEq)]
#[channel(name = "topic:{run}", message = u64, format = "plain")]
struct Ticks {
    run: String,
}

#[derive(redis_state::Channel, Debug, Clone, PartialEq)]
#[channel(name = "stopic:{run}", message = u64, format = "plain", sharded)]
struct ShardTicks {
    run: String,
}

const WAIT: Duration = Duration::from_secs(20);

fn server() -> &'static RedisServer {
    static S: OnceLock<RedisServer> = OnceLock::new();
    S.get_or_init(|| RedisServer::start().expect("a redis-server of the test's own"))
}

fn cluster() -> std::sync::MutexGuard<'static, RedisCluster> {
    static C: OnceLock<Mutex<RedisCluster>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(RedisCluster::start(3).expect("a cluster of the test's own")))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A topic subscriber read the blocking way, or the async way on a
/// runtime of the test's.
enum Sub<C: Channel> {
    Blocking(TopicSubscriber<C>),
    Async(tokio::runtime::Runtime, TopicSubscriber<C>),
}

impl<C: Channel> Sub<C> {
    fn new(target: Target, asynchronous: bool, opts: SubscriberOptions) -> Self {
        if asynchronous {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let s = rt
                .block_on(TopicSubscriber::connect_async(target, opts))
                .unwrap();
            Sub::Async(rt, s)
        } else {
            Sub::Blocking(TopicSubscriber::connect(target, opts).unwrap())
        }
    }

    fn subscribe(&mut self, t: &Topic<C>) {
        match self {
            Sub::Blocking(s) => s.subscribe(t),
            Sub::Async(rt, s) => rt.block_on(s.subscribe_async(t)),
        }
        .unwrap()
    }

    fn subscribe_from(&mut self, t: &Topic<C>, last: u64) {
        match self {
            Sub::Blocking(s) => s.subscribe_from(t, last),
            Sub::Async(rt, s) => rt.block_on(s.subscribe_from_async(t, last)),
        }
        .unwrap()
    }

    fn next(&mut self, d: Duration) -> Option<redis_state::Result<TopicEvent<C>>> {
        match self {
            Sub::Blocking(s) => s.recv(d),
            Sub::Async(rt, s) => {
                rt.block_on(async { tokio::time::timeout(d, s.next_async()).await.ok().flatten() })
            }
        }
    }

    fn inner(&self) -> &TopicSubscriber<C> {
        match self {
            Sub::Blocking(s) | Sub::Async(_, s) => s,
        }
    }
}

fn opts() -> SubscriberOptions {
    SubscriberOptions::new()
        .capacity(1_000_000)
        .health_check(Duration::from_millis(200))
}

/// A blocking publisher on the target.
fn publisher(target: &Target) -> Box<dyn FnMut(redis_state::pubsub::TopicPublish) -> u64 + Send> {
    match target {
        Target::Standalone(url) => {
            let mut con = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            Box::new(move |op| op.run(&mut con).unwrap().seq)
        }
        Target::Cluster(urls) => {
            let mut con = redis::cluster::ClusterClient::new(urls.clone())
                .unwrap()
                .get_connection()
                .unwrap();
            Box::new(move |op| op.run(&mut con).unwrap().seq)
        }
        _ => unreachable!(),
    }
}

fn kill_pubsub_clients(nodes: &[&RedisServer]) {
    for n in nodes {
        let _: i64 = n
            .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub"))
            .unwrap();
    }
}

/// Kills the subscriber's connection in the middle of a stream of
/// messages: every message arrives once, in order, the missed ones from
/// the stream.
fn client_kill(target: Target, asynchronous: bool, kill: impl Fn()) {
    let topic = Topic::new(
        Ticks {
            run: redis_state::testing::unique_prefix("kill"),
        },
        100_000,
    )
    .unwrap();
    let mut sub = Sub::new(target.clone(), asynchronous, opts());
    sub.subscribe(&topic);

    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let publishing = {
        let (stop, published, topic) = (stop.clone(), published.clone(), topic.clone());
        let mut publish = publisher(&target);
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let seq = publish(topic.publish(&n));
                assert_eq!(seq, n + 1, "the stream numbers messages 1, 2, 3, ...");
                n += 1;
                published.store(n, Ordering::SeqCst);
                if n.is_multiple_of(50) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };

    let mut seen = Vec::new();
    let (mut missed, mut after_gap, mut killed, mut errors) = (0, 0, false, 0);
    let start = Instant::now();
    let mut take = |ev: TopicEvent<Ticks>, seen: &mut Vec<(u64, u64, bool)>| match ev {
        TopicEvent::Message(m) => {
            seen.push((m.seq, m.message, m.backfilled));
            true
        }
        TopicEvent::Lost { count, .. } => panic!("{count} lost with a cap of 100 000"),
        TopicEvent::Notice(Event::MayHaveMissed { .. }) => {
            missed += 1;
            false
        }
        _ => false,
    };
    while after_gap < 2000 {
        assert!(start.elapsed() < WAIT, "stuck: {} messages", seen.len());
        match sub.next(WAIT) {
            Some(Ok(ev)) => {
                if take(ev, &mut seen) && killed {
                    after_gap += 1;
                }
            }
            // A backfill that found the connection still down past the
            // timeout; the next read tries again.
            Some(Err(e)) if e.is_retryable() => errors += 1,
            Some(Err(e)) => panic!("{e}"),
            None => panic!(
                "no item within {WAIT:?}: {} messages, killed {killed}, published {}",
                seen.len(),
                published.load(Ordering::SeqCst)
            ),
        }
        if !killed && seen.len() >= 2000 {
            kill();
            killed = true;
        }
    }
    stop.store(true, Ordering::SeqCst);
    publishing.join().unwrap();
    let total = published.load(Ordering::SeqCst);
    // What is still on the way, bounded.
    let start = Instant::now();
    while (seen.len() as u64) < total && start.elapsed() < WAIT {
        if let Some(Ok(ev)) = sub.next(Duration::from_millis(200)) {
            take(ev, &mut seen);
        }
    }
    let unique: BTreeSet<u64> = seen.iter().map(|s| s.0).collect();
    let duplicated = seen.len() - unique.len();
    let lost = total - unique.len() as u64;
    let backfilled = seen.iter().filter(|s| s.2).count();
    let stats = sub.inner().stats();
    println!(
        "topic CLIENT KILL ({}, {}): published {total}, delivered {}, lost {lost}, delivered twice {duplicated}, backfilled {backfilled}, duplicates dropped {}, gap events {missed}, retried errors {errors}",
        if matches!(target, Target::Cluster(_)) {
            "cluster"
        } else {
            "standalone"
        },
        if asynchronous { "async" } else { "blocking" },
        seen.len(),
        stats.duplicates,
    );
    assert!(missed >= 1, "the kill was reported");
    assert_eq!(lost, 0, "every message arrived");
    assert_eq!(duplicated, 0, "no message delivered twice");
    assert!(
        seen.iter()
            .enumerate()
            .all(|(i, s)| s.0 == i as u64 + 1 && s.1 == i as u64),
        "in sequence order, each message its own"
    );
    assert_eq!(stats.lost, 0);
    assert_eq!(stats.delivered + stats.backfilled, total);
}

#[test]
fn client_kill_standalone_blocking() {
    let s = server();
    client_kill(Target::standalone(s.url()), false, || {
        kill_pubsub_clients(&[s])
    });
}

#[test]
fn client_kill_standalone_async() {
    let s = server();
    client_kill(Target::standalone(s.url()), true, || {
        kill_pubsub_clients(&[s])
    });
}

#[test]
fn client_kill_cluster_blocking() {
    let c = cluster();
    let nodes: Vec<&RedisServer> = c.primaries().iter().collect();
    client_kill(Target::cluster(c.urls()), false, || {
        kill_pubsub_clients(&nodes)
    });
}

#[test]
fn client_kill_cluster_async() {
    let c = cluster();
    let nodes: Vec<&RedisServer> = c.primaries().iter().collect();
    client_kill(Target::cluster(c.urls()), true, || {
        kill_pubsub_clients(&nodes)
    });
}

/// A subscriber whose buffer drops 990 of 1,000 messages, on a topic
/// capped at 100: what the stream still holds is backfilled, the rest is
/// one `Lost` event with the exact count; nothing twice.
fn gap_longer_than_cap(asynchronous: bool) {
    let s = server();
    let topic = Topic::new(
        Ticks {
            run: redis_state::testing::unique_prefix("cap"),
        },
        100,
    )
    .unwrap();
    let target = Target::standalone(s.url());
    let small = SubscriberOptions::new()
        .capacity(10)
        .overflow(Overflow::DropNewest);
    let mut sub = Sub::new(target.clone(), asynchronous, small);
    sub.subscribe(&topic);
    let mut publish = publisher(&target);
    for n in 0..1000u64 {
        publish(topic.publish(&n));
    }
    // Every message was published (and trimmed) before the first read. A
    // loaded machine can make the subscriber's connection time out and
    // reconnect: the gap is then announced by a "may have missed" notice
    // instead of a full buffer, and filled the same way.
    let start = Instant::now();
    while sub.inner().subscriber().received() < 1000 && start.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(10));
    }
    let held: u64 = s.query(redis::cmd("XLEN").arg(topic.stream_key())).unwrap();
    let (mut seqs, mut lost, mut lagged, mut missed) = (Vec::new(), Vec::new(), 0, 0);
    let start = Instant::now();
    while seqs.len() as u64 + lost.iter().map(|l: &(u64, u64)| l.1).sum::<u64>() < 1000 {
        assert!(
            start.elapsed() < WAIT,
            "not all accounted for: {} delivered, lost {lost:?}",
            seqs.len()
        );
        let Some(item) = sub.next(Duration::from_millis(300)) else {
            continue;
        };
        match item.unwrap() {
            TopicEvent::Message(m) => seqs.push(m.seq),
            TopicEvent::Lost { first, count, .. } => lost.push((first, count)),
            TopicEvent::Notice(Event::Lagged { dropped }) => lagged += dropped,
            TopicEvent::Notice(Event::MayHaveMissed { .. }) => missed += 1,
            _ => {}
        }
    }
    // Copies still on the way are dropped by their numbers.
    while let Some(item) = sub.next(Duration::from_millis(300)) {
        match item.unwrap() {
            TopicEvent::Message(m) => seqs.push(m.seq),
            TopicEvent::Notice(Event::Lagged { dropped }) => lagged += dropped,
            TopicEvent::Notice(Event::MayHaveMissed { .. }) => missed += 1,
            _ => {}
        }
    }
    println!(
        "gap past the cap: stream holds {held}, buffer dropped {lagged}, reconnects {missed}, lost {lost:?}, delivered {}",
        seqs.len()
    );
    assert!(lagged > 0 || missed > 0, "the gap was announced");
    assert_eq!(lost.len(), 1, "one Lost event: {lost:?}");
    let (first, count) = lost[0];
    assert_eq!(first, 1, "lost from the first unseen message");
    assert_eq!(count, 1000 - held, "lost what the stream no longer holds");
    assert_eq!(
        seqs,
        (count + 1..=1000).collect::<Vec<_>>(),
        "the rest in order, once"
    );
    assert_eq!(sub.inner().stats().lost, count);
    assert!(held < 1000, "the stream was trimmed");
}

#[test]
fn gap_longer_than_cap_is_reported_lost_blocking() {
    gap_longer_than_cap(false);
}

#[test]
fn gap_longer_than_cap_is_reported_lost_async() {
    gap_longer_than_cap(true);
}

/// A reader that resumes from a position reads the stored messages after
/// it first, then the live ones, in order.
#[test]
fn resume_from_a_position() {
    let s = server();
    let topic = Topic::new(
        Ticks {
            run: redis_state::testing::unique_prefix("resume"),
        },
        1000,
    )
    .unwrap();
    let target = Target::standalone(s.url());
    let mut publish = publisher(&target);
    for n in 0..10u64 {
        publish(topic.publish(&n));
    }
    let mut sub = Sub::new(target, false, opts());
    sub.subscribe_from(&topic, 4);
    publish(topic.publish(&10));
    let mut got = Vec::new();
    while got.len() < 7 {
        match sub.next(WAIT).expect("an item").unwrap() {
            TopicEvent::Message(m) => got.push((m.seq, m.message, m.backfilled)),
            TopicEvent::Notice(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        got.iter().map(|g| (g.0, g.1)).collect::<Vec<_>>(),
        (5..=11).map(|s| (s, s - 1)).collect::<Vec<_>>()
    );
    assert!(got[..6].iter().all(|g| g.2), "5..=10 came from the stream");
    assert_eq!(sub.inner().position(&topic), Some(11));
}

/// A sharded topic on a Cluster: the script appends and `SPUBLISH`es on
/// the channel's node; messages arrive with their numbers.
#[test]
fn sharded_topic_on_a_cluster() {
    let c = cluster();
    let topic = Topic::new(
        ShardTicks {
            run: redis_state::testing::unique_prefix("shard"),
        },
        1000,
    )
    .unwrap();
    let target = Target::cluster(c.urls());
    let mut sub = Sub::new(target.clone(), true, opts());
    sub.subscribe(&topic);
    let mut con = c.connection().unwrap();
    let first = topic.publish(&7).run(&mut con).unwrap();
    assert_eq!((first.seq, first.receivers), (1, 1));
    assert_eq!(topic.publish(&8).run(&mut con).unwrap().seq, 2);
    let mut got = Vec::new();
    while got.len() < 2 {
        if let TopicEvent::Message(m) = sub.next(WAIT).expect("an item").unwrap() {
            got.push((m.seq, m.message));
        }
    }
    assert_eq!(got, vec![(1, 7), (2, 8)]);
    // A plain subscriber of the channel sees the number in front.
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(topic.stream_key())
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        entries,
        vec![
            ("0-1".to_owned(), vec!["m".to_owned(), "7".to_owned()]),
            ("0-2".to_owned(), vec!["m".to_owned(), "8".to_owned()]),
        ]
    );
}

#[test]
fn a_cap_of_zero_is_refused() {
    let err = Topic::new(Ticks { run: "x".into() }, 0).unwrap_err();
    assert!(
        matches!(err, redis_state::Error::InvalidConfig { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("cap"), "{err}");
}
