//! The round-trip budget of the cache strategies (DESIGN principle 3),
//! counted at the executor: every `execute` is one round trip. A cache-aside
//! miss costs two (get-or-lease, then the fill), a hit one; standalone and
//! Cluster, blocking and async; with `FirstRead::Get` a hit is one plain
//! `GET` and a miss three (`GET`, the lease, the fill). A write-behind costs one on one server
//! (the append and the entry in one script) and two on a Cluster, one there
//! too for a type in the bucketed layout (`#[cache(buckets = N)]`: the
//! entry and its bucket's queue share a hash tag).
//!
//! Each scenario first runs the path once on another id, so that the
//! server has the scripts cached and no `NOSCRIPT` reload is counted.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Topology, namespace};
use redis::Value;
use redis_state::cache::{Cache, CacheOptions, FirstRead};
use redis_state::exec::{AsyncExecutor, SyncExecutor};
use redis_state::keys::{IdBuf, IdValue};
use redis_state::op::Plan;
use redis_state::prelude::*;
use redis_state::testing::{shared_cluster, shared_server};
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "rtt_item:{id}", ttl = "10m")]
struct Item {
    id: u64,
    name: String,
}

/// `Item` in the bucketed layout: each entry's key and its write-behind
/// queue carry the hash tag of its bucket.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "rtt_bucketed:{id}", ttl = "10m", buckets = 16)]
struct Bucketed {
    id: u64,
    name: String,
}

fn bucketed(id: u64) -> Bucketed {
    Bucketed {
        id,
        name: format!("bucketed {id}"),
    }
}

fn item(id: u64) -> Item {
    Item {
        id,
        name: format!("item {id}"),
    }
}

/// An executor that counts the round trips it sends.
struct Counting<C> {
    con: C,
    rounds: usize,
}

impl<C> Counting<C> {
    fn new(con: C) -> Self {
        Counting { con, rounds: 0 }
    }

    /// The round trips since the last call.
    fn take(&mut self) -> usize {
        std::mem::take(&mut self.rounds)
    }
}

impl<C: SyncExecutor> SyncExecutor for Counting<C> {
    fn execute(&mut self, plan: Plan) -> redis_state::Result<Vec<Value>> {
        self.rounds += 1;
        self.con.execute(plan)
    }
    fn is_one_server(&self) -> bool {
        self.con.is_one_server()
    }
}

