//! Plain string values and counters (`redis_state::value`) on every
//! executor and topology: TTLs kept, given per call or removed; get-or-set;
//! typed values as plain text; bad data as typed errors; counters under
//! concurrency.

mod common;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::Runner;
use redis_state::codec::Json;
use redis_state::prelude::*;
use redis_state::testing::shared_server;
use redis_state::value::{Counter, StringValue};
use redis_state::{Error, Namespace, Ttl};
use serde::{Deserialize, Serialize};

fn expires_within(t: Ttl, lo: Duration, hi: Duration) -> bool {
    matches!(t, Ttl::Expires(d) if d > lo && d <= hi)
}

fn values_keep_or_replace_their_ttl(r: &mut Runner, ns: &Namespace) {
    let v = StringValue::<String>::new("motd").namespace(ns);
    assert_eq!(v.key(), format!("{ns}:motd"));
    assert_eq!(r.run(v.get()).unwrap(), None);
    assert_eq!(r.run(v.ttl()).unwrap(), Ttl::Missing);
    r.run(v.set(&"hello".to_owned())).unwrap();
    assert_eq!(r.run(v.ttl()).unwrap(), Ttl::Persistent);
    r.run(v.set(&"timed".to_owned()).ttl(Duration::from_secs(100)))
        .unwrap();
    // A plain set keeps the TTL the key has.
    r.run(v.set(&"kept".to_owned())).unwrap();
    assert_eq!(r.run(v.get()).unwrap().as_deref(), Some("kept"));
    let ttl = r.run(v.ttl()).unwrap();
    assert!(
        expires_within(ttl, Duration::from_secs(50), Duration::from_secs(100)),
        "{ttl:?}"
    );
    // A new TTL per call replaces it; persist removes it.
    r.run(v.set(&"short".to_owned()).ttl(Duration::from_secs(5)))
        .unwrap();
    let ttl = r.run(v.ttl()).unwrap();
    assert!(
        expires_within(ttl, Duration::ZERO, Duration::from_secs(5)),
        "{ttl:?}"
    );
    r.run(v.set(&"forever".to_owned()).persist()).unwrap();
    assert_eq!(r.run(v.ttl()).unwrap(), Ttl::Persistent);
    let raw: String = r.cmd("GET", v.key()).go();
    assert_eq!(raw, "forever");
    assert!(r.run(v.delete()).unwrap());
    assert!(!r.run(v.delete()).unwrap());
    assert_eq!(r.run(v.get()).unwrap(), None);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    theme: String,
    size: u8,
}

