//! Rate limiters: each check is one round trip, atomic in a Lua script, and
//! timed by the server's clock, so clients whose clocks disagree still
//! agree on the limit.
//!
//! | limiter | guarantee | state per subject |
//! |---|---|---|
//! | [`FixedWindow`] | at most `limit` per window; a window opens with the first admitted request and lasts `window` (or, with [`count_all_requests`](FixedWindow::count_all_requests), every request counts, as in the `INCR` + `EXPIRE` recipe) | one integer |
//! | [`SlidingWindow`] | at most `limit` in **any** span of `window` (a sliding log, exact) | one sorted-set member per admitted request |
//! | [`Gcra`] | a token bucket of `burst` tokens refilled at `limit` per `period`: at most `burst + t × limit / period` in any span `t` | one number |
//!
//! Every check returns a [`Decision`]: allowed or not, the quota left, how
//! long to wait before retrying, and when the quota is whole again.
//!
//! ```no_run
//! use std::time::Duration;
//! use redis_state::ratelimit::SlidingWindow;
//! # use redis_state::prelude::*;
//! # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
//! let api = SlidingWindow::new("api", 100, Duration::from_secs(60));
//! let d = api.check("user-42").run(con)?;
//! if !d.allowed {
//!     println!("429, retry in {:?}", d.retry_after);
//! }
//! # Ok(()) }
//! ```
//!
//! # Keys
//!
//! `ratelimit:<kind>:<name>:<subject>`, where `<kind>` is `fixed`,
//! `sliding` or `gcra`, and `<name>` and `<subject>` are escaped. Each key
//! expires once its state no longer matters. `verbatim_keys(prefix)` keys
//! a limiter's state at `<prefix><subject>` instead (the subject as given),
//! the layout other clients use, such as `rate_limit:<user id>`.

use std::time::Duration;

use redis::Value;

use crate::error::{Error, Result};
use crate::keys::{IdBuf, KeyPart, Namespace, impl_namespaced};
use crate::op::{Operation, Plan, Replies, Step};
use crate::random::millis;

/// The answer of a rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request is admitted (and counted).
    pub allowed: bool,
    /// How much of the quota is left after this request (in units of
    /// cost): how many more requests of cost 1 would be admitted now.
    pub remaining: u64,
    /// When denied, how long until a request of the same cost would be
    /// admitted (if no one else takes the quota); zero when allowed.
    pub retry_after: Duration,
    /// How long until the whole quota is available again.
    pub reset_after: Duration,
}

fn decode_decision(v: Value) -> Result<Decision> {
    let (allowed, remaining, retry, reset): (i64, i64, i64, i64) =
        redis::FromRedisValue::from_redis_value(v).map_err(|e| Error::UnexpectedReply {
            context: "a rate limiter script",
            found: e.to_string(),
        })?;
    Ok(Decision {
        allowed: allowed == 1,
        remaining: remaining.max(0) as u64,
        retry_after: Duration::from_millis(retry.max(0) as u64),
        reset_after: Duration::from_millis(reset.max(0) as u64),
    })
}

crate::script! {
    /// The fixed-window check (see [`FixedWindow`]).
    pub struct FixedWindowScript {
        name: "redis_state.ratelimit.fixed_window",
        keys: [counter],
        args: [limit: u64, window_ms: u64, cost: u64],
        returns: Decision => decode_decision,
        lua: include_str!("lua/fixed_window.lua"),
    }
}

crate::script! {
    /// The fixed-window check that counts every request (see
    /// [`FixedWindow::count_all_requests`]).
    pub struct FixedWindowAllScript {
        name: "redis_state.ratelimit.fixed_window_all",
        keys: [counter],
        args: [limit: u64, window_ms: u64, cost: u64],
        returns: Decision => decode_decision,
        lua: include_str!("lua/fixed_window_all.lua"),
    }
}

