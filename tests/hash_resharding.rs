//! Bucketed models on a Cluster that changes under them: entities stay
//! loadable and findable while their slots migrate (ASK / MOVED), through
//! the blocking and the async Cluster connections, and the indexes stay
//! consistent with the entities after a primary is killed (`SIGKILL`) in
//! the middle of saves.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis_state::connect::ConnectionOptions;
use redis_state::keys::{IdBuf, IdValue};
use redis_state::prelude::*;
use redis_state::testing::{RedisCluster, RedisServer};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "item:{id}", buckets = 8)]
struct Item {
    #[redis(id)]
    id: u32,
    #[redis(index)]
    color: String,
    n: u64,
}

const ITEMS: u32 = 600;
const COLORS: [&str; 2] = ["red", "blue"];

fn item(id: u32) -> Item {
    Item {
        id,
        color: COLORS[id as usize % 2].to_owned(),
        n: u64::from(id) * 7,
    }
}

fn all_items() -> Vec<Item> {
    (0..ITEMS).map(item).collect()
}

/// The items of `color`, in id order (as `find_by` merges them).
fn expected(color: &str) -> Vec<Item> {
    let mut v: Vec<Item> = all_items()
        .into_iter()
        .filter(|i| i.color == color)
        .collect();
    v.sort_by_key(|i| i.id.to_string());
    v
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Loads every item and finds each color, through a blocking and an async
/// Cluster connection; every answer must be complete and exact.
struct Readers {
    sync: redis::cluster::ClusterConnection,
    rt: tokio::runtime::Runtime,
    async_con: redis::cluster_async::ClusterConnection,
    ids: Vec<u32>,
    want: Vec<Option<Item>>,
}

impl Readers {
    fn new(cluster: &RedisCluster) -> Self {
        let rt = runtime();
        let async_con = rt
            .block_on(cluster.async_connection())
            .expect("async connect");
        let ids: Vec<u32> = (0..ITEMS).collect();
        Readers {
            sync: cluster.connection().expect("connect"),
            rt,
            async_con,
            want: all_items().into_iter().map(Some).collect(),
            ids,
        }
    }

    fn check(&mut self, when: &str) {
        let loaded = Item::load_many(&self.ids)
            .run(&mut self.sync)
            .unwrap_or_else(|e| panic!("{when}: blocking load_many: {e}"));
        assert!(loaded == self.want, "{when}: blocking load_many differs");
        let loaded = self
            .rt
            .block_on(Item::load_many(&self.ids).run_async(&mut self.async_con))
            .unwrap_or_else(|e| panic!("{when}: async load_many: {e}"));
        assert!(loaded == self.want, "{when}: async load_many differs");
        for color in COLORS {
            let want = expected(color);
            let found = Item::find_by_color(color)
                .run(&mut self.sync)
                .unwrap_or_else(|e| panic!("{when}: blocking find_by {color}: {e}"));
            assert!(
                found == want,
                "{when}: blocking find_by {color}: {} found",
                found.len()
            );
            let found = self
                .rt
                .block_on(Item::find_by_color(color).run_async(&mut self.async_con))
                .unwrap_or_else(|e| panic!("{when}: async find_by {color}: {e}"));
            assert!(
                found == want,
                "{when}: async find_by {color}: {} found",
                found.len()
            );
        }
    }
}

fn setslot(node: &RedisServer, slot: u16, state: &str, id: &str) {
    node.query::<()>(
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(id),
    )
    .unwrap_or_else(|e| panic!("SETSLOT {slot} {state}: {e}"));
}

fn node_id(node: &RedisServer) -> String {
    node.query(redis::cmd("CLUSTER").arg("MYID")).expect("MYID")
}

/// Half of a bucket's entities moved, its index partition not yet: every
/// entity loads (each command that meets `ASK` follows it), through both
/// Cluster clients; once the slot has moved, `find_by` finds everything.
/// (`find_by` in the half-moved state: `finds_while_a_bucket_is_half_migrated`.)
#[test]
fn loads_while_a_bucket_is_half_migrated() {
    let cluster = RedisCluster::start(3).expect("a cluster starts");
    let mut con = cluster.connection().unwrap();
    Item::save_many(&all_items()).run(&mut con).unwrap();
    let mut readers = Readers::new(&cluster);
    for bucket in [0u16, 5] {
        let slot = Item::SCHEMA.bucket_slot(bucket);
        let from = cluster.owner_of_slot(slot).unwrap();
        let to = (from + 1) % 3;
        let (src, dst) = (&cluster.primaries()[from], &cluster.primaries()[to]);
        setslot(dst, slot, "IMPORTING", &node_id(src));
        setslot(src, slot, "MIGRATING", &node_id(dst));
        let keys: Vec<String> = src
            .query(
                redis::cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(slot)
                    .arg(10_000),
            )
            .unwrap();
        let moving: Vec<&String> = keys
            .iter()
            .filter(|k| !k.contains(":#item:"))
            .step_by(2)
            .collect();
        assert!(moving.len() > 10, "bucket {bucket}: {} keys", keys.len());
        src.query::<()>(
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(dst.port())
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&moving),
        )
        .unwrap();
        let loaded = Item::load_many(&readers.ids)
            .run(&mut readers.sync)
            .unwrap();
        assert!(
            loaded == readers.want,
            "bucket {bucket}: blocking load_many"
        );
        let loaded = readers
            .rt
            .block_on(Item::load_many(&readers.ids).run_async(&mut readers.async_con))
            .unwrap();
        assert!(loaded == readers.want, "bucket {bucket}: async load_many");
        cluster.migrate_slot(slot, to).unwrap();
        assert_eq!(cluster.owner_of_slot(slot).unwrap(), to);
        readers.check(&format!("bucket {bucket} migrated"));
    }
}

