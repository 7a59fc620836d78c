//! Unique fields of the bucketed layout: each value is reserved in the slot
//! of its own bucket before the entity write, and reservations whose holder
//! never wrote are revoked (fenced) in the holder's bucket before another
//! entity takes the value. Checked on every executor; concurrent saves
//! across slots and writers killed with SIGKILL on a cluster of 3 primaries.

#[macro_use]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Runner;
use redis_state::keys::{IdBuf, IdValue, key_slot};
use redis_state::prelude::*;
use redis_state::testing::RedisCluster;
use redis_state::{Error, Namespace, RedisHash};

/// A unique field on a key without hash tag: bucketed, 64 buckets.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "acct:{id}")]
struct Account {
    #[redis(id)]
    id: u32,
    name: String,
    #[redis(unique)]
    email: String,
    #[redis(unique)]
    handle: Option<String>,
    #[redis(index)]
    city: String,
}

fn account(id: u32, email: &str) -> Account {
    Account {
        id,
        name: format!("account {id}"),
        email: email.to_owned(),
        handle: None,
        city: "Oslo".to_owned(),
    }
}

fn id_buf<Q: IdValue + ?Sized>(id: &Q) -> IdBuf {
    let mut buf = IdBuf::new();
    id.write_id(&mut buf);
    buf
}

/// Index position of `email` and `handle` in the schema.
fn ix(field: &str) -> &'static redis_state::hash::IndexSchema {
    let schema = &Account::SCHEMA;
    schema
        .indexes
        .iter()
        .find(|ix| schema.fields[ix.field].name == field)
        .unwrap()
}

fn reservation_key(ns: &Namespace, field: &str, value: &str) -> String {
    Account::SCHEMA.reservation_key(Some(ns), ix(field), value.as_bytes())
}

/// The stored reservation of `value`: `<id>|<token>`.
fn reservation(runner: &mut Runner, ns: &Namespace, field: &str, value: &str) -> Option<String> {
    runner
        .cmd("HGET", &reservation_key(ns, field, value))
        .arg(value)
        .go()
}

fn holder_of(entry: &Option<String>) -> Option<&str> {
    entry
        .as_deref()
        .and_then(|e| e.rsplit_once('|'))
        .map(|(id, _)| id)
}

/// Two ids in different buckets (and so, here, slots).
fn apart() -> (u32, u32) {
    let b1 = Account::SCHEMA.bucket_of(&id_buf(&1u32));
    let other = (2..100u32)
        .find(|id| Account::SCHEMA.bucket_of(&id_buf(id)) != b1)
        .unwrap();
    (1, other)
}

redis_state::script! {
    /// The server time (ms) of the node holding `at`.
    struct ServerMs {
        name: "test.server_ms",
        keys: [at],
        args: [],
        returns: i64,
        lua: "local t = redis.call('TIME') return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)",
    }
}

/// The server time (ms) of the node holding `key`, as tokens carry it.
fn server_ms(runner: &mut Runner, key: &str) -> u64 {
    runner.run(ServerMs::new(key)).unwrap() as u64
}

