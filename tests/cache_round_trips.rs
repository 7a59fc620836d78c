//! The round-trip budget of the cache strategies (DESIGN principle 3),
//! counted at the executor: every `execute` is one round trip. A cache-aside
//! miss costs two (get-or-lease, then the fill), a hit one; standalone and
//! Cluster, blocking and async.
//!
//! Each scenario first runs the path once on another id, so that the
//! server has the scripts cached and no `NOSCRIPT` reload is counted.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Topology, namespace};
use redis::Value;
use redis_state::cache::Cache;
use redis_state::exec::{AsyncExecutor, SyncExecutor};
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
}

impl<C: AsyncExecutor> AsyncExecutor for Counting<C> {
    fn execute_async(
        &mut self,
        plan: Plan,
    ) -> impl Future<Output = redis_state::Result<Vec<Value>>> + Send {
        self.rounds += 1;
        self.con.execute_async(plan)
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