/// Starts moving `slot` to the next primary (`IMPORTING` / `MIGRATING`)
/// and moves only the keys `pick` chooses: the slot is left half migrated,
/// its keys split between the two nodes. Returns the target primary.
fn half_migrate(cluster: &RedisCluster, slot: u16, pick: impl Fn(usize, &str) -> bool) -> usize {
    let from = cluster.owner_of_slot(slot).unwrap();
    let to = (from + 1) % 3;
    let (src, dst) = (&cluster.primaries()[from], &cluster.primaries()[to]);
    setslot(dst, slot, "IMPORTING", &node_id(src));
    setslot(src, slot, "MIGRATING", &node_id(dst));
    let keys: Vec<String> = src
        .query(
            redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(10_000),
        )
        .unwrap();
    let moving: Vec<&String> = keys
        .iter()
        .enumerate()
        .filter(|(i, k)| pick(*i, k))
        .map(|(_, k)| k)
        .collect();
    assert!(
        !moving.is_empty() && moving.len() < keys.len(),
        "slot {slot}: {} of {} keys picked",
        moving.len(),
        keys.len()
    );
    src.query::<()>(
        redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(dst.port())
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&moving),
    )
    .unwrap();
    to
}

/// How long one find may take while a slot is held half migrated: the
/// refused script costs the client's `TRYAGAIN` retries (the test
/// support's client: 6, each at most 500 ms), twice on the blocking
/// client, then one more round trip.
const BOUND: Duration = Duration::from_secs(10);

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < BOUND, "{what} took {took:?}");
    println!("{what}: {took:?}");
    out
}

