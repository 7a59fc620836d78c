//! `#[derive(RedisHash)]`: entities stored as Redis hashes.
//!
//! The derive writes the schema (key template, TTL, fields, indexes) and the
//! field encode/decode code; everything else lives here, generic over
//! [`RedisHash`] (DESIGN principle 2). See the guide chapter `docs/02-hash-models.md`
//! and the `hash_*` examples for the attributes.
//!
//! # Attributes
//!
//! On the struct, `#[redis(...)]`:
//!
//! | attribute | meaning |
//! |---|---|
//! | `key = "user:{id}"` | key template; `{field}` names an id field, `{{`/`}}` are literal braces (a Cluster hash tag). Each placeholder is a whole segment, set off by `:` or the tag's braces (`"order:{customer}:{id}"`, not `"order:{customer}-{id}"`, where `("a-b", "c")` and `("a", "b-c")` would share a key). Default: `"<snake_case name>:{id}"` |
//! | `hash_tag = "tenant"` | wraps the `{tenant}` placeholder in a hash tag: entities of one tenant share a slot, indexes are per tenant |
//! | `buckets = 64` | the bucketed layout (the default, with 64 buckets, for a model with an `index` and a key without hash tag): each entity's key carries the hash tag of its bucket, each index is partitioned per bucket, `find_by` reads every partition (see *Bucketed layout* below); 1 to 16384 |
//! | `ttl = "30m"` | time to live applied by every save: `"500ms"`, `"45s"`, `"30m"`, `"1h30m"`, `"2d"`, `"1w"`, or an integer of seconds |
//! | `namespace = "app"` | static key prefix (`app:user:42`); an operation's `.namespace(..)` replaces it |
//! | `collection = "users"` | the name in redis-state's own keys (indexes); default: snake_case struct name |
//! | `store_id = false` | saves leave the id fields out of the hash (the id lives in the key only, as other clients' `user:profile:<id>` hashes keep it); loads take them from the key either way |
//! | `rename_all = "camelCase"` | hash field naming: `snake_case`, `camelCase`, `PascalCase`, `kebab-case`, `SCREAMING_SNAKE_CASE`, `lowercase`, `UPPERCASE` |
//! | `crate = "path"` | where `redis_state` is, for crates that re-export it |
//! | `invalidates(View = "id")` | saves and deletes drop the entry of the cached type `View` whose id is made of these fields (comma-separated for a composite id); several pairs or attributes for several types |
//! | `invalidates_tag(Page = "category:{category}")` | saves and deletes drop every entry carrying this tag, rendered from the entity's fields, in the tag sets of the cached type `Page` (its namespace); several pairs or attributes for several types or tags |
//!
//! On fields:
//!
//! | attribute | meaning |
//! |---|---|
//! | `id` | part of the id (several make a composite id, in key-template order) |
//! | `rename = "name"` | the hash field name |
//! | `skip` | not stored; loads as `Default::default()` (or `default = "path"`) |
//! | `default` / `default = "path"` | an absent field loads as the default instead of an error |
//! | `json` | stored as JSON text (any serde type) |
//! | `with = Codec` | stored with a [`Codec`](crate::codec::Codec) of yours |
//! | `index` | exact-match secondary index: `find_by_<field>` (bucketed when the key has no hash tag) |
//! | `unique` | at most one entity per value: `find_by_<field>`, `UniqueViolation`; on a key without hash tag (the bucketed layout) each value is reserved in its own bucket's slot (see *Bucketed layout*) |
//! | `counter` | integer or float updated atomically: `increment_<field>` |
//! | `version` | optimistic locking: bumped by every write, checked by `save_versioned` |
//! | `expires_at` | `DateTime<Utc>` (or `Option`) the entity expires at (`PEXPIREAT`) |
//!
//! Every field that is not skipped needs a codec: the types listed in
//! [`codec`](crate::codec), `#[derive(RedisField)]` types, `json` or `with`.
//! Mistakes are compile errors at the attribute or field at fault.
//!
//! The derive also generates, on the struct: one typed handle per stored
//! field that is not an id or version (`User::EMAIL`), for
//! [`Update::set`], [`RedisHash::find_by`] and [`RedisHash::increment`];
//! `find_by_<field>` for `index` and `unique` fields (taking the id fields of
//! the hash tag first when the tag holds any); `increment_<field>` for
//! counters.
//!
//! # What is stored
//!
//! An entity is one hash at the key its template renders, e.g. `user:42`,
//! holding every non-skipped field (id fields included, unless
//! `store_id = false`) as plain strings under the Rust field name or its
//! `rename`. A `None` field is an absent field. A load takes an id field the
//! hash does not hold from the key it read (each part from its segment,
//! escapes undone), so hashes other clients wrote without an id field load
//! whatever the model's `store_id`.
//! Indexed models keep, under the key's hash tag (so on the same Cluster slot):
//!
//! | key                          | type | content |
//! |------------------------------|------|---------|
//! | `<scope>:#<collection>:idx:<field>`  | ZSET | one member `<len>:<value>:<id>` per entity (score 0) |
//! | `<scope>:#<collection>:uniq:<field>` | HASH | value → id |
//! | `<scope>:#<collection>:exp`          | ZSET | id → expiry time (ms), for entities that expire |
//! | `<scope>:#<collection>:expv`         | HASH | id → the indexed values of an expiring entity |
//! | `<scope>:#<collection>:fence`        | ZSET | bucketed layout: revoked reservation tokens → revocation time (ms) |
//!
//! `<scope>` is the key up to and including its hash tag and `<collection>`
//! the snake_case model name (or `collection = "..."`).
//!
//! # Bucketed layout
//!
//! A model with an `index` and a key template without hash tag (or with
//! `buckets = N`) spreads over every primary of a Cluster. Its entities are
//! cut into `N` buckets (64 unless given): the bucket of an id is FNV-1a
//! (64 bits) of the id's joined, escaped form modulo `N`
//! ([`HashSchema::bucket_of`]). Bucket `b` lives in one slot, the middle of
//! the `b`-th of `N` equal runs of the 16,384 slots
//! ([`HashSchema::bucket_slot`]), so buckets spread over primaries as evenly
//! as slots do. An entity's key carries its bucket's hash tag after the
//! template's leading text: `user:{id}` renders `user:{<tag>}:42`, where
//! `<tag>` is the smallest decimal number in the bucket's slot. Each index
//! is partitioned per bucket, under the scope `user:{<tag>}`, so a write
//! still updates the entity and its index entries in one script on one
//! slot. `find_by` looks the value up in every partition (one command per
//! bucket, pipelined per node: one round trip per node), then verifies the
//! candidates with one script per bucket that has any (again one round trip
//! per node), and returns them in id order, as one index would.
//!
//! A `unique` field of the bucketed layout is checked across every bucket.
//! Each value is reserved in the slot of *its own* bucket (FNV-1a of the
//! value's stored bytes modulo `N`, [`HashSchema::value_bucket`]): the HASH
//! `user:{<tag of the value's bucket>}:#user:uniq:email` maps the value to
//! `<id>|<token>`, the token being `<server ms>.<random hex>`
//! ([`HashSchema::reservation_key`]). A save that sets a unique value
//! first reserves it there (one round trip, pipelined with the other
//! values'); the entity write then presents the reservation's token, and
//! its script refuses a token revoked in the entity's bucket
//! (`…:#user:fence`, [`HashSchema::fence_key`]) or older than 30 s.
//! A value reserved by another id is checked in that holder's bucket: a
//! holder that holds the value is a [`Error::UniqueViolation`]; one that
//! does not (its save crashed between reservation and write, it was
//! deleted or edited behind the library's back, it expired) has its token
//! revoked there and the reservation is taken over (two more round trips).
//! Because the revocation and the holder's write are both atomic in the
//! holder's slot, either the write came first (and the holder is live) or
//! the revocation did (and the write is refused): two holders never
//! coexist. A write that replaced or removed a value, and a delete,
//! release its reservation afterwards (three more round trips: read,
//! revoke unless held again, compare-and-delete). So a save costs two round
//! trips (reserve, write), three more when it changes a value, two more
//! when it takes over an orphan. `find_by_<field>` reads the reservation,
//! then loads the holder and checks it holds the value (two round trips; an
//! orphan reads as `None`). Inside a
//! [`Transaction`](crate::tx::Transaction) these rounds do not fit between
//! `MULTI` and `EXEC`: a save of such a model there, or an update that sets
//! or removes a reserved value, is refused with [`Error::InvalidArgument`];
//! a delete there leaves its reservations to be taken over by the next
//! saver. The orphan sweep of [`crate::monitor::stats`] counts orphan
//! reservations and leaves them (the next saver takes them over safely).
//!
//! # Invariants
//!
//! * **No write loses the TTL.** Saves never delete the hash; a model `ttl` or
//!   `expires_at` field is applied by the same atomic write; `update` and
//!   `increment` keep the remaining TTL.
//! * **No reader sees a half-written entity.** Each write is one command or
//!   one script.
//! * **Indexes never misreport.** Index entries change in the same script as
//!   the entity; `find_by` reads the entities in a script that checks each one
//!   still holds the value and removes entries that do not; entries of expired
//!   entities are pruned by later writes (up to 16 per write that may add
//!   expiry bookkeeping: one whose entity held no indexed value; a re-save
//!   of a live entity skips it), so index memory does not grow after
//!   entities expire.
//! * **No CROSSSLOT.** Every key one script touches shares the entity's hash
//!   tag (or its bucket's); a unique value of the bucketed layout is reserved
//!   by scripts of its own, in its own bucket's slot.