crate::script! {
    /// The sliding-log check (see [`SlidingWindow`]).
    pub struct SlidingWindowScript {
        name: "redis_state.ratelimit.sliding_log",
        keys: [log],
        args: [limit: u64, window_ms: u64, cost: u64],
        returns: Decision => decode_decision,
        lua: include_str!("lua/sliding_log.lua"),
    }
}

crate::script! {
    /// The GCRA check (see [`Gcra`]).
    pub struct GcraScript {
        name: "redis_state.ratelimit.gcra",
        keys: [tat],
        args: [burst: u64, interval_us: u64, cost: u64],
        returns: Decision => decode_decision,
        lua: include_str!("lua/gcra.lua"),
    }
}

/// What the limiters share: a name, a namespace, a key per subject.
#[derive(Debug, Clone)]
struct Base {
    kind: &'static str,
    name: IdBuf,
    ns: Option<Namespace>,
    verbatim: Option<String>,
}

impl Base {
    fn new(kind: &'static str, name: impl KeyPart) -> Self {
        let mut id = IdBuf::new();
        name.write_key_part(&mut id);
        Base {
            kind,
            name: id,
            ns: None,
            verbatim: None,
        }
    }

    fn key(&self, subject: &dyn Fn(&mut IdBuf)) -> String {
        let mut id = IdBuf::new();
        subject(&mut id);
        let ns_len = self.ns.as_ref().map_or(0, |ns| ns.as_str().len() + 1);
        let mut key =
            String::with_capacity(ns_len + 20 + self.name.joined().len() + id.joined().len());
        if let Some(ns) = &self.ns {
            key.push_str(ns.as_str());
            key.push(':');
        }
        if let Some(prefix) = &self.verbatim {
            key.push_str(prefix);
            key.push_str(&id.verbatim());
            return key;
        }
        key.push_str("ratelimit:");
        key.push_str(self.kind);
        key.push(':');
        key.push_str(self.name.joined());
        key.push(':');
        key.push_str(id.joined());
        key
    }

    /// The check of a window limiter (`limit` per `window`) for `subject`,
    /// made by `call` from the key, `limit`, the window in milliseconds and
    /// `cost`.
    fn window_check(
        &self,
        subject: &dyn Fn(&mut IdBuf),
        limit: u64,
        window: Duration,
        cost: u64,
        call: fn(&str, u64, u64, u64) -> Call,
    ) -> Check {
        let key = self.key(subject);
        let valid = if limit == 0 {
            Err(invalid("rate limit", "a limit of 0 admits nothing"))
        } else {
            check_cost(cost, limit)
        };
        Check::new(valid.map(|()| call(&key, limit, millis(window), cost)), key)
    }
}

fn invalid(what: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        what,
        reason: reason.into(),
    }
}

fn check_cost(cost: u64, capacity: u64) -> Result<()> {
    if cost == 0 {
        return Err(invalid("rate limit cost", "a check costs at least 1"));
    }
    if cost > capacity {
        return Err(invalid(
            "rate limit cost",
            format!(
                "a cost of {cost} exceeds the whole quota of {capacity}: it could never be admitted"
            ),
        ));
    }
    Ok(())
}

/// At most `limit` requests per window of `window`; a window opens with its
/// first admitted request (the key's TTL, on the server's clock).
///
/// Cheap (one integer per subject) but bursty at window edges: up to
/// `2 × limit` can pass within one `window` span that straddles two
/// windows. Use [`SlidingWindow`] when that matters.
///
/// By default only admitted requests count: a client that is denied and
/// retries gets in as soon as the window ends, and `remaining` is exact.
/// [`count_all_requests`](FixedWindow::count_all_requests) switches to
/// the common recipe other clients use (every request `INCR`s the counter,
/// the first one sets the `EXPIRE`), so that a Rust and a Python service
/// share one quota at one key:
///
/// ```
/// use std::time::Duration;
/// use redis_state::ratelimit::FixedWindow;
/// // the key `rate_limit:<user id>`, 100 requests a minute, as the redis-py
/// // `is_allowed` script counts them
/// let api = FixedWindow::new("api", 100, Duration::from_secs(60))
///     .count_all_requests()
///     .verbatim_keys("rate_limit:");
/// assert_eq!(api.check(42u64).key(), "rate_limit:42");
/// ```
#[derive(Debug, Clone)]
pub struct FixedWindow {
    base: Base,
    limit: u64,
    window: Duration,
    count_all: bool,
}

