//! Plain values and counters: one Redis string per key, holding exactly what
//! other clients store there.
//!
//! A [`StringValue<T>`] is a typed string at a key the application chooses
//! (`greeting`, `config:motd`, `user:42:credits`): the value is the plain
//! form of `T` (integers in decimal, floats as Python's `repr` writes them,
//! booleans, text; or JSON with `StringValue<T, Json>`, or any
//! [`Codec`]), so `redis-cli` and redis-py read and write the same bytes (the
//! `StringCache.fetch` / `save` wrapper of the seed documents, `GET` and
//! `SET … EX`). A [`Counter`] is an integer (or float) that `INCRBY` (or
//! `INCRBYFLOAT`) changes on the server.
//!
//! | operation | commands | round trips |
//! |---|---|---|
//! | [`StringValue::get`] | `GET` | 1 |
//! | [`StringValue::set`] | `SET … KEEPTTL` (or `PX ttl`, or no TTL) | 1 |
//! | [`StringValue::get_or_set`] | `SET … NX GET [PX ttl]` | 1 |
//! | [`StringValue::delete`] / [`Counter::delete`] | `DEL` | 1 |
//! | [`StringValue::ttl`] / [`Counter::ttl`] | `PTTL` | 1 |
//! | [`Counter::get`] | `GET` | 1 |
//! | [`Counter::incr`] | `INCRBY` / `INCRBYFLOAT` (with [`Incr::ttl`]: one `EVALSHA` adding `PEXPIRE` when the counter has no TTL) | 1 |
//! | [`Counter::set`] | `SET … KEEPTTL` (or `PX ttl`, or no TTL) | 1 |
//!
//! # TTLs
//!
//! Writes keep the TTL the key has unless told otherwise (DESIGN principle
//! 5): [`set`](StringValue::set) sends `KEEPTTL`, [`SetValue::ttl`] gives a
//! new one per call, [`SetValue::persist`] removes it. (Redis' own `SET`
//! without options, and so the seed's `save(key, value)` with no
//! `ttl_seconds`, drops the TTL; `persist` is that behaviour, asked for by
//! name.) `INCRBY` and `INCRBYFLOAT` keep a TTL by themselves: a counter
//! made with a TTL keeps it however often it is incremented, where the
//! seed's increment script (`GET`, add, `SET`) drops it.
//!
//! # Keys
//!
//! The key is used as given (with `<namespace>:` in front when a
//! [`Namespace`] is set), since these are the layouts other clients chose.
//! When a key is built from user input, escape that part with
//! [`keys::escape`](fn@crate::keys::escape).
//!
//! ```no_run
//! use std::time::Duration;
//! use redis_state::value::{Counter, StringValue};
//! # use redis_state::prelude::*;
//! # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
//! let motd = StringValue::<String>::new("config:motd");
//! motd.set(&"maintenance at noon".to_owned())
//!     .ttl(Duration::from_secs(3600))
//!     .run(con)?;
//! assert_eq!(motd.get().run(con)?.as_deref(), Some("maintenance at noon"));
//!
//! let views = Counter::<i64>::new("counter:views");
//! let n = views.incr(1).ttl(Duration::from_secs(86_400)).run(con)?;
//! # let _ = n; Ok(()) }
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use redis::Value;

use crate::codec::{Codec, FieldValue, Plain};
use crate::error::{DecodeError, Error, Result};
use crate::hash::Ttl;
use crate::keys::{Namespace, impl_namespaced};
use crate::op::{Operation, Plan, Replies, Step};
use crate::random::millis;

crate::script! {
    /// `INCRBY` or `INCRBYFLOAT`, then `PEXPIRE` when the counter has no
    /// TTL; the new value (as the increment command returned it).
    pub(crate) struct IncrWithTtl {
        name: "redis_state.value.incr_with_ttl",
        keys: [counter],
        args: [command: &str, by: &[u8], ttl_ms: u64],
        returns: Value,
        lua: include_str!("lua/incr_with_ttl.lua"),
    }
}

fn full_key(ns: Option<&Namespace>, key: &str) -> String {
    match ns {
        Some(ns) => format!("{}:{key}", ns.as_str()),
        None => key.to_owned(),
    }
}

fn decode_with<T, C: Codec<T>>(key: &str, raw: &[u8]) -> Result<T> {
    C::decode(raw).map_err(|e| {
        let mut err = DecodeError::new(key, None, C::EXPECTED, Some(raw));
        if let Some(detail) = e.detail {
            err = err.with_detail(detail);
        }
        err.into()
    })
}

