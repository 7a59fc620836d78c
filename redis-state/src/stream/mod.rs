//! Typed streams: events of one Rust type in a Redis stream, with a
//! retention declared up front, and consumer groups processing them at
//! least once ([`Consumer`]).
//!
//! ```no_run
//! # use redis_state::prelude::*;
//! use redis_state::stream::{Retention, Stream};
//!
//! #[derive(RedisHash, Debug)]
//! #[redis(key = "order:{id}")]
//! struct OrderPlaced { #[redis(id)] id: u64, total: i64 }
//!
//! # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
//! let orders = Stream::<OrderPlaced>::new("{orders}:events", Retention::max_len(100_000));
//! let id = orders.add(&OrderPlaced { id: 7, total: 1200 }).run(con)?;
//! for entry in orders.range("-", "+", 10).run(con)? {
//!     println!("{} {:?}", entry.id, entry.event);
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! An event is one stream entry. With the default codec ([`Fields`], any
//! [`RedisHash`] type) each field is a plain string field of the entry, as
//! `HSET` would store it: redis-cli's `XRANGE` and redis-py's `xread` read
//! them, and entries that redis-py `xadd`s with the same fields decode.
//! With [`JsonData`] (any serde type) the entry has one field, `data`,
//! holding the event as JSON.
//!
//! # Retention is part of the declaration
//!
//! A stream is declared with a [`Retention`]: a length ([`Retention::max_len`],
//! `XADD … MAXLEN ~ n`) or an age ([`Retention::max_age`], `XADD … MINID ~
//! <now - age>`), exact or approximate. Every add trims, so the stream never
//! grows past it. That trimming ignores consumer groups; when the groups'
//! unacknowledged entries must survive it, declare
//! [`Retention::respect_groups`]: adds then stop trimming and refuse to go
//! past a hard cap ([`Error::StreamFull`]), and [`Stream::trim`] (run by
//! every [`Consumer`] now and then) trims to the retention but never below
//! the oldest entry a live group has not acknowledged. A group whose
//! consumers were all silent for longer than `dead_after` no longer holds
//! trimming back.
//!
//! Entries that do not decode give [`Error::Decode`] naming the stream, the
//! entry id and the field; a consumer moves them to the dead-letter stream.

pub(crate) mod consumer;
mod features;

use std::marker::PhantomData;
use std::time::Duration;

use redis::Value;

use crate::driver::{Async, Blocking, Deadline, Io, block_on, read_until};
use crate::error::{DecodeError, Error, Result};
use crate::exec::{AsyncExecutor, SyncExecutor};
use crate::hash::{FieldReader, FieldWriter, RedisHash};
use crate::op::{Operation, Plan, Replies, Step};
use crate::script::Script;

pub use consumer::{Ack, Consumer, ConsumerOptions, ConsumerStats, Delivery, Effect};
pub use features::{DetectStreamFeatures, StreamFeatures};

pub(crate) static ADD_CAPPED: Script = Script::new(
    "redis_state.stream.add_capped",
    include_str!("lua/add_capped.lua"),
);
static TRIM: Script = Script::new("redis_state.stream.trim", include_str!("lua/trim.lua"));
static ADD_IDEMPOTENT: Script = Script::new(
    "redis_state.stream.add_idempotent",
    include_str!("lua/add_idempotent.lua"),
);

// ---------------------------------------------------------------------------
// Codecs

/// A stream entry's fields: name and value pairs, as stored.
pub type RawFields = Vec<(Vec<u8>, Vec<u8>)>;

/// How events of type `T` become the fields of a stream entry and back.
pub trait EventCodec<T>: Send + Sync + 'static {
    /// Writes the fields of `event`.
    fn encode(event: &T, out: &mut RawFields) -> Result<()>;
    /// Reads an event; `at` names the entry for errors (`stream@id`).
    fn decode(at: &str, fields: &[(Vec<u8>, Vec<u8>)]) -> Result<T>;
    /// Writes the fields of `event` into `out` as command arguments (name,
    /// value, name, value, ...) and returns how many fields it wrote.
    /// [`Stream::add`] uses it; the default goes through
    /// [`encode`](Self::encode), and a codec may write directly, without a
    /// buffer per field.
    fn write_fields(event: &T, out: &mut redis::Cmd) -> Result<usize> {
        let mut fields = RawFields::new();
        Self::encode(event, &mut fields)?;
        for (f, v) in &fields {
            out.arg(&f[..]).arg(&v[..]);
        }
        Ok(fields.len())
    }
}

