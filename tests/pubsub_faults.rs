//! Pub/sub under faults, on servers of the test's own (the faults would
//! disturb other tests on the shared ones): `CLIENT KILL` of the
//! subscriber's connection during traffic (messages lost and duplicated
//! counted and printed, the "may have missed" event checked), and a sharded
//! channel whose slot migrates to another primary (the server's
//! `SUNSUBSCRIBE` reported, the channel re-subscribed at the new owner).
//! Blocking and async subscribers, standalone and Cluster.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis_state::Operation;
use redis_state::pubsub::{
    Channel, Event, Kind, MissedReason, Subscriber, SubscriberOptions, Target,
};
use redis_state::testing::{RedisCluster, RedisServer};

#[derive(redis_state::Channel, Debug, Clone, PartialEq)]
#[channel(name = "faults:{run}", message = u64, format = "plain")]
struct Ticks {
    run: String,
}

#[derive(redis_state::Channel, Debug, Clone, PartialEq)]
#[channel(name = "room:{id}", message = u64, format = "plain", sharded)]
struct Room {
    id: String,
}

const WAIT: Duration = Duration::from_secs(20);

fn server() -> &'static RedisServer {
    static S: OnceLock<RedisServer> = OnceLock::new();
    S.get_or_init(|| RedisServer::start().expect("a redis-server of the test's own"))
}

/// A cluster of the tests' own; tests that kill connections or move
/// slots serialise on it.
fn cluster() -> std::sync::MutexGuard<'static, RedisCluster> {
    static C: OnceLock<Mutex<RedisCluster>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(RedisCluster::start(3).expect("a cluster of the test's own")))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A subscriber read the blocking way, or the async way on a runtime of
/// the test's.
enum Sub<C: Channel> {
    Blocking(Subscriber<C>),
    Async(tokio::runtime::Runtime, Subscriber<C>),
}

impl<C: Channel> Sub<C> {
    fn new(target: Target, asynchronous: bool) -> Self {
        let opts = SubscriberOptions::new()
            .capacity(1_000_000)
            .health_check(Duration::from_millis(200));
        if asynchronous {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let s = rt
                .block_on(Subscriber::connect_async(target, opts))
                .unwrap();
            Sub::Async(rt, s)
        } else {
            Sub::Blocking(Subscriber::connect(target, opts).unwrap())
        }
    }

    fn subscribe(&self, c: &C) {
        match self {
            Sub::Blocking(s) => s.subscribe(c),
            Sub::Async(rt, s) => rt.block_on(s.subscribe_async(c)),
        }
        .unwrap()
    }

    fn next(&mut self, d: Duration) -> Option<Event<C>> {
        let item = match self {
            Sub::Blocking(s) => s.recv(d),
            Sub::Async(rt, s) => {
                rt.block_on(async { tokio::time::timeout(d, s.next_async()).await.ok().flatten() })
            }
        };
        item.map(|r| r.expect("no bad messages here"))
    }
}

/// Publishes 0, 1, 2, ... on `ch` through `publish` until stopped;
/// returns how many were published.
fn publisher<C: Channel<Message = u64> + Clone>(
    ch: C,
    stop: Arc<AtomicBool>,
    published: Arc<AtomicU64>,
    mut run: impl FnMut(redis_state::pubsub::Publish) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut seq = 0u64;
        while !stop.load(Ordering::SeqCst) {
            run(ch.publish(&seq));
            seq += 1;
            published.store(seq, Ordering::SeqCst);
            if seq.is_multiple_of(50) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    })
}

