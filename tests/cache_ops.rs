//! `#[derive(Cached)]` and the strategies, through the blocking and the
//! async executor, on a standalone server and on a 3-primary Cluster.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::Runner;
use redis_state::cache::{Cache, KeyPattern, Tag, invalidate_pattern, invalidate_pattern_async};
use redis_state::prelude::*;
use redis_state::{Error, Namespace};
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(
    key = "product:{id}",
    ttl = "10m",
    jitter = "10%",
    stale = "1m",
    negative_ttl = "30s",
    tag = "category:{category}",
    version = 2
)]
struct Product {
    id: u64,
    name: String,
    category: String,
}

fn product(id: u64, category: &str) -> Product {
    Product {
        id,
        name: format!("product {id}"),
        category: category.to_owned(),
    }
}

/// Short-lived, for stale windows and tag pruning.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "flash:{id}", ttl = "300ms", stale = "5s", tag = "g:{group}")]
struct Flash {
    id: u32,
    group: String,
    n: u32,
}

/// An explicit id: the value does not hold its key.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(
    key = "report:{day}:{region}",
    id = "(String, u16)",
    ttl = "1h",
    beta = 0
)]
struct Report {
    total: i64,
}

/// A key with a hash tag: its fill lease is `<key>:#lease`, under the same
/// prefix as the entries.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "{{tenant}}:doc:{id}", ttl = "10m")]
struct Doc {
    id: u32,
}

// ---------------------------------------------------------------------------
// A logger that keeps what the cache logs, to check that foreign bytes are
// reported.

struct Capture;

static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target().starts_with("redis_state")
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            LOGS.lock()
                .unwrap()
                .push(format!("{} {}", r.level(), r.args()));
        }
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        static LOGGER: Capture = Capture;
        log::set_logger(&LOGGER).unwrap();
        log::set_max_level(log::LevelFilter::Debug);
    });
}

fn logged(needle: &str) -> bool {
    LOGS.lock().unwrap().iter().any(|l| l.contains(needle))
}

// ---------------------------------------------------------------------------
// Running the loader strategies through each kind of connection.

fn get_or_load<T>(
    r: &mut Runner,
    cache: &Cache<T>,
    id: &T::Id,
    loader: impl FnOnce() -> Result<Option<T>, String> + Send,
) -> redis_state::Result<Option<T>>
where
    T: Cached + Clone + Send + Sync + 'static,
{
    match r {
        Runner::Sync(con) => cache.get_or_load(con, id, loader),
        Runner::SyncCluster(con) => cache.get_or_load(con, id, loader),
        Runner::Async(rt, con) => {
            rt.block_on(cache.get_or_load_async(con, id, || async move { loader() }))
        }
        Runner::AsyncCluster(rt, con) => {
            rt.block_on(cache.get_or_load_async(con, id, || async move { loader() }))
        }
    }
}

fn write_through<T>(
    r: &mut Runner,
    cache: &Cache<T>,
    value: &T,
    write: impl FnOnce(&T) -> Result<(), String> + Send,
) -> redis_state::Result<()>
where
    T: CachedKeyed + Clone + Send + Sync + 'static,
{
    match r {
        Runner::Sync(con) => cache.write_through(con, value, write),
        Runner::SyncCluster(con) => cache.write_through(con, value, write),
        Runner::Async(rt, con) => rt.block_on(cache.write_through_async(con, value, |v| {
            let r = write(v);
            async move { r }
        })),
        Runner::AsyncCluster(rt, con) => rt.block_on(cache.write_through_async(con, value, |v| {
            let r = write(v);
            async move { r }
        })),
    }
}

/// Takes the fill lease of the entry at `key` for `holder` (another
/// process's loader) for `px` ms; returns the lease key.
fn hold_lease(r: &mut Runner, key: &str, holder: &str, px: u64) -> String {
    let lease = format!("{{{key}}}:#lease");
    let () = r.cmd("SET", &lease).arg(holder).arg("PX").arg(px).go();
    lease
}

fn pattern(r: &mut Runner, p: &KeyPattern) -> usize {
    match r {
        Runner::Sync(con) => invalidate_pattern(con, p).unwrap(),
        Runner::SyncCluster(con) => invalidate_pattern(con, p).unwrap(),
        Runner::Async(rt, con) => rt.block_on(invalidate_pattern_async(con, p)).unwrap(),
        Runner::AsyncCluster(rt, con) => rt.block_on(invalidate_pattern_async(con, p)).unwrap(),
    }
}

// ---------------------------------------------------------------------------
// Scenarios

