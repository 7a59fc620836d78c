//! Tag sets: item → tags and tag → items, kept consistent atomically.

use std::marker::PhantomData;

use redis::Value;

use crate::codec::{FieldValue, Plain};
use crate::error::{Error, Result};
use crate::keys::{KeyPart, Namespace, escape_bytes_into, hash_tag, impl_namespaced, key_slot};
use crate::leaderboard::MemberRef;
use crate::op::{Operation, Plan, Replies, Step};

use super::feed::stored_error;
use super::{Layout, Page, array, decode_at, encode_ref, gather, redis_count};

crate::script! {
    /// Adds tags to an item on both sides (see [`TagSet::tag`]).
    pub(crate) struct TagsAddScript {
        name: "redis_state.collections.tags_add",
        keys: [item, ..tag_sets],
        args: [limit: u64, member: &[u8], ..tags],
        returns: Value,
        lua: concat!(include_str!("lua/tags_common.lua"), include_str!("lua/tags_add.lua")),
    }
}

crate::script! {
    /// Removes tags from an item on both sides (see [`TagSet::untag`]).
    pub(crate) struct TagsRemoveScript {
        name: "redis_state.collections.tags_remove",
        keys: [item, ..tag_sets],
        args: [member: &[u8], ..tags],
        returns: Value,
        lua: include_str!("lua/tags_remove.lua"),
    }
}

crate::script! {
    /// Replaces an item's tags on both sides (see [`TagSet::set_tags`]).
    pub(crate) struct TagsSetScript {
        name: "redis_state.collections.tags_set",
        keys: [item, ..tag_sets],
        args: [prefix: &str, suffix: &str, limit: u64, member: &[u8], ..tags],
        returns: Value,
        lua: concat!(include_str!("lua/tags_common.lua"), include_str!("lua/tags_set.lua")),
    }
}

crate::script! {
    /// Restores the reverse entries of an item's tags (see
    /// [`TagSet::reindex`]).
    pub(crate) struct TagsReindexScript {
        name: "redis_state.collections.tags_reindex",
        keys: [item],
        args: [prefix: &str, suffix: &str, limit: u64, member: &[u8]],
        returns: Value,
        lua: concat!(include_str!("lua/tags_common.lua"), include_str!("lua/tags_reindex.lua")),
    }
}

/// The limit of tags per item unless [`TagSet::max_tags`] sets another.
pub const DEFAULT_MAX_TAGS: u64 = 1000;

/// Tags on items, indexed both ways: for each item the set of its tags,
/// for each tag the set of its items, so that "the items having all these
/// tags" is one `SINTER` of the tags' sets (the seed's
/// `find_items_with_all_tags`, which intersects `item:*:tags` literally and
/// calls itself "simplified", done for real).
///
/// Every change is one script over both sides, so no reader sees an item
/// in a tag's set without the tag in the item's set or the other way
/// round, and [`set_tags`](TagSet::set_tags) removes the item from the
/// sets of the tags it no longer has. Items and tags are stored in their
/// plain form (`I` and `T` are [`FieldValue`]s: strings, integers, ...)
/// and escaped where they are part of a key; tags must be valid UTF-8.
///
/// # Keys and the hash tag
///
/// `tags:{<name>}:item:<item>` holds an item's tags,
/// `tags:{<name>}:tag:<tag>` a tag's items (name, item and tag escaped).
/// The hash tag is the tag space's name, so every key of one space is in
/// one Cluster slot: a change and an intersection are single-slot, and a
/// retag can reach the sets of the tags an item had without knowing them
/// beforehand. The price is that one space lives on one node: spread a
/// large catalogue over several spaces (per tenant, per category) rather
/// than one. [`key_layout`](TagSet::key_layout) takes other prefixes, which
/// must carry one and the same hash tag.
///
/// # Bounds
///
/// An item holds at most [`max_tags`](TagSet::max_tags) tags (default
/// [`DEFAULT_MAX_TAGS`]): a write that would pass the limit, or a retag of
/// an item that another client gave more, is refused and writes nothing,
/// so the work of one script stays bounded (DESIGN principle 10). A query
/// returns a whole intersection or union: its size is bounded by the
/// smallest (for `SINTER`) or the sum (for `SUNION`) of the tags' sets;
/// [`count_with_all`](TagSet::count_with_all) counts with a limit.
pub struct TagSet<I = String, T = String> {
    item: Layout,
    tag: Layout,
    invalid: Option<String>,
    max_tags: u64,
    _t: PhantomData<fn() -> (I, T)>,
}

