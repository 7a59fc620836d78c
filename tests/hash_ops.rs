//! Every operation of `#[derive(RedisHash)]`, through the blocking and the
//! async executor, on a standalone server and on a 3-primary Cluster.

mod common;

use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::Runner;
use redis_state::prelude::*;
use redis_state::{Error, Ttl};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct Prefs {
    theme: String,
    langs: Vec<String>,
}

/// Indexed model: one hash slot for all users (static hash tag).
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{user}}:{id}")]
struct User {
    #[redis(id)]
    id: u64,
    name: String,
    #[redis(unique)]
    email: String,
    #[redis(index)]
    city: Option<String>,
    #[redis(counter)]
    logins: i64,
    #[redis(version)]
    version: u64,
    #[redis(json)]
    prefs: Prefs,
    #[redis(rename = "created")]
    created_at: DateTime<Utc>,
    #[redis(skip)]
    cache: Vec<u8>,
}

fn user(id: u64, email: &str, city: Option<&str>) -> User {
    User {
        id,
        name: format!("user {id}"),
        email: email.to_owned(),
        city: city.map(str::to_owned),
        logins: 0,
        version: 0,
        prefs: Prefs {
            theme: "dark".into(),
            langs: vec!["en".into(), "fr".into()],
        },
        created_at: Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
        cache: Vec::new(),
    }
}

/// Model with a TTL and no hash tag: entities spread over the cluster.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "session:{id}", ttl = "30m")]
struct Session {
    #[redis(id)]
    id: String,
    user: u64,
    note: Option<String>,
    #[redis(counter)]
    hits: u8,
    #[redis(counter)]
    score: f64,
}

/// Plain model: `save` is one HSET. Every codec of the standard types.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "doc:{id}")]
struct Doc {
    #[redis(id)]
    id: String,
    title: String,
    body: Vec<u8>,
    score: f64,
    ratio: f32,
    flag: bool,
    day: NaiveDate,
    big: u128,
    small: i8,
    status: Status,
}

#[derive(RedisField, Debug, Clone, Copy, PartialEq)]
enum Status {
    Open,
    Paid,
    Shipped,
}

/// Expiry field and optional fields (the write goes through the script).
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "invite:{code}")]
struct Invite {
    #[redis(id)]
    code: String,
    to: String,
    #[redis(expires_at)]
    expires: Option<DateTime<Utc>>,
}

/// Indexes scoped per tenant (composite id, hash tag on the tenant).
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "order:{tenant}:{id}", hash_tag = "tenant")]
struct Order {
    #[redis(id)]
    tenant: String,
    #[redis(id)]
    id: u32,
    #[redis(index)]
    status: Status,
    total: i64,
}

fn save_and_load(r: &mut Runner, ns: &Namespace) {
    let u = user(1, "ann@example.com", Some("Paris"));
    assert_eq!(
        r.run(u.save().namespace(ns)).unwrap(),
        1,
        "first save is version 1"
    );
    let back = r.run(User::load(&1).namespace(ns)).unwrap().unwrap();
    assert_eq!(
        back,
        User {
            version: 1,
            ..u.clone()
        }
    );
    assert_eq!(r.run(User::load(&2).namespace(ns)).unwrap(), None);

    let d = Doc {
        id: "d1".into(),
        title: "Title".into(),
        body: vec![0, 159, 146, 150, 255],
        score: 0.1 + 0.2,
        ratio: f32::MIN_POSITIVE,
        flag: true,
        day: NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
        big: u128::MAX,
        small: i8::MIN,
        status: Status::Shipped,
    };
    r.run(d.save().namespace(ns)).unwrap();
    assert_eq!(r.run(Doc::load("d1").namespace(ns)).unwrap(), Some(d));
}

