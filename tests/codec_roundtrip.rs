//! Property tests: random values of every field codec round-trip exactly,
//! both through the codecs alone and through a real Redis server.

mod common;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use proptest::prelude::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis_state::codec::{Codec, EpochMillis, EpochSeconds, FieldValue, Json};
use redis_state::prelude::*;
use redis_state::{Namespace, Ttl};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Blob {
    tag: String,
    nums: Vec<i64>,
    nested: Option<Box<Blob>>,
}

#[derive(RedisField, Debug, Clone, Copy, PartialEq)]
#[redis(rename_all = "snake_case")]
enum Level {
    Low,
    MidHigh,
    Top,
}

#[derive(RedisField, Debug, Clone, PartialEq)]
struct Email(String);

#[derive(RedisHash, Debug, Clone)]
#[redis(key = "every:{id}")]
struct Every {
    #[redis(id)]
    id: String,
    u8_: u8,
    u16_: u16,
    u32_: u32,
    u64_: u64,
    u128_: u128,
    usize_: usize,
    i8_: i8,
    i16_: i16,
    i32_: i32,
    i64_: i64,
    i128_: i128,
    isize_: isize,
    f32_: f32,
    f64_: f64,
    bool_: bool,
    char_: char,
    string: String,
    bytes: Vec<u8>,
    at: DateTime<Utc>,
    #[redis(with = EpochMillis)]
    at_ms: DateTime<Utc>,
    day: NaiveDate,
    moment: NaiveDateTime,
    level: Level,
    email: Email,
    maybe: Option<i64>,
    maybe_text: Option<String>,
    #[redis(json)]
    blob: Blob,
    #[redis(json)]
    maybe_blob: Option<Blob>,
}

/// Float equality that treats NaN as equal to NaN and tells -0.0 from 0.0.
fn same_f64(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}
fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn assert_same(a: &Every, b: &Every) {
    assert!(same_f32(a.f32_, b.f32_), "{} vs {}", a.f32_, b.f32_);
    assert!(same_f64(a.f64_, b.f64_), "{} vs {}", a.f64_, b.f64_);
    let strip = |e: &Every| Every {
        f32_: 0.0,
        f64_: 0.0,
        ..e.clone()
    };
    assert_eq!(format!("{:?}", strip(a)), format!("{:?}", strip(b)));
}

fn datetime() -> impl Strategy<Value = DateTime<Utc>> {
    // Years 0000-9999: what RFC 3339 can write; nanosecond precision.
    (-62_167_219_200i64..253_402_300_799i64, 0u32..1_000_000_000)
        .prop_map(|(s, n)| Utc.timestamp_opt(s, n).unwrap())
}

fn blob() -> impl Strategy<Value = Blob> {
    let leaf =
        (any::<String>(), prop::collection::vec(any::<i64>(), 0..4)).prop_map(|(tag, nums)| Blob {
            tag,
            nums,
            nested: None,
        });
    leaf.prop_recursive(3, 8, 2, |inner| {
        (
            any::<String>(),
            prop::collection::vec(any::<i64>(), 0..4),
            prop::option::of(inner),
        )
            .prop_map(|(tag, nums, nested)| Blob {
                tag,
                nums,
                nested: nested.map(Box::new),
            })
    })
}

prop_compose! {
    fn every()(
        ints in (any::<u8>(), any::<u16>(), any::<u32>(), any::<u64>(), any::<u128>(), any::<usize>()),
        sints in (any::<i8>(), any::<i16>(), any::<i32>(), any::<i64>(), any::<i128>(), any::<isize>()),
        floats in (any::<f32>(), any::<f64>()),
        misc in (any::<bool>(), any::<char>(), any::<String>(), any::<Vec<u8>>()),
        times in (datetime(), datetime(), datetime()),
        level in prop_oneof![Just(Level::Low), Just(Level::MidHigh), Just(Level::Top)],
        email in any::<String>(),
        maybe in any::<Option<i64>>(),
        maybe_text in any::<Option<String>>(),
        blob in blob(),
        maybe_blob in prop::option::of(blob()),
    ) -> Every {
        Every {
            id: String::new(),
            u8_: ints.0, u16_: ints.1, u32_: ints.2, u64_: ints.3, u128_: ints.4, usize_: ints.5,
            i8_: sints.0, i16_: sints.1, i32_: sints.2, i64_: sints.3, i128_: sints.4, isize_: sints.5,
            f32_: floats.0, f64_: floats.1,
            bool_: misc.0, char_: misc.1, string: misc.2, bytes: misc.3,
            at: times.0,
            at_ms: Utc.timestamp_millis_opt(times.1.timestamp_millis()).unwrap(),
            day: times.2.date_naive(),
            moment: times.2.naive_utc(),
            level,
            email: Email(email),
            maybe, maybe_text, blob, maybe_blob,
        }
    }
}

