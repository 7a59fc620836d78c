//! Field codecs: how a Rust value becomes the plain string in a hash field.
//!
//! DESIGN principle 6: hash fields hold plain strings that `redis-cli` and other
//! clients read and write naturally.
//!
//! | Rust type                     | stored as                                   |
//! |-------------------------------|---------------------------------------------|
//! | integers (`u8` ... `i128`)    | decimal: `42`, `-7`                         |
//! | `f32`, `f64`                  | shortest text that round-trips: `0.1`, `1e-7`, `1e300`, `inf`, `-inf`, `nan` |
//! | `bool`                        | `true` / `false`                            |
//! | `String`                      | the UTF-8 text                              |
//! | `Vec<u8>`                     | the raw bytes                               |
//! | `chrono::DateTime<Utc>`       | RFC 3339: `2024-05-01T12:00:00.250Z` (or [`EpochSeconds`] / [`EpochMillis`]) |
//! | `chrono::NaiveDate`           | `2024-05-01`                                |
//! | `chrono::NaiveDateTime`       | `2024-05-01T12:00:00.250`                   |
//! | `std::time::SystemTime`       | RFC 3339 like `DateTime<Utc>` (or [`EpochSeconds`] / [`EpochMillis`]) |
//! | `uuid::Uuid` (feature `uuid`) | hyphenated lowercase: `550e8400-e29b-41d4-a716-446655440000` |
//! | `Option<T>`                   | the field is absent when `None`             |
//! | unit enums, newtypes          | `#[derive(RedisField)]`: the variant name / the inner value |
//! | any serde type                | JSON, with `#[redis(json)]` ([`Json`])      |
//! | anything else                 | your [`Codec`], with `#[redis(with = MyCodec)]` |
//!
//! # What is read
//!
//! The table above is the canonical form, the one written. Reading is wider,
//! so that what other clients write loads (DESIGN principle 6):
//!
//! * **booleans**: `true`/`false` in any case (Python's `str(True)` writes
//!   `True`) and `1`/`0` (redis-py, `HSET … 1`);
//! * **integers**: decimal with an optional sign (`+5`), and a decimal
//!   whose fraction is all zeros (`42.0`, what Python's `str(float)` writes
//!   for a whole number); any other fraction, an exponent or a value out of
//!   the type's range is refused;
//! * **floats**: every form Rust's and Python's float parsers agree on:
//!   redis-py's `repr(float)` (`1e-05`, `1e+16`, `1.0`, `inf`, `-inf`,
//!   `nan`), the plain decimals `HINCRBYFLOAT` writes (`10.5`, `3`), any
//!   case of `inf`/`infinity`/`nan`, surrounding spaces;
//! * **uuids**: hyphenated, simple (32 hex digits), braced or `urn:uuid:`,
//!   any case;
//! * **dates**: RFC 3339 with any offset for `DateTime<Utc>` and
//!   `SystemTime` (converted to UTC).
//!
//! Dates are written and read in years 0000 to 9999 only, the range RFC 3339
//! and ISO 8601 without extensions can write: a value outside it is refused
//! on save (nothing is written) and a stored text that lands outside it
//! (`-0001-01-01`, or `0000-01-01T00:00:00+01:00`, which is year -1 in UTC)
//! is refused on load with the same message, so that whatever loads can be
//! saved back. [`EpochSeconds`] and [`EpochMillis`] hold any date.

use std::marker::PhantomData;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
                let text = utf8(raw)?;
                text.parse::<$t>()
                    .or_else(|e| whole_part(text).ok_or(e)?.parse::<$t>())
                    .map_err(FieldError::detail)
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

/// `42` of `42.0` or `42.000`: a whole number written as a float (Python's
/// `str(float)`). `None` when there is no `.`, no digit before or after it,
/// or a fraction digit other than `0`.
fn whole_part(text: &str) -> Option<&str> {
    let (whole, frac) = text.split_once('.')?;
    let digits = whole.strip_prefix(['-', '+']).unwrap_or(whole);
    let zeros = !frac.is_empty() && frac.bytes().all(|b| b == b'0');
    (!digits.is_empty() && zeros).then_some(whole)
}

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
/// Checked on save and on load alike, with the same message, so that what
/// loads can be saved back.
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
        let t = DateTime::parse_from_rfc3339(utf8(raw)?)
            .map(|d| d.with_timezone(&Utc))
            .map_err(FieldError::detail)?;
        // An offset can carry 0000-01-01 or 9999-12-31 out of the range.
        check_year(t.year()).map_err(FieldError::detail)?;
        Ok(t)
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
        let d = NaiveDate::parse_from_str(utf8(raw)?, "%Y-%m-%d").map_err(FieldError::detail)?;
        check_year(d.year()).map_err(FieldError::detail)?;
        Ok(d)
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
        let d = NaiveDateTime::parse_from_str(utf8(raw)?, "%Y-%m-%dT%H:%M:%S%.f")
            .map_err(FieldError::detail)?;
        check_year(d.year()).map_err(FieldError::detail)?;
        Ok(d)
    }
}

