//! Capped typed lists: activity feeds.

use std::marker::PhantomData;
use std::time::Duration;

use crate::codec::{Codec, Json};
use crate::error::{Error, Result};
use crate::keys::{KeyPart, Namespace, impl_namespaced};
use crate::op::{CommandOp, Operation, Plan, Replies, Step, command};
use crate::random::millis;

use super::{Layout, Page, array, decode_at, encode, gather, redis_count};

crate::script! {
    /// `LPUSH` + `LTRIM` + `PEXPIRE` of a feed (see [`Feed::push`]).
    pub(crate) struct FeedPushScript {
        name: "redis_state.collections.feed_push",
        keys: [list],
        args: [cap: u64, ttl_ms: u64, ..entries],
        returns: u64,
        lua: include_str!("lua/feed_push.lua"),
    }
}

/// The largest cap: list indexes reach Redis as integers, and the script
/// reads the cap as a double.
const MAX_CAP: u64 = (1 << 53) - 1;

/// A capped list per owner, newest entry first: an activity feed.
///
/// Each entry is one list element holding `T` in the codec `C` (JSON by
/// default, as the seed's `json.dumps`; `Feed<String, Plain>` for plain
/// text). A [`push`](Feed::push) adds entries at the head, trims the list
/// to its cap and renews its TTL, atomically, in one round trip; pages are
/// `LRANGE` reads. The cap is required (DESIGN principle 10): a feed never
/// grows past it.
///
/// Keys: `feed:<name>:<owner>` (both escaped), or the layout of
/// [`key_layout`](Feed::key_layout):
///
/// ```
/// use std::time::Duration;
/// use redis_state::collections::Feed;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Activity { action: String }
/// // the seed's add_to_feed: feed:<user id>, latest 100 items, 7 days
/// let feed = Feed::<Activity>::new("feed", 100)
///     .ttl(Duration::from_secs(7 * 86_400))
///     .key_layout("feed:", "");
/// assert_eq!(feed.key(42u64), "feed:42");
/// assert_eq!(feed.key("a:b"), "feed:a%3Ab");
/// ```
pub struct Feed<T, C = Json> {
    layout: Layout,
    cap: u64,
    ttl: Option<u64>,
    _t: PhantomData<fn() -> (T, C)>,
}

impl<T, C> Clone for Feed<T, C> {
    fn clone(&self) -> Self {
        Feed {
            layout: self.layout.clone(),
            cap: self.cap,
            ttl: self.ttl,
            _t: PhantomData,
        }
    }
}

impl<T, C> std::fmt::Debug for Feed<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("layout", &self.layout)
            .field("cap", &self.cap)
            .field("ttl_ms", &self.ttl)
            .finish()
    }
}

impl<T, C: Codec<T>> Feed<T, C> {
    /// The feeds named `name`, each keeping its newest `cap` entries. A cap
    /// of 0 is refused when an operation is built into a plan
    /// ([`Error::InvalidConfig`]); caps above 2^53 − 1 are that.
    pub fn new(name: impl KeyPart, cap: u64) -> Self {
        Feed {
            layout: Layout::own("feed", &name),
            cap: cap.min(MAX_CAP),
            ttl: None,
            _t: PhantomData,
        }
    }

