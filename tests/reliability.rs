//! Reliability under bad data: bookkeeping and foreign keys that another
//! client (or corruption) left behind never block the library's writes,
//! reads or invalidations, and are repaired or skipped. Real servers, every
//! executor and topology.

#[macro_use]
mod common;

use std::time::Duration;

use common::Runner;
use redis_state::Namespace;
use redis_state::cache::{
    KeyPattern, PatternScope, invalidate_pattern, invalidate_pattern_async,
    invalidate_pattern_scoped, invalidate_pattern_scoped_async,
};
use redis_state::lock::fence::{fence_key_for, fenced_set};
use redis_state::monitor::stats::{
    ModelKind, ModelSpec, StatsOptions, sweep_expired_with, sweep_with,
};
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
    let in_rome = r.run(Member::find_by_city("rome").namespace(ns)).unwrap();
    let mut ids: Vec<u64> = in_rome.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [2, 4]);
    let oslo = r.run(Member::find_by_city("oslo").namespace(ns)).unwrap();
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

// ---------------------------------------------------------------------------
// Item 13: index entries of expired entities are swept without writes

/// Entities of three tenants that expire after a second.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "visit:{tenant}:{id}", hash_tag = "tenant", ttl = "1s")]
struct Visit {
    #[redis(id)]
    tenant: String,
    #[redis(id)]
    id: u32,
    #[redis(index)]
    page: String,
    #[redis(unique)]
    token: String,
}

const TENANTS: [&str; 3] = ["t1", "t2", "t3"];
const PER_TENANT: u32 = 50;

/// Saves the visits, keeps visit 0 of each tenant (`PERSIST`), and waits
/// until the others are gone and the sweep's one-second grace has passed.
fn expire_visits(r: &mut Runner, ns: &Namespace) {
    for t in TENANTS {
        for id in 0..PER_TENANT {
            let v = Visit {
                tenant: t.to_owned(),
                id,
                page: format!("/p{}", id % 5),
                token: format!("{t}-{id}"),
            };
            r.run(v.save().namespace(ns)).unwrap();
        }
        assert!(
            r.run(Visit::persist(&(t.to_owned(), 0u32)).namespace(ns))
                .unwrap()
        );
    }
    let last = format!("{ns}:visit:{{t3}}:{}", PER_TENANT - 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while exists(r, &last) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!exists(r, &last), "the visits expired");
    std::thread::sleep(Duration::from_millis(1200));
}

/// What is left of the bookkeeping of `tenant`: index entries, unique
/// entries, expiry entries, packed values.
fn leftovers(r: &mut Runner, ns: &Namespace, tenant: &str) -> [i64; 4] {
    let at = |rest: &str| format!("{ns}:visit:{{{tenant}}}:#visit:{rest}");
    [
        r.cmd("ZCARD", &at("idx:page")).go(),
        r.cmd("HLEN", &at("uniq:token")).go(),
        r.cmd("ZCARD", &at("exp")).go(),
        r.cmd("HLEN", &at("expv")).go(),
    ]
}

fn expired_index_entries_are_swept_in_bounded_calls(r: &mut Runner, ns: &Namespace) {
    expire_visits(r, ns);
    for t in TENANTS {
        assert_eq!(
            leftovers(r, ns, t)[0],
            i64::from(PER_TENANT),
            "nothing pruned yet"
        );
    }
    let spec = ModelSpec::hash::<Visit>(Some(ns));
    let (mut calls, mut pruned) = (0, 0);
    loop {
        let step = drive!(&mut *r, |io| sweep_expired_with(io, &spec, 20, 50)).unwrap();
        calls += 1;
        assert!(
            step.pruned <= 50,
            "one call stays within its budget: {step:?}"
        );
        assert!(step.scopes <= 3, "{step:?}");
        pruned += step.pruned;
        if !step.more {
            break;
        }
        assert!(calls < 10, "the sweep ends");
    }
    assert_eq!(pruned, 3 * u64::from(PER_TENANT - 1));
    assert!(calls >= 3, "{calls} calls of at most 50");
    for t in TENANTS {
        assert_eq!(leftovers(r, ns, t), [1, 1, 0, 0], "tenant {t}");
        let found = r
            .run(Visit::find_by_page(&t.to_owned(), "/p0").namespace(ns))
            .unwrap();
        assert_eq!(found.iter().map(|v| v.id).collect::<Vec<_>>(), [0]);
    }
    // Nothing is due any more: a further call prunes nothing.
    let step = drive!(&mut *r, |io| sweep_expired_with(io, &spec, 20, 50)).unwrap();
    assert_eq!((step.pruned, step.more), (0, false));
}

/// The command-line sweep knows the model from its key template only (not
/// the order of its indexes): it drops the expiry bookkeeping and its
/// orphan pass removes the index entries.
fn a_sweep_from_a_template_leaves_no_stale_entries(r: &mut Runner, ns: &Namespace) {
    expire_visits(r, ns);
    let spec = ModelSpec::from_template(
        "Visit",
        ModelKind::Hash,
        "visit:{{{tenant}}}:{id}",
        Some(ns),
        Some("visit"),
    )
    .unwrap();
    let opts = StatsOptions::default().batch(20);
    let report = drive!(&mut *r, |io| sweep_with(io, &spec, &opts)).unwrap();
    assert_eq!(report.expired, 3 * u64::from(PER_TENANT - 1), "{report:?}");
    for t in TENANTS {
        assert_eq!(leftovers(r, ns, t), [1, 1, 0, 0], "tenant {t}");
    }
}

