//! Interop with redis-py for state at rest: the seed documents' user
//! profiles (`user:profile:<id>` hashes with no id field) and their
//! cache-aside and write-through entries (`user:<id>`, plain JSON set with
//! SETEX), run by a real redis-py (`tests/interop/seeds_state.py`) against
//! what this library writes, and the other way round, on every executor and
//! topology. The seeds' keys have fixed prefixes, so each test draws ids no
//! other test uses instead of a namespace.

mod common;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Runner;
use common::interop::python_for;
use redis_state::prelude::*;
use redis_state::{Error, Namespace};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Ids no other test (of any binary sharing the servers) uses: the test's
/// unique namespace text, hashed.
fn ids(ns: &Namespace) -> u64 {
    let mut h = DefaultHasher::new();
    ns.as_str().hash(&mut h);
    (h.finish() >> 12) * 100
}

// ---------------------------------------------------------------------------
// Hash models in the seed's layout

/// The seed's `user:profile:<id>`: the id in the key only, a day's TTL.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "user:profile:{id}", store_id = false, ttl = "1d")]
struct Profile {
    #[redis(id)]
    id: u64,
    username: String,
    email: String,
    age: u32,
}

/// The same layout read by a model that stores its id (the default): a
/// hash without the id field still loads, the id coming from the key.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "user:profile:{id}")]
struct ProfileWithId {
    #[redis(id)]
    id: u64,
    username: String,
    email: String,
    age: u32,
}

fn profiles_both_ways(r: &mut Runner, _ns: &Namespace) {
    let mut py = python_for(r);
    let base = ids(_ns);
    let (from_py, from_rust) = (base + 1, base + 2);

    // Python writes, Rust reads (the id from the key).
    let _: Value = py.call(
        "seeds_state.save_user_profile",
        json!({"user_id": from_py, "profile": {"username": "alice", "email": "alice@example.com", "age": "30"}}),
    );
    let alice = Profile {
        id: from_py,
        username: "alice".into(),
        email: "alice@example.com".into(),
        age: 30,
    };
    assert_eq!(r.run(Profile::load(&from_py)).unwrap(), Some(alice.clone()));
    assert_eq!(
        r.run(ProfileWithId::load(&from_py)).unwrap(),
        Some(ProfileWithId {
            id: from_py,
            username: "alice".into(),
            email: "alice@example.com".into(),
            age: 30,
        })
    );
    let email: Option<String> = r
        .run(Profile::load_field(&from_py, Profile::EMAIL))
        .unwrap();
    assert_eq!(email.as_deref(), Some("alice@example.com"));

    // Rust writes, Python reads exactly the seed's fields, and the TTL.
    let bob = Profile {
        id: from_rust,
        username: "bob".into(),
        email: "bob@example.com".into(),
        age: 41,
    };
    r.run(bob.save()).unwrap();
    let stored: Value = py.call(
        "seeds_state.get_user_profile",
        json!({"user_id": from_rust}),
    );
    assert_eq!(
        stored,
        json!({"username": "bob", "email": "bob@example.com", "age": "41"})
    );
    let ttl: i64 = py.call(
        "seeds_state.raw_ttl",
        json!({"key": format!("user:profile:{from_rust}")}),
    );
    assert!((86_000..=86_400).contains(&ttl), "ttl {ttl}");

    // Python's one-field update shows in Rust; Rust's update in Python.
    let _: Value = py.call(
        "seeds_state.update_user_field",
        json!({"user_id": from_rust, "field": "email", "value": "b@example.org"}),
    );
    let loaded = r.run(Profile::load(&from_rust)).unwrap().unwrap();
    assert_eq!(loaded.email, "b@example.org");
    r.run(Profile::update(&from_rust).set(Profile::AGE, 42u32))
        .unwrap();
    let stored: Value = py.call(
        "seeds_state.get_user_profile",
        json!({"user_id": from_rust}),
    );
    assert_eq!(stored["age"], "42");
    assert_eq!(stored.as_object().unwrap().len(), 3, "{stored}");

    // A model that stores its id adds the field (the default layout).
    let with_id = ProfileWithId {
        id: base + 3,
        username: "carol".into(),
        email: "carol@example.com".into(),
        age: 29,
    };
    r.run(with_id.save()).unwrap();
    let stored: Value = py.call("seeds_state.get_user_profile", json!({"user_id": base + 3}));
    assert_eq!(stored["id"], (base + 3).to_string());
    assert!(r.run(Profile::delete(&(base + 3))).unwrap());
}

/// A composite id kept in the key only: each part comes back from its own
/// segment, escapes undone, whatever the order of the fields.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "order:{customer}:{id}", store_id = false)]
struct Order {
    total: u32,
    #[redis(id)]
    id: u64,
    #[redis(id)]
    customer: String,
}

/// An indexed model that keeps ids in its keys only: `find_by` takes each
/// id from the index.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "club:{{members}}:{id}", store_id = false)]
struct Member {
    #[redis(id)]
    id: String,
    #[redis(index)]
    city: String,
}

fn ids_only_in_keys(r: &mut Runner, ns: &Namespace) {
    let order = Order {
        total: 1250,
        id: ids(ns),
        customer: "a:b {c} 50%".into(),
    };
    r.run(order.save().namespace(ns)).unwrap();
    let loaded = r.run(Order::load(&("a:b {c} 50%".to_string(), order.id)).namespace(ns));
    assert_eq!(loaded.unwrap(), Some(order.clone()));
    let key = format!("{ns}:order:a%3Ab%20%7Bc%7D%2050%25:{}", order.id);
    let fields: Vec<String> = r.cmd("HKEYS", &key).go();
    assert_eq!(fields, ["total"]);

    let members = [("ada:1", "paris"), ("bo b", "paris"), ("cy", "rome")];
    for (id, city) in members {
        let m = Member {
            id: id.into(),
            city: city.into(),
        };
        r.run(m.save().namespace(ns)).unwrap();
    }
    let mut found = r.run(Member::find_by_city("paris").namespace(ns)).unwrap();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    let found: Vec<&str> = found.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(found, ["ada:1", "bo b"]);
}

