//! The cache's operations as values: each writes its commands into a
//! [`Plan`] and decodes its replies, so they run sync or async, standalone or
//! Cluster, alone or batched.

use std::marker::PhantomData;
use std::time::Duration;

use redis::Value;

use super::entry::{self, now_ms};
use super::{CacheSchema, Cached, EntryFormat, Tags, companion};
use crate::error::{Error, Result};
use crate::keys::{IdBuf, IdValue, Namespace, impl_namespaced, namespaced};
use crate::op::{Operation, Plan, Replies, Step};

crate::script! {
    /// Takes the fill lease of an entry (or reports the entry, a holder
    /// busy, a hold).
    pub(super) struct AcquireScript {
        name: "redis_state.cache.acquire",
        keys: [entry, lease, done],
        args: [token: &str, lease_ms: u64, force: &str],
        returns: Value,
        lua: include_str!("lua/acquire.lua"),
    }
}

crate::script! {
    /// Stores a loaded value if the lease is still the caller's, and hands
    /// it to the waiters.
    pub(super) struct FillScript {
        name: "redis_state.cache.fill",
        keys: [entry, lease, done],
        args: [token: &str, value: &[u8], px: u64, done_ms: u64],
        returns: i64,
        lua: include_str!("lua/fill.lua"),
    }
}

crate::script! {
    /// Gives a lease up after a failed load, telling the waiters why.
    pub(super) struct AbandonScript {
        name: "redis_state.cache.abandon",
        keys: [lease, done],
        args: [token: &str, error: &str, done_ms: u64, outcome: &str],
        returns: Value,
        lua: include_str!("lua/abandon.lua"),
    }
}

crate::script! {
    /// Stores a value, revoking a foreign fill in flight.
    pub(super) struct StoreScript {
        name: "redis_state.cache.store",
        keys: [entry, lease, done],
        args: [value: &[u8], px: u64, done_ms: u64],
        returns: Value,
        lua: include_str!("lua/store.lua"),
    }
}

crate::script! {
    /// Deletes an entry and holds fills back for a while.
    pub(super) struct InvalidateScript {
        name: "redis_state.cache.invalidate",
        keys: [entry, lease, done],
        args: [hold_ms: u64, done_ms: u64, entries_only: u8],
        returns: i64,
        lua: include_str!("lua/invalidate.lua"),
    }
}

crate::script! {
    /// Adds an entry to a tag set.
    pub(super) struct TagAddScript {
        name: "redis_state.cache.tag_add",
        keys: [tag],
        args: [entry: &str, expires_ms: i64, now_ms: i64],
        returns: Value,
        lua: include_str!("lua/tag_add.lua"),
    }
}

crate::script! {
    /// Takes the live members of a tag set, deleting it.
    pub(super) struct TagTakeScript {
        name: "redis_state.cache.tag_take",
        keys: [tag],
        args: [now_ms: i64],
        returns: Value,
        lua: include_str!("lua/tag_take.lua"),
    }
}

/// How long the wake-up stream of a key outlives its last message.
pub(super) const DONE_STREAM_MS: u64 = 60_000;

/// How long, after an invalidation, fills of the entry are not stored, by
/// default (see [`Invalidate::hold`]).
pub const DEFAULT_HOLD: Duration = Duration::from_millis(250);

pub(super) fn id_of<Q: IdValue + ?Sized>(id: &Q) -> IdBuf {
    let mut buf = IdBuf::new();
    id.write_id(&mut buf);
    buf
}

pub(super) fn entry_key(schema: &CacheSchema, ns: Option<&Namespace>, id: &IdBuf) -> String {
    schema.key(ns, id)
}

/// Milliseconds for a `PX` argument: at least 1, at most
/// [`MAX_MILLIS`](crate::random::MAX_MILLIS) (Redis refuses a TTL whose sum
/// with the current time overflows, and scripts read numbers as doubles).
fn ms(d: Duration) -> u64 {
    crate::random::millis(d)
}

namespaced!(
    [T: Cached] GetEntry<T>,
    [T: Cached] Get<T>,
    [T: Cached] Set<T>,
    [T: Cached] Invalidate<T>,
);

// ---------------------------------------------------------------------------
// Reads

