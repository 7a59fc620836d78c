//! Property tests: random values of every field codec round-trip exactly,
//! both through the codecs alone and through a real Redis server.

mod common;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use proptest::prelude::*;
use redis_state::codec::{Codec, EpochMillis, FieldValue, Json};
use redis_state::prelude::*;
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