    /// Every push gives the feed this TTL (`PEXPIRE`), so a feed nobody
    /// writes to any more goes away: the seed's `expire(key, 604800)`.
    /// Saturates like every TTL (1 ms to 2^53 − 1 ms). Without it the
    /// feed keeps the TTL it has.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(millis(ttl));
        self
    }

    /// Keys the feed of `owner` at `<prefix><owner><suffix>`, the owner
    /// escaped: `key_layout("feed:", "")` is the seed's `feed:<user id>`,
    /// `key_layout("user:", ":activity")` its `user:<user id>:activity`.
    pub fn key_layout(mut self, prefix: &str, suffix: &str) -> Self {
        self.layout.set(prefix, suffix);
        self
    }

    /// Puts every key in namespace `ns` (`<ns>:<key>`).
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.layout.namespace(ns);
        self
    }

    /// The cap.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// The key of `owner`'s feed.
    pub fn key(&self, owner: impl KeyPart) -> String {
        self.layout.key(&owner)
    }

    /// Adds `entry` at the head of `owner`'s feed, drops what is past the
    /// cap and renews the TTL; the output is the feed's length after. One
    /// `EVALSHA` (`LPUSH`, `LTRIM` when over the cap, `PEXPIRE` with a
    /// TTL), atomic: no reader sees more than `cap` entries, and on a key
    /// of another type nothing is written (`WRONGTYPE`).
    pub fn push(&self, owner: impl KeyPart, entry: &T) -> FeedPush {
        self.push_all(owner, std::iter::once(entry))
    }

    /// Adds `entries` (oldest first, so the last one ends up newest), as
    /// [`push`](Feed::push) does one. Only the newest `cap` of them are
    /// sent, since the others would be trimmed at once. Still one round
    /// trip.
    pub fn push_all<'a>(
        &self,
        owner: impl KeyPart,
        entries: impl IntoIterator<Item = &'a T>,
    ) -> FeedPush
    where
        T: 'a,
    {
        let key = self.key(owner);
        let call = self.push_call(&key, entries);
        FeedPush {
            key,
            call: call.map_err(Some),
        }
    }

    fn push_call<'a>(
        &self,
        key: &str,
        entries: impl IntoIterator<Item = &'a T>,
    ) -> Result<FeedPushScript>
    where
        T: 'a,
    {
        if self.cap == 0 {
            return Err(Error::InvalidConfig {
                what: "feed cap",
                reason: "a cap of 0 keeps nothing".to_owned(),
            });
        }
        let encoded = entries
            .into_iter()
            .map(|e| encode::<T, C>(e, "entry"))
            .collect::<Result<Vec<_>>>()?;
        let skip = encoded.len().saturating_sub(self.cap as usize);
        let mut call = FeedPushScript::new(key, self.cap, self.ttl.unwrap_or(0));
        for e in &encoded[skip..] {
            call = call.entries(&e[..]);
        }
        Ok(call)
    }

    /// Entries `start ..= start + count - 1` of `owner`'s feed (0 is the
    /// newest): the seed's `get_feed(user_id, start, end)`. Entries that
    /// do not decode are skipped and counted (see
    /// [`FeedPage::strict`]). One `LRANGE`, one round trip.
    pub fn page(&self, owner: impl KeyPart, start: u64, count: u64) -> FeedPage<T, C> {
        FeedPage {
            key: self.key(owner),
            start,
            count,
            strict: false,
            _t: PhantomData,
        }
    }

    /// The newest `n` entries: [`page`](Feed::page)`(owner, 0, n)`.
    pub fn recent(&self, owner: impl KeyPart, n: u64) -> FeedPage<T, C> {
        self.page(owner, 0, n)
    }

    /// The number of entries. One `LLEN`, one round trip.
    pub fn len(&self, owner: impl KeyPart) -> CommandOp<u64> {
        command("LLEN", self.key(owner))
    }

    /// Deletes `owner`'s feed; `true` when it existed. One `DEL`, one
    /// round trip.
    pub fn clear(&self, owner: impl KeyPart) -> CommandOp<bool> {
        command("DEL", self.key(owner))
    }
}

impl_namespaced!([T, C: Codec<T>] Feed<T, C>);

/// Takes the error a builder stored for `prepare` (once).
pub(crate) fn stored_error(e: &mut Option<Error>, operation: &'static str) -> Error {
    e.take().unwrap_or(Error::InvalidArgument {
        operation,
        reason: "this operation already failed".to_owned(),
    })
}

/// See [`Feed::push`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct FeedPush {
    key: String,
    call: Result<FeedPushScript, Option<Error>>,
}

impl FeedPush {
    /// The feed's key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Operation for FeedPush {
    type Output = u64;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match &mut self.call {
            Ok(call) => call.prepare(plan),
            Err(e) => Err(stored_error(e, "a feed push")),
        }
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        match &mut self.call {
            Ok(call) => call.complete(replies),
            Err(_) => Err(stored_error(&mut None, "a feed push")),
        }
    }
}

/// See [`Feed::page`].
#[must_use = "an operation does nothing until it is run"]
pub struct FeedPage<T, C = Json> {
    key: String,
    start: u64,
    count: u64,
    strict: bool,
    _t: PhantomData<fn() -> (T, C)>,
}

impl<T, C> std::fmt::Debug for FeedPage<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedPage")
            .field("key", &self.key)
            .field("start", &self.start)
            .field("count", &self.count)
            .field("strict", &self.strict)
            .finish()
    }
}

impl<T, C> FeedPage<T, C> {
    /// Fails the read with the [`Error::Decode`] of the first entry that
    /// does not decode (naming the key and the entry's index) instead of
    /// skipping it.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }
}

impl<T, C: Codec<T>> Operation for FeedPage<T, C> {
    type Output = Page<T>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let start = redis_count(self.start);
        let stop = redis_count(self.start.saturating_add(self.count - 1));
        plan.cmd("LRANGE", &self.key).arg(start).arg(stop);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Page<T>>> {
        let mut page = Page::new();
        if self.count == 0 {
            return Ok(Step::Done(page));
        }
        let items = array(replies.next_value()?, "a feed page")?;
        page.items.reserve(items.len());
        for (i, raw) in items.iter().enumerate() {
            let index = self.start.saturating_add(i as u64);
            let entry = decode_at::<T, C>(&self.key, || format!("index {index}"), raw);
            gather(&mut page, self.strict, &self.key, entry)?;
        }
        Ok(Step::Done(page))
    }
}