impl<I, T> Clone for TagSet<I, T> {
    fn clone(&self) -> Self {
        TagSet {
            item: self.item.clone(),
            tag: self.tag.clone(),
            invalid: self.invalid.clone(),
            max_tags: self.max_tags,
            _t: PhantomData,
        }
    }
}

impl<I, T> std::fmt::Debug for TagSet<I, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagSet")
            .field("item", &self.item)
            .field("tag", &self.tag)
            .field("invalid", &self.invalid)
            .field("max_tags", &self.max_tags)
            .finish()
    }
}

fn segment(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    escape_bytes_into(&mut out, raw);
    out
}

impl<I: FieldValue, T: FieldValue> TagSet<I, T> {
    /// The tag space named `name` (the hash tag of all its keys; not
    /// empty).
    pub fn new(name: impl KeyPart) -> Self {
        let mut id = crate::keys::IdBuf::new();
        name.write_key_part(&mut id);
        let name = id.joined();
        let mut item = Layout::own("tags", &"");
        let mut tag = item.clone();
        item.set(&format!("tags:{{{name}}}:item:"), "");
        tag.set(&format!("tags:{{{name}}}:tag:"), "");
        TagSet {
            item,
            tag,
            invalid: name
                .is_empty()
                .then(|| "the name of a tag space is its hash tag and cannot be empty".to_owned()),
            max_tags: DEFAULT_MAX_TAGS,
            _t: PhantomData,
        }
    }

    /// Keys an item's tags at `<item_prefix><item><item_suffix>` and a
    /// tag's items at `<tag_prefix><tag><tag_suffix>` (values escaped).
    /// Both prefixes must hold the same hash tag (`{…}`, not empty), so
    /// every key of the space shares a Cluster slot; otherwise every
    /// operation fails with [`Error::InvalidConfig`] before sending.
    ///
    /// ```
    /// use redis_state::collections::TagSet;
    /// // the seed's item:<id>:tags, beside tag:<tag>:items, in one slot
    /// let tags = TagSet::<u64>::new("catalog")
    ///     .key_layout("{catalog}:item:", ":tags", "{catalog}:tag:", ":items");
    /// assert_eq!(tags.item_key(&42), "{catalog}:item:42:tags");
    /// assert_eq!(tags.tag_key("c++"), "{catalog}:tag:c++:items");
    /// ```
    pub fn key_layout(
        mut self,
        item_prefix: &str,
        item_suffix: &str,
        tag_prefix: &str,
        tag_suffix: &str,
    ) -> Self {
        fn tag_of(p: &str) -> Option<&[u8]> {
            let t = hash_tag(p.as_bytes())?;
            // the whole tag inside the prefix: an escaped value holds no brace
            let close = p.find('{').map(|o| o + 1 + t.len())?;
            (p.as_bytes().get(close) == Some(&b'}')).then_some(t)
        }
        self.invalid = match (tag_of(item_prefix), tag_of(tag_prefix)) {
            (Some(a), Some(b)) if a == b => None,
            _ => Some(format!(
                "the item prefix `{item_prefix}` and the tag prefix `{tag_prefix}` must hold the same hash tag"
            )),
        };
        self.item.set(item_prefix, item_suffix);
        self.tag.set(tag_prefix, tag_suffix);
        self
    }

    /// At most `max` tags per item (at least 1).
    pub fn max_tags(mut self, max: u64) -> Self {
        self.max_tags = max.clamp(1, (1 << 53) - 1);
        self
    }

