//! Field codecs: how a Rust value becomes the plain string in a hash field.
//!
//! DESIGN principle 6: hash fields hold plain strings that `redis-cli` and other
//! clients read and write naturally.
//!
//! | Rust type                     | stored as                                   |
//! |-------------------------------|---------------------------------------------|
//! | integers (`u8` ... `i128`)    | decimal: `42`, `-7`                         |
//! | `f32`, `f64`                  | shortest text that round-trips: `0.1`, `1e300`, `inf`, `NaN` |
//! | `bool`                        | `true` / `false` (reads `1`/`0`, any case)  |
//! | `String`                      | the UTF-8 text                              |
//! | `Vec<u8>`                     | the raw bytes                               |
//! | `chrono::DateTime<Utc>`       | RFC 3339: `2024-05-01T12:00:00.250Z` (or [`EpochSeconds`] / [`EpochMillis`]) |
//! | `chrono::NaiveDate`           | `2024-05-01`                                |
//! | `chrono::NaiveDateTime`       | `2024-05-01T12:00:00.250`                   |
//! | `Option<T>`                   | the field is absent when `None`             |
//! | unit enums, newtypes          | `#[derive(RedisField)]`: the variant name / the inner value |
//! | any serde type                | JSON, with `#[redis(json)]` ([`Json`])      |
//! | anything else                 | your [`Codec`], with `#[redis(with = MyCodec)]` |

use std::marker::PhantomData;

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Timelike, Utc,
};

/// Why raw bytes did not decode (the caller adds key and field).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldError {
    /// The parser's explanation, if it has one.
    pub detail: Option<String>,
}

impl FieldError {
    /// A failure without further explanation.
    pub fn new() -> Self {
        FieldError { detail: None }
    }

    /// A failure with the parser's explanation.
    pub fn detail(detail: impl std::fmt::Display) -> Self {
        FieldError {
            detail: Some(detail.to_string()),
        }
    }
}

/// A type with a plain-string form, the default codec of hash fields.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a Redis hash field as plain data",
    label = "no plain-string form for this type",
    note = "store serde types as JSON with `#[redis(json)]`, name a codec with `#[redis(with = MyCodec)]`, or derive `RedisField` for unit enums and newtypes"
)]
pub trait FieldValue: Sized {
    /// What the stored text must look like, for error messages (`"u64"`).
    const EXPECTED: &'static str;
    /// Appends the plain form, or refuses a value that has none (a date
    /// outside the years RFC 3339 can write) with the reason: a value that
    /// could not be read back is never written.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String>;
    /// Parses the plain form.
    fn decode(raw: &[u8]) -> Result<Self, FieldError>;
}

/// How a field's value is turned into bytes and back.
///
/// Implement it on a unit struct and name it with `#[redis(with = MyCodec)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a codec for `{T}`",
    label = "`{Self}` does not implement `Codec<{T}>`",
    note = "a `#[redis(with = ...)]` codec implements `redis_state::codec::Codec<T>` for the field's type (for an `Option<T>` field: for `T`)"
)]
pub trait Codec<T> {
    /// What the stored bytes must look like, for error messages.
    const EXPECTED: &'static str;
    /// Appends the encoded value. An `Err` carries the encoder's message.
    fn encode(value: &T, out: &mut Vec<u8>) -> Result<(), String>;
    /// Decodes the stored bytes.
    fn decode(raw: &[u8]) -> Result<T, FieldError>;
}

/// The default codec: the type's [`FieldValue`] form.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl<T: FieldValue> Codec<T> for Plain {
    const EXPECTED: &'static str = T::EXPECTED;
    #[inline]
    fn encode(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
        value.encode(out)
    }
    #[inline]
    fn decode(raw: &[u8]) -> Result<T, FieldError> {
        T::decode(raw)
    }
}

/// Any serde type as JSON text (`#[redis(json)]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> for Json {
    const EXPECTED: &'static str = "JSON";
    fn encode(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
        serde_json::to_writer(out, value).map_err(|e| e.to_string())
    }
    fn decode(raw: &[u8]) -> Result<T, FieldError> {
        serde_json::from_slice(raw).map_err(FieldError::detail)
    }
}

/// `DateTime<Utc>` as whole seconds since the Unix epoch (`1714564800`).
/// Sub-second precision is dropped on write.
#[derive(Debug, Clone, Copy, Default)]
pub struct EpochSeconds;