/// An entry found in the cache.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Found<T> {
    /// The value, or `None` for a remembered "not found" (negative caching).
    pub value: Option<T>,
    /// Past its TTL but inside the stale window: serve it while one caller
    /// refreshes.
    pub stale: bool,
    /// How long the loader took to compute it (XFetch's delta).
    pub delta: Duration,
    /// When it stops being fresh, in milliseconds since the Unix epoch
    /// (`i64::MAX` in the plain format, where freshness is the key's TTL).
    pub fresh_until_ms: i64,
}

/// What a read found under a cache key.
pub(super) enum Decoded<T> {
    Found(Found<T>),
    /// Nothing usable: missing, another format version, or foreign bytes
    /// (logged).
    Miss,
}

/// Decodes a raw entry of `T` read at `key`. In the envelope format,
/// foreign or corrupt bytes and entries of another format version are a
/// miss; foreign bytes are logged at `warn`, old versions at `debug`. In the
/// plain format the bytes are the JSON of the value, and bytes that are not
/// are an error (another client's data, never overwritten).
pub(super) fn decode_entry<T: Cached>(key: &str, raw: &[u8], now: i64) -> Result<Decoded<T>> {
    let schema = T::SCHEMA;
    if schema.format == EntryFormat::Plain {
        return decode_plain(key, raw).map(Decoded::Found);
    }
    Ok(decode_envelope(key, raw, now))
}

/// A plain entry: the JSON of the value, fresh for as long as the key lives.
fn decode_plain<T: Cached>(key: &str, raw: &[u8]) -> Result<Found<T>> {
    // JSON's `null` is what `set_missing` writes: "not found".
    match serde_json::from_slice::<Option<T>>(raw) {
        Ok(v) => Ok(Found {
            value: v,
            stale: false,
            delta: Duration::ZERO,
            fresh_until_ms: i64::MAX,
        }),
        Err(e) => {
            let mut d = crate::error::DecodeError::new(
                key,
                None,
                "the JSON of the cached value",
                Some(raw),
            );
            d.detail = Some(e.to_string());
            Err(d.into())
        }
    }
}

fn decode_envelope<T: Cached>(key: &str, raw: &[u8], now: i64) -> Decoded<T> {
    let schema = T::SCHEMA;
    let env = match entry::parse(raw) {
        Ok(env) => env,
        Err(reason) => {
            log::warn!(
                target: "redis_state::cache",
                "ignoring `{key}` ({}): {reason}; found {}; reading it as a miss",
                schema.model,
                crate::error::preview_bytes(raw)
            );
            return Decoded::Miss;
        }
    };
    if env.version != schema.version {
        log::debug!(
            target: "redis_state::cache",
            "ignoring `{key}` ({}): format version {} is not the current {}; reading it as a miss",
            schema.model,
            env.version,
            schema.version
        );
        return Decoded::Miss;
    }
    let value = if env.negative {
        None
    } else {
        match serde_json::from_slice::<T>(env.payload) {
            Ok(v) => Some(v),
            Err(e) => {
                log::warn!(
                    target: "redis_state::cache",
                    "ignoring `{key}` ({}): the JSON does not decode ({e}); found {}; reading it as a miss",
                    schema.model,
                    crate::error::preview_bytes(env.payload)
                );
                return Decoded::Miss;
            }
        }
    };
    Decoded::Found(Found {
        value,
        stale: now >= env.fresh_until_ms,
        delta: Duration::from_millis(env.delta_ms),
        fresh_until_ms: env.fresh_until_ms,
    })
}

/// A cache key that holds another Redis type than a string (another
/// program stored a hash or a list there): an error in the plain format
/// (another client's data, never overwritten), a miss in the envelope
/// format.
pub(super) fn another_type<T: Cached>(key: &str) -> Result<Decoded<T>> {
    if T::SCHEMA.format == EntryFormat::Plain {
        return Err(crate::error::DecodeError::new(
            key,
            None,
            "a string holding the JSON of the cached value",
            Some(b"another Redis type"),
        )
        .into());
    }
    log::warn!(
        target: "redis_state::cache",
        "ignoring `{key}` ({}): it holds another Redis type; reading it as a miss",
        T::SCHEMA.model
    );
    Ok(Decoded::Miss)
}

/// Reads the reply to a `GET` of a cache key: a `WRONGTYPE` error (another
/// program stored a hash or a list there) is foreign data too.
pub(super) fn decode_get_reply<T: Cached>(key: &str, v: Value) -> Result<Decoded<T>> {
    match v {
        Value::Nil => Ok(Decoded::Miss),
        Value::BulkString(b) => decode_entry(key, &b, now_ms()),
        Value::ServerError(e) if e.code() == "WRONGTYPE" => another_type(key),
        Value::ServerError(e) => Err(Error::server("GET".to_owned(), vec![key.to_owned()], e)),
        other => Err(Error::unexpected("GET of a cache entry", &other)),
    }
}

