//! Reliability under bad data: bookkeeping and foreign keys that another
//! client (or corruption) left behind never block the library's writes,
//! reads or invalidations, and are repaired or skipped. Real servers, every
//! executor and topology.

mod common;

use std::time::Duration;

use common::Runner;
use redis_state::Namespace;
use redis_state::cache::{
    KeyPattern, PatternScope, invalidate_pattern, invalidate_pattern_async,
    invalidate_pattern_scoped, invalidate_pattern_scoped_async,
};
use redis_state::lock::fence::{fence_key_for, fenced_set};
use redis_state::prelude::*;
use redis_state::session::JsonSessions;
use serde::{Deserialize, Serialize};

/// An indexed model whose entities expire: its writes keep the expiry
/// bookkeeping (`#member:exp`, `#member:expv`).
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{member}}:{id}", ttl = "10m")]
struct Member {
    #[redis(id)]
    id: u64,
    #[redis(unique)]
    email: String,
    #[redis(index)]
    city: String,
}

fn member(id: u64, city: &str) -> Member {
    Member {
        id,
        email: format!("m{id}@example.com"),
        city: city.to_owned(),
    }
}

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "item:{id}", ttl = "10m")]
struct Item {
    id: u64,
}

/// A plain-format entry: the JSON alone, no header.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "plain:{id}", ttl = "10m", format = "plain")]
struct PlainItem {
    id: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Cart {
    items: u32,
}

fn pattern(r: &mut Runner, p: &KeyPattern) -> redis_state::Result<usize> {
    match r {
        Runner::Sync(con) => invalidate_pattern(con, p),
        Runner::SyncCluster(con) => invalidate_pattern(con, p),
        Runner::Async(rt, con) => rt.block_on(invalidate_pattern_async(con, p)),
        Runner::AsyncCluster(rt, con) => rt.block_on(invalidate_pattern_async(con, p)),
    }
}

fn pattern_scoped(r: &mut Runner, p: &KeyPattern, scope: PatternScope) -> usize {
    match r {
        Runner::Sync(con) => invalidate_pattern_scoped(con, p, scope),
        Runner::SyncCluster(con) => invalidate_pattern_scoped(con, p, scope),
        Runner::Async(rt, con) => rt.block_on(invalidate_pattern_scoped_async(con, p, scope)),
        Runner::AsyncCluster(rt, con) => {
            rt.block_on(invalidate_pattern_scoped_async(con, p, scope))
        }
    }
    .unwrap()
}

fn exists(r: &mut Runner, key: &str) -> bool {
    r.cmd::<i64>("EXISTS", key).go() == 1
}

/// `<scope>:#member:<suffix>` in `ns`.
fn bookkeeping(ns: &Namespace, suffix: &str) -> String {
    format!("{ns}:{{member}}:#member:{suffix}")
}

// ---------------------------------------------------------------------------
// Item 4: corrupt expiry bookkeeping

/// Entries of `#…:expv` that do not parse (written by hand here) are
/// dropped by the next write that meets them; saves, deletes and lookups in
/// the scope go on.
fn corrupt_expiry_bookkeeping_is_skipped_and_repaired(r: &mut Runner, ns: &Namespace) {
    for id in 1..=3 {
        r.run(member(id, "oslo").save().namespace(ns)).unwrap();
    }
    let exp = bookkeeping(ns, "exp");
    let expv = bookkeeping(ns, "expv");
    // Entities that "expired" an hour ago, whose packed values are garbage.
    let corrupt: [&[u8]; 5] = [b"+abc", b"+", b"+999:x", b"-+1:a", b"+-3:abc"];
    for (i, packed) in corrupt.iter().enumerate() {
        let ghost = format!("{}", 100 + i);
        let () = r.cmd("HSET", &expv).arg(&ghost).arg(*packed).go();
        let _: i64 = r.cmd("ZADD", &exp).arg(1).arg(&ghost).go();
    }
    // A live entity whose own entry is corrupt too.
    let () = r.cmd("HSET", &expv).arg("2").arg("+abc").go();
    let _: i64 = r.cmd("ZADD", &exp).arg(1).arg("2").go();

    r.run(member(4, "rome").save().namespace(ns)).unwrap();
    assert!(r.run(Member::delete(&3).namespace(ns)).unwrap());
    r.run(member(2, "rome").save().namespace(ns)).unwrap();
    let in_rome = r
        .run(Member::find_by_city(&"rome".to_owned()).namespace(ns))
        .unwrap();
    let mut ids: Vec<u64> = in_rome.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [2, 4]);
    let oslo = r
        .run(Member::find_by_city(&"oslo".to_owned()).namespace(ns))
        .unwrap();
    assert_eq!(oslo.iter().map(|m| m.id).collect::<Vec<_>>(), [1]);