/// A bucket slot held half migrated, both ways: its index partitions not
/// moved and half of its entities moved, then (another bucket) the
/// partitions and half of the entities moved, the other half not. Every
/// verifying script over that partition gets `TRYAGAIN`; `find_by`
/// (blocking and async) still answers exactly, within a bound, reading
/// those candidates one key per command, and removes no index entry while
/// doing so (everything is found again once the slot has moved). An entity
/// whose value changed behind the index is not returned.
#[test]
fn finds_while_a_bucket_is_half_migrated() {
    let cluster = RedisCluster::start(3).expect("a cluster starts");
    let mut con = cluster.connection().unwrap();
    Item::save_many(&all_items()).run(&mut con).unwrap();
    let mut readers = Readers::new(&cluster);
    // The library's configured Cluster connection (its own bounded retries).
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut configured = ConnectionOptions::new().connect_cluster(&urls).unwrap();
    for (bucket, index_moves) in [(0u16, false), (5, true)] {
        let slot = Item::SCHEMA.bucket_slot(bucket);
        // One entity of the bucket changes color behind the index: its
        // entry under its old color is stale.
        let stale = (0..ITEMS)
            .find(|&id| Item::SCHEMA.bucket_of(&id_buf(id)) == bucket)
            .unwrap();
        redis::cmd("HSET")
            .arg(Item::key_of(&stale))
            .arg("color")
            .arg("green")
            .exec(&mut con)
            .unwrap();
        let to = half_migrate(&cluster, slot, |i, k| {
            if k.contains(":#item:") {
                index_moves
            } else {
                i.is_multiple_of(2)
            }
        });
        let when = format!("bucket {bucket} half migrated (index moved: {index_moves})");
        let mut want_loaded = readers.want.clone();
        want_loaded[stale as usize].as_mut().unwrap().color = "green".to_owned();
        let loaded = timed(&format!("{when}: blocking load_many"), || {
            Item::load_many(&readers.ids).run(&mut readers.sync)
        })
        .unwrap();
        assert!(loaded == want_loaded, "{when}: blocking load_many");
        for color in COLORS {
            let want: Vec<Item> = expected(color)
                .into_iter()
                .filter(|i| i.id != stale)
                .collect();
            let found = timed(&format!("{when}: blocking find_by {color}"), || {
                Item::find_by_color(color).run(&mut readers.sync)
            })
            .unwrap_or_else(|e| panic!("{when}: blocking find_by {color}: {e}"));
            assert!(
                found == want,
                "{when}: blocking find_by {color}: {} found, {} expected",
                found.len(),
                want.len()
            );
            let rt = &readers.rt;
            let async_con = &mut readers.async_con;
            let found = timed(&format!("{when}: async find_by {color}"), || {
                rt.block_on(Item::find_by_color(color).run_async(async_con))
            })
            .unwrap_or_else(|e| panic!("{when}: async find_by {color}: {e}"));
            assert!(
                found == want,
                "{when}: async find_by {color}: {} found, {} expected",
                found.len(),
                want.len()
            );
            // With a limit (the lookup, then one verify round).
            let found = timed(&format!("{when}: find_by {color} limit"), || {
                Item::find_by_color(color)
                    .limit(0, 1000)
                    .run(&mut readers.sync)
            })
            .unwrap();
            assert!(found == want, "{when}: find_by {color} limit");
            // Small pages: the candidates refused in one round are read
            // in the next, beside the next page's verification.
            if color == COLORS[0] {
                let found = timed(&format!("{when}: find_by {color} pages of 16"), || {
                    Item::find_by_color(color)
                        .page_size(16)
                        .run(&mut readers.sync)
                })
                .unwrap();
                assert!(found == want, "{when}: find_by {color} in pages of 16");
            }
            let found = timed(&format!("{when}: configured find_by {color}"), || {
                Item::find_by_color(color).run(&mut configured)
            })
            .unwrap();
            assert!(
                found == want,
                "{when}: configured connection find_by {color}"
            );
        }
        // The stale entry was kept (no script could remove it): it is
        // still listed under the old color.
        let old = COLORS[stale as usize % 2];
        let entry = format!("{}:{old}:{stale}", old.len());
        let index = format!(
            "{}:#item:idx:color",
            Item::SCHEMA.bucket_scope(None, bucket)
        );
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(&index)
            .arg(&entry)
            .query(&mut readers.sync)
            .unwrap();
        assert!(score.is_some(), "{when}: the stale entry was kept");
        cluster.migrate_slot(slot, to).unwrap();
        assert_eq!(cluster.owner_of_slot(slot).unwrap(), to);
        // The move done, the stale entry is removed by the find script and
        // the entity is saved back; then everything is found again.
        let found = Item::find_by_color(old).run(&mut con).unwrap();
        assert!(found.iter().all(|i| i.id != stale));
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(&index)
            .arg(&entry)
            .query(&mut con)
            .unwrap();
        assert!(
            score.is_none(),
            "the stale entry is removed once the slot moved"
        );
        Item::save(&item(stale)).run(&mut con).unwrap();
        readers.check(&format!("bucket {bucket} migrated"));
    }
    index_matches_entities(&mut con, ITEMS);
}

/// Accounts whose indexes are scoped to their tenant (one slot each).
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "acct:{tenant}:{id}", hash_tag = "tenant")]
struct Account {
    #[redis(id)]
    tenant: String,
    #[redis(id)]
    id: u32,
    #[redis(unique)]
    email: String,
    #[redis(index)]
    plan: String,
}