/// Reads the entry of `id` with its metadata; see [`Cached::entry`].
pub struct GetEntry<T: Cached> {
    id: IdBuf,
    ns: Option<Namespace>,
    key: String,
    _t: PhantomData<fn() -> T>,
}

impl<T: Cached> std::fmt::Debug for GetEntry<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetEntry")
            .field("model", &T::SCHEMA.model)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<T: Cached> GetEntry<T> {
    pub(super) fn new(id: IdBuf, ns: Option<Namespace>) -> Self {
        GetEntry {
            id,
            ns,
            key: String::new(),
            _t: PhantomData,
        }
    }
}

impl<T: Cached> Operation for GetEntry<T> {
    type Output = Option<Found<T>>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.key = entry_key(T::SCHEMA, self.ns.as_ref(), &self.id);
        plan.cmd("GET", &self.key);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        Ok(Step::Done(
            match decode_get_reply::<T>(&self.key, replies.next_raw()?)? {
                Decoded::Found(f) => Some(f),
                Decoded::Miss => None,
            },
        ))
    }
}

/// Reads the value of `id`; see [`Cached::get`].
#[derive(Debug)]
pub struct Get<T: Cached> {
    inner: GetEntry<T>,
    ns: Option<Namespace>,
}

impl<T: Cached> Get<T> {
    pub(super) fn new(id: IdBuf) -> Self {
        Get {
            inner: GetEntry::new(id, None),
            ns: None,
        }
    }
}

impl<T: Cached> Operation for Get<T> {
    type Output = Option<T>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if self.ns.is_some() {
            self.inner.ns = self.ns.clone();
        }
        self.inner.prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Option<T>>> {
        Ok(match self.inner.complete(replies)? {
            Step::Done(found) => Step::Done(found.and_then(|f| f.value)),
            Step::Again => Step::Again,
        })
    }
}

// ---------------------------------------------------------------------------
// Writes

/// The Redis TTL and the fresh-until instant of a new entry.
pub(super) fn lifetimes(schema: &CacheSchema, negative: bool, now: i64) -> (u64, i64) {
    if negative {
        let ttl = schema
            .negative_ttl_ms
            .unwrap_or(schema.ttl_ms)
            .clamp(1, crate::random::MAX_MILLIS);
        return (ttl, now.saturating_add(ttl as i64));
    }
    let jitter = if schema.jitter_ms > 0 {
        fastrand::u64(0..=schema.jitter_ms)
    } else {
        0
    };
    let max = crate::random::MAX_MILLIS;
    let fresh = schema.ttl_ms.saturating_add(jitter).min(max);
    let px = fresh.saturating_add(schema.stale_window_ms()).clamp(1, max);
    (px, now.saturating_add(fresh as i64))
}

/// An encoded entry ready to be written.
pub(super) struct Encoded {
    pub(super) bytes: Vec<u8>,
    pub(super) px: u64,
    pub(super) tags: Vec<String>,
}

/// A value serialised, with its tag names, before the namespace is known.
pub(super) struct Prepared {
    /// The JSON, or `None` for "not found".
    payload: Option<Vec<u8>>,
    tags: Vec<String>,
    delta_ms: u64,
}

impl Prepared {
    pub(super) fn new<T: Cached>(value: Option<&T>, delta_ms: u64) -> Result<Self> {
        let payload = match value {
            Some(v) => Some(serde_json::to_vec(v).map_err(|e| Error::Encode {
                model: T::SCHEMA.model,
                field: "(value)",
                message: e.to_string(),
            })?),
            None => None,
        };
        let mut tags = Tags::default();
        if let Some(v) = value {
            v.write_tags(&mut tags);
        }
        Ok(Prepared {
            payload,
            tags: tags.rendered,
            delta_ms,
        })
    }