mod ops;
mod reserve;

use std::marker::PhantomData;

use redis::Value;

pub(crate) use self::ops::PruneExpired;
pub use self::ops::{
    Delete, DeleteMany, Exists, Expire, FindBy, FindUnique, Increment, Load, LoadField, Persist,
    Save, TtlOf, Update,
};
use crate::codec::{CounterValue, ExpiresAtValue, Slot};
use crate::error::{DecodeError, Error, Result};
use crate::keys::{IdBuf, IdValue, KeyTemplate, Namespace};
use crate::op::{Many, many};

/// What a field is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldKind {
    /// Part of the id (also stored in the hash).
    Id,
    /// Ordinary data.
    Data,
    /// A `#[redis(counter)]` field.
    Counter,
    /// The `#[redis(version)]` field.
    Version,
    /// The `#[redis(expires_at)]` field.
    ExpiresAt,
}

/// One stored field.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct FieldSchema {
    /// The hash field name.
    pub name: &'static str,
    /// The Rust field name.
    pub rust_name: &'static str,
    /// What the stored value must look like (for errors).
    pub expected: &'static str,
    /// `Option` field: absent when `None`.
    pub optional: bool,
    /// Absent fields decode to a default value.
    pub has_default: bool,
    /// The field's role.
    pub kind: FieldKind,
    /// For an id field: its position among the id's parts (key-template
    /// order), where a load finds it when the hash does not hold it.
    pub id_part: u8,
}

/// Named construction, as the derive writes it:
/// `FieldSchema::of("email").with_expected(..).with_kind(FieldKind::Data)`.
/// Unset values: `rust_name` is the hash field name, `expected` is empty,
/// `optional` and `has_default` are false, `kind` is `Data`.
impl FieldSchema {
    /// The schema of the field stored under the hash field `name`.
    #[doc(hidden)]
    pub const fn of(name: &'static str) -> Self {
        FieldSchema {
            name,
            rust_name: name,
            expected: "",
            optional: false,
            has_default: false,
            kind: FieldKind::Data,
            id_part: 0,
        }
    }
}

