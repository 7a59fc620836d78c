//! The local (in-process) cache: a bounded map in front of Redis, kept
//! honest by the server with RESP3 client tracking.
//!
//! # How it stays honest
//!
//! [`LocalCache::connect_async`] opens one RESP3 connection per node (each primary
//! of a Cluster) and turns on `CLIENT TRACKING ON BCAST PREFIX <p> …` for
//! the key prefixes it caches. From then on the server pushes an
//! `invalidate` message for every write to a key under those prefixes, made
//! through any connection of any client. The push handler runs inside the
//! connection's reader, and drops the local copy before the next reply of
//! that connection is read.
//!
//! * **The read/invalidation race.** A read registers a *pending* slot for
//!   its key before it sends the `GET`; an invalidation of the key removes
//!   the slot (pending or not); the reply is kept only if the slot is still
//!   the one the read registered. A write that lands after the server
//!   answered the `GET` sends an invalidation that is handled before or
//!   after the reply is kept: before, the pending slot is gone and nothing
//!   is kept; after, the kept copy is dropped. Either way no stale copy
//!   survives the invalidation. (A test forces the interleaving.) A read
//!   whose reply is not kept (a miss that goes to the loader, an error, a
//!   dropped future) drops its ticket, which removes its pending slot;
//!   pending slots do not count against the capacity.
//! * **Reconnects and FLUSHALL.** A lost tracking connection drops every
//!   local copy and turns local caching off until tracking is on again (on
//!   a new connection, after which everything is dropped once more, since
//!   invalidations may have been missed in between). `FLUSHALL` /
//!   `FLUSHDB` push a null invalidation, which drops everything.
//! * **A silent network** (no reset, no pushes) is caught by a `PING` every
//!   [`LocalCacheOptions::ping_interval`] with a reply timeout of the same
//!   length: after a failed ping everything is dropped.
//!
//! **Stale-read bound.** While tracking is healthy a local copy outlives a
//! write by the push's delivery time (measured by the `cache` benchmark:
//! sub-millisecond on one host). If the server or the network stalls, no
//! copy is served longer than two ping intervals after the last sign of
//! life (default 2 s), and no copy is ever served longer than
//! [`LocalCacheOptions::max_age`] after it was read from Redis (default
//! 60 s), whatever happens.
//!
//! # Why not redis-rs' own client-side cache
//!
//! redis-rs 1.8 has one (feature `cache-aio`), and it was the first choice.
//! It does not fit three needs here: (1) it inserts a reply into its LRU in
//! the caller's task after the connection's reader has already handled
//! later pushes, so an invalidation that arrives right after the reply is
//! applied *before* the insert and the stale copy then lives for the
//! client-side TTL (30 minutes by default): exactly the race above;
//! (2) it caches raw replies per command, so every hit would decode JSON
//! again, and it intercepts every cacheable command of the connection
//! rather than the keys of the types that opted in; (3) it works on a
//! `MultiplexedConnection` or `ConnectionManager` only, not on the blocking
//! or Cluster connections the rest of the crate runs on. So this module is
//! the minimum needed: a pending-slot map, a push handler, a supervisor
//! that reconnects and pings, and a bound on size and age.
//!
//! Local caching is async-only (the supervisor is a tokio task) and opt-in:
//! [`Cache::with_local`](super::Cache::with_local). Values are kept decoded
//! (`T: Clone`); a hit costs a map lookup and a clone.
//!
//! # Eviction
//!
//! The map holds at most [`LocalCacheOptions::capacity`] copies, evicted
//! with SIEVE (NSDI 2024): a hit sets a bit on the copy; when the map is
//! full, a hand sweeps the copies in insertion order, clearing bits, and
//! evicts the first copy not read since the hand last passed it. Popular
//! keys stay however old they are; a burst of keys read once passes
//! through without pushing them out. Its hit rate matches or beats LRU's
//! on skewed workloads, and a hit never reorders anything, so hits need
//! only a shared lock. The map is split by key hash into up to 16 shards
//! (each of at least 64 copies, the capacity divided exactly), each behind
//! its own read-write lock: readers of hot keys never wait for each other,
//! and writers of different shards not at all. `cargo bench --bench cache`
//! measures the hit rate on a Zipf workload beside first-in-first-out and
//! LRU of the same capacity, and the speed of hits from several threads.

