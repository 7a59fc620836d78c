//! Collections of the seed documents, typed: capped feeds, time windows,
//! tag sets with a reverse index, and presence.
//!
//! | structure | Redis type | write (one round trip, atomic) | reads |
//! |---|---|---|---|
//! | [`Feed<T>`](Feed) | list, newest first | [`push`](Feed::push): `LPUSH` + `LTRIM` + `PEXPIRE` in one `EVALSHA` | [`page`](Feed::page) (`LRANGE`), [`len`](Feed::len) |
//! | [`TimeWindow<T>`](TimeWindow) | sorted set scored by epoch seconds | [`add`](TimeWindow::add): `ZADD`, trim below the cutoff and past the cap, `PEXPIRE` | [`recent`](TimeWindow::recent), [`count`](TimeWindow::count), [`count_between`](TimeWindow::count_between) |
//! | [`TagSet<I, T>`](TagSet) | a set per item (its tags) and per tag (its items), one hash tag | [`tag`](TagSet::tag), [`untag`](TagSet::untag), [`set_tags`](TagSet::set_tags), [`remove_item`](TagSet::remove_item): one script each, both sides | [`items_with_all`](TagSet::items_with_all) (`SINTER`), [`items_with_any`](TagSet::items_with_any) (`SUNION`), [`count_with_all`](TagSet::count_with_all) (`SINTERCARD`), [`tags_of`](TagSet::tags_of) |
//! | [`Presence<U>`](Presence) | sorted set scored by last seen (epoch seconds) | [`heartbeat`](Presence::heartbeat): `ZADD`, prune, `PEXPIRE` | [`count`](Presence::count), [`online`](Presence::online) (prune in the same call), [`is_online`](Presence::is_online) |
//!
//! Every operation is a value (run it with `run` or `run_async`, batch it
//! with [`batch`](crate::batch) or [`many`](crate::many)) and costs one
//! round trip.
//!
//! # Layouts other clients read
//!
//! The data is what the seed documents' redis-py code writes and reads: a
//! feed is a list of JSON documents, newest first (`lpush` + `ltrim` +
//! `expire`, paged with `lrange`); a window and presence are sorted sets
//! scored by `time.time()` (seconds since the epoch, to the millisecond);
//! tag sets are plain sets of the tags' and items' plain text. The keys
//! follow redis-state's own layout (`feed:<name>:<owner>`, ...) unless
//! [`key_layout`](Feed::key_layout) names another
//! (`.key_layout("feed:", "")` gives the seed's `feed:<user id>`).
//!
//! # Keys
//!
//! Owners, items and tags placed in keys are escaped by the rules of
//! [`keys`](crate::keys) (`a:b` → `a%3Ab`), so no value can add a segment,
//! a hash tag or a glob character. Members (feed entries, window members,
//! users, items, tags) are stored as they are.
//!
//! # Times
//!
//! Windows and presence take their time from the caller: every write and
//! read uses `SystemTime::now()` unless given another with `.now(t)` (a
//! test, a replay, a clock of the caller's choice). Clients whose clocks
//! disagree by a little agree on membership up to that little.
//!
//! # Entries that do not decode
//!
//! As with leaderboard pages, a page read (a feed page, a window's recent
//! members, the users online, a tag query) leaves out an entry that does not
//! decode as the type, logs it at `warn` (target
//! `redis_state::collections`, naming the key and the entry) and counts it
//! in [`Page::skipped`]; `.strict()` on the read fails with the
//! [`Error::Decode`] of the first such entry instead,
//! naming the key and the index (or member). A key of another type is the
//! server's `WRONGTYPE` error, and nothing is written.

mod feed;
mod presence;
mod tags;
mod window;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;

use crate::codec::Codec;
use crate::error::{DecodeError, Error, Result};
use crate::keys::{IdBuf, KeyPart, Namespace};
use crate::leaderboard::MemberRef;
use crate::op::{Operation, Plan, Replies, Step};

pub use feed::{Feed, FeedPage, FeedPush};
pub use presence::{Heartbeat, IsOnline, Online, OnlineCount, Presence};
pub use tags::{DEFAULT_MAX_TAGS, TagCount, TagQuery, TagSet, TagWrite, TagsOf};
pub use window::{DEFAULT_WINDOW_CAP, TimeWindow, WindowAdd, WindowCount, WindowRecent};