fn a_value_held_elsewhere_is_a_violation(runner: &mut Runner, ns: &Namespace) {
    let (a, b) = apart();
    let holder = account(a, "ann@example.com");
    runner.run(holder.save().namespace(ns)).unwrap();
    // The value's reservation lives in the value's bucket, not the entity's.
    let key = reservation_key(ns, "email", "ann@example.com");
    assert_eq!(
        key_slot(key.as_bytes()),
        Account::SCHEMA.bucket_slot(Account::SCHEMA.value_bucket(b"ann@example.com"))
    );
    let entry = reservation(runner, ns, "email", "ann@example.com");
    assert_eq!(holder_of(&entry), Some(a.to_string().as_str()), "{entry:?}");

    let err = runner
        .run(account(b, "ann@example.com").save().namespace(ns))
        .unwrap_err();
    assert!(
        matches!(&err, Error::UniqueViolation { field: "email", holder, value, .. }
            if *holder == a.to_string() && value == "ann@example.com"),
        "{err}"
    );
    assert_eq!(runner.run(Account::load(&b).namespace(ns)).unwrap(), None);
    // insert, update and save_many are refused alike.
    let err = runner
        .run(account(b, "ann@example.com").insert().namespace(ns))
        .unwrap_err();
    assert!(matches!(err, Error::UniqueViolation { .. }), "{err}");
    runner
        .run(account(b, "bob@example.com").save().namespace(ns))
        .unwrap();
    let err = runner
        .run(
            Account::update(&b)
                .set(Account::EMAIL, "ann@example.com".to_owned())
                .namespace(ns),
        )
        .unwrap_err();
    assert!(matches!(err, Error::UniqueViolation { .. }), "{err}");
    let batch = vec![
        account(a + 200, "new@example.com"),
        account(b, "ann@example.com"),
    ];
    let err = runner
        .run(Account::save_many(&batch).namespace(ns))
        .unwrap_err();
    assert!(matches!(err, Error::UniqueViolation { .. }), "{err}");
    // The holder keeps its value; nothing of the refused writes landed.
    let found = runner
        .run(Account::find_by_email("ann@example.com").namespace(ns))
        .unwrap();
    assert_eq!(found, Some(holder));
    let loaded = runner
        .run(Account::load(&b).namespace(ns))
        .unwrap()
        .unwrap();
    assert_eq!(loaded.email, "bob@example.com");
    // Saving the holder again with its own value is no violation.
    runner
        .run(account(a, "ann@example.com").save().namespace(ns))
        .unwrap();
}

fn find_unique_reads_across_buckets(runner: &mut Runner, ns: &Namespace) {
    let accounts: Vec<Account> = (0..40u32)
        .map(|id| Account {
            handle: id.is_multiple_of(2).then(|| format!("h{id}")),
            ..account(id, &format!("user{id}@example.com"))
        })
        .collect();
    runner
        .run(Account::save_many(&accounts).namespace(ns))
        .unwrap();
    let slots: std::collections::BTreeSet<u16> = accounts
        .iter()
        .map(|a| key_slot(reservation_key(ns, "email", &a.email).as_bytes()))
        .collect();
    assert!(slots.len() > 20, "reservations spread: {}", slots.len());
    for a in &accounts {
        let found = runner
            .run(Account::find_by_email(&a.email).namespace(ns))
            .unwrap();
        assert_eq!(found.as_ref(), Some(a));
        if let Some(h) = &a.handle {
            let found = runner
                .run(Account::find_by_handle(h).namespace(ns))
                .unwrap();
            assert_eq!(found.as_ref(), Some(a));
        }
    }
    let none = runner
        .run(Account::find_by_email("nobody@example.com").namespace(ns))
        .unwrap();
    assert_eq!(none, None);
    // The plain index of the same model still fans out over buckets.
    let oslo = runner
        .run(Account::find_by_city("Oslo").namespace(ns))
        .unwrap();
    assert_eq!(oslo.len(), 40);
}

fn changing_a_value_releases_the_old_one(runner: &mut Runner, ns: &Namespace) {
    let (a, b) = apart();
    runner
        .run(account(a, "old@example.com").save().namespace(ns))
        .unwrap();
    runner
        .run(account(a, "new@example.com").save().namespace(ns))
        .unwrap();
    assert_eq!(reservation(runner, ns, "email", "old@example.com"), None);
    let entry = reservation(runner, ns, "email", "new@example.com");
    assert_eq!(holder_of(&entry), Some(a.to_string().as_str()));
    // Another entity takes the released value in one go.
    runner
        .run(account(b, "old@example.com").save().namespace(ns))
        .unwrap();
    // update releases too, and removing an optional value releases it.
    runner
        .run(
            Account::update(&a)
                .set(Account::HANDLE, Some("ann".to_owned()))
                .namespace(ns),
        )
        .unwrap();
    assert!(reservation(runner, ns, "handle", "ann").is_some());
    runner
        .run(
            Account::update(&a)
                .set(Account::EMAIL, "third@example.com".to_owned())
                .set(Account::HANDLE, None::<String>)
                .namespace(ns),
        )
        .unwrap();
    assert_eq!(reservation(runner, ns, "email", "new@example.com"), None);
    assert_eq!(reservation(runner, ns, "handle", "ann"), None);
    let found = runner
        .run(Account::find_by_email("old@example.com").namespace(ns))
        .unwrap();
    assert_eq!(found.map(|f| f.id), Some(b));
    let found = runner
        .run(Account::find_by_email("third@example.com").namespace(ns))
        .unwrap();
    assert_eq!(found.map(|f| f.id), Some(a));
}