crate::setters::const_setters!(FieldSchema {
    with_rust_name(rust_name: &'static str);
    with_expected(expected: &'static str);
    with_optional(optional: bool);
    with_has_default(has_default: bool);
    with_kind(kind: FieldKind);
    with_id_part(id_part: u8);
});

impl FieldSchema {
    /// The positional form, from before the named one (`of` and the
    /// `with_*` setters) that the derive writes.
    #[doc(hidden)]
    pub const fn new(
        name: &'static str,
        rust_name: &'static str,
        expected: &'static str,
        optional: bool,
        has_default: bool,
        kind: FieldKind,
    ) -> Self {
        FieldSchema {
            name,
            rust_name,
            expected,
            optional,
            has_default,
            kind,
            id_part: 0,
        }
    }
}

/// An exact-match secondary index on a field.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct IndexSchema {
    /// Position of the field in [`HashSchema::fields`].
    pub field: usize,
    /// `unique`: at most one entity per value.
    pub unique: bool,
}

impl IndexSchema {
    /// The positional form, from before the named one (`of` and the
    /// `with_*` setters) that the derive writes.
    #[doc(hidden)]
    pub const fn new(field: usize, unique: bool) -> Self {
        IndexSchema { field, unique }
    }

    /// An `index` on the stored field at position `field`.
    #[doc(hidden)]
    pub const fn index(field: usize) -> Self {
        IndexSchema {
            field,
            unique: false,
        }
    }

    /// A `unique` index on the stored field at position `field`.
    #[doc(hidden)]
    pub const fn unique(field: usize) -> Self {
        IndexSchema {
            field,
            unique: true,
        }
    }
}

/// Everything the runtime knows about a model, generated by the derive.
#[derive(Debug)]
#[non_exhaustive]
pub struct HashSchema {
    /// The Rust type name.
    pub model: &'static str,
    /// The name used in redis-state's own keys (snake_case model name by default).
    pub collection: &'static str,
    /// The key template.
    pub key: KeyTemplate,
    /// Time to live applied by every save, in milliseconds.
    pub ttl_ms: Option<u64>,
    /// The stored fields, in `HMGET` order.
    pub fields: &'static [FieldSchema],
    /// The indexed fields.
    pub indexes: &'static [IndexSchema],
    /// Position of the version field.
    pub version: Option<usize>,
    /// Position of the expiry field.
    pub expires_at: Option<usize>,
    /// Whether saves write the id fields into the hash. Loads take an id
    /// field the hash does not hold from the key, so a model with
    /// `store_id = false` has exactly the layout of clients that keep the
    /// id only in the key (`user:profile:<id>`).
    pub store_id: bool,
    /// The bucketed layout (`#[redis(buckets = N)]`): the number of buckets,
    /// 0 for the layout the key template gives alone. See
    /// [`HashSchema::bucket_of`].
    pub buckets: u16,
}

/// Named construction, as the derive writes it:
/// `HashSchema::of("User").with_collection("user").with_key(..)...`.
/// Unset values: the collection is empty, the key template has no
/// segments, no TTL, no fields, no indexes, no version or expiry field.
impl HashSchema {
    /// The schema of the model named `model`.
    #[doc(hidden)]
    pub const fn of(model: &'static str) -> Self {
        HashSchema {
            model,
            collection: "",
            key: KeyTemplate::EMPTY,
            ttl_ms: None,
            fields: &[],
            indexes: &[],
            version: None,
            expires_at: None,
            store_id: true,
            buckets: 0,
        }
    }
}

crate::setters::const_setters!(HashSchema {
    with_collection(collection: &'static str);
    with_key(key: KeyTemplate);
    with_ttl_ms(ttl_ms: u64) => Some;
    with_fields(fields: &'static [FieldSchema]);
    with_indexes(indexes: &'static [IndexSchema]);
    with_version(version: usize) => Some;
    with_expires_at(expires_at: usize) => Some;
    with_store_id(store_id: bool);
    with_buckets(buckets: u16);
});

impl HashSchema {
    /// The positional form, from before the named one (`of` and the
    /// `with_*` setters) that the derive writes.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        model: &'static str,
        collection: &'static str,
        key: KeyTemplate,
        ttl_ms: Option<u64>,
        fields: &'static [FieldSchema],
        indexes: &'static [IndexSchema],
        version: Option<usize>,
        expires_at: Option<usize>,
    ) -> Self {
        HashSchema {
            model,
            collection,
            key,
            ttl_ms,
            fields,
            indexes,
            version,
            expires_at,
            store_id: true,
            buckets: 0,
        }
    }

    /// The key of the entity with `id`.
    pub fn key(&self, ns: Option<&Namespace>, id: &IdBuf) -> String {
        if self.buckets == 0 {
            return self.key.render(ns, id);
        }
        bucketed_key(&self.key, self.buckets, ns, id)
    }

    /// The bucket of the entity with `id` in the bucketed layout: FNV-1a
    /// (64 bits) of the id's joined, escaped form, modulo
    /// [`buckets`](Self::buckets). 0 for other models.
    pub fn bucket_of(&self, id: &IdBuf) -> u16 {
        bucket_of_joined(id.joined(), self.buckets)
    }

    /// The Cluster slot of bucket `bucket`: the middle of its share when
    /// the 16,384 slots are cut into [`buckets`](Self::buckets) equal runs,
    /// so that buckets spread over primaries as evenly as slots do.
    pub fn bucket_slot(&self, bucket: u16) -> u16 {
        bucket_slot_of(bucket, self.buckets)
    }

    /// Writes the bucket's scope (`<ns>:user:{<tag>}`, the tag being the
    /// smallest decimal number in [`bucket_slot`](Self::bucket_slot)) and
    /// a `:` after it; returns the template segments that follow.
    /// The scope of bucket `bucket` (`<ns>:user:{<tag>}`), under which its
    /// index partitions live (`<scope>:#<collection>:idx:<field>`).
    pub fn bucket_scope(&self, ns: Option<&Namespace>, bucket: u16) -> String {
        bucket_scope_of(&self.key, self.buckets, ns, bucket)
    }

    /// The keys of the index structures, in `KEYS` order (index keys, then the
    /// two expiry keys). Empty for models without indexes.
    pub(crate) fn index_keys(&self, ns: Option<&Namespace>, id: &IdBuf) -> Result<Vec<String>> {
        if self.indexes.is_empty() {
            return Ok(Vec::new());
        }
        let scope = self.scope(ns, id)?;
        let mut keys = Vec::with_capacity(self.indexes.len() + 2);
        for ix in self.indexes {
            keys.push(self.index_key(&scope, ix));
        }
        keys.push(self.scoped_key(&scope, &["exp"]));
        keys.push(self.scoped_key(&scope, &["expv"]));
        Ok(keys)
    }

    pub(crate) fn index_key(&self, scope: &str, ix: &IndexSchema) -> String {
        let kind = if ix.unique { "uniq" } else { "idx" };
        self.scoped_key(scope, &[kind, ":", self.fields[ix.field].name])
    }

    /// `<scope>:#<collection>:<parts...>`, built without `format!` (this
    /// runs on every write of an indexed model).
    fn scoped_key(&self, scope: &str, parts: &[&str]) -> String {
        let len = parts.iter().map(|p| p.len()).sum::<usize>();
        let mut key = String::with_capacity(scope.len() + 3 + self.collection.len() + len);
        key.push_str(scope);
        key.push_str(":#");
        key.push_str(self.collection);
        key.push(':');
        for p in parts {
            key.push_str(p);
        }
        key
    }

    pub(crate) fn scope(&self, ns: Option<&Namespace>, id: &IdBuf) -> Result<String> {
        if self.buckets > 0 {
            return Ok(self.bucket_scope(ns, self.bucket_of(id)));
        }
        self.key
            .render_scope(ns, id)
            .ok_or_else(|| Error::CrossSlot {
                unit: format!("{} index", self.model),
                keys: vec!["(the key template has no hash tag)".to_owned()],
            })
    }

    /// True when `save` is a single `HSET` (no TTL, indexes, version, expiry
    /// field or optional fields).
    fn plain_save(&self) -> bool {
        self.ttl_ms.is_none()
            && self.indexes.is_empty()
            && self.version.is_none()
            && self.expires_at.is_none()
    }

    /// True when `save` goes out as the compact save script
    /// (`lua/save.lua`): no version field and no unique index, so the write
    /// has nothing to check, and every indexed field is one saves write.
    pub(crate) fn compact_save(&self) -> bool {
        self.version.is_none()
            && self
                .indexes
                .iter()
                .all(|ix| !ix.unique && self.writes(ix.field))
    }

    fn field_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields.iter().map(|f| f.name)
    }

    /// Whether field `idx` is written by saves: every field but the id
    /// fields of a model with `store_id = false`.
    pub(crate) fn writes(&self, idx: usize) -> bool {
        self.store_id || self.fields.get(idx).is_none_or(|f| f.kind != FieldKind::Id)
    }

    /// Total length of the field names (to size commands).
    pub(crate) fn names_len(&self) -> usize {
        self.fields.iter().map(|f| f.name.len()).sum()
    }
}

/// Decodes an `HMGET` reply of every field of `M` exactly as
/// [`RedisHash::load`] does (`None` when every field is absent), without I/O.
/// For `benches/hash.rs`, which times decoding alone: not public API, no
/// semver guarantees.
/// The bucket of the id whose joined, escaped form is `joined` among
/// `buckets` (FNV-1a, 64 bits, modulo `buckets`); 0 when `buckets` is 0.
/// [`HashSchema::bucket_of`] and the operations views both use it.
pub(crate) fn bucket_of_joined(joined: &str, buckets: u16) -> u16 {
    if buckets == 0 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in joined.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(buckets)) as u16
}

/// The slot of `bucket` among `buckets`; see [`HashSchema::bucket_slot`].
pub(crate) fn bucket_slot_of(bucket: u16, buckets: u16) -> u16 {
    let n = u32::from(buckets.max(1));
    ((u32::from(bucket) * 2 + 1) * 16384 / (2 * n)).min(16383) as u16
}

/// Writes the scope of `bucket` among `buckets` for keys of `template`
/// (`<ns>:user:{<tag>}`, the tag being the smallest decimal number in
/// [`bucket_slot_of`]) and a `:` after it; returns the template segments
/// that follow. The one rendering of the bucketed layout, for hash models
/// and cached types alike.
fn write_bucket_scope(
    template: &KeyTemplate,
    buckets: u16,
    ns: Option<&Namespace>,
    bucket: u16,
    out: &mut String,
) -> &'static [crate::keys::Seg] {
    crate::keys::write_ns_prefix(ns, template.namespace, out);
    let rest = match template.segs.first() {
        Some(crate::keys::Seg::Lit(lead)) => {
            out.push_str(lead);
            &template.segs[1..]
        }
        _ => template.segs,
    };
    out.push('{');
    out.push_str(
        itoa::Buffer::new().format(crate::keys::slot_tag(bucket_slot_of(bucket, buckets))),
    );
    out.push_str("}:");
    rest
}