fn none_fields_are_absent(r: &mut Runner, ns: &Namespace) {
    let s = Session {
        id: "s1".into(),
        user: 7,
        note: Some("hello".into()),
        hits: 0,
        score: 0.0,
    };
    r.run(s.save().namespace(ns)).unwrap();
    let key = format!("{ns}:session:s1");
    assert_eq!(
        r.cmd::<Option<String>>("HGET", &key)
            .arg("note")
            .go()
            .as_deref(),
        Some("hello")
    );
    let s2 = Session {
        note: None,
        ..s.clone()
    };
    r.run(s2.save().namespace(ns)).unwrap();
    assert!(
        !r.cmd::<bool>("HEXISTS", &key).arg("note").go(),
        "None removes the field"
    );
    assert_eq!(r.run(Session::load("s1").namespace(ns)).unwrap(), Some(s2));
}

fn insert_fails_when_present(r: &mut Runner, ns: &Namespace) {
    let u = user(1, "a@x", None);
    r.run(u.insert().namespace(ns)).unwrap();
    let err = r.run(u.insert().namespace(ns)).unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists { model: "User", .. }),
        "{err}"
    );
    let d = Doc::load("nope");
    assert_eq!(r.run(d.namespace(ns)).unwrap(), None);
}

fn update_changes_only_given_fields(r: &mut Runner, ns: &Namespace) {
    let u = user(1, "a@x", Some("Oslo"));
    r.run(u.save().namespace(ns)).unwrap();
    let v = r
        .run(
            User::update(&1)
                .set(User::NAME, "Renamed")
                .set(User::CITY, None)
                .namespace(ns),
        )
        .unwrap();
    assert_eq!(v, 2);
    let back = r.run(User::load(&1).namespace(ns)).unwrap().unwrap();
    assert_eq!(back.name, "Renamed");
    assert_eq!(back.city, None);
    assert_eq!(back.email, "a@x");
    assert_eq!(back.prefs, u.prefs);

    let err = r
        .run(User::update(&99).set(User::NAME, "x").namespace(ns))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(
        !r.run(User::exists(&99).namespace(ns)).unwrap(),
        "update never creates"
    );
}

fn ttl_survives_every_write(r: &mut Runner, ns: &Namespace) {
    // Model TTL: applied by save, kept by update and increment.
    let s = Session {
        id: "s".into(),
        user: 1,
        note: None,
        hits: 0,
        score: 0.0,
    };
    r.run(s.save().namespace(ns)).unwrap();
    let ttl_after = |r: &mut Runner| match r.run(Session::ttl("s").namespace(ns)).unwrap() {
        Ttl::Expires(d) => d,
        other => panic!("expected a TTL, found {other:?}"),
    };
    assert!(ttl_after(r) > Duration::from_secs(29 * 60));
    r.run(Session::expire("s", Duration::from_secs(100)).namespace(ns))
        .unwrap();
    r.run(
        Session::update("s")
            .set(Session::NOTE, Some("n".to_owned()))
            .namespace(ns),
    )
    .unwrap();
    let after_update = ttl_after(r);
    assert!(after_update <= Duration::from_secs(100) && after_update > Duration::from_secs(90));
    r.run(Session::increment_hits("s", 1).namespace(ns))
        .unwrap();
    r.run(Session::increment_score("s", 0.5).namespace(ns))
        .unwrap();
    assert!(ttl_after(r) <= Duration::from_secs(100));
    r.run(s.save().namespace(ns)).unwrap();
    assert!(
        ttl_after(r) > Duration::from_secs(29 * 60),
        "save applies the model TTL"
    );

    // No model TTL: a TTL set with expire() survives save, update, increment.
    let u = user(5, "t@x", None);
    r.run(u.save().namespace(ns)).unwrap();
    assert_eq!(r.run(User::ttl(&5).namespace(ns)).unwrap(), Ttl::Persistent);
    assert!(
        r.run(User::expire(&5, Duration::from_secs(500)).namespace(ns))
            .unwrap()
    );
    r.run(u.save().namespace(ns)).unwrap();
    r.run(User::update(&5).set(User::NAME, "n").namespace(ns))
        .unwrap();
    r.run(User::increment_logins(&5, 3).namespace(ns)).unwrap();
    match r.run(User::ttl(&5).namespace(ns)).unwrap() {
        Ttl::Expires(d) => assert!(d > Duration::from_secs(490)),
        other => panic!("TTL lost: {other:?}"),
    }
    assert!(r.run(User::persist(&5).namespace(ns)).unwrap());
    assert_eq!(r.run(User::ttl(&5).namespace(ns)).unwrap(), Ttl::Persistent);
    assert!(
        !r.run(User::persist(&6).namespace(ns)).unwrap(),
        "persist on a missing entity"
    );
    assert_eq!(r.run(User::ttl(&6).namespace(ns)).unwrap(), Ttl::Missing);

    // Plain model (one HSET): keeps its TTL too.
    let d = Doc {
        id: "d".into(),
        title: "t".into(),
        body: vec![],
        score: 1.0,
        ratio: 1.0,
        flag: false,
        day: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
        big: 1,
        small: 1,
        status: Status::Open,
    };
    r.run(d.save().namespace(ns)).unwrap();
    r.run(Doc::expire("d", Duration::from_secs(300)).namespace(ns))
        .unwrap();
    r.run(d.save().namespace(ns)).unwrap();
    assert!(matches!(
        r.run(Doc::ttl("d").namespace(ns)).unwrap(),
        Ttl::Expires(_)
    ));
}