/// Kills the subscriber's connection in the middle of a stream of
/// messages; the subscriber reports the gap, resubscribes and goes on.
fn client_kill(target: Target, asynchronous: bool, kill: impl Fn()) {
    let run = redis_state::testing::unique_prefix("kill");
    let ch = Ticks { run };
    let mut sub = Sub::new(target.clone(), asynchronous);
    sub.subscribe(&ch);

    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let client = match &target {
        Target::Standalone(url) => {
            let mut con = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            Box::new(move |op: redis_state::pubsub::Publish| {
                op.run(&mut con).unwrap();
            }) as Box<dyn FnMut(_) + Send>
        }
        Target::Cluster(urls) => {
            let mut con = redis::cluster::ClusterClient::new(urls.clone())
                .unwrap()
                .get_connection()
                .unwrap();
            Box::new(move |op: redis_state::pubsub::Publish| {
                op.run(&mut con).unwrap();
            })
        }
        _ => unreachable!(),
    };
    let publishing = publisher(ch.clone(), stop.clone(), published.clone(), client);

    let mut seen = Vec::new();
    let (mut missed, mut after_gap, mut killed) = (0, 0, false);
    let start = Instant::now();
    while after_gap < 2000 {
        assert!(
            start.elapsed() < WAIT,
            "stuck: {} messages, {missed} gaps",
            seen.len()
        );
        match sub.next(WAIT) {
            Some(Event::Message(m)) => {
                seen.push(m.message);
                if missed > 0 {
                    after_gap += 1;
                }
            }
            Some(Event::MayHaveMissed {
                reason: MissedReason::Disconnected,
            }) => missed += 1,
            Some(_) => {}
            None => panic!("no item within {WAIT:?}"),
        }
        if !killed && seen.len() == 2000 {
            kill();
            killed = true;
        }
    }
    stop.store(true, Ordering::SeqCst);
    publishing.join().unwrap();
    // What is still on the way.
    while let Some(ev) = sub.next(Duration::from_millis(300)) {
        if let Event::Message(m) = ev {
            seen.push(m.message);
        }
    }
    let total = published.load(Ordering::SeqCst);
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    let duplicated = seen.len() - unique.len();
    let lost = total - unique.len() as u64;
    println!(
        "CLIENT KILL ({}, {}): published {total}, received {}, lost {lost}, duplicated {duplicated}, gap events {missed}",
        if matches!(target, Target::Cluster(_)) {
            "cluster"
        } else {
            "standalone"
        },
        if asynchronous { "async" } else { "blocking" },
        seen.len(),
    );
    assert!(missed >= 1, "the kill was reported");
    assert_eq!(duplicated, 0, "pub/sub never delivers a message twice");
    // Order holds across the reconnect.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(unique.iter().all(|&s| s < total));
}

fn kill_pubsub_clients(nodes: &[&RedisServer]) {
    for n in nodes {
        let _: i64 = n
            .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub"))
            .unwrap();
    }
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

/// A sharded channel whose slot moves: the server's `SUNSUBSCRIBE` is
/// reported with a "may have missed" event, the channel is subscribed at
/// the new owner, and messages published there arrive.
fn slot_migration(asynchronous: bool) {
    let c = cluster();
    let room = Room {
        id: redis_state::testing::unique_prefix("room"),
    };
    let slot = redis_state::keys::key_slot(room.name().as_bytes());
    let mut sub = Sub::new(Target::cluster(c.urls()), asynchronous);
    sub.subscribe(&room);
    let mut publisher = c.connection().unwrap();
    assert_eq!(room.publish(&1).run(&mut publisher).unwrap(), 1);

    let from = c.owner_of_slot(slot).unwrap();
    let to = (from + 1) % c.primaries().len();
    c.migrate_slot(slot, to).unwrap();

    let mut events = Vec::new();
    let start = Instant::now();
    // Publish until the new owner counts a receiver (the re-subscription
    // is asynchronous), bounded by WAIT.
    loop {
        assert!(start.elapsed() < WAIT, "not re-subscribed: {events:?}");
        while let Some(ev) = sub.next(Duration::from_millis(50)) {
            events.push(format!("{ev:?}"));
        }
        if room.publish(&2).run(&mut publisher).unwrap() == 1 {
            break;
        }
    }
    let mut got = Vec::new();
    while let Some(ev) = sub.next(Duration::from_millis(300)) {
        match ev {
            Event::Message(m) => got.push(m.message),
            other => events.push(format!("{other:?}")),
        }
    }
    println!("slot {slot} moved from primary {from} to {to}: {events:?}");
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("Unsubscribed") && e.contains("Shard")),
        "{events:?}"
    );
    assert!(events.iter().any(|e| e.contains("SlotMoved")), "{events:?}");
    assert!(
        events
            .iter()
            .filter(|e| e.starts_with("Subscribed") && e.contains("Shard"))
            .count()
            >= 2,
        "{events:?}"
    );
    assert!(
        got.contains(&2),
        "the message at the new owner arrived: {got:?}"
    );
    let _ = Kind::Shard;
}

