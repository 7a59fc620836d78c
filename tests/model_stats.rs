//! Per-model statistics and the orphan sweep against real servers, with
//! orphans made by hand (raw `DEL`, `HSET` and `ZADD` behind the library's
//! back), on both executors and topologies.

#[macro_use]
mod common;

use common::Runner;
use redis_state::keys::{IdBuf, IdValue};
use redis_state::monitor::stats::{
    Catalog, ModelKind, ModelSpec, ModelStats, StatsOptions, gather, sweep_expired_with, sweep_with,
};
use redis_state::op::command;
use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{suser}}:{id}", ttl = "2h")]
struct SUser {
    #[redis(id)]
    id: u64,
    name: String,
    #[redis(unique)]
    email: String,
    #[redis(index)]
    city: String,
}

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "sprod:{id}", ttl = "10m")]
struct SProd {
    id: u64,
    name: String,
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{sboard:{game}}}")]
struct SBoard {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i64,
}

fn user(id: u64) -> SUser {
    SUser {
        id,
        name: format!("user {id}"),
        email: format!("u{id}@example.com"),
        city: if id.is_multiple_of(2) {
            "paris"
        } else {
            "oslo"
        }
        .to_owned(),
    }
}

/// Small batches, so that every loop goes round several times.
fn opts() -> StatsOptions {
    StatsOptions::default().batch(7).memory_samples(10)
}

fn stats(runner: &mut Runner, spec: &ModelSpec) -> ModelStats {
    let opts = opts();
    drive!(runner, |io| gather(io, spec, &opts)).unwrap()
}

fn fill(runner: &mut Runner, ns: &Namespace) {
    for id in 1..=30 {
        runner.run(user(id).save().namespace(ns)).unwrap();
    }
    for id in 1..=10 {
        let p = SProd {
            id,
            name: format!("p{id}"),
        };
        runner.run(SProd::set(&id, &p).namespace(ns)).unwrap();
    }
    for game in ["g1", "g2"] {
        for i in 0..5 {
            let b = SBoard {
                game: game.to_owned(),
                player: format!("p{i}"),
                points: i,
            };
            runner.run(b.submit().namespace(ns)).unwrap();
        }
    }
}

/// Orphans made by hand: a deleted entity (one entry in each index), an
/// entity edited to another city (its old `city` entry), and a member not of
/// the library's shape.
fn make_orphans(runner: &mut Runner, ns: &Namespace) {
    runner.cmd::<i64>("DEL", &format!("{ns}:{{suser}}:1")).go();
    runner
        .cmd::<i64>("HSET", &format!("{ns}:{{suser}}:2"))
        .arg("city")
        .arg("rome")
        .go();
    let collection = SUser::SCHEMA.collection;
    runner
        .cmd::<i64>("ZADD", &format!("{ns}:{{suser}}:#{collection}:idx:city"))
        .arg(0)
        .arg("garbage")
        .go();
}

fn counts_memory_and_ttls_per_model(runner: &mut Runner, ns: &Namespace) {
    fill(runner, ns);
    let catalog = Catalog::new()
        .namespace(ns)
        .hash::<SUser>()
        .cached::<SProd>()
        .leaderboard::<SBoard>();
    let [users, prods, boards] = catalog.models() else {
        panic!("three models")
    };
    let u = stats(runner, users);
    assert_eq!(u.name, "SUser");
    assert_eq!(u.keys, 30, "{u:?}");
    assert!(!u.truncated);
    // 2 h TTLs: the "under a day" bucket.
    assert_eq!(u.ttl.buckets, [0, 0, 30, 0, 0], "{:?}", u.ttl);
    assert_eq!(u.memory.sampled, 10);
    assert!(u.memory.sampled_bytes > 0);
    assert!(u.memory.estimated_bytes >= u.memory.sampled_bytes);
    assert_eq!(u.keys_per_node.values().sum::<u64>(), 30);
    let city = u.indexes.iter().find(|i| i.field == "city").unwrap();
    assert_eq!((city.entries, city.orphans, city.unique), (30, 0, false));
    let email = u.indexes.iter().find(|i| i.field == "email").unwrap();
    assert_eq!((email.entries, email.orphans, email.unique), (30, 0, true));
    assert!(email.bytes > 0);

    let p = stats(runner, prods);
    assert_eq!(p.keys, 10, "{p:?}");
    assert_eq!(p.ttl.persistent, 0);
    assert_eq!(p.ttl.buckets.iter().sum::<u64>(), 10);
    assert!(p.indexes.is_empty());

    let b = stats(runner, boards);
    assert_eq!(b.keys, 2, "{b:?}");

    // A template given as text finds the same keys as the derive's schema.
    let text = ModelSpec::from_template(
        "users",
        ModelKind::Hash,
        "{{suser}}:{id}",
        Some(ns),
        Some(SUser::SCHEMA.collection),
    )
    .unwrap();
    let t = stats(runner, &text);
    assert_eq!((t.keys, t.indexes.len()), (30, 2));
}