// ---------------------------------------------------------------------------
// Cache entries in the seed's layout

/// The seed's `user:<id>` entries: the JSON alone, an hour's TTL.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "user:{id}", ttl = "1h", format = "plain")]
struct User {
    id: u64,
    name: String,
    email: String,
}

fn user(id: u64, name: &str) -> User {
    User {
        id,
        name: name.into(),
        email: format!("{name}@example.com"),
    }
}

fn get_or_load(
    r: &mut Runner,
    cache: &Cache<User>,
    id: u64,
    value: Option<User>,
    calls: &AtomicUsize,
) -> redis_state::Result<Option<User>> {
    let load = || {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(value)
    };
    match r {
        Runner::Sync(con) => cache.get_or_load(con, &id, load),
        Runner::SyncCluster(con) => cache.get_or_load(con, &id, load),
        Runner::Async(rt, con) => {
            rt.block_on(cache.get_or_load_async(con, &id, || async move { load() }))
        }
        Runner::AsyncCluster(rt, con) => {
            rt.block_on(cache.get_or_load_async(con, &id, || async move { load() }))
        }
    }
}

fn cache_entries_both_ways(r: &mut Runner, ns: &Namespace) {
    let mut py = python_for(r);
    let cache = Cache::<User>::new();
    let calls = AtomicUsize::new(0);
    let base = ids(ns);
    let (a, b, c) = (base + 1, base + 2, base + 3);

    // Python's cache-aside fills the entry; Rust reads it as a hit.
    let ada = user(a, "ada");
    let out: Value = py.call(
        "seeds_state.cache_get_user",
        json!({"user_id": a, "users": {a.to_string(): ada}}),
    );
    assert_eq!(out["loaded"], true);
    let got = get_or_load(r, &cache, a, Some(user(a, "not-this-one")), &calls).unwrap();
    assert_eq!(got, Some(ada.clone()));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a plain entry is a hit");
    assert_eq!(r.run(User::get(&a)).unwrap(), Some(ada));

    // Rust's cache-aside fills the entry; Python reads it as a hit, the
    // bytes are the JSON alone and the TTL is the hour.
    let bo = user(b, "bo");
    let got = get_or_load(r, &cache, b, Some(bo.clone()), &calls).unwrap();
    assert_eq!(got, Some(bo.clone()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let raw: String = py.call("seeds_state.raw_get", json!({"key": format!("user:{b}")}));
    assert_eq!(serde_json::from_str::<User>(&raw).unwrap(), bo);
    assert!(raw.starts_with('{'), "{raw}");
    let out: Value = py.call(
        "seeds_state.cache_get_user",
        json!({"user_id": b, "users": {}}),
    );
    assert_eq!(out["loaded"], false);
    assert_eq!(
        serde_json::from_value::<User>(out["user"].clone()).unwrap(),
        bo
    );
    let ttl: i64 = py.call("seeds_state.raw_ttl", json!({"key": format!("user:{b}")}));
    assert!((3_500..=3_600).contains(&ttl), "ttl {ttl}");

    // Python's write-through replaces it; Rust sees the new value.
    let renamed = user(b, "bob");
    let ok: bool = py.call(
        "seeds_state.cache_update_user",
        json!({"user_id": b, "user_data": renamed}),
    );
    assert!(ok);
    assert_eq!(r.run(User::get(&b)).unwrap(), Some(renamed.clone()));
    // Rust's write replaces it; Python sees it.
    let again = user(b, "bobby");
    r.run(User::set(&b, &again)).unwrap();
    let out: Value = py.call(
        "seeds_state.cache_get_user",
        json!({"user_id": b, "users": {}}),
    );
    assert_eq!(
        serde_json::from_value::<User>(out["user"].clone()).unwrap(),
        again
    );

    // Bytes that are not the type's JSON are an error naming the key, and
    // stay as they are: never overwritten behind the other client's back.
    let _: Value = py.call(
        "seeds_state.raw_set",
        json!({"key": format!("user:{c}"), "value": "not json"}),
    );
    let err = get_or_load(r, &cache, c, Some(user(c, "cy")), &calls).unwrap_err();
    match &err {
        Error::Decode(d) => assert_eq!(d.key, format!("user:{c}")),
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert!(err.to_string().contains(&format!("user:{c}")), "{err}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no load over foreign bytes"
    );
    assert!(r.run(User::get(&c)).is_err());
    let raw: String = py.call("seeds_state.raw_get", json!({"key": format!("user:{c}")}));
    assert_eq!(raw, "not json");

    // "Not found" is JSON's null, which the seed's json.loads reads as None.
    let d = base + 4;
    r.run(User::set_missing(&d)).unwrap();
    let raw: String = py.call("seeds_state.raw_get", json!({"key": format!("user:{d}")}));
    assert_eq!(raw, "null");
    assert_eq!(r.run(User::entry(&d)).unwrap().map(|f| f.value), Some(None));

    // An invalidation deletes the plain entry like any other.
    r.run(User::invalidate(&b)).unwrap();
    assert_eq!(r.run(User::get(&b)).unwrap(), None);
    let raw: Value = py.call("seeds_state.raw_get", json!({"key": format!("user:{b}")}));
    assert_eq!(raw, Value::Null);
}

matrix!(
    profiles_both_ways,
    ids_only_in_keys,
    cache_entries_both_ways
);