fn delete_releases(runner: &mut Runner, ns: &Namespace) {
    let (a, b) = apart();
    let with_handle = Account {
        handle: Some("gone".to_owned()),
        ..account(a, "gone@example.com")
    };
    runner.run(with_handle.save().namespace(ns)).unwrap();
    assert!(runner.run(Account::delete(&a).namespace(ns)).unwrap());
    assert_eq!(reservation(runner, ns, "email", "gone@example.com"), None);
    assert_eq!(reservation(runner, ns, "handle", "gone"), None);
    runner
        .run(account(b, "gone@example.com").save().namespace(ns))
        .unwrap();
    // delete_many releases every entity's values.
    let many: Vec<Account> = (300..310)
        .map(|id| account(id, &format!("m{id}@example.com")))
        .collect();
    runner.run(Account::save_many(&many).namespace(ns)).unwrap();
    let ids: Vec<u32> = (300..310).collect();
    assert_eq!(
        runner
            .run(Account::delete_many(&ids).namespace(ns))
            .unwrap(),
        10
    );
    for id in 300..310 {
        assert_eq!(
            reservation(runner, ns, "email", &format!("m{id}@example.com")),
            None
        );
    }
}

fn orphan_reservations_are_repaired(runner: &mut Runner, ns: &Namespace) {
    let (a, b) = apart();
    // An entry naming an entity that does not exist, one naming an entity
    // that holds another value, and one another program wrote.
    runner
        .run(account(a, "mine@example.com").save().namespace(ns))
        .unwrap();
    for (value, entry) in [
        ("ghost@example.com", "999|1.beef".to_owned()),
        ("moved@example.com", format!("{a}|1.beef")),
        ("junk@example.com", "not a reservation".to_owned()),
    ] {
        let _: i64 = runner
            .cmd("HSET", &reservation_key(ns, "email", value))
            .arg(value)
            .arg(&entry)
            .go();
        // An orphan reads as no holder.
        let found = runner
            .run(Account::find_by_email(value).namespace(ns))
            .unwrap();
        assert_eq!(found, None, "{value}");
        runner
            .run(account(b, value).save().namespace(ns))
            .unwrap_or_else(|e| panic!("{value}: {e}"));
        let now = reservation(runner, ns, "email", value);
        assert_eq!(holder_of(&now), Some(b.to_string().as_str()), "{value}");
        let found = runner
            .run(Account::find_by_email(value).namespace(ns))
            .unwrap();
        assert_eq!(found.map(|f| f.id), Some(b), "{value}");
    }
    // The revoked tokens are in their holders' buckets' fence sets.
    let fence = Account::SCHEMA.fence_key(Some(ns), &id_buf(&a));
    let score: Option<f64> = runner.cmd("ZSCORE", &fence).arg("1.beef").go();
    assert!(score.is_some(), "the orphan's token is revoked in {fence}");
}