fn typed_values_are_plain_text(r: &mut Runner, ns: &Namespace) {
    let n = StringValue::<i64>::new("n").namespace(ns);
    r.run(n.set(&-42)).unwrap();
    let raw: String = r.cmd("GET", n.key()).go();
    assert_eq!(raw, "-42");
    assert_eq!(r.run(n.get()).unwrap(), Some(-42));
    let when = StringValue::<chrono::DateTime<Utc>>::new("when").namespace(ns);
    let t = Utc.with_ymd_and_hms(2030, 5, 1, 12, 0, 0).unwrap();
    r.run(when.set(&t)).unwrap();
    let raw: String = r.cmd("GET", when.key()).go();
    assert_eq!(raw, "2030-05-01T12:00:00Z");
    assert_eq!(r.run(when.get()).unwrap(), Some(t));
    let json = StringValue::<Settings, Json>::new("settings").namespace(ns);
    let s = Settings {
        theme: "dark".into(),
        size: 3,
    };
    r.run(json.set(&s)).unwrap();
    let raw: String = r.cmd("GET", json.key()).go();
    assert_eq!(raw, r#"{"theme":"dark","size":3}"#);
    assert_eq!(r.run(json.get()).unwrap(), Some(s));
    // What other clients write in the wider forms reads.
    let flag = StringValue::<bool>::new("flag").namespace(ns);
    for (text, want) in [("True", true), ("0", false), ("false", false)] {
        let _: () = r.cmd("SET", flag.key()).arg(text).go();
        assert_eq!(r.run(flag.get()).unwrap(), Some(want), "{text}");
    }
}

fn bad_values_are_typed_errors(r: &mut Runner, ns: &Namespace) {
    let n = StringValue::<u8>::new("n").namespace(ns);
    let _: () = r.cmd("SET", n.key()).arg("300").go();
    match r.run(n.get()) {
        Err(Error::Decode(e)) => {
            assert_eq!(e.key, n.key());
            assert_eq!(e.expected, "u8");
        }
        other => panic!("{other:?}"),
    }
    // A key of another type is the server's WRONGTYPE.
    let list = StringValue::<String>::new("list").namespace(ns);
    let _: i64 = r.cmd("RPUSH", list.key()).arg("x").go();
    assert!(matches!(r.run(list.get()), Err(Error::Server { .. })));
    // A value with no plain form is refused before anything is sent.
    let when = StringValue::<chrono::DateTime<Utc>>::new("when").namespace(ns);
    let far = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
    assert!(matches!(r.run(when.set(&far)), Err(Error::Encode { .. })));
    assert_eq!(r.run(when.ttl()).unwrap(), Ttl::Missing, "nothing written");
    // A counter that holds no number.
    let c = Counter::<i64>::new("c").namespace(ns);
    let _: () = r.cmd("SET", c.key()).arg("many").go();
    assert!(matches!(r.run(c.get()), Err(Error::Decode(_))));
    assert!(r.run(c.incr(1)).is_err());
    let _: () = r.cmd("SET", c.key()).arg(i64::MAX.to_string()).go();
    assert!(r.run(c.incr(1)).is_err(), "overflow is the server's error");
    assert_eq!(r.run(c.get()).unwrap(), i64::MAX);
}

fn get_or_set_stores_once(r: &mut Runner, ns: &Namespace) {
    let v = StringValue::<String>::new("report").namespace(ns);
    let first = r
        .run(v.get_or_set(&"a".to_owned()).ttl(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(first, None, "stored");
    let ttl = r.run(v.ttl()).unwrap();
    assert!(expires_within(ttl, Duration::ZERO, Duration::from_secs(30)));
    let second = r
        .run(v.get_or_set(&"b".to_owned()).ttl(Duration::from_secs(300)))
        .unwrap();
    assert_eq!(second.as_deref(), Some("a"), "found");
    let ttl = r.run(v.ttl()).unwrap();
    assert!(
        expires_within(ttl, Duration::ZERO, Duration::from_secs(30)),
        "a value found keeps its own TTL: {ttl:?}"
    );
    let plain = StringValue::<u32>::new("plain").namespace(ns);
    assert_eq!(r.run(plain.get_or_set(&7)).unwrap(), None);
    assert_eq!(r.run(plain.ttl()).unwrap(), Ttl::Persistent);
    assert_eq!(r.run(plain.get_or_set(&8)).unwrap(), Some(7));
}

fn counters_keep_their_ttl(r: &mut Runner, ns: &Namespace) {
    let c = Counter::<i64>::new("views").namespace(ns);
    assert_eq!(r.run(c.get()).unwrap(), 0, "absent reads as 0");
    assert_eq!(r.run(c.incr(1)).unwrap(), 1);
    assert_eq!(r.run(c.incr(41)).unwrap(), 42);
    assert_eq!(r.run(c.incr(-50)).unwrap(), -8);
    assert_eq!(r.run(c.ttl()).unwrap(), Ttl::Persistent);
    // A TTL set on the first increment stays through the later ones.
    let w = Counter::<i64>::new("window").namespace(ns);
    assert_eq!(r.run(w.incr(1).ttl(Duration::from_secs(100))).unwrap(), 1);
    for i in 2..=5 {
        assert_eq!(r.run(w.incr(1)).unwrap(), i);
        assert_eq!(r.run(w.incr(0).ttl(Duration::from_secs(1))).unwrap(), i);
    }
    let ttl = r.run(w.ttl()).unwrap();
    assert!(
        expires_within(ttl, Duration::from_secs(50), Duration::from_secs(100)),
        "{ttl:?}"
    );
    // set keeps it too, unless told.
    r.run(w.set(10)).unwrap();
    assert_eq!(r.run(w.get()).unwrap(), 10);
    assert!(matches!(r.run(w.ttl()).unwrap(), Ttl::Expires(_)));
    r.run(w.set(0).persist()).unwrap();
    assert_eq!(r.run(w.ttl()).unwrap(), Ttl::Persistent);
    // Floats: Redis adds in long double and keeps 17 significant digits,
    // so 0.1 + 0.2 is 0.3 there (not f64's 0.30000000000000004).
    let f = Counter::<f64>::new("score").namespace(ns);
    assert_eq!(r.run(f.incr(0.1)).unwrap(), 0.1);
    assert_eq!(
        r.run(f.incr(0.2).ttl(Duration::from_secs(60))).unwrap(),
        0.3
    );
    assert_eq!(r.run(f.get()).unwrap(), 0.3);
    assert!(matches!(r.run(f.ttl()).unwrap(), Ttl::Expires(_)));
    assert!(r.run(f.delete()).unwrap());
}

fn values_batch_with_other_operations(r: &mut Runner, ns: &Namespace) {
    // One slot for the Cluster's pipeline per slot: a shared hash tag.
    let a = StringValue::<String>::new("{b}:a").namespace(ns);
    let c = Counter::<i64>::new("{b}:c").namespace(ns);
    let (set, n, got) = r
        .run(batch((
            a.set(&"x".to_owned()).ttl(Duration::from_secs(10)),
            c.incr(3),
            a.get(),
        )))
        .unwrap();
    assert_eq!(set, ());
    assert_eq!(n, 3);
    assert_eq!(got.as_deref(), Some("x"));
}

matrix!(
    values_keep_or_replace_their_ttl,
    typed_values_are_plain_text,
    bad_values_are_typed_errors,
    get_or_set_stores_once,
    counters_keep_their_ttl,
    values_batch_with_other_operations,
);

/// 8 threads × 500 increments, half of them with a TTL: every increment
/// counts, and the TTL is the one the first gave (never reset).
#[test]
fn concurrent_increments_all_count() {
    let ns = common::namespace("value_concurrent");
    let c = Counter::<i64>::new("hits").namespace(&ns);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = c.clone();
            let mut con = shared_server().connection().unwrap();
            std::thread::spawn(move || {
                for i in 0..500 {
                    if (t + i) % 2 == 0 {
                        c.incr(1)
                            .ttl(Duration::from_secs(600))
                            .run(&mut con)
                            .unwrap();
                    } else {
                        c.incr(1).run(&mut con).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = shared_server().connection().unwrap();
    assert_eq!(c.get().run(&mut con).unwrap(), 4_000);
    let ttl = c.ttl().run(&mut con).unwrap();
    assert!(
        expires_within(ttl, Duration::from_secs(60), Duration::from_secs(600)),
        "{ttl:?}"
    );
}