impl<C: AsyncExecutor> AsyncExecutor for Counting<C> {
    fn execute_async(
        &mut self,
        plan: Plan,
    ) -> impl Future<Output = redis_state::Result<Vec<Value>>> + Send {
        self.rounds += 1;
        self.con.execute_async(plan)
    }
    fn is_one_server(&self) -> bool {
        self.con.is_one_server()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What a read cost: (round trips, loader calls, value).
type Cost = (usize, usize, Option<Item>);

/// Reads `id` through `get_or_load` (or `_async`), counting.
trait Reader {
    fn read(&mut self, cache: &Cache<Item>, id: u64) -> Cost;
}

impl<C: SyncExecutor + Send> Reader for Counting<C> {
    fn read(&mut self, cache: &Cache<Item>, id: u64) -> Cost {
        let loads = AtomicUsize::new(0);
        let v = cache
            .get_or_load(self, &id, || {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(Some(item(id)))
            })
            .unwrap();
        (self.take(), loads.load(Ordering::SeqCst), v)
    }
}

/// An async connection with its runtime.
struct AsyncReader<C>(tokio::runtime::Runtime, Counting<C>);

impl<C: AsyncExecutor> Reader for AsyncReader<C> {
    fn read(&mut self, cache: &Cache<Item>, id: u64) -> Cost {
        let loads = AtomicUsize::new(0);
        let AsyncReader(rt, con) = self;
        let v = rt
            .block_on(cache.get_or_load_async(con, &id, || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(Some(item(id)))
            }))
            .unwrap();
        (con.take(), loads.load(Ordering::SeqCst), v)
    }
}

fn reader(topology: Topology, asynchronous: bool) -> Box<dyn Reader> {
    match (topology, asynchronous) {
        (Topology::Standalone, false) => {
            Box::new(Counting::new(shared_server().connection().unwrap()))
        }
        (Topology::Cluster, false) => {
            Box::new(Counting::new(shared_cluster().connection().unwrap()))
        }
        (Topology::Standalone, true) => {
            let rt = runtime();
            let con = rt.block_on(shared_server().async_connection()).unwrap();
            Box::new(AsyncReader(rt, Counting::new(con)))
        }
        (Topology::Cluster, true) => {
            let rt = runtime();
            let con = rt.block_on(shared_cluster().async_connection()).unwrap();
            Box::new(AsyncReader(rt, Counting::new(con)))
        }
    }
}

fn miss_fills_in_two_round_trips(topology: Topology, asynchronous: bool) {
    let ns = namespace("miss_fills_in_two_round_trips");
    let cache = Cache::<Item>::new().namespace(&ns);
    let mut r = reader(topology, asynchronous);
    // Warm the script cache.
    assert_eq!(r.read(&cache, 1).2, Some(item(1)));

    let (rounds, loads, v) = r.read(&cache, 2);
    assert_eq!(v, Some(item(2)));
    assert_eq!(loads, 1, "a miss calls the loader once");
    assert_eq!(rounds, 2, "a miss: get-or-lease, then the fill");

    let (rounds, loads, v) = r.read(&cache, 2);
    assert_eq!(v, Some(item(2)), "the fill was stored");
    assert_eq!(loads, 0, "a hit does not load");
    assert_eq!(rounds, 1, "a hit: one round trip");
}

#[test]
fn standalone_blocking_miss_fills_in_two_round_trips() {
    miss_fills_in_two_round_trips(Topology::Standalone, false);
}

#[test]
fn standalone_async_miss_fills_in_two_round_trips() {
    miss_fills_in_two_round_trips(Topology::Standalone, true);
}

#[test]
fn cluster_blocking_miss_fills_in_two_round_trips() {
    miss_fills_in_two_round_trips(Topology::Cluster, false);
}

#[test]
fn cluster_async_miss_fills_in_two_round_trips() {
    miss_fills_in_two_round_trips(Topology::Cluster, true);
}

/// `FirstRead::Get`: a hit is one plain `GET`, a miss three round trips
/// (the `GET`, the lease, the fill). The entry it fills is the one a
/// `Lease` cache reads, and the reverse.
fn get_first_hits_with_a_plain_get(topology: Topology, asynchronous: bool) {
    let ns = namespace("get_first_hits_with_a_plain_get");
    let cache = Cache::<Item>::new()
        .namespace(&ns)
        .options(CacheOptions::default().first_read(FirstRead::Get));
    let lease = Cache::<Item>::new().namespace(&ns);
    let mut r = reader(topology, asynchronous);
    // Warm the script cache.
    assert_eq!(r.read(&cache, 1).2, Some(item(1)));

    let (rounds, loads, v) = r.read(&cache, 2);
    assert_eq!(v, Some(item(2)));
    assert_eq!(loads, 1, "a miss calls the loader once");
    assert_eq!(rounds, 3, "a miss: GET, the lease, then the fill");

    let (rounds, loads, v) = r.read(&cache, 2);
    assert_eq!(v, Some(item(2)), "the fill was stored");
    assert_eq!(loads, 0, "a hit does not load");
    assert_eq!(rounds, 1, "a hit: one GET");

    // The two choices share entries.
    assert_eq!(r.read(&lease, 2), (1, 0, Some(item(2))));
    assert_eq!(r.read(&lease, 3).0, 2);
    assert_eq!(r.read(&cache, 3), (1, 0, Some(item(3))));
}

#[test]
fn standalone_blocking_get_first_hits_with_a_plain_get() {
    get_first_hits_with_a_plain_get(Topology::Standalone, false);
}

#[test]
fn standalone_async_get_first_hits_with_a_plain_get() {
    get_first_hits_with_a_plain_get(Topology::Standalone, true);
}

#[test]
fn cluster_blocking_get_first_hits_with_a_plain_get() {
    get_first_hits_with_a_plain_get(Topology::Cluster, false);
}

#[test]
fn cluster_async_get_first_hits_with_a_plain_get() {
    get_first_hits_with_a_plain_get(Topology::Cluster, true);
}

/// `FirstRead::Get` over another Redis type under the key (envelope
/// format): read as a miss, the lease taken over it, the value filled.
#[test]
fn get_first_over_another_type_fills() {
    let ns = namespace("get_first_over_another_type");
    let cache = Cache::<Item>::new()
        .namespace(&ns)
        .options(CacheOptions::default().first_read(FirstRead::Get));
    let mut con = Counting::new(shared_server().connection().unwrap());
    let _: i64 = redis_state::op::command("HSET", cache.key(&1))
        .arg("a")
        .arg("b")
        .run(&mut con)
        .unwrap();
    con.take();
    let (rounds, loads, v) = con.read(&cache, 1);
    assert_eq!((loads, v), (1, Some(item(1))));
    assert_eq!(rounds, 3, "GET (another type), the lease over it, the fill");
    assert_eq!(con.read(&cache, 1), (1, 0, Some(item(1))));
}

/// Calls of `command` the server has served so far.
fn calls(con: &mut redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// On the wire: a `Get` hit is one plain `GET` and no script call; a
/// `Lease` hit is one script call. A server of its own, so that no other
/// test's commands are counted.
#[test]
fn a_get_first_hit_is_a_plain_get_on_the_wire() {
    let server = redis_state::testing::RedisServer::start().unwrap();
    let mut con = server.connection().unwrap();
    let mut stats = server.connection().unwrap();
    let get_first =
        Cache::<Item>::new().options(CacheOptions::default().first_read(FirstRead::Get));
    let lease = Cache::<Item>::new();
    get_first
        .get_or_load(&mut con, &1, || Ok::<_, String>(Some(item(1))))
        .unwrap();
    let scripts = |stats: &mut redis::Connection| calls(stats, "evalsha") + calls(stats, "eval");

    let (gets, evals) = (calls(&mut stats, "get"), scripts(&mut stats));
    let v = get_first
        .get_or_load(&mut con, &1, || Ok::<_, String>(None))
        .unwrap();
    assert_eq!(v, Some(item(1)));
    assert_eq!(calls(&mut stats, "get"), gets + 1, "one GET");
    assert_eq!(scripts(&mut stats), evals, "no script call");

    let evals = scripts(&mut stats);
    let v = lease
        .get_or_load(&mut con, &1, || Ok::<_, String>(None))
        .unwrap();
    assert_eq!(v, Some(item(1)));
    assert_eq!(scripts(&mut stats), evals + 1, "one script call");
}

// ---------------------------------------------------------------------------
// Write-behind

/// A write-behind on a standalone connection: one round trip, the append
/// and the entry in one script.
#[test]
fn a_write_behind_is_one_round_trip_on_one_server() {
    let ns = namespace("a_write_behind_is_one_round_trip");
    let cache = Cache::<Item>::new().namespace(&ns);
    let mut con = Counting::new(shared_server().connection().unwrap());
    // Warm the script cache.
    cache.write_behind(&1, &item(1)).run(&mut con).unwrap();
    con.take();

    let entry = cache.write_behind(&2, &item(2)).run(&mut con).unwrap();
    assert_eq!(con.take(), 1, "one round trip");
    assert!(entry.contains('-'), "a stream id: {entry}");
    assert_eq!(cache.get(&2).run(&mut con).unwrap(), Some(item(2)));
    let stream = redis_state::cache::behind::stream_key::<Item>(Some(&ns));
    let queued: u64 = redis_state::op::command("XLEN", &stream)
        .run(&mut con)
        .unwrap();
    assert_eq!(queued, 2);
}

/// The one-step write refuses as the two-step one did: a full queue
/// (`StreamFull`) or a queue key of another type leaves no entry, and the
/// queue as it was.
#[test]
fn a_refused_one_step_write_behind_caches_nothing() {
    let ns = namespace("a_refused_one_step_write_behind");
    let cache = Cache::<Item>::new().namespace(&ns);
    let stream = redis_state::cache::behind::stream_key::<Item>(Some(&ns));
    let mut con = Counting::new(shared_server().connection().unwrap());
    for id in 1..=2 {
        cache
            .write_behind(&id, &item(id))
            .max_queued(2)
            .run(&mut con)
            .unwrap();
    }
    con.take();
    let err = cache
        .write_behind(&3, &item(3))
        .max_queued(2)
        .run(&mut con)
        .unwrap_err();
    assert_eq!(con.take(), 1, "refused in the one round trip");
    match err {
        redis_state::Error::StreamFull { key, len } => {
            assert_eq!(key, stream);
            assert_eq!(len, 2);
        }
        other => panic!("expected StreamFull, got {other:?}"),
    }
    assert_eq!(cache.get(&3).run(&mut con).unwrap(), None);
    let queued: u64 = redis_state::op::command("XLEN", &stream)
        .run(&mut con)
        .unwrap();
    assert_eq!(queued, 2, "nothing appended");

    // A queue key of another type: the append fails, nothing is cached.
    let _: u64 = redis_state::op::command("DEL", &stream)
        .run(&mut con)
        .unwrap();
    let _: () = redis_state::op::command("SET", &stream)
        .arg("not a stream")
        .run(&mut con)
        .unwrap();
    let err = cache.write_behind(&4, &item(4)).run(&mut con).unwrap_err();
    assert_eq!(err.server_code(), Some("WRONGTYPE"), "{err:?}");
    assert_eq!(cache.get(&4).run(&mut con).unwrap(), None);
    let kept: String = redis_state::op::command("GET", &stream)
        .run(&mut con)
        .unwrap();
    assert_eq!(kept, "not a stream");
}

/// On a Cluster the queue and the entry live in different slots: two round
/// trips, the entry only after the append (no CROSSSLOT).
#[test]
fn a_write_behind_on_a_cluster_is_two_round_trips() {
    let ns = namespace("a_write_behind_on_a_cluster");
    let cache = Cache::<Item>::new().namespace(&ns);
    let mut con = Counting::new(shared_cluster().connection().unwrap());
    cache.write_behind(&1, &item(1)).run(&mut con).unwrap();
    con.take();
    cache.write_behind(&2, &item(2)).run(&mut con).unwrap();
    assert_eq!(con.take(), 2);
    assert_eq!(cache.get(&2).run(&mut con).unwrap(), Some(item(2)));
}

/// The wait policy: a write that finds the queue full waits for room and
/// then goes through; the queue never holds more than its bound.
#[test]
fn a_waiting_write_behind_goes_through_once_there_is_room() {
    let ns = namespace("a_waiting_write_behind_goes_through");
    let cache = Cache::<Item>::new().namespace(&ns);
    let stream = redis_state::cache::behind::stream_key::<Item>(Some(&ns));
    let mut con = shared_server().connection().unwrap();
    for id in 1..=2 {
        cache
            .write_behind(&id, &item(id))
            .max_queued(2)
            .run(&mut con)
            .unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let mut con = shared_server().connection().unwrap();
            tx.send(()).unwrap();
            cache.write_behind_waiting(
                &mut con,
                &3,
                &item(3),
                2,
                std::time::Duration::from_secs(30),
            )
        })
    };
    rx.recv().unwrap();
    // A worker settles the oldest write: room for one.
    let first: Value = redis_state::op::command("XRANGE", &stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .run(&mut con)
        .unwrap();
    let Value::Array(entries) = first else {
        panic!("XRANGE: {first:?}")
    };
    let Some(Value::Array(entry)) = entries.first() else {
        panic!("no entry")
    };
    let Some(Value::BulkString(entry_id)) = entry.first() else {
        panic!("no entry id")
    };
    let deleted: u64 = redis_state::op::command("XDEL", &stream)
        .arg(&entry_id[..])
        .run(&mut con)
        .unwrap();
    assert_eq!(deleted, 1);

    let queued = writer.join().unwrap().unwrap();
    assert!(queued.contains('-'), "a stream id: {queued}");
    assert_eq!(cache.get(&3).run(&mut con).unwrap(), Some(item(3)));
    let len: u64 = redis_state::op::command("XLEN", &stream)
        .run(&mut con)
        .unwrap();
    assert_eq!(len, 2, "never more than the bound");
}

/// The wait is bounded: with nobody draining the queue, the write fails
/// with `StreamFull` after the wait, async as blocking, and caches nothing.
#[test]
fn a_waiting_write_behind_gives_up_after_its_bound() {
    let ns = namespace("a_waiting_write_behind_gives_up");
    let cache = Cache::<Item>::new().namespace(&ns);
    let mut con = shared_server().connection().unwrap();
    cache
        .write_behind(&1, &item(1))
        .max_queued(1)
        .run(&mut con)
        .unwrap();
    let wait = std::time::Duration::from_millis(30);
    let err = cache
        .write_behind_waiting(&mut con, &2, &item(2), 1, wait)
        .unwrap_err();
    assert!(
        matches!(err, redis_state::Error::StreamFull { len: 1, .. }),
        "{err:?}"
    );
    let rt = runtime();
    let mut a = rt.block_on(shared_server().async_connection()).unwrap();
    let err = rt
        .block_on(cache.write_behind_waiting_async(&mut a, &3, &item(3), 1, wait))
        .unwrap_err();
    assert!(
        matches!(err, redis_state::Error::StreamFull { len: 1, .. }),
        "{err:?}"
    );
    assert_eq!(cache.get(&2).run(&mut con).unwrap(), None);
    assert_eq!(cache.get(&3).run(&mut con).unwrap(), None);
}

// ---------------------------------------------------------------------------
// Write-behind in the bucketed layout

fn id_buf(id: u64) -> IdBuf {
    let mut buf = IdBuf::new();
    id.write_id(&mut buf);
    buf
}

/// The queue of an id's bucket.
fn bucket_stream(ns: &Namespace, id: u64) -> String {
    let bucket = Bucketed::SCHEMA.bucket_of(&id_buf(id));
    redis_state::cache::behind::bucket_stream_key::<Bucketed>(Some(ns), bucket)
}

/// On a Cluster, a type in the bucketed layout writes behind in one round
/// trip, blocking and async: the append to its bucket's queue and the
/// entry in one script (the keys share the bucket's hash tag).
#[test]
fn a_bucketed_write_behind_on_a_cluster_is_one_round_trip() {
    let ns = namespace("a_bucketed_write_behind_on_a_cluster");
    let cache = Cache::<Bucketed>::new().namespace(&ns);
    let mut con = Counting::new(shared_cluster().connection().unwrap());
    cache.write_behind(&1, &bucketed(1)).run(&mut con).unwrap();
    con.take();
    for id in 2..=40 {
        cache
            .write_behind(&id, &bucketed(id))
            .run(&mut con)
            .unwrap();
        assert_eq!(con.take(), 1, "one round trip for id {id}");
    }
    let rt = runtime();
    let mut a = Counting::new(rt.block_on(shared_cluster().async_connection()).unwrap());
    for id in 41..=60 {
        rt.block_on(cache.write_behind(&id, &bucketed(id)).run_async(&mut a))
            .unwrap();
        assert_eq!(a.take(), 1, "one round trip for id {id} (async)");
    }
    for id in 1..=60 {
        assert_eq!(cache.get(&id).run(&mut con).unwrap(), Some(bucketed(id)));
        let key = Bucketed::SCHEMA.key(Some(&ns), &id_buf(id));
        let stream = bucket_stream(&ns, id);
        assert_eq!(
            redis_state::keys::key_slot(key.as_bytes()),
            redis_state::keys::key_slot(stream.as_bytes()),
            "{key} and {stream} share a slot"
        );
    }
    // Every write is queued, each in its own bucket's stream.
    let mut total = 0;
    for stream in redis_state::cache::behind::stream_keys::<Bucketed>(Some(&ns)) {
        let len: u64 = redis_state::op::command("XLEN", &stream)
            .run(&mut con)
            .unwrap();
        total += len;
    }
    assert_eq!(total, 60);
}

/// A refused append (the bucket's queue full, or a key of another type in
/// its place) leaves no entry on a Cluster, refused in the one round trip.
#[test]
fn a_refused_bucketed_write_behind_on_a_cluster_caches_nothing() {
    let ns = namespace("a_refused_bucketed_write_behind");
    let cache = Cache::<Bucketed>::new().namespace(&ns);
    let mut con = Counting::new(shared_cluster().connection().unwrap());
    // Two ids of one bucket, and a third of the same bucket.
    let bucket_of = |id: u64| Bucketed::SCHEMA.bucket_of(&id_buf(id));
    let same: Vec<u64> = (1..)
        .filter(|id| bucket_of(*id) == bucket_of(1))
        .take(3)
        .collect();
    for id in &same[..2] {
        cache
            .write_behind(id, &bucketed(*id))
            .max_queued(2)
            .run(&mut con)
            .unwrap();
    }
    con.take();
    let stream = bucket_stream(&ns, same[2]);
    let err = cache
        .write_behind(&same[2], &bucketed(same[2]))
        .max_queued(2)
        .run(&mut con)
        .unwrap_err();
    assert_eq!(con.take(), 1, "refused in the one round trip");
    match err {
        redis_state::Error::StreamFull { key, len } => {
            assert_eq!(key, stream);
            assert_eq!(len, 2);
        }
        other => panic!("expected StreamFull, got {other:?}"),
    }
    assert_eq!(cache.get(&same[2]).run(&mut con).unwrap(), None);
    let queued: u64 = redis_state::op::command("XLEN", &stream)
        .run(&mut con)
        .unwrap();
    assert_eq!(queued, 2, "nothing appended");
    // The bound is per bucket: an id of another bucket still goes in.
    let other = (1..).find(|id| bucket_of(*id) != bucket_of(1)).unwrap();
    cache
        .write_behind(&other, &bucketed(other))
        .max_queued(2)
        .run(&mut con)
        .unwrap();
    assert_eq!(
        cache.get(&other).run(&mut con).unwrap(),
        Some(bucketed(other))
    );

    // A queue key of another type: the append fails, nothing is cached.
    let _: u64 = redis_state::op::command("DEL", &stream)
        .run(&mut con)
        .unwrap();
    let _: () = redis_state::op::command("SET", &stream)
        .arg("not a stream")
        .run(&mut con)
        .unwrap();
    con.take();
    let err = cache
        .write_behind(&same[2], &bucketed(same[2]))
        .run(&mut con)
        .unwrap_err();
    assert_eq!(con.take(), 1);
    assert_eq!(err.server_code(), Some("WRONGTYPE"), "{err:?}");
    assert_eq!(cache.get(&same[2]).run(&mut con).unwrap(), None);
}
