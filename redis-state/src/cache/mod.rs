//! `#[derive(Cached)]` and the caching engine: cache-aside, write-through,
//! write-behind, stampede protection, invalidation by key, tag, pattern and
//! entity event, and an opt-in local cache kept honest by the server.
//!
//! The derive writes the schema (key template, TTL, jitter, stale window,
//! negative TTL, tags, format version); everything else lives here, generic
//! over [`Cached`] (DESIGN principle 2). Read the guide chapter
//! `docs/03-caching.md` and the `cache_*` examples first.
//!
//! # Attributes
//!
//! On the type, `#[cache(...)]`:
//!
//! | attribute | meaning |
//! |---|---|
//! | `key = "product:{id}"` | key template. `{field}` names a field of the value (the id is that field, or the tuple of the named fields in template order); `{{`/`}}` are literal braces (a Cluster hash tag). Each placeholder is a whole segment, set off by `:` or the tag's braces, in keys and tags alike. Default: `"<snake_case name>:{id}"` |
//! | `id = Type` | an explicit id type (any [`IdValue`]: a key part or a tuple of them) for values that do not hold their key; the template's placeholders then stand for its parts, in order |
//! | `ttl = "10m"` | how long an entry is fresh (required): `"500ms"`, `"45s"`, `"10m"`, `"1h30m"`, `"2d"`, `"1w"` or an integer of seconds |
//! | `jitter = "30s"` or `"10%"` | a random extra lifetime in `[0, jitter]` per write, so entries written together do not expire together |
//! | `stale = "1m"` | the stale window: past its TTL an entry is kept this long and served while one caller refreshes it |
//! | `negative_ttl = "30s"` | remember "not found" for this long (off by default) |
//! | `tag = "category:{category}"` | a tag (repeatable): a template over the value's fields; [`Cached::invalidate_tag`] drops every entry carrying it |
//! | `version = 2` | the format version: entries written with another version read as a miss, not an error (bump it when the shape changes) |
//! | `beta = 1.0` | XFetch's β (early refresh eagerness); `0` turns early refresh off. Default 1 |
//! | `format = "plain"` | store the JSON alone, as other clients do (`SETEX user:42 3600 '{...}'`), instead of the envelope (below); no `stale`, `negative_ttl`, `version` or `beta` with it |
//! | `buckets = 64` | the bucketed layout (off unless given; 1 to 16384; not with a hash tag in the key): each entry key carries the hash tag of its bucket after the key's leading text (`product:{<tag>}:42`), the bucket and tag computed from the id exactly as for `RedisHash` models; write-behind queues one stream per bucket in that tag, so a write-behind is one atomic script on a Cluster too (see [`behind`]) |
//! | `namespace = "app"` | static key prefix; an operation's `.namespace(..)` replaces it |
//! | `crate = "path"` | where `redis_state` is, for crates that re-export it |
//!
//! The type must implement `serde::Serialize` and `serde::Deserialize`
//! (usually `#[derive(Cached, Serialize, Deserialize)]`); without them the
//! compile error, at the type's name, says which derive to add.
//! Mistakes (a placeholder or tag naming no field, a malformed duration, a
//! jitter or stale window that makes no sense, `id` with field placeholders
//! that do not fit) are compile errors at the attribute at fault.
//!
//! # What is stored
//!
//! | key | type | content |
//! |---|---|---|
//! | `<key>` | string | the entry: a one-line header and the JSON of the value (see below) |
//! | `{<key>}:#lease` | string | the fill lease: the token of the caller loading the value (suffixed `~w` once another caller waits for it), or `inv` for a moment after an invalidation |
//! | `{<key>}:#done` | stream | one message when a fill that a caller waits for lands, or a fill is revoked (waiters read it; the same name is the pub/sub channel a [`CacheWaker`] listens on), expires after a minute |
//! | `<ns>:#tag:<tag>` | zset | entry keys carrying the tag, scored by their expiry |
//!
//! (`{<key>}` stands for the key itself when it has no hash tag, so the three
//! share a Cluster slot; a key with a hash tag keeps it: `<key>:#lease`.
//! Keys of the bucketed layout have their bucket's tag: `product:{<tag>}:42`,
//! `product:{<tag>}:42:#lease`.)
//!
//! An entry is `rsc1 v<version> d<delta ms> x<fresh until, ms> v` then a
//! newline and the JSON, or `… n` for "not found". The Redis TTL is the TTL
//! plus jitter plus the stale window. A `redis-cli GET` shows the JSON.
//! Bytes that are not such an entry (written by another program, truncated,
//! or of another format version) read as a miss and are logged through the
//! [`log`](https://docs.rs/log) facade (target `redis_state::cache`: `warn`
//! for foreign or corrupt bytes, `debug` for old versions); a fill then
//! overwrites them.
//!
//! With `format = "plain"` ([`EntryFormat::Plain`]) the entry is the JSON
//! alone and its freshness is the key's TTL (the TTL plus jitter): what the
//! seed documents' `get_user` writes with `SETEX` and reads with
//! `json.loads`. Such an entry another client wrote is a hit; bytes that are
//! not the type's JSON are a [`DecodeError`](crate::DecodeError) naming the
//! key, and are left as they are (a fill never overwrites another client's
//! data). What the plain format gives up: the stale window, XFetch's early
//! refresh (no loader time is stored) and the format version; "not found"
//! is JSON's `null`. Leases, wake-ups, tags and invalidation work as in the
//! envelope format: they live in keys of their own.
//!
//! # Strategies
//!
//! * **Cache-aside**: [`Cache::get_or_load_async`] (async) and
//!   [`Cache::get_or_load`]: a hit is one round trip (the get-or-lease
//!   script), a miss two (it, then the fill); a miss runs the
//!   loader once across every caller and process (below), stores its value
//!   (or "not found" with `negative_ttl`), and a loader error is returned,
//!   never cached.
//! * **Write-through**: [`Cache::write_through_async`]: write the source of truth,
//!   then the entry, in one call; nothing is cached when the source write
//!   fails.
//! * **Write-behind**: [`Cache::write_behind`] queues the source write in a
//!   Redis stream and writes the entry (one atomic script on one server,
//!   and on a Cluster for a type with `buckets`; else two round trips on a
//!   Cluster; no entry is written when the queue refuses the write); a
//!   [`WriteBehindWorker`]
//!   drains it (see [`behind`]). Delivery is at-least-once.
//! * **Plain**: [`Cached::get`], [`Cached::set`], [`Cached::invalidate`]:
//!   operations as values, batchable with any other operation.
//!
//! # Stampede protection
//!
//! 1. *Single-flight in a process*: concurrent misses of one key in one
//!    [`Cache`] make one loader call; the others wait for its outcome.
//! 2. *Across processes*: the first caller takes the fill lease (a short
//!    `SET NX PX` inside the `acquire` script) and loads; the others wait
//!    for the `XADD` to the key's `done` stream that lands with the value,
//!    which they take from the stream (no second `GET`), for at most the
//!    wait bound, then load without caching. How they wait depends on the
//!    connection: a blocking caller's connection is its own, so it blocks
//!    on the server (`XREAD BLOCK`, 400 ms slices); an async caller's
//!    connection is shared (multiplexed, `ConnectionManager`, Cluster), where
//!    a blocked command would stall every other task's commands, so it
//!    sleeps until a [`CacheWaker`]'s pub/sub message says the value landed
//!    ([`Cache::with_waker`]), or, without a waker, polls a non-blocking
//!    `XREAD` (2 ms apart at first, doubling to 25 ms).
//! 3. *Probabilistic early refresh* (XFetch): each entry stores how long the
//!    loader took (`delta`); a read recomputes early when
//!    `now − delta·β·ln(rand()) ≥ expiry`. Inside the stale window one
//!    caller refreshes and the others get the stale value at once.
//!
//! # Invalidation
//!
//! By key ([`Cached::invalidate`]), by tag ([`Cached::invalidate_tag`], tag
//! sets pruned of expired members on every write and kept only as long as
//! their longest-lived member, no `SCAN`), by pattern
//! ([`invalidate_pattern`], `SCAN` on every primary of a Cluster, glob
//! characters of user values escaped), and on entity events
//! (`#[redis(invalidates(..), invalidates_tag(..))]` on a `RedisHash`
//! model: its saves and deletes drop the entries that depend on it; a tag
//! names the cached type that carries it, whose namespace holds the tag
//! set).
//!
//! An invalidation also revokes the fill lease: a loader that read the
//! source before the change cannot put the old value back, and for a short
//! *hold* (250 ms by default) no fill is stored at all, which covers a
//! source write that lands after the invalidation (a pipeline split over
//! Cluster nodes). Callers waiting for a revoked fill are woken (an `r`
//! message on the `done` stream) and try the lease again at once: during
//! the hold they load from the source without caching.