impl Codec<DateTime<Utc>> for EpochSeconds {
    const EXPECTED: &'static str = "Unix timestamp in seconds";
    fn encode(value: &DateTime<Utc>, out: &mut Vec<u8>) -> Result<(), String> {
        value.timestamp().encode(out)
    }
    fn decode(raw: &[u8]) -> Result<DateTime<Utc>, FieldError> {
        let secs = i64::decode(raw)?;
        Utc.timestamp_opt(secs, 0)
            .single()
            .ok_or_else(|| FieldError::detail("timestamp out of range"))
    }
}

/// `DateTime<Utc>` as milliseconds since the Unix epoch (`1714564800250`).
/// Sub-millisecond precision is dropped on write.
#[derive(Debug, Clone, Copy, Default)]
pub struct EpochMillis;

impl Codec<DateTime<Utc>> for EpochMillis {
    const EXPECTED: &'static str = "Unix timestamp in milliseconds";
    fn encode(value: &DateTime<Utc>, out: &mut Vec<u8>) -> Result<(), String> {
        value.timestamp_millis().encode(out)
    }
    fn decode(raw: &[u8]) -> Result<DateTime<Utc>, FieldError> {
        let ms = i64::decode(raw)?;
        Utc.timestamp_millis_opt(ms)
            .single()
            .ok_or_else(|| FieldError::detail("timestamp out of range"))
    }
}

// ---------------------------------------------------------------------------
// Slots: required or optional fields

/// How a field occupies its hash field: always present ([`Req`]) or absent
/// when `None` ([`Opt`]). Chosen by the derive; `C` is the codec.
pub trait Slot<T> {
    /// True for `Option` fields.
    const OPTIONAL: bool;
    /// What the stored bytes must look like, for error messages.
    const EXPECTED: &'static str;
    /// Appends the encoded value and returns `true`, or returns `false` when
    /// the field must be absent.
    fn encode(value: &T, out: &mut Vec<u8>) -> Result<bool, String>;
    /// Decodes a present field.
    fn decode(raw: &[u8]) -> Result<T, FieldError>;
    /// The value of an absent field, if absence is allowed.
    fn absent() -> Option<T>;
}

/// A field that is always present, encoded with codec `C`.
#[derive(Debug)]
pub struct Req<C>(PhantomData<C>);

/// An `Option` field, absent when `None`, encoded with codec `C`.
#[derive(Debug)]
pub struct Opt<C>(PhantomData<C>);

impl<T, C: Codec<T>> Slot<T> for Req<C> {
    const OPTIONAL: bool = false;
    const EXPECTED: &'static str = C::EXPECTED;
    #[inline]
    fn encode(value: &T, out: &mut Vec<u8>) -> Result<bool, String> {
        C::encode(value, out).map(|()| true)
    }
    #[inline]
    fn decode(raw: &[u8]) -> Result<T, FieldError> {
        C::decode(raw)
    }
    #[inline]
    fn absent() -> Option<T> {
        None
    }
}

impl<T, C: Codec<T>> Slot<Option<T>> for Opt<C> {
    const OPTIONAL: bool = true;
    const EXPECTED: &'static str = C::EXPECTED;
    #[inline]
    fn encode(value: &Option<T>, out: &mut Vec<u8>) -> Result<bool, String> {
        match value {
            Some(v) => C::encode(v, out).map(|()| true),
            None => Ok(false),
        }
    }
    #[inline]
    fn decode(raw: &[u8]) -> Result<Option<T>, FieldError> {
        C::decode(raw).map(Some)
    }
    #[inline]
    fn absent() -> Option<Option<T>> {
        Some(None)
    }
}

// ---------------------------------------------------------------------------
// FieldValue for the standard types

fn utf8(raw: &[u8]) -> Result<&str, FieldError> {
    std::str::from_utf8(raw).map_err(|e| FieldError::detail(format!("invalid UTF-8: {e}")))
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            const EXPECTED: &'static str = stringify!($t);
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
                out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
                Ok(())
            }
            #[inline]
            fn decode(raw: &[u8]) -> Result<Self, FieldError> {
                if let Some(v) = fast_int(raw, <$t>::MIN != 0).and_then(|v| <$t>::try_from(v).ok()) {
                    return Ok(v);
                }
                utf8(raw)?.parse::<$t>().map_err(FieldError::detail)
            }
        }
    )*};
}