fn encode_with<T, C: Codec<T>>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    C::encode(value, &mut out).map_err(|message| Error::Encode {
        model: std::any::type_name::<T>(),
        field: "value",
        message,
    })?;
    Ok(out)
}

fn bytes_of(key: &str, v: &Value) -> Result<Option<Vec<u8>>> {
    match v {
        Value::Nil => Ok(None),
        Value::BulkString(b) => Ok(Some(b.clone())),
        Value::SimpleString(s) => Ok(Some(s.as_bytes().to_vec())),
        Value::Int(n) => Ok(Some(n.to_string().into_bytes())),
        other => Err(Error::UnexpectedReply {
            context: "a string value",
            found: format!("{other:?} at `{key}`"),
        }),
    }
}

// ---------------------------------------------------------------------------
// StringValue

/// A typed string at one key; see the [module docs](self). Cheap to clone;
/// holds no connection.
pub struct StringValue<T, C = Plain> {
    key: String,
    _t: PhantomData<fn() -> (T, C)>,
}

impl<T, C> Clone for StringValue<T, C> {
    fn clone(&self) -> Self {
        StringValue {
            key: self.key.clone(),
            _t: PhantomData,
        }
    }
}

impl<T, C> std::fmt::Debug for StringValue<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StringValue")
            .field("key", &self.key)
            .finish()
    }
}

impl<T, C: Codec<T>> StringValue<T, C> {
    /// The value at `key`, used as given.
    pub fn new(key: impl Into<String>) -> Self {
        StringValue {
            key: key.into(),
            _t: PhantomData,
        }
    }

    /// Puts the key in namespace `ns` (`<ns>:<key>`).
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.key = full_key(Some(ns), &self.key);
        self
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Reads the value; `None` when the key does not exist. A value that is
    /// not in `T`'s form is an [`Error::Decode`] naming the key. One `GET`,
    /// one round trip.
    pub fn get(&self) -> GetValue<T, C> {
        GetValue {
            key: self.key.clone(),
            _t: PhantomData,
        }
    }

    /// Writes `value`, keeping the TTL the key has (`SET … KEEPTTL`); give
    /// it a TTL with [`SetValue::ttl`] or remove it with
    /// [`SetValue::persist`]. One `SET`, one round trip.
    pub fn set(&self, value: &T) -> SetValue {
        SetValue::new(&self.key, encode_with::<T, C>(value))
    }

    /// Stores `value` if the key does not exist, else reads what is there,
    /// atomically: the output is the value found, or `None` when `value`
    /// was stored (with the TTL of [`GetOrSet::ttl`], if given). This is the
    /// get-or-set script of the seed documents as one command. One
    /// `SET … NX GET`, one round trip.
    pub fn get_or_set(&self, value: &T) -> GetOrSet<T, C> {
        GetOrSet {
            key: self.key.clone(),
            value: encode_with::<T, C>(value),
            ttl: None,
            _t: PhantomData,
        }
    }

    /// Deletes the value; `true` when it existed. One `DEL`, one round trip.
    pub fn delete(&self) -> DeleteValue {
        DeleteValue {
            key: self.key.clone(),
        }
    }

    /// The remaining time to live. One `PTTL`, one round trip.
    pub fn ttl(&self) -> TtlValue {
        TtlValue {
            key: self.key.clone(),
        }
    }
}

/// See [`StringValue::get`].
#[must_use = "an operation does nothing until it is run"]
pub struct GetValue<T, C = Plain> {
    key: String,
    _t: PhantomData<fn() -> (T, C)>,
}

impl<T, C> std::fmt::Debug for GetValue<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetValue").field("key", &self.key).finish()
    }
}

impl<T, C: Codec<T>> Operation for GetValue<T, C> {
    type Output = Option<T>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.cmd("GET", &self.key);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Option<T>>> {
        let v = replies.next_value()?;
        match bytes_of(&self.key, &v)? {
            None => Ok(Step::Done(None)),
            Some(raw) => decode_with::<T, C>(&self.key, &raw).map(|t| Step::Done(Some(t))),
        }
    }
}

/// What a write does with the key's TTL.
#[derive(Debug, Clone, Copy)]
enum TtlChoice {
    Keep,
    Set(u64),
    Remove,
}

/// See [`StringValue::set`] and [`Counter::set`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct SetValue {
    key: String,
    value: Result<Vec<u8>>,
    ttl: TtlChoice,
}