#[cfg(not(feature = "async"))]
mod absent;
#[cfg(not(feature = "async"))]
use absent::{local, waker};
pub mod behind;
mod entry;
mod event;
mod flight;
mod handle;
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub mod local;
mod ops;
mod pattern;
#[cfg(feature = "async")]
mod sieve;
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub mod waker;

pub use self::behind::{
    QueuedWrite, Shutdown, ShutdownTrigger, WorkerStats, WriteBehind, WriteBehindWorker, shutdown,
};
pub use self::event::CacheInvalidations;
pub use self::handle::{Cache, CacheOptions, FirstRead};
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use self::local::{LocalCache, LocalCacheOptions, LocalStats};
pub use self::ops::{DEFAULT_HOLD, Found, Get, GetEntry, Invalidate, InvalidateTag, Set};
pub use self::pattern::{
    KeyPattern, PatternScope, invalidate_pattern, invalidate_pattern_async,
    invalidate_pattern_scoped, invalidate_pattern_scoped_async,
};
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use self::waker::CacheWaker;

use crate::keys::{IdBuf, IdValue, KeyPart, KeyTemplate, Namespace};
use ops::id_of;

/// Everything the runtime knows about a cached type, generated by the derive.
#[derive(Debug)]
#[non_exhaustive]
pub struct CacheSchema {
    /// The Rust type name.
    pub model: &'static str,
    /// The snake_case type name (used in the write-behind stream key).
    pub name: &'static str,
    /// The key template.
    pub key: KeyTemplate,
    /// How long an entry is fresh, in milliseconds.
    pub ttl_ms: u64,
    /// The most random extra freshness added per write, in milliseconds.
    pub jitter_ms: u64,
    /// The stale window, in milliseconds.
    pub stale_ms: u64,
    /// How long "not found" is remembered; `None`: not at all.
    pub negative_ttl_ms: Option<u64>,
    /// The format version.
    pub version: u32,
    /// XFetch's β; 0 turns early refresh off.
    pub beta: f64,
    /// How an entry's bytes look.
    pub format: EntryFormat,
    /// The bucketed layout (`#[cache(buckets = N)]`): the number of
    /// buckets, 0 for the layout the key template gives alone. Each entry
    /// key carries its bucket's hash tag, and write-behind queues one
    /// stream per bucket in that tag, so a write-behind is one script on a
    /// Cluster too. See [`CacheSchema::bucket_of`].
    pub buckets: u16,
}