/// The default codec: a [`RedisHash`] type's fields as plain strings, one
/// entry field per hash field (absent `None` fields are left out).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fields;

impl<T: RedisHash> EventCodec<T> for Fields {
    fn encode(event: &T, out: &mut RawFields) -> Result<()> {
        let mut w = FieldWriter::new(T::SCHEMA);
        event.encode(&mut w)?;
        for (i, f) in T::SCHEMA.fields.iter().enumerate() {
            if let Some(v) = w.get(i) {
                out.push((f.name.as_bytes().to_vec(), v.to_vec()));
            }
        }
        Ok(())
    }

    fn write_fields(event: &T, out: &mut redis::Cmd) -> Result<usize> {
        let mut w = FieldWriter::new(T::SCHEMA);
        event.encode(&mut w)?;
        let mut n = 0;
        for (i, f) in T::SCHEMA.fields.iter().enumerate() {
            if let Some(v) = w.get(i) {
                out.arg(f.name).arg(v);
                n += 1;
            }
        }
        Ok(n)
    }

    fn decode(at: &str, fields: &[(Vec<u8>, Vec<u8>)]) -> Result<T> {
        let values: Vec<Value> = T::SCHEMA
            .fields
            .iter()
            .map(|f| {
                fields
                    .iter()
                    .find(|(n, _)| n == f.name.as_bytes())
                    .map_or(Value::Nil, |(_, v)| Value::BulkString(v.clone()))
            })
            .collect();
        T::decode(&FieldReader::new(T::SCHEMA, at, &values))
    }
}

/// A serde type as JSON in one entry field, `data`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonData;

impl<T: serde::Serialize + serde::de::DeserializeOwned> EventCodec<T> for JsonData {
    fn encode(event: &T, out: &mut RawFields) -> Result<()> {
        let json = serde_json::to_vec(event).map_err(|e| Error::Encode {
            model: std::any::type_name::<T>(),
            field: "data",
            message: e.to_string(),
        })?;
        out.push((b"data".to_vec(), json));
        Ok(())
    }

    fn decode(at: &str, fields: &[(Vec<u8>, Vec<u8>)]) -> Result<T> {
        let raw = fields
            .iter()
            .find(|(n, _)| n == b"data")
            .map(|(_, v)| v.as_slice());
        let Some(raw) = raw else {
            return Err(DecodeError::new(at, Some("data"), "JSON", None).into());
        };
        serde_json::from_slice(raw).map_err(|e| {
            let mut d = DecodeError::new(at, Some("data"), "JSON", Some(raw));
            d.detail = Some(e.to_string());
            d.into()
        })
    }
}

// ---------------------------------------------------------------------------
// Retention