fn plain_round<T: FieldValue>(v: &T) -> T {
    let mut out = Vec::new();
    v.encode(&mut out).unwrap();
    T::decode(&out)
        .unwrap_or_else(|e| panic!("{:?} did not decode: {e:?}", String::from_utf8_lossy(&out)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn codecs_round_trip(e in every()) {
        prop_assert_eq!(plain_round(&e.u64_), e.u64_);
        prop_assert_eq!(plain_round(&e.i128_), e.i128_);
        prop_assert!(same_f64(plain_round(&e.f64_), e.f64_));
        prop_assert!(same_f32(plain_round(&e.f32_), e.f32_));
        prop_assert_eq!(plain_round(&e.char_), e.char_);
        prop_assert_eq!(&plain_round(&e.string), &e.string);
        prop_assert_eq!(&plain_round(&e.bytes), &e.bytes);
        prop_assert_eq!(plain_round(&e.at), e.at);
        prop_assert_eq!(plain_round(&e.day), e.day);
        prop_assert_eq!(plain_round(&e.moment), e.moment);
        prop_assert_eq!(plain_round(&e.level), e.level);
        prop_assert_eq!(&plain_round(&e.email), &e.email);
        let mut out = Vec::new();
        <Json as Codec<Blob>>::encode(&e.blob, &mut out).unwrap();
        prop_assert_eq!(&<Json as Codec<Blob>>::decode(&out).unwrap(), &e.blob);
        out.clear();
        <EpochMillis as Codec<DateTime<Utc>>>::encode(&e.at_ms, &mut out).unwrap();
        prop_assert_eq!(<EpochMillis as Codec<DateTime<Utc>>>::decode(&out).unwrap(), e.at_ms);
    }
}

#[test]
fn every_codec_round_trips_through_redis() {
    let server = redis_state::testing::shared_server();
    let con = std::cell::RefCell::new(server.connection().unwrap());
    let ns = common::namespace("every_codec");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    let n = std::cell::Cell::new(0u32);
    runner
        .run(&every(), |mut e| {
            n.set(n.get() + 1);
            e.id = format!("e{}", n.get());
            let mut con = con.borrow_mut();
            e.save().namespace(&ns).run(&mut *con).unwrap();
            let back = Every::load(&e.id)
                .namespace(&ns)
                .run(&mut *con)
                .unwrap()
                .unwrap();
            assert_same(&back, &e);
            Ok(())
        })
        .unwrap();
}

#[test]
fn dates_outside_the_text_range_are_refused_not_corrupted() {
    let server = redis_state::testing::shared_server();
    let mut con = server.connection().unwrap();
    let ns = common::namespace("far_dates");
    #[derive(RedisHash, Debug)]
    #[redis(key = "far:{id}")]
    struct Far {
        #[redis(id)]
        id: u8,
        at: DateTime<Utc>,
    }
    let far = Far {
        id: 1,
        at: Utc.with_ymd_and_hms(12_000, 1, 1, 0, 0, 0).unwrap(),
    };
    let err = far.save().namespace(&ns).run(&mut con).unwrap_err();
    assert!(err.to_string().contains("year 12000"), "{err}");
    assert!(
        !Far::exists(&1).namespace(&ns).run(&mut con).unwrap(),
        "nothing was written"
    );
}

/// `uuid::Uuid` ids and fields, `SystemTime` fields in every codec and role.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{account}}:{id}")]
struct Account {
    #[redis(id)]
    id: uuid::Uuid,
    #[redis(index)]
    owner: uuid::Uuid,
    referrer: Option<uuid::Uuid>,
    created: SystemTime,
    #[redis(with = EpochMillis)]
    seen_ms: SystemTime,
    #[redis(with = EpochSeconds)]
    seen_s: SystemTime,
    closed: Option<SystemTime>,
    #[redis(expires_at)]
    expires: Option<SystemTime>,
}

fn system_time() -> impl Strategy<Value = SystemTime> {
    // Years 0000-9999 (what RFC 3339 writes), nanosecond precision, before
    // and after the epoch.
    datetime().prop_map(|t| {
        let nanos = Duration::from_nanos(u64::from(t.timestamp_subsec_nanos()));
        let secs = Duration::from_secs(t.timestamp().unsigned_abs());
        if t.timestamp() >= 0 {
            UNIX_EPOCH + secs + nanos
        } else {
            UNIX_EPOCH - secs + nanos
        }
    })
}

/// Whole seconds / milliseconds of `t`, towards the past: what the epoch
/// codecs keep.
fn truncate(t: SystemTime, unit: Duration) -> SystemTime {
    let utc = DateTime::<Utc>::from(t);
    let unit_ns = unit.as_nanos() as i64;
    let ns = utc.timestamp_subsec_nanos() as i64;
    t - Duration::from_nanos((ns % unit_ns) as u64)
}

prop_compose! {
    fn account()(
        id in any::<u128>(),
        owner in any::<u128>(),
        referrer in any::<Option<u128>>(),
        times in (system_time(), system_time(), system_time()),
        closed in prop::option::of(system_time()),
    ) -> Account {
        Account {
            id: uuid::Uuid::from_u128(id),
            owner: uuid::Uuid::from_u128(owner),
            referrer: referrer.map(uuid::Uuid::from_u128),
            created: times.0,
            seen_ms: truncate(times.1, Duration::from_millis(1)),
            seen_s: truncate(times.2, Duration::from_secs(1)),
            closed,
            // Expiry is relative to now: an hour ahead.
            expires: Some(SystemTime::now() + Duration::from_secs(3600)),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn uuid_and_system_time_codecs_round_trip(a in account()) {
        prop_assert_eq!(plain_round(&a.id), a.id);
        prop_assert_eq!(plain_round(&a.created), a.created);
        let mut out = Vec::new();
        <EpochMillis as Codec<SystemTime>>::encode(&a.seen_ms, &mut out).unwrap();
        prop_assert_eq!(<EpochMillis as Codec<SystemTime>>::decode(&out).unwrap(), a.seen_ms);
        out.clear();
        <EpochSeconds as Codec<SystemTime>>::encode(&a.seen_s, &mut out).unwrap();
        prop_assert_eq!(<EpochSeconds as Codec<SystemTime>>::decode(&out).unwrap(), a.seen_s);
        // The same text as `DateTime<Utc>` writes, so other clients cannot
        // tell which of the two a model uses.
        let mut as_chrono = Vec::new();
        DateTime::<Utc>::from(a.created).encode(&mut as_chrono).unwrap();
        out.clear();
        a.created.encode(&mut out).unwrap();
        prop_assert_eq!(out, as_chrono);
    }
}

crate::matrix!(uuid_and_system_time_round_trip_through_redis);

fn uuid_and_system_time_round_trip_through_redis(r: &mut common::Runner, ns: &Namespace) {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    let r = std::cell::RefCell::new(r);
    runner
        .run(&account(), |a| {
            let mut r = r.borrow_mut();
            r.run(a.save().namespace(ns)).unwrap();
            let back = r.run(Account::load(&a.id).namespace(ns)).unwrap();
            assert_eq!(back.as_ref(), Some(&a));
            let owned = r
                .run(Account::find_by_owner(&a.owner).namespace(ns))
                .unwrap();
            assert!(owned.contains(&a), "found by its uuid index");
            // The uuid in the key is the text other clients write.
            assert!(
                a.key().contains(&a.id.hyphenated().to_string()),
                "{}",
                a.key()
            );
            // Expires at the SystemTime given (an hour from now).
            match r.run(Account::ttl(&a.id).namespace(ns)).unwrap() {
                Ttl::Expires(d) => assert!(
                    d > Duration::from_secs(3000) && d <= Duration::from_secs(3600),
                    "{d:?}"
                ),
                other => panic!("no expiry: {other:?}"),
            }
            r.run(Account::delete(&a.id).namespace(ns)).unwrap();
            Ok(())
        })
        .unwrap();
}

/// A hash written the way redis-py and redis-cli write it loads: booleans
/// as `True`/`1`, floats as `repr(float)`, whole numbers as floats, uuids
/// in capitals, dates with an offset.
#[test]
fn loads_what_other_clients_write() {
    let server = redis_state::testing::shared_server();
    let mut con = server.connection().unwrap();
    let ns = common::namespace("other_clients");
    #[derive(RedisHash, Debug, PartialEq)]
    #[redis(key = "user:profile:{id}")]
    struct Profile {
        #[redis(id)]
        id: u64,
        active: bool,
        admin: bool,
        verified: bool,
        age: u16,
        ratio: f64,
        big: f64,
        limit: f64,
        token: uuid::Uuid,
        joined: SystemTime,
    }
    let key = format!("{ns}:user:profile:7");
    let () = redis::cmd("HSET")
        .arg(&key)
        .arg(&[
            ("id", "7"),
            ("active", "True"),
            ("admin", "False"),
            ("verified", "1"),
            ("age", "30.0"),
            ("ratio", "1e-05"),
            ("big", "1e+16"),
            ("limit", "inf"),
            ("token", "550E8400-E29B-41D4-A716-446655440000"),
            ("joined", "2024-05-01T14:00:00+02:00"),
        ])
        .query::<i64>(&mut con)
        .map(drop)
        .unwrap();
    let p = Profile::load(&7)
        .namespace(&ns)
        .run(&mut con)
        .unwrap()
        .unwrap();
    assert_eq!(
        p,
        Profile {
            id: 7,
            active: true,
            admin: false,
            verified: true,
            age: 30,
            ratio: 1e-5,
            big: 1e16,
            limit: f64::INFINITY,
            token: uuid::Uuid::from_u128(0x550e8400_e29b_41d4_a716_446655440000),
            joined: UNIX_EPOCH + Duration::from_secs(1_714_564_800),
        }
    );
    // Saved back in the canonical form.
    p.save().namespace(&ns).run(&mut con).unwrap();
    let stored: std::collections::HashMap<String, String> =
        redis::cmd("HGETALL").arg(&key).query(&mut con).unwrap();
    assert_eq!(stored["active"], "true");
    assert_eq!(stored["age"], "30");
    assert_eq!(stored["token"], "550e8400-e29b-41d4-a716-446655440000");
    assert_eq!(stored["joined"], "2024-05-01T12:00:00Z");
}

/// A date outside 0000-9999 stored by another client is refused on load
/// with the message a save of that date gets: whatever loads saves back.
#[test]
fn dates_load_and_save_agree() {
    let server = redis_state::testing::shared_server();
    let mut con = server.connection().unwrap();
    let ns = common::namespace("date_agree");
    #[derive(RedisHash, Debug)]
    #[redis(key = "born:{id}")]
    struct Born {
        #[redis(id)]
        id: u8,
        day: NaiveDate,
    }
    let () = redis::cmd("HSET")
        .arg(format!("{ns}:born:1"))
        .arg("id")
        .arg("1")
        .arg("day")
        .arg("-0001-01-01")
        .query::<i64>(&mut con)
        .map(drop)
        .unwrap();
    let load_err = Born::load(&1).namespace(&ns).run(&mut con).unwrap_err();
    let save_err = Born {
        id: 2,
        day: NaiveDate::from_ymd_opt(-1, 1, 1).unwrap(),
    }
    .save()
    .namespace(&ns)
    .run(&mut con)
    .unwrap_err();
    for err in [&load_err, &save_err] {
        let text = err.to_string();
        assert!(
            text.contains("year -1 is outside 0000-9999") && text.contains("day"),
            "{text}"
        );
    }
    assert!(!Born::exists(&2).namespace(&ns).run(&mut con).unwrap());
}