/// Reads plain decimal digits, after a `-` when `signed`, as `str::parse`
/// would, without validating UTF-8 first. `None` for anything else (a `+`,
/// more than 19 digits, other bytes), which then goes through `str::parse`
/// for the value or the error.
#[inline]
fn fast_int(raw: &[u8], signed: bool) -> Option<i128> {
    let (negative, digits) = match raw {
        [b'-', rest @ ..] if signed => (true, rest),
        _ => (false, raw),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    let v = i128::from(v);
    Some(if negative { -v } else { v })
}

int_field!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

macro_rules! float_field {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            const EXPECTED: &'static str = stringify!($t);
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
                if self.is_finite() {
                    out.extend_from_slice(ryu::Buffer::new().format_finite(*self).as_bytes());
                } else if self.is_nan() {
                    out.extend_from_slice(b"nan");
                } else if *self > 0.0 {
                    out.extend_from_slice(b"inf");
                } else {
                    out.extend_from_slice(b"-inf");
                }
                Ok(())
            }
            #[inline]
            fn decode(raw: &[u8]) -> Result<Self, FieldError> {
                utf8(raw)?.trim().parse::<$t>().map_err(FieldError::detail)
            }
        }
    )*};
}
float_field!(f32, f64);

impl FieldValue for bool {
    const EXPECTED: &'static str = "bool (true/false/1/0)";
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
        Ok(())
    }
    fn decode(raw: &[u8]) -> Result<Self, FieldError> {
        match raw {
            b"1" => Ok(true),
            b"0" => Ok(false),
            _ if raw.eq_ignore_ascii_case(b"true") => Ok(true),
            _ if raw.eq_ignore_ascii_case(b"false") => Ok(false),
            _ => Err(FieldError::new()),
        }
    }
}

impl FieldValue for String {
    const EXPECTED: &'static str = "UTF-8 string";
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(self.as_bytes());
        Ok(())
    }
    #[inline]
    fn decode(raw: &[u8]) -> Result<Self, FieldError> {
        utf8(raw).map(str::to_owned)
    }
}

impl FieldValue for Vec<u8> {
    const EXPECTED: &'static str = "bytes";
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(self);
        Ok(())
    }
    #[inline]
    fn decode(raw: &[u8]) -> Result<Self, FieldError> {
        Ok(raw.to_vec())
    }
}

impl FieldValue for char {
    const EXPECTED: &'static str = "one character";
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(self.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }
    fn decode(raw: &[u8]) -> Result<Self, FieldError> {
        let s = utf8(raw)?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(FieldError::detail("not exactly one character")),
        }
    }
}

/// RFC 3339 and ISO 8601 without extensions write years 0000 to 9999 only.
fn check_year(year: i32) -> Result<(), String> {
    if (0..=9999).contains(&year) {
        Ok(())
    } else {
        Err(format!(
            "year {year} is outside 0000-9999, which the text form cannot hold; use EpochMillis"
        ))
    }
}