fn max_keys_bounds_the_scan(runner: &mut Runner, ns: &Namespace) {
    fill(runner, ns);
    let spec = ModelSpec::hash::<SUser>(Some(ns));
    let opts = opts().max_keys(12);
    let s = drive!(runner, |io| gather(io, &spec, &opts)).unwrap();
    assert_eq!(s.keys, 12);
    assert!(s.truncated);
}

fn orphans_are_found_and_swept(runner: &mut Runner, ns: &Namespace) {
    fill(runner, ns);
    make_orphans(runner, ns);
    let spec = ModelSpec::hash::<SUser>(Some(ns));
    let before = stats(runner, &spec);
    assert_eq!(before.keys, 29);
    let city = before.indexes.iter().find(|i| i.field == "city").unwrap();
    assert_eq!((city.entries, city.orphans), (31, 3), "{city:?}");
    let email = before.indexes.iter().find(|i| i.field == "email").unwrap();
    assert_eq!((email.entries, email.orphans), (30, 1), "{email:?}");

    let opts = opts();
    let report = drive!(runner, |io| sweep_with(io, &spec, &opts)).unwrap();
    assert_eq!(report.removed, 4, "{report:?}");

    let after = stats(runner, &spec);
    for ix in &after.indexes {
        assert_eq!(ix.orphans, 0, "{ix:?}");
    }
    let city = after.indexes.iter().find(|i| i.field == "city").unwrap();
    assert_eq!(city.entries, 28);
    // The library's own lookups still work after the sweep.
    let found = runner
        .run(SUser::find_by_city("oslo").namespace(ns))
        .unwrap();
    assert_eq!(found.len(), 14);
    let n: i64 = runner
        .run(command::<i64>("EXISTS", format!("{ns}:{{suser}}:3")))
        .unwrap();
    assert_eq!(n, 1);
}

fn a_sweep_needs_an_indexed_model(runner: &mut Runner, ns: &Namespace) {
    let spec = ModelSpec::cached::<SProd>(Some(ns));
    let opts = opts();
    let err = drive!(runner, |io| sweep_with(io, &spec, &opts)).unwrap_err();
    assert!(err.to_string().contains("SProd"), "{err}");
}

/// A cached type in the bucketed layout (`#[cache(buckets = 8)]`).
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "bprod:{id}", ttl = "10m", buckets = 8)]
struct BProd {
    id: u64,
}

/// The spec of a bucketed cached type carries its bucket count, and its
/// statistics count every bucket's entries, wherever their tags put them.
fn bucketed_cache_entries_are_counted(runner: &mut Runner, ns: &Namespace) {
    for id in 1..=24 {
        runner
            .run(BProd::set(&id, &BProd { id }).namespace(ns))
            .unwrap();
    }
    let spec = ModelSpec::cached::<BProd>(Some(ns));
    assert_eq!(spec.shape.buckets(), 8);
    let s = stats(runner, &spec);
    assert_eq!(s.keys, 24, "{s:?}");
    assert_eq!(s.keys_per_node.values().sum::<u64>(), 24, "{s:?}");
    assert_eq!(s.ttl.persistent, 0, "{s:?}");
}

// ---------------------------------------------------------------------------
// The bucketed layout: entities and index partitions spread over buckets.

/// An indexed model without hash tag, in 4 buckets.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "buser:{id}", buckets = 4, ttl = "2h")]
struct BUser {
    #[redis(id)]
    id: u32,
    name: String,
    #[redis(index)]
    city: String,
}

/// A bucketed model whose entities expire after a second.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "bvisit:{id}", buckets = 4, ttl = "1s")]
struct BVisit {
    #[redis(id)]
    id: u32,
    #[redis(index)]
    page: String,
}

fn id_buf<Q: IdValue + ?Sized>(id: &Q) -> IdBuf {
    let mut buf = IdBuf::new();
    id.write_id(&mut buf);
    buf
}

