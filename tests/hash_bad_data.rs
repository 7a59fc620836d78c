//! Malformed hash contents, written by another client or by corruption,
//! never panic: they give a typed error naming the key, the field, the
//! expected type and what was found.

mod common;

use chrono::{DateTime, NaiveDate, Utc};
use proptest::prelude::*;
use redis_state::prelude::*;
use redis_state::{DecodeError, Error};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Prefs {
    theme: String,
}

#[derive(RedisField, Debug, Clone, Copy, PartialEq)]
enum Plan {
    Free,
    Pro,
}

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{acct}}:{id}")]
struct Account {
    #[redis(id)]
    id: u64,
    name: String,
    age: u8,
    score: f64,
    active: bool,
    since: DateTime<Utc>,
    day: NaiveDate,
    plan: Plan,
    #[redis(json)]
    prefs: Prefs,
    nick: Option<String>,
    #[redis(default)]
    visits: u32,
    #[redis(index)]
    city: String,
}

fn con() -> (redis::Connection, Namespace) {
    (
        redis_state::testing::shared_server().connection().unwrap(),
        common::namespace("bad_data"),
    )
}

fn write_raw(con: &mut redis::Connection, key: &str, fields: &[(&str, &[u8])]) {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key);
    for (f, v) in fields {
        cmd.arg(*f).arg(*v);
    }
    cmd.exec(con).unwrap();
}

fn good() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("id", b"1"),
        ("name", b"Ann"),
        ("age", b"30"),
        ("score", b"1.5"),
        ("active", b"true"),
        ("since", b"2024-05-01T12:00:00Z"),
        ("day", b"2024-05-01"),
        ("plan", b"Pro"),
        ("prefs", br#"{"theme":"dark"}"#),
        ("city", b"Paris"),
    ]
}

fn decode_error(err: Error) -> DecodeError {
    match err {
        Error::Decode(d) => *d,
        other => panic!("expected a decode error, found {other}"),
    }
}

#[test]
fn each_bad_field_is_named() {
    let (mut con, ns) = con();
    let cases: &[(&str, &[u8], &str)] = &[
        ("age", b"abc", "u8"),
        ("age", b"300", "u8"),
        ("age", b"-1", "u8"),
        ("name", b"\xff\xfe", "UTF-8 string"),
        ("score", b"1.2.3", "f64"),
        ("active", b"maybe", "bool (true/false/1/0)"),
        ("since", b"yesterday", "RFC 3339 timestamp"),
        ("day", b"2024-13-01", "date (YYYY-MM-DD)"),
        ("plan", b"Enterprise", "one of Free, Pro"),
        ("prefs", b"{not json", "JSON"),
        ("prefs", br#"{"theme":7}"#, "JSON"),
        ("nick", b"\xc3", "UTF-8 string"),
    ];
    for (i, (field, value, expected)) in cases.iter().enumerate() {
        let id = 100 + i as u64;
        let key = format!("{ns}:{{acct}}:{id}");
        let mut fields = good();
        let id_text = id.to_string();
        fields[0] = ("id", id_text.as_bytes());
        fields.retain(|(f, _)| f != field);
        fields.push((field, value));
        write_raw(&mut con, &key, &fields);
        let err = decode_error(Account::load(&id).namespace(&ns).run(&mut con).unwrap_err());
        assert_eq!(err.key, key);
        assert_eq!(err.field.as_deref(), Some(*field));
        assert_eq!(err.expected, *expected);
        assert!(err.found.is_some(), "{err}");
        let text = err.to_string();
        assert!(text.contains(&key) && text.contains(field), "{text}");
    }
}

#[test]
fn missing_required_field_is_named_and_defaults_apply() {
    let (mut con, ns) = con();
    let key = format!("{ns}:{{acct}}:1");
    let mut fields = good();
    fields.retain(|(f, _)| *f != "age");
    write_raw(&mut con, &key, &fields);
    let err = decode_error(Account::load(&1).namespace(&ns).run(&mut con).unwrap_err());
    assert_eq!(
        (err.field.as_deref(), err.found.as_deref()),
        (Some("age"), None)
    );
    assert!(err.to_string().contains("absent"), "{err}");
    // visits has #[redis(default)], nick is optional: both absent is fine.
    write_raw(&mut con, &key, &[("age", b"5")]);
    let acct = Account::load(&1)
        .namespace(&ns)
        .run(&mut con)
        .unwrap()
        .unwrap();
    assert_eq!((acct.visits, acct.nick), (0, None));
}

#[test]
fn a_key_of_another_type_is_an_error_not_a_panic() {
    let (mut con, ns) = con();
    let key = format!("{ns}:{{acct}}:7");
    redis::cmd("SET")
        .arg(&key)
        .arg("a string")
        .exec(&mut con)
        .unwrap();
    let err = Account::load(&7).namespace(&ns).run(&mut con).unwrap_err();
    assert!(matches!(err, Error::Server { .. }), "{err}");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    // A save over it fails the same way and leaves the foreign value alone.
    let acct = Account {
        id: 7,
        name: "n".into(),
        age: 1,
        score: 0.0,
        active: true,
        since: Utc::now(),
        day: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        plan: Plan::Free,
        prefs: Prefs { theme: "t".into() },
        nick: None,
        visits: 0,
        city: "c".into(),
    };
    let err = acct.save().namespace(&ns).run(&mut con).unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    let still: String = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
    assert_eq!(still, "a string");
}

#[test]
fn garbage_index_entries_are_ignored() {
    let (mut con, ns) = con();
    let idx = format!("{ns}:{{acct}}:#account:idx:city");
    for member in [
        "",
        "garbage",
        "5:Paris",
        "5:Paris:",
        "999:Paris:1",
        "5:Paris:%ZZ",
    ] {
        redis::cmd("ZADD")
            .arg(&idx)
            .arg(0)
            .arg(member)
            .exec(&mut con)
            .unwrap();
    }
    let found = Account::find_by_city("Paris")
        .namespace(&ns)
        .run(&mut con)
        .unwrap();
    assert!(found.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random bytes in random fields: loading never panics; an error names
    /// the key and one of the model's fields.
    #[test]
    fn random_contents_never_panic(
        fields in prop::collection::vec(
            (prop::sample::select(vec!["id", "name", "age", "score", "active", "since", "day",
                "plan", "prefs", "nick", "visits", "city", "other"]),
             prop::collection::vec(any::<u8>(), 0..24)),
            1..14),
    ) {
        let (mut con, ns) = con();
        let key = format!("{ns}:{{acct}}:9");
        let fields: Vec<(&str, &[u8])> = fields.iter().map(|(f, v)| (*f, v.as_slice())).collect();
        write_raw(&mut con, &key, &fields);
        match Account::load(&9).namespace(&ns).run(&mut con) {
            Ok(_) => {}
            Err(Error::Decode(d)) => {
                prop_assert_eq!(&d.key, &key);
                let field = d.field.clone().unwrap();
                prop_assert!(Account::SCHEMA.fields.iter().any(|f| f.name == field));
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }
}