    /// Puts every key in namespace `ns` (`<ns>:<key>`).
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.item.namespace(ns);
        self.tag.namespace(ns);
        self
    }

    /// The key of `item`'s set of tags.
    pub fn item_key<Q: MemberRef<I> + ?Sized>(&self, item: &Q) -> String {
        let raw = encode_ref::<I, Q>(item, "item").unwrap_or_default();
        self.item.key_of_segment(&segment(&raw))
    }

    /// The key of `tag`'s set of items.
    pub fn tag_key<Q: MemberRef<T> + ?Sized>(&self, tag: &Q) -> String {
        let raw = encode_ref::<T, Q>(tag, "tag").unwrap_or_default();
        self.tag.key_of_segment(&segment(&raw))
    }

    fn check(&self) -> Result<()> {
        match &self.invalid {
            Some(reason) => Err(Error::InvalidConfig {
                what: "tag set layout",
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The item's member and key, and the tags' members and keys
    /// (distinct, in order).
    fn parts<Q: MemberRef<I> + ?Sized, R: MemberRef<T>>(
        &self,
        item: &Q,
        tags: impl IntoIterator<Item = R>,
    ) -> Result<Parts> {
        self.check()?;
        let member = encode_ref::<I, Q>(item, "item")?;
        let key = self.item.key_of_segment(&segment(&member));
        let mut seen = std::collections::HashSet::new();
        let mut out = Parts {
            key,
            member,
            tags: Vec::new(),
            tag_keys: Vec::new(),
        };
        for t in tags {
            let raw = encode_ref::<T, R>(&t, "tag")?;
            if std::str::from_utf8(&raw).is_err() {
                return Err(Error::InvalidArgument {
                    operation: "a tag set write",
                    reason: format!("tag {} is not UTF-8", crate::error::preview_bytes(&raw)),
                });
            }
            if seen.insert(raw.clone()) {
                if out.tags.len() as u64 >= self.max_tags {
                    return Err(too_many(&out.key, out.tags.len() as u64 + 1, self.max_tags));
                }
                out.tag_keys.push(self.tag.key_of_segment(&segment(&raw)));
                out.tags.push(raw);
            }
        }
        Ok(out)
    }

    fn write(&self, parts: Result<Parts>, build: fn(&Self, &Parts) -> Call) -> TagWrite {
        match parts {
            Ok(p) => TagWrite {
                key: p.key.clone(),
                max: self.max_tags,
                call: Ok(build(self, &p)),
            },
            Err(e) => TagWrite {
                key: String::new(),
                max: self.max_tags,
                call: Err(Some(e)),
            },
        }
    }

    /// Adds `tags` to `item`, on both sides; the output is the number of
    /// tags the item holds after. Refused (nothing written) when the item
    /// would hold more than [`max_tags`](TagSet::max_tags). One `EVALSHA`
    /// (`SCARD`, `SISMEMBER` and two `SADD` per tag), atomic, one round
    /// trip.
    pub fn tag<Q: MemberRef<I> + ?Sized, R: MemberRef<T>>(
        &self,
        item: &Q,
        tags: impl IntoIterator<Item = R>,
    ) -> TagWrite {
        self.write(self.parts(item, tags), |set, p| {
            let mut call = TagsAddScript::new(&p.key, set.max_tags, &p.member[..]);
            for (k, t) in p.tag_keys.iter().zip(&p.tags) {
                call = call.tag_sets(k).tags(&t[..]);
            }
            Call::Add(call)
        })
    }

    /// Removes `tags` from `item`, on both sides; the output is the number
    /// of tags the item holds after. One `EVALSHA` (two `SREM` per tag),
    /// atomic, one round trip.
    pub fn untag<Q: MemberRef<I> + ?Sized, R: MemberRef<T>>(
        &self,
        item: &Q,
        tags: impl IntoIterator<Item = R>,
    ) -> TagWrite {
        self.write(self.parts(item, tags), |_, p| {
            let mut call = TagsRemoveScript::new(&p.key, &p.member[..]);
            for (k, t) in p.tag_keys.iter().zip(&p.tags) {
                call = call.tag_sets(k).tags(&t[..]);
            }
            Call::Remove(call)
        })
    }

    /// Replaces `item`'s tags with `tags`: the tags it had that are not in
    /// the list lose it from their sets (found from the item's own set,
    /// inside the script), the new ones gain it. The output is the number of
    /// tags after. Refused (nothing written) when the item holds or would
    /// hold more than [`max_tags`](TagSet::max_tags). One `EVALSHA`,
    /// atomic, one round trip.
    pub fn set_tags<Q: MemberRef<I> + ?Sized, R: MemberRef<T>>(
        &self,
        item: &Q,
        tags: impl IntoIterator<Item = R>,
    ) -> TagWrite {
        self.write(self.parts(item, tags), |set, p| {
            let mut call = TagsSetScript::new(
                &p.key,
                set.tag.head(),
                set.tag.suffix(),
                set.max_tags,
                &p.member[..],
            );
            for (k, t) in p.tag_keys.iter().zip(&p.tags) {
                call = call.tag_sets(k).tags(&t[..]);
            }
            Call::Set(call)
        })
    }

    /// Removes `item` from the space: from the sets of all its tags, and
    /// its own set. [`set_tags`](TagSet::set_tags) with no tags.
    pub fn remove_item<Q: MemberRef<I> + ?Sized>(&self, item: &Q) -> TagWrite {
        self.set_tags(item, std::iter::empty::<T>())
    }

    /// Gives every tag in `item`'s set the item in its own set: the repair
    /// for items whose tags another client wrote on one side only (the
    /// seed's `add_tags` writes `item:<id>:tags` and nothing else). Stale
    /// entries in tags' sets (a tag another client removed from the item's
    /// set only) are not found this way: remove them with
    /// [`untag`](TagSet::untag). One `EVALSHA`, one round trip.
    pub fn reindex<Q: MemberRef<I> + ?Sized>(&self, item: &Q) -> TagWrite {
        self.write(self.parts(item, std::iter::empty::<T>()), |set, p| {
            Call::Reindex(TagsReindexScript::new(
                &p.key,
                set.tag.head(),
                set.tag.suffix(),
                set.max_tags,
                &p.member[..],
            ))
        })
    }

    /// The tags of `item`, in no particular order (tags that do not decode
    /// as `T` are skipped and counted, [`TagsOf::strict`]). One
    /// `SMEMBERS`, one round trip.
    pub fn tags_of<Q: MemberRef<I> + ?Sized>(&self, item: &Q) -> TagsOf<T> {
        let key = self.parts(item, std::iter::empty::<T>()).map(|p| p.key);
        TagsOf {
            read: Read::new("SMEMBERS", key.map(|k| vec![k]), None),
            _t: PhantomData,
        }
    }

    fn query<R: MemberRef<T>>(
        &self,
        command: &'static str,
        tags: impl IntoIterator<Item = R>,
        limit: Option<u64>,
    ) -> Read {
        let keys = self.check().and_then(|()| {
            let mut keys = Vec::new();
            for t in tags {
                let raw = encode_ref::<T, R>(&t, "tag")?;
                keys.push(self.tag.key_of_segment(&segment(&raw)));
            }
            if keys.is_empty() {
                return Err(Error::InvalidArgument {
                    operation: "a tag query",
                    reason: "name at least one tag".to_owned(),
                });
            }
            Ok(keys)
        });
        Read::new(command, keys, limit)
    }

    /// The items having every one of `tags`, in no particular order. One
    /// `SINTER` of the tags' sets, one round trip. At least one tag.
    pub fn items_with_all<R: MemberRef<T>>(
        &self,
        tags: impl IntoIterator<Item = R>,
    ) -> TagQuery<I> {
        TagQuery {
            read: self.query("SINTER", tags, None),
            _i: PhantomData,
        }
    }

    /// The items having at least one of `tags`. One `SUNION`, one round
    /// trip. At least one tag.
    pub fn items_with_any<R: MemberRef<T>>(
        &self,
        tags: impl IntoIterator<Item = R>,
    ) -> TagQuery<I> {
        TagQuery {
            read: self.query("SUNION", tags, None),
            _i: PhantomData,
        }
    }

    /// How many items have every one of `tags`, counting up to `limit` (0:
    /// no limit). One `SINTERCARD`, one round trip.
    pub fn count_with_all<R: MemberRef<T>>(
        &self,
        tags: impl IntoIterator<Item = R>,
        limit: u64,
    ) -> TagCount {
        TagCount {
            read: self.query("SINTERCARD", tags, Some(limit)),
        }
    }
}

impl_namespaced!([I: FieldValue, T: FieldValue] TagSet<I, T>);

fn too_many(key: &str, n: u64, max: u64) -> Error {
    Error::InvalidArgument {
        operation: "a tag set write",
        reason: format!("item `{key}` would hold {n} tags, more than the limit of {max}"),
    }
}

struct Parts {
    key: String,
    member: Vec<u8>,
    tags: Vec<Vec<u8>>,
    tag_keys: Vec<String>,
}

#[derive(Debug)]
enum Call {
    Add(TagsAddScript),
    Remove(TagsRemoveScript),
    Set(TagsSetScript),
    Reindex(TagsReindexScript),
}

/// A change of a [`TagSet`]: [`tag`](TagSet::tag),
/// [`untag`](TagSet::untag), [`set_tags`](TagSet::set_tags),
/// [`remove_item`](TagSet::remove_item), [`reindex`](TagSet::reindex). The
/// output is the number of tags the item holds after.
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct TagWrite {
    key: String,
    max: u64,
    call: Result<Call, Option<Error>>,
}

impl TagWrite {
    /// The key of the item's set of tags (empty when the write was refused
    /// while being built).
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Operation for TagWrite {
    type Output = u64;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match &mut self.call {
            Ok(Call::Add(c)) => c.prepare(plan),
            Ok(Call::Remove(c)) => c.prepare(plan),
            Ok(Call::Set(c)) => c.prepare(plan),
            Ok(Call::Reindex(c)) => c.prepare(plan),
            Err(e) => Err(stored_error(e, "a tag set write")),
        }
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        let v = replies.next_value()?;
        let (code, n): (i64, u64) = redis::FromRedisValue::from_redis_value_ref(&v)
            .map_err(|_| Error::unexpected("a tag set write", &v))?;
        if code < 0 {
            return Err(too_many(&self.key, n, self.max));
        }
        Ok(Step::Done(n))
    }
}

/// A read of sets: its command and keys (or the error that refused it).
#[derive(Debug)]
struct Read {
    command: &'static str,
    keys: Result<Vec<String>, Option<Error>>,
    limit: Option<u64>,
    strict: bool,
}

impl Read {
    fn new(command: &'static str, keys: Result<Vec<String>>, limit: Option<u64>) -> Self {
        Read {
            command,
            keys: keys.map_err(Some),
            limit,
            strict: false,
        }
    }

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let keys = match &mut self.keys {
            Ok(k) => k,
            Err(e) => return Err(stored_error(e, "a tag set read")),
        };
        match self.limit {
            None => {
                plan.cmd_keys(self.command, keys)?;
            }
            Some(limit) => {
                // SINTERCARD numkeys key [key ...] LIMIT n: routed by the
                // first key, after checking they share its slot.
                let first = keys.first().cloned().unwrap_or_default();
                let slot = key_slot(first.as_bytes());
                if keys.iter().any(|k| key_slot(k.as_bytes()) != slot) {
                    return Err(Error::CrossSlot {
                        unit: self.command.to_owned(),
                        keys: keys.clone(),
                    });
                }
                plan.cmd_routed(self.command, first)
                    .arg(keys.len())
                    .arg(&keys[..])
                    .arg("LIMIT")
                    .arg(redis_count(limit));
            }
        }
        Ok(())
    }

    fn key(&self) -> &str {
        match &self.keys {
            Ok(k) if k.len() == 1 => &k[0],
            _ => "(an intersection of tag sets)",
        }
    }

    fn decode<V: FieldValue>(&self, replies: &mut Replies) -> Result<Page<V>> {
        let mut page = Page::new();
        let items = array(replies.next_value()?, "a tag set read")?;
        let key = self.key();
        for raw in &items {
            let entry = decode_at::<V, Plain>(
                key,
                || format!("member {}", crate::error::preview_value(raw)),
                raw,
            );
            gather(&mut page, self.strict, key, entry)?;
        }
        Ok(page)
    }
}

/// See [`TagSet::tags_of`].
#[must_use = "an operation does nothing until it is run"]
pub struct TagsOf<T> {
    read: Read,
    _t: PhantomData<fn() -> T>,
}

/// See [`TagSet::items_with_all`] and [`TagSet::items_with_any`].
#[must_use = "an operation does nothing until it is run"]
pub struct TagQuery<I> {
    read: Read,
    _i: PhantomData<fn() -> I>,
}

macro_rules! set_read {
    ($($ty:ident),*) => {$(
        impl<V> std::fmt::Debug for $ty<V> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty)).field("read", &self.read).finish()
            }
        }

        impl<V> $ty<V> {
            /// Fails the read with the [`Error::Decode`] of the first member
            /// that does not decode instead of skipping it.
            pub fn strict(mut self) -> Self {
                self.read.strict = true;
                self
            }
        }

        impl<V: FieldValue> Operation for $ty<V> {
            type Output = Page<V>;
            fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
                self.read.prepare(plan)
            }
            fn complete(&mut self, replies: &mut Replies) -> Result<Step<Page<V>>> {
                self.read.decode(replies).map(Step::Done)
            }
        }
    )*};
}
set_read!(TagsOf, TagQuery);

/// See [`TagSet::count_with_all`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct TagCount {
    read: Read,
}

impl Operation for TagCount {
    type Output = u64;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.read.prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        replies.next("a tag count").map(Step::Done)
    }
}