fn expires_at_field(r: &mut Runner, ns: &Namespace) {
    let at = Utc::now() + chrono::Duration::seconds(3600);
    let at = Utc.timestamp_millis_opt(at.timestamp_millis()).unwrap();
    let inv = Invite {
        code: "c1".into(),
        to: "bob".into(),
        expires: Some(at),
    };
    r.run(inv.save().namespace(ns)).unwrap();
    let key = format!("{ns}:invite:c1");
    assert_eq!(
        r.cmd::<i64>("PEXPIRETIME", &key).go(),
        at.timestamp_millis()
    );
    assert_eq!(
        r.run(Invite::load("c1").namespace(ns)).unwrap(),
        Some(inv.clone())
    );
    // Moving the expiry with update moves the key's expiry.
    let later = at + chrono::Duration::seconds(60);
    r.run(
        Invite::update("c1")
            .set(Invite::EXPIRES, Some(later))
            .namespace(ns),
    )
    .unwrap();
    assert_eq!(
        r.cmd::<i64>("PEXPIRETIME", &key).go(),
        later.timestamp_millis()
    );
    // None: never expires.
    let forever = Invite {
        expires: None,
        ..inv
    };
    r.run(forever.save().namespace(ns)).unwrap();
    assert_eq!(r.cmd::<i64>("PEXPIRETIME", &key).go(), -1);
    // In the past: gone at once.
    let past = Invite {
        code: "c2".into(),
        to: "x".into(),
        expires: Some(Utc::now() - chrono::Duration::seconds(5)),
    };
    r.run(past.save().namespace(ns)).unwrap();
    assert_eq!(r.run(Invite::load("c2").namespace(ns)).unwrap(), None);
}

fn many_keep_order(r: &mut Runner, ns: &Namespace) {
    let docs: Vec<Session> = (0..50)
        .map(|i| Session {
            id: format!("s{i}"),
            user: i,
            note: None,
            hits: 0,
            score: 0.0,
        })
        .collect();
    let saved = r.run(Session::save_many(&docs).namespace(ns)).unwrap();
    assert_eq!(saved.len(), 50);
    let ids: Vec<String> = (0..60).rev().map(|i| format!("s{i}")).collect();
    let loaded = r.run(Session::load_many(&ids).namespace(ns)).unwrap();
    assert_eq!(loaded.len(), 60);
    for (id, got) in ids.iter().zip(&loaded) {
        let i: u64 = id[1..].parse().unwrap();
        if i < 50 {
            assert_eq!(got.as_ref().map(|s| s.user), Some(i), "{id}");
        } else {
            assert!(got.is_none(), "{id}");
        }
    }
    let gone = r
        .run(Session::delete_many(&ids[..20]).namespace(ns))
        .unwrap();
    assert_eq!(gone, 10, "ids s59..s40: ten of them existed");
    assert!(!r.run(Session::exists("s45").namespace(ns)).unwrap());
    assert!(r.run(Session::exists("s39").namespace(ns)).unwrap());
}