/// A page of entries that decoded, and how many did not.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page<T> {
    /// The entries, in the structure's order.
    pub items: Vec<T>,
    /// Entries left out because they did not decode (logged at `warn`).
    pub skipped: usize,
}

impl<T> Page<T> {
    fn new() -> Self {
        Page {
            items: Vec::new(),
            skipped: 0,
        }
    }
}

impl<T> IntoIterator for Page<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// A member with its time: a window's member and when it happened, or a
/// user online and when it was last seen.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Timed<T> {
    /// The member.
    pub value: T,
    /// Its time (its score, to the millisecond).
    pub at: SystemTime,
}

// ---------------------------------------------------------------------------
// Keys

/// Where the keys of one structure are: `<ns>:<prefix><escaped
/// owner><suffix>`.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    prefix: String,
    suffix: String,
    ns: Option<Namespace>,
    /// `<ns>:<prefix>`, kept up to date by `set` and `namespace`.
    head: String,
}

impl Layout {
    /// redis-state's own layout: `<kind>:<escaped name>:<escaped owner>`.
    pub(crate) fn own(kind: &str, name: &dyn KeyPart) -> Self {
        let mut id = IdBuf::new();
        name.write_key_part(&mut id);
        let prefix = format!("{kind}:{}:", id.joined());
        Layout {
            head: prefix.clone(),
            prefix,
            suffix: String::new(),
            ns: None,
        }
    }

    pub(crate) fn set(&mut self, prefix: &str, suffix: &str) {
        self.prefix = prefix.to_owned();
        self.suffix = suffix.to_owned();
        self.rehead();
    }

    pub(crate) fn namespace(&mut self, ns: &Namespace) {
        self.ns = Some(ns.clone());
        self.rehead();
    }

    fn rehead(&mut self) {
        self.head.clear();
        if let Some(ns) = &self.ns {
            self.head.push_str(ns.as_str());
            self.head.push(':');
        }
        self.head.push_str(&self.prefix);
    }

    /// The text every key starts with (namespace and prefix).
    pub(crate) fn head(&self) -> &str {
        &self.head
    }

    pub(crate) fn suffix(&self) -> &str {
        &self.suffix
    }

    /// The key of `owner`.
    pub(crate) fn key(&self, owner: &dyn KeyPart) -> String {
        let mut id = IdBuf::new();
        owner.write_key_part(&mut id);
        self.key_of_segment(id.joined())
    }

    /// The key whose owner segment is `segment` (already escaped).
    pub(crate) fn key_of_segment(&self, segment: &str) -> String {
        let mut out = String::with_capacity(self.head.len() + segment.len() + self.suffix.len());
        out.push_str(&self.head);
        out.push_str(segment);
        out.push_str(&self.suffix);
        out
    }
}

// ---------------------------------------------------------------------------
// Values and times

pub(crate) fn encode<T, C: Codec<T>>(value: &T, what: &'static str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    C::encode(value, &mut out).map_err(|message| Error::Encode {
        model: std::any::type_name::<T>(),
        field: what,
        message,
    })?;
    Ok(out)
}

/// The plain form of a member given as `V` or a reference form of it
/// (`&str` for `String`).
pub(crate) fn encode_ref<V, Q: MemberRef<V> + ?Sized>(
    value: &Q,
    what: &'static str,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    value
        .encode_member(&mut out)
        .map_err(|message| Error::Encode {
            model: std::any::type_name::<V>(),
            field: what,
            message,
        })?;
    Ok(out)
}

/// Epoch seconds to the millisecond, as text (`1764790000.123`): the
/// score `time.time()` gives in redis-py, written exactly.
pub(crate) fn seconds_text(t: SystemTime) -> String {
    let ms: i128 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i128,
        Err(e) => -(e.duration().as_millis() as i128),
    };
    // Scores are doubles: keep the milliseconds exact (|ms| < 2^53).
    let ms = ms.clamp(-(1i128 << 53) + 1, (1i128 << 53) - 1);
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