/// `t` as a UTC date-time, or why it has none (chrono holds about ±262,000
/// years; a `SystemTime` can reach further).
fn system_to_utc(t: SystemTime) -> Result<DateTime<Utc>, String> {
    let out_of_range = || format!("{t:?} is outside the dates a timestamp can hold");
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).map_err(|_| out_of_range())?,
            d.subsec_nanos(),
        ),
        Err(before) => {
            let d = before.duration();
            let secs = i64::try_from(d.as_secs()).map_err(|_| out_of_range())?;
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - n),
            }
        }
    };
    DateTime::from_timestamp(secs, nanos).ok_or_else(out_of_range)
}

/// The `SystemTime` of a UTC date-time, or `None` where the platform's
/// `SystemTime` cannot hold it.
fn utc_to_system(t: DateTime<Utc>) -> Option<SystemTime> {
    let secs = t.timestamp();
    let nanos = Duration::from_nanos(u64::from(t.timestamp_subsec_nanos()));
    if secs >= 0 {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(nanos)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(nanos)
    }
}

fn utc_field_to_system(t: DateTime<Utc>) -> Result<SystemTime, FieldError> {
    utc_to_system(t)
        .ok_or_else(|| FieldError::detail("the date is outside what SystemTime holds here"))
}

/// Stored exactly as `DateTime<Utc>` (RFC 3339, nanoseconds kept), so
/// other clients see the same text whichever of the two a model uses.
impl FieldValue for SystemTime {
    const EXPECTED: &'static str = "RFC 3339 timestamp";
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        system_to_utc(*self)?.encode(out)
    }
    fn decode(raw: &[u8]) -> Result<Self, FieldError> {
        utc_field_to_system(DateTime::<Utc>::decode(raw)?)
    }
}

impl Codec<SystemTime> for EpochSeconds {
    const EXPECTED: &'static str = "Unix timestamp in seconds";
    fn encode(value: &SystemTime, out: &mut Vec<u8>) -> Result<(), String> {
        <Self as Codec<DateTime<Utc>>>::encode(&system_to_utc(*value)?, out)
    }
    fn decode(raw: &[u8]) -> Result<SystemTime, FieldError> {
        utc_field_to_system(<Self as Codec<DateTime<Utc>>>::decode(raw)?)
    }
}

impl Codec<SystemTime> for EpochMillis {
    const EXPECTED: &'static str = "Unix timestamp in milliseconds";
    fn encode(value: &SystemTime, out: &mut Vec<u8>) -> Result<(), String> {
        <Self as Codec<DateTime<Utc>>>::encode(&system_to_utc(*value)?, out)
    }
    fn decode(raw: &[u8]) -> Result<SystemTime, FieldError> {
        utc_field_to_system(<Self as Codec<DateTime<Utc>>>::decode(raw)?)
    }
}