fn batch_of_models(r: &mut Runner, ns: &Namespace) {
    let u = user(1, "b@x", None);
    let s = Session {
        id: "x".into(),
        user: 1,
        note: None,
        hits: 0,
        score: 0.0,
    };
    let (v, ()) = r
        .run(batch((
            u.save().namespace(ns),
            s.save().namespace(ns).map(|_| ()),
        )))
        .unwrap();
    assert_eq!(v, 1);
    let (lu, ls, missing) = r
        .run(batch((
            User::load(&1).namespace(ns),
            Session::load("x").namespace(ns),
            Session::load("y").namespace(ns),
        )))
        .unwrap();
    assert_eq!(lu.unwrap().email, "b@x");
    assert_eq!(ls.unwrap().user, 1);
    assert!(missing.is_none());
    // A failing operation fails the batch; settled() gives each its result.
    let (a, b) = r
        .run(batch((
            u.insert().namespace(ns).settled(),
            Session::exists("x").namespace(ns),
        )))
        .unwrap();
    assert!(matches!(a, Err(Error::AlreadyExists { .. })));
    assert!(b);
}

fn increments(r: &mut Runner, ns: &Namespace) {
    let s = Session {
        id: "c".into(),
        user: 1,
        note: None,
        hits: 250,
        score: 1.5,
    };
    r.run(s.save().namespace(ns)).unwrap();
    assert_eq!(
        r.run(Session::increment_hits("c", 5).namespace(ns))
            .unwrap(),
        255
    );
    let err = r
        .run(Session::increment_hits("c", 1).namespace(ns))
        .unwrap_err();
    assert!(
        matches!(err, Error::CounterOutOfRange { field: "hits", .. }),
        "{err}"
    );
    let err = r
        .run(Session::increment_hits("c", -300).namespace(ns))
        .unwrap_err();
    assert!(matches!(err, Error::CounterOutOfRange { .. }), "{err}");
    assert_eq!(
        r.run(Session::load("c").namespace(ns))
            .unwrap()
            .unwrap()
            .hits,
        255,
        "unchanged"
    );
    assert_eq!(
        r.run(Session::increment_score("c", 0.25).namespace(ns))
            .unwrap(),
        1.75
    );
    let err = r
        .run(Session::increment_hits("missing", 1).namespace(ns))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(
        !r.run(Session::exists("missing").namespace(ns)).unwrap(),
        "no partial entity"
    );
    // Through the generic form with the typed handle.
    let u = user(3, "i@x", None);
    r.run(u.save().namespace(ns)).unwrap();
    assert_eq!(
        r.run(User::increment(&3, User::LOGINS, -4).namespace(ns))
            .unwrap(),
        -4
    );
}

