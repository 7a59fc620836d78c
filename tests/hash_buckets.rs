//! The bucketed layout of indexed models: each entity's key carries the hash
//! tag of its bucket, each index is partitioned per bucket, `find_by` reads
//! every partition and merges. Checked on every executor, and on clusters of
//! 3 and 6 primaries for the spread of keys.

#[macro_use]
mod common;

use common::Runner;
use redis_state::keys::{IdBuf, IdValue, key_slot};
use redis_state::prelude::*;
use redis_state::testing::RedisCluster;
use redis_state::{Namespace, RedisHash};

/// An indexed model whose key has no hash tag: bucketed, 64 buckets.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "user:{id}")]
struct User {
    #[redis(id)]
    id: u32,
    name: String,
    #[redis(index)]
    city: String,
    #[redis(index)]
    team: Option<String>,
}

/// A composite id and an explicit number of buckets.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "order:{shop}:{id}", buckets = 8)]
struct Order {
    #[redis(id)]
    shop: String,
    #[redis(id)]
    id: u32,
    #[redis(index)]
    status: String,
}

/// A tagged model keeps the layout its key gives.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{tagged}}:{id}")]
struct Tagged {
    #[redis(id)]
    id: u32,
    #[redis(index)]
    kind: String,
}

const CITIES: [&str; 3] = ["Oslo", "Lima", "Pune"];

fn user(id: u32) -> User {
    User {
        id,
        name: format!("user {id}"),
        city: CITIES[id as usize % CITIES.len()].to_owned(),
        team: id.is_multiple_of(2).then(|| "even".to_owned()),
    }
}

fn id_buf<Q: IdValue + ?Sized>(id: &Q) -> IdBuf {
    let mut buf = IdBuf::new();
    id.write_id(&mut buf);
    buf
}

/// The users of `city` among `ids`, in id order (the order of the joined
/// ids, as an index lists them).
fn expected_in(city: &str, ids: impl IntoIterator<Item = u32>) -> Vec<User> {
    let mut users: Vec<User> = ids
        .into_iter()
        .map(user)
        .filter(|u| u.city == city)
        .collect();
    users.sort_by_key(|u| u.id.to_string());
    users
}

fn the_schema_is_bucketed_and_keys_carry_the_tag(runner: &mut Runner, ns: &Namespace) {
    assert_eq!(
        User::SCHEMA.buckets,
        64,
        "the default for an untagged index"
    );
    assert_eq!(Order::SCHEMA.buckets, 8);
    assert_eq!(Tagged::SCHEMA.buckets, 0, "a tagged model keeps its layout");
    assert_eq!(Tagged::key_of(&7), "{tagged}:7");
    let mut buckets_seen = std::collections::BTreeSet::new();
    for id in 0..300u32 {
        let key = User::key_of(&id);
        let bucket = User::SCHEMA.bucket_of(&id_buf(&id));
        buckets_seen.insert(bucket);
        let scope = User::SCHEMA.bucket_scope(None, bucket);
        assert_eq!(key, format!("{scope}:{id}"));
        assert!(key.starts_with("user:{"), "{key}");
        assert_eq!(
            key_slot(key.as_bytes()),
            User::SCHEMA.bucket_slot(bucket),
            "{key}"
        );
    }
    assert_eq!(buckets_seen.len(), 64, "300 ids reach every bucket");
    // The keys a save writes are the keys the schema names.
    user(5).save().namespace(ns).run_on(runner);
    let key = format!("{ns}:{}", User::key_of(&5));
    let stored: std::collections::HashMap<String, String> = runner.cmd("HGETALL", &key).go();
    assert_eq!(
        stored.get("city").map(String::as_str),
        Some("Pune"),
        "{key}"
    );
    let bucket = User::SCHEMA.bucket_of(&id_buf(&5u32));
    let index = format!(
        "{}:#user:idx:city",
        User::SCHEMA.bucket_scope(Some(ns), bucket)
    );
    let members: Vec<String> = runner.cmd("ZRANGE", &index).arg(0).arg(-1).go();
    assert_eq!(members, vec!["4:Pune:5".to_owned()]);
}