impl FixedWindow {
    /// A limiter named `name` admitting `limit` per `window`.
    pub fn new(name: impl KeyPart, limit: u64, window: Duration) -> Self {
        FixedWindow {
            base: Base::new("fixed", name),
            limit,
            window,
            count_all: false,
        }
    }

    /// Counts every request, denied ones too, as the `INCR` + `EXPIRE`
    /// recipe of other clients does: the counter is the number of requests
    /// seen in the window, the first request of a window sets its TTL, and
    /// a subject that keeps sending while over the limit stays denied until
    /// the window ends (the counter goes on growing past `limit`). A counter
    /// without a TTL (set by hand) starts a new window rather than denying
    /// forever. One `EVALSHA` (`PTTL`, `GET`, `INCRBY`, `PEXPIRE` on the
    /// first), one round trip.
    ///
    /// Windows are in milliseconds (`PEXPIRE`); a window of whole seconds
    /// is what a client using `EXPIRE` sets, so mixed fleets agree.
    pub fn count_all_requests(mut self) -> Self {
        self.count_all = true;
        self
    }

    /// Checks one request of `subject` (a user id, an IP, ...). One
    /// `EVALSHA` (`PTTL`, `GET`, `INCRBY`, `PEXPIRE`), one round trip.
    pub fn check(&self, subject: impl KeyPart) -> Check {
        self.check_n(subject, 1)
    }

    /// Checks a request that costs `cost` units of the quota.
    pub fn check_n(&self, subject: impl KeyPart, cost: u64) -> Check {
        let call: fn(&str, u64, u64, u64) -> Call = if self.count_all {
            |key, limit, window_ms, cost| {
                Call::FixedAll(FixedWindowAllScript::new(key, limit, window_ms, cost))
            }
        } else {
            |key, limit, window_ms, cost| {
                Call::Fixed(FixedWindowScript::new(key, limit, window_ms, cost))
            }
        };
        self.base.window_check(
            &|id| subject.write_key_part(id),
            self.limit,
            self.window,
            cost,
            call,
        )
    }
}

/// At most `limit` requests in any span of `window` (sliding log): exact,
/// at the cost of one sorted-set member per admitted request in the last
/// `window` (so meant for limits up to some thousands per subject).
#[derive(Debug, Clone)]
pub struct SlidingWindow {
    base: Base,
    limit: u64,
    window: Duration,
}

impl SlidingWindow {
    /// A limiter named `name` admitting `limit` in any `window`.
    pub fn new(name: impl KeyPart, limit: u64, window: Duration) -> Self {
        SlidingWindow {
            base: Base::new("sliding", name),
            limit,
            window,
        }
    }

    /// Checks one request of `subject`. One `EVALSHA` (`TIME`,
    /// `ZREMRANGEBYSCORE`, `ZCARD`, `ZADD`, `PEXPIRE`), one round trip.
    pub fn check(&self, subject: impl KeyPart) -> Check {
        self.check_n(subject, 1)
    }

    /// Checks a request that costs `cost` units of the quota.
    pub fn check_n(&self, subject: impl KeyPart, cost: u64) -> Check {
        self.base.window_check(
            &|id| subject.write_key_part(id),
            self.limit,
            self.window,
            cost,
            |key, limit, window_ms, cost| {
                Call::Sliding(SlidingWindowScript::new(key, limit, window_ms, cost))
            },
        )
    }
}

/// A token bucket of `burst` tokens (default: `limit`) refilled at `limit`
/// per `period`, as GCRA (the algorithm of redis-cell): one number per
/// subject, smooth, no window edges. In any span `t` it admits at most
/// `burst + t × limit / period`.
#[derive(Debug, Clone)]
pub struct Gcra {
    base: Base,
    limit: u64,
    period: Duration,
    burst: Option<u64>,
}