fn index_lookups(r: &mut Runner, ns: &Namespace) {
    for (id, city) in [
        (1, Some("Paris")),
        (2, Some("Paris")),
        (3, Some("Rome")),
        (4, None),
    ] {
        r.run(user(id, &format!("u{id}@x"), city).save().namespace(ns))
            .unwrap();
    }
    let mut paris: Vec<u64> = r
        .run(User::find_by_city("Paris").namespace(ns))
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    paris.sort();
    assert_eq!(paris, [1, 2]);
    // Generic form with the typed handle (an Option field is looked up by Some).
    let rome = r
        .run(User::find_by(User::CITY, &Some("Rome".to_owned())).namespace(ns))
        .unwrap();
    assert_eq!(rome.iter().map(|u| u.id).collect::<Vec<_>>(), [3]);
    assert!(
        r.run(User::find_by_city("Oslo").namespace(ns))
            .unwrap()
            .is_empty()
    );

    // Moving an entity moves its index entry.
    r.run(
        User::update(&2)
            .set(User::CITY, Some("Rome".to_owned()))
            .namespace(ns),
    )
    .unwrap();
    let paris = r.run(User::find_by_city("Paris").namespace(ns)).unwrap();
    assert_eq!(paris.iter().map(|u| u.id).collect::<Vec<_>>(), [1]);
    // Deleting removes it.
    assert!(r.run(User::delete(&1).namespace(ns)).unwrap());
    assert!(
        r.run(User::find_by_city("Paris").namespace(ns))
            .unwrap()
            .is_empty()
    );
    let idx = format!("{ns}:{{user}}:#user:idx:city");
    assert_eq!(
        r.cmd::<i64>("ZCARD", &idx).go(),
        2,
        "entries of users 2 and 3 (Rome)"
    );

    // An entity deleted behind the library's back is not returned, and the
    // lookup repairs the index.
    r.cmd::<i64>("DEL", &format!("{ns}:{{user}}:3")).go();
    let rome = r.run(User::find_by_city("Rome").namespace(ns)).unwrap();
    assert_eq!(rome.iter().map(|u| u.id).collect::<Vec<_>>(), [2]);
    assert_eq!(
        r.cmd::<i64>("ZCARD", &idx).go(),
        1,
        "stale entry removed on read"
    );

    // A value changed behind the library's back is not misreported.
    r.cmd::<i64>("HSET", &format!("{ns}:{{user}}:2"))
        .arg("city")
        .arg("Oslo")
        .go();
    assert!(
        r.run(User::find_by_city("Rome").namespace(ns))
            .unwrap()
            .is_empty()
    );

    // Limit.
    for id in 10..20 {
        r.run(
            user(id, &format!("l{id}@x"), Some("Lima"))
                .save()
                .namespace(ns),
        )
        .unwrap();
    }
    let page = r
        .run(User::find_by_city("Lima").limit(2, 3).namespace(ns))
        .unwrap();
    assert_eq!(page.len(), 3);
}

fn unique_fields(r: &mut Runner, ns: &Namespace) {
    r.run(user(1, "same@x", None).save().namespace(ns)).unwrap();
    let err = r
        .run(user(2, "same@x", None).save().namespace(ns))
        .unwrap_err();
    match err {
        Error::UniqueViolation {
            field,
            value,
            holder,
            ..
        } => {
            assert_eq!(
                (field, value.as_str(), holder.as_str()),
                ("email", "same@x", "1")
            );
        }
        other => panic!("{other}"),
    }
    assert!(
        !r.run(User::exists(&2).namespace(ns)).unwrap(),
        "a refused save writes nothing"
    );
    let found = r.run(User::find_by_email("same@x").namespace(ns)).unwrap();
    assert_eq!(found.map(|u| u.id), Some(1));
    assert!(
        r.run(User::find_unique(User::EMAIL, &"none@x".to_owned()).namespace(ns))
            .unwrap()
            .is_none()
    );
    // Re-saving the holder is fine; changing its email frees the old one.
    r.run(user(1, "same@x", None).save().namespace(ns)).unwrap();
    r.run(User::update(&1).set(User::EMAIL, "new@x").namespace(ns))
        .unwrap();
    r.run(user(2, "same@x", None).save().namespace(ns)).unwrap();
    assert_eq!(
        r.run(User::find_by_email("new@x").namespace(ns))
            .unwrap()
            .map(|u| u.id),
        Some(1)
    );
    // Deleting frees the value.
    r.run(User::delete(&2).namespace(ns)).unwrap();
    r.run(user(3, "same@x", None).save().namespace(ns)).unwrap();
}

fn unique_value_of_expired_entity_is_free(r: &mut Runner, ns: &Namespace) {
    r.run(user(1, "gone@x", None).save().namespace(ns)).unwrap();
    r.run(User::expire(&1, Duration::from_millis(50)).namespace(ns))
        .unwrap();
    std::thread::sleep(Duration::from_millis(120));
    r.run(user(2, "gone@x", None).save().namespace(ns)).unwrap();
    assert_eq!(
        r.run(User::find_by_email("gone@x").namespace(ns))
            .unwrap()
            .map(|u| u.id),
        Some(2)
    );
}

