//! Interop with redis-py: the seed documents' own coordination code
//! (`tests/interop/seeds_coord.py`: `RedisLock`, `Redlock`, the rate-limit
//! script, `SessionManager`, `HashSessionManager`, `StringCache`, the
//! increment and get-or-set scripts) run by a real redis-py against what
//! this library writes, and the other way round, on every executor and
//! topology. Keys carry the test's unique namespace text, since the seeds'
//! layouts have fixed prefixes.

mod common;

use std::time::Duration;

use common::Runner;
use common::interop::{Python, python_for};
use redis_state::lock::{Lock, Release};
use redis_state::prelude::*;
use redis_state::ratelimit::FixedWindow;
use redis_state::redlock::Redlock;
use redis_state::session::{HashSessions, IdFormat, JsonSessions};
use redis_state::testing::RedisServer;
use redis_state::value::{Counter, StringValue};
use redis_state::{Error, Namespace, Ttl};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

fn is_uuid4(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && groups[2].starts_with('4')
        && matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b')
        && id
            .bytes()
            .all(|c| c == b'-' || matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

// ---------------------------------------------------------------------------
// Locks

/// `Lock::verbatim_keys("lock:")` and the seed's `RedisLock` take the same
/// key, exclude each other, and each side's release frees the other's lock.
fn locks_exclude_each_other(r: &mut Runner, ns: &Namespace) {
    let mut py = python_for(r);
    let name = format!("{ns}:resource:123");
    let lock = Lock::new(name.as_str())
        .verbatim_keys("lock:")
        .ttl(Duration::from_secs(10))
        .wait(Duration::from_millis(100));
    assert_eq!(lock.key(), format!("lock:{name}"));

    // Python holds it: Rust cannot take it.
    let py_id: Option<String> = py.call("seeds_coord.lock_acquire", json!({"name": name}));
    let py_id = py_id.expect("a free lock");
    assert!(r.run(lock.try_acquire()).unwrap().is_none());
    assert!(matches!(
        lock.acquire_with_runner(r),
        Err(Error::LockTimeout { .. })
    ));
    // Rust's owner-only release frees Python's lock given its identifier;
    // a wrong token does not.
    assert!(!r.run(Release::new(lock.key(), "not-the-token")).unwrap());
    assert!(r.run(Release::new(lock.key(), &py_id)).unwrap());

    // Rust holds it: Python cannot take it, and the seed's release script
    // frees it with Rust's token (not with another).
    let guard = r.run(lock.try_acquire()).unwrap().expect("released");
    let none: Option<String> = py.call("seeds_coord.lock_acquire", json!({"name": name}));
    assert_eq!(none, None);
    let wrong: bool = py.call(
        "seeds_coord.lock_release",
        json!({"name": name, "identifier": "someone-else"}),
    );
    assert!(!wrong);
    assert!(r.run(guard.is_held()).unwrap());
    let released: bool = py.call(
        "seeds_coord.lock_release",
        json!({"name": name, "identifier": guard.token()}),
    );
    assert!(released);
    assert!(!r.run(guard.is_held()).unwrap());
    // And the lock is free for Python again; the fencing tokens Rust drew
    // live beside it (same slot) and keep growing across Python's turns.
    let again: Option<String> = py.call("seeds_coord.lock_acquire", json!({"name": name}));
    assert!(again.is_some());
    let _: bool = py.call(
        "seeds_coord.lock_release",
        json!({"name": name, "identifier": again}),
    );
    let next = r.run(lock.try_acquire()).unwrap().expect("free");
    assert!(next.fence() > guard.fence());
    assert!(r.run(next.release()).unwrap());
}

trait AcquireWithRunner {
    fn acquire_with_runner(
        &self,
        r: &mut Runner,
    ) -> redis_state::Result<redis_state::lock::LockGuard>;
}

impl AcquireWithRunner for Lock {
    fn acquire_with_runner(
        &self,
        r: &mut Runner,
    ) -> redis_state::Result<redis_state::lock::LockGuard> {
        match r {
            Runner::Sync(con) => self.acquire(con),
            Runner::SyncCluster(con) => self.acquire(con),
            Runner::Async(rt, con) => rt.block_on(self.acquire_async(con)),
            Runner::AsyncCluster(rt, con) => rt.block_on(self.acquire_async(con)),
        }
    }
}

/// Rust and two Python threads (another process) increment one counter
/// under the shared lock with a read, a pause and a write: any overlap of
/// holders loses an update, so the total shows whether they excluded each
/// other.
fn locks_guard_a_counter_across_processes(r: &mut Runner, ns: &Namespace) {
    const ROUNDS: u64 = 50;
    let name = format!("{ns}:counter-lock");
    let counter = format!("{ns}:counter");
    let mut py = python_for(r);
    let (py_name, py_counter) = (name.clone(), counter.clone());
    let python = std::thread::spawn(move || {
        let done: u64 = py.call(
            "seeds_coord.lock_increments",
            json!({"name": py_name, "counter": py_counter, "rounds": ROUNDS, "threads": 2}),
        );
        done
    });
    let lock = Lock::new(name.as_str())
        .verbatim_keys("lock:")
        .ttl(Duration::from_secs(10))
        .wait(Duration::from_secs(30));
    let value = StringValue::<u64>::new(counter.as_str());
    // Start once the Python threads are at work, so the two sides overlap.
    let started = std::time::Instant::now();
    while r.run(value.get()).unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Python never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..ROUNDS {
        let guard = lock.acquire_with_runner(r).unwrap();
        let n = r.run(value.get()).unwrap().unwrap_or(0);
        std::thread::sleep(Duration::from_millis(1));
        r.run(value.set(&(n + 1))).unwrap();
        assert!(
            r.run(guard.release()).unwrap(),
            "the lock was lost while held"
        );
    }
    let python_done = python.join().unwrap();
    assert_eq!(python_done, 2 * ROUNDS);
    assert_eq!(r.run(value.get()).unwrap(), Some(3 * ROUNDS));
}

// ---------------------------------------------------------------------------
// Rate limiting

/// The seed's `is_allowed` (INCR, EXPIRE on the first, every request
/// counts) and `FixedWindow::count_all_requests().verbatim_keys(..)` share
/// one quota at `rate_limit:<id>`.
fn rate_limit_shares_one_quota(r: &mut Runner, ns: &Namespace) {
    let mut py = python_for(r);
    let user = format!("{ns}-u1");
    let key = format!("rate_limit:{user}");
    let rl = FixedWindow::new("api", 5, Duration::from_secs(60))
        .count_all_requests()
        .verbatim_keys("rate_limit:");
    assert_eq!(rl.check(user.as_str()).key(), key);

    // Python first: 3 of 5, and the window's TTL is Python's EXPIRE.
    let py_first: Vec<bool> = py.call(
        "seeds_coord.rate_limit_checks",
        json!({"user_id": user, "limit": 5, "window": 60, "n": 3}),
    );
    assert_eq!(py_first, [true, true, true]);
    let rust: Vec<bool> = (0..3)
        .map(|_| r.run(rl.check(user.as_str())).unwrap().allowed)
        .collect();
    assert_eq!(rust, [true, true, false]);
    let py_after: Vec<bool> = py.call(
        "seeds_coord.rate_limit_checks",
        json!({"user_id": user, "limit": 5, "window": 60, "n": 2}),
    );
    assert_eq!(py_after, [false, false]);
    // Every request counted, denied ones too, as the seed counts them.
    let count: i64 = r.cmd("GET", &key).go();
    assert_eq!(count, 8);
    let denied = r.run(rl.check(user.as_str())).unwrap();
    assert!(!denied.allowed && denied.remaining == 0);
    assert!(denied.retry_after > Duration::ZERO && denied.retry_after <= Duration::from_secs(60));

    // Rust first on a fresh subject: Rust's PEXPIRE opens the window and
    // Python counts in it.
    let user2 = format!("{ns}-u2");
    let d = r.run(rl.check(user2.as_str())).unwrap();
    assert!(d.allowed && d.remaining == 4);
    let pttl: i64 = r.cmd("PTTL", &format!("rate_limit:{user2}")).go();
    assert!(pttl > 0 && pttl <= 60_000, "{pttl}");
    let py2: Vec<bool> = py.call(
        "seeds_coord.rate_limit_checks",
        json!({"user_id": user2, "limit": 5, "window": 60, "n": 5}),
    );
    assert_eq!(py2, [true, true, true, true, false]);
    let pttl_after: i64 = r.cmd("PTTL", &format!("rate_limit:{user2}")).go();
    assert!(
        pttl_after > 0 && pttl_after <= pttl,
        "the window was not moved"
    );
}

// ---------------------------------------------------------------------------
// Sessions

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
    theme: String,
}

/// JSON sessions with uuid4 ids and no index: what the seed's
/// `SessionManager` writes loads here, what this library writes the seed
/// reads, updates and deletes, byte-compatible both ways.
fn json_sessions_both_ways(r: &mut Runner, _ns: &Namespace) {
    let mut py = python_for(r);
    let store = JsonSessions::<Cart, u64>::new(Duration::from_secs(1800))
        .id_format(IdFormat::Uuid4)
        .user_index(false);

    // Rust creates; Python reads and updates.
    let cart = Cart {
        items: vec!["book".into(), "pen".into()],
        theme: "dark".into(),
    };
    let s = r.run(store.create(42, cart.clone())).unwrap();
    assert!(is_uuid4(s.id.as_str()), "{}", s.id);
    let index_exists: bool = r.cmd("EXISTS", &store.index_key(&42)).go();
    assert!(!index_exists, "no per-user index was asked for");
    let doc: Value = py.call(
        "seeds_coord.session_get",
        json!({"session_id": s.id.as_str()}),
    );
    assert_eq!(doc["user_id"], json!(42));
    assert_eq!(
        doc["data"],
        json!({"items": ["book", "pen"], "theme": "dark"})
    );
    assert_eq!(
        doc["created_at"].as_str().unwrap(),
        s.created_at
            .naive_utc()
            .format("%Y-%m-%dT%H:%M:%S%.6f")
            .to_string()
    );
    let updated: bool = py.call(
        "seeds_coord.session_update",
        json!({"session_id": s.id.as_str(), "data": {"theme": "light"}}),
    );
    assert!(updated);
    let back = r.run(store.get(s.id.as_str())).unwrap().unwrap();
    assert_eq!(back.data.theme, "light");
    assert_eq!(back.data.items, cart.items);
    assert_eq!(back.created_at, s.created_at);

    // Python creates; Rust reads, updates, deletes; Python sees each step.
    let py_id: String = py.call(
        "seeds_coord.session_create",
        json!({"user_id": 7, "data": {"items": [], "theme": "blue"}}),
    );
    assert!(is_uuid4(&py_id));
    let mut theirs = r.run(store.get(&py_id)).unwrap().expect("a seed session");
    assert_eq!(theirs.user_id, 7);
    theirs.data.items.push("lamp".into());
    assert!(r.run(store.update(&theirs)).unwrap());
    let doc: Value = py.call("seeds_coord.session_get", json!({"session_id": py_id}));
    assert_eq!(doc["data"]["items"], json!(["lamp"]));
    assert!(r.run(store.delete(&py_id)).unwrap());
    let gone: Value = py.call("seeds_coord.session_get", json!({"session_id": py_id}));
    assert_eq!(gone, Value::Null);
    let deleted: bool = py.call(
        "seeds_coord.session_delete",
        json!({"session_id": s.id.as_str()}),
    );
    assert!(deleted);
    assert!(r.run(store.get(s.id.as_str())).unwrap().is_none());
    // Per-user operations are refused without the index.
    assert!(matches!(
        r.run(store.list_for_user(&42)),
        Err(Error::InvalidConfig { .. })
    ));
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Prefs {
    ip: String,
    theme: String,
    visits: u32,
}

/// Hash sessions: the seed's `HashSessionManager` fields (`user_id`,
/// `created_at`, `str(v)` of each keyword) both ways, field by field.
fn hash_sessions_both_ways(r: &mut Runner, _ns: &Namespace) {
    let mut py = python_for(r);
    let store = HashSessions::<Prefs, u64>::new(Duration::from_secs(1800))
        .id_format(IdFormat::Uuid4)
        .user_index(false);
    let prefs = Prefs {
        ip: "10.0.0.1".into(),
        theme: "dark".into(),
        visits: 3,
    };
    let s = r.run(store.create(5, prefs.clone())).unwrap();
    assert!(is_uuid4(s.id.as_str()));
    let all: Value = py.call(
        "seeds_coord.hash_session_get_all",
        json!({"session_id": s.id.as_str()}),
    );
    assert_eq!(all["user_id"], "5");
    assert_eq!(all["ip"], "10.0.0.1");
    assert_eq!(all["theme"], "dark");
    assert_eq!(all["visits"], "3");
    let ok: bool = py.call(
        "seeds_coord.hash_session_set_field",
        json!({"session_id": s.id.as_str(), "field": "theme", "value": "light"}),
    );
    assert!(ok);
    let back = r.run(store.get(s.id.as_str())).unwrap().unwrap();
    assert_eq!(back.data.theme, "light");
    assert_eq!(back.data.visits, 3);

    let py_id: String = py.call(
        "seeds_coord.hash_session_create",
        json!({"user_id": 9, "fields": {"ip": "10.0.0.2", "theme": "blue", "visits": 12}}),
    );
    let theirs = r.run(store.get(&py_id)).unwrap().expect("a seed session");
    assert_eq!(theirs.user_id, 9);
    assert_eq!(
        theirs.data,
        Prefs {
            ip: "10.0.0.2".into(),
            theme: "blue".into(),
            visits: 12
        }
    );
    assert!(r.run(store.set_field(&py_id, "visits", &13u32)).unwrap());
    let visits: String = py.call(
        "seeds_coord.hash_session_get_field",
        json!({"session_id": py_id, "field": "visits"}),
    );
    assert_eq!(visits, "13");
    let theme: Option<String> = r.run(store.get_field(&py_id, "theme")).unwrap();
    assert_eq!(theme.as_deref(), Some("blue"));
}

// ---------------------------------------------------------------------------
// Plain values and counters

/// `StringValue` and the seed's `StringCache.fetch` / `save`: the same
/// bytes, TTLs per call, typed values as plain text.
fn string_values_both_ways(r: &mut Runner, ns: &Namespace) {
    let mut py = python_for(r);
    let greeting = StringValue::<String>::new(format!("{ns}:greeting"));
    r.run(
        greeting
            .set(&"héllo wörld".to_owned())
            .ttl(Duration::from_secs(60)),
    )
    .unwrap();
    let fetched: String = py.call("seeds_coord.string_fetch", json!({"key": greeting.key()}));
    assert_eq!(fetched, "héllo wörld");
    let missing: String = py.call(
        "seeds_coord.string_fetch",
        json!({"key": format!("{ns}:none")}),
    );
    assert_eq!(missing, "", "the seed reads a missing value as \"\"");

    // Python saves with a TTL; Rust reads it, overwrites it and keeps it.
    let _: bool = py.call(
        "seeds_coord.string_save",
        json!({"key": greeting.key(), "value": "from python", "ttl_seconds": 120}),
    );
    assert_eq!(
        r.run(greeting.get()).unwrap().as_deref(),
        Some("from python")
    );
    r.run(greeting.set(&"from rust".to_owned())).unwrap();
    match r.run(greeting.ttl()).unwrap() {
        Ttl::Expires(d) => assert!(d > Duration::from_secs(60) && d <= Duration::from_secs(120)),
        other => panic!("the TTL was not kept: {other:?}"),
    }
    let fetched: String = py.call("seeds_coord.string_fetch", json!({"key": greeting.key()}));
    assert_eq!(fetched, "from rust");
    r.run(greeting.set(&"forever".to_owned()).persist())
        .unwrap();
    assert_eq!(r.run(greeting.ttl()).unwrap(), Ttl::Persistent);

    // Typed values are their plain text.
    let limit = StringValue::<u64>::new(format!("{ns}:limit"));
    r.run(limit.set(&42)).unwrap();
    let text: String = py.call("seeds_coord.string_fetch", json!({"key": limit.key()}));
    assert_eq!(text, "42");
    let _: bool = py.call(
        "seeds_coord.string_save",
        json!({"key": limit.key(), "value": "7"}),
    );
    assert_eq!(r.run(limit.get()).unwrap(), Some(7));
    let flag = StringValue::<bool>::new(format!("{ns}:flag"));
    let _: bool = py.call(
        "seeds_coord.string_save",
        json!({"key": flag.key(), "value": "True"}),
    );
    assert_eq!(r.run(flag.get()).unwrap(), Some(true));
    let ratio = StringValue::<f64>::new(format!("{ns}:ratio"));
    r.run(ratio.set(&0.1)).unwrap();
    let text: String = py.call("seeds_coord.string_fetch", json!({"key": ratio.key()}));
    assert_eq!(text, "0.1");
    // Text that is not a `T` is a decode error naming the key.
    let _: bool = py.call(
        "seeds_coord.string_save",
        json!({"key": limit.key(), "value": "lots"}),
    );
    match r.run(limit.get()) {
        Err(Error::Decode(e)) => assert_eq!(e.key, limit.key()),
        other => panic!("{other:?}"),
    }
}

/// `Counter` and the seed's atomic increment script and pipelined `INCR`:
/// one number, both ways; `INCRBY` keeps the TTL where the seed's script
/// (`SET`) drops it.
fn counters_both_ways(r: &mut Runner, ns: &Namespace) {
    let mut py = python_for(r);
    let views = Counter::<i64>::new(format!("{ns}:counter:views"));
    let n: i64 = py.call(
        "seeds_coord.increment",
        json!({"key": views.key(), "by": 1}),
    );
    assert_eq!(n, 1);
    assert_eq!(r.run(views.incr(5)).unwrap(), 6);
    let n: i64 = py.call(
        "seeds_coord.increment",
        json!({"key": views.key(), "by": 1}),
    );
    assert_eq!(n, 7);
    assert_eq!(r.run(views.get()).unwrap(), 7);
    assert_eq!(r.run(views.incr(-2)).unwrap(), 5);

    // A TTL given by the first increment stays through later ones here,
    // and through Python's INCR, but the seed's increment script drops it.
    let daily = Counter::<i64>::new(format!("{ns}:counter:daily"));
    assert_eq!(
        r.run(daily.incr(1).ttl(Duration::from_secs(100))).unwrap(),
        1
    );
    assert_eq!(r.run(daily.incr(1).ttl(Duration::from_secs(5))).unwrap(), 2);
    match r.run(daily.ttl()).unwrap() {
        Ttl::Expires(d) => assert!(d > Duration::from_secs(5), "{d:?}: the first TTL stays"),
        other => panic!("{other:?}"),
    }
    let n: i64 = py.call(
        "seeds_coord.increment",
        json!({"key": daily.key(), "by": 1}),
    );
    assert_eq!(n, 3);
    assert_eq!(
        r.run(daily.ttl()).unwrap(),
        Ttl::Persistent,
        "the seed's script drops it"
    );
    assert_eq!(
        r.run(daily.incr(1).ttl(Duration::from_secs(100))).unwrap(),
        4
    );
    assert!(
        matches!(r.run(daily.ttl()).unwrap(), Ttl::Expires(_)),
        "repaired"
    );

    // The seed's pipelined set/incr/get of a page counter.
    let home = Counter::<i64>::new(format!("{ns}:counter:page:home"));
    r.run(home.set(40)).unwrap();
    let replies: Vec<Value> = py.call("seeds_coord.pipeline_counter", json!({"key": home.key()}));
    assert_eq!(replies, [json!(true), json!(1), json!("1")]);
    assert_eq!(r.run(home.incr(1)).unwrap(), 2);

    // Floats: INCRBYFLOAT here, the seed's script on the same key.
    let score = Counter::<f64>::new(format!("{ns}:counter:score"));
    assert_eq!(r.run(score.incr(1.5)).unwrap(), 1.5);
    // The seed's script stores 3.5 but returns 3: Redis turns a Lua number
    // reply into an integer.
    let n: f64 = py.call(
        "seeds_coord.increment",
        json!({"key": score.key(), "by": 2}),
    );
    assert_eq!(n, 3.0);
    assert_eq!(r.run(score.get()).unwrap(), 3.5);
    assert_eq!(r.run(score.incr(-0.25)).unwrap(), 3.25);
}

/// `StringValue::get_or_set` and the seed's get-or-set script agree on who
/// stored first.
fn get_or_set_both_ways(r: &mut Runner, ns: &Namespace) {
    let mut py = python_for(r);
    let report = StringValue::<String>::new(format!("{ns}:report"));
    let found: String = py.call(
        "seeds_coord.get_or_compute_value",
        json!({"key": report.key(), "computed": "python's", "ttl": 60}),
    );
    assert_eq!(found, "python's");
    assert_eq!(
        r.run(
            report
                .get_or_set(&"rust's".to_owned())
                .ttl(Duration::from_secs(60))
        )
        .unwrap()
        .as_deref(),
        Some("python's")
    );
    let other = StringValue::<String>::new(format!("{ns}:report2"));
    assert_eq!(
        r.run(
            other
                .get_or_set(&"rust's".to_owned())
                .ttl(Duration::from_secs(60))
        )
        .unwrap(),
        None
    );
    assert!(matches!(r.run(other.ttl()).unwrap(), Ttl::Expires(_)));
    let found: String = py.call(
        "seeds_coord.get_or_compute_value",
        json!({"key": other.key(), "computed": "python's", "ttl": 60}),
    );
    assert_eq!(found, "rust's");
}

matrix!(
    locks_exclude_each_other,
    locks_guard_a_counter_across_processes,
    rate_limit_shares_one_quota,
    json_sessions_both_ways,
    hash_sessions_both_ways,
    string_values_both_ways,
    counters_both_ways,
    get_or_set_both_ways,
);

// ---------------------------------------------------------------------------
// Redlock over three independent servers

/// `Redlock::verbatim_keys("lock:")` and the seed's `Redlock` take
/// `lock:<resource>` on the same servers: each refuses while the other
/// holds a majority, and the seed's release frees a lock taken here.
#[test]
fn redlock_with_the_seed_redlock() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start().unwrap()).collect();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let mut py = Python::standalone(servers[0].port());
    let redlock = Redlock::new(servers.iter().map(RedisServer::client))
        .unwrap()
        .verbatim_keys("lock:")
        .ttl(Duration::from_secs(10))
        .retry(0, Duration::ZERO);

    let py_id: Option<String> = py.call(
        "seeds_coord.redlock_acquire",
        json!({"urls": urls, "resource": "report"}),
    );
    let py_id = py_id.expect("free on every server");
    assert!(redlock.lock("report").unwrap().is_none());
    // This library's release script frees the seed's lock on each server.
    for s in &servers {
        let mut con = s.connection().unwrap();
        assert!(Release::new("lock:report", &py_id).run(&mut con).unwrap());
    }

    let guard = redlock
        .lock("report")
        .unwrap()
        .expect("released everywhere");
    assert_eq!(guard.key(), "lock:report");
    assert_eq!(guard.acquired_on(), 3);
    let none: Option<String> = py.call(
        "seeds_coord.redlock_acquire",
        json!({"urls": urls, "resource": "report"}),
    );
    assert_eq!(none, None);
    let held: u64 = py.call(
        "seeds_coord.redlock_release",
        json!({"urls": urls, "resource": "report", "identifier": guard.token()}),
    );
    assert_eq!(held, 3);
    assert_eq!(redlock.unlock(&guard).unwrap(), 0, "the seed released it");
    let py_again: Option<String> = py.call(
        "seeds_coord.redlock_acquire",
        json!({"urls": urls, "resource": "report"}),
    );
    assert!(py_again.is_some());
}