/// How a cache entry's bytes look (`#[cache(format = "...")]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EntryFormat {
    /// A one-line header (format version, the loader's time, the instant
    /// the entry stops being fresh, value or "not found"), then the JSON:
    /// stale windows, XFetch's early refresh and negative caching work.
    /// Other bytes under the key read as a miss, which a fill overwrites.
    #[default]
    Envelope,
    /// The JSON alone, as other clients store it (`SETEX user:42 3600
    /// '{"name": "Ada"}'`); freshness is the key's TTL. JSON another client
    /// wrote there is a hit. There is no stale window, no early refresh and
    /// no negative TTL (the derive refuses them; [`Cached::set_missing`]
    /// writes JSON's `null`, which reads as "not found"), and bytes that
    /// are not the JSON of the type are an error, never overwritten.
    Plain,
}

/// Named construction, as the derive writes it:
/// `CacheSchema::of("Product").with_name("product").with_ttl_ms(600_000)...`.
/// Unset values: the name is empty, the key template has no segments, the
/// times are zero, no negative caching, version 1, β 1.
impl CacheSchema {
    /// The schema of the type named `model`.
    #[doc(hidden)]
    pub const fn of(model: &'static str) -> Self {
        CacheSchema {
            model,
            name: "",
            key: KeyTemplate::EMPTY,
            ttl_ms: 0,
            jitter_ms: 0,
            stale_ms: 0,
            negative_ttl_ms: None,
            version: 1,
            beta: 1.0,
            format: EntryFormat::Envelope,
            buckets: 0,
        }
    }
}