/// Review finding 9: a holder edited behind the library's back (plain data,
/// DESIGN principle 6) no longer holds the value: a save of that value by
/// another entity succeeds and the index names the new holder.
fn unique_holder_that_changed_its_value_does_not_block(r: &mut Runner, ns: &Namespace) {
    r.run(user(1, "ada@example.com", None).save().namespace(ns))
        .unwrap();
    let key = format!("{ns}:{}", User::key_of(&1u64));
    let _: i64 = r.cmd("HSET", &key).arg("email").arg("ada@example.org").go();
    let saved = r.run(user(2, "ada@example.com", None).save().namespace(ns));
    assert!(
        saved.is_ok(),
        "UniqueViolation for a value nobody holds: {saved:?}"
    );
    assert_eq!(
        r.run(User::find_by_email("ada@example.com").namespace(ns))
            .unwrap()
            .map(|u| u.id),
        Some(2)
    );
    // A live holder still wins, and `update` verifies the same way.
    let err = r
        .run(user(3, "ada@example.com", None).save().namespace(ns))
        .unwrap_err();
    assert!(
        matches!(&err, Error::UniqueViolation { holder, .. } if holder == "2"),
        "{err}"
    );
    r.run(user(3, "c@x", None).save().namespace(ns)).unwrap();
    let _: i64 = r
        .cmd("HSET", &format!("{ns}:{}", User::key_of(&2u64)))
        .arg("email")
        .arg("someone@else")
        .go();
    r.run(
        User::update(&3)
            .set(User::EMAIL, "ada@example.com")
            .namespace(ns),
    )
    .unwrap();
    assert_eq!(
        r.run(User::find_by_email("ada@example.com").namespace(ns))
            .unwrap()
            .map(|u| u.id),
        Some(3)
    );
}

/// Review finding 9: a holder deleted without the library (`DEL` in
/// redis-cli, eviction) does not block the value forever.
fn unique_holder_deleted_behind_our_back_does_not_block(r: &mut Runner, ns: &Namespace) {
    r.run(user(1, "bob@example.com", None).save().namespace(ns))
        .unwrap();
    let _: i64 = r.cmd("DEL", &format!("{ns}:{}", User::key_of(&1u64))).go();
    for _ in 0..3 {
        let saved = r.run(user(2, "bob@example.com", None).save().namespace(ns));
        assert!(saved.is_ok(), "refused: {saved:?}");
    }
    // insert and save_versioned verify too.
    let _: i64 = r.cmd("DEL", &format!("{ns}:{}", User::key_of(&2u64))).go();
    r.run(user(3, "bob@example.com", None).insert().namespace(ns))
        .unwrap();
    let _: i64 = r.cmd("DEL", &format!("{ns}:{}", User::key_of(&3u64))).go();
    r.run(
        user(4, "bob@example.com", None)
            .save_versioned()
            .namespace(ns),
    )
    .unwrap();
    assert_eq!(
        r.run(User::find_by_email("bob@example.com").namespace(ns))
            .unwrap()
            .map(|u| u.id),
        Some(4)
    );
    let uniq = format!("{ns}:{{user}}:#user:uniq:email");
    assert_eq!(
        r.cmd::<i64>("HLEN", &uniq).go(),
        1,
        "stale entries repaired"
    );
}