/// `t - span`, or the earliest time when that is before what a
/// `SystemTime` holds.
pub(crate) fn minus(t: SystemTime, span: Duration) -> SystemTime {
    t.checked_sub(span)
        .or_else(|| UNIX_EPOCH.checked_sub(Duration::from_secs(1 << 40)))
        .unwrap_or(UNIX_EPOCH)
}

/// A score in epoch seconds back to a time, to the millisecond.
pub(crate) fn time_of(score: f64) -> SystemTime {
    let ms = (score * 1000.0).round();
    if !ms.is_finite() {
        return UNIX_EPOCH;
    }
    if ms >= 0.0 {
        UNIX_EPOCH + Duration::from_millis(ms.min(u64::MAX as f64) as u64)
    } else {
        minus(
            UNIX_EPOCH,
            Duration::from_millis((-ms).min(u64::MAX as f64) as u64),
        )
    }
}

// ---------------------------------------------------------------------------
// Replies

pub(crate) use crate::reply::{bytes_of, num_of};

pub(crate) fn array(v: Value, context: &'static str) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(Error::unexpected(context, &other)),
    }
}

/// Member/score pairs of a `WITHSCORES` read: flat in RESP2, nested in RESP3.
pub(crate) fn pairs(v: Value, context: &'static str) -> Result<Vec<(Value, Value)>> {
    crate::reply::score_pairs(array(v, context)?, context)
}

/// Adds one decoded entry to a page: a decode error skips the entry (logged,
/// counted), or fails the read when `strict`.
pub(crate) fn gather<T>(
    page: &mut Page<T>,
    strict: bool,
    key: &str,
    entry: Result<T, DecodeError>,
) -> Result<()> {
    match entry {
        Ok(t) => page.items.push(t),
        Err(e) if !strict => {
            log::warn!(
                target: "redis_state::collections",
                "skipping an entry of `{key}` that does not decode: {e}"
            );
            page.skipped += 1;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Decodes `raw` with `C`; the error names `key` and `at()` (an index, a
/// member).
pub(crate) fn decode_at<T, C: Codec<T>>(
    key: &str,
    at: impl FnOnce() -> String,
    raw: &Value,
) -> Result<T, DecodeError> {
    let Some(bytes) = bytes_of(raw) else {
        return Err(DecodeError::new(
            key,
            Some(&at()),
            C::EXPECTED,
            Some(crate::error::preview_value(raw).as_bytes()),
        ));
    };
    C::decode(bytes).map_err(|e| {
        let err = DecodeError::new(key, Some(&at()), C::EXPECTED, Some(bytes));
        match e.detail {
            Some(d) => err.with_detail(d),
            None => err,
        }
    })
}

/// Removes one member (`ZREM`, `SREM`); `true` when it was there. See
/// [`Presence::leave`] and [`TimeWindow::remove`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct Remove {
    command: &'static str,
    key: String,
    member: Result<Vec<u8>, Option<Error>>,
}

impl Remove {
    pub(crate) fn new(command: &'static str, key: String, member: Result<Vec<u8>>) -> Self {
        Remove {
            command,
            key,
            member: member.map_err(Some),
        }
    }
}

impl Operation for Remove {
    type Output = bool;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let member = match &mut self.member {
            Ok(m) => m,
            Err(e) => return Err(feed::stored_error(e, "a member removal")),
        };
        plan.cmd(self.command, &self.key).arg(&member[..]);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        replies.next::<i64>(self.command).map(|n| Step::Done(n > 0))
    }
}

/// Counts up to `u64`: what saturating a count to Redis' range looks like.
pub(crate) fn redis_count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact_text() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_790_000_123);
        assert_eq!(seconds_text(t), "1764790000.123");
        assert_eq!(seconds_text(UNIX_EPOCH), "0.000");
        let before = UNIX_EPOCH - Duration::from_millis(1_500);
        assert_eq!(seconds_text(before), "-1.500");
        assert_eq!(time_of(1_764_790_000.123), t);
        assert_eq!(time_of(-1.5), before);
        assert_eq!(time_of(f64::NAN), UNIX_EPOCH);
    }

    #[test]
    fn far_times_saturate() {
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        let text = seconds_text(far);
        assert!(text.starts_with("9007199254740."), "{text}");
        let _ = minus(UNIX_EPOCH, Duration::MAX);
        let _ = time_of(f64::MAX);
        let _ = time_of(f64::MIN);
    }
}