/// How much a stream keeps; required to declare a [`Stream`]. See the
/// [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    limit: Limit,
    approx: bool,
    groups: Option<GroupAware>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    MaxLen(u64),
    MaxAge(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GroupAware {
    dead_after: Duration,
    cap: u64,
}

impl Retention {
    /// Keeps about the newest `n` entries (`MAXLEN ~ n`; at least 1).
    pub fn max_len(n: u64) -> Self {
        Retention {
            limit: Limit::MaxLen(n.max(1)),
            approx: true,
            groups: None,
        }
    }

    /// Keeps entries younger than about `age` (`MINID ~ <now - age>`, by
    /// this process's clock against the ids' server time).
    pub fn max_age(age: Duration) -> Self {
        Retention {
            limit: Limit::MaxAge(age),
            approx: true,
            groups: None,
        }
    }

    /// Trims exactly (`=` instead of `~`): slower on the server, exact length.
    pub fn exact(mut self) -> Self {
        self.approx = false;
        self
    }

    /// Never trims an entry that a live consumer group has not acknowledged
    /// (or not yet read): adds no longer trim but fail with
    /// [`Error::StreamFull`] once the stream holds `cap` entries, and
    /// [`Stream::trim`] (which consumers run every
    /// [`ConsumerOptions::trim_every`]) trims to the retention down to the
    /// oldest entry a live group still needs. A group all of whose
    /// consumers were silent for longer than `dead_after` is dead: it no
    /// longer holds trimming back.
    pub fn respect_groups(mut self, dead_after: Duration, cap: u64) -> Self {
        self.groups = Some(GroupAware {
            dead_after,
            cap: cap.max(1),
        });
        self
    }

    fn mark(&self) -> &'static str {
        if self.approx { "~" } else { "=" }
    }

    /// `MAXLEN ~ n` or `MINID ~ id` for `XADD` / `XTRIM`.
    fn args(&self) -> (&'static str, String) {
        match self.limit {
            Limit::MaxLen(n) => ("MAXLEN", n.to_string()),
            Limit::MaxAge(age) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let floor = now.saturating_sub(age);
                ("MINID", format!("{}-0", crate::random::millis(floor)))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The stream

/// A stream of events of type `T`, stored with codec `C`; see the
/// [module docs](self). Cheap to clone.
pub struct Stream<T, C = Fields> {
    key: String,
    retention: Retention,
    features: StreamFeatures,
    _t: PhantomData<fn() -> (T, C)>,
}

impl<T, C> Clone for Stream<T, C> {
    fn clone(&self) -> Self {
        Stream {
            key: self.key.clone(),
            retention: self.retention,
            features: self.features,
            _t: PhantomData,
        }
    }
}

impl<T, C> std::fmt::Debug for Stream<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("key", &self.key)
            .field("event", &std::any::type_name::<T>())
            .field("retention", &self.retention)
            .finish()
    }
}

impl<T: RedisHash> Stream<T, Fields> {
    /// A stream at `key` whose entries hold `T`'s fields as plain strings.
    pub fn new(key: impl Into<String>, retention: Retention) -> Self {
        Stream::with_codec(key, retention)
    }
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Stream<T, JsonData> {
    /// A stream at `key` whose entries hold `T` as JSON in field `data`.
    pub fn json(key: impl Into<String>, retention: Retention) -> Self {
        Stream::with_codec(key, retention)
    }
}

/// One entry of a stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Entry<T> {
    /// The entry id (`<ms>-<seq>`).
    pub id: String,
    /// The event.
    pub event: T,
}

impl<T, C: EventCodec<T>> Stream<T, C> {
    /// A stream at `key` with codec `C`.
    pub fn with_codec(key: impl Into<String>, retention: Retention) -> Self {
        Stream {
            key: key.into(),
            retention,
            features: StreamFeatures::BASELINE,
            _t: PhantomData,
        }
    }

    /// Declares which newer stream commands the server has (detect them
    /// once with [`StreamFeatures::detect`]); without it, adds use the
    /// Redis 7.0 commands, which every server has. Today it decides how
    /// [`Add::idempotent`] is done.
    pub fn with_features(mut self, features: StreamFeatures) -> Self {
        self.features = features;
        self
    }

    /// The stream key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The declared retention.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The dead-letter stream of this stream's consumer groups:
    /// `<key>:dead`.
    pub fn dead_letter_key(&self) -> String {
        format!("{}:dead", self.key)
    }

    /// Appends `event`; the output is the new entry id. One `XADD … MAXLEN|MINID
    /// ~ … * fields`, or, with [`Retention::respect_groups`], one `EVALSHA`
    /// that refuses with [`Error::StreamFull`] at the cap. Batch many adds
    /// with [`many`](crate::many): one pipeline.
    pub fn add(&self, event: &T) -> Add {
        // The whole command is written here, sized once, the fields straight
        // from the codec: no buffer per field, no second copy.
        let built = match self.retention.groups {
            Some(_) => {
                let mut fields = redis::Cmd::with_capacity(8, 64);
                C::write_fields(event, &mut fields).map(|n| (fields, n))
            }
            None => {
                let mut cmd = redis::Cmd::with_capacity(14, 96 + self.key.len());
                cmd.arg("XADD").arg(&self.key);
                match self.retention.limit {
                    Limit::MaxLen(len) => cmd.arg("MAXLEN").arg(self.retention.mark()).arg(len),
                    Limit::MaxAge(_) => {
                        let (kind, value) = self.retention.args();
                        cmd.arg(kind).arg(self.retention.mark()).arg(value)
                    }
                };
                cmd.arg("*");
                C::write_fields(event, &mut cmd).map(|n| (cmd, n))
            }
        };
        Add {
            key: self.key.clone(),
            retention: self.retention,
            idmp: self.features.xadd_idmp,
            fields: Some(built),
        }
    }

    /// Entries from `start` to `end` (ids, `-` and `+` for the ends),
    /// at most `count`, oldest first. One `XRANGE`. An entry that does not
    /// decode fails the read with [`Error::Decode`] naming it.
    pub fn range(&self, start: &str, end: &str, count: usize) -> Range<T, C> {
        Range {
            key: self.key.clone(),
            start: start.to_owned(),
            end: end.to_owned(),
            count,
            rev: false,
            _t: PhantomData,
        }
    }

    /// [`range`](Self::range) newest first (`XREVRANGE end start`).
    pub fn rev_range(&self, end: &str, start: &str, count: usize) -> Range<T, C> {
        Range {
            key: self.key.clone(),
            start: start.to_owned(),
            end: end.to_owned(),
            count,
            rev: true,
            _t: PhantomData,
        }
    }

    /// Up to `count` entries after id `after` (`0` for the start), without
    /// waiting: one `XREAD COUNT n STREAMS key after`.
    pub fn read(&self, after: &str, count: usize) -> Read<T, C> {
        Read {
            key: self.key.clone(),
            after: after.to_owned(),
            count,
            block: None,
            _t: PhantomData,
        }
    }

    /// Waits up to `timeout` for entries after `after` (`$` is not
    /// accepted: pass the last id seen, or `0`). On a blocking connection,
    /// `XREAD BLOCK` in slices of at most 400 ms; never blocks a shared
    /// async connection (it polls it; see [`driver`](crate::driver)).
    /// Empty when nothing came.
    pub fn read_wait<Con: SyncExecutor + ?Sized>(
        &self,
        con: &mut Con,
        after: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Entry<T>>>
    where
        T: Send,
    {
        block_on(self.wait_proc(&mut Blocking::new(con), after, count, timeout))
    }

    /// [`read_wait`](Self::read_wait), awaited.
    pub async fn read_wait_async<Con: AsyncExecutor + ?Sized>(
        &self,
        con: &mut Con,
        after: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Entry<T>>>
    where
        T: Send,
    {
        self.wait_proc(&mut Async::new(con), after, count, timeout)
            .await
    }

    async fn wait_proc<I: Io>(
        &self,
        io: &mut I,
        after: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Entry<T>>>
    where
        T: Send,
    {
        let got = read_until(io, Deadline::after(timeout), |block| {
            Read::<T, C> {
                key: self.key.clone(),
                after: after.to_owned(),
                count,
                block,
                _t: PhantomData,
            }
            .map(|v: Vec<Entry<T>>| (!v.is_empty()).then_some(v))
        })
        .await?;
        Ok(got.unwrap_or_default())
    }

    /// The number of entries (`XLEN`).
    pub fn len(&self) -> crate::op::CommandOp<u64> {
        crate::op::command("XLEN", &self.key)
    }

    /// Trims to the retention without dropping what a live consumer group
    /// still needs (see [`Retention::respect_groups`]; the group rule
    /// applies whatever the retention says). One `EVALSHA` whose work is
    /// bounded by the number of groups and consumers and, for a length
    /// limit, by the length kept. The output is the number of entries
    /// removed.
    pub fn trim(&self) -> TrimOp {
        let dead_after = self
            .retention
            .groups
            .map_or(Duration::from_secs(600), |g| g.dead_after);
        TrimOp {
            key: self.key.clone(),
            retention: self.retention,
            dead_after,
        }
    }

    /// The consumer group `name` of this stream.
    pub fn group(&self, name: impl Into<String>) -> Group<T, C> {
        Group {
            stream: self.clone(),
            name: name.into(),
        }
    }
}

/// See [`Stream::add`].
#[derive(Debug)]
pub struct Add {
    key: String,
    retention: Retention,
    /// The stream was declared on a server with `XADD … IDMP`.
    idmp: bool,
    /// The whole `XADD` (or, for the capped-add script, the fields as
    /// arguments: name, value, ...), and how many fields.
    fields: Option<Result<(redis::Cmd, usize)>>,
}

impl Add {
    /// Makes the add idempotent: a repeat of the same `(producer, iid)`
    /// (a retry after a lost reply, a producer restarted mid-batch) adds
    /// nothing and returns the first add's entry id, as long as the first
    /// is remembered: for 100 s and the newest 100 ids per producer.
    ///
    /// * On a stream declared [`with_features`](Stream::with_features) of a
    ///   server with `XADD … IDMP` (Redis 8.6), and not
    ///   [`respect_groups`](Retention::respect_groups): `XADD key IDMP
    ///   producer iid …`; the bounds are the stream's `IDMP-DURATION` and
    ///   `IDMP-MAXSIZE` (defaults 100 s and 100, `XCFGSET` changes them).
    /// * Otherwise one script (Redis 7.0): the ids are remembered in two
    ///   keys of the stream's slot per producer, `<stream>:idmp:<producer>`
    ///   (a hash iid → entry id) and `…:at` (a sorted set by the server's
    ///   time), expiring after the window; with `respect_groups`, a repeat
    ///   is answered before the cap is checked (a retry of an add that went
    ///   in is never refused as full).
    ///
    /// What is idempotent is the add: the iid names the event, whatever
    /// its fields (a repeat with other fields still returns the first id).
    /// Once the first is forgotten, a repeat adds again. A server that
    /// refuses `IDMP` (declared wrongly, or a failover to an older server)
    /// gets the script in a second round trip. The two paths keep separate
    /// records: an add done by one is not seen by the other. `producer`
    /// and `iid` must not be empty ([`Error::InvalidArgument`]).
    pub fn idempotent(self, producer: impl Into<String>, iid: impl Into<String>) -> IdempotentAdd {
        IdempotentAdd {
            add: self,
            producer: producer.into(),
            iid: iid.into(),
            fallback: false,
            args: None,
        }
    }
}

/// How long (ms) and how many ids per producer the fallback of
/// [`Add::idempotent`] remembers: `XADD … IDMP`'s defaults.
const IDEMPOTENT_WINDOW_MS: u64 = 100_000;
const IDEMPOTENT_MOST: u64 = 100;

/// See [`Add::idempotent`].
#[derive(Debug)]
pub struct IdempotentAdd {
    add: Add,
    producer: String,
    iid: String,
    /// The server refused `IDMP`: the script from now on.
    fallback: bool,
    /// The fields (name, value, ...), kept for a second round.
    args: Option<Vec<Vec<u8>>>,
}

impl IdempotentAdd {
    /// The fields as arguments, from the command `Stream::add` wrote.
    fn fields(&mut self) -> Result<&[Vec<u8>]> {
        if self.args.is_none() {
            let (built, n) = match self.add.fields.take() {
                Some(f) => f?,
                None => return Err(Error::unexpected("an idempotent add", &Value::Nil)),
            };
            if n == 0 {
                return Err(Error::InvalidArgument {
                    operation: "Stream::add",
                    reason: format!("the event has no field to store in `{}`", self.add.key),
                });
            }
            let all: Vec<Vec<u8>> = built
                .args_iter()
                .filter_map(|a| match a {
                    redis::Arg::Simple(b) => Some(b.to_vec()),
                    _ => None,
                })
                .collect();
            let skip = all.len().saturating_sub(2 * n);
            self.args = Some(all.into_iter().skip(skip).collect());
        }
        Ok(self.args.as_deref().unwrap_or_default())
    }

    /// The keys the fallback remembers ids in, in the stream's slot.
    fn seen_keys(&self) -> Result<[String; 3]> {
        let key = &self.add.key;
        let slot = crate::keys::key_slot(key.as_bytes());
        let tagged = format!("{key}:idmp:");
        let base = if crate::keys::key_slot(tagged.as_bytes()) == slot {
            key.clone()
        } else {
            format!("{{{key}}}")
        };
        let seen = format!("{base}:idmp:{}", self.producer);
        let at = format!("{seen}:at");
        if crate::keys::key_slot(seen.as_bytes()) != slot {
            return Err(Error::InvalidArgument {
                operation: "Add::idempotent",
                reason: format!(
                    "no key beside `{key}` shares its Cluster slot: give the stream key a hash tag"
                ),
            });
        }
        Ok([key.clone(), seen, at])
    }
}

impl Operation for IdempotentAdd {
    type Output = String;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if self.producer.is_empty() || self.iid.is_empty() {
            return Err(Error::InvalidArgument {
                operation: "Add::idempotent",
                reason: format!(
                    "the producer and the idempotent id must not be empty (producer `{}`, iid `{}`)",
                    self.producer, self.iid
                ),
            });
        }
        let retention = self.add.retention;
        let use_idmp = self.add.idmp && !self.fallback && retention.groups.is_none();
        let fields = self.fields()?.to_vec();
        if use_idmp {
            use redis::streams::{StreamAddOptions, StreamTrimStrategy, StreamTrimmingMode};
            let mode = if retention.approx {
                StreamTrimmingMode::Approx
            } else {
                StreamTrimmingMode::Exact
            };
            let trim = match retention.limit {
                Limit::MaxLen(n) => {
                    StreamTrimStrategy::maxlen(mode, usize::try_from(n).unwrap_or(usize::MAX))
                }
                Limit::MaxAge(_) => StreamTrimStrategy::minid(mode, retention.args().1),
            };
            let options = StreamAddOptions::default()
                .idmp(&self.producer, &self.iid)
                .trim(trim);
            let cmd = redis::Cmd::xadd_options(&self.add.key, "*", &fields, &options);
            plan.cmd_built(cmd, self.add.key.as_bytes());
            return Ok(());
        }
        let keys = self.seen_keys()?;
        let (kind, value) = match retention.groups {
            Some(_) => ("", String::new()),
            None => retention.args(),
        };
        let cmd = plan.script(&ADD_IDEMPOTENT, &keys)?;
        cmd.arg(&self.iid)
            .arg(IDEMPOTENT_WINDOW_MS)
            .arg(IDEMPOTENT_MOST)
            .arg(retention.groups.map_or(0, |g| g.cap))
            .arg(kind)
            .arg(retention.mark())
            .arg(value);
        for f in &fields {
            cmd.arg(&f[..]);
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<String>> {
        let reply = replies.next_raw()?;
        let refused = self.add.idmp
            && !self.fallback
            && self.add.retention.groups.is_none()
            && matches!(&reply, Value::ServerError(e) if e.code() == "ERR");
        if refused {
            // An older server (no `IDMP`): it added nothing.
            self.fallback = true;
            return Ok(Step::Again);
        }
        added(reply, &self.add.key).map(Step::Done)
    }
}

/// Appends the arguments of `from` to `to`.
fn append_args(to: &mut redis::Cmd, from: &redis::Cmd) {
    for a in from.args_iter() {
        if let redis::Arg::Simple(b) = a {
            to.arg(b);
        }
    }
}

impl Operation for Add {
    type Output = String;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let (built, n) = match self.fields.take() {
            Some(f) => f?,
            None => return Ok(()),
        };
        if n == 0 {
            return Err(Error::InvalidArgument {
                operation: "Stream::add",
                reason: format!("the event has no field to store in `{}`", self.key),
            });
        }
        match self.retention.groups {
            Some(g) => {
                let cmd = plan.script(&ADD_CAPPED, &[&self.key])?;
                cmd.arg(g.cap);
                append_args(cmd, &built);
            }
            None => {
                plan.cmd_built(built, self.key.as_bytes());
            }
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<String>> {
        added(replies.next_raw()?, &self.key).map(Step::Done)
    }
}

/// The entry id an `XADD` (or the capped-add script) replied, or
/// [`Error::StreamFull`].
pub(crate) fn added(reply: Value, key: &str) -> Result<String> {
    match reply {
        Value::ServerError(e) if e.code() == "FULL" => Err(Error::StreamFull {
            key: key.to_owned(),
            len: e.details().and_then(|d| d.trim().parse().ok()).unwrap_or(0),
        }),
        Value::ServerError(error) => Err(Error::Server {
            operation: "XADD".to_owned(),
            keys: vec![key.to_owned()],
            error,
        }),
        Value::BulkString(b) => String::from_utf8(b)
            .map_err(|e| Error::unexpected("XADD", &Value::BulkString(e.into_bytes()))),
        v => text(&v)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Error::unexpected("XADD", &v)),
    }
}

/// See [`Stream::range`].
#[derive(Debug)]
pub struct Range<T, C> {
    key: String,
    start: String,
    end: String,
    count: usize,
    rev: bool,
    _t: PhantomData<fn() -> (T, C)>,
}

impl<T, C: EventCodec<T>> Operation for Range<T, C> {
    type Output = Vec<Entry<T>>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let (name, a, b) = if self.rev {
            ("XREVRANGE", &self.end, &self.start)
        } else {
            ("XRANGE", &self.start, &self.end)
        };
        plan.cmd(name, &self.key)
            .arg(a)
            .arg(b)
            .arg("COUNT")
            .arg(self.count.max(1));
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let v = replies.next_value()?;
        decode_all::<T, C>(&self.key, entry_list(&v)?).map(Step::Done)
    }
}

/// See [`Stream::read`].
#[derive(Debug)]
pub struct Read<T, C> {
    key: String,
    after: String,
    count: usize,
    block: Option<Duration>,
    _t: PhantomData<fn() -> (T, C)>,
}

impl<T, C: EventCodec<T>> Operation for Read<T, C> {
    type Output = Vec<Entry<T>>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let cmd = plan.cmd_routed("XREAD", &self.key);
        cmd.arg("COUNT").arg(self.count.max(1));
        if let Some(b) = self.block {
            cmd.arg("BLOCK").arg(crate::random::millis(b).max(1));
        }
        cmd.arg("STREAMS").arg(&self.key).arg(&self.after);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let v = replies.next_value()?;
        decode_all::<T, C>(&self.key, stream_entries(&v)?).map(Step::Done)
    }
}

/// See [`Stream::trim`].
#[derive(Debug)]
pub struct TrimOp {
    key: String,
    retention: Retention,
    dead_after: Duration,
}

impl Operation for TrimOp {
    type Output = u64;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let (kind, value) = self.retention.args();
        let kind = if kind == "MAXLEN" { "maxlen" } else { "minid" };
        plan.script(&TRIM, &[&self.key])?
            .arg(kind)
            .arg(value)
            .arg(self.retention.mark())
            .arg(crate::random::millis(self.dead_after));
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        replies.next("the stream trim script").map(Step::Done)
    }
}

// ---------------------------------------------------------------------------
// Groups

/// A consumer group of a [`Stream`]. Build [`Consumer`]s from it.
pub struct Group<T, C = Fields> {
    stream: Stream<T, C>,
    name: String,
}

impl<T, C> Clone for Group<T, C> {
    fn clone(&self) -> Self {
        Group {
            stream: self.stream.clone(),
            name: self.name.clone(),
        }
    }
}

impl<T, C> std::fmt::Debug for Group<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("stream", &self.stream.key)
            .field("name", &self.name)
            .finish()
    }
}