/// Review finding 13: `settled` isolates errors raised while building the
/// commands (here an unencodable date), not only errors in the replies.
fn settled_isolates_prepare_errors(r: &mut Runner, ns: &Namespace) {
    let good = user(1, "good@x", None);
    let mut bad = user(2, "bad@x", None);
    bad.created_at = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
    let out = r
        .run(redis_state::many([
            good.save().namespace(ns).settled(),
            bad.save().namespace(ns).settled(),
        ]))
        .expect("settled operations must not fail the batch");
    assert!(out[0].is_ok(), "{:?}", out[0]);
    assert!(matches!(out[1], Err(Error::Encode { .. })), "{:?}", out[1]);
    assert!(r.run(User::exists(&1).namespace(ns)).unwrap());
    assert!(!r.run(User::exists(&2).namespace(ns)).unwrap());
    // In a batch of several types, and alone.
    let (a, b, c) = r
        .run(redis_state::batch((
            bad.save().namespace(ns).settled(),
            User::load(&1).namespace(ns),
            User::update(&1)
                .set(User::CREATED_AT, bad.created_at)
                .namespace(ns)
                .settled(),
        )))
        .expect("settled operations must not fail the batch");
    assert!(matches!(a, Err(Error::Encode { .. })), "{a:?}");
    assert_eq!(b.map(|u| u.id), Some(1));
    assert!(matches!(c, Err(Error::Encode { .. })), "{c:?}");
    let alone = r.run(bad.save().namespace(ns).settled()).unwrap();
    assert!(matches!(alone, Err(Error::Encode { .. })), "{alone:?}");
    // An operation that wrote commands before failing sends none of them:
    // the next operation still reads its own reply.
    let mut renamed = good.clone();
    renamed.name = "renamed".into();
    let (failed, loaded) = r
        .run(redis_state::batch((
            redis_state::many([renamed.save(), bad.save()])
                .namespace(ns)
                .settled(),
            User::load(&1).namespace(ns),
        )))
        .unwrap();
    assert!(matches!(failed, Err(Error::Encode { .. })), "{failed:?}");
    assert_eq!(loaded.map(|u| u.name), Some("user 1".to_owned()));
}

fn index_memory_is_pruned_after_expiry(r: &mut Runner, ns: &Namespace) {
    for id in 0..10 {
        r.run(
            user(id, &format!("e{id}@x"), Some("Tmp"))
                .save()
                .namespace(ns),
        )
        .unwrap();
        r.run(User::expire(&id, Duration::from_millis(50)).namespace(ns))
            .unwrap();
    }
    let idx = format!("{ns}:{{user}}:#user:idx:city");
    let uniq = format!("{ns}:{{user}}:#user:uniq:email");
    let exp = format!("{ns}:{{user}}:#user:exp");
    assert_eq!(r.cmd::<i64>("ZCARD", &idx).go(), 10);
    assert_eq!(r.cmd::<i64>("ZCARD", &exp).go(), 10);
    // Before anything is pruned, lookups already ignore the dead entities.
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        r.run(User::find_by_city("Tmp").namespace(ns))
            .unwrap()
            .is_empty()
    );
    // One write, more than a second after they expired, prunes them all.
    std::thread::sleep(Duration::from_millis(1100));
    r.run(user(100, "live@x", None).save().namespace(ns))
        .unwrap();
    assert_eq!(r.cmd::<i64>("ZCARD", &idx).go(), 0);
    assert_eq!(r.cmd::<i64>("HLEN", &uniq).go(), 1, "only live@x");
    assert_eq!(r.cmd::<i64>("ZCARD", &exp).go(), 0);
    assert_eq!(
        r.cmd::<i64>("HLEN", &format!("{ns}:{{user}}:#user:expv"))
            .go(),
        0
    );
}

/// A re-save of a live entity skips the prune (it adds no bookkeeping); a
/// write to an entity that held no indexed value prunes, including the
/// entity's own entries from before it expired.
fn writes_that_add_bookkeeping_prune(r: &mut Runner, ns: &Namespace) {
    let idx = format!("{ns}:{{user}}:#user:idx:city");
    let exp = format!("{ns}:{{user}}:#user:exp");
    r.run(user(1, "a@x", Some("Live")).save().namespace(ns))
        .unwrap();
    for id in [2, 3] {
        r.run(
            user(id, &format!("e{id}@x"), Some("Old"))
                .save()
                .namespace(ns),
        )
        .unwrap();
        r.run(User::expire(&id, Duration::from_millis(50)).namespace(ns))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(1200));
    // Entity 3 comes back in another city: its entry of before is gone, and
    // so are those of entity 2, pruned by the same write.
    r.run(user(3, "e3@x", Some("New")).save().namespace(ns))
        .unwrap();
    let members: Vec<String> = r.cmd("ZRANGE", &idx).arg(0).arg(-1).go();
    assert_eq!(members, ["3:New:3", "4:Live:1"]);
    assert_eq!(r.cmd::<i64>("ZCARD", &exp).go(), 0);
    assert_eq!(
        r.run(User::find_by_city("New").namespace(ns))
            .unwrap()
            .into_iter()
            .map(|u| u.id)
            .collect::<Vec<_>>(),
        [3]
    );
}