use std::any::Any;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, Instant};

use redis::{PushInfo, PushKind, Value};
use tokio::sync::Notify;

use super::sieve::{HashedMap, Sieve};
use crate::error::{Error, Result};

/// Options of a [`LocalCache`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LocalCacheOptions {
    /// The most entries kept. When full, SIEVE eviction picks the copy to
    /// drop: copies read since the eviction hand last passed them stay,
    /// copies not read again go first (see the module docs). Default 10 000.
    pub capacity: usize,
    /// The longest a copy is served after it was read. Default 60 s.
    pub max_age: Duration,
    /// How often the tracking connections are pinged (and the ping's
    /// timeout). Default 1 s.
    pub ping_interval: Duration,
}

impl Default for LocalCacheOptions {
    fn default() -> Self {
        LocalCacheOptions {
            capacity: 10_000,
            max_age: Duration::from_secs(60),
            ping_interval: Duration::from_secs(1),
        }
    }
}

impl LocalCacheOptions {
    /// Sets [`LocalCacheOptions::capacity`].
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }
    /// Sets [`LocalCacheOptions::max_age`].
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = d;
        self
    }
    /// Sets [`LocalCacheOptions::ping_interval`].
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.ping_interval = d.max(Duration::from_millis(10));
        self
    }
}

/// Counters of a [`LocalCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalStats {
    /// Reads served locally.
    pub hits: u64,
    /// Reads that went to Redis.
    pub misses: u64,
    /// Keys dropped by server invalidations.
    pub invalidations: u64,
    /// Times everything was dropped (reconnect, FLUSHALL, failed ping).
    pub flushes: u64,
}

/// A local copy.
struct Ready {
    value: Arc<dyn Any + Send + Sync>,
    born: Instant,
}

/// One shard of the map: its copies and its reads in progress.
struct Shard {
    /// The copies held, bounded with SIEVE eviction (see [`super::sieve`]).
    copies: Sieve<Ready>,
    /// The reads in progress: key hash to the token of the [`Ticket`] that
    /// registered it. Each lives as long as its ticket, so they are bounded
    /// by the reads in flight and do not count against the capacity. Two
    /// keys sharing a hash share a slot: tokens are unique, so the earlier
    /// read then finds another token and keeps nothing (never a stale copy).
    pending: HashedMap<u64>,
}

/// Shards hold at least this many copies each: fewer would make the
/// eviction of one shard a poor stand-in for the whole map's.
const MIN_PER_SHARD: usize = 64;
/// At most this many shards (a power of two).
const MAX_SHARDS: usize = 16;

/// The copies, split by key hash into shards, each behind its own
/// read-write lock: hits take a shared lock (SIEVE marks a hit with an
/// atomic bit, never moving anything), so readers never wait for each
/// other; writes and invalidations take one shard's exclusive lock. A key's
/// copy and its pending read live in the same shard, so the read /
/// invalidation race is decided under one lock, as before.
struct Shards {
    shards: Box<[RwLock<Shard>]>,
    hasher: RandomState,
}

impl Shards {
    fn new(capacity: usize) -> Self {
        let wanted = (capacity / MIN_PER_SHARD).clamp(1, MAX_SHARDS);
        // The largest power of two not above `wanted`.
        let n = 1usize << (usize::BITS - 1 - wanted.leading_zeros());
        // The capacity split exactly: the first shards take the remainder.
        let shards = (0..n)
            .map(|i| {
                let cap = capacity / n + usize::from(i < capacity % n);
                RwLock::new(Shard {
                    copies: Sieve::new(cap),
                    pending: HashedMap::default(),
                })
            })
            .collect();
        Shards {
            shards,
            hasher: RandomState::new(),
        }
    }

    /// The key's hash: computed once per operation, it picks the shard
    /// (high bits) and the slot in it.
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn of(&self, hash: u64) -> &RwLock<Shard> {
        &self.shards[(hash >> 32) as usize & (self.shards.len() - 1)]
    }