impl<T, C: EventCodec<T>> Group<T, C> {
    /// The group name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream.
    pub fn stream(&self) -> &Stream<T, C> {
        &self.stream
    }

    /// Creates the group (and the stream) if missing, reading from the
    /// stream's start: `XGROUP CREATE key group 0 MKSTREAM`, an existing
    /// group (`BUSYGROUP`) is success. Consumers do this on start and again
    /// after `NOGROUP` (the stream or group was deleted).
    pub fn create(&self) -> CreateGroup {
        CreateGroup {
            key: self.stream.key.clone(),
            group: self.name.clone(),
        }
    }

    /// Acknowledges entry `id` (`XACK`); the output is 1 when it was pending.
    pub fn ack(&self, id: &str) -> crate::op::CommandOp<u64> {
        crate::op::command("XACK", &self.stream.key)
            .arg(&self.name)
            .arg(id)
    }

    /// The number of entries delivered to the group and not acknowledged
    /// (`XPENDING key group`, summary form).
    pub fn pending(&self) -> Pending {
        Pending {
            key: self.stream.key.clone(),
            group: self.name.clone(),
        }
    }

    /// The group as the server reports it: pending entries, lag, consumers
    /// and the oldest pending entry's idle time; `None` when the group does
    /// not exist. One round trip, two with entries pending (see
    /// [`monitor::backlog::stream_info`](crate::monitor::backlog::stream_info)).
    /// With feature `metrics`, sets the gauges
    /// `redis_state_stream_group_pending` and `redis_state_stream_group_lag`.
    pub fn info(
        &self,
    ) -> impl Operation<Output = Option<crate::monitor::backlog::GroupInfo>> + Send + use<T, C>
    {
        let name = self.name.clone();
        crate::monitor::backlog::stream_info(&self.stream.key)
            .map(move |s| s.groups.into_iter().find(|g| g.name == name))
    }

