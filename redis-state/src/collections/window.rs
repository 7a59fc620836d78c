//! Time windows: a sorted set scored by timestamp, trimmed as it grows.

use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use crate::codec::{Codec, Plain};
use crate::error::{Error, Result};
use crate::keys::{KeyPart, Namespace, impl_namespaced};
use crate::op::{CommandOp, Operation, Plan, Replies, Step, command};
use crate::random::millis;

use super::feed::stored_error;
use super::{
    Layout, Page, Remove, Timed, decode_at, encode, gather, minus, num_of, pairs, redis_count,
    seconds_text, time_of,
};

crate::script! {
    /// `ZADD`, trims and `PEXPIRE` of a window (see [`TimeWindow::add`]).
    pub(crate) struct WindowAddScript {
        name: "redis_state.collections.window_add",
        keys: [set],
        args: [at: &str, member: &[u8], cutoff: &str, cap: u64, ttl_ms: u64],
        returns: u64,
        lua: include_str!("lua/window_add.lua"),
    }
}

/// The cap of a window unless [`TimeWindow::cap`] sets another.
pub const DEFAULT_WINDOW_CAP: u64 = 100_000;

/// A sorted set per owner holding what happened in the last `span`: each
/// member scored by its time in epoch seconds (the seed's
/// `zadd(key, {activity: time.time()})`), trimmed below the cutoff
/// `now - span` in the same call that adds.
///
/// Members are `T` in the codec `C` (plain text by default). As in any
/// sorted set a member is there once: adding it again moves it to its new
/// time. Besides the span, a window holds at most [`cap`](TimeWindow::cap)
/// members (the oldest go first), so it is bounded however fast members
/// come (DESIGN principle 10).
///
/// Keys: `window:<name>:<owner>` (both escaped), or the layout of
/// [`key_layout`](TimeWindow::key_layout) (`key_layout("user:",
/// ":activities")` is the seed's `user:<user id>:activities`).
///
/// Times come from `SystemTime::now()`, or from `.now(t)` on each
/// operation (see the [module docs](super#times)).
pub struct TimeWindow<T, C = Plain> {
    layout: Layout,
    span: Duration,
    cap: u64,
    _t: PhantomData<fn() -> (T, C)>,
}

impl<T, C> Clone for TimeWindow<T, C> {
    fn clone(&self) -> Self {
        TimeWindow {
            layout: self.layout.clone(),
            span: self.span,
            cap: self.cap,
            _t: PhantomData,
        }
    }
}

impl<T, C> std::fmt::Debug for TimeWindow<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeWindow")
            .field("layout", &self.layout)
            .field("span", &self.span)
            .field("cap", &self.cap)
            .finish()
    }
}

impl<T, C: Codec<T>> TimeWindow<T, C> {
    /// The windows named `name`, each holding the last `span` (any
    /// `Duration`: `Duration::MAX` keeps everything, up to the cap).
    pub fn new(name: impl KeyPart, span: Duration) -> Self {
        TimeWindow {
            layout: Layout::own("window", &name),
            span,
            cap: DEFAULT_WINDOW_CAP,
            _t: PhantomData,
        }
    }

    /// At most `cap` members per window (default
    /// [`DEFAULT_WINDOW_CAP`]); at least 1.
    pub fn cap(mut self, cap: u64) -> Self {
        self.cap = cap.clamp(1, (1 << 53) - 1);
        self
    }

    /// Keys the window of `owner` at `<prefix><owner><suffix>`, the owner
    /// escaped.
    pub fn key_layout(mut self, prefix: &str, suffix: &str) -> Self {
        self.layout.set(prefix, suffix);
        self
    }

    /// Puts every key in namespace `ns` (`<ns>:<key>`).
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.layout.namespace(ns);
        self
    }

    /// The span.
    pub fn span(&self) -> Duration {
        self.span
    }

    /// The key of `owner`'s window.
    pub fn key(&self, owner: impl KeyPart) -> String {
        self.layout.key(&owner)
    }

    /// Adds `member` at the current time (or [`WindowAdd::at`]), drops
    /// the members at or before `now - span` and those past the cap (the
    /// oldest; at most 512 per call, the rest on the next ones: reads never
    /// see them), and gives the window a TTL of `span` after its newest
    /// member; the output is the number of members after. One `EVALSHA`
    /// (`ZADD`, `ZCARD`, `ZCOUNT`, `ZREMRANGEBYRANK` when something is out,
    /// `PEXPIRE`), atomic, one round trip.
    pub fn add(&self, owner: impl KeyPart, member: &T) -> WindowAdd {
        WindowAdd {
            key: self.key(owner),
            member: encode::<T, C>(member, "member").map_err(Some),
            span: self.span,
            cap: self.cap,
            at: None,
            now: None,
        }
    }

    /// The newest `n` members inside the window, newest first, with their
    /// times: the seed's `zrevrange(key, 0, count - 1, withscores=True)`
    /// without what fell out of the window. Members that do not decode are
    /// skipped and counted ([`WindowRecent::strict`]). One
    /// `ZREVRANGEBYSCORE … WITHSCORES LIMIT 0 n`, one round trip.
    pub fn recent(&self, owner: impl KeyPart, n: u64) -> WindowRecent<T, C> {
        WindowRecent {
            key: self.key(owner),
            n,
            span: self.span,
            now: None,
            strict: false,
            _t: PhantomData,
        }
    }

    /// The number of members inside the window. One `ZCOUNT`, one round
    /// trip.
    pub fn count(&self, owner: impl KeyPart) -> WindowCount {
        WindowCount {
            key: self.key(owner),
            range: Range::Recent {
                span: self.span,
                now: None,
            },
        }
    }

    /// The number of members with times from `from` to `to`, both
    /// included. One `ZCOUNT`, one round trip.
    pub fn count_between(
        &self,
        owner: impl KeyPart,
        from: SystemTime,
        to: SystemTime,
    ) -> WindowCount {
        WindowCount {
            key: self.key(owner),
            range: Range::Between(from, to),
        }
    }

    /// Removes `member` from `owner`'s window; `true` when it was there.
    /// One `ZREM`, one round trip.
    pub fn remove(&self, owner: impl KeyPart, member: &T) -> Remove {
        Remove::new("ZREM", self.key(owner), encode::<T, C>(member, "member"))
    }

    /// Deletes `owner`'s window; `true` when it existed. One `DEL`, one
    /// round trip.
    pub fn clear(&self, owner: impl KeyPart) -> CommandOp<bool> {
        command("DEL", self.key(owner))
    }
}