/// Appends `t` exactly as `t.to_rfc3339_opts(SecondsFormat::AutoSi, true)`
/// writes it (`2024-05-01T12:00:00.250Z`: no fraction, or 3, 6 or 9 digits;
/// a leap second as second 60), without allocating or going through
/// `fmt`. Years outside 0000-9999 are refused before (`check_year`); for them
/// this falls back to chrono.
fn write_rfc3339_utc(t: &DateTime<Utc>, out: &mut Vec<u8>) {
    let d = t.naive_utc();
    let Ok(year) = u32::try_from(d.year()) else {
        out.extend_from_slice(t.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
        return;
    };
    if year > 9999 {
        out.extend_from_slice(t.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
        return;
    }
    let mut sec = d.second();
    let mut nano = d.nanosecond();
    if nano >= 1_000_000_000 {
        sec += 1;
        nano -= 1_000_000_000;
    }
    let mut buf = *b"0000-00-00T00:00:00.000000000Z";
    let mut digits = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits(0, 4, year);
    digits(5, 2, d.month());
    digits(8, 2, d.day());
    digits(11, 2, d.hour());
    digits(14, 2, d.minute());
    digits(17, 2, sec);
    let frac = if nano == 0 {
        0
    } else if nano.is_multiple_of(1_000_000) {
        digits(20, 3, nano / 1_000_000);
        3
    } else if nano.is_multiple_of(1_000) {
        digits(20, 6, nano / 1_000);
        6
    } else {
        digits(20, 9, nano);
        9
    };
    let end = if frac == 0 { 19 } else { 20 + frac };
    buf[end] = b'Z';
    out.extend_from_slice(&buf[..=end]);
}

impl FieldValue for DateTime<Utc> {
    const EXPECTED: &'static str = "RFC 3339 timestamp";
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        check_year(self.year())?;
        write_rfc3339_utc(self, out);
        Ok(())
    }
    fn decode(raw: &[u8]) -> Result<Self, FieldError> {
        if let Some(t) = parse_rfc3339_utc(raw) {
            return Ok(t);
        }
        DateTime::parse_from_rfc3339(utf8(raw)?)
            .map(|d| d.with_timezone(&Utc))
            .map_err(FieldError::detail)
    }
}

/// Parses the form [`write_rfc3339_utc`] writes, `YYYY-MM-DDTHH:MM:SS` with
/// 1 to 9 fraction digits or none, then `Z`, without chrono's general
/// parser. `None` for anything else (other offsets, leap seconds, invalid
/// dates), which then goes through `DateTime::parse_from_rfc3339`: whenever
/// this returns a value, that parser returns the same one.
fn parse_rfc3339_utc(raw: &[u8]) -> Option<DateTime<Utc>> {
    let n = raw.len();
    if !(20..=30).contains(&n) || raw[n - 1] != b'Z' {
        return None;
    }
    #[inline(always)]
    fn digit(b: u8) -> Option<u32> {
        let d = b.wrapping_sub(b'0');
        (d < 10).then_some(u32::from(d))
    }
    #[inline(always)]
    fn two(raw: &[u8], at: usize) -> Option<u32> {
        Some(digit(raw[at])? * 10 + digit(raw[at + 1])?)
    }
    if raw[4] != b'-' || raw[7] != b'-' || raw[10] != b'T' || raw[13] != b':' || raw[16] != b':' {
        return None;
    }
    let nano = match n {
        20 => 0,
        22.. if raw[19] == b'.' => {
            let mut frac = 0;
            for &b in &raw[20..n - 1] {
                frac = frac * 10 + digit(b)?;
            }
            // 1 to 9 digits: scale to nanoseconds.
            frac * 10u32.pow(30 - n as u32)
        }
        _ => return None,
    };
    let sec = two(raw, 17)?;
    if sec > 59 {
        return None;
    }
    let year = two(raw, 0)? * 100 + two(raw, 2)?;
    let date = NaiveDate::from_ymd_opt(year as i32, two(raw, 5)?, two(raw, 8)?)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(two(raw, 11)?, two(raw, 14)?, sec, nano)?;
    Some(NaiveDateTime::new(date, time).and_utc())
}

impl FieldValue for NaiveDate {
    const EXPECTED: &'static str = "date (YYYY-MM-DD)";
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        use std::io::Write;
        check_year(self.year())?;
        write!(out, "{}", self.format("%Y-%m-%d")).map_err(|e| e.to_string())
    }
    fn decode(raw: &[u8]) -> Result<Self, FieldError> {
        NaiveDate::parse_from_str(utf8(raw)?, "%Y-%m-%d").map_err(FieldError::detail)
    }
}

impl FieldValue for NaiveDateTime {
    const EXPECTED: &'static str = "date-time (YYYY-MM-DDTHH:MM:SS[.fff])";
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        use std::io::Write;
        check_year(self.year())?;
        write!(out, "{}", self.format("%Y-%m-%dT%H:%M:%S%.f")).map_err(|e| e.to_string())
    }
    fn decode(raw: &[u8]) -> Result<Self, FieldError> {
        NaiveDateTime::parse_from_str(utf8(raw)?, "%Y-%m-%dT%H:%M:%S%.f")
            .map_err(FieldError::detail)
    }
}

// ---------------------------------------------------------------------------
// Helpers for the derive crate

/// Types that may be `#[redis(counter)]` fields: integers and floats, updated
/// with `HINCRBY` / `HINCRBYFLOAT`.
#[diagnostic::on_unimplemented(
    message = "a `#[redis(counter)]` field must have an integer or float type",
    label = "`{Self}` is not an integer or float type",
    note = "counters are updated in place with HINCRBY / HINCRBYFLOAT"
)]
pub trait CounterValue: FieldValue + Copy {
    /// The delta type callers pass to `increment`.
    type Delta: Copy + std::fmt::Display;
    /// True for `f32` / `f64`.
    const FLOAT: bool;
    /// The smallest value, as a decimal string, when it is narrower than
    /// Redis' own 64-bit range (checked in the script), else `""`.
    const MIN: &'static str;
    /// The largest value, like [`CounterValue::MIN`].
    const MAX: &'static str;
    /// Appends the delta as the text `HINCRBY` / `HINCRBYFLOAT` take.
    fn encode_delta(delta: Self::Delta, out: &mut Vec<u8>);
}

