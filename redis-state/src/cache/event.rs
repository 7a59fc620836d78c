//! Entity events: a `#[derive(RedisHash)]` model declares the cache entries
//! that depend on it (`#[redis(invalidates(View = "id"),
//! invalidates_tag(Page = "category:{category}"))]`), and its saves and
//! deletes drop them.
//!
//! A tag names the cached type whose entries carry it: its tag set lives in
//! that type's namespace (`<ns>:#tag:<tag>`, the operation's namespace when
//! it has one, else the cached type's static one), not the model's. Several
//! types carrying one tag are named one by one:
//! `invalidates_tag(Page = "category:{category}", List = "category:{category}")`.
//!
//! The commands ride in the pipeline of the write itself, after it: the
//! entity write stays one round trip (one `EVALSHA` or `HSET`), followed in
//! the same pipeline by one `invalidate` script per dependent entry and one
//! `tag_take` per tag; a second round trip deletes the members of the tags
//! (their keys may live on other Cluster slots) when there are any.
//!
//! **Ordering.** On a standalone server a pipeline runs in order: the
//! entity write lands before the entries are deleted and their fill leases
//! revoked, so no reader can load the old entity and store it after the
//! invalidation. On a Cluster the cache keys live in other slots, so they
//! cannot be in the write script and the async client sends the slot
//! groups concurrently: the invalidation may run a moment before the write.
//! The invalidation's *hold* (250 ms by default, see
//! [`Invalidate::hold`](super::Invalidate::hold)) refuses every fill in that
//! moment, so a reader that loaded the old entity cannot store it. The
//! remaining window is a write that lands more than the hold after the
//! invalidation (a node stalled that long); then a fill in between could
//! store the old entity until its TTL.

use super::ops::{DEFAULT_HOLD, TagTakeScript, entry_key, id_of, push_invalidate};
use super::{Cached, Tags};
use crate::error::Result;
use crate::keys::{IdBuf, IdValue, KeyTemplate, Namespace};
use crate::op::{Operation, Plan, Replies, Step};

/// The cache entries and tags an entity write invalidates; filled by the
/// `RedisHash` derive's `cache_invalidations`.
#[derive(Debug)]
pub struct CacheInvalidations {
    ns: Option<Namespace>,
    keys: Vec<String>,
    tags: Vec<String>,
    members: Option<Vec<String>>,
}

impl CacheInvalidations {
    /// In the operation's namespace `ns`, if any (else each cached type's
    /// static one).
    pub(crate) fn new(ns: Option<Namespace>) -> Self {
        CacheInvalidations {
            ns,
            keys: Vec::new(),
            tags: Vec::new(),
            members: None,
        }
    }

    /// The entry of cached type `C` with id `id`.
    pub fn key<C: Cached, Q: IdValue + ?Sized>(&mut self, id: &Q)
    where
        C::Id: std::borrow::Borrow<Q>,
    {
        self.key_parts::<C, Q>(id);
    }

    /// The entry of cached type `C` whose id has the parts of `id` (for
    /// composite ids built from the entity's fields; the derive checks the
    /// part count at compile time).
    pub fn key_parts<C: Cached, Q: IdValue + ?Sized>(&mut self, id: &Q) {
        self.keys
            .push(entry_key(C::SCHEMA, self.ns.as_ref(), &id_of(id)));
    }

    /// The tag `template` renders with `parts`, as entries of cached type
    /// `C` carry it: the tag set is the one in `C`'s namespace (the
    /// operation's, else `C`'s static one), where
    /// [`Cached::invalidate_tag`] finds it too.
    pub fn tag<C: Cached>(&mut self, template: &KeyTemplate, parts: &IdBuf) {
        let tag = template.render(None, parts);
        let key = Tags::key_with(self.ns.as_ref(), C::SCHEMA.key.namespace, &tag);
        // Types of one namespace share the tag set: take it once.
        if !self.tags.contains(&key) {
            self.tags.push(key);
        }
    }

    /// The entry keys collected.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// True when nothing is to be invalidated.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.tags.is_empty()
    }

    /// Writes the commands of the current round.
    pub(crate) fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match &self.members {
            None => {
                for k in &self.keys {
                    push_invalidate(plan, k, DEFAULT_HOLD)?;
                }
                for t in &self.tags {
                    TagTakeScript::new(t, super::entry::now_ms()).prepare(plan)?;
                }
            }
            Some(members) => {
                for m in members {
                    push_invalidate(plan, m, DEFAULT_HOLD)?;
                }
            }
        }
        Ok(())
    }

    /// Reads the replies of the current round; `Again` when tag members are
    /// left to delete.
    pub(crate) fn complete(&mut self, replies: &mut Replies) -> Result<Step<()>> {
        match &self.members {
            None => {
                for _ in &self.keys {
                    replies.next_value()?;
                }
                let mut members = Vec::new();
                for _ in &self.tags {
                    let m: Vec<String> = replies.next("the tag_take script")?;
                    members.extend(m);
                }
                if members.is_empty() {
                    return Ok(Step::Done(()));
                }
                self.members = Some(members);
                Ok(Step::Again)
            }
            Some(members) => {
                for _ in members {
                    replies.next_value()?;
                }
                Ok(Step::Done(()))
            }
        }
    }
}