/// The scope of `bucket` among `buckets` for keys of `template`
/// (`<ns>:user:{<tag>}`); see [`HashSchema::bucket_scope`].
pub(crate) fn bucket_scope_of(
    template: &KeyTemplate,
    buckets: u16,
    ns: Option<&Namespace>,
    bucket: u16,
) -> String {
    let mut out = String::with_capacity(32);
    write_bucket_scope(template, buckets, ns, bucket, &mut out);
    out.pop();
    out
}

/// The key of `id` under `template` in the bucketed layout of `buckets`
/// buckets: the template's leading text, its bucket's hash tag, the rest
/// (`user:{<tag>}:42`); see [`HashSchema::key`].
pub(crate) fn bucketed_key(
    template: &KeyTemplate,
    buckets: u16,
    ns: Option<&Namespace>,
    id: &IdBuf,
) -> String {
    let mut out = String::with_capacity(40 + id.joined().len());
    let bucket = bucket_of_joined(id.joined(), buckets);
    let rest = write_bucket_scope(template, buckets, ns, bucket, &mut out);
    for seg in rest {
        match *seg {
            crate::keys::Seg::Lit(s) => out.push_str(s),
            crate::keys::Seg::Part(i) => out.push_str(id.part(i as usize)),
        }
    }
    out
}