macro_rules! counter_int {
    ($($t:ty => $min:expr, $max:expr;)*) => {$(
        impl CounterValue for $t {
            type Delta = i64;
            const FLOAT: bool = false;
            const MIN: &'static str = $min;
            const MAX: &'static str = $max;
            fn encode_delta(delta: i64, out: &mut Vec<u8>) {
                out.extend_from_slice(itoa::Buffer::new().format(delta).as_bytes());
            }
        }
    )*};
}
counter_int! {
    i8 => "-128", "127";
    i16 => "-32768", "32767";
    i32 => "-2147483648", "2147483647";
    i64 => "", "";
    isize => "", "";
    u8 => "0", "255";
    u16 => "0", "65535";
    u32 => "0", "4294967295";
    u64 => "0", "";
    usize => "0", "";
}

macro_rules! counter_float {
    ($($t:ty),*) => {$(
        impl CounterValue for $t {
            type Delta = $t;
            const FLOAT: bool = true;
            const MIN: &'static str = "";
            const MAX: &'static str = "";
            fn encode_delta(delta: $t, out: &mut Vec<u8>) {
                let _ = delta.encode(out);
            }
        }
    )*};
}
counter_float!(f32, f64);

/// Types that may be `#[redis(version)]` fields.
#[diagnostic::on_unimplemented(
    message = "a `#[redis(version)]` field must be `u64`, `u32` or `i64`",
    label = "`{Self}` is not `u64`, `u32` or `i64`",
    note = "the version counts the writes of an entity, for optimistic locking"
)]
pub trait VersionValue: FieldValue + Copy {
    /// The version as `u64`.
    fn to_version(self) -> u64;
}

impl VersionValue for u64 {
    fn to_version(self) -> u64 {
        self
    }
}
impl VersionValue for u32 {
    fn to_version(self) -> u64 {
        u64::from(self)
    }
}
impl VersionValue for i64 {
    fn to_version(self) -> u64 {
        self.max(0) as u64
    }
}

/// Types that may be `#[redis(expires_at)]` fields: the entity expires at
/// this instant (`PEXPIREAT`); `None` means it does not expire.
#[diagnostic::on_unimplemented(
    message = "a `#[redis(expires_at)]` field must be `DateTime<Utc>` or `Option<DateTime<Utc>>`",
    label = "`{Self}` is not `DateTime<Utc>` or `Option<DateTime<Utc>>`",
    note = "the entity expires at this instant (PEXPIREAT); `None` means it does not expire"
)]
pub trait ExpiresAtValue {
    /// Milliseconds since the Unix epoch, or `None` for "never".
    fn expires_at_ms(&self) -> Option<i64>;
}

impl ExpiresAtValue for DateTime<Utc> {
    fn expires_at_ms(&self) -> Option<i64> {
        Some(self.timestamp_millis())
    }
}