crate::setters::const_setters!(CacheSchema {
    with_name(name: &'static str);
    with_key(key: KeyTemplate);
    with_ttl_ms(ttl_ms: u64);
    with_jitter_ms(jitter_ms: u64);
    with_stale_ms(stale_ms: u64);
    with_negative_ttl_ms(negative_ttl_ms: u64) => Some;
    with_version(version: u32);
    with_beta(beta: f64);
    with_format(format: EntryFormat);
    with_buckets(buckets: u16);
});

impl CacheSchema {
    /// The positional form, from before the named one (`of` and the
    /// `with_*` setters) that the derive writes.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        model: &'static str,
        name: &'static str,
        key: KeyTemplate,
        ttl_ms: u64,
        jitter_ms: u64,
        stale_ms: u64,
        negative_ttl_ms: Option<u64>,
        version: u32,
        beta: f64,
    ) -> Self {
        CacheSchema {
            model,
            name,
            key,
            ttl_ms,
            jitter_ms,
            stale_ms,
            negative_ttl_ms,
            version,
            beta,
            format: EntryFormat::Envelope,
            buckets: 0,
        }
    }

    /// The key of the entry with `id`: the template rendered, with the
    /// bucket's hash tag after its leading text in the bucketed layout
    /// (`product:{<tag>}:42`, as for [`HashSchema::key`](crate::hash::HashSchema::key)).
    pub fn key(&self, ns: Option<&Namespace>, id: &IdBuf) -> String {
        if self.buckets == 0 {
            return self.key.render(ns, id);
        }
        crate::hash::bucketed_key(&self.key, self.buckets, ns, id)
    }

    /// The bucket of the entry with `id` in the bucketed layout: FNV-1a
    /// (64 bits) of the id's joined, escaped form, modulo
    /// [`buckets`](Self::buckets), exactly as for hash models
    /// ([`HashSchema::bucket_of`](crate::hash::HashSchema::bucket_of)). 0 for
    /// other types.
    pub fn bucket_of(&self, id: &IdBuf) -> u16 {
        crate::hash::bucket_of_joined(id.joined(), self.buckets)
    }

    /// The Cluster slot of bucket `bucket`: the middle of its share of the
    /// 16,384 slots cut into [`buckets`](Self::buckets) equal runs.
    pub fn bucket_slot(&self, bucket: u16) -> u16 {
        crate::hash::bucket_slot_of(bucket, self.buckets)
    }

    /// The scope of bucket `bucket` (`<ns>:product:{<tag>}`): its entries'
    /// keys and its write-behind streams start with it.
    pub fn bucket_scope(&self, ns: Option<&Namespace>, bucket: u16) -> String {
        crate::hash::bucket_scope_of(&self.key, self.buckets, ns, bucket)
    }

    /// Whether "not found" is remembered: a negative TTL in the envelope
    /// format (the plain format has no room for the marker).
    pub(crate) fn remembers_misses(&self) -> bool {
        self.negative_ttl_ms.is_some() && self.format == EntryFormat::Envelope
    }

    /// The stale window, in milliseconds: none in the plain format.
    pub(crate) fn stale_window_ms(&self) -> u64 {
        match self.format {
            EntryFormat::Envelope => self.stale_ms,
            EntryFormat::Plain => 0,
        }
    }
}