fn buser(id: u32) -> BUser {
    BUser {
        id,
        name: format!("user {id}"),
        city: if id.is_multiple_of(2) {
            "paris"
        } else {
            "oslo"
        }
        .to_owned(),
    }
}

fn bucket(id: u32) -> u16 {
    BUser::SCHEMA.bucket_of(&id_buf(&id))
}

/// The `city` partition of bucket `b`.
fn partition(ns: &Namespace, b: u16) -> String {
    format!(
        "{}:#{}:idx:city",
        BUser::SCHEMA.bucket_scope(Some(ns), b),
        BUser::SCHEMA.collection
    )
}

/// Entries in every `city` partition, counted by hand.
fn entries_by_hand(runner: &mut Runner, ns: &Namespace) -> i64 {
    (0..BUser::SCHEMA.buckets)
        .map(|b| runner.cmd::<i64>("ZCARD", &partition(ns, b)).go())
        .sum()
}

fn fill_bucketed(runner: &mut Runner, ns: &Namespace) {
    for id in 1..=40 {
        runner.run(buser(id).save().namespace(ns)).unwrap();
    }
}

fn bucketed_counts_sum_every_partition(runner: &mut Runner, ns: &Namespace) {
    fill_bucketed(runner, ns);
    let spec = ModelSpec::hash::<BUser>(Some(ns));
    assert_eq!(spec.shape.buckets(), 4);
    let s = stats(runner, &spec);
    assert_eq!(s.keys, 40, "{s:?}");
    assert_eq!(s.keys_per_node.values().sum::<u64>(), 40);
    assert_eq!(s.ttl.buckets, [0, 0, 40, 0, 0], "{:?}", s.ttl);
    assert_eq!(s.memory.sampled, 10);
    let used: std::collections::BTreeSet<u16> = (1..=40).map(bucket).collect();
    let [city] = &s.indexes[..] else {
        panic!("one index, summed over its partitions: {:?}", s.indexes)
    };
    assert_eq!(city.field, "city");
    assert_eq!(
        (city.entries, city.orphans, city.partitions),
        (40, 0, used.len() as u64),
        "{city:?}"
    );
    assert!(city.bytes > 0);
    assert_eq!(entries_by_hand(runner, ns), 40);

    // A spec from text finds the same, given the bucket count.
    let text = ModelSpec::from_template(
        "busers",
        ModelKind::Hash,
        "buser:{id}",
        Some(ns),
        Some(BUser::SCHEMA.collection),
    )
    .unwrap()
    .with_buckets(4);
    let t = stats(runner, &text);
    assert_eq!((t.keys, t.indexes.len()), (40, 1));
    assert_eq!((t.indexes[0].entries, t.indexes[0].orphans), (40, 0));
}

/// Orphans made by hand in two partitions: a deleted entity, an entity
/// edited to another city, and (in the first partition) an entry naming a
/// live entity of another bucket, which `find_by` never returns.
fn bucketed_orphans_are_found_and_swept(runner: &mut Runner, ns: &Namespace) {
    fill_bucketed(runner, ns);
    let a = 1;
    let b = (2..=40).find(|i| bucket(*i) != bucket(a)).unwrap();
    let c = (2..=40)
        .find(|i| *i != b && bucket(*i) != bucket(a) && i % 2 == 1)
        .unwrap();
    runner
        .cmd::<i64>("DEL", &BUser::SCHEMA.key(Some(ns), &id_buf(&a)))
        .go();
    runner
        .cmd::<i64>("HSET", &BUser::SCHEMA.key(Some(ns), &id_buf(&b)))
        .arg("city")
        .arg("rome")
        .go();
    runner
        .cmd::<i64>("ZADD", &partition(ns, bucket(a)))
        .arg(0)
        .arg(format!("4:oslo:{c}"))
        .go();
    let spec = ModelSpec::hash::<BUser>(Some(ns));
    let before = stats(runner, &spec);
    assert_eq!(before.keys, 39);
    assert_eq!(
        (before.indexes[0].entries, before.indexes[0].orphans),
        (41, 3),
        "{:?}",
        before.indexes
    );

    let opts = opts();
    let report = drive!(runner, |io| sweep_with(io, &spec, &opts)).unwrap();
    assert_eq!(report.removed, 3, "{report:?}");
    let after = stats(runner, &spec);
    assert_eq!(
        (after.indexes[0].entries, after.indexes[0].orphans),
        (38, 0),
        "{:?}",
        after.indexes
    );
    assert_eq!(entries_by_hand(runner, ns), 38);
    let oslo = runner
        .run(BUser::find_by_city("oslo").namespace(ns))
        .unwrap();
    let want: Vec<u32> = (1..=40)
        .filter(|i| i % 2 == 1 && *i != a && *i != b)
        .collect();
    let mut got: Vec<u32> = oslo.iter().map(|u| u.id).collect();
    got.sort();
    assert_eq!(got, want);
}