impl ExpiresAtValue for Option<DateTime<Utc>> {
    fn expires_at_ms(&self) -> Option<i64> {
        self.as_ref().map(DateTime::timestamp_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round<T: FieldValue + PartialEq + std::fmt::Debug>(v: T) -> Vec<u8> {
        let mut out = Vec::new();
        v.encode(&mut out).unwrap();
        assert_eq!(T::decode(&out).unwrap(), v);
        out
    }

    #[test]
    fn plain_forms() {
        assert_eq!(round(42u64), b"42");
        assert_eq!(round(-7i8), b"-7");
        assert_eq!(round(0.1f64), b"0.1");
        assert_eq!(round(1e300f64), b"1e300");
        assert_eq!(round(f64::INFINITY), b"inf");
        assert_eq!(round(true), b"true");
        assert_eq!(round(String::from("héllo")), "héllo".as_bytes());
        let t = Utc.timestamp_millis_opt(1_714_564_800_250).unwrap();
        assert_eq!(round(t), b"2024-05-01T12:00:00.250Z");
        assert!(f64::decode(b"nan").unwrap().is_nan());
        assert!(bool::decode(b"1").unwrap());
        assert!(bool::decode(b"yes").is_err());
        assert!(u8::decode(b"300").is_err());
        assert!(String::decode(b"\xff").is_err());
    }

    /// The hand-rolled RFC 3339 writer matches chrono's, fractions and leap
    /// seconds included.
    #[test]
    fn rfc3339_matches_chrono() {
        use proptest::prelude::*;
        let check = |t: DateTime<Utc>| {
            let mut out = Vec::new();
            write_rfc3339_utc(&t, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            );
        };
        let min = NaiveDate::from_ymd_opt(0, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let max = NaiveDate::from_ymd_opt(9999, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 999_999_999)
            .unwrap();
        check(min.and_utc());
        check(max.and_utc());
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31).unwrap();
        for nano in [1_000_000_000, 1_250_000_000, 1_000_001_000, 1_999_999_999] {
            check(leap.and_hms_nano_opt(23, 59, 59, nano).unwrap().and_utc());
        }
        let secs = min.and_utc().timestamp()..=max.and_utc().timestamp();
        let nanos = prop_oneof![
            Just(0u32),
            (0u32..1000).prop_map(|ms| ms * 1_000_000),
            (0u32..1_000_000).prop_map(|us| us * 1_000),
            0u32..1_000_000_000,
        ];
        proptest!(|(s in secs, n in nanos)| {
            check(DateTime::from_timestamp(s, n).unwrap());
        });
    }

    /// Integers read without `str::parse` read exactly as with it.
    #[test]
    fn fast_integers_agree_with_str_parse() {
        use proptest::prelude::*;
        fn agree<T: FieldValue + std::str::FromStr + PartialEq + std::fmt::Debug>(s: &str) {
            let fast = T::decode(s.as_bytes()).ok();
            assert_eq!(fast, s.parse::<T>().ok(), "{s}");
        }
        fn all(s: &str) {
            agree::<u8>(s);
            agree::<i8>(s);
            agree::<u16>(s);
            agree::<i16>(s);
            agree::<u32>(s);
            agree::<i32>(s);
            agree::<u64>(s);
            agree::<i64>(s);
            agree::<u128>(s);
            agree::<i128>(s);
            agree::<usize>(s);
            agree::<isize>(s);
        }
        for s in [
            "",
            "-",
            "+",
            "0",
            "-0",
            "+0",
            "007",
            "255",
            "256",
            "-128",
            "-129",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "-9223372036854775808",
            "-9223372036854775809",
            "9999999999999999999",
            "10000000000000000000",
            " 1",
            "1 ",
            "1a",
            "--1",
            "-+1",
        ] {
            all(s);
        }
        proptest!(|(s in "[-+]?[0-9]{0,22}")| all(&s));
        proptest!(|(s in "\\PC{0,6}")| all(&s));
    }

    /// Whenever the fast RFC 3339 parser returns a value, chrono's parser
    /// returns the same; and it reads back everything the writer writes.
    #[test]
    fn rfc3339_fast_parse_agrees_with_chrono() {
        use proptest::prelude::*;
        let agree = |s: &str| {
            if let Some(fast) = parse_rfc3339_utc(s.as_bytes()) {
                let slow = DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc));
                assert_eq!(Ok(fast), slow, "{s}");
            }
        };
        for s in [
            "2024-05-01T12:00:00Z",
            "2024-05-01T12:00:00.250Z",
            "2024-05-01T12:00:00.1Z",
            "2024-05-01T12:00:00.123456789Z",
            "2024-02-30T12:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "2016-12-31T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01t12:00:00Z",
            "2024-05-01T12:00:00+00:00",
            "+2024-05-01T12:00:00Z",
        ] {
            agree(s);
        }
        assert!(parse_rfc3339_utc(b"2024-05-01T12:00:00.250Z").is_some());
        // Mostly well-formed strings with any digits in any position.
        let digits = |n: usize| proptest::collection::vec(0u8..10, n);
        proptest!(|(
            d in digits(14),
            frac in proptest::collection::vec(0u8..10, 0..11),
            dot in any::<bool>(),
        )| {
            let d: Vec<char> = d.iter().map(|x| char::from(b'0' + x)).collect();
            let mut s = format!(
                "{}{}{}{}-{}{}-{}{}T{}{}:{}{}:{}{}",
                d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13]
            );
            if dot {
                s.push('.');
                s.extend(frac.iter().map(|x| char::from(b'0' + x)));
            }
            s.push('Z');
            agree(&s);
        });
        // Everything written reads back through the fast path.
        proptest!(|(secs in 0i64..253_402_300_799, nano in 0u32..1_000_000_000)| {
            let t = DateTime::from_timestamp(secs, nano).unwrap();
            let mut out = Vec::new();
            write_rfc3339_utc(&t, &mut out);
            prop_assert_eq!(parse_rfc3339_utc(&out), Some(t));
        });
    }
}