/// The tags of one value, written by the derive's `write_tags`.
#[derive(Debug, Default)]
pub struct Tags {
    rendered: Vec<String>,
}

impl Tags {
    /// Adds the tag `template` renders with `parts` (escaped values).
    pub fn push(&mut self, template: &KeyTemplate, parts: &IdBuf) {
        self.rendered.push(template.render(None, parts));
    }

    /// The tags, rendered (`category:books`).
    pub fn as_slice(&self) -> &[String] {
        &self.rendered
    }

    /// The key of the tag set of `tag` in namespace `ns` (else the type's own).
    pub(crate) fn key_with(ns: Option<&Namespace>, schema_ns: Option<&str>, tag: &str) -> String {
        let mut out = String::with_capacity(tag.len() + 24);
        crate::keys::write_ns_prefix(ns, schema_ns, &mut out);
        out.push_str("#tag:");
        out.push_str(tag);
        out
    }
}

/// A tag, built the way the derive renders tag templates: literal text as
/// written, values escaped like key parts.
///
/// ```
/// use redis_state::cache::Tag;
/// // The tag `category:{category}` of a value whose category is "books":
/// assert_eq!(Tag::new("category:").value(&"books").as_str(), "category:books");
/// assert_eq!(Tag::new("category:").value(&"a:b").as_str(), "category:a%3Ab");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag(String);

impl Tag {
    /// Starts a tag with literal text.
    pub fn new(literal: &str) -> Self {
        Tag(literal.to_owned())
    }

    /// Appends literal text.
    pub fn lit(mut self, literal: &str) -> Self {
        self.0.push_str(literal);
        self
    }

    /// Appends a value, escaped as a key part.
    pub fn value<V: KeyPart + ?Sized>(mut self, value: &V) -> Self {
        let mut buf = IdBuf::new();
        value.write_key_part(&mut buf);
        self.0.push_str(buf.joined());
        self
    }

    /// The rendered tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key of a structure that must share `key`'s Cluster slot: `key:#sfx`
/// when the key has a hash tag, `{key}:#sfx` when it has none, and
/// `{<n>}%<escaped key>:#sfx` when it cannot be a hash tag itself (it is
/// empty or holds a `}`, as `user:{}` does for an empty tag value); see
/// `keys::beside`.
pub(crate) fn companion(key: &str, suffix: &str) -> String {
    let suffix = format!(":#{suffix}");
    crate::keys::beside(key, &suffix, &suffix)
}

/// A type cached as one Redis string per id. Implemented by
/// `#[derive(Cached)]`.
///
/// The associated functions return [operations](crate::op::Operation):
/// nothing is sent until `.run(&mut con)` or `.run_async(&mut con).await`,
/// and they batch with any other operation. The strategies with a loader,
/// single-flight and the local cache are on [`Cache`].
pub trait Cached: serde::Serialize + serde::de::DeserializeOwned {
    /// The id: the field the key template names, a tuple of them, or the
    /// explicit `id = Type`.
    type Id: IdValue;

    /// The schema generated by the derive.
    const SCHEMA: &'static CacheSchema;

    /// Renders the value's tags (generated from the `tag` attributes).
    fn write_tags(&self, _out: &mut Tags) {}

    /// The key of the entry with `id` (in the type's own namespace).
    fn cache_key<Q: IdValue + ?Sized>(id: &Q) -> String
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        Self::SCHEMA.key(None, &id_of(id))
    }