#[test]
fn sharded_channel_survives_slot_migration_blocking() {
    slot_migration(false);
}

#[test]
fn sharded_channel_survives_slot_migration_async() {
    slot_migration(true);
}

/// A sharded channel whose primary is killed: a replica takes over, the
/// subscriber reports "may have missed", subscribes again at the promoted
/// primary, and a message published there after the failover arrives.
fn primary_failover(asynchronous: bool) {
    let mut c = RedisCluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .config("cluster-node-timeout", "1000")
        .start()
        .expect("a cluster with replicas of the test's own");
    let room = Room {
        id: redis_state::testing::unique_prefix("failover"),
    };
    let slot = redis_state::keys::key_slot(room.name().as_bytes());
    let owner = c.owner_of_slot(slot).unwrap();
    let mut sub = Sub::new(Target::cluster(c.urls()), asynchronous);
    sub.subscribe(&room);
    {
        let mut publisher = c.connection().unwrap();
        assert_eq!(room.publish(&1).run(&mut publisher).unwrap(), 1);
    }
    let killed_at = c.kill_primary(owner).unwrap();
    let new_port = c
        .wait_for_promotion(owner, Duration::from_secs(60))
        .unwrap();
    let promoted_after = killed_at.elapsed();

    let mut events = Vec::new();
    let mut got = Vec::new();
    let start = Instant::now();
    let mut receivers = 0;
    // Publish at the promoted primary until it counts the subscriber (the
    // re-subscription is asynchronous), bounded by WAIT.
    while receivers == 0 {
        assert!(
            start.elapsed() < WAIT,
            "not re-subscribed after the failover: {events:?}"
        );
        while let Some(ev) = sub.next(Duration::from_millis(100)) {
            match ev {
                Event::Message(m) => got.push(m.message),
                other => events.push(format!("{other:?}")),
            }
        }
        let mut publisher = c.connection().unwrap();
        receivers = room.publish(&2).run(&mut publisher).unwrap_or(0);
    }
    let resubscribed_after = killed_at.elapsed();
    let start = Instant::now();
    while !got.contains(&2) && start.elapsed() < WAIT {
        if let Some(ev) = sub.next(Duration::from_millis(100)) {
            match ev {
                Event::Message(m) => got.push(m.message),
                other => events.push(format!("{other:?}")),
            }
        }
    }
    println!(
        "sharded channel across a primary failover ({}): promoted (port {new_port}) {promoted_after:?} after the kill, received again {resubscribed_after:?} after; {} events, {} re-subscriptions confirmed: {:?}",
        if asynchronous { "async" } else { "blocking" },
        events.len(),
        events
            .iter()
            .filter(|e| e.starts_with("Subscribed"))
            .count()
            - 1,
        &events[..events.len().min(3)]
    );
    assert!(
        events.iter().any(|e| e.contains("MayHaveMissed")),
        "the failover was reported: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("Subscribed") && e.contains("Shard")),
        "{events:?}"
    );
    assert!(
        got.contains(&2),
        "the message after the failover arrived: {got:?}"
    );
}

#[test]
fn sharded_channel_survives_primary_failover_blocking() {
    primary_failover(false);
}

#[test]
fn sharded_channel_survives_primary_failover_async() {
    primary_failover(true);
}