fn a_revoked_or_stale_token_cannot_write(runner: &mut Runner, ns: &Namespace) {
    let (a, b) = apart();
    let value = "pending@example.com";
    let key = reservation_key(ns, "email", value);
    // A save of `a` reserved the value and never wrote (crashed): its
    // token, then revoked by a fencer that has not claimed yet.
    let token = format!("{}.c0ffee", server_ms(runner, &key));
    let _: i64 = runner
        .cmd("HSET", &key)
        .arg(value)
        .arg(format!("{a}|{token}"))
        .go();
    let fence = Account::SCHEMA.fence_key(Some(ns), &id_buf(&a));
    let fence_ms = server_ms(runner, &fence);
    let _: i64 = runner.cmd("ZADD", &fence).arg(fence_ms).arg(&token).go();
    // `a` saves the value again: the reservation names it, but its token is
    // revoked, so the write is refused and the reservation renewed.
    runner.run(account(a, value).save().namespace(ns)).unwrap();
    let entry = reservation(runner, ns, "email", value).unwrap();
    let (holder, renewed) = entry.rsplit_once('|').unwrap();
    assert_eq!(holder, a.to_string());
    assert_ne!(renewed, token, "the revoked token did not write");
    // A stale token (older than the pending limit) is renewed too.
    let stale = format!("{}.5ca1e", server_ms(runner, &key) - 120_000);
    let _: i64 = runner
        .cmd("HSET", &reservation_key(ns, "email", "stale@example.com"))
        .arg("stale@example.com")
        .arg(format!("{a}|{stale}"))
        .go();
    runner
        .run(
            Account::update(&a)
                .set(Account::EMAIL, "stale@example.com".to_owned())
                .namespace(ns),
        )
        .unwrap();
    let entry = reservation(runner, ns, "email", "stale@example.com").unwrap();
    assert!(!entry.ends_with(&stale), "{entry}");
    // A pending reservation of `a` (reserved, not written) is taken over by
    // `b`; `a`'s late save then meets `b` as a live holder.
    let token = format!("{}.d00d", server_ms(runner, &key));
    let late = "late@example.com";
    let _: i64 = runner
        .cmd("HSET", &reservation_key(ns, "email", late))
        .arg(late)
        .arg(format!("{a}|{token}"))
        .go();
    runner.run(account(b, late).save().namespace(ns)).unwrap();
    let score: Option<f64> = runner.cmd("ZSCORE", &fence).arg(&token).go();
    assert!(score.is_some(), "b revoked a's pending token");
    let err = runner
        .run(account(a, late).save().namespace(ns))
        .unwrap_err();
    assert!(
        matches!(&err, Error::UniqueViolation { holder, .. } if *holder == b.to_string()),
        "{err}"
    );
    assert_eq!(
        runner
            .run(Account::find_by_email(late).namespace(ns))
            .unwrap()
            .map(|f| f.id),
        Some(b)
    );
}

/// Transactions (blocking, standalone here) refuse a write that reserves.
#[test]
fn transactions_refuse_reserved_writes() {
    let ns = &common::namespace("unique_tx");
    let con = &mut redis_state::testing::shared_server().connection().unwrap();
    let key = format!("{ns}:{}", Account::key_of(&1));
    let acct = account(1, "tx@example.com");
    let err = redis_state::tx::Transaction::new(&[&key])
        .perform(
            con,
            || redis_state::op::command::<i64>("EXISTS", &key),
            |_| {
                Ok(redis_state::tx::Decision::Commit(
                    acct.save().namespace(ns),
                    (),
                ))
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { reason, .. } if reason.contains("bucketed layout")),
        "{err}"
    );
    assert_eq!(Account::load(&1).namespace(ns).run(con).unwrap(), None);
    // An update that leaves the unique fields alone is one write: it fits.
    acct.save().namespace(ns).run(con).unwrap();
    redis_state::tx::Transaction::new(&[&key])
        .perform(
            con,
            || redis_state::op::command::<i64>("EXISTS", &key),
            |_| {
                Ok(redis_state::tx::Decision::Commit(
                    Account::update(&1)
                        .set(Account::NAME, "renamed".to_owned())
                        .namespace(ns),
                    (),
                ))
            },
        )
        .unwrap();
    let err = redis_state::tx::Transaction::new(&[&key])
        .perform(
            con,
            || redis_state::op::command::<i64>("EXISTS", &key),
            |_| {
                Ok(redis_state::tx::Decision::Commit(
                    Account::update(&1)
                        .set(Account::EMAIL, "other@example.com".to_owned())
                        .namespace(ns),
                    (),
                ))
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    let stored = Account::load(&1).namespace(ns).run(con).unwrap().unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.email.as_str()),
        ("renamed", "tx@example.com")
    );
}

/// The orphan sweep counts an orphan reservation and removes none: a
/// reservation can only be removed safely after its token is revoked.
fn the_orphan_sweep_leaves_reservations(runner: &mut Runner, ns: &Namespace) {
    use redis_state::monitor::stats::{ModelSpec, StatsOptions, gather, sweep_with};
    let accounts: Vec<Account> = (0..10u32)
        .map(|id| account(id, &format!("s{id}@example.com")))
        .collect();
    runner
        .run(Account::save_many(&accounts).namespace(ns))
        .unwrap();
    let _: i64 = runner
        .cmd("HSET", &reservation_key(ns, "email", "ghost@example.com"))
        .arg("ghost@example.com")
        .arg("77|1.beef")
        .go();
    let spec = ModelSpec::hash::<Account>(Some(ns));
    let opts = StatsOptions::default().batch(4);
    let stats = drive!(&mut *runner, |io| gather(io, &spec, &opts)).unwrap();
    let email = stats.indexes.iter().find(|i| i.field == "email").unwrap();
    assert_eq!((email.entries, email.orphans), (11, 1), "{email:?}");
    let report = drive!(&mut *runner, |io| sweep_with(io, &spec, &opts)).unwrap();
    assert_eq!(report.removed, 0, "{report:?}");
    for a in &accounts {
        let entry = reservation(runner, ns, "email", &a.email);
        assert_eq!(holder_of(&entry), Some(a.id.to_string().as_str()));
    }
    assert!(reservation(runner, ns, "email", "ghost@example.com").is_some());
    let err = runner
        .run(account(500, "s3@example.com").save().namespace(ns))
        .unwrap_err();
    assert!(matches!(err, Error::UniqueViolation { .. }), "{err}");
}