fn account(id: u32) -> Account {
    Account {
        tenant: "t1".to_owned(),
        id,
        email: format!("a{id}@example.com"),
        plan: if id.is_multiple_of(3) { "pro" } else { "free" }.to_owned(),
    }
}

/// A tenant's slot held half migrated, both ways (its indexes not moved
/// and half of its entities moved; then the indexes moved and the other
/// entities not): `find_unique_in` finds every account by its email, and
/// `find_by_in` each plan's accounts, through both Cluster clients, within
/// a bound.
#[test]
fn finds_a_tag_scoped_model_while_its_slot_is_half_migrated() {
    let cluster = RedisCluster::start(3).expect("a cluster starts");
    let mut con = cluster.connection().unwrap();
    const N: u32 = 12;
    let accounts: Vec<Account> = (0..N).map(account).collect();
    Account::save_many(&accounts).run(&mut con).unwrap();
    let rt = runtime();
    let mut async_con = rt.block_on(cluster.async_connection()).unwrap();
    let slot: u16 = cluster.primaries()[0]
        .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg("t1"))
        .unwrap();
    let entity = |k: &str| k.starts_with("acct:{t1}:");
    // First the indexes stay and the even entities move; then (the
    // migration finished and started again from the new owner) the
    // indexes and the odd entities move.
    for index_moves in [false, true] {
        let to = half_migrate(&cluster, slot, |i, k| {
            if entity(k) {
                i.is_multiple_of(2)
            } else {
                index_moves
            }
        });
        let when = format!("index moved: {index_moves}");
        for a in &accounts {
            let found = timed(&format!("{when}: find_unique {}", a.id), || {
                Account::find_unique_in(&"t1", Account::EMAIL, &a.email).run(&mut con)
            })
            .unwrap();
            assert_eq!(found.as_ref(), Some(a), "{when}: blocking find_unique");
            let found = timed(&format!("{when}: async find_unique {}", a.id), || {
                rt.block_on(
                    Account::find_unique_in(&"t1", Account::EMAIL, &a.email)
                        .run_async(&mut async_con),
                )
            })
            .unwrap();
            assert_eq!(found.as_ref(), Some(a), "{when}: async find_unique");
        }
        let none = Account::find_unique_in(&"t1", Account::EMAIL, &"nobody@example.com".to_owned())
            .run(&mut con)
            .unwrap();
        assert_eq!(none, None);
        for plan in ["pro", "free"] {
            let mut want: Vec<Account> = accounts
                .iter()
                .filter(|a| a.plan == plan)
                .cloned()
                .collect();
            want.sort_by_key(|a| a.id.to_string());
            let found = timed(&format!("{when}: find_by_in {plan}"), || {
                Account::find_by_in(&"t1", Account::PLAN, &plan.to_owned()).run(&mut con)
            })
            .unwrap();
            assert!(found == want, "{when}: blocking find_by_in {plan}");
            let found = timed(&format!("{when}: async find_by_in {plan}"), || {
                rt.block_on(
                    Account::find_by_in(&"t1", Account::PLAN, &plan.to_owned())
                        .run_async(&mut async_con),
                )
            })
            .unwrap();
            assert!(found == want, "{when}: async find_by_in {plan}");
        }
        let ids: Vec<(String, u32)> = (0..N).map(|id| ("t1".to_owned(), id)).collect();
        let loaded = Account::load_many(&ids).run(&mut con).unwrap();
        assert!(loaded == accounts.iter().cloned().map(Some).collect::<Vec<_>>());
        cluster.migrate_slot(slot, to).unwrap();
        assert_eq!(cluster.owner_of_slot(slot).unwrap(), to);
    }
}

