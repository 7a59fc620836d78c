//! Presence: who is online, with expiry and no sweeper process.

use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use redis::Value;

use crate::codec::{FieldValue, Plain};
use crate::error::{Error, Result};
use crate::keys::{IdBuf, KeyPart, Namespace, impl_namespaced};
use crate::leaderboard::MemberRef;
use crate::op::{Operation, Plan, Replies, Step};
use crate::random::millis;

use super::feed::stored_error;
use super::{
    Page, Remove, Timed, decode_at, encode_ref, gather, minus, num_of, pairs, redis_count,
    seconds_text, time_of,
};

crate::script! {
    /// Heartbeat, count and list of a presence set (see [`Presence`]).
    pub(crate) struct PresenceScript {
        name: "redis_state.collections.presence",
        keys: [set],
        args: [mode: &str, now: &str, cutoff: &str, a: &[u8], b: u64],
        returns: Value,
        lua: include_str!("lua/presence.lua"),
    }
}

/// Who is online: a sorted set of users scored by when each was last seen
/// (epoch seconds, as redis-py's `time.time()`), with a timeout after
/// which a user who sent no heartbeat is offline.
///
/// There is no sweeper process: every [`heartbeat`](Presence::heartbeat),
/// [`count`](Presence::count) and [`online`](Presence::online) call drops
/// users last seen before `now - timeout` in the same script (at most 512
/// per call, so its work stays bounded; reads filter by the cutoff, so a
/// user left for the next call is never reported), and each heartbeat
/// gives the set a TTL of `timeout`, so a set nobody beats on goes away.
///
/// This replaces the seed's `users:online` set with a `heartbeat` key per
/// user: members of that set never leave unless `user_offline` is called
/// (a crashed client stays online for ever), and the `expire` on a key
/// nobody sets does nothing. A sorted set cannot be read by the seed's
/// `smembers`/`scard`; redis-py reads it with `zcount(key, cutoff, "+inf")`
/// and `zrevrangebyscore`.
///
/// Redis 7.4 and Valkey 9 can expire hash fields (`HEXPIRE`): a hash of
/// users whose fields expire by themselves would need no pruning at all.
/// Redis 7.0, which this crate supports, has no such command, so the
/// sorted set is the layout; it also answers "who was seen last" in order.
///
/// Keys: `presence:<name>` (escaped), or the key of
/// [`key_layout`](Presence::key_layout). One set holds a whole site or room:
/// it lives on one Cluster slot.
pub struct Presence<U = String> {
    base: String,
    ns: Option<Namespace>,
    timeout: Duration,
    _u: PhantomData<fn() -> U>,
}

impl<U> Clone for Presence<U> {
    fn clone(&self) -> Self {
        Presence {
            base: self.base.clone(),
            ns: self.ns.clone(),
            timeout: self.timeout,
            _u: PhantomData,
        }
    }
}

impl<U> std::fmt::Debug for Presence<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("key", &self.key())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<U> Presence<U> {
    /// The key.
    pub fn key(&self) -> String {
        match &self.ns {
            Some(ns) => format!("{}:{}", ns.as_str(), self.base),
            None => self.base.clone(),
        }
    }
}

impl<U: FieldValue> Presence<U> {
    /// The presence set named `name`: users seen within `timeout` are
    /// online.
    pub fn new(name: impl KeyPart, timeout: Duration) -> Self {
        let mut id = IdBuf::new();
        name.write_key_part(&mut id);
        Presence {
            base: format!("presence:{}", id.joined()),
            ns: None,
            timeout,
            _u: PhantomData,
        }
    }

    /// Keys the set at `key`, used as given (with the namespace in front
    /// when one is set): `key_layout("users:online:since")`.
    pub fn key_layout(mut self, key: &str) -> Self {
        self.base = key.to_owned();
        self
    }

    /// Puts the key in namespace `ns` (`<ns>:<key>`).
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.ns = Some(ns.clone());
        self
    }

    /// The timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn call(&self, mode: &'static str, member: Result<Vec<u8>>, b: u64) -> Beat {
        Beat {
            key: self.key(),
            mode,
            member: member.map_err(Some),
            b,
            timeout: self.timeout,
            now: None,
        }
    }

    /// Marks `user` online now (or at [`Heartbeat::now`]), prunes, and
    /// renews the set's TTL; the output is the number online. One
    /// `EVALSHA` (`ZADD`, `PEXPIRE`, `ZCOUNT`, `ZREMRANGEBYRANK` when some
    /// are stale, `ZCOUNT`), one round trip.
    pub fn heartbeat<Q: MemberRef<U> + ?Sized>(&self, user: &Q) -> Heartbeat {
        Heartbeat {
            beat: self.call(
                "beat",
                encode_ref::<U, Q>(user, "user"),
                millis(self.timeout),
            ),
        }
    }

    /// The number of users online (pruning first). One `EVALSHA`, one
    /// round trip.
    pub fn count(&self) -> OnlineCount {
        OnlineCount {
            beat: self.call("count", Ok(Vec::new()), 0),
        }
    }

    /// Users online, most recently seen first, `count` of them from
    /// `offset`, with when each was last seen (pruning first). Users that
    /// do not decode as `U` are skipped and counted
    /// ([`Online::strict`]). One `EVALSHA` (`ZREVRANGEBYSCORE … LIMIT`),
    /// one round trip.
    pub fn online(&self, offset: u64, count: u64) -> Online<U> {
        Online {
            beat: self.call(
                "list",
                Ok(redis_count(offset).to_string().into_bytes()),
                redis_count(count) as u64,
            ),
            strict: false,
            _u: PhantomData,
        }
    }

    /// Whether `user` was seen within the timeout. One `ZSCORE`, one round
    /// trip (nothing is pruned).
    pub fn is_online<Q: MemberRef<U> + ?Sized>(&self, user: &Q) -> IsOnline {
        IsOnline {
            key: self.key(),
            user: encode_ref::<U, Q>(user, "user").map_err(Some),
            timeout: self.timeout,
            now: None,
        }
    }

    /// Marks `user` offline now; `true` when it was in the set. One
    /// `ZREM`, one round trip.
    pub fn leave<Q: MemberRef<U> + ?Sized>(&self, user: &Q) -> Remove {
        Remove::new("ZREM", self.key(), encode_ref::<U, Q>(user, "user"))
    }
}