#[doc(hidden)]
pub fn __bench_decode<M: RedisHash>(key: &str, reply: &Value) -> Result<Option<M>> {
    ops::decode_hmget(key, reply, None)
}

/// The remaining time to live of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// No entity with this id.
    Missing,
    /// The entity does not expire.
    Persistent,
    /// The entity expires after this long.
    Expires(std::time::Duration),
}

// ---------------------------------------------------------------------------
// Field encoding and decoding (called by generated code)

/// Collects the encoded fields of one entity.
#[derive(Debug)]
pub struct FieldWriter {
    schema: &'static HashSchema,
    buf: Vec<u8>,
    /// Per field: the byte range of its value, or `None` when absent.
    spans: Spans,
}

/// Models of up to this many fields keep their spans inline: one allocation
/// less per save.
const INLINE_SPANS: usize = 16;

type Span = Option<(u32, u32)>;

#[derive(Debug)]
enum Spans {
    Inline([Span; INLINE_SPANS]),
    Heap(Vec<Span>),
}

impl Spans {
    fn new(n: usize) -> Self {
        if n <= INLINE_SPANS {
            Spans::Inline([None; INLINE_SPANS])
        } else {
            Spans::Heap(vec![None; n])
        }
    }

    fn get(&self, idx: usize) -> Option<&Span> {
        match self {
            Spans::Inline(a) => a.get(idx),
            Spans::Heap(v) => v.get(idx),
        }
    }

    fn get_mut(&mut self, idx: usize) -> Option<&mut Span> {
        match self {
            Spans::Inline(a) => a.get_mut(idx),
            Spans::Heap(v) => v.get_mut(idx),
        }
    }
}

impl FieldWriter {
    pub(crate) fn new(schema: &'static HashSchema) -> Self {
        FieldWriter {
            schema,
            buf: Vec::with_capacity(16 * schema.fields.len()),
            spans: Spans::new(schema.fields.len()),
        }
    }

    /// Encodes field `idx` with slot `S`.
    #[inline]
    pub fn put<T, S: Slot<T>>(&mut self, idx: usize, value: &T) -> Result<()> {
        let start = self.buf.len();
        match S::encode(value, &mut self.buf) {
            Ok(true) => {
                if let Some(span) = self.spans.get_mut(idx) {
                    *span = Some((start as u32, self.buf.len() as u32));
                }
                Ok(())
            }
            Ok(false) => {
                self.buf.truncate(start);
                Ok(())
            }
            Err(message) => Err(Error::Encode {
                model: self.schema.model,
                field: self.schema.fields.get(idx).map_or("?", |f| f.rust_name),
                message,
            }),
        }
    }

    /// Total length of the encoded values.
    pub(crate) fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// The encoded value of field `idx`, or `None` if absent.
    pub fn get(&self, idx: usize) -> Option<&[u8]> {
        let (s, e) = (*self.spans.get(idx)?)?;
        Some(&self.buf[s as usize..e as usize])
    }
}

/// Reads the fields of one entity from an `HMGET` reply.
#[derive(Debug)]
pub struct FieldReader<'a> {
    schema: &'static HashSchema,
    key: &'a str,
    values: &'a [Value],
}

impl<'a> FieldReader<'a> {
    pub(crate) fn new(schema: &'static HashSchema, key: &'a str, values: &'a [Value]) -> Self {
        FieldReader {
            schema,
            key,
            values,
        }
    }

    fn raw(&self, idx: usize) -> Result<Option<&'a [u8]>> {
        match self.values.get(idx) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::BulkString(b)) => Ok(Some(b)),
            Some(Value::SimpleString(s)) => Ok(Some(s.as_bytes())),
            Some(other) => {
                Err(self.error(idx, Some(crate::error::preview_value(other).as_bytes())))
            }
        }
    }

    fn error(&self, idx: usize, found: Option<&[u8]>) -> Error {
        let f = self.schema.fields.get(idx);
        DecodeError::new(
            self.key,
            f.map(|f| f.name),
            f.map_or("a value", |f| f.expected),
            found,
        )
        .into()
    }

    /// Decodes field `idx` with slot `S`; an absent required field is an error.
    #[inline]
    pub fn get<T, S: Slot<T>>(&self, idx: usize) -> Result<T> {
        // The common case first and short: a bulk string that decodes.
        let raw = match self.values.get(idx) {
            Some(Value::BulkString(b)) => b.as_slice(),
            _ => match self.raw(idx)? {
                Some(raw) => raw,
                None => return S::absent().ok_or_else(|| self.error(idx, None)),
            },
        };
        match S::decode(raw) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.decode_error(idx, raw, e)),
        }
    }

    /// The error for a value the codec refused, with the codec's detail.
    #[cold]
    #[inline(never)]
    fn decode_error(&self, idx: usize, raw: &[u8], e: crate::codec::FieldError) -> Error {
        match (self.error(idx, Some(raw)), e.detail) {
            (Error::Decode(mut d), Some(detail)) => {
                d.detail = Some(detail);
                Error::Decode(d)
            }
            (err, _) => err,
        }
    }

    /// Decodes field `idx`, or returns `default()` when it is absent.
    #[inline]
    pub fn get_or<T, S: Slot<T>>(&self, idx: usize, default: impl FnOnce() -> T) -> Result<T> {
        match self.raw(idx)? {
            Some(_) => self.get::<T, S>(idx),
            None => Ok(default()),
        }
    }

    /// The key being decoded.
    pub fn key(&self) -> &str {
        self.key
    }
}

// ---------------------------------------------------------------------------
// Typed field handles

/// Marks the model, value type and slot of a field handle.
type Marker<M, T, S> = PhantomData<fn() -> (M, T, S)>;

/// A stored field of model `M` with Rust type `T` and slot `S`, generated as
/// an associated constant (`User::NAME`). Used with [`Update::set`].
pub struct Field<M, T, S> {
    idx: usize,
    _p: Marker<M, T, S>,
}