    /// The JSON of the value (`None` for "not found").
    pub(super) fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    /// The entry and the tag keys, in namespace `ns`.
    pub(super) fn encode(&self, schema: &CacheSchema, ns: Option<&Namespace>) -> Encoded {
        let now = now_ms();
        let (px, fresh_until) = lifetimes(schema, self.payload.is_none(), now);
        let bytes = match schema.format {
            // No "not found" reaches a plain entry (`remembers_misses`);
            // JSON's null stands for it if a schema built by hand asks.
            EntryFormat::Plain => self.payload.clone().unwrap_or_else(|| b"null".to_vec()),
            _ => entry::encode(
                schema.version,
                self.delta_ms,
                fresh_until,
                self.payload.as_deref(),
            ),
        };
        Encoded {
            bytes,
            px,
            tags: self
                .tags
                .iter()
                .map(|t| Tags::key_with(ns, schema.key.namespace, t))
                .collect(),
        }
    }
}

/// Adds the tag-set upkeep of an entry to `plan`: one `EVALSHA` per tag.
pub(super) fn push_tags(plan: &mut Plan, key: &str, enc: &Encoded) -> Result<()> {
    if enc.tags.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let expires = now.saturating_add(enc.px as i64);
    for tag in &enc.tags {
        TagAddScript::new(tag, key, expires, now).prepare(plan)?;
    }
    Ok(())
}

/// Reads the replies of [`push_tags`].
pub(super) fn complete_tags(replies: &mut Replies, n: usize) -> Result<()> {
    for _ in 0..n {
        replies.next_value()?;
    }
    Ok(())
}

/// Writes an entry; see [`Cached::set`].
pub struct Set<T: Cached> {
    id: IdBuf,
    ns: Option<Namespace>,
    prepared: Option<Result<Prepared>>,
    ntags: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T: Cached> std::fmt::Debug for Set<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Set")
            .field("model", &T::SCHEMA.model)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<T: Cached> Set<T> {
    /// `value` is `None` to remember "not found" (negative caching).
    pub(super) fn new(id: IdBuf, value: Option<&T>, delta_ms: u64) -> Self {
        Set {
            id,
            ns: None,
            prepared: Some(Prepared::new(value, delta_ms)),
            ntags: 0,
            _t: PhantomData,
        }
    }
}

impl<T: Cached> Set<T> {
    /// In namespace `ns`, if any.
    pub(super) fn in_namespace(mut self, ns: Option<Namespace>) -> Self {
        self.ns = ns;
        self
    }

    /// The id of the entry.
    pub(super) fn id(&self) -> &IdBuf {
        &self.id
    }

    /// The namespace the operation runs in, if one was set.
    pub(super) fn ns(&self) -> Option<&Namespace> {
        self.ns.as_ref()
    }

    /// The entry key and the value's JSON (empty for "not found"), for a
    /// write queued before the store; an encoding error is returned here
    /// (and the store is not planned afterwards).
    pub(super) fn queued_write(&mut self, context: &'static str) -> Result<(String, &[u8])> {
        if !matches!(self.prepared, Some(Ok(_))) {
            return Err(self
                .take_prepared(context)
                .err()
                .unwrap_or_else(|| prepared_twice(context)));
        }
        let key = entry_key(T::SCHEMA, self.ns.as_ref(), &self.id);
        let payload = match &self.prepared {
            Some(Ok(p)) => p.payload().unwrap_or_default(),
            _ => &[],
        };
        Ok((key, payload))
    }

    fn take_prepared(&mut self, context: &'static str) -> Result<Prepared> {
        self.prepared
            .take()
            .unwrap_or_else(|| Err(prepared_twice(context)))
    }

    /// Takes the prepared value, encoded for the store, with the entry key
    /// (for a write that plans the store itself).
    pub(super) fn take_encoded(&mut self, context: &'static str) -> Result<(String, Encoded)> {
        let prepared = self.take_prepared(context)?;
        let schema = T::SCHEMA;
        let ns = self.ns.as_ref();
        Ok((entry_key(schema, ns, &self.id), prepared.encode(schema, ns)))
    }