    // The ghosts' bookkeeping is gone; entity 2's was rewritten whole.
    for i in 0..corrupt.len() {
        let ghost = format!("{}", 100 + i);
        let left: Option<String> = r.cmd("HGET", &expv).arg(&ghost).go();
        assert_eq!(left, None, "bookkeeping of {ghost}");
        let score: Option<f64> = r.cmd("ZSCORE", &exp).arg(&ghost).go();
        assert_eq!(score, None, "expiry of {ghost}");
    }
    let packed: String = r.cmd("HGET", &expv).arg("2").go();
    assert_eq!(packed, "+14:m2@example.com+4:rome");
}

// ---------------------------------------------------------------------------
// Item 6: foreign keys with stray braces under a cached type's prefix

fn stray_braces_do_not_stop_a_pattern_invalidation(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Item>::new().namespace(ns);
    for id in 0..60 {
        r.run(cache.set(&id, &Item { id })).unwrap();
    }
    let foreign = [
        format!("{ns}:item:{{x"),
        format!("{ns}:item:}}x{{"),
        format!("{ns}:item:{{}}"),
        format!("{ns}:item:{{a}}b{{c}}"),
    ];
    for k in &foreign {
        let () = r.cmd("SET", k).arg("not an entry").go();
    }
    let n = pattern(r, &KeyPattern::entries_of::<Item, _>(Some(ns), &())).unwrap();
    assert_eq!(n, 60);
    for id in 0..60 {
        assert_eq!(r.run(cache.get(&id)).unwrap(), None);
    }
    for k in &foreign {
        assert!(exists(r, k), "{k} is not a cache entry");
    }
    // Asked for, every string goes, the stray braces included.
    let n = pattern_scoped(
        r,
        &KeyPattern::entries_of::<Item, _>(Some(ns), &()),
        PatternScope::AnyString,
    );
    assert_eq!(n, foreign.len());
}

// ---------------------------------------------------------------------------
// Item 13: a broad pattern spares the keys kept for other purposes

fn a_broad_pattern_deletes_cache_entries_only(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Item>::new().namespace(ns);
    for id in 0..20 {
        r.run(cache.set(&id, &Item { id })).unwrap();
    }
    let plain = Cache::<PlainItem>::new().namespace(ns);
    r.run(plain.set(&1, &PlainItem { id: 1 })).unwrap();
    // A fence counter, with and without a hash tag.
    let tagged = format!("{ns}:{{acct}}:balance");
    let untagged = format!("{ns}:report:latest");
    for res in [&tagged, &untagged] {
        assert!(r.run(fenced_set(res, 7, b"v")).unwrap());
    }
    // A session and its per-user index; a fill lease held by an
    // invalidation.
    let sessions = JsonSessions::<Cart>::new(Duration::from_secs(60)).namespace(ns);
    let s = r.run(sessions.create(42, Cart { items: 3 })).unwrap();
    let opts = redis_state::cache::CacheOptions::default().hold(Duration::from_secs(30));
    let held = Cache::<Item>::new().namespace(ns).options(opts);
    r.run(held.invalidate(&0)).unwrap();
    r.run(cache.set(&0, &Item { id: 0 })).unwrap();

    let everything = KeyPattern::new().lit(&format!("{ns}:")).any();
    let n = pattern(r, &everything).unwrap();
    assert_eq!(n, 20, "the 20 entries with a header");
    for id in 0..20 {
        assert_eq!(r.run(cache.get(&id)).unwrap(), None);
    }
    for k in [&tagged, &untagged] {
        assert!(exists(r, &fence_key_for(k)), "fence of {k}");
        assert!(exists(r, k), "{k}");
    }
    let kept = r.run(sessions.get(s.id.as_str())).unwrap();
    assert_eq!(kept.map(|s| s.data), Some(Cart { items: 3 }));
    assert_eq!(r.run(plain.get(&1)).unwrap(), Some(PlainItem { id: 1 }));
    let lease = format!("{{{}}}:#lease", cache.key(&0));
    let holder: Option<String> = r.cmd("GET", &lease).go();
    assert_eq!(holder.as_deref(), Some("inv"), "the hold stays");

    // Asked for: plain entries, sessions and the fenced values go too;
    // fence counters and leases never.
    let n = pattern_scoped(r, &everything, PatternScope::AnyString);
    assert_eq!(n, 4, "plain entry, session, two fenced values");
    assert_eq!(r.run(plain.get(&1)).unwrap(), None);
    assert_eq!(
        r.run(sessions.get(s.id.as_str())).unwrap().map(|s| s.data),
        None
    );
    for k in [&tagged, &untagged] {
        assert!(exists(r, &fence_key_for(k)), "fence of {k}");
    }
    let holder: Option<String> = r.cmd("GET", &lease).go();
    assert_eq!(holder.as_deref(), Some("inv"), "the hold stays");
}

matrix!(
    corrupt_expiry_bookkeeping_is_skipped_and_repaired,
    stray_braces_do_not_stop_a_pattern_invalidation,
    a_broad_pattern_deletes_cache_entries_only,
);