// ---------------------------------------------------------------------------
// Items 5 and 7: lookups over foreign entries and over many matches

/// Entities scoped per tenant, without expiry.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "ticket:{tenant}:{id}", hash_tag = "tenant")]
struct Ticket {
    #[redis(id)]
    tenant: String,
    #[redis(id)]
    id: u32,
    #[redis(index)]
    status: String,
    #[redis(unique)]
    code: String,
}

fn ticket(tenant: &str, id: u32, status: &str) -> Ticket {
    Ticket {
        tenant: tenant.to_owned(),
        id,
        status: status.to_owned(),
        code: format!("{tenant}-{id}"),
    }
}

/// Index entries in tenant a's scope that name tenant b's entities (written
/// by hand) are skipped and removed: no CROSSSLOT, no entity of another
/// tenant returned, and the lookup works again on every later call.
fn entries_naming_another_scope_are_skipped_and_pruned(r: &mut Runner, ns: &Namespace) {
    r.run(ticket("a", 1, "open").save().namespace(ns)).unwrap();
    r.run(ticket("b", 5, "open").save().namespace(ns)).unwrap();
    let idx = format!("{ns}:ticket:{{a}}:#ticket:idx:status");
    let uniq = format!("{ns}:ticket:{{a}}:#ticket:uniq:code");
    let _: i64 = r.cmd("ZADD", &idx).arg(0).arg("4:open:b:5").go();
    let _: i64 = r.cmd("ZADD", &idx).arg(0).arg("4:open:x{y}:9").go();
    let _: i64 = r.cmd("HSET", &uniq).arg("b-5").arg("b:5").go();
    for _ in 0..2 {
        let open = r
            .run(Ticket::find_by_status(&"a".to_owned(), "open").namespace(ns))
            .unwrap();
        assert_eq!(open, [ticket("a", 1, "open")]);
        let by_code = r
            .run(Ticket::find_by_code(&"a".to_owned(), "b-5").namespace(ns))
            .unwrap();
        assert_eq!(by_code, None);
    }
    let members: Vec<String> = r.cmd("ZRANGE", &idx).arg(0).arg(-1).go();
    assert_eq!(members, ["4:open:a:1"], "the foreign entries are pruned");
    let holder: Option<String> = r.cmd("HGET", &uniq).arg("b-5").go();
    assert_eq!(holder, None);
    // Tenant b's own lookup is untouched.
    let b = r
        .run(Ticket::find_by_status(&"b".to_owned(), "open").namespace(ns))
        .unwrap();
    assert_eq!(b, [ticket("b", 5, "open")]);
}

/// A lookup without a limit over many matches runs several bounded scripts
/// (256 candidates each) and returns every match, stale entries removed.
fn many_matches_are_verified_in_chunks(r: &mut Runner, ns: &Namespace) {
    const N: u32 = 1_000;
    let saves: Vec<_> = (0..N).map(|id| ticket("big", id, "done")).collect();
    for part in saves.chunks(100) {
        r.run(redis_state::op::many(
            part.iter().map(|t| t.save().namespace(ns)),
        ))
        .unwrap();
    }
    // A few stale entries: entities deleted behind the library's back.
    for id in [0, 300, 999] {
        let _: i64 = r.cmd("DEL", &format!("{ns}:ticket:{{big}}:{id}")).go();
    }
    let found = r
        .run(Ticket::find_by_status(&"big".to_owned(), "done").namespace(ns))
        .unwrap();
    assert_eq!(found.len(), N as usize - 3);
    let mut ids: Vec<u32> = found.iter().map(|t| t.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), N as usize - 3);
    assert!(!ids.contains(&300));
    let idx = format!("{ns}:ticket:{{big}}:#ticket:idx:status");
    let left: i64 = r.cmd("ZCARD", &idx).go();
    assert_eq!(left, i64::from(N) - 3, "stale entries removed");
}

/// A pattern made for a plain-format type deletes that type's entries
/// (they carry no header) and nothing outside its key template.
fn a_plain_type_pattern_deletes_its_entries(r: &mut Runner, ns: &Namespace) {
    let plain = Cache::<PlainItem>::new().namespace(ns);
    for id in 0..10 {
        r.run(plain.set(&id, &PlainItem { id })).unwrap();
    }
    let cache = Cache::<Item>::new().namespace(ns);
    r.run(cache.set(&1, &Item { id: 1 })).unwrap();
    let n = pattern(r, &KeyPattern::entries_of::<PlainItem, _>(Some(ns), &())).unwrap();
    assert_eq!(n, 10);
    for id in 0..10 {
        assert_eq!(r.run(plain.get(&id)).unwrap(), None);
    }
    assert_eq!(r.run(cache.get(&1)).unwrap(), Some(Item { id: 1 }));
}

matrix!(
    entries_naming_another_scope_are_skipped_and_pruned,
    many_matches_are_verified_in_chunks,
    expired_index_entries_are_swept_in_bounded_calls,
    a_sweep_from_a_template_leaves_no_stale_entries,
    corrupt_expiry_bookkeeping_is_skipped_and_repaired,
    stray_braces_do_not_stop_a_pattern_invalidation,
    a_broad_pattern_deletes_cache_entries_only,
    a_plain_type_pattern_deletes_its_entries,
);