fn set_get_invalidate(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Product>::new().namespace(ns);
    let p = product(1, "books");
    assert_eq!(r.run(cache.get(&1)).unwrap(), None);
    r.run(cache.set(&1, &p)).unwrap();
    assert_eq!(r.run(cache.get(&1)).unwrap(), Some(p.clone()));

    // The entry is plain text: a header line, then the JSON.
    let key = cache.key(&1);
    assert_eq!(key, format!("{ns}:product:1"));
    let raw: String = r.cmd("GET", &key).go();
    let (header, json) = raw.split_once('\n').unwrap();
    assert!(header.starts_with("rsc1 v2 d0 x"), "{header}");
    assert!(header.ends_with(" v"), "{header}");
    assert_eq!(
        serde_json::from_str::<Product>(json).unwrap(),
        p,
        "redis-cli users read the JSON"
    );

    // Redis TTL = ttl + jitter (≤ 10%) + stale window.
    let pttl: i64 = r.cmd("PTTL", &key).go();
    assert!(pttl > 600_000 + 60_000 - 5_000, "{pttl}");
    assert!(pttl <= 600_000 + 60_000 + 60_000, "{pttl}");
    let found = r.run(cache.entry(&1)).unwrap().unwrap();
    assert!(!found.stale);
    let fresh_for = found.fresh_until_ms - chrono::Utc::now().timestamp_millis();
    assert!(
        (595_000..=660_000).contains(&fresh_for),
        "fresh for {fresh_for} ms"
    );

    assert!(r.run(cache.invalidate(&1)).unwrap());
    assert_eq!(r.run(cache.get(&1)).unwrap(), None);
    assert!(!r.run(cache.invalidate(&1)).unwrap());
    // The fill lease is held back for the hold, then expires.
    let lease: Option<String> = r.cmd("GET", &format!("{{{key}}}:#lease")).go();
    assert_eq!(lease.as_deref(), Some("inv"));
    let lease_ttl: i64 = r.cmd("PTTL", &format!("{{{key}}}:#lease")).go();
    assert!((1..=250).contains(&lease_ttl), "{lease_ttl}");
}

fn jitter_spreads_expiries(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Product>::new().namespace(ns);
    let mut ttls = std::collections::BTreeSet::new();
    for id in 0..20 {
        r.run(cache.set(&id, &product(id, "x"))).unwrap();
        let pttl: i64 = r.cmd("PTTL", &cache.key(&id)).go();
        ttls.insert(pttl / 1000);
    }
    assert!(ttls.len() > 5, "20 writes gave only {ttls:?}");
}