fn bucketed_expired_entries_are_swept(runner: &mut Runner, ns: &Namespace) {
    for id in 0..20u32 {
        let v = BVisit {
            id,
            page: format!("/p{}", id % 3),
        };
        runner.run(v.save().namespace(ns)).unwrap();
    }
    for id in [0u32, 1] {
        assert!(runner.run(BVisit::persist(&id).namespace(ns)).unwrap());
    }
    let key = |id: u32| BVisit::SCHEMA.key(Some(ns), &id_buf(&id));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let live = |r: &mut Runner| (2..20).any(|id| r.cmd::<i64>("EXISTS", &key(id)).go() == 1);
    while live(runner) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!live(runner), "the visits expired");
    // The sweep leaves a second of grace after an expiry.
    std::thread::sleep(std::time::Duration::from_millis(1200));

    let spec = ModelSpec::hash::<BVisit>(Some(ns));
    let used: std::collections::BTreeSet<u16> = (0..20u32)
        .map(|id| BVisit::SCHEMA.bucket_of(&id_buf(&id)))
        .collect();
    let (mut pruned, mut calls) = (0, 0);
    loop {
        let step = drive!(&mut *runner, |io| sweep_expired_with(io, &spec, 4, 10)).unwrap();
        assert!(step.pruned <= 10, "{step:?}");
        // Every bucket's scope on the first call; later calls see those
        // whose expiry bookkeeping is not yet empty.
        if calls == 0 {
            assert_eq!(step.scopes, used.len() as u64, "{step:?}");
        }
        assert!(step.scopes <= used.len() as u64, "{step:?}");
        pruned += step.pruned;
        calls += 1;
        if !step.more {
            break;
        }
        assert!(calls < 10, "the sweep ends");
    }
    assert_eq!(pruned, 18);
    let mut left = 0;
    for b in 0..BVisit::SCHEMA.buckets {
        let scope = BVisit::SCHEMA.bucket_scope(Some(ns), b);
        left += runner
            .cmd::<i64>(
                "ZCARD",
                &format!("{scope}:#{}:idx:page", BVisit::SCHEMA.collection),
            )
            .go();
        assert_eq!(
            runner
                .cmd::<i64>(
                    "ZCARD",
                    &format!("{scope}:#{}:exp", BVisit::SCHEMA.collection)
                )
                .go(),
            0
        );
    }
    assert_eq!(left, 2, "the two persisted visits keep their entries");
    let s = stats(runner, &spec);
    assert_eq!(
        (s.keys, s.indexes[0].entries, s.indexes[0].orphans),
        (2, 2, 0)
    );
}

matrix!(
    counts_memory_and_ttls_per_model,
    max_keys_bounds_the_scan,
    orphans_are_found_and_swept,
    a_sweep_needs_an_indexed_model,
    bucketed_cache_entries_are_counted,
    bucketed_counts_sum_every_partition,
    bucketed_orphans_are_found_and_swept,
    bucketed_expired_entries_are_swept,
);

#[test]
fn catalog_stats_blocking_and_async() {
    let ns = common::namespace("catalog");
    let mut r = Runner::new(common::Topology::Standalone, false);
    fill(&mut r, &ns);
    let catalog = Catalog::new()
        .namespace(&ns)
        .hash::<SUser>()
        .cached::<SProd>();
    let server = redis_state::testing::shared_server();
    let mut con = server.connection().unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let s2 = seen.clone();
    let opts = opts().progress(move |_, n| {
        s2.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
    });
    let out = catalog.stats(&mut con, &opts).unwrap();
    assert_eq!(out.iter().map(|s| s.keys).collect::<Vec<_>>(), [30, 10]);
    assert!(seen.load(std::sync::atomic::Ordering::Relaxed) >= 10);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = rt
        .block_on(async {
            let mut con = server.async_connection().await.unwrap();
            catalog.stats_async(&mut con, &opts).await
        })
        .unwrap();
    assert_eq!(out.iter().map(|s| s.keys).collect::<Vec<_>>(), [30, 10]);
}