    /// Reads the value cached for `id`: `None` on a miss, for "not found"
    /// entries, and for bytes that are not a current entry (logged). Stale
    /// entries are returned. One `GET`, one round trip.
    fn get<Q: IdValue + ?Sized>(id: &Q) -> Get<Self>
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        Get::new(id_of(id))
    }

    /// Reads the entry for `id` with its metadata (stale, delta, expiry, or
    /// a remembered "not found"). One `GET`, one round trip.
    fn entry<Q: IdValue + ?Sized>(id: &Q) -> GetEntry<Self>
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        GetEntry::new(id_of(id), None)
    }

    /// Stores `value` for `id` with the type's TTL, jitter and stale window,
    /// and records its tags. A fill in flight for the key (a loader that read
    /// the source earlier) is revoked and its waiters get this value.
    /// One `EVALSHA` of the `store` script (`SET … PX`), plus one `EVALSHA`
    /// of `tag_add` per tag (`ZADD`, prune, `PEXPIREAT`), in one round trip.
    fn set<Q: IdValue + ?Sized>(id: &Q, value: &Self) -> Set<Self>
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        Set::new(id_of(id), Some(value), 0)
    }

    /// Remembers that `id` has no value, for `negative_ttl` (or the TTL when
    /// the type has none). One `EVALSHA`, one round trip.
    fn set_missing<Q: IdValue + ?Sized>(id: &Q) -> Set<Self>
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        Set::new(id_of(id), None, 0)
    }

    /// Deletes the entry of `id` and revokes fills in flight (see
    /// [`Invalidate::hold`]). One `EVALSHA` of `invalidate` (`DEL`, `SET
    /// … PX` of the lease), one round trip.
    fn invalidate<Q: IdValue + ?Sized>(id: &Q) -> Invalidate<Self>
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        Invalidate::new(id_of(id))
    }

    /// Deletes every entry carrying `tag` (of any type, in the operation's
    /// namespace or this type's). Two round trips; see [`InvalidateTag`].
    fn invalidate_tag(tag: &Tag) -> InvalidateTag {
        InvalidateTag::new(tag.0.clone(), Self::SCHEMA.key.namespace)
    }
}

/// A [`Cached`] type whose key is made of its own fields: the id can be
/// read from a value. Implemented by the derive unless `id = Type` is given.
pub trait CachedKeyed: Cached {
    /// Writes the id parts of this value.
    fn write_id(&self, out: &mut IdBuf);

    /// The key of this value's entry.
    fn key(&self) -> String {
        let mut id = IdBuf::new();
        self.write_id(&mut id);
        Self::SCHEMA.key(None, &id)
    }

    /// Stores this value under its own id; see [`Cached::set`].
    fn put(&self) -> Set<Self> {
        let mut id = IdBuf::new();
        self.write_id(&mut id);
        Set::new(id, Some(self), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::HashSchema;
    use crate::keys::Seg;

    static SEGS: [Seg; 2] = [Seg::Lit("product:"), Seg::Part(0)];
    const TEMPLATE: KeyTemplate = KeyTemplate {
        segs: &SEGS,
        scope: None,
        namespace: Some("shop"),
    };

    /// A cached type's bucketed keys are exactly a hash model's with the
    /// same template and number of buckets: one rendering, one bucket
    /// function.
    #[test]
    fn bucketed_keys_are_the_hash_layout() {
        let cache = CacheSchema::of("Product")
            .with_key(TEMPLATE)
            .with_buckets(64);
        let hash = HashSchema::of("Product")
            .with_key(TEMPLATE)
            .with_buckets(64);
        let ns = Namespace::new("eu").unwrap();
        for n in 0..500u32 {
            let id = id_of(&n);
            let key = cache.key(Some(&ns), &id);
            assert_eq!(key, hash.key(Some(&ns), &id));
            assert_eq!(cache.bucket_of(&id), hash.bucket_of(&id));
            let b = cache.bucket_of(&id);
            assert_eq!(
                cache.bucket_scope(Some(&ns), b),
                hash.bucket_scope(Some(&ns), b)
            );
            assert_eq!(key, format!("{}:{n}", cache.bucket_scope(Some(&ns), b)));
            assert_eq!(crate::keys::key_slot(key.as_bytes()), cache.bucket_slot(b));
        }
        // Without buckets the template alone.
        let plain = CacheSchema::of("Product").with_key(TEMPLATE);
        assert_eq!(plain.key(None, &id_of(&7u32)), "shop:product:7");
    }
}