    fn read(&self, hash: u64) -> RwLockReadGuard<'_, Shard> {
        self.of(hash).read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, hash: u64) -> RwLockWriteGuard<'_, Shard> {
        self.of(hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn each(&self) -> impl Iterator<Item = RwLockWriteGuard<'_, Shard>> {
        self.shards
            .iter()
            .map(|s| s.write().unwrap_or_else(PoisonError::into_inner))
    }
}

struct Inner {
    shards: Shards,
    /// Tokens of reads in progress.
    next: AtomicU64,
    prefixes: Vec<String>,
    opts: LocalCacheOptions,
    /// Nodes whose tracking is on; caching needs all of them.
    live: AtomicUsize,
    nodes: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
    /// Wakes the supervisors (a disconnection was pushed).
    wake: Notify,
}

impl Inner {
    fn flush(&self) {
        for mut shard in self.shards.each() {
            shard.copies.clear();
            shard.pending.clear();
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    fn drop_key(&self, key: &[u8]) {
        let Ok(key) = std::str::from_utf8(key) else {
            return;
        };
        let hash = self.shards.hash(key);
        let mut shard = self.shards.write(hash);
        let pending = shard.pending.remove(&hash).is_some();
        if shard.copies.remove(hash).is_some() || pending {
            self.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_push(&self, info: &PushInfo) {
        match info.kind {
            PushKind::Invalidate => match info.data.first() {
                Some(Value::Array(keys)) => {
                    for k in keys {
                        match k {
                            Value::BulkString(b) => self.drop_key(b),
                            Value::SimpleString(s) => self.drop_key(s.as_bytes()),
                            _ => {}
                        }
                    }
                }
                // FLUSHALL / FLUSHDB: the server sends null.
                _ => self.flush(),
            },
            PushKind::Disconnection => {
                self.flush();
                self.wake.notify_waiters();
            }
            _ => {}
        }
    }
}

/// Receives the pushes of one tracking connection.
struct PushHandler(Weak<Inner>);

impl redis::aio::AsyncPushSender for PushHandler {
    fn send(&self, info: PushInfo) -> std::result::Result<(), redis::aio::SendError> {
        match self.0.upgrade() {
            Some(inner) => {
                inner.on_push(&info);
                Ok(())
            }
            None => Err(redis::aio::SendError),
        }
    }
}

/// The token of a ticket whose registration [`LocalCache::complete`]
/// consumed (tokens of reads start at 1).
const DONE: u64 = 0;

/// A read in progress: keep its reply with [`LocalCache::complete`].
/// Dropping it without completing ends the read (its pending registration
/// is removed).
#[derive(Debug)]
pub struct Ticket {
    key: String,
    hash: u64,
    token: u64,
    cache: Weak<Inner>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.token == DONE {
            // Completed: its registration was consumed under the lock.
            return;
        }
        let Some(inner) = self.cache.upgrade() else {
            return;
        };
        let mut shard = inner.shards.write(self.hash);
        // Only this read's registration: a later read of the key has its
        // own token.
        if shard.pending.get(&self.hash) == Some(&self.token) {
            shard.pending.remove(&self.hash);
        }
    }
}

/// A bounded in-process cache kept honest by the server; see the
/// [module docs](self). Cheap to clone; every clone shares the map and the
/// tracking connections, which end when the last clone is dropped.
#[derive(Clone)]
pub struct LocalCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("prefixes", &self.inner.prefixes)
            .field("len", &self.len())
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl LocalCache {
    /// Connects to one server (`redis://…` URL; RESP3 is turned on) and
    /// tracks the keys starting with any of `prefixes` (for a cached type:
    /// its namespace and the literal start of its key template, e.g.
    /// `app:product:`). Returns once tracking is on. Needs a tokio runtime.
    pub async fn connect_async(
        url: &str,
        prefixes: &[&str],
        opts: LocalCacheOptions,
    ) -> Result<Self> {
        Self::connect_nodes_async(&[url], prefixes, opts).await
    }

    /// Like [`LocalCache::connect_async`] for a Cluster: `urls` are its primaries
    /// (writes are tracked on the node that owns the key). A change of the
    /// primaries (failover, resharding) shows as a lost connection: local
    /// copies are dropped; keys that moved to a node not listed are no
    /// longer tracked, so reconnect with the new primaries after a topology
    /// change.
    pub async fn connect_nodes_async(
        urls: &[&str],
        prefixes: &[&str],
        opts: LocalCacheOptions,
    ) -> Result<Self> {
        if prefixes.is_empty() || prefixes.iter().any(|p| p.is_empty()) {
            return Err(Error::InvalidKeyPart {
                what: "local cache prefix",
                value: format!("{prefixes:?}"),
                reason: "give at least one non-empty key prefix to track",
            });
        }
        let inner = Arc::new(Inner {
            shards: Shards::new(opts.capacity),
            next: AtomicU64::new(0),
            prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
            opts,
            live: AtomicUsize::new(0),
            nodes: urls.len(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            wake: Notify::new(),
        });
        for url in urls {
            let client = redis::Client::open(resp3_info(url)?)?;
            // The first connection is made here, so errors reach the caller.
            let con = track(&client, &inner).await?;
            inner.live.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(supervise(client, Arc::downgrade(&inner), con));
        }
        Ok(LocalCache { inner })
    }

    /// Whether every tracking connection is up (local caching is on).
    pub fn is_connected(&self) -> bool {
        self.inner.live.load(Ordering::SeqCst) == self.inner.nodes
    }

    fn tracks(&self, key: &str) -> bool {
        self.inner
            .prefixes
            .iter()
            .any(|p| key.starts_with(p.as_str()))
    }

    /// The local copy of `key`, if one is held, younger than `max_age`, and
    /// of type `T`.
    pub fn get<T: Clone + 'static>(&self, key: &str) -> Option<T> {
        let inner = &self.inner;
        let hash = inner.shards.hash(key);
        let shard = inner.shards.read(hash);
        let (hit, expired) = match shard.copies.get(hash, key) {
            Some(r) if r.born.elapsed() < inner.opts.max_age => {
                (r.value.downcast_ref::<T>().cloned(), false)
            }
            Some(_) => (None, true),
            None => (None, false),
        };
        drop(shard);
        if expired {
            // Too old: dropped, unless a newer copy replaced it meanwhile.
            let mut shard = inner.shards.write(hash);
            if shard
                .copies
                .get(hash, key)
                .is_some_and(|r| r.born.elapsed() >= inner.opts.max_age)
            {
                shard.copies.remove(hash);
            }
        }
        match hit {
            Some(_) => inner.hits.fetch_add(1, Ordering::Relaxed),
            None => inner.misses.fetch_add(1, Ordering::Relaxed),
        };
        hit
    }

    /// Registers a read of `key` about to be sent to Redis. `None` when the
    /// key is not tracked or tracking is down (the reply must not be kept).
    pub fn begin(&self, key: &str) -> Option<Ticket> {
        if !self.is_connected() || !self.tracks(key) {
            return None;
        }
        let token = self.inner.next.fetch_add(1, Ordering::Relaxed) + 1;
        let hash = self.inner.shards.hash(key);
        self.inner.shards.write(hash).pending.insert(hash, token);
        Some(Ticket {
            key: key.to_owned(),
            hash,
            token,
            cache: Arc::downgrade(&self.inner),
        })
    }

    /// Keeps `value` as the local copy of the ticket's key, unless the key
    /// was invalidated (or everything flushed) since [`LocalCache::begin`].
    /// Returns whether it was kept.
    pub fn complete<T: Send + Sync + 'static>(&self, mut ticket: Ticket, value: T) -> bool {
        let inner = &self.inner;
        let mut shard = inner.shards.write(ticket.hash);
        if shard.pending.get(&ticket.hash) != Some(&ticket.token) {
            drop(shard);
            return false;
        }
        // The ticket's drop then has nothing of its own to remove.
        shard.pending.remove(&ticket.hash);
        ticket.token = DONE;
        shard.copies.insert(
            ticket.hash,
            std::mem::take(&mut ticket.key),
            Ready {
                value: Arc::new(value),
                born: Instant::now(),
            },
        );
        true
    }

    /// Drops the local copy of `key` (this process only; the server tells
    /// the others).
    pub fn invalidate(&self, key: &str) {
        let hash = self.inner.shards.hash(key);
        let mut shard = self.inner.shards.write(hash);
        shard.copies.remove(hash);
        shard.pending.remove(&hash);
    }

    /// Drops every local copy.
    pub fn clear(&self) {
        self.inner.flush();
    }

    /// Whether a copy of `key` is held (pending reads excluded).
    pub fn contains(&self, key: &str) -> bool {
        let hash = self.inner.shards.hash(key);
        self.inner.shards.read(hash).copies.contains(hash, key)
    }

    /// Number of copies held.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .shards
            .iter()
            .map(|s| {
                s.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .copies
                    .len()
            })
            .sum()
    }

    /// Number of reads registered by [`LocalCache::begin`] and not yet
    /// completed or dropped (for tests).
    #[doc(hidden)]
    pub fn pending_len(&self) -> usize {
        self.inner
            .shards
            .shards
            .iter()
            .map(|s| {
                s.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pending
                    .len()
            })
            .sum()
    }

    /// True when no copy is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters.
    pub fn stats(&self) -> LocalStats {
        let i = &self.inner;
        LocalStats {
            hits: i.hits.load(Ordering::Relaxed),
            misses: i.misses.load(Ordering::Relaxed),
            invalidations: i.invalidations.load(Ordering::Relaxed),
            flushes: i.flushes.load(Ordering::Relaxed),
        }
    }
}

/// The connection settings of `url` with RESP3 turned on, parsed the way
/// redis-rs parses URLs (so a fragment, `redis://h:6379/#x`, or a query
/// stays what it is instead of swallowing an appended parameter).
pub(crate) fn resp3_info(url: &str) -> redis::RedisResult<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    Ok(info.set_redis_settings(settings))
}