fn find_by_merges_every_partition(runner: &mut Runner, ns: &Namespace) {
    let users: Vec<User> = (0..400).map(user).collect();
    runner
        .run(User::save_many(&users).namespace(ns))
        .expect("save_many");
    for city in CITIES {
        let found = runner
            .run(User::find_by_city(city).namespace(ns))
            .expect("find_by");
        assert_eq!(found, expected_in(city, 0..400), "{city}");
    }
    let even = runner
        .run(User::find_by_team("even").namespace(ns))
        .expect("find_by");
    assert_eq!(even.len(), 200);
    assert!(even.iter().all(|u| u.id.is_multiple_of(2)));
    let nobody = runner
        .run(User::find_by_city("Rome").namespace(ns))
        .expect("find_by");
    assert!(nobody.is_empty());
    // A page of the merged list is the page one index would give.
    let all = expected_in("Oslo", 0..400);
    for (offset, count) in [(0, 10), (5, 10), (120, 50), (130, 20), (500, 3)] {
        let page = runner
            .run(
                User::find_by_city("Oslo")
                    .limit(offset, count)
                    .namespace(ns),
            )
            .expect("find_by page");
        let want: Vec<User> = all.iter().skip(offset).take(count).cloned().collect();
        assert_eq!(page, want, "offset {offset} count {count}");
    }
}