impl SetValue {
    fn new(key: &str, value: Result<Vec<u8>>) -> Self {
        SetValue {
            key: key.to_owned(),
            value,
            ttl: TtlChoice::Keep,
        }
    }

    /// Gives the key the TTL `ttl` (`SET … PX`), replacing any it had: the
    /// `ttl_seconds` of `StringCache.save`, in milliseconds. At least 1 ms;
    /// longer TTLs than 2^53 − 1 ms (about 285,000 years) are sent as that.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = TtlChoice::Set(millis(ttl));
        self
    }

    /// Removes the key's TTL (a plain `SET`): what `SET key value` without
    /// options does in every client.
    pub fn persist(mut self) -> Self {
        self.ttl = TtlChoice::Remove;
        self
    }
}

impl Operation for SetValue {
    type Output = ();

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let value = match &mut self.value {
            Ok(v) => v,
            Err(e) => {
                return Err(std::mem::replace(
                    e,
                    Error::InvalidArgument {
                        operation: "a string value write",
                        reason: "this write already failed to encode".to_owned(),
                    },
                ));
            }
        };
        let cmd = plan.cmd("SET", &self.key).arg(&value[..]);
        match self.ttl {
            TtlChoice::Keep => {
                cmd.arg("KEEPTTL");
            }
            TtlChoice::Set(ms) => {
                cmd.arg("PX").arg(ms);
            }
            TtlChoice::Remove => {}
        }
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<()>> {
        replies.next_value()?;
        Ok(Step::Done(()))
    }
}

/// See [`StringValue::get_or_set`].
#[must_use = "an operation does nothing until it is run"]
pub struct GetOrSet<T, C = Plain> {
    key: String,
    value: Result<Vec<u8>>,
    ttl: Option<u64>,
    _t: PhantomData<fn() -> (T, C)>,
}

impl<T, C> std::fmt::Debug for GetOrSet<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetOrSet")
            .field("key", &self.key)
            .field("ttl_ms", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<T, C> GetOrSet<T, C> {
    /// The TTL the value gets when it is stored (a value found keeps its
    /// own). Saturates like [`SetValue::ttl`].
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(millis(ttl));
        self
    }
}

impl<T, C: Codec<T>> Operation for GetOrSet<T, C> {
    type Output = Option<T>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let value = match &mut self.value {
            Ok(v) => v,
            Err(e) => {
                return Err(std::mem::replace(
                    e,
                    Error::InvalidArgument {
                        operation: "a string value write",
                        reason: "this write already failed to encode".to_owned(),
                    },
                ));
            }
        };
        let cmd = plan
            .cmd("SET", &self.key)
            .arg(&value[..])
            .arg("NX")
            .arg("GET");
        if let Some(ms) = self.ttl {
            cmd.arg("PX").arg(ms);
        }
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Option<T>>> {
        let v = replies.next_value()?;
        match bytes_of(&self.key, &v)? {
            None => Ok(Step::Done(None)),
            Some(raw) => decode_with::<T, C>(&self.key, &raw).map(|t| Step::Done(Some(t))),
        }
    }
}

/// See [`StringValue::delete`] and [`Counter::delete`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct DeleteValue {
    key: String,
}

impl Operation for DeleteValue {
    type Output = bool;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.cmd("DEL", &self.key);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        replies.next::<i64>("DEL").map(|n| Step::Done(n > 0))
    }
}

/// See [`StringValue::ttl`] and [`Counter::ttl`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct TtlValue {
    key: String,
}

impl Operation for TtlValue {
    type Output = Ttl;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.cmd("PTTL", &self.key);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Ttl>> {
        let ms: i64 = replies.next("PTTL")?;
        Ok(Step::Done(match ms {
            -2 => Ttl::Missing,
            -1 => Ttl::Persistent,
            ms => Ttl::Expires(Duration::from_millis(ms.max(0) as u64)),
        }))
    }
}

// ---------------------------------------------------------------------------
// Counter

/// The number types a [`Counter`] holds: `i64` (`INCRBY`) and `f64`
/// (`INCRBYFLOAT`), Redis' own counter types.
pub trait CounterNumber: FieldValue + Copy + Default + sealed::Sealed {
    /// The increment command.
    const INCR: &'static str;
}

impl CounterNumber for i64 {
    const INCR: &'static str = "INCRBY";
}

impl CounterNumber for f64 {
    const INCR: &'static str = "INCRBYFLOAT";
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for i64 {}
    impl Sealed for f64 {}
}