/// Hyphenated lowercase (`550e8400-e29b-41d4-a716-446655440000`, Python's
/// `str(uuid)`); reads the simple, braced and `urn:uuid:` forms in any case
/// too.
#[cfg(feature = "uuid")]
impl FieldValue for uuid::Uuid {
    const EXPECTED: &'static str = "UUID";
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(
            self.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .as_bytes(),
        );
        Ok(())
    }
    fn decode(raw: &[u8]) -> Result<Self, FieldError> {
        uuid::Uuid::try_parse_ascii(raw).map_err(FieldError::detail)
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
    message = "a `#[redis(expires_at)]` field must be `DateTime<Utc>` or `SystemTime`, or an `Option` of one",
    label = "`{Self}` is not `DateTime<Utc>`, `SystemTime` or an `Option` of one",
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

/// A `SystemTime` beyond what a millisecond timestamp holds saturates at
/// the far end: it expires never in practice (or at once, in the past).
fn system_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

impl ExpiresAtValue for SystemTime {
    fn expires_at_ms(&self) -> Option<i64> {
        Some(system_ms(*self))
    }
}

impl ExpiresAtValue for Option<SystemTime> {
    fn expires_at_ms(&self) -> Option<i64> {
        self.map(system_ms)
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
            // Beside `str::parse`'s forms, whole numbers written as floats.
            let slow = s
                .parse::<T>()
                .ok()
                .or_else(|| whole_part(s)?.parse::<T>().ok());
            assert_eq!(fast, slow, "{s}");
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

    /// What other clients write reads: Python's `str(True)`, redis-py's
    /// `1`/`0`, whole numbers as Python writes floats.
    #[test]
    fn reads_what_other_clients_write() {
        for (text, want) in [
            ("True", true),
            ("False", false),
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("0", false),
        ] {
            assert_eq!(bool::decode(text.as_bytes()), Ok(want), "{text}");
        }
        for text in ["yes", "", "2", "tru"] {
            assert!(bool::decode(text.as_bytes()).is_err(), "{text}");
        }
        assert_eq!(i64::decode(b"42.0"), Ok(42));
        assert_eq!(i64::decode(b"-7.000"), Ok(-7));
        assert_eq!(i64::decode(b"+5"), Ok(5));
        assert_eq!(u8::decode(b"255.0"), Ok(255));
        for text in [
            "42.5", "1e3", ".0", "-.0", "1.", "256.0", "-1.0", "42.0 ", "4 2.0",
        ] {
            assert!(u8::decode(text.as_bytes()).is_err(), "{text}");
        }
        assert!(i64::decode(b"1.").is_err());
        for (text, want) in [
            ("1e-05", 1e-5),
            ("1e+16", 1e16),
            ("1.0", 1.0),
            ("3", 3.0),
            ("10.5", 10.5),
            ("inf", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            ("Infinity", f64::INFINITY),
            (" 2.5 ", 2.5),
        ] {
            assert_eq!(f64::decode(text.as_bytes()), Ok(want), "{text}");
        }
        assert!(f64::decode(b"nan").unwrap().is_nan());
        assert!(f64::decode(b"NaN").unwrap().is_nan());
        // The canonical forms written.
        let written = |v: f64| {
            let mut out = Vec::new();
            v.encode(&mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(written(1e-5), "0.00001");
        assert_eq!(written(1e-7), "1e-7");
        assert_eq!(written(1.0), "1.0");
        assert_eq!(written(f64::NEG_INFINITY), "-inf");
    }

    /// Python's `repr(float)` (what redis-py writes for a float) of `x`:
    /// the shortest digits, in positional form unless the decimal point is
    /// more than 16 places right or 4 places left of them, where it writes
    /// `d.ddde±XX`.
    fn python_repr(x: f64) -> String {
        if x.is_nan() {
            return "nan".into();
        }
        if x.is_infinite() {
            return if x > 0.0 { "inf" } else { "-inf" }.into();
        }
        let sci = format!("{:e}", x.abs());
        let (mantissa, exp) = sci.split_once('e').unwrap();
        let exp: i32 = exp.parse().unwrap();
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let sign = if x.is_sign_negative() { "-" } else { "" };
        let decpt = exp + 1;
        if !(-3..=16).contains(&decpt) {
            let (first, rest) = digits.split_at(1);
            let frac = if rest.is_empty() {
                String::new()
            } else {
                format!(".{rest}")
            };
            let esign = if exp < 0 { '-' } else { '+' };
            return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
        }
        let n = digits.len() as i32;
        if decpt <= 0 {
            format!("{sign}0.{}{digits}", "0".repeat((-decpt) as usize))
        } else if decpt >= n {
            format!("{sign}{digits}{}.0", "0".repeat((decpt - n) as usize))
        } else {
            let (int, frac) = digits.split_at(decpt as usize);
            format!("{sign}{int}.{frac}")
        }
    }

    /// Every float redis-py writes reads back as the same float, and so
    /// does every whole number redis-py writes as a float into an integer
    /// field.
    #[test]
    fn python_float_text_reads_exactly() {
        use proptest::prelude::*;
        assert_eq!(python_repr(1e-5), "1e-05");
        assert_eq!(python_repr(1e16), "1e+16");
        assert_eq!(python_repr(1e15), "1000000000000000.0");
        assert_eq!(python_repr(0.0001), "0.0001");
        assert_eq!(python_repr(-0.0), "-0.0");
        assert_eq!(python_repr(123.456), "123.456");
        assert_eq!(python_repr(1.5e300), "1.5e+300");
        let check = |x: f64| {
            let text = python_repr(x);
            let back = f64::decode(text.as_bytes()).unwrap();
            assert!(
                back.to_bits() == x.to_bits() || (x.is_nan() && back.is_nan()),
                "{text}"
            );
        };
        for x in [
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            5e-324,
            f64::NAN,
            f64::INFINITY,
        ] {
            check(x);
        }
        proptest!(|(x in any::<f64>())| check(x));
        proptest!(|(n in -(1i64 << 53)..(1i64 << 53))| {
            let text = python_repr(n as f64);
            prop_assert_eq!(i64::decode(text.as_bytes()), Ok(n), "{}", text);
        });
    }

    /// A date loads only if it can be saved back: years 0000-9999 on both
    /// sides, with the same message.
    #[test]
    fn dates_load_only_what_saves() {
        let refused = |raw: &str| -> String {
            let a = NaiveDate::decode(raw.as_bytes()).err();
            let b = NaiveDateTime::decode(raw.as_bytes()).err();
            let c = DateTime::<Utc>::decode(raw.as_bytes()).err();
            let d = SystemTime::decode(raw.as_bytes()).err();
            [a, b, c, d]
                .into_iter()
                .flatten()
                .filter_map(|e| e.detail)
                .find(|m| m.contains("outside 0000-9999"))
                .unwrap_or_else(|| panic!("{raw} was not refused for its year"))
        };
        let save_msg = NaiveDate::from_ymd_opt(-1, 1, 1)
            .unwrap()
            .encode(&mut Vec::new())
            .unwrap_err();
        assert_eq!(refused("-0001-01-01"), save_msg);
        assert!(NaiveDate::decode(b"-0001-01-01").is_err());
        assert!(NaiveDateTime::decode(b"-0001-01-01T00:00:00").is_err());
        assert!(NaiveDate::decode(b"+10000-01-01").is_err());
        // An offset carrying the edge of the range out of it.
        let err = DateTime::<Utc>::decode(b"0000-01-01T00:00:00+01:00").unwrap_err();
        assert!(err.detail.unwrap().contains("year -1"));
        assert!(DateTime::<Utc>::decode(b"9999-12-31T23:00:00-05:00").is_err());
        // Inside the range: an offset converts, and saves back.
        let t = DateTime::<Utc>::decode(b"2024-05-01T14:00:00+02:00").unwrap();
        assert_eq!(round(t), b"2024-05-01T12:00:00Z");
        assert_eq!(
            round(NaiveDate::from_ymd_opt(0, 1, 1).unwrap()),
            b"0000-01-01"
        );
    }

    #[test]
    fn system_time_is_stored_as_rfc3339() {
        let t = UNIX_EPOCH + Duration::new(1_714_564_800, 250_000_000);
        assert_eq!(round(t), b"2024-05-01T12:00:00.250Z");
        let before = UNIX_EPOCH - Duration::new(1, 250_000_000);
        assert_eq!(round(before), b"1969-12-31T23:59:58.750Z");
        assert_eq!(
            round(UNIX_EPOCH + Duration::new(0, 1)),
            b"1970-01-01T00:00:00.000000001Z"
        );
        let mut out = Vec::new();
        <EpochMillis as Codec<SystemTime>>::encode(&t, &mut out).unwrap();
        assert_eq!(out, b"1714564800250");
        assert_eq!(<EpochMillis as Codec<SystemTime>>::decode(&out), Ok(t));
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 2);
        assert!(far.encode(&mut Vec::new()).is_err());
        assert_eq!(t.expires_at_ms(), Some(1_714_564_800_250));
        assert_eq!(before.expires_at_ms(), Some(-1_250));
    }

    #[cfg(feature = "uuid")]
    #[test]
    fn uuids_are_hyphenated_lowercase() {
        let id = uuid::Uuid::from_u128(0x550e8400_e29b_41d4_a716_446655440000);
        assert_eq!(round(id), b"550e8400-e29b-41d4-a716-446655440000");
        for form in [
            "550E8400-E29B-41D4-A716-446655440000",
            "550e8400e29b41d4a716446655440000",
            "{550e8400-e29b-41d4-a716-446655440000}",
            "urn:uuid:550e8400-e29b-41d4-a716-446655440000",
        ] {
            assert_eq!(uuid::Uuid::decode(form.as_bytes()), Ok(id), "{form}");
        }
        assert!(uuid::Uuid::decode(b"550e8400").is_err());
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