/// A write refused for what the data holds releases the values it had
/// reserved: no orphan reservation outlives the refusal, and a value the
/// entity already held stays reserved for it.
fn refused_writes_release_their_reservations(runner: &mut Runner, ns: &Namespace) {
    let (a, b) = apart();
    runner
        .run(account(a, "kept@example.com").save().namespace(ns))
        .unwrap();
    // insert over an existing entity: AlreadyExists.
    let err = runner
        .run(account(a, "fresh@example.com").insert().namespace(ns))
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(reservation(runner, ns, "email", "fresh@example.com"), None);
    // The entity's own value is still reserved for it.
    let kept = reservation(runner, ns, "email", "kept@example.com");
    assert_eq!(holder_of(&kept), Some(a.to_string().as_str()), "{kept:?}");
    let err = runner
        .run(account(a, "kept@example.com").insert().namespace(ns))
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let after = reservation(runner, ns, "email", "kept@example.com");
    assert_eq!(after, kept, "a refused write left the held value alone");
    // update of a missing entity: NotFound.
    let err = runner
        .run(
            Account::update(&b)
                .set(Account::EMAIL, "lost@example.com".to_owned())
                .namespace(ns),
        )
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(reservation(runner, ns, "email", "lost@example.com"), None);
    // One value held by another entity, the other free: the free one was
    // reserved on the way and is released with the violation.
    let both = Account {
        handle: Some("free-handle".to_owned()),
        ..account(b, "kept@example.com")
    };
    let err = runner.run(both.save().namespace(ns)).unwrap_err();
    assert!(
        matches!(&err, Error::UniqueViolation { field: "email", .. }),
        "{err}"
    );
    assert_eq!(reservation(runner, ns, "handle", "free-handle"), None);
    assert_eq!(runner.run(Account::load(&b).namespace(ns)).unwrap(), None);
    // The released values are free for anyone.
    let taker = Account {
        handle: Some("free-handle".to_owned()),
        ..account(b, "fresh@example.com")
    };
    runner.run(taker.save().namespace(ns)).unwrap();
    let found = runner
        .run(Account::find_by_handle("free-handle").namespace(ns))
        .unwrap();
    assert_eq!(found.map(|f| f.id), Some(b));
}

matrix!(
    a_value_held_elsewhere_is_a_violation,
    refused_writes_release_their_reservations,
    the_orphan_sweep_leaves_reservations,
    find_unique_reads_across_buckets,
    changing_a_value_releases_the_old_one,
    delete_releases,
    orphan_reservations_are_repaired,
    a_revoked_or_stale_token_cannot_write,
);

// ---------------------------------------------------------------------------
// Concurrent saves across slots, and writers killed mid-save

/// Values the writers fight over.
const VALUES: u32 = 24;

fn email(v: u32) -> String {
    format!("shared{v}@example.com")
}

/// Counts of what the writers saw.
#[derive(Default)]
struct Counts {
    attempts: AtomicU64,
    saved: AtomicU64,
    violations: AtomicU64,
    other: AtomicU64,
}

