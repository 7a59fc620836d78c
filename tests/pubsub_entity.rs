//! Entity events (keyspace notifications of a `RedisHash` model) against
//! servers of the tests' own, with `notify-keyspace-events` set by the test
//! as an operator would: saved, deleted and expired entities, blocking and
//! async, standalone and Cluster (every primary subscribed); a server with
//! notifications off is a typed error naming what to set.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use redis_state::pubsub::{
    Change, EntityEvent, EntityEvents, EntityItem, SubscriberOptions, Target,
};
use redis_state::testing::{RedisCluster, RedisServer};
use redis_state::{Namespace, Operation, RedisHash};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "account:{id}")]
struct Account {
    #[redis(id)]
    id: String,
    name: String,
}

const WAIT: Duration = Duration::from_secs(10);

fn on_server() -> &'static RedisServer {
    static S: OnceLock<RedisServer> = OnceLock::new();
    S.get_or_init(|| {
        RedisServer::builder()
            .config("notify-keyspace-events", "Kghx")
            .start()
            .expect("a redis-server of the test's own")
    })
}

fn on_cluster() -> &'static RedisCluster {
    static C: OnceLock<RedisCluster> = OnceLock::new();
    C.get_or_init(|| {
        RedisCluster::builder()
            .config("notify-keyspace-events", "KA")
            .start()
            .expect("a cluster of the test's own")
    })
}

/// Entity events read the blocking way or the async way.
enum Events {
    Blocking(EntityEvents<Account>),
    Async(tokio::runtime::Runtime, EntityEvents<Account>),
}

impl Events {
    fn new(target: Target, ns: &Namespace, asynchronous: bool) -> Self {
        let opts = SubscriberOptions::new();
        if asynchronous {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let e = rt
                .block_on(EntityEvents::connect_async(target, Some(ns), opts))
                .unwrap();
            Events::Async(rt, e)
        } else {
            Events::Blocking(EntityEvents::connect(target, Some(ns), opts).unwrap())
        }
    }

    fn next(&mut self, d: Duration) -> Option<EntityItem> {
        let item = match self {
            Events::Blocking(e) => e.recv(d),
            Events::Async(rt, e) => {
                rt.block_on(async { tokio::time::timeout(d, e.next_async()).await.ok().flatten() })
            }
        };
        item.map(|r| r.expect("no error items here"))
    }

    fn nodes(&self) -> usize {
        match self {
            Events::Blocking(e) | Events::Async(_, e) => e.nodes(),
        }
    }

    /// Entity events until `want` of them match, bounded by WAIT.
    fn until(&mut self, mut done: impl FnMut(&[EntityEvent]) -> bool) -> Vec<EntityEvent> {
        let start = Instant::now();
        let mut got = Vec::new();
        while !done(&got) {
            assert!(start.elapsed() < WAIT, "not all events came: {got:?}");
            if let Some(EntityItem::Entity(e)) = self.next(Duration::from_millis(200)) {
                got.push(e);
            }
        }
        got
    }
}

fn has(got: &[EntityEvent], id: &str, change: &Change) -> bool {
    got.iter()
        .any(|e| e.id == [id.to_owned()] && &e.change == change)
}

/// Saves, deletes and expires accounts with ids spread over the slots;
/// every one is reported with its id parsed back from the key.
fn saved_deleted_expired(target: Target, asynchronous: bool, nodes: usize) {
    let ns = Namespace::new(redis_state::testing::unique_prefix("ent")).unwrap();
    let mut events = Events::new(target.clone(), &ns, asynchronous);
    assert_eq!(events.nodes(), nodes);
    let ids: Vec<String> = (0..12).map(|i| format!("a{i}")).collect();
    let run = |f: &mut dyn FnMut(&mut dyn redis_state::exec::SyncExecutor)| match &target {
        Target::Standalone(url) => {
            let mut con = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            f(&mut con)
        }
        Target::Cluster(urls) => {
            let mut con = redis::cluster::ClusterClient::new(urls.clone())
                .unwrap()
                .get_connection()
                .unwrap();
            f(&mut con)
        }
        _ => unreachable!(),
    };
    run(&mut |con| {
        for id in &ids {
            let a = Account {
                id: id.clone(),
                name: format!("name of {id}"),
            };
            a.save().namespace(&ns).run(con).unwrap();
        }
        for id in &ids[..4] {
            Account::delete(id.as_str())
                .namespace(&ns)
                .run(con)
                .unwrap();
        }
        for id in &ids[4..8] {
            let key = format!("{}:account:{id}", ns.as_str());
            let _: i64 = redis_state::op::command::<i64>("PEXPIRE", &key)
                .arg(20)
                .run(con)
                .unwrap();
        }
    });
    let got = events.until(|got| {
        ids.iter().all(|id| has(got, id, &Change::Saved))
            && ids[..4].iter().all(|id| has(got, id, &Change::Deleted))
            && ids[4..8].iter().all(|id| has(got, id, &Change::Expired))
    });
    let keys: BTreeSet<&str> = got.iter().map(|e| e.key.as_str()).collect();
    println!(
        "entity events ({} nodes, {}): {} events over {} keys",
        nodes,
        if asynchronous { "async" } else { "blocking" },
        got.len(),
        keys.len()
    );
    assert!(
        ids[8..]
            .iter()
            .all(|id| !has(&got, id, &Change::Deleted) && !has(&got, id, &Change::Expired)),
        "only what happened: {got:?}"
    );
    assert!(
        got.iter()
            .all(|e| e.key == format!("{}:account:{}", ns.as_str(), e.id[0])),
        "keys and ids agree"
    );
}

#[test]
fn standalone_blocking() {
    saved_deleted_expired(Target::standalone(on_server().url()), false, 1);
}

#[test]
fn standalone_async() {
    saved_deleted_expired(Target::standalone(on_server().url()), true, 1);
}

#[test]
fn cluster_blocking() {
    let c = on_cluster();
    saved_deleted_expired(Target::cluster(c.urls()), false, c.primaries().len());
}

#[test]
fn cluster_async() {
    let c = on_cluster();
    saved_deleted_expired(Target::cluster(c.urls()), true, c.primaries().len());
}

/// A server whose notifications are off: connecting fails with a typed
/// error that names the node, its setting and what to set.
#[test]
fn notifications_off_is_a_typed_error() {
    let off = RedisServer::start().expect("a redis-server of the test's own");
    let err = EntityEvents::<Account>::connect(
        Target::standalone(off.url()),
        None,
        SubscriberOptions::new(),
    )
    .unwrap_err();
    match &err {
        redis_state::Error::KeyspaceEventsOff { node, setting, .. } => {
            assert_eq!(setting, "");
            assert!(node.contains(&off.port().to_string()), "{node}");
        }
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("notify-keyspace-events") && text.contains("Kghx"),
        "{text}"
    );
    // Half the flags is still refused.
    let _: () = off
        .query(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("notify-keyspace-events")
                .arg("Kh"),
        )
        .unwrap();
    let err = EntityEvents::<Account>::connect(
        Target::standalone(off.url()),
        None,
        SubscriberOptions::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("\"hK\"") || err.to_string().contains("\"Kh\""),
        "{err}"
    );
}
