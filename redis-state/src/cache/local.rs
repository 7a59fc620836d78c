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

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use redis::{PushInfo, PushKind, Value};
use tokio::sync::Notify;

use crate::error::{Error, Result};

/// Options of a [`LocalCache`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LocalCacheOptions {
    /// The most entries kept; the oldest are evicted first. Default 10 000.
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
    seq: u64,
}

#[derive(Default)]
struct State {
    /// The copies held; [`LocalCacheOptions::capacity`] bounds them.
    map: HashMap<String, Ready>,
    /// The reads in progress: key to the token of the [`Ticket`] that
    /// registered it. Each lives as long as its ticket, so they are bounded
    /// by the reads in flight and do not count against the capacity.
    pending: HashMap<String, u64>,
    order: VecDeque<(String, u64)>,
    next: u64,
}

struct Inner {
    state: Mutex<State>,
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
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flush(&self) {
        let mut st = self.lock();
        st.map.clear();
        st.pending.clear();
        st.order.clear();
        drop(st);
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    fn drop_key(&self, key: &[u8]) {
        let Ok(key) = std::str::from_utf8(key) else {
            return;
        };
        let mut st = self.lock();
        let pending = st.pending.remove(key).is_some();
        if st.map.remove(key).is_some() || pending {
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

/// A read in progress: keep its reply with [`LocalCache::complete`].
/// Dropping it without completing ends the read (its pending registration
/// is removed).
#[derive(Debug)]
pub struct Ticket {
    key: String,
    token: u64,
    cache: Weak<Inner>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(inner) = self.cache.upgrade() else {
            return;
        };
        let mut st = inner.lock();
        // Only this read's registration: a later read of the key has its
        // own token.
        if st.pending.get(&self.key) == Some(&self.token) {
            st.pending.remove(&self.key);
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
            state: Mutex::new(State::default()),
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
            let client = redis::Client::open(resp3_url(url))?;
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
        let mut st = inner.lock();
        let hit = match st.map.get(key) {
            Some(r) if r.born.elapsed() < inner.opts.max_age => {
                r.value.downcast_ref::<T>().cloned()
            }
            Some(_) => {
                st.map.remove(key);
                None
            }
            None => None,
        };
        drop(st);
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
        let mut st = self.inner.lock();
        st.next += 1;
        let token = st.next;
        st.pending.insert(key.to_owned(), token);
        Some(Ticket {
            key: key.to_owned(),
            token,
            cache: Arc::downgrade(&self.inner),
        })
    }

    /// Keeps `value` as the local copy of the ticket's key, unless the key
    /// was invalidated (or everything flushed) since [`LocalCache::begin`].
    /// Returns whether it was kept.
    pub fn complete<T: Send + Sync + 'static>(&self, ticket: Ticket, value: T) -> bool {
        let inner = &self.inner;
        let mut st = inner.lock();
        if st.pending.get(&ticket.key) != Some(&ticket.token) {
            drop(st);
            return false;
        }
        // The ticket's drop then finds nothing of its own to remove.
        st.pending.remove(&ticket.key);
        st.next += 1;
        let seq = st.next;
        st.map.insert(
            ticket.key.clone(),
            Ready {
                value: Arc::new(value),
                born: Instant::now(),
                seq,
            },
        );
        st.order.push_back((ticket.key.clone(), seq));
        while st.map.len() > inner.opts.capacity {
            let Some((old, old_seq)) = st.order.pop_front() else {
                break;
            };
            if matches!(st.map.get(&old), Some(r) if r.seq == old_seq) {
                st.map.remove(&old);
            }
        }
        // The order queue may hold keys already removed; keep it bounded.
        if st.order.len() > 2 * inner.opts.capacity {
            let State { map, order, .. } = &mut *st;
            order.retain(|(k, s)| matches!(map.get(k), Some(r) if r.seq == *s));
        }
        // Unlock before the ticket's drop locks again.
        drop(st);
        drop(ticket);
        true
    }

    /// Drops the local copy of `key` (this process only; the server tells
    /// the others).
    pub fn invalidate(&self, key: &str) {
        let mut st = self.inner.lock();
        st.map.remove(key);
        st.pending.remove(key);
    }

    /// Drops every local copy.
    pub fn clear(&self) {
        self.inner.flush();
    }

    /// Whether a copy of `key` is held (pending reads excluded).
    pub fn contains(&self, key: &str) -> bool {
        self.inner.lock().map.contains_key(key)
    }

    /// Number of copies held.
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// Number of reads registered by [`LocalCache::begin`] and not yet
    /// completed or dropped (for tests).
    #[doc(hidden)]
    pub fn pending_len(&self) -> usize {
        self.inner.lock().pending.len()
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

pub(crate) fn resp3_url(url: &str) -> String {
    if url.contains("protocol=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}protocol=resp3")
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