#[test]
fn loads_and_finds_while_every_bucket_moves() {
    let cluster = Arc::new(RedisCluster::start(3).expect("a cluster starts"));
    let mut con = cluster.connection().unwrap();
    Item::save_many(&all_items()).run(&mut con).unwrap();
    let mut readers = Readers::new(&cluster);
    let done = Arc::new(AtomicBool::new(false));
    let mover = {
        let (cluster, done) = (cluster.clone(), done.clone());
        std::thread::spawn(move || {
            for bucket in 0..Item::SCHEMA.buckets {
                let slot = Item::SCHEMA.bucket_slot(bucket);
                let from = cluster.owner_of_slot(slot).unwrap();
                cluster.migrate_slot(slot, (from + 1) % 3).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut rounds = 0;
    while !done.load(Ordering::SeqCst) {
        readers.check(&format!("round {rounds} of the moves"));
        rounds += 1;
    }
    mover.join().expect("the mover finishes");
    readers.check("after every bucket moved");
    println!("{rounds} rounds of reads while 8 bucket slots moved");
}

fn id_buf(id: u32) -> IdBuf {
    let mut buf = IdBuf::new();
    id.write_id(&mut buf);
    buf
}

/// Every index entry names an entity holding its value, and every entity's
/// value has its entry in its bucket's partition.
fn index_matches_entities(con: &mut redis::cluster::ClusterConnection, ids: u32) {
    let mut from_index = BTreeSet::new();
    for b in 0..Item::SCHEMA.buckets {
        let key = format!("{}:#item:idx:color", Item::SCHEMA.bucket_scope(None, b));
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query(con)
            .unwrap();
        for m in members {
            // <len>:<value>:<id>
            let (_, rest) = m.split_once(':').unwrap();
            let (color, id) = rest.rsplit_once(':').unwrap();
            let id: u32 = id.parse().unwrap();
            assert_eq!(Item::SCHEMA.bucket_of(&id_buf(id)), b, "{m}");
            from_index.insert((id, color.to_owned()));
        }
    }
    let mut from_entities = BTreeSet::new();
    for id in 0..ids {
        let color: Option<String> = redis::cmd("HGET")
            .arg(Item::key_of(&id))
            .arg("color")
            .query(con)
            .unwrap();
        if let Some(color) = color {
            from_entities.insert((id, color));
        }
    }
    assert_eq!(from_index, from_entities);
}

#[test]
fn indexes_stay_consistent_after_a_primary_is_killed_mid_save() {
    let mut cluster = RedisCluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .config("cluster-node-timeout", "1000")
        .start()
        .expect("a cluster with replicas starts");
    let urls = cluster.urls();
    let mut con = cluster.connection().unwrap();
    Item::save_many(&all_items()).run(&mut con).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let saved = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, saved) = (stop.clone(), saved.clone());
        std::thread::spawn(move || {
            let client = redis::cluster::ClusterClient::builder(urls)
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let mut con = None;
            let mut round = 0u64;
            let mut failed = 0u64;
            while !stop.load(Ordering::SeqCst) {
                round += 1;
                let c = match con.as_mut() {
                    Some(c) => c,
                    None => match client.get_connection() {
                        Ok(c) => con.insert(c),
                        Err(_) => {
                            failed += 1;
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    },
                };
                // Every item changes color each round: index upkeep on
                // every bucket, in pipelines per node.
                let items: Vec<Item> = (0..ITEMS)
                    .map(|id| Item {
                        id,
                        color: format!("c{}", (u64::from(id) + round) % 5),
                        n: round,
                    })
                    .collect();
                match Item::save_many(&items).run(c) {
                    Ok(_) => {
                        saved.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => {
                        failed += 1;
                        con = None;
                    }
                }
            }
            failed
        })
    };
    while saved.load(Ordering::SeqCst) < 3 {
        std::thread::sleep(Duration::from_millis(10));
    }
    cluster.kill_primary(0).unwrap();
    cluster
        .wait_for_promotion(0, Duration::from_secs(60))
        .unwrap();
    let after_kill = saved.load(Ordering::SeqCst);
    while saved.load(Ordering::SeqCst) < after_kill + 3 {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::SeqCst);
    let failed = writer.join().expect("the writer finishes");
    println!(
        "{} save_many rounds acknowledged, {failed} failed around the kill",
        saved.load(Ordering::SeqCst)
    );
    let mut con = cluster.connection().unwrap();
    index_matches_entities(&mut con, ITEMS);
    // And find_by answers from the survivors what the entities hold.
    for c in 0..5 {
        let color = format!("c{c}");
        for found in Item::find_by_color(&color).run(&mut con).unwrap() {
            assert_eq!(found.color, color);
        }
    }
}