/// After `kill` drops the subscriber's connection, the server's
/// re-confirmation of `name` is reported once per reconnect: the
/// resubscriptions crossing after a reconnect (the client's own, the
/// subscriber's) confirm one subscription, and `count` of the server's
/// subscribers of `name` is 1 at the end.
fn one_confirmation_per_reconnect<C: Channel>(
    target: Target,
    asynchronous: bool,
    ch: &C,
    kind: Kind,
    kill: impl Fn(),
    count: impl Fn() -> u64,
) {
    let name = ch.name();
    let mut sub = Sub::new(target, asynchronous);
    sub.subscribe(ch);
    let first = sub.next(WAIT);
    assert!(
        matches!(first, Some(Event::Subscribed { .. })),
        "the first item is the confirmation"
    );
    kill();
    let mut events = Vec::new();
    let start = Instant::now();
    // Every item for a while after the kill: several health checks (every
    // 200 ms), time for late disconnection notices and crossing
    // resubscriptions.
    while start.elapsed() < Duration::from_secs(4) {
        if let Some(ev) = sub.next(Duration::from_millis(100)) {
            events.push(ev);
        }
    }
    let gaps = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::MayHaveMissed {
                    reason: MissedReason::Disconnected
                }
            )
        })
        .count();
    let confirmations = events
        .iter()
        .filter(
            |e| matches!(e, Event::Subscribed { kind: k, name: n, .. } if *k == kind && *n == name),
        )
        .count();
    let shown: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::Subscribed { kind, name, count } => {
                format!("Subscribed({kind:?} {name} {count})")
            }
            Event::MayHaveMissed { reason } => format!("MayHaveMissed({reason:?})"),
            Event::Unsubscribed { kind, name, count } => {
                format!("Unsubscribed({kind:?} {name} {count})")
            }
            _ => "other".to_owned(),
        })
        .collect();
    println!("after the kill: {shown:?}");
    assert!(gaps >= 1, "the kill was reported: {shown:?}");
    assert_eq!(
        confirmations, gaps,
        "one confirmation per reconnect: {shown:?}"
    );
    assert_eq!(count(), 1, "the server counts one subscription: {shown:?}");
}

fn numsub(s: &RedisServer, verb: &str, name: &str) -> u64 {
    let (_, n): (String, u64) = s.query(redis::cmd("PUBSUB").arg(verb).arg(name)).unwrap();
    n
}

#[test]
fn one_confirmation_per_reconnect_standalone_blocking() {
    let s = server();
    let ch = Ticks {
        run: redis_state::testing::unique_prefix("confirm"),
    };
    let name = ch.name();
    one_confirmation_per_reconnect(
        Target::standalone(s.url()),
        false,
        &ch,
        Kind::Channel,
        || kill_pubsub_clients(&[s]),
        || numsub(s, "NUMSUB", &name),
    );
}

#[test]
fn one_confirmation_per_reconnect_standalone_async() {
    let s = server();
    let ch = Ticks {
        run: redis_state::testing::unique_prefix("confirm"),
    };
    let name = ch.name();
    one_confirmation_per_reconnect(
        Target::standalone(s.url()),
        true,
        &ch,
        Kind::Channel,
        || kill_pubsub_clients(&[s]),
        || numsub(s, "NUMSUB", &name),
    );
}

#[test]
fn one_confirmation_per_reconnect_cluster_sharded() {
    let c = cluster();
    let room = Room {
        id: redis_state::testing::unique_prefix("confirm"),
    };
    let name = room.name();
    let owner = c
        .owner_of_slot(redis_state::keys::key_slot(name.as_bytes()))
        .unwrap();
    let nodes: Vec<&RedisServer> = c.primaries().iter().collect();
    one_confirmation_per_reconnect(
        Target::cluster(c.urls()),
        true,
        &room,
        Kind::Shard,
        || kill_pubsub_clients(&nodes),
        || numsub(&c.primaries()[owner], "SHARDNUMSUB", &name),
    );
}