fn changes_and_deletes_keep_every_partition_exact(runner: &mut Runner, ns: &Namespace) {
    let users: Vec<User> = (0..120).map(user).collect();
    runner.run(User::save_many(&users).namespace(ns)).unwrap();
    // Move ten users to Rome, delete ten others.
    for id in 0..10u32 {
        runner
            .run(
                User::update(&id)
                    .set(User::CITY, "Rome".to_owned())
                    .namespace(ns),
            )
            .unwrap();
    }
    let gone: Vec<u32> = (100..110).collect();
    assert_eq!(
        runner.run(User::delete_many(&gone).namespace(ns)).unwrap(),
        10
    );
    let rome = runner
        .run(User::find_by_city("Rome").namespace(ns))
        .unwrap();
    let mut ids: Vec<u32> = rome.iter().map(|u| u.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
    let live: Vec<u32> = (10..100).chain(110..120).collect();
    for city in CITIES {
        let found = runner.run(User::find_by_city(city).namespace(ns)).unwrap();
        assert_eq!(found, expected_in(city, live.iter().copied()), "{city}");
    }
    // Every partition holds exactly the entries of its live entities.
    let mut entries = 0;
    for b in 0..User::SCHEMA.buckets {
        let index = format!("{}:#user:idx:city", User::SCHEMA.bucket_scope(Some(ns), b));
        let members: Vec<String> = runner.cmd("ZRANGE", &index).arg(0).arg(-1).go();
        for m in &members {
            let id: u32 = m.rsplit(':').next().unwrap().parse().unwrap();
            assert_eq!(User::SCHEMA.bucket_of(&id_buf(&id)), b, "{m} in bucket {b}");
        }
        entries += members.len();
    }
    assert_eq!(entries, 110, "100 live users and the 10 in Rome");
}

fn stale_entries_are_repaired_in_their_partition(runner: &mut Runner, ns: &Namespace) {
    let users: Vec<User> = (0..30).map(user).collect();
    runner.run(User::save_many(&users).namespace(ns)).unwrap();
    // Another client edits user 3 (Oslo) behind the library's back.
    let key = format!("{ns}:{}", User::key_of(&3));
    let _: i64 = runner.cmd("HSET", &key).arg("city").arg("Lima").go();
    let oslo = runner
        .run(User::find_by_city("Oslo").namespace(ns))
        .unwrap();
    assert!(
        oslo.iter().all(|u| u.id != 3),
        "the stale entry is not reported"
    );
    assert_eq!(oslo.len(), 9);
    let bucket = User::SCHEMA.bucket_of(&id_buf(&3u32));
    let index = format!(
        "{}:#user:idx:city",
        User::SCHEMA.bucket_scope(Some(ns), bucket)
    );
    let score: Option<f64> = runner.cmd("ZSCORE", &index).arg("4:Oslo:3").go();
    assert_eq!(score, None, "the stale entry is removed by the find");
}

fn composite_ids_spread_and_are_found(runner: &mut Runner, ns: &Namespace) {
    let orders: Vec<Order> = (0..64u32)
        .map(|id| Order {
            shop: format!("shop:{}", id % 4),
            id,
            status: if id.is_multiple_of(3) { "paid" } else { "open" }.to_owned(),
        })
        .collect();
    runner.run(Order::save_many(&orders).namespace(ns)).unwrap();
    let paid = runner
        .run(Order::find_by_status("paid").namespace(ns))
        .unwrap();
    let mut want: Vec<Order> = orders
        .iter()
        .filter(|o| o.status == "paid")
        .cloned()
        .collect();
    want.sort_by_key(|o| id_buf(&(o.shop.as_str(), o.id)).joined().to_owned());
    assert_eq!(paid, want);
    for o in &orders {
        let loaded = runner
            .run(Order::load(&(o.shop.clone(), o.id)).namespace(ns))
            .unwrap();
        assert_eq!(loaded.as_ref(), Some(o));
    }
    let slots: std::collections::BTreeSet<u16> = orders
        .iter()
        .map(|o| key_slot(Order::key_of(&(o.shop.clone(), o.id)).as_bytes()))
        .collect();
    assert_eq!(slots.len(), 8, "one slot per bucket: {slots:?}");
}

matrix!(
    the_schema_is_bucketed_and_keys_carry_the_tag,
    find_by_merges_every_partition,
    changes_and_deletes_keep_every_partition_exact,
    stale_entries_are_repaired_in_their_partition,
    composite_ids_spread_and_are_found,
);

/// `op.namespace(ns).run_on(runner)` for writes whose output is not needed.
trait RunOn {
    fn run_on(self, runner: &mut Runner);
}

impl<O: redis_state::Operation + Send> RunOn for O
where
    O::Output: Send,
{
    fn run_on(self, runner: &mut Runner) {
        runner.run(self).expect("the operation succeeds");
    }
}

/// Entities saved in the balance test, per cluster: 30,000, or the number
/// in `BALANCE_ENTITIES` (`BALANCE_ENTITIES=100000 cargo test --test
/// hash_buckets balance -- --nocapture` prints the figure for 100,000).
fn balance_entities() -> u32 {
    std::env::var("BALANCE_ENTITIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30_000)
}

/// Saves `entities` users on a fresh cluster of `primaries` and returns
/// the keys each primary holds.
fn keys_per_primary(primaries: usize, entities: u32) -> Vec<u64> {
    let cluster = RedisCluster::start(primaries).expect("a cluster starts");
    let mut con = cluster.connection().expect("connect");
    let ids: Vec<u32> = (0..entities).collect();
    for chunk in ids.chunks(2_000) {
        let users: Vec<User> = chunk.iter().copied().map(user).collect();
        User::save_many(&users).run(&mut con).expect("save_many");
    }
    cluster
        .primaries()
        .iter()
        .map(|p| p.query::<u64>(&redis::cmd("DBSIZE")).expect("DBSIZE"))
        .collect()
}

#[test]
fn keys_balance_over_3_and_6_primaries() {
    let entities = balance_entities();
    for primaries in [3, 6] {
        let keys = keys_per_primary(primaries, entities);
        let total: u64 = keys.iter().sum();
        // The entities and the two indexes' partitions (64 each).
        assert_eq!(total, u64::from(entities) + 2 * 64, "{keys:?}");
        let mean = total as f64 / primaries as f64;
        let max = *keys.iter().max().unwrap() as f64;
        println!(
            "{entities} entities over {primaries} primaries: keys {keys:?}, max/mean {:.3}",
            max / mean
        );
        assert!(
            max / mean <= 1.1,
            "{primaries} primaries: max/mean {:.3} over 1.1 ({keys:?})",
            max / mean
        );
    }
}