fn negative_caching(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Product>::new().namespace(ns);
    let calls = AtomicUsize::new(0);
    for _ in 0..3 {
        let got = get_or_load(r, &cache, &404, || {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        })
        .unwrap();
        assert_eq!(got, None);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not found is remembered");
    let found = r.run(cache.entry(&404)).unwrap().unwrap();
    assert_eq!(found.value, None);
    let pttl: i64 = r.cmd("PTTL", &cache.key(&404)).go();
    assert!(pttl <= 30_000 && pttl > 25_000, "negative ttl {pttl}");

    // A type without negative_ttl does not remember it.
    let flash = Cache::<Flash>::new().namespace(ns);
    let calls = AtomicUsize::new(0);
    for _ in 0..2 {
        let got = get_or_load(r, &flash, &9, || {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        })
        .unwrap();
        assert_eq!(got, None);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

fn cache_aside(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Product>::new().namespace(ns);
    let calls = AtomicUsize::new(0);
    let load = || {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(Some(product(7, "games")))
    };
    assert_eq!(
        get_or_load(r, &cache, &7, load).unwrap(),
        Some(product(7, "games"))
    );
    assert_eq!(
        get_or_load(r, &cache, &7, || panic!("a hit must not load")).unwrap(),
        Some(product(7, "games"))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The lease was released by the fill.
    let lease: i64 = r
        .cmd("EXISTS", &format!("{{{}}}:#lease", cache.key(&7)))
        .go();
    assert_eq!(lease, 0);
    // The loader's time is stored as delta.
    let found = r.run(cache.entry(&7)).unwrap().unwrap();
    assert!(found.delta < Duration::from_secs(1));
}

fn loader_errors_are_returned_not_cached(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Product>::new().namespace(ns);
    let err = get_or_load(r, &cache, &5, || Err("database down".to_owned())).unwrap_err();
    assert!(
        matches!(&err, Error::User(e) if e.to_string() == "database down"),
        "{err}"
    );
    assert_eq!(r.run(cache.get(&5)).unwrap(), None, "nothing cached");
    // The lease was given back: the next caller loads at once.
    let got = get_or_load(r, &cache, &5, || Ok(Some(product(5, "b")))).unwrap();
    assert_eq!(got, Some(product(5, "b")));
}

fn format_version_mismatch_is_a_miss(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Product>::new().namespace(ns);
    let key = cache.key(&3);
    let far = chrono::Utc::now().timestamp_millis() + 600_000;
    // Written by the previous shape (version 1): a miss, not an error.
    let old = format!("rsc1 v1 d0 x{far} v\n{{\"id\":3,\"title\":\"old shape\"}}");
    let () = r.cmd("SET", &key).arg(&old).go();
    assert_eq!(r.run(cache.get(&3)).unwrap(), None);
    let got = get_or_load(r, &cache, &3, || Ok(Some(product(3, "new")))).unwrap();
    assert_eq!(got, Some(product(3, "new")));
    assert_eq!(
        r.run(cache.get(&3)).unwrap(),
        Some(product(3, "new")),
        "overwritten"
    );
}

fn foreign_bytes_are_a_logged_miss(r: &mut Runner, ns: &Namespace) {
    capture_logs();
    let cache = Cache::<Product>::new().namespace(ns);
    let far = chrono::Utc::now().timestamp_millis() + 600_000;
    let cases: Vec<(u64, Vec<u8>)> = vec![
        (1, b"plain text another program wrote".to_vec()),
        (
            2,
            br#"{"id":2,"name":"json without a header","category":"x"}"#.to_vec(),
        ),
        (3, b"rsc1 v2 d0 x".to_vec()),
        (4, format!("rsc1 v2 d0 x{far} v\n{{\"id\":4,").into_bytes()),
        (5, b"\xff\xfe\x00binary".to_vec()),
        (
            6,
            format!(
                "rsc1 v2 d0 x{far} v\n{{\"id\":\"not a number\",\"name\":\"a\",\"category\":\"b\"}}"
            )
            .into_bytes(),
        ),
    ];
    for (id, bytes) in &cases {
        let () = r.cmd("SET", &cache.key(id)).arg(&bytes[..]).go();
        assert_eq!(r.run(cache.get(id)).unwrap(), None, "case {id}");
        assert!(
            logged(&cache.key(id)),
            "case {id} was not logged: {:?}",
            LOGS.lock().unwrap()
        );
        // get_or_load overwrites it.
        let got = get_or_load(r, &cache, id, || Ok(Some(product(*id, "fixed")))).unwrap();
        assert_eq!(got, Some(product(*id, "fixed")));
        assert_eq!(r.run(cache.get(id)).unwrap(), Some(product(*id, "fixed")));
    }
    // Another Redis type under the key.
    let key = cache.key(&10);
    let _: i64 = r.cmd("HSET", &key).arg("a").arg("b").go();
    assert_eq!(r.run(cache.get(&10)).unwrap(), None);
    assert!(logged(&format!("ignoring `{key}`")));
    let got = get_or_load(r, &cache, &10, || Ok(Some(product(10, "h")))).unwrap();
    assert_eq!(got, Some(product(10, "h")));
}

fn tags_invalidate_groups(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Product>::new().namespace(ns);
    for id in 1..=3 {
        r.run(cache.set(&id, &product(id, "books"))).unwrap();
    }
    r.run(cache.set(&4, &product(4, "games"))).unwrap();
    // A hostile category is one escaped tag, not a pattern.
    r.run(cache.set(&5, &product(5, "bo*ks"))).unwrap();
    let tag_key = format!("{ns}:#tag:category:books");
    let members: i64 = r.cmd("ZCARD", &tag_key).go();
    assert_eq!(members, 3);

    let n = r
        .run(cache.invalidate_tag(&Tag::new("category:").value(&"books")))
        .unwrap();
    assert_eq!(n, 3);
    for id in 1..=3 {
        assert_eq!(r.run(cache.get(&id)).unwrap(), None);
    }
    assert_eq!(r.run(cache.get(&4)).unwrap(), Some(product(4, "games")));
    assert_eq!(r.run(cache.get(&5)).unwrap(), Some(product(5, "bo*ks")));
    let exists: i64 = r.cmd("EXISTS", &tag_key).go();
    assert_eq!(exists, 0, "the tag set is gone");
    // Invalidating an empty tag is one round trip and deletes nothing.
    assert_eq!(
        r.run(cache.invalidate_tag(&Tag::new("category:").value(&"none")))
            .unwrap(),
        0
    );
}

fn tag_sets_are_pruned(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Flash>::new().namespace(ns);
    let tag_key = format!("{ns}:#tag:g:a");
    for id in 0..5 {
        r.run(cache.set(
            &id,
            &Flash {
                id,
                group: "a".into(),
                n: 0,
            },
        ))
        .unwrap();
    }
    let n: i64 = r.cmd("ZCARD", &tag_key).go();
    assert_eq!(n, 5);
    // The tag set lives exactly as long as its longest-lived member.
    let tag_ttl: i64 = r.cmd("PTTL", &tag_key).go();
    let entry_ttl: i64 = r.cmd("PTTL", &cache.key(&4)).go();
    assert!(
        tag_ttl > 0 && (tag_ttl - entry_ttl).abs() < 200,
        "{tag_ttl} vs {entry_ttl}"
    );
    // After the entries expired, the next write prunes them.
    std::thread::sleep(Duration::from_millis(5_400));
    r.run(cache.set(
        &99,
        &Flash {
            id: 99,
            group: "a".into(),
            n: 0,
        },
    ))
    .unwrap();
    let n: i64 = r.cmd("ZCARD", &tag_key).go();
    assert_eq!(n, 1, "expired members pruned");
}

fn stale_window_serves_stale_while_one_refreshes(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Flash>::new().namespace(ns);
    let v1 = Flash {
        id: 1,
        group: "s".into(),
        n: 1,
    };
    r.run(cache.set(&1, &v1)).unwrap();
    std::thread::sleep(Duration::from_millis(350));
    let found = r.run(cache.entry(&1)).unwrap().unwrap();
    assert!(found.stale, "past the ttl, inside the stale window");
    // Another caller holds the refresh lease: the stale value comes back at
    // once, without loading.
    let lease = hold_lease(r, &cache.key(&1), "someone-else", 2000);
    let got = get_or_load(r, &cache, &1, || panic!("the lease holder refreshes")).unwrap();
    assert_eq!(got, Some(v1.clone()));
    let _: i64 = r.cmd("DEL", &lease).go();
    // This caller refreshes and gets the new value.
    let v2 = Flash { n: 2, ..v1.clone() };
    let got = get_or_load(r, &cache, &1, || Ok(Some(v2.clone()))).unwrap();
    assert_eq!(got, Some(v2.clone()));
    let found = r.run(cache.entry(&1)).unwrap().unwrap();
    assert!(!found.stale);
    assert_eq!(found.value, Some(v2));
    // A refresh that fails serves the stale value.
    std::thread::sleep(Duration::from_millis(350));
    let got = get_or_load(r, &cache, &1, || Err("down".to_owned())).unwrap();
    assert_eq!(got.map(|f| f.n), Some(2));
}

fn xfetch_refreshes_early(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Product>::new().namespace(ns);
    let key = cache.key(&8);
    let now = chrono::Utc::now().timestamp_millis();
    let json = serde_json::to_string(&product(8, "old")).unwrap();
    // Fresh for 10 more seconds, but it took 10 minutes to compute: with
    // β = 1 the paper refreshes unless rand() > e^-(10s/10min) ≈ 0.983.
    let entry = format!("rsc1 v2 d600000 x{} v\n{json}", now + 10_000);
    let calls = AtomicUsize::new(0);
    let mut refreshed = 0;
    for _ in 0..20 {
        let () = r.cmd("SET", &key).arg(&entry).arg("PX").arg(60_000).go();
        let got = get_or_load(r, &cache, &8, || {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(Some(product(8, "new")))
        })
        .unwrap()
        .unwrap();
        if got.category == "new" {
            refreshed += 1;
        }
    }
    assert_eq!(refreshed, calls.load(Ordering::SeqCst));
    assert!(refreshed >= 15, "refreshed {refreshed} of 20");

    // A cheap value far from its expiry is not refreshed.
    let entry = format!("rsc1 v2 d1 x{} v\n{json}", now + 600_000);
    for _ in 0..20 {
        let () = r.cmd("SET", &key).arg(&entry).arg("PX").arg(60_000).go();
        let got = get_or_load(r, &cache, &8, || panic!("no early refresh")).unwrap();
        assert_eq!(got.unwrap().category, "old");
    }

    // β = 0 turns it off (Report).
    let reports = Cache::<Report>::new().namespace(ns);
    let rkey = reports.key(&("2024-05-01".to_owned(), 7));
    assert_eq!(rkey, format!("{ns}:report:2024-05-01:7"));
    let entry = format!("rsc1 v1 d600000 x{} v\n{{\"total\":5}}", now + 10_000);
    let () = r.cmd("SET", &rkey).arg(&entry).go();
    let got = get_or_load(r, &reports, &("2024-05-01".to_owned(), 7), || {
        panic!("beta = 0")
    })
    .unwrap();
    assert_eq!(got, Some(Report { total: 5 }));
}

fn write_through_writes_source_then_cache(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Product>::new().namespace(ns);
    let source = Mutex::new(Vec::new());
    let p = product(11, "books");
    write_through(r, &cache, &p, |v| {
        source.lock().unwrap().push(v.clone());
        Ok(())
    })
    .unwrap();
    assert_eq!(source.lock().unwrap().as_slice(), std::slice::from_ref(&p));
    assert_eq!(r.run(cache.get(&11)).unwrap(), Some(p.clone()));
    // A failing source write leaves the cache alone.
    let q = Product {
        name: "renamed".into(),
        ..p.clone()
    };
    let err = write_through(r, &cache, &q, |_| Err("constraint violated".to_owned())).unwrap_err();
    assert!(err.to_string().contains("constraint violated"));
    assert_eq!(r.run(cache.get(&11)).unwrap(), Some(p));
}

fn set_revokes_a_fill_in_flight(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Product>::new().namespace(ns);
    let key = cache.key(&12);
    // A loader (of another process) holds the lease with an old read...
    let lease = format!("{{{key}}}:#lease");
    let () = r
        .cmd("SET", &lease)
        .arg("their-token")
        .arg("PX")
        .arg(5000)
        .go();
    // ...then the source of truth changes and is written through.
    r.run(cache.set(&12, &product(12, "new"))).unwrap();
    let exists: i64 = r.cmd("EXISTS", &lease).go();
    assert_eq!(exists, 0, "the old fill's lease is revoked");
    // Its waiters were woken with the new value.
    let done = format!("{{{key}}}:#done");
    let len: i64 = r.cmd("XLEN", &done).go();
    assert_eq!(len, 1);
}

fn pattern_invalidation_scans_every_primary(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Product>::new().namespace(ns);
    for id in 0..40 {
        r.run(cache.set(&id, &product(id, "p"))).unwrap();
    }
    // Keys of another type and a look-alike with a glob in its id survive.
    let reports = Cache::<Report>::new().namespace(ns);
    r.run(reports.set(&("d*".to_owned(), 1), &Report { total: 1 }))
        .unwrap();
    r.run(reports.set(&("dx".to_owned(), 1), &Report { total: 2 }))
        .unwrap();
    let n = pattern(
        r,
        &KeyPattern::entries_of::<Report, _>(Some(ns), &"d*".to_owned()),
    );
    assert_eq!(n, 1, "only the literal `d*` report");
    assert_eq!(
        r.run(reports.get(&("dx".to_owned(), 1))).unwrap(),
        Some(Report { total: 2 })
    );

    let n = pattern(r, &KeyPattern::entries_of::<Product, _>(Some(ns), &()));
    assert_eq!(n, 40);
    for id in 0..40 {
        assert_eq!(r.run(cache.get(&id)).unwrap(), None);
    }
    assert_eq!(
        r.run(reports.get(&("dx".to_owned(), 1))).unwrap(),
        Some(Report { total: 2 })
    );
}

/// A pattern over hash-tagged keys also matches their fill leases (strings
/// too): they are left alone, so an invalidation's hold stays in force.
fn pattern_invalidation_leaves_leases_alone(r: &mut Runner, ns: &Namespace) {
    let opts = redis_state::cache::CacheOptions::default().hold(Duration::from_secs(30));
    let docs = Cache::<Doc>::new().namespace(ns).options(opts);
    r.run(docs.set(&1, &Doc { id: 1 })).unwrap();
    r.run(docs.set(&2, &Doc { id: 2 })).unwrap();
    r.run(docs.invalidate(&1)).unwrap();
    let lease = format!("{}:#lease", docs.key(&1));
    let n = pattern(r, &KeyPattern::entries_of::<Doc, _>(Some(ns), &()));
    assert_eq!(n, 1, "only the entry of doc 2");
    let holder: Option<String> = r.cmd("GET", &lease).go();
    assert_eq!(
        holder.as_deref(),
        Some("inv"),
        "the hold of doc 1 was lifted"
    );
    let junk: i64 = r.cmd("EXISTS", &format!("{lease}:#lease")).go();
    assert_eq!(junk, 0);
}

fn batches_with_other_operations(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Product>::new().namespace(ns);
    let reports = Cache::<Report>::new().namespace(ns);
    r.run(batch((
        cache.set(&1, &product(1, "a")),
        reports.set(&("x".to_owned(), 2), &Report { total: 9 }),
        cache.set(&2, &product(2, "b")),
    )))
    .unwrap();
    let (a, b, c) = r
        .run(batch((
            cache.get(&1),
            reports.get(&("x".to_owned(), 2)),
            cache.get(&3),
        )))
        .unwrap();
    assert_eq!(a, Some(product(1, "a")));
    assert_eq!(b, Some(Report { total: 9 }));
    assert_eq!(c, None);
    // The keyed form needs no id.
    r.run(product(6, "k").put().namespace(ns)).unwrap();
    assert_eq!(r.run(cache.get(&6)).unwrap(), Some(product(6, "k")));
    assert_eq!(product(6, "k").key(), "product:6");
}

fn waiting_for_a_dead_loader_is_bounded(r: &mut Runner, ns: &Namespace) {
    use redis_state::cache::CacheOptions;
    let cache = Cache::<Product>::new()
        .namespace(ns)
        .options(CacheOptions::default().wait(Duration::from_millis(300)));
    // A loader of another process took the lease and died without filling.
    let lease = hold_lease(r, &cache.key(&21), "dead-holder", 60_000);
    let calls = AtomicUsize::new(0);
    let started = std::time::Instant::now();
    let got = get_or_load(r, &cache, &21, || {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(Some(product(21, "x")))
    })
    .unwrap();
    let waited = started.elapsed();
    assert_eq!(got, Some(product(21, "x")));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Two bounded waits (the second after retrying the lease), then it loads.
    assert!(waited >= Duration::from_millis(550), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    // It did not cache over the foreign lease.
    assert_eq!(r.run(cache.get(&21)).unwrap(), None);
    // Once the lease expires, the next miss fills normally.
    let _: i64 = r.cmd("DEL", &lease).go();
    get_or_load(r, &cache, &21, || Ok(Some(product(21, "y")))).unwrap();
    assert_eq!(r.run(cache.get(&21)).unwrap(), Some(product(21, "y")));
}

/// A dead holder's lease runs out: a waiter sees it gone (even with no
/// bound on its wait) and takes the lease itself, fills and caches.
fn a_waiter_takes_over_when_the_lease_runs_out(r: &mut Runner, ns: &Namespace) {
    use redis_state::cache::CacheOptions;
    let cache = Cache::<Product>::new()
        .namespace(ns)
        .options(CacheOptions::default().wait(Duration::MAX));
    hold_lease(r, &cache.key(&22), "dead-holder", 400);
    let calls = AtomicUsize::new(0);
    let started = std::time::Instant::now();
    let got = get_or_load(r, &cache, &22, || {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(Some(product(22, "x")))
    })
    .unwrap();
    let waited = started.elapsed();
    assert_eq!(got, Some(product(22, "x")));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    // It filled under a lease of its own.
    assert_eq!(r.run(cache.get(&22)).unwrap(), Some(product(22, "x")));
}

/// Another process's slow loader holds the lease; a caller waits for it;
/// then the entry is invalidated (the source changed). The waiter must be
/// told at once (not sit out its 5 s wait bound) and return the fresh
/// source value, and nothing stale may be cached.
fn an_invalidation_wakes_the_waiters_of_the_fill_it_revokes(r: &mut Runner, ns: &Namespace) {
    use std::sync::mpsc;
    use std::time::Instant;
    let topology = if r.is_cluster() {
        common::Topology::Cluster
    } else {
        common::Topology::Standalone
    };
    // Default options: a 5 s wait bound.
    let cache = Cache::<Product>::new().namespace(ns);
    // Another process: its own single-flight registry.
    let theirs = Cache::<Product>::new().namespace(ns);
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut r = Runner::new(topology, false);
        get_or_load(&mut r, &theirs, &41, move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            Ok(Some(product(41, "stale")))
        })
    });
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the holder's loader started");
    let ns2 = ns.clone();
    let invalidator = std::thread::spawn(move || {
        // Let the waiter below find the lease taken and start waiting.
        std::thread::sleep(Duration::from_millis(300));
        let mut r = Runner::new(topology, false);
        let existed = r
            .run(Cache::<Product>::new().namespace(&ns2).invalidate(&41))
            .unwrap();
        // The slow loader finishes after the change, with what it read.
        release_tx.send(()).unwrap();
        existed
    });
    let started = Instant::now();
    let got = get_or_load(r, &cache, &41, || Ok(Some(product(41, "fresh")))).unwrap();
    let waited = started.elapsed();
    assert!(!invalidator.join().unwrap(), "no entry was stored yet");
    assert_eq!(got, Some(product(41, "fresh")), "the source's value");
    assert!(
        waited < Duration::from_secs(2),
        "the waiter sat out its wait bound: {waited:?}"
    );
    // The holder returns what it loaded, but its revoked fill is refused.
    let loaded = holder.join().unwrap().unwrap();
    assert_eq!(loaded, Some(product(41, "stale")));
    assert_eq!(r.run(cache.get(&41)).unwrap(), None, "nothing cached");
}

/// `Duration::MAX` as wait, lease and hold: no panic, no command Redis
/// refuses; the lease and the hold are clamped, the wait is unbounded.
fn huge_option_durations_are_clamped_not_a_panic(r: &mut Runner, ns: &Namespace) {
    use redis_state::cache::CacheOptions;
    let topology = if r.is_cluster() {
        common::Topology::Cluster
    } else {
        common::Topology::Standalone
    };
    // No wait bound: a waiter waits for the holder (another process's
    // loader), here until a `set` revokes it and hands over its value.
    let unbounded = Cache::<Product>::new()
        .namespace(ns)
        .options(CacheOptions::default().wait(Duration::MAX));
    hold_lease(r, &unbounded.key(&52), "their-token", 30_000);
    let ns2 = ns.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let mut r = Runner::new(topology, false);
        r.run(
            Cache::<Product>::new()
                .namespace(&ns2)
                .set(&52, &product(52, "b")),
        )
        .unwrap();
    });
    let got = get_or_load(r, &unbounded, &52, || {
        Err("the waiter must not load".to_owned())
    })
    .unwrap();
    writer.join().unwrap();
    assert_eq!(got, Some(product(52, "b")));

    let opts = CacheOptions::default()
        .wait(Duration::MAX)
        .lease(Duration::MAX)
        .hold(Duration::MAX);
    let cache = Cache::<Product>::new().namespace(ns).options(opts);
    // A miss takes the lease (a clamped PX) and fills.
    let got = get_or_load(r, &cache, &51, || Ok(Some(product(51, "a")))).unwrap();
    assert_eq!(got, Some(product(51, "a")));
    assert_eq!(r.run(cache.get(&51)).unwrap(), Some(product(51, "a")));
    // An invalidation with a huge hold is accepted and clamped.
    assert!(r.run(cache.invalidate(&51)).unwrap());
    let lease = format!("{{{}}}:#lease", cache.key(&51));
    let pttl: i64 = r.cmd("PTTL", &lease).go();
    assert!(
        pttl > 1_000_000_000_000 && pttl < (1i64 << 53),
        "the hold is the clamped maximum: {pttl}"
    );
}