/// An `index` field: also answers [`RedisHash::find_by`].
pub struct IndexField<M, T, S> {
    idx: usize,
    _p: Marker<M, T, S>,
}

/// A `unique` field: also answers [`RedisHash::find_unique`].
pub struct UniqueField<M, T, S> {
    idx: usize,
    _p: Marker<M, T, S>,
}

/// A `counter` field: also answers [`RedisHash::increment`].
pub struct CounterField<M, T, S> {
    idx: usize,
    _p: Marker<M, T, S>,
}

macro_rules! handle {
    ($($name:ident),*) => {$(
        impl<M, T, S> $name<M, T, S> {
            /// Used by the derive.
            #[doc(hidden)]
            pub const fn new(idx: usize) -> Self {
                $name { idx, _p: PhantomData }
            }

            /// Position of the field in the schema.
            pub const fn index(&self) -> usize {
                self.idx
            }
        }

        impl<M, T, S> Clone for $name<M, T, S> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<M, T, S> Copy for $name<M, T, S> {}

        impl<M: RedisHash, T, S> std::fmt::Debug for $name<M, T, S> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let name = M::SCHEMA.fields.get(self.idx).map_or("?", |f| f.rust_name);
                write!(f, "{}::{}", M::SCHEMA.model, name)
            }
        }

        impl<M, T, S: Slot<T>> Settable<M, T> for $name<M, T, S> {
            fn position(&self) -> usize {
                self.idx
            }
            fn encode(&self, value: &T, out: &mut Vec<u8>) -> std::result::Result<bool, String> {
                S::encode(value, out)
            }
        }

        impl<M, T, S: Slot<T>> Readable<M, T> for $name<M, T, S> {
            fn read<Q: IdValue + ?Sized>(&self, id: &Q) -> LoadField<M, T>
            where
                M: RedisHash,
            {
                LoadField::new::<Q, S>(id, self.idx)
            }
        }
    )*};
}
handle!(Field, IndexField, UniqueField, CounterField);

/// A field handle whose value [`RedisHash::load_field`] reads.
pub trait Readable<M, T> {
    /// The read of this field of the entity with `id`.
    fn read<Q: IdValue + ?Sized>(&self, id: &Q) -> LoadField<M, T>
    where
        M: RedisHash;
}

impl<M, T, S: Slot<T>> Readable<M, T> for ExpiryField<M, T, S> {
    fn read<Q: IdValue + ?Sized>(&self, id: &Q) -> LoadField<M, T>
    where
        M: RedisHash,
    {
        LoadField::new::<Q, S>(id, self.idx)
    }
}

/// The `expires_at` field: setting it with [`Update::set`] also moves the
/// entity's expiry.
pub struct ExpiryField<M, T, S> {
    idx: usize,
    _p: Marker<M, T, S>,
}

impl<M: RedisHash, T, S> std::fmt::Debug for ExpiryField<M, T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = M::SCHEMA.fields.get(self.idx).map_or("?", |f| f.rust_name);
        write!(f, "{}::{}", M::SCHEMA.model, name)
    }
}

impl<M, T, S> ExpiryField<M, T, S> {
    /// Used by the derive.
    #[doc(hidden)]
    pub const fn new(idx: usize) -> Self {
        ExpiryField {
            idx,
            _p: PhantomData,
        }
    }
}

impl<M, T, S> Clone for ExpiryField<M, T, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, T, S> Copy for ExpiryField<M, T, S> {}

impl<M, T: ExpiresAtValue, S: Slot<T>> Settable<M, T> for ExpiryField<M, T, S> {
    fn position(&self) -> usize {
        self.idx
    }
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> std::result::Result<bool, String> {
        S::encode(value, out)
    }
    fn expiry_ms(&self, value: &T) -> Option<i64> {
        value.expires_at_ms()
    }
}

/// A field handle that [`Update::set`] accepts.
pub trait Settable<M, T> {
    /// Position of the field in the schema.
    fn position(&self) -> usize;
    /// Encodes a value of the field; `Ok(false)` means "absent" (`None`).
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> std::result::Result<bool, String>;
    /// For the `expires_at` field: the expiry the value sets.
    fn expiry_ms(&self, _value: &T) -> Option<i64> {
        None
    }
}

/// A field handle whose values [`RedisHash::find_by`] can look up.
pub trait Lookup<M, T> {
    /// Position of the field in the schema.
    fn position(&self) -> usize;
    /// Encodes the looked-up value as it is stored.
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> std::result::Result<bool, String>;
}

impl<M, T, S: Slot<T>> Lookup<M, T> for IndexField<M, T, S> {
    fn position(&self) -> usize {
        self.idx
    }
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> std::result::Result<bool, String> {
        S::encode(value, out)
    }
}

// ---------------------------------------------------------------------------
// The trait

/// A struct stored as a Redis hash. Implemented by `#[derive(RedisHash)]`.
///
/// Every method returns an [operation](crate::op::Operation): nothing is sent
/// until you call `.run(&mut con)` or `.run_async(&mut con).await`, and
/// operations of any models combine with [`batch`](crate::batch) into one
/// pipeline. Each method says which commands it sends; unless it says
/// otherwise it costs one round trip.
pub trait RedisHash: Sized {
    /// The id: the type of the `#[redis(id)]` field, or a tuple of the id
    /// fields in the order they appear in the key template.
    type Id: IdValue;

    /// The schema generated by the derive.
    const SCHEMA: &'static HashSchema;

    /// Writes the id parts of this entity.
    fn write_id(&self, out: &mut IdBuf);

    /// Encodes every stored field.
    fn encode(&self, out: &mut FieldWriter) -> Result<()>;