/// A number at one key, changed on the server; see the [module
/// docs](self). Cheap to clone; holds no connection.
pub struct Counter<T = i64> {
    key: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Counter<T> {
    fn clone(&self) -> Self {
        Counter {
            key: self.key.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Counter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counter").field("key", &self.key).finish()
    }
}

impl<T: CounterNumber> Counter<T> {
    /// The counter at `key`, used as given.
    pub fn new(key: impl Into<String>) -> Self {
        Counter {
            key: key.into(),
            _t: PhantomData,
        }
    }

    /// Puts the key in namespace `ns` (`<ns>:<key>`).
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.key = full_key(Some(ns), &self.key);
        self
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The current value; 0 when the key does not exist. One `GET`, one
    /// round trip.
    pub fn get(&self) -> GetCounter<T> {
        GetCounter {
            key: self.key.clone(),
            _t: PhantomData,
        }
    }

    /// Adds `by` (negative to subtract) and returns the new value; a
    /// missing counter starts at 0. Keeps the TTL the key has; with
    /// [`Incr::ttl`] a counter without one (a new counter) gets one. One
    /// `INCRBY` (`INCRBYFLOAT` for `f64`), one round trip. A value that is
    /// not a number, or a sum out of range, is the server's error.
    pub fn incr(&self, by: T) -> Incr<T> {
        Incr {
            key: self.key.clone(),
            by,
            ttl: None,
            call: None,
        }
    }

    /// Sets the value, keeping the key's TTL unless told otherwise (see
    /// [`SetValue`]). One `SET`, one round trip.
    pub fn set(&self, value: T) -> SetValue {
        SetValue::new(&self.key, encode_with::<T, Plain>(&value))
    }

    /// Deletes the counter; `true` when it existed. One `DEL`, one round
    /// trip.
    pub fn delete(&self) -> DeleteValue {
        DeleteValue {
            key: self.key.clone(),
        }
    }

    /// The remaining time to live. One `PTTL`, one round trip.
    pub fn ttl(&self) -> TtlValue {
        TtlValue {
            key: self.key.clone(),
        }
    }
}

/// See [`Counter::get`].
#[must_use = "an operation does nothing until it is run"]
pub struct GetCounter<T> {
    key: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for GetCounter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetCounter")
            .field("key", &self.key)
            .finish()
    }
}

impl<T: CounterNumber> Operation for GetCounter<T> {
    type Output = T;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.cmd("GET", &self.key);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<T>> {
        let v = replies.next_value()?;
        match bytes_of(&self.key, &v)? {
            None => Ok(Step::Done(T::default())),
            Some(raw) => decode_with::<T, Plain>(&self.key, &raw).map(Step::Done),
        }
    }
}

/// See [`Counter::incr`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct Incr<T> {
    key: String,
    by: T,
    ttl: Option<u64>,
    call: Option<IncrWithTtl>,
}

impl<T> Incr<T> {
    /// Gives the counter the TTL `ttl` when it has none (it was just
    /// created, or was written without one); a TTL it has is kept, so a
    /// window opened by the first increment ends on time. One `EVALSHA`
    /// (`INCRBY`, `PTTL`, `PEXPIRE` when there was no TTL) instead of the
    /// plain `INCRBY`; still one round trip. Saturates like
    /// [`SetValue::ttl`].
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(millis(ttl));
        self
    }
}

impl<T: CounterNumber> Operation for Incr<T> {
    type Output = T;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let by = encode_with::<T, Plain>(&self.by)?;
        match self.ttl {
            None => {
                plan.cmd(T::INCR, &self.key).arg(&by[..]);
                Ok(())
            }
            Some(ms) => {
                let call = self
                    .call
                    .insert(IncrWithTtl::new(&self.key, T::INCR, &by[..], ms));
                call.prepare(plan)
            }
        }
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<T>> {
        let v = match &mut self.call {
            None => replies.next_value()?,
            Some(call) => match call.complete(replies)? {
                Step::Done(v) => v,
                Step::Again => return Ok(Step::Again),
            },
        };
        match bytes_of(&self.key, &v)? {
            Some(raw) => decode_with::<T, Plain>(&self.key, &raw).map(Step::Done),
            None => Err(Error::unexpected("an increment", &v)),
        }
    }
}

impl_namespaced!([T, C: Codec<T>] StringValue<T, C>, [T: CounterNumber] Counter<T>);