impl Gcra {
    /// A limiter named `name` sustaining `limit` per `period`, with bursts
    /// up to `limit`.
    pub fn new(name: impl KeyPart, limit: u64, period: Duration) -> Self {
        Gcra {
            base: Base::new("gcra", name),
            limit,
            period,
            burst: None,
        }
    }

    /// How many requests a rested subject may send at once. Default `limit`.
    pub fn burst(mut self, burst: u64) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Checks one request of `subject`. One `EVALSHA` (`TIME`, `GET`,
    /// `SET PX`), one round trip.
    pub fn check(&self, subject: impl KeyPart) -> Check {
        self.check_n(subject, 1)
    }

    /// Checks a request that costs `cost` tokens.
    pub fn check_n(&self, subject: impl KeyPart, cost: u64) -> Check {
        let key = self.base.key(&|id| subject.write_key_part(id));
        let burst = self.burst.unwrap_or(self.limit);
        let period_us = self.period.as_micros().min(u64::MAX as u128) as u64;
        let valid = if self.limit == 0 || burst == 0 {
            Err(invalid(
                "rate limit",
                "a limit or burst of 0 admits nothing",
            ))
        } else if period_us == 0 {
            Err(invalid(
                "rate limit period",
                "the period must be at least 1 µs",
            ))
        } else {
            check_cost(cost, burst)
        };
        // Rounded up: the limiter never admits faster than the rate.
        let interval = period_us.div_ceil(self.limit.max(1)).max(1);
        Check::new(
            valid.map(|()| Call::Gcra(GcraScript::new(&key, burst, interval, cost))),
            key,
        )
    }
}

macro_rules! namespaced {
    ($($t:ty),*) => {$(
        impl $t {
            /// Puts the limiter's keys in namespace `ns`.
            pub fn namespace(mut self, ns: &Namespace) -> Self {
                self.base.ns = Some(ns.clone());
                self
            }

            /// Keys each subject's state at `<prefix><subject>`, the subject
            /// as given (not escaped) and without the limiter's kind or name:
            /// the layout of other clients, such as `rate_limit:<user id>`
            /// (`verbatim_keys("rate_limit:")`). Limiters that share a prefix
            /// share their state, and two subjects share a key when their
            /// text is equal, so keep such subjects to values the application
            /// makes (ids), never raw user input.
            pub fn verbatim_keys(mut self, prefix: &str) -> Self {
                self.base.verbatim = Some(prefix.to_owned());
                self
            }
        }

        impl_namespaced!([] $t);
    )*};
}
namespaced!(FixedWindow, SlidingWindow, Gcra);

#[derive(Debug)]
enum Call {
    Fixed(FixedWindowScript),
    FixedAll(FixedWindowAllScript),
    Sliding(SlidingWindowScript),
    Gcra(GcraScript),
}

/// One rate-limit check; the output is the [`Decision`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct Check {
    call: Result<Call>,
    key: String,
}

impl Check {
    fn new(call: Result<Call>, key: String) -> Self {
        Check { call, key }
    }

    /// The key the check reads and writes.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Operation for Check {
    type Output = Decision;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match &mut self.call {
            Ok(Call::Fixed(c)) => c.prepare(plan),
            Ok(Call::FixedAll(c)) => c.prepare(plan),
            Ok(Call::Sliding(c)) => c.prepare(plan),
            Ok(Call::Gcra(c)) => c.prepare(plan),
            Err(e) => Err(std::mem::replace(
                e,
                invalid("rate limit check", "this check already failed"),
            )),
        }
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Decision>> {
        match &mut self.call {
            Ok(Call::Fixed(c)) => c.complete(replies),
            Ok(Call::FixedAll(c)) => c.complete(replies),
            Ok(Call::Sliding(c)) => c.complete(replies),
            Ok(Call::Gcra(c)) => c.complete(replies),
            Err(_) => Err(invalid("rate limit check", "this check already failed")),
        }
    }
}