    /// Decodes an entity.
    fn decode(fields: &FieldReader<'_>) -> Result<Self>;

    /// The instant the entity expires at (milliseconds since the epoch), from
    /// its `expires_at` field. `None` when the model has none or it is `None`.
    fn expires_at_ms(&self) -> Option<i64> {
        None
    }

    /// Whether saves and deletes of this model invalidate cache entries
    /// (`#[redis(invalidates(..))]` / `invalidates_tag(..)`); see
    /// [`cache::CacheInvalidations`](crate::cache::CacheInvalidations).
    const INVALIDATES_CACHE: bool = false;

    /// Lists the cache entries and tags that depend on this entity
    /// (generated from the `invalidates` and `invalidates_tag` attributes).
    fn cache_invalidations(&self, _out: &mut crate::cache::CacheInvalidations) {}

    /// The value of the `version` field (0 when the model has none).
    fn version(&self) -> u64 {
        0
    }

    // -- keys ---------------------------------------------------------------

    /// The key of the entity with `id` (no namespace beyond the model's own).
    fn key_of<Q: IdValue + ?Sized>(id: &Q) -> String
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        let mut buf = IdBuf::new();
        id.write_id(&mut buf);
        Self::SCHEMA.key(None, &buf)
    }

    /// The key of this entity.
    fn key(&self) -> String {
        let mut buf = IdBuf::new();
        self.write_id(&mut buf);
        Self::SCHEMA.key(None, &buf)
    }

    // -- writes -------------------------------------------------------------