matrix!(
    an_invalidation_wakes_the_waiters_of_the_fill_it_revokes,
    huge_option_durations_are_clamped_not_a_panic,
    waiting_for_a_dead_loader_is_bounded,
    a_waiter_takes_over_when_the_lease_runs_out,
    set_get_invalidate,
    jitter_spreads_expiries,
    negative_caching,
    cache_aside,
    loader_errors_are_returned_not_cached,
    format_version_mismatch_is_a_miss,
    foreign_bytes_are_a_logged_miss,
    tags_invalidate_groups,
    tag_sets_are_pruned,
    stale_window_serves_stale_while_one_refreshes,
    xfetch_refreshes_early,
    write_through_writes_source_then_cache,
    set_revokes_a_fill_in_flight,
    pattern_invalidation_scans_every_primary,
    pattern_invalidation_leaves_leases_alone,
    batches_with_other_operations,
);

// ---------------------------------------------------------------------------
// Waiting never blocks a shared connection.

/// Another process's loader holds the lease of an entry; a task waits for it
/// on a shared async connection (clones of one multiplexed or Cluster
/// connection). Other tasks' commands on that connection must not queue
/// behind the waiter: a blocking `XREAD` would delay them by up to its block
/// time (400 ms).
async fn waiter_shares_a_connection<C>(con: C, mut other: C, ns: Namespace)
where
    C: redis_state::exec::AsyncExecutor + redis::aio::ConnectionLike + Clone + Sync + 'static,
{
    use redis_state::cache::CacheOptions;
    use std::time::Instant;
    let cache = Cache::<Product>::new()
        .namespace(&ns)
        .options(CacheOptions::default().wait(Duration::from_secs(20)));
    let key = cache.key(&31);
    let lease = format!("{{{key}}}:#lease");
    // Same slot as the entry, so the same node's connection on a Cluster.
    let neighbour = format!("{{{key}}}:neighbour");
    let () = redis::cmd("SET")
        .arg(&lease)
        .arg("their-token")
        .arg("PX")
        .arg(20_000)
        .query_async(&mut other)
        .await
        .unwrap();

    let mut waiter_con = con.clone();
    let waiter_cache = cache.clone();
    let waiter = tokio::spawn(async move {
        waiter_cache
            .get_or_load_async(&mut waiter_con, &31, || async {
                Err::<Option<Product>, _>("the waiter must not load")
            })
            .await
    });
    // Let the waiter find the lease taken and start waiting.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut mine = con.clone();
    let mut latencies = Vec::new();
    let sampling = Instant::now();
    while sampling.elapsed() < Duration::from_millis(1200) {
        let t = Instant::now();
        let v: Option<String> = redis::cmd("GET")
            .arg(&neighbour)
            .query_async(&mut mine)
            .await
            .unwrap();
        assert_eq!(v, None);
        latencies.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(13)).await;
    }
    assert!(!waiter.is_finished(), "the lease is still held");

    // The source changes and is written: the waiter gets the value.
    cache
        .set(&31, &product(31, "written"))
        .run_async(&mut other)
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter is woken")
        .unwrap()
        .unwrap();
    assert_eq!(got, Some(product(31, "written")));
    // The median, so that one stall of a busy machine does not decide: a
    // blocking waiter delays nearly every command by most of its block.
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(
        median < Duration::from_millis(150),
        "commands on the shared connection waited {median:?} (median) behind the waiter"
    );
}