/// Opens a tracking connection: RESP3, pushes to `inner`, BCAST tracking of
/// the prefixes. Everything is flushed once tracking is on, since writes
/// before that were not reported.
async fn track(
    client: &redis::Client,
    inner: &Arc<Inner>,
) -> Result<redis::aio::MultiplexedConnection> {
    let timeout = inner.opts.ping_interval.max(Duration::from_millis(100));
    let config = redis::AsyncConnectionConfig::new()
        .set_push_sender(PushHandler(Arc::downgrade(inner)))
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout.max(Duration::from_secs(1))));
    let mut con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("TRACKING").arg("ON").arg("BCAST");
    for p in &inner.prefixes {
        cmd.arg("PREFIX").arg(p);
    }
    let () = cmd.query_async(&mut con).await?;
    inner.flush();
    Ok(con)
}

/// Keeps one node's tracking connection alive: pings it, and on failure
/// drops everything, reconnects, and turns tracking on again. Ends when the
/// cache is dropped.
async fn supervise(
    client: redis::Client,
    inner: Weak<Inner>,
    mut con: redis::aio::MultiplexedConnection,
) {
    loop {
        // Healthy: ping until it fails.
        loop {
            let Some(strong) = inner.upgrade() else {
                return;
            };
            tokio::select! {
                () = tokio::time::sleep(strong.opts.ping_interval) => {}
                () = strong.wake.notified() => {}
            }
            if Arc::strong_count(&strong) == 1 {
                // Every LocalCache was dropped.
                return;
            }
            drop(strong);
            let ok = redis::cmd("PING")
                .query_async::<String>(&mut con)
                .await
                .is_ok();
            if !ok {
                break;
            }
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        strong.live.fetch_sub(1, Ordering::SeqCst);
        strong.flush();
        log::warn!(target: "redis_state::cache", "local cache: tracking connection lost; local copies dropped, reconnecting");
        // Reconnect with backoff.
        let mut delay = Duration::from_millis(50);
        con = loop {
            match track(&client, &strong).await {
                Ok(c) => break c,
                Err(e) => {
                    log::debug!(target: "redis_state::cache", "local cache: reconnect failed: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                    if Arc::strong_count(&strong) == 1 {
                        return;
                    }
                }
            }
        };
        strong.live.fetch_add(1, Ordering::SeqCst);
        drop(strong);
    }
}