    /// A consumer named `<prefix>-<16 random hex digits>`: unique by
    /// construction, so two processes never share one consumer's pending
    /// entries; what a dead consumer held is claimed by the others
    /// (`XREADGROUP … CLAIM` or `XAUTOCLAIM`, see [`Consumer`]).
    pub fn consumer(&self, prefix: &str) -> Result<Consumer<T, C>> {
        let name = format!("{prefix}-{}", crate::random::hex_token(8)?);
        Ok(Consumer::new(self.clone(), name))
    }
}

/// See [`Group::create`].
#[derive(Debug)]
pub struct CreateGroup {
    key: String,
    group: String,
}

impl Operation for CreateGroup {
    type Output = ();
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.cmd_routed("XGROUP", &self.key)
            .arg("CREATE")
            .arg(&self.key)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM");
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<()>> {
        match replies.next_raw()? {
            Value::ServerError(e) if e.code() == "BUSYGROUP" => Ok(Step::Done(())),
            Value::ServerError(error) => Err(Error::Server {
                operation: "XGROUP CREATE".to_owned(),
                keys: vec![self.key.clone()],
                error,
            }),
            _ => Ok(Step::Done(())),
        }
    }
}

/// See [`Group::pending`].
#[derive(Debug)]
pub struct Pending {
    key: String,
    group: String,
}