    /// Plans the store: the `store` script, one `tag_add` per tag.
    pub(super) fn prepare_store(&mut self, plan: &mut Plan, context: &'static str) -> Result<()> {
        let prepared = self.take_prepared(context)?;
        let schema = T::SCHEMA;
        let ns = self.ns.as_ref();
        let enc = prepared.encode(schema, ns);
        let key = entry_key(schema, ns, &self.id);
        push_store(plan, &key, &enc)?;
        push_tags(plan, &key, &enc)?;
        self.ntags = enc.tags.len();
        Ok(())
    }
}

impl<T: Cached> Operation for Set<T> {
    type Output = ();
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.prepare_store(plan, "a cache set")
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<()>> {
        replies.next_value()?;
        complete_tags(replies, self.ntags)?;
        Ok(Step::Done(()))
    }
}

fn prepared_twice(context: &'static str) -> Error {
    Error::UnexpectedReply {
        context,
        found: "prepared twice".to_owned(),
    }
}

/// Adds the `store` script call for an entry.
pub(super) fn push_store(plan: &mut Plan, key: &str, enc: &Encoded) -> Result<()> {
    let lease = companion(key, "lease");
    let done = companion(key, "done");
    StoreScript::new(key, lease, done, &enc.bytes[..], enc.px, DONE_STREAM_MS).prepare(plan)
}

// ---------------------------------------------------------------------------
// Invalidation

/// Deletes the entry of `id`; see [`Cached::invalidate`]. The output says
/// whether an entry existed.
pub struct Invalidate<T: Cached> {
    id: IdBuf,
    ns: Option<Namespace>,
    hold: Duration,
    _t: PhantomData<fn() -> T>,
}

impl<T: Cached> std::fmt::Debug for Invalidate<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invalidate")
            .field("model", &T::SCHEMA.model)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<T: Cached> Invalidate<T> {
    pub(super) fn new(id: IdBuf) -> Self {
        Invalidate {
            id,
            ns: None,
            hold: DEFAULT_HOLD,
            _t: PhantomData,
        }
    }

    /// How long after the invalidation a fill of this entry is not stored
    /// (default [`DEFAULT_HOLD`]): callers that miss in that time load from
    /// the source and return the value without caching it. It covers a
    /// change to the source of truth that lands after the invalidation (a
    /// pipeline split over Cluster nodes); `Duration::ZERO` only revokes
    /// fills already in flight.
    pub fn hold(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }
}

/// Adds the `invalidate` script call for the entry at `key`. The lease and
/// the wake-up stream are the entry's companions (same Cluster slot): a
/// revoked fill's waiters are told through the stream.
pub(crate) fn push_invalidate(plan: &mut Plan, key: &str, hold: Duration) -> Result<()> {
    push_invalidate_if(plan, key, hold, false)
}

/// [`push_invalidate`]; with `entries_only`, a key that does not hold a
/// cache entry (no entry header: another program's string, a plain-format
/// entry) is left alone and counts 0.
pub(crate) fn push_invalidate_if(
    plan: &mut Plan,
    key: &str,
    hold: Duration,
    entries_only: bool,
) -> Result<()> {
    let lease = companion(key, "lease");
    let done = companion(key, "done");
    let hold_ms = if hold.is_zero() { 0 } else { ms(hold) };
    InvalidateScript::new(
        key,
        lease,
        done,
        hold_ms,
        DONE_STREAM_MS,
        u8::from(entries_only),
    )
    .prepare(plan)
}

impl<T: Cached> Operation for Invalidate<T> {
    type Output = bool;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let key = entry_key(T::SCHEMA, self.ns.as_ref(), &self.id);
        push_invalidate(plan, &key, self.hold)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        replies
            .next::<i64>("the invalidate script")
            .map(|n| Step::Done(n > 0))
    }
}

/// Invalidates every entry that carries a tag; see
/// [`Cached::invalidate_tag`] and [`Tag`](super::Tag). The output is the
/// number of entries deleted.
///
/// Two round trips: one `EVALSHA` that takes the tag set (`ZRANGEBYSCORE` of
/// its live members, then `DEL`), then one invalidation per member (their
/// keys may live on other Cluster slots), pipelined.
#[derive(Debug)]
pub struct InvalidateTag {
    tag: String,
    ns: Option<Namespace>,
    schema_ns: Option<&'static str>,
    hold: Duration,
    members: Option<Vec<String>>,
}

impl InvalidateTag {
    pub(super) fn new(tag: String, schema_ns: Option<&'static str>) -> Self {
        InvalidateTag {
            tag,
            ns: None,
            schema_ns,
            hold: DEFAULT_HOLD,
            members: None,
        }
    }

    /// Runs in namespace `ns`.
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.ns = Some(ns.clone());
        self
    }

    /// See [`Invalidate::hold`].
    pub fn hold(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }

    pub(super) fn tag_key(&self) -> String {
        Tags::key_with(self.ns.as_ref(), self.schema_ns, &self.tag)
    }

    /// The members (entry keys) the first round found, once it ran.
    pub fn members(&self) -> &[String] {
        self.members.as_deref().unwrap_or(&[])
    }
}