/// A small xorshift generator, seeded per writer.
fn rng(w: u32) -> impl FnMut() -> u64 {
    let mut seed = 0x9e37_79b9_u64.wrapping_mul(u64::from(w) + 1);
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// One save, move (update) or delete of one of writer `w`'s entities with
/// a value from the shared pool; `Err` for an error other than a refusal.
fn one_op(
    con: &mut redis::cluster::ClusterConnection,
    ns: &Namespace,
    w: u32,
    next: &mut impl FnMut() -> u64,
    counts: &Counts,
) -> Result<(), Error> {
    let id = w * 1000 + (next() % 8) as u32;
    let v = (next() % u64::from(VALUES)) as u32;
    counts.attempts.fetch_add(1, Ordering::Relaxed);
    let result = match next() % 10 {
        0 => Account::delete(&id).namespace(ns).run(con).map(|_| ()),
        1..=3 => Account::update(&id)
            .set(Account::EMAIL, email(v))
            .namespace(ns)
            .run(con)
            .map(|_| ()),
        _ => account(id, &email(v))
            .save()
            .namespace(ns)
            .run(con)
            .map(|_| ()),
    };
    match result {
        Ok(()) => {
            counts.saved.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(Error::UniqueViolation { .. } | Error::NotFound { .. }) => {
            counts.violations.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => {
            counts.other.fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
    }
}

/// One writer: `rounds` operations (see [`one_op`]).
fn writer(
    con: &mut redis::cluster::ClusterConnection,
    ns: &Namespace,
    w: u32,
    rounds: u32,
    counts: &Counts,
) {
    let mut next = rng(w);
    for _ in 0..rounds {
        if let Err(e) = one_op(con, ns, w, &mut next, counts) {
            eprintln!("writer {w}: {e}");
        }
    }
}

/// Every value is held by at most one entity, and `find_unique` names that
/// holder; a value nobody holds can be taken by a new entity (orphans are
/// repaired). Returns the number of values held.
fn check_consistent(
    con: &mut redis::cluster::ClusterConnection,
    ns: &Namespace,
    writers: u32,
) -> usize {
    let ids: Vec<u32> = (0..writers)
        .flat_map(|w| (0..8).map(move |i| w * 1000 + i))
        .collect();
    // A restarted primary may still be rejoining (CLUSTERDOWN): wait for
    // it, with a bound, before checking.
    let started = std::time::Instant::now();
    let loaded = loop {
        match Account::load_many(&ids).namespace(ns).run(con) {
            Ok(loaded) => break loaded,
            Err(e) if started.elapsed() < std::time::Duration::from_secs(30) => {
                eprintln!("waiting for the cluster: {e}");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => panic!("the cluster did not come back: {e}"),
        }
    };
    let mut holders: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for a in loaded.into_iter().flatten() {
        holders.entry(a.email.clone()).or_default().push(a.id);
    }
    for (value, ids) in &holders {
        assert_eq!(ids.len(), 1, "{value} held by {ids:?}");
        let found = Account::find_by_email(value)
            .namespace(ns)
            .run(con)
            .unwrap();
        assert_eq!(found.map(|f| f.id), Some(ids[0]), "{value}");
    }
    for v in 0..VALUES {
        let value = email(v);
        let fresh = account(900_000 + v, &value);
        match (holders.get(&value), fresh.save().namespace(ns).run(con)) {
            (None, Ok(_)) => {}
            (Some(ids), Err(Error::UniqueViolation { holder, .. })) => {
                assert_eq!(holder, ids[0].to_string(), "{value}")
            }
            (h, r) => panic!("{value}: held by {h:?}, a new saver got {r:?}"),
        }
    }
    holders.len()
}

/// One racer: in each round, after every racer is ready, saves a new
/// entity of its own with the round's value.
fn racer(
    con: &mut redis::cluster::ClusterConnection,
    ns: &Namespace,
    w: u32,
    rounds: u32,
    barrier: &std::sync::Barrier,
    counts: &Counts,
) {
    for k in 0..rounds {
        barrier.wait();
        counts.attempts.fetch_add(1, Ordering::Relaxed);
        match account(w * 10_000 + k, &format!("race{k}@example.com"))
            .save()
            .namespace(ns)
            .run(con)
        {
            Ok(_) => counts.saved.fetch_add(1, Ordering::Relaxed),
            Err(Error::UniqueViolation { .. }) => counts.violations.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                eprintln!("racer {w}: {e}");
                counts.other.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// Revocations recorded in every bucket's fence set.
fn revocations(con: &mut redis::cluster::ClusterConnection, ns: &Namespace) -> u64 {
    (0..Account::SCHEMA.buckets)
        .map(|b| {
            let key = format!(
                "{}:#account:fence",
                Account::SCHEMA.bucket_scope(Some(ns), b)
            );
            redis::cmd("ZCARD").arg(&key).query::<u64>(con).unwrap()
        })
        .sum()
}

#[test]
fn concurrent_saves_across_slots_keep_one_holder_per_value() {
    const WRITERS: u32 = 8;
    const RACES: u32 = 200;
    const ROUNDS: u32 = 300;
    let cluster = redis_state::testing::shared_cluster();
    let ns = common::namespace("unique_concurrent");
    let mut con = cluster.connection().unwrap();

    // Races: every round, all writers save a new entity (each in its own
    // bucket, mostly in different slots) with the same new value at once.
    let races = Counts::default();
    let barrier = std::sync::Barrier::new(WRITERS as usize);
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (ns, counts, barrier) = (&ns, &races, &barrier);
            s.spawn(move || {
                let mut con = cluster.connection().unwrap();
                racer(&mut con, ns, w, RACES, barrier, counts);
            });
        }
    });
    let race_time = started.elapsed();
    let (mut won, mut none) = (0, 0);
    for k in 0..RACES {
        let ids: Vec<u32> = (0..WRITERS).map(|w| w * 10_000 + k).collect();
        let value = format!("race{k}@example.com");
        let holders: Vec<u32> = Account::load_many(&ids)
            .namespace(&ns)
            .run(&mut con)
            .unwrap()
            .into_iter()
            .flatten()
            .map(|a| a.id)
            .collect();
        assert!(holders.len() <= 1, "{value} held by {holders:?}");
        let found = Account::find_by_email(&value)
            .namespace(&ns)
            .run(&mut con)
            .unwrap();
        assert_eq!(found.map(|f| f.id), holders.first().copied(), "{value}");
        match holders.len() {
            1 => won += 1,
            _ => none += 1,
        }
    }
    let fenced = revocations(&mut con, &ns);
    println!(
        "races: {WRITERS} writers x {RACES} rounds on 3 primaries in {race_time:?}: {} saves, {} won, {} violations, {} other errors; {won} values with one holder, {none} with none, 0 with two or more; {fenced} reservations revoked",
        races.attempts.load(Ordering::Relaxed),
        races.saved.load(Ordering::Relaxed),
        races.violations.load(Ordering::Relaxed),
        races.other.load(Ordering::Relaxed),
    );
    assert_eq!(races.other.load(Ordering::Relaxed), 0);
    assert_eq!(races.saved.load(Ordering::Relaxed), won);

    // Churn: saves, moves and deletes of a few entities over a small pool.
    let counts = Counts::default();
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (ns, counts) = (&ns, &counts);
            s.spawn(move || {
                let mut con = cluster.connection().unwrap();
                writer(&mut con, ns, w, ROUNDS, counts);
            });
        }
    });
    let elapsed = started.elapsed();
    let held = check_consistent(&mut con, &ns, WRITERS);
    let (attempts, saved, violations, other) = (
        counts.attempts.load(Ordering::Relaxed),
        counts.saved.load(Ordering::Relaxed),
        counts.violations.load(Ordering::Relaxed),
        counts.other.load(Ordering::Relaxed),
    );
    println!(
        "churn: {WRITERS} writers x {ROUNDS} ops over {VALUES} values on 3 primaries in {elapsed:?}: {attempts} attempts, {saved} done, {violations} refused (violation / not found), {other} other errors; {held} values held, 0 duplicate holders"
    );
    assert_eq!(other, 0);
    assert!(saved > 0 && violations > 0, "the writers contended");
}

const ENV_NODES: &str = "UNIQUE_BUCKETS_NODES";
const ENV_NS: &str = "UNIQUE_BUCKETS_NS";
const ENV_WRITER: &str = "UNIQUE_BUCKETS_WRITER";

/// The body of a writer process (run by the kill test, ignored otherwise).
#[test]
#[ignore = "a child process of writer_processes_killed_mid_save_leave_the_values_consistent"]
fn unique_writer_process() {
    let (Ok(nodes), Ok(ns), Ok(w)) = (
        std::env::var(ENV_NODES),
        std::env::var(ENV_NS),
        std::env::var(ENV_WRITER),
    ) else {
        return;
    };
    let client = redis::cluster::ClusterClient::new(nodes.split(',').collect::<Vec<_>>()).unwrap();
    let mut con = client.get_connection().unwrap();
    let ns = Namespace::new(ns).unwrap();
    let counts = Counts::default();
    writer(&mut con, &ns, w.parse().unwrap(), 1_000_000, &counts);
}

fn spawn_writer(nodes: &str, ns: &Namespace, w: u32) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "unique_writer_process",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(ENV_NODES, nodes)
        .env(ENV_NS, ns.to_string())
        .env(ENV_WRITER, w.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn writer_processes_killed_mid_save_leave_the_values_consistent() {
    const WRITERS: u32 = 4;
    const KILLS: u32 = 12;
    let cluster = RedisCluster::start(3).unwrap();
    let nodes = cluster.urls().join(",");
    let ns = common::namespace("unique_kill9");
    let mut children: HashMap<u32, Child> = (0..WRITERS)
        .map(|w| (w, spawn_writer(&nodes, &ns, w)))
        .collect();
    let mut kills = 0;
    let started = Instant::now();
    while kills < KILLS && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(150 + u64::from(kills % 4) * 70));
        let w = kills % WRITERS;
        if let Some(mut child) = children.remove(&w) {
            child.kill().unwrap(); // SIGKILL, mid-save
            child.wait().unwrap();
        }
        kills += 1;
        children.insert(w, spawn_writer(&nodes, &ns, w));
    }
    for (_, mut child) in children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let mut con = cluster.connection().unwrap();
    // How many values the killed writers left reserved for entities that
    // do not hold them (repaired by the check's new savers).
    let mut orphans = 0;
    for v in 0..VALUES {
        let value = email(v);
        let key = Account::SCHEMA.reservation_key(Some(&ns), ix("email"), value.as_bytes());
        let entry: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg(&value)
            .query(&mut con)
            .unwrap();
        if entry.is_some()
            && Account::find_by_email(&value)
                .namespace(&ns)
                .run(&mut con)
                .unwrap()
                .is_none()
        {
            orphans += 1;
        }
    }
    let held = check_consistent(&mut con, &ns, WRITERS);
    println!(
        "{kills} writer processes killed with SIGKILL mid-save: {held} of {VALUES} values held, 0 duplicate holders, {orphans} orphan reservations repaired by the next saver"
    );
}

#[test]
fn a_primary_killed_mid_save_leaves_the_values_consistent() {
    const WRITERS: u32 = 4;
    // Every write on disk before its reply, so the restarted primary has
    // what it acknowledged.
    let mut cluster = RedisCluster::builder()
        .primaries(3)
        .config("appendonly", "yes")
        .config("appendfsync", "always")
        .start()
        .unwrap();
    let ns = common::namespace("unique_primary_kill9");
    let client = cluster.client();
    let counts = Counts::default();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (ns, counts, stop, client) = (&ns, &counts, &stop, &client);
            s.spawn(move || {
                let mut next = rng(w);
                let mut con = None;
                while !stop.load(Ordering::Relaxed) {
                    let Some(c) = con.as_mut() else {
                        con = client.get_connection().ok();
                        if con.is_none() {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        continue;
                    };
                    if one_op(c, ns, w, &mut next, counts).is_err() {
                        con = None; // reconnect after a fault
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(700));
        // SIGKILL, mid-save: its slots' reservations and entities stop
        // answering between rounds of the writers' saves.
        cluster.node_mut(0).unwrap().stop();
        std::thread::sleep(Duration::from_millis(500));
        cluster.node_mut(0).unwrap().restart().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = started.elapsed();
    let mut con = cluster.connection().unwrap();
    let held = check_consistent(&mut con, &ns, WRITERS);
    let (attempts, saved, refused, failed) = (
        counts.attempts.load(Ordering::Relaxed),
        counts.saved.load(Ordering::Relaxed),
        counts.violations.load(Ordering::Relaxed),
        counts.other.load(Ordering::Relaxed),
    );
    println!(
        "primary 0 of 3 killed with SIGKILL and restarted (AOF always) under {WRITERS} writers, {elapsed:?}: {attempts} attempts, {saved} done, {refused} refused, {failed} failed while it was down; {held} of {VALUES} values held, 0 duplicate holders"
    );
    assert!(saved > 0 && failed > 0, "the kill fell among the saves");
}