impl_namespaced!([U: FieldValue] Presence<U>);

/// The script call behind heartbeat, count and list.
#[derive(Debug)]
struct Beat {
    key: String,
    mode: &'static str,
    member: Result<Vec<u8>, Option<Error>>,
    b: u64,
    timeout: Duration,
    now: Option<SystemTime>,
}

impl Beat {
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let a = match &mut self.member {
            Ok(m) => m,
            Err(e) => return Err(stored_error(e, "a presence call")),
        };
        let now = self.now.unwrap_or_else(SystemTime::now);
        PresenceScript::new(
            &self.key,
            self.mode,
            &seconds_text(now),
            &seconds_text(minus(now, self.timeout)),
            &a[..],
            self.b,
        )
        .prepare(plan)
    }
}

/// See [`Presence::heartbeat`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct Heartbeat {
    beat: Beat,
}

impl Heartbeat {
    /// The current time for this call, instead of `SystemTime::now()`.
    pub fn now(mut self, now: SystemTime) -> Self {
        self.beat.now = Some(now);
        self
    }
}

impl Operation for Heartbeat {
    type Output = u64;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.beat.prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        replies.next("a presence heartbeat").map(Step::Done)
    }
}

/// See [`Presence::count`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct OnlineCount {
    beat: Beat,
}

impl OnlineCount {
    /// The current time for this call, instead of `SystemTime::now()`.
    pub fn now(mut self, now: SystemTime) -> Self {
        self.beat.now = Some(now);
        self
    }
}

impl Operation for OnlineCount {
    type Output = u64;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.beat.prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        replies.next("a presence count").map(Step::Done)
    }
}

/// See [`Presence::online`].
#[must_use = "an operation does nothing until it is run"]
pub struct Online<U> {
    beat: Beat,
    strict: bool,
    _u: PhantomData<fn() -> U>,
}

impl<U> std::fmt::Debug for Online<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Online")
            .field("beat", &self.beat)
            .field("strict", &self.strict)
            .finish()
    }
}

impl<U> Online<U> {
    /// The current time for this call, instead of `SystemTime::now()`.
    pub fn now(mut self, now: SystemTime) -> Self {
        self.beat.now = Some(now);
        self
    }

    /// Fails the read with the [`Error::Decode`] of the first user that
    /// does not decode instead of skipping it.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }
}

impl<U: FieldValue> Operation for Online<U> {
    type Output = Page<Timed<U>>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.beat.prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let key = &self.beat.key;
        let mut page = Page::new();
        for (member, score) in pairs(replies.next_value()?, "a presence list")? {
            let at = num_of(&score).ok_or_else(|| Error::unexpected("a presence list", &score))?;
            let entry = decode_at::<U, Plain>(
                key,
                || format!("member {}", crate::error::preview_value(&member)),
                &member,
            )
            .map(|value| Timed {
                value,
                at: time_of(at),
            });
            gather(&mut page, self.strict, key, entry)?;
        }
        Ok(Step::Done(page))
    }
}

/// See [`Presence::is_online`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct IsOnline {
    key: String,
    user: Result<Vec<u8>, Option<Error>>,
    timeout: Duration,
    now: Option<SystemTime>,
}

impl IsOnline {
    /// The current time for this call, instead of `SystemTime::now()`.
    pub fn now(mut self, now: SystemTime) -> Self {
        self.now = Some(now);
        self
    }
}

impl Operation for IsOnline {
    type Output = bool;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let user = match &mut self.user {
            Ok(u) => u,
            Err(e) => return Err(stored_error(e, "a presence read")),
        };
        plan.cmd("ZSCORE", &self.key).arg(&user[..]);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        let v = replies.next_value()?;
        if v == Value::Nil {
            return Ok(Step::Done(false));
        }
        let seen = num_of(&v).ok_or_else(|| Error::unexpected("a presence read", &v))?;
        let now = self.now.unwrap_or_else(SystemTime::now);
        let cutoff = minus(now, self.timeout);
        Ok(Step::Done(time_of(seen) > cutoff))
    }
}