impl_namespaced!([] InvalidateTag);

impl Operation for InvalidateTag {
    type Output = usize;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match &self.members {
            None => {
                let key = self.tag_key();
                TagTakeScript::new(key, now_ms()).prepare(plan)?;
            }
            Some(members) => {
                for m in members {
                    push_invalidate(plan, m, self.hold)?;
                }
            }
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<usize>> {
        match &self.members {
            None => {
                let members: Vec<String> = replies.next("the tag_take script")?;
                if members.is_empty() {
                    return Ok(Step::Done(0));
                }
                self.members = Some(members);
                Ok(Step::Again)
            }
            Some(members) => {
                let mut n = 0;
                for _ in members {
                    if replies.next::<i64>("the invalidate script")? > 0 {
                        n += 1;
                    }
                }
                Ok(Step::Done(n))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The fill protocol (cache-aside misses): acquire, fill or abandon, wait.

/// What [`Acquire`] learned. Without `force` it is the first round trip of
/// a cache-aside read ("get or lease"): the entry when it is there, else
/// the lease taken (or who holds it), so a miss costs this round trip and
/// the fill.
#[derive(Debug)]
pub(super) enum Acquired {
    /// The entry is there (someone filled it meanwhile).
    Hit(Vec<u8>),
    /// This caller holds the fill lease: load, then fill or abandon.
    Leader,
    /// Another caller holds the lease: wait for its value.
    Busy,
    /// The entry was invalidated moments ago: load without caching.
    Hold,
    /// The entry key holds another Redis type (see [`another_type`]).
    Foreign,
    /// Nothing is stored and no lease was asked for: the answer of a plain
    /// `GET` as the first read ([`FirstOp::Get`]).
    Absent,
}

pub(super) struct Acquire {
    pub(super) key: String,
    pub(super) token: String,
    pub(super) lease: Duration,
    /// Take the lease even if an entry is stored (a refresh, or an entry
    /// that does not decode).
    pub(super) force: bool,
}

impl Operation for Acquire {
    type Output = Acquired;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let lease = companion(&self.key, "lease");
        let done = companion(&self.key, "done");
        let force = if self.force { "1" } else { "0" };
        AcquireScript::new(&self.key, lease, done, &self.token, ms(self.lease), force).prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Acquired>> {
        // A hit is the entry itself (taken, not copied); the other answers
        // are small integers.
        Ok(Step::Done(match replies.next_value()? {
            Value::BulkString(b) => Acquired::Hit(b),
            Value::Int(1) => Acquired::Leader,
            Value::Int(2) => Acquired::Busy,
            Value::Int(3) => Acquired::Hold,
            Value::Int(4) => Acquired::Foreign,
            v => return Err(Error::unexpected("the acquire script", &v)),
        }))
    }
}

/// The first round trip of a cache-aside read, as the cache's
/// `FirstRead` says: the `acquire` script as get-or-lease, or a plain `GET`
/// of the entry (answered as `Hit`, `Absent` or `Foreign`).
pub(super) enum FirstOp {
    Lease(Acquire),
    Get(String),
}

impl Operation for FirstOp {
    type Output = Acquired;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match self {
            FirstOp::Lease(acquire) => acquire.prepare(plan),
            FirstOp::Get(key) => {
                plan.cmd("GET", &*key);
                Ok(())
            }
        }
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Acquired>> {
        let key = match self {
            FirstOp::Lease(acquire) => return acquire.complete(replies),
            FirstOp::Get(key) => key,
        };
        Ok(Step::Done(match replies.next_raw()? {
            Value::Nil => Acquired::Absent,
            Value::BulkString(b) => Acquired::Hit(b),
            Value::ServerError(e) if e.code() == "WRONGTYPE" => Acquired::Foreign,
            Value::ServerError(e) => {
                return Err(Error::server("GET".to_owned(), vec![key.clone()], e));
            }
            other => return Err(Error::unexpected("GET of a cache entry", &other)),
        }))
    }
}

pub(super) struct Fill {
    pub(super) key: String,
    pub(super) token: String,
    pub(super) enc: Encoded,
}

impl Operation for Fill {
    /// Whether the value was stored (the lease was still ours).
    type Output = bool;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let lease = companion(&self.key, "lease");
        let done = companion(&self.key, "done");
        let enc = &self.enc;
        FillScript::new(
            &self.key,
            lease,
            done,
            &self.token,
            &enc.bytes[..],
            enc.px,
            DONE_STREAM_MS,
        )
        .prepare(plan)?;
        push_tags(plan, &self.key, &self.enc)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        let stored = replies.next::<i64>("the fill script")? == 1;
        complete_tags(replies, self.enc.tags.len())?;
        Ok(Step::Done(stored))
    }
}

pub(super) struct Abandon {
    pub(super) key: String,
    pub(super) token: String,
    /// `None`: the load found nothing (and negative caching is off).
    pub(super) error: Option<String>,
}

impl Operation for Abandon {
    type Output = ();
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let lease = companion(&self.key, "lease");
        let done = companion(&self.key, "done");
        let error = self.error.as_deref().unwrap_or("");
        let outcome = if self.error.is_some() { "e" } else { "n" };
        AbandonScript::new(lease, done, &self.token, error, DONE_STREAM_MS, outcome).prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<()>> {
        replies.next_value()?;
        Ok(Step::Done(()))
    }
}

/// What a waiter was woken with.
#[derive(Debug)]
pub(super) enum Woken {
    /// The fill landed (or a `set` replaced it): the entry's bytes.
    Value(Vec<u8>),
    /// The load found nothing (and negative caching is off).
    NotFound,
    /// The load failed with this message.
    Failed(String),
    /// An invalidation revoked the lease, or it is gone with nothing
    /// published (its holder died, or the lease ran out): try it again now.
    Revoked,
}

/// `XREAD COUNT 1 [BLOCK ms] STREAMS <done> 0-0` and `EXISTS <lease>`:
/// whether the lease holder has published yet, or is gone. `BLOCK` only on
/// a connection the caller has to itself (see `Cache::wait`).
pub(super) struct WaitDone {
    pub(super) key: String,
    pub(super) block: Option<std::time::Duration>,
}

impl Operation for WaitDone {
    type Output = Option<Woken>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let done = companion(&self.key, "done");
        let lease = companion(&self.key, "lease");
        // Without BLOCK the lease goes first: a fill deletes it and
        // publishes in one script, so a lease seen gone with nothing
        // published means its holder died (or the lease ran out) without a
        // word. With BLOCK the read goes first, so the lease is checked
        // after the block, when it matters.
        if self.block.is_none() {
            plan.cmd("EXISTS", &lease);
        }
        let xread = plan.cmd_routed("XREAD", &done).arg("COUNT").arg(1);
        if let Some(block) = self.block {
            xread.arg("BLOCK").arg(block.as_millis().max(1).to_string());
        }
        xread.arg("STREAMS").arg(&done).arg("0-0");
        if self.block.is_some() {
            plan.cmd("EXISTS", &lease);
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Option<Woken>>> {
        let (leased, v) = if self.block.is_none() {
            let leased: i64 = replies.next("EXISTS")?;
            (leased, replies.next_value()?)
        } else {
            let v = replies.next_value()?;
            (replies.next("EXISTS")?, v)
        };
        Ok(Step::Done(match parse_xread_one(&v) {
            Some(w) => Some(w),
            None if leased == 0 => Some(Woken::Revoked),
            None => None,
        }))
    }
}

/// Finds the first `field value` pair of the first entry of an `XREAD` reply
/// (RESP2 arrays or RESP3 maps).
fn parse_xread_one(v: &Value) -> Option<Woken> {
    fn entries(v: &Value) -> Option<&Value> {
        match v {
            Value::Array(streams) => match streams.first()? {
                Value::Array(pair) => pair.get(1),
                _ => None,
            },
            Value::Map(streams) => streams.first().map(|(_, e)| e),
            _ => None,
        }
    }
    let Value::Array(list) = entries(v)? else {
        return None;
    };
    let Value::Array(entry) = list.first()? else {
        return None;
    };
    let Value::Array(fields) = entry.get(1)? else {
        return None;
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    };
    let name = text(fields.first()?)?;
    let value = text(fields.get(1)?)?;
    match name.as_slice() {
        b"v" => Some(Woken::Value(value)),
        b"n" => Some(Woken::NotFound),
        b"r" => Some(Woken::Revoked),
        _ => Some(Woken::Failed(String::from_utf8_lossy(&value).into_owned())),
    }
}
