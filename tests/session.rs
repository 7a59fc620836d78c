//! Sessions: both layouts through every executor and topology; sliding
//! expiry, maximum lifetime, the per-user index, hostile ids, corrupt data,
//! and the conventional JSON layout other clients write.

mod common;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::Runner;
use redis_state::prelude::*;
use redis_state::session::{HashSessions, JsonSessions, Session, SessionId, to_python_json};
use redis_state::testing::shared_server;
use redis_state::{Error, Namespace};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct Cart {
    items: Vec<u32>,
    coupon: Option<String>,
    theme: String,
    visits: u32,
}

fn cart() -> Cart {
    Cart {
        items: vec![1, 2],
        coupon: Some("SPRING".into()),
        theme: "dark".into(),
        visits: 1,
    }
}

fn json_life_cycle(r: &mut Runner, ns: &Namespace) {
    let store = JsonSessions::<Cart>::new(Duration::from_secs(60)).namespace(ns);
    let s = r.run(store.create(42, cart())).unwrap();
    assert_eq!(s.id.as_str().len(), 32);
    assert!(s.id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
    let key = store.key(s.id.as_str()).unwrap();
    assert_eq!(key, format!("{ns}:session:{}", s.id));
    let got = r.run(store.get(s.id.as_str())).unwrap().unwrap();
    assert_eq!(got, s);
    let mut changed = got.clone();
    changed.data.visits = 2;
    changed.data.coupon = None;
    assert!(r.run(store.update(&changed)).unwrap());
    assert_eq!(r.run(store.get(s.id.as_str())).unwrap().unwrap(), changed);
    assert!(r.run(store.touch(s.id.as_str())).unwrap());
    assert!(r.run(store.delete(s.id.as_str())).unwrap());
    assert_eq!(r.run(store.get(s.id.as_str())).unwrap(), None);
    // Gone sessions are not recreated by update or touch.
    assert!(!r.run(store.update(&changed)).unwrap());
    assert!(!r.run(store.touch(s.id.as_str())).unwrap());
    assert!(!r.run(store.delete(s.id.as_str())).unwrap());
    let exists: bool = r.cmd("EXISTS", &key).go();
    assert!(!exists);
}

fn hash_life_cycle(r: &mut Runner, ns: &Namespace) {
    let store = HashSessions::<Cart, String>::new(Duration::from_secs(60)).namespace(ns);
    let s = r.run(store.create("ada".to_owned(), cart())).unwrap();
    let key = store.key(s.id.as_str()).unwrap();
    // Plain fields a redis-cli user reads.
    let theme: String = r.cmd("HGET", &key).arg("theme").go();
    let items: String = r.cmd("HGET", &key).arg("items").go();
    let user: String = r.cmd("HGET", &key).arg("user_id").go();
    assert_eq!(
        (theme.as_str(), items.as_str(), user.as_str()),
        ("dark", "[1,2]", "ada")
    );
    assert_eq!(r.run(store.get(s.id.as_str())).unwrap().unwrap(), s);
    // Per-field reads and writes.
    let id = s.id.as_str();
    assert_eq!(
        r.run(store.get_field::<u32>(id, "visits")).unwrap(),
        Some(1)
    );
    assert!(r.run(store.set_field(id, "visits", &5u32)).unwrap());
    assert!(
        r.run(store.set_field(id, "coupon", &None::<String>))
            .unwrap()
    );
    assert_eq!(
        r.run(store.get_field::<u32>(id, "visits")).unwrap(),
        Some(5)
    );
    assert_eq!(
        r.run(store.get_field::<String>(id, "coupon")).unwrap(),
        None
    );
    assert_eq!(
        r.run(store.get_field::<String>(id, "user_id"))
            .unwrap()
            .as_deref(),
        Some("ada")
    );
    let got = r.run(store.get(id)).unwrap().unwrap();
    assert_eq!(got.data.visits, 5);
    assert_eq!(got.data.coupon, None);
    // Reserved fields cannot be written.
    assert!(matches!(
        r.run(store.set_field(id, "user_id", "eve")),
        Err(Error::InvalidConfig { .. })
    ));
    // update replaces the data; removed optional fields disappear.
    let mut next = got.clone();
    next.data.items = vec![];
    next.data.coupon = Some("X".into());
    assert!(r.run(store.update(&next)).unwrap());
    assert_eq!(r.run(store.get(id)).unwrap().unwrap(), next);
    next.data.coupon = None;
    assert!(r.run(store.update(&next)).unwrap());
    let fields: Vec<String> = r.cmd("HKEYS", &key).go();
    assert!(!fields.contains(&"coupon".to_owned()), "{fields:?}");
    assert!(fields.contains(&"created_at".to_owned()));
    // No partial sessions: writes to a missing session do nothing.
    assert!(r.run(store.delete(id)).unwrap());
    assert!(!r.run(store.set_field(id, "visits", &1u32)).unwrap());
    assert!(!r.run(store.update(&next)).unwrap());
    assert_eq!(r.run(store.get_field::<u32>(id, "visits")).unwrap(), None);
    let exists: bool = r.cmd("EXISTS", &key).go();
    assert!(!exists);
}

fn delete_all_for_a_user(r: &mut Runner, ns: &Namespace) {
    let store = JsonSessions::<Cart>::new(Duration::from_secs(60)).namespace(ns);
    let mine: Vec<Session<Cart>> = (0..3)
        .map(|_| r.run(store.create(7, cart())).unwrap())
        .collect();
    let other = r.run(store.create(8, cart())).unwrap();
    let mut listed = r.run(store.list_for_user(&7)).unwrap();
    listed.sort();
    let mut ids: Vec<SessionId> = mine.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    assert_eq!(listed, ids);
    // One session is deleted on its own: listing prunes its entry.
    assert!(r.run(store.delete(mine[0].id.as_str())).unwrap());
    assert_eq!(r.run(store.list_for_user(&7)).unwrap().len(), 2);
    let entries: i64 = r.cmd("ZCARD", &store.index_key(&7)).go();
    assert_eq!(entries, 2, "the dead entry was pruned");
    // Log out everywhere.
    assert_eq!(r.run(store.delete_all_for_user(&7)).unwrap(), 2);
    for s in &mine {
        assert_eq!(r.run(store.get(s.id.as_str())).unwrap(), None);
    }
    assert!(r.run(store.get(other.id.as_str())).unwrap().is_some());
    assert_eq!(r.run(store.delete_all_for_user(&7)).unwrap(), 0);
    assert!(r.run(store.list_for_user(&7)).unwrap().is_empty());
    // The index has a TTL (it cannot outlive the sessions it lists).
    let ttl: i64 = r.cmd("PTTL", &store.index_key(&8)).go();
    assert!(ttl > 0, "{ttl}");
    // Same for hash sessions.
    let hashes = HashSessions::<Cart, u64>::new(Duration::from_secs(60)).namespace(ns);
    let h = r.run(hashes.create(9, cart())).unwrap();
    assert_eq!(
        r.run(hashes.list_for_user(&9)).unwrap(),
        std::slice::from_ref(&h.id)
    );
    assert_eq!(r.run(hashes.delete_all_for_user(&9)).unwrap(), 1);
    assert_eq!(r.run(hashes.get(h.id.as_str())).unwrap(), None);
}

/// Ids from cookies are untrusted: they never reach another key, never act
/// as patterns, never collide after escaping.
fn hostile_ids(r: &mut Runner, ns: &Namespace) {
    let store = JsonSessions::<Cart>::new(Duration::from_secs(60)).namespace(ns);
    let victim = r.run(store.create(1, cart())).unwrap();
    let vid = victim.id.as_str().to_owned();
    // Keys an attacker might hope to reach: the victim's, the user index,
    // other keys under the prefix.
    let planted = format!("{ns}:session:a:b");
    let () = r.cmd("SET", &planted).arg("{\"user_id\": 666}").go();
    let hostile = [
        "*".to_owned(),
        "?".repeat(32),
        format!("{vid}*"),
        format!("{}*", &vid[..4]),
        format!("[{}]", &vid[..1]),
        "a:b".to_owned(),
        "#user:1".to_owned(),
        format!("{vid}\0"),
        format!("{{{vid}}}"),
        "../../etc/passwd".to_owned(),
        "%".to_owned(),
        "a%3Ab".to_owned(),
        String::new(),
        "x".repeat(100_000),
        "\u{202e}ü\r\n".to_owned(),
    ];
    for id in &hostile {
        assert_eq!(r.run(store.get(id)).unwrap(), None, "{id:.40?}");
        assert!(!r.run(store.touch(id)).unwrap(), "{id:.40?}");
        assert!(!r.run(store.delete(id)).unwrap(), "{id:.40?}");
        if let Some(key) = store.key(id) {
            assert!(key.starts_with(&format!("{ns}:session:")));
            // `<ns>:session:<one segment>`
            assert_eq!(
                key.matches(':').count(),
                ns.as_str().matches(':').count() + 2,
                "{key:.60}"
            );
        }
    }
    // Everything is still there.
    assert_eq!(r.run(store.get(&vid)).unwrap().unwrap(), victim);
    let planted_value: String = r.cmd("GET", &planted).go();
    assert!(planted_value.contains("666"));
    // "a:b" and its escaped form are different ids with different keys.
    assert_ne!(store.key("a:b"), store.key("a%3Ab"));
}

fn corrupt_data_is_a_typed_error(r: &mut Runner, ns: &Namespace) {
    let store = JsonSessions::<Cart>::new(Duration::from_secs(60)).namespace(ns);
    let hashes = HashSessions::<Cart, u64>::new(Duration::from_secs(60)).namespace(ns);
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("bad1", "{not json", None),
        (
            "bad2",
            r#"{"user_id": 1, "data": {"items": [], "theme": "", "visits": 0}}"#,
            None,
        ),
        (
            "bad3",
            r#"{"user_id": 1, "created_at": "noon", "data": {"items": [], "theme": "", "visits": 0}}"#,
            Some("created_at"),
        ),
        (
            "bad4",
            r#"{"user_id": "one", "created_at": "2024-05-01T12:00:00", "data": {}}"#,
            None,
        ),
    ];
    for (id, raw, field) in cases {
        let key = store.key(id).unwrap();
        let () = r.cmd("SET", &key).arg(*raw).go();
        match r.run(store.get(id)) {
            Err(Error::Decode(e)) => {
                assert_eq!(e.key, key);
                assert_eq!(e.field.as_deref(), *field, "{e}");
                assert!(e.to_string().contains(&key), "{e}");
            }
            other => panic!("{id}: expected a decode error, got {other:?}"),
        }
    }
    // A hash session whose field does not fit the type names the field.
    let key = hashes.key("bad5").unwrap();
    let _: i64 = r
        .cmd("HSET", &key)
        .arg("user_id")
        .arg("1")
        .arg("created_at")
        .arg("2024-05-01T12:00:00")
        .arg("theme")
        .arg("x")
        .arg("items")
        .arg("[]")
        .arg("visits")
        .arg("many")
        .go();
    match r.run(hashes.get("bad5")) {
        Err(Error::Decode(e)) => {
            assert_eq!(e.key, key);
            assert_eq!(e.field.as_deref(), Some("visits"), "{e}");
            assert_eq!(e.found.as_deref(), Some("\"many\""));
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    match r.run(hashes.get_field::<u32>("bad5", "visits")) {
        Err(Error::Decode(e)) => assert_eq!(e.field.as_deref(), Some("visits")),
        other => panic!("expected a decode error, got {other:?}"),
    }
    // The wrong layout for the key is the server's WRONGTYPE, not a panic.
    assert!(matches!(
        r.run(store.get("bad5")),
        Err(Error::Server { .. })
    ));
}

/// Hash sessions of any size: more fields than Lua's `unpack` can spread
/// (about 4,000 pairs) are written in chunks, on create and on update.
fn hash_sessions_with_thousands_of_fields(r: &mut Runner, ns: &Namespace) {
    type Fields = std::collections::BTreeMap<String, String>;
    let store = HashSessions::<Fields>::new(Duration::from_secs(60)).namespace(ns);
    let many: Fields = (0..5_000)
        .map(|i| (format!("f{i}"), format!("v{i}")))
        .collect();
    let s = r.run(store.create(1, many.clone())).unwrap();
    let key = store.key(s.id.as_str()).unwrap();
    let n: usize = r.cmd("HLEN", &key).go();
    assert_eq!(n, 5_002, "every field, user_id and created_at");
    let back = r.run(store.get(s.id.as_str())).unwrap().unwrap();
    assert_eq!(back.data, many);
    // Replace with another 4,500 fields, removing the rest.
    let mut next = s.clone();
    next.data = (2_000..6_500)
        .map(|i| (format!("f{i}"), format!("w{i}")))
        .collect();
    assert!(r.run(store.update(&next)).unwrap());
    let back = r.run(store.get(s.id.as_str())).unwrap().unwrap();
    assert_eq!(back.data, next.data);
}

/// uuid4 text ids and a store without the per-user index: the session key
/// is the only key written, and per-user operations say why they cannot run.
fn uuid_ids_without_an_index(r: &mut Runner, ns: &Namespace) {
    use redis_state::session::IdFormat;
    let json = JsonSessions::<Cart>::new(Duration::from_secs(60))
        .namespace(ns)
        .id_format(IdFormat::Uuid4)
        .user_index(false);
    let hash = HashSessions::<Cart>::new(Duration::from_secs(60))
        .namespace(ns)
        .id_format(IdFormat::Uuid4)
        .user_index(false);
    let a = r.run(json.create(7, cart())).unwrap();
    let b = r.run(hash.create(7, cart())).unwrap();
    for id in [a.id.as_str(), b.id.as_str()] {
        let parsed = uuid::Uuid::parse_str(id).unwrap();
        assert_eq!(parsed.get_version_num(), 4, "{id}");
        assert_eq!(parsed.hyphenated().to_string(), id, "lower-case hyphenated");
    }
    assert_eq!(
        r.run(json.get(a.id.as_str())).unwrap().unwrap().data,
        cart()
    );
    assert_eq!(
        r.run(hash.get(b.id.as_str())).unwrap().unwrap().data,
        cart()
    );
    let indexed: bool = r.cmd("EXISTS", &json.index_key(&7)).go();
    assert!(!indexed);
    for e in [
        r.run(json.list_for_user(&7)).map(|_| ()),
        r.run(hash.delete_all_for_user(&7)).map(|_| ()),
    ] {
        match e {
            Err(Error::InvalidConfig { reason, .. }) => {
                assert!(reason.contains("index"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
    // A store with the index reads the same sessions; ids of either form work.
    let indexed_store = JsonSessions::<Cart>::new(Duration::from_secs(60)).namespace(ns);
    assert!(r.run(indexed_store.get(a.id.as_str())).unwrap().is_some());
    assert!(r.run(json.delete(a.id.as_str())).unwrap());
}

matrix!(
    hash_sessions_with_thousands_of_fields,
    uuid_ids_without_an_index,
    json_life_cycle,
    hash_life_cycle,
    delete_all_for_a_user,
    hostile_ids,
    corrupt_data_is_a_typed_error,
);

// ---------------------------------------------------------------------------
// Expiry

#[test]
fn reads_slide_the_expiry() {
    let ns = common::namespace("session_sliding");
    let mut con = shared_server().connection().unwrap();
    let json = JsonSessions::<Cart>::new(Duration::from_millis(400)).namespace(&ns);
    let hash = HashSessions::<Cart>::new(Duration::from_millis(400)).namespace(&ns);
    let a = json.create(1, cart()).run(&mut con).unwrap();
    let b = hash.create(1, cart()).run(&mut con).unwrap();
    // Read every 200 ms for 1.2 s: three idle TTLs, never idle for one.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(200));
        assert!(json.get(a.id.as_str()).run(&mut con).unwrap().is_some());
        assert!(
            hash.get_field::<u32>(b.id.as_str(), "visits")
                .run(&mut con)
                .unwrap()
                .is_some()
        );
    }
    let ttl: i64 = redis::cmd("PTTL")
        .arg(json.key(a.id.as_str()).unwrap())
        .query(&mut con)
        .unwrap();
    assert!(ttl > 300, "the read restarted the TTL: {ttl}");
    // touch slides it too, without reading.
    std::thread::sleep(Duration::from_millis(200));
    assert!(json.touch(a.id.as_str()).run(&mut con).unwrap());
    assert!(hash.touch(b.id.as_str()).run(&mut con).unwrap());
    // Left alone for longer than the idle TTL: gone.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(json.get(a.id.as_str()).run(&mut con).unwrap(), None);
    assert_eq!(hash.get(b.id.as_str()).run(&mut con).unwrap(), None);
}

#[test]
fn sessions_end_at_their_maximum_lifetime_however_used() {
    let ns = common::namespace("session_lifetime");
    let mut con = shared_server().connection().unwrap();
    let json = JsonSessions::<Cart>::new(Duration::from_secs(60))
        .max_lifetime(Duration::from_millis(300))
        .namespace(&ns);
    let s = json.create(1, cart()).run(&mut con).unwrap();
    for _ in 0..2 {
        assert!(json.get(s.id.as_str()).run(&mut con).unwrap().is_some());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(json.get(s.id.as_str()).run(&mut con).unwrap(), None);
    let exists: bool = redis::cmd("EXISTS")
        .arg(json.key(s.id.as_str()).unwrap())
        .query(&mut con)
        .unwrap();
    assert!(!exists, "deleted on sight");
    // The user index expires with the lifetime too.
    let ttl: i64 = redis::cmd("PTTL")
        .arg(json.index_key(&1))
        .query(&mut con)
        .unwrap();
    assert_eq!(ttl, -2, "the index is gone");
}

// ---------------------------------------------------------------------------
// The conventional layout

/// What Python's `SessionManager.create_session` stores, produced by
/// `json.dumps` (Python 3.12) for user 42, a fixed `created_at` and this
/// data.
const PYTHON_DOC: &str = r#"{"user_id": 42, "created_at": "2024-05-01T12:00:00.123456", "data": {"name": "Zo\u00eb", "cart": [1, 2], "total": 10.5, "ratio": 1e-05, "admin": false, "note": null}}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PyData {
    name: String,
    cart: Vec<u32>,
    total: f64,
    ratio: f64,
    admin: bool,
    note: Option<String>,
}

#[test]
fn reads_what_python_writes_and_writes_what_python_reads() {
    let ns = common::namespace("session_python");
    let mut con = shared_server().connection().unwrap();
    // The document below was created in 2024: lift the maximum lifetime
    // (7 days by default) so that it still counts as live.
    let store = JsonSessions::<PyData>::new(Duration::from_secs(60))
        .max_lifetime(Duration::from_secs(100 * 365 * 24 * 3600))
        .namespace(&ns);
    // A session written by Python, under a uuid4 id.
    let id = "2f1c9b8e-4d3a-4c1e-9f7a-0b6e5d4c3b2a";
    let key = store.key(id).unwrap();
    assert_eq!(
        key,
        format!("{ns}:session:{id}"),
        "uuid ids stay as they are"
    );
    let () = redis::cmd("SETEX")
        .arg(&key)
        .arg(1800)
        .arg(PYTHON_DOC)
        .query(&mut con)
        .unwrap();
    let s = store.get(id).run(&mut con).unwrap().unwrap();
    assert_eq!(s.user_id, 42);
    assert_eq!(
        s.created_at,
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
            + chrono::Duration::microseconds(123_456)
    );
    assert_eq!(s.data.name, "Zoë");
    assert_eq!(s.data.ratio, 1e-5);
    // Python's get_session refreshes the TTL with EXPIRE; so does ours.
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut con).unwrap();
    assert!(ttl <= 60_000 && ttl > 50_000, "{ttl}");
    // Writing it back produces the same bytes Python wrote.
    assert!(store.update(&s).run(&mut con).unwrap());
    let raw: String = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
    assert_eq!(raw, PYTHON_DOC);
    // And a session created here has exactly Python's shape.
    let mine = store.create(42, s.data.clone()).run(&mut con).unwrap();
    let raw: String = redis::cmd("GET")
        .arg(store.key(mine.id.as_str()).unwrap())
        .query(&mut con)
        .unwrap();
    let created = mine
        .created_at
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    let created = created.trim_end_matches(".000000");
    let expected = PYTHON_DOC.replace("2024-05-01T12:00:00.123456", created);
    assert_eq!(raw, expected);
}

/// What Python's `HashSessionManager.create_session(42, theme="dark",
/// visits=3)` stores: every value through `str()`.
#[test]
fn reads_hash_sessions_python_writes() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Prefs {
        theme: String,
        visits: u32,
    }
    let ns = common::namespace("session_python_hash");
    let mut con = shared_server().connection().unwrap();
    let store = HashSessions::<Prefs, u64>::new(Duration::from_secs(60)).namespace(&ns);
    let id = "9b2e4f10-1c3d-4e5f-8a9b-0c1d2e3f4a5b";
    let key = store.key(id).unwrap();
    let now = Utc::now()
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    let _: i64 = redis::cmd("HSET")
        .arg(&key)
        .arg(&[
            ("user_id", "42"),
            ("created_at", &now),
            ("theme", "dark"),
            ("visits", "3"),
        ])
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("EXPIRE")
        .arg(&key)
        .arg(1800)
        .query(&mut con)
        .unwrap();
    let s = store.get(id).run(&mut con).unwrap().unwrap();
    assert_eq!(s.user_id, 42);
    assert_eq!(
        s.data,
        Prefs {
            theme: "dark".into(),
            visits: 3
        }
    );
    // Python's get_field reads what set_field writes.
    assert!(store.set_field(id, "visits", &4u32).run(&mut con).unwrap());
    let raw: String = redis::cmd("HGET")
        .arg(&key)
        .arg("visits")
        .query(&mut con)
        .unwrap();
    assert_eq!(raw, "4");
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut con).unwrap();
    assert!(
        ttl <= 60_000,
        "the expiry slid to the store's idle TTL: {ttl}"
    );
}

#[test]
fn python_formatting_matches_json_dumps() {
    // `json.dumps({"k": [1, 2.5, "é", {"n": None}]})` in Python 3.
    let v = serde_json::json!({"k": [1, 2.5, "é", {"n": null}]});
    assert_eq!(
        String::from_utf8(to_python_json(&v).unwrap()).unwrap(),
        r#"{"k": [1, 2.5, "\u00e9", {"n": null}]}"#
    );
}