// ---------------------------------------------------------------------------
// One field of a model

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "user:profile:{id}")]
struct Profile {
    #[redis(id)]
    id: u64,
    username: String,
    email: String,
    age: u16,
    nickname: Option<String>,
}

/// `load_field` reads what `HGET` reads: a field written by redis-py loads
/// alone, typed; a field written here is what redis-py's `hget` returns.
#[test]
fn one_field_of_a_model_both_ways() {
    let server = redis_state::testing::shared_server();
    let mut con = server.connection().unwrap();
    let ns = common::namespace("interop_field");
    let mut py = Python::standalone(server.port());
    let p = Profile {
        id: 321,
        username: "ada".into(),
        email: "ada@example.com".into(),
        age: 36,
        nickname: None,
    };
    p.save().namespace(&ns).run(&mut con).unwrap();
    let key = format!("{ns}:user:profile:321");
    let email: String = py.call(
        "seeds_coord.command",
        json!({"args": ["HGET", key, "email"]}),
    );
    assert_eq!(email, "ada@example.com");
    let _: i64 = py.call(
        "seeds_coord.command",
        json!({"args": ["HSET", key, "age", "37", "nickname", "Countess"]}),
    );
    assert_eq!(
        Profile::load_field(&321, Profile::AGE)
            .namespace(&ns)
            .run(&mut con)
            .unwrap(),
        Some(37)
    );
    assert_eq!(
        Profile::load_field(&321, Profile::NICKNAME)
            .namespace(&ns)
            .run(&mut con)
            .unwrap(),
        Some(Some("Countess".to_owned()))
    );
    assert_eq!(
        Profile::load_field(&999, Profile::AGE)
            .namespace(&ns)
            .run(&mut con)
            .unwrap(),
        None
    );
    let _: i64 = py.call(
        "seeds_coord.command",
        json!({"args": ["HSET", key, "age", "old"]}),
    );
    match Profile::load_field(&321, Profile::AGE)
        .namespace(&ns)
        .run(&mut con)
    {
        Err(Error::Decode(e)) => {
            assert_eq!(e.key, key);
            assert_eq!(e.field.as_deref(), Some("age"));
        }
        other => panic!("{other:?}"),
    }
}