impl Operation for Pending {
    type Output = u64;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.cmd("XPENDING", &self.key).arg(&self.group);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        let v = replies.next_value()?;
        match &v {
            Value::Array(parts) => match parts.first() {
                Some(Value::Int(n)) => {
                    let n = u64::try_from(*n).unwrap_or(0);
                    crate::observe::stream_group(&self.key, &self.group, n, None);
                    Ok(Step::Done(n))
                }
                _ => Err(Error::unexpected("XPENDING", &v)),
            },
            _ => Err(Error::unexpected("XPENDING", &v)),
        }
    }
}

// ---------------------------------------------------------------------------
// Replies

/// An entry as read: id and fields.
pub(crate) type RawEntry = (String, RawFields);

fn text(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

fn decode_all<T, C: EventCodec<T>>(key: &str, raw: Vec<RawEntry>) -> Result<Vec<Entry<T>>> {
    raw.into_iter()
        .map(|(id, fields)| {
            let event = C::decode(&format!("{key}@{id}"), &fields)?;
            Ok(Entry { id, event })
        })
        .collect()
}

/// Entries of an `XREAD` / `XREADGROUP` reply (RESP2 arrays or a RESP3
/// map); nil (nothing came) is no entry.
pub(crate) fn stream_entries(v: &Value) -> Result<Vec<RawEntry>> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in streams {
                match s {
                    Value::Array(pair) if pair.len() == 2 => out.extend(entry_list(&pair[1])?),
                    other => return Err(Error::unexpected("a stream read", other)),
                }
            }
            Ok(out)
        }
        Value::Map(streams) => {
            let mut out = Vec::new();
            for (_, e) in streams {
                out.extend(entry_list(e)?);
            }
            Ok(out)
        }
        other => Err(Error::unexpected("a stream read", other)),
    }
}