    /// Saves (upserts) the entity: sets every field, removes the `None` ones,
    /// applies the model TTL or `expires_at` (otherwise keeps the TTL the key
    /// has), bumps the version, and updates the indexes, atomically.
    ///
    /// Sends one `HSET` when the model has no TTL, expiry field, version,
    /// indexes or `None` field to remove; otherwise one `EVALSHA` of the write
    /// script over the entity key and, for indexed models, its index keys.
    /// One round trip; two when the unique index names another id as the
    /// holder of one of the entity's unique values: the script then writes
    /// nothing, and a second call with the holder's key checks that the
    /// holder still exists and still holds the value. If it does, the save
    /// fails with [`Error::UniqueViolation`]; if not (deleted or edited behind
    /// the library's back), the stale index entry is removed and the save
    /// goes ahead. Inside a [`Transaction`](crate::tx::Transaction) there is
    /// no second round and the index is trusted.
    ///
    /// A model with `unique` fields in the bucketed layout (a key without
    /// hash tag) first reserves each unique value in its own slot: two
    /// round trips (reserve, write), two more when a reservation in the way
    /// belongs to an entity that does not hold the value (it is revoked and
    /// taken over), three more after the write when it replaced a value
    /// (its reservation is released). See the module docs, *Bucketed
    /// layout*. Refused inside a transaction ([`Error::InvalidArgument`]).
    fn save(&self) -> Save<'_, Self> {
        Save::new(self, ops::WriteMode::Save)
    }

    /// Saves the entity only if no entity has its id: fails with
    /// [`Error::AlreadyExists`]. One `EVALSHA`, one round trip (two when a
    /// unique-index holder is verified, as for [`save`](Self::save)).
    fn insert(&self) -> Save<'_, Self> {
        Save::new(self, ops::WriteMode::Insert)
    }

    /// Saves the entity only if the stored version still equals
    /// `self.version()` (a missing entity counts as version 0): fails with
    /// [`Error::VersionConflict`] when another writer saved first. Returns
    /// the new version. One `EVALSHA`, one round trip (two when a
    /// unique-index holder is verified, as for [`save`](Self::save)).
    fn save_versioned(&self) -> Save<'_, Self> {
        Save::new(self, ops::WriteMode::Versioned)
    }

    /// Changes only the fields given with [`Update::set`]; fails with
    /// [`Error::NotFound`] when there is no entity. Keeps the TTL (unless it
    /// sets the `expires_at` field), bumps the version, updates indexes. One
    /// `EVALSHA`, one round trip (two when a unique-index holder is
    /// verified, as for [`save`](Self::save); reserved unique values of
    /// the bucketed layout take the rounds [`save`](Self::save) lists).
    fn update<Q: IdValue + ?Sized>(id: &Q) -> Update<Self>
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        Update::new(id)
    }

    /// Saves many entities in one pipeline (one per hash slot on a Cluster).
    fn save_many<'a, I>(entities: I) -> Many<Save<'a, Self>>
    where
        I: IntoIterator<Item = &'a Self>,
        Self: 'a,
    {
        many(entities.into_iter().map(RedisHash::save))
    }

    /// Adds `by` to a counter field of an existing entity with `HINCRBY` (or
    /// `HINCRBYFLOAT`) inside a script that refuses to leave the range of the
    /// Rust type ([`Error::CounterOutOfRange`]) and to create a partial entity
    /// ([`Error::NotFound`]). Keeps the TTL. Returns the new value. One
    /// `EVALSHA`, one round trip.
    fn increment<Q, T, S>(
        id: &Q,
        field: CounterField<Self, T, S>,
        by: T::Delta,
    ) -> Increment<Self, T>
    where
        Q: IdValue + ?Sized,
        Self::Id: std::borrow::Borrow<Q>,
        T: CounterValue,
    {
        Increment::new(id, field.index(), by)
    }

    // -- reads --------------------------------------------------------------

    /// Loads the entity with `id`, or `None`. One `HMGET`, one round trip.
    fn load<Q: IdValue + ?Sized>(id: &Q) -> Load<Self>
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        Load::new(id)
    }

    /// Loads many entities in one pipeline of `HMGET`s (one pipeline per hash
    /// slot on a Cluster); the result keeps the order of `ids`, with `None`
    /// for missing ones.
    fn load_many<'q, Q, I>(ids: I) -> Many<Load<Self>>
    where
        Q: IdValue + ?Sized + 'q,
        Self::Id: std::borrow::Borrow<Q>,
        I: IntoIterator<Item = &'q Q>,
    {
        many(ids.into_iter().map(Load::new))
    }

    /// Reads one field of the entity with `id` (`User::EMAIL`, a handle the
    /// derive generates), decoded as the model decodes it: the other
    /// fields are not read, so a field other clients read and write alone
    /// (`HGET user:profile:123 email`) costs the same here. One `HGET`,
    /// one round trip.
    ///
    /// The output is `None` when the field is absent, which for a required
    /// field means the entity does not exist; an absent `Option` field
    /// reads as `Some(None)` whether or not the entity exists (`HGET`
    /// cannot tell: use [`exists`](Self::exists) or [`load`](Self::load)
    /// when that matters).
    fn load_field<Q, T, F>(id: &Q, field: F) -> LoadField<Self, T>
    where
        Q: IdValue + ?Sized,
        Self::Id: std::borrow::Borrow<Q>,
        F: Readable<Self, T>,
    {
        field.read(id)
    }

    /// Whether an entity with `id` exists. One `EXISTS`, one round trip.
    fn exists<Q: IdValue + ?Sized>(id: &Q) -> Exists<Self>
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        Exists::new(id)
    }

    /// The remaining time to live. One `PTTL`, one round trip.
    fn ttl<Q: IdValue + ?Sized>(id: &Q) -> TtlOf<Self>
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        TtlOf::new(id)
    }

    /// Finds the entities whose indexed `field` equals `value`. For models
    /// whose hash tag holds id fields, use [`RedisHash::find_by_in`].
    ///
    /// Two round trips: `ZRANGEBYLEX` on the index, then one script that
    /// reads the entities, keeps those that still hold the value and removes
    /// index entries that no longer match. (One round trip would need a script
    /// reading keys it was not given, which Redis Cluster forbids.)
    ///
    /// In the bucketed layout (see the module docs) each round sends one
    /// command per bucket (`ZRANGEBYLEX` on every partition, then the script
    /// on each partition that has candidates), pipelined per node: on a
    /// Cluster, one round trip per node in each round. The partitions'
    /// entries are merged in id order; with [`FindBy::limit`] each partition
    /// returns its first `offset + count` and the merged list is cut.
    ///
    /// Without a limit the index is read a page at a time (1,024 entries;
    /// [`FindBy::page_size`]), each page verified in the round that reads
    /// the next: no command grows with the number of matches, the number
    /// of round trips does.
    ///
    /// While a Cluster slot is half migrated (some of the script's keys
    /// moved, some not), the script is refused (`TRYAGAIN`) once the
    /// client's retries are spent; its candidates are then read with one
    /// `HMGET` each in one more round (a lone command follows `ASK`) and
    /// checked here, and no index entry is removed. A find in that state
    /// costs the client's `TRYAGAIN` retry budget: bound it on a raw
    /// redis-rs `ClusterClient` (`retries`, `max_retry_wait`), whose default
    /// waits for minutes. The same holds for [`RedisHash::find_unique`].
    fn find_by<T, F: Lookup<Self, T>>(field: F, value: &T) -> FindBy<Self> {
        FindBy::new(&(), field.position(), |out| field.encode(value, out))
    }

    /// [`RedisHash::find_by`] inside the scope of a hash tag that holds id
    /// fields: `scope` gives those id parts (a tuple if several).
    fn find_by_in<Sc: IdValue + ?Sized, T, F: Lookup<Self, T>>(
        scope: &Sc,
        field: F,
        value: &T,
    ) -> FindBy<Self> {
        FindBy::new(scope, field.position(), |out| field.encode(value, out))
    }

    /// Finds the entity whose `unique` field equals `value`. Two round trips:
    /// `HGET` on the unique index, then a verifying read like
    /// [`RedisHash::find_by`]. In the bucketed layout the first reads the
    /// value's reservation (in the value's own slot) and the second loads
    /// the holder it names (`HMGET`), which must hold the value: a
    /// reservation whose holder does not (an orphan) reads as `None`.
    fn find_unique<T, S: Slot<T>>(field: UniqueField<Self, T, S>, value: &T) -> FindUnique<Self> {
        FindUnique::new(&(), field.index(), |out| S::encode(value, out))
    }

    /// [`RedisHash::find_unique`] inside a hash tag that holds id fields.
    fn find_unique_in<Sc: IdValue + ?Sized, T, S: Slot<T>>(
        scope: &Sc,
        field: UniqueField<Self, T, S>,
        value: &T,
    ) -> FindUnique<Self> {
        FindUnique::new(scope, field.index(), |out| S::encode(value, out))
    }

    // -- deletes and expiry ---------------------------------------------------

    /// Deletes the entity and its index entries. Returns whether it existed.
    /// One `DEL`, or one `EVALSHA` for indexed models; one round trip. With
    /// unique fields in the bucketed layout, three more release the
    /// reservations of its values (inside a transaction they are left, and
    /// the next saver of each value takes them over).
    fn delete<Q: IdValue + ?Sized>(id: &Q) -> Delete<Self>
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        Delete::new(id)
    }

    /// Deletes many entities in one pipeline; returns how many existed.
    fn delete_many<'q, Q, I>(ids: I) -> ops::DeleteMany<Self>
    where
        Q: IdValue + ?Sized + 'q,
        Self::Id: std::borrow::Borrow<Q>,
        I: IntoIterator<Item = &'q Q>,
    {
        ops::DeleteMany::new(many(ids.into_iter().map(Delete::new)))
    }

    /// Sets the time to live. Returns whether the entity exists. One
    /// `PEXPIRE`, or one `EVALSHA` for indexed models (which also record the
    /// expiry for index pruning); one round trip. At least 1 ms; a longer
    /// TTL than 2^53 − 1 ms (about 285,000 years) is sent as that.
    fn expire<Q: IdValue + ?Sized>(id: &Q, ttl: std::time::Duration) -> Expire<Self>
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        Expire::new(id, Some(ttl))
    }

    /// Removes the time to live. Returns whether the entity exists. One
    /// `PERSIST`, or one `EVALSHA` for indexed models; one round trip.
    fn persist<Q: IdValue + ?Sized>(id: &Q) -> Persist<Self>
    where
        Self::Id: std::borrow::Borrow<Q>,
    {
        Persist::new(id, None)
    }
}