fn multi_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_waiter_does_not_block_a_shared_multiplexed_connection() {
    let server = redis_state::testing::shared_server();
    let ns = common::namespace("shared_con");
    multi_thread_rt().block_on(async {
        let con = server.async_connection().await.unwrap();
        let other = server.async_connection().await.unwrap();
        waiter_shares_a_connection(con, other, ns).await;
    });
}

#[test]
fn a_waiter_does_not_block_a_shared_cluster_connection() {
    let cluster = redis_state::testing::shared_cluster();
    let ns = common::namespace("shared_con");
    multi_thread_rt().block_on(async {
        let con = cluster.async_connection().await.unwrap();
        let other = cluster.async_connection().await.unwrap();
        waiter_shares_a_connection(con, other, ns).await;
    });
}

// ---------------------------------------------------------------------------
// CacheWaker: async waiters woken by pub/sub

/// `XREAD` calls the server has served so far.
fn xread_calls(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_xread:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// Another process's loader holds the lease; an async caller with a waker
/// waits `hold_for`, then the value is written. Returns what the waiter got
/// and how many messages the waker received.
async fn wait_with_waker<C>(
    con: C,
    mut other: C,
    waker: redis_state::cache::CacheWaker,
    ns: Namespace,
    hold_for: Duration,
    id: u64,
) -> (Option<Product>, u64)
where
    C: redis_state::exec::AsyncExecutor + redis::aio::ConnectionLike + Clone + Sync + 'static,
{
    use redis_state::cache::CacheOptions;
    let cache = Cache::<Product>::new()
        .namespace(&ns)
        .options(CacheOptions::default().wait(Duration::from_secs(20)))
        .with_waker(waker.clone());
    let lease = format!("{{{}}}:#lease", cache.key(&id));
    let () = redis::cmd("SET")
        .arg(&lease)
        .arg("their-token")
        .arg("PX")
        .arg(20_000)
        .query_async(&mut other)
        .await
        .unwrap();
    let mut waiter_con = con.clone();
    let waiter_cache = cache.clone();
    let waiter = tokio::spawn(async move {
        waiter_cache
            .get_or_load_async(&mut waiter_con, &id, || async {
                Err::<Option<Product>, _>("the waiter must not load")
            })
            .await
    });
    tokio::time::sleep(hold_for).await;
    assert!(!waiter.is_finished(), "the lease is still held");
    cache
        .set(&id, &product(id, "written"))
        .run_async(&mut other)
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter is woken")
        .unwrap()
        .unwrap();
    (got, waker.messages())
}

/// With a waker, a waiter reads the stream a handful of times over a long
/// wait (once after subscribing, on the message, and on the safety rereads
/// every 500 ms), not the dozens of times polling would.
#[test]
fn a_waker_wakes_async_waiters_without_polling() {
    use redis_state::cache::CacheWaker;
    let server = redis_state::testing::RedisServer::start().unwrap();
    let ns = common::namespace("waker");
    let mut admin = server.connection().unwrap();
    multi_thread_rt().block_on(async {
        let con = server.async_connection().await.unwrap();
        let other = server.async_connection().await.unwrap();
        let waker = CacheWaker::connect_async(&server.url()).await.unwrap();
        let before = xread_calls(&mut admin);
        let (got, messages) = wait_with_waker(
            con.clone(),
            other.clone(),
            waker.clone(),
            ns.clone(),
            Duration::from_millis(1500),
            41,
        )
        .await;
        assert_eq!(got, Some(product(41, "written")));
        assert!(messages >= 1, "the store's PUBLISH reached the waker");
        let reads = xread_calls(&mut admin) - before;
        // 1 after subscribing, 3 safety rereads in 1.5 s, 1 on the message;
        // polling at most 25 ms apart would read about 60 times.
        assert!(
            (2..=8).contains(&reads),
            "the waiter read the stream {reads} times"
        );
        assert!(waker.is_connected());

        // The waker's connection is dropped: it notices, and the next wait
        // reconnects and is woken again.
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query(&mut admin)
            .unwrap();
        assert_eq!(killed, 1);
        for _ in 0..100 {
            if !waker.is_connected() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!waker.is_connected(), "the drop was noticed");
        let (got, after) = wait_with_waker(
            con,
            other,
            waker.clone(),
            ns,
            Duration::from_millis(300),
            43,
        )
        .await;
        assert_eq!(got, Some(product(43, "written")));
        assert!(after > messages, "woken by a message after reconnecting");
        assert!(waker.is_connected());
    });
}

#[test]
fn a_waker_wakes_async_waiters_on_a_cluster() {
    use redis_state::cache::CacheWaker;
    let cluster = redis_state::testing::shared_cluster();
    let ns = common::namespace("waker_cluster");
    multi_thread_rt().block_on(async {
        let con = cluster.async_connection().await.unwrap();
        let other = cluster.async_connection().await.unwrap();
        // Any one node: PUBLISH reaches the subscribers of every node.
        let waker = CacheWaker::connect_async(&cluster.primaries()[0].url())
            .await
            .unwrap();
        let (got, messages) =
            wait_with_waker(con, other, waker, ns, Duration::from_millis(300), 41).await;
        assert_eq!(got, Some(product(41, "written")));
        assert!(messages >= 1, "the store's PUBLISH reached the waker");
    });
}

/// A blocking waiter blocks on its own connection (`XREAD BLOCK`) instead
/// of polling: a few reads over a long wait.
#[test]
fn a_blocking_waiter_blocks_on_its_own_connection() {
    let server = redis_state::testing::RedisServer::start().unwrap();
    let ns = common::namespace("blocking_waiter");
    let mut admin = server.connection().unwrap();
    let cache = Cache::<Product>::new().namespace(&ns);
    let lease = format!("{{{}}}:#lease", cache.key(&42));
    let () = redis::cmd("SET")
        .arg(&lease)
        .arg("their-token")
        .arg("PX")
        .arg(20_000)
        .query(&mut admin)
        .unwrap();
    let before = xread_calls(&mut admin);
    let waiter = {
        let cache = cache.clone();
        let mut con = server.connection().unwrap();
        std::thread::spawn(move || {
            cache.get_or_load(&mut con, &42, || {
                Err::<Option<Product>, _>("the waiter must not load")
            })
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    cache
        .set(&42, &product(42, "written"))
        .run(&mut admin)
        .unwrap();
    let got = waiter.join().unwrap().unwrap();
    assert_eq!(got, Some(product(42, "written")));
    let reads = xread_calls(&mut admin) - before;
    // 400 ms blocks: about 4 in 1.5 s, where polling would read ~60 times.
    assert!(
        (1..=8).contains(&reads),
        "the waiter read the stream {reads} times"
    );
}

/// A URL with a fragment connects the waker with RESP3 (the setting is not
/// appended after the `#`): the store's message reaches it.
#[test]
fn a_waker_connects_with_a_url_fragment() {
    use redis_state::cache::CacheWaker;
    let server = redis_state::testing::shared_server();
    let ns = common::namespace("waker_fragment");
    multi_thread_rt().block_on(async {
        let con = server.async_connection().await.unwrap();
        let other = server.async_connection().await.unwrap();
        let waker = CacheWaker::connect_async(&format!("{}/#x", server.url()))
            .await
            .unwrap();
        assert!(waker.is_connected());
        let (got, messages) =
            wait_with_waker(con, other, waker, ns, Duration::from_millis(300), 43).await;
        assert_eq!(got, Some(product(43, "written")));
        assert!(messages >= 1, "the store's PUBLISH reached the waker");
    });
}