/// `[[id, [f, v, ...]], ...]`; entries whose fields are nil (deleted while
/// pending) come back with no field.
pub(crate) fn entry_list(v: &Value) -> Result<Vec<RawEntry>> {
    let Value::Array(items) = v else {
        return Err(Error::unexpected("a stream read", v));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let bad = || Error::unexpected("a stream entry", item);
        let Value::Array(pair) = item else {
            return Err(bad());
        };
        let id = pair
            .first()
            .and_then(text)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        let fields = match pair.get(1) {
            Some(Value::Array(kv)) => {
                let mut f = Vec::with_capacity(kv.len() / 2);
                for c in kv.chunks(2) {
                    match (c.first().and_then(text), c.get(1).and_then(text)) {
                        (Some(k), Some(v)) => f.push((k, v)),
                        _ => return Err(bad()),
                    }
                }
                f
            }
            Some(Value::Map(kv)) => {
                let mut f = Vec::with_capacity(kv.len());
                for (k, v) in kv {
                    match (text(k), text(v)) {
                        (Some(k), Some(v)) => f.push((k, v)),
                        _ => return Err(bad()),
                    }
                }
                f
            }
            Some(Value::Nil) | None => Vec::new(),
            Some(_) => return Err(bad()),
        };
        out.push((id, fields));
    }
    Ok(out)
}