impl_namespaced!([T, C: Codec<T>] TimeWindow<T, C>);

/// See [`TimeWindow::add`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct WindowAdd {
    key: String,
    member: Result<Vec<u8>, Option<Error>>,
    span: Duration,
    cap: u64,
    at: Option<SystemTime>,
    now: Option<SystemTime>,
}

impl WindowAdd {
    /// The member's time, when it is not now (an event reported late).
    /// A time at or before `now - span` is added and trimmed at once.
    pub fn at(mut self, at: SystemTime) -> Self {
        self.at = Some(at);
        self
    }

    /// The current time for this call, instead of `SystemTime::now()`:
    /// the member's time (unless [`at`](WindowAdd::at) gives one) and the
    /// end of the window.
    pub fn now(mut self, now: SystemTime) -> Self {
        self.now = Some(now);
        self
    }

    /// The window's key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Operation for WindowAdd {
    type Output = u64;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let member = match &mut self.member {
            Ok(m) => m,
            Err(e) => return Err(stored_error(e, "a window add")),
        };
        let now = self.now.unwrap_or_else(SystemTime::now);
        let at = self.at.unwrap_or(now);
        let ahead = at.duration_since(now).unwrap_or_default();
        let ttl = millis(self.span.saturating_add(ahead));
        WindowAddScript::new(
            &self.key,
            &seconds_text(at),
            &member[..],
            &seconds_text(minus(now, self.span)),
            self.cap,
            ttl,
        )
        .prepare(plan)
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        replies.next("a window add").map(Step::Done)
    }
}

/// See [`TimeWindow::recent`].
#[must_use = "an operation does nothing until it is run"]
pub struct WindowRecent<T, C = Plain> {
    key: String,
    n: u64,
    span: Duration,
    now: Option<SystemTime>,
    strict: bool,
    _t: PhantomData<fn() -> (T, C)>,
}

impl<T, C> std::fmt::Debug for WindowRecent<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowRecent")
            .field("key", &self.key)
            .field("n", &self.n)
            .field("span", &self.span)
            .field("now", &self.now)
            .field("strict", &self.strict)
            .finish()
    }
}

impl<T, C> WindowRecent<T, C> {
    /// The current time for this read, instead of `SystemTime::now()`.
    pub fn now(mut self, now: SystemTime) -> Self {
        self.now = Some(now);
        self
    }

    /// Fails the read with the [`Error::Decode`] of the first member that
    /// does not decode (naming the key and the member) instead of skipping
    /// it.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }
}

impl<T, C: Codec<T>> Operation for WindowRecent<T, C> {
    type Output = Page<Timed<T>>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if self.n == 0 {
            return Ok(());
        }
        let now = self.now.unwrap_or_else(SystemTime::now);
        let cutoff = format!("({}", seconds_text(minus(now, self.span)));
        plan.cmd("ZREVRANGEBYSCORE", &self.key)
            .arg("+inf")
            .arg(cutoff)
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(redis_count(self.n));
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let mut page = Page::new();
        if self.n == 0 {
            return Ok(Step::Done(page));
        }
        for (member, score) in pairs(replies.next_value()?, "a window read")? {
            let at = num_of(&score).ok_or_else(|| Error::unexpected("a window read", &score))?;
            let entry = decode_at::<T, C>(
                &self.key,
                || format!("member {}", crate::error::preview_value(&member)),
                &member,
            )
            .map(|value| Timed {
                value,
                at: time_of(at),
            });
            gather(&mut page, self.strict, &self.key, entry)?;
        }
        Ok(Step::Done(page))
    }
}

#[derive(Debug)]
enum Range {
    Recent {
        span: Duration,
        now: Option<SystemTime>,
    },
    Between(SystemTime, SystemTime),
}

/// See [`TimeWindow::count`] and [`TimeWindow::count_between`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct WindowCount {
    key: String,
    range: Range,
}

impl WindowCount {
    /// The current time for [`TimeWindow::count`], instead of
    /// `SystemTime::now()` (no effect on `count_between`).
    pub fn now(mut self, at: SystemTime) -> Self {
        if let Range::Recent { now, .. } = &mut self.range {
            *now = Some(at);
        }
        self
    }
}

impl Operation for WindowCount {
    type Output = u64;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let (min, max) = match self.range {
            Range::Recent { span, now } => {
                let now = now.unwrap_or_else(SystemTime::now);
                (
                    format!("({}", seconds_text(minus(now, span))),
                    "+inf".to_owned(),
                )
            }
            Range::Between(from, to) => (seconds_text(from), seconds_text(to)),
        };
        plan.cmd("ZCOUNT", &self.key).arg(min).arg(max);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        replies.next("a window count").map(Step::Done)
    }
}