fn versioned_saves(r: &mut Runner, ns: &Namespace) {
    let mut u = user(1, "v@x", None);
    u.version = r.run(u.save_versioned().namespace(ns)).unwrap();
    assert_eq!(u.version, 1);
    let stale = u.clone();
    u.name = "first".into();
    u.version = r.run(u.save_versioned().namespace(ns)).unwrap();
    assert_eq!(u.version, 2);
    let err = r.run(stale.save_versioned().namespace(ns)).unwrap_err();
    match err {
        Error::VersionConflict {
            expected, actual, ..
        } => assert_eq!((expected, actual), (1, 2)),
        other => panic!("{other}"),
    }
    assert_eq!(
        r.run(User::load(&1).namespace(ns)).unwrap().unwrap().name,
        "first"
    );
    // A new entity is version 0: versioned insert of a fresh id works, of a
    // taken id conflicts.
    let fresh = user(2, "f@x", None);
    assert_eq!(r.run(fresh.save_versioned().namespace(ns)).unwrap(), 1);
    assert!(r.run(fresh.save_versioned().namespace(ns)).is_err());
}

fn scoped_indexes(r: &mut Runner, ns: &Namespace) {
    let orders = [
        Order {
            tenant: "acme".into(),
            id: 1,
            status: Status::Open,
            total: 10,
        },
        Order {
            tenant: "acme".into(),
            id: 2,
            status: Status::Paid,
            total: 20,
        },
        Order {
            tenant: "globex".into(),
            id: 1,
            status: Status::Open,
            total: 30,
        },
    ];
    for o in &orders {
        r.run(o.save().namespace(ns)).unwrap();
    }
    let key = Order::key_of(&("acme".to_owned(), 1u32));
    assert_eq!(key, "order:{acme}:1");
    let open_acme = r
        .run(Order::find_by_status(&"acme".to_owned(), &Status::Open).namespace(ns))
        .unwrap();
    assert_eq!(open_acme, vec![orders[0].clone()]);
    let open_globex = r
        .run(Order::find_by_in(&"globex", Order::STATUS, &Status::Open).namespace(ns))
        .unwrap();
    assert_eq!(open_globex, vec![orders[2].clone()]);
    // The unscoped form refuses (it would look in the wrong slot).
    let err = r
        .run(Order::find_by(Order::STATUS, &Status::Open).namespace(ns))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidKeyPart { .. }), "{err}");
    assert_eq!(
        r.run(Order::load(&("acme".to_owned(), 2u32)).namespace(ns))
            .unwrap()
            .map(|o| o.total),
        Some(20)
    );
}

fn namespaces_isolate(r: &mut Runner, ns: &Namespace) {
    let other = common::namespace("other");
    r.run(user(1, "n@x", None).save().namespace(ns)).unwrap();
    r.run(user(1, "n@x", None).save().namespace(&other))
        .unwrap();
    r.run(
        User::update(&1)
            .set(User::NAME, "changed")
            .namespace(&other),
    )
    .unwrap();
    assert_eq!(
        r.run(User::load(&1).namespace(ns)).unwrap().unwrap().name,
        "user 1"
    );
    assert!(r.run(User::delete(&1).namespace(&other)).unwrap());
    assert!(r.run(User::exists(&1).namespace(ns)).unwrap());
}

matrix!(
    save_and_load,
    none_fields_are_absent,
    insert_fails_when_present,
    update_changes_only_given_fields,
    ttl_survives_every_write,
    expires_at_field,
    many_keep_order,
    batch_of_models,
    increments,
    index_lookups,
    unique_fields,
    unique_value_of_expired_entity_is_free,
    unique_holder_that_changed_its_value_does_not_block,
    unique_holder_deleted_behind_our_back_does_not_block,
    settled_isolates_prepare_errors,
    index_memory_is_pruned_after_expiry,
    writes_that_add_bookkeeping_prune,
    versioned_saves,
    scoped_indexes,
    namespaces_isolate,
);
