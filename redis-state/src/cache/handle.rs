//! [`Cache`]: the strategies with a loader, over one logic for sync and
//! async callers.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::entry::{now_ms, xfetch};
use super::flight::{Flights, Joined, Outcome};
use super::local::LocalCache;
use super::ops::{
    Abandon, Acquire, Acquired, DEFAULT_HOLD, Decoded, Fill, FirstOp, Get, GetEntry, Invalidate,
    InvalidateTag, Prepared, Set, WaitDone, Woken, another_type, decode_entry, entry_key, id_of,
};
use super::waker::CacheWaker;
use super::{Cached, CachedKeyed, Tag, companion};
use crate::driver::{self, Async, Blocking, Deadline, Io, block_on};
use crate::error::{Error, Result};
use crate::exec::{AsyncExecutor, SyncExecutor};
use crate::keys::{IdBuf, IdValue, Namespace};
use crate::observe::{CacheOutcome, CacheRead};
use crate::op::Operation;

/// How the fill protocol waits and holds.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CacheOptions {
    /// How long a fill lease lasts: the longest a loader may take before
    /// another caller may take over. Default 5 s.
    pub lease: Duration,
    /// How long a caller waits for another process's loader before it loads
    /// itself (without caching). Default 5 s. `Duration::MAX` (or any bound
    /// past what an `Instant` holds) waits until the loader publishes.
    pub wait: Duration,
    /// See [`Invalidate::hold`]. Default 250 ms.
    pub hold: Duration,
    /// What the first round trip of [`Cache::get_or_load`] sends: see
    /// [`FirstRead`]. Default [`FirstRead::Lease`].
    pub first_read: FirstRead,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            lease: Duration::from_secs(5),
            wait: Duration::from_secs(5),
            hold: DEFAULT_HOLD,
            first_read: FirstRead::Lease,
        }
    }
}

/// The first round trip of a cache-aside read ([`Cache::get_or_load`],
/// [`Cache::get_or_load_async`]): a trade between the cost of a hit and the
/// round trips of a miss. Both are stampede-safe: a miss fills under the
/// cross-process lease either way, and the caches of both choices share
/// entries and leases.
///
/// | choice | hit | miss (you load) |
/// |---|---|---|
/// | [`Lease`](FirstRead::Lease) | 1 round trip, a script call | 2: get-or-lease, fill |
/// | [`Get`](FirstRead::Get) | 1 round trip, a plain `GET` | 3: `GET`, take the lease, fill |
///
/// A script call costs the server more than a `GET` (on a loopback server
/// short of CPU a hit through the script ran at about 0.8× the speed of a
/// `GET`); over a real network the round trip dominates and the script's
/// extra server time matters little. Pick `Get` for read-mostly keys whose
/// hits matter most, served near the server; keep `Lease` when misses are
/// common or each round trip is expensive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FirstRead {
    /// The `acquire` script as "get or lease": the entry when it is there,
    /// else the fill lease taken (or who holds it). A hit is one script
    /// call, a miss two round trips.
    #[default]
    Lease,
    /// A plain `GET`: a hit costs what a hand-written `GET` does; a miss
    /// then takes the lease with the `acquire` script in a second round trip
    /// and fills in a third.
    Get,
}

impl CacheOptions {
    /// Sets [`CacheOptions::lease`].
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// Sets [`CacheOptions::wait`].
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
    /// Sets [`CacheOptions::hold`].
    pub fn hold(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }
    /// Sets [`CacheOptions::first_read`].
    pub fn first_read(mut self, first_read: FirstRead) -> Self {
        self.first_read = first_read;
        self
    }
}

/// A cache of `T` values: the loader strategies (cache-aside,
/// write-through, write-behind), single-flight, the cross-process fill
/// protocol and, opt-in, a [`LocalCache`].
///
/// Cheap to clone (clones share the single-flight registry); keep one per
/// type and namespace for the process, so that concurrent misses share a
/// flight.
pub struct Cache<T: Cached> {
    ns: Option<Namespace>,
    opts: CacheOptions,
    flights: Arc<Flights<T>>,
    local: Option<LocalCache>,
    waker: Option<CacheWaker>,
}

impl<T: Cached> Clone for Cache<T> {
    fn clone(&self) -> Self {
        Cache {
            ns: self.ns.clone(),
            opts: self.opts,
            flights: self.flights.clone(),
            local: self.local.clone(),
            waker: self.waker.clone(),
        }
    }
}

impl<T: Cached> std::fmt::Debug for Cache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("model", &T::SCHEMA.model)
            .field("ns", &self.ns)
            .field("opts", &self.opts)
            .field("local", &self.local.is_some())
            .field("waker", &self.waker.is_some())
            .finish()
    }
}

impl<T: Cached> Default for Cache<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn token() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

// `Decoded` holds a `T`, which is sent across awaits only when `T: Send`.
impl<T: Cached> Cache<T> {
    /// A cache in the type's own namespace with default options.
    pub fn new() -> Self {
        Cache {
            ns: None,
            opts: CacheOptions::default(),
            flights: Arc::new(Flights::default()),
            local: None,
            waker: None,
        }
    }

    /// Puts every key in namespace `ns`.
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.ns = Some(ns.clone());
        self
    }

    /// Sets the fill protocol's options.
    pub fn options(mut self, opts: CacheOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Serves hits from `local` (in-process, kept honest by the server) in
    /// the async strategies. Keys outside the prefixes `local` tracks are
    /// never cached locally.
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub fn with_local(mut self, local: LocalCache) -> Self {
        self.local = Some(local);
        self
    }

    /// Wakes this cache's async waiters by pub/sub when another process's
    /// fill lands, instead of polling (see [`CacheWaker`]). Blocking
    /// callers block on their own connection and do not use it.
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub fn with_waker(mut self, waker: CacheWaker) -> Self {
        self.waker = Some(waker);
        self
    }

    /// The namespace, if one was set.
    pub(crate) fn namespace_ref(&self) -> Option<&Namespace> {
        self.ns.as_ref()
    }

    /// The local cache, if any.
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub fn local(&self) -> Option<&LocalCache> {
        self.local.as_ref()
    }

    /// The key of the entry with `id` in this cache's namespace.
    pub fn key<Q: IdValue + ?Sized>(&self, id: &Q) -> String
    where
        T::Id: std::borrow::Borrow<Q>,
    {
        entry_key(T::SCHEMA, self.ns.as_ref(), &id_of(id))
    }

    /// [`Cached::get`] in this cache's namespace.
    pub fn get<Q: IdValue + ?Sized>(&self, id: &Q) -> Get<T>
    where
        T::Id: std::borrow::Borrow<Q>,
    {
        self.ns_op(T::get(id))
    }

    /// [`Cached::entry`] in this cache's namespace.
    pub fn entry<Q: IdValue + ?Sized>(&self, id: &Q) -> GetEntry<T>
    where
        T::Id: std::borrow::Borrow<Q>,
    {
        GetEntry::new(id_of(id), self.ns.clone())
    }

    /// [`Cached::set`] in this cache's namespace.
    pub fn set<Q: IdValue + ?Sized>(&self, id: &Q, value: &T) -> Set<T>
    where
        T::Id: std::borrow::Borrow<Q>,
    {
        self.ns_op(T::set(id, value))
    }

    /// [`Cached::invalidate`] in this cache's namespace, with this cache's
    /// hold.
    pub fn invalidate<Q: IdValue + ?Sized>(&self, id: &Q) -> Invalidate<T>
    where
        T::Id: std::borrow::Borrow<Q>,
    {
        self.ns_op(T::invalidate(id)).hold(self.opts.hold)
    }

    /// [`Cached::invalidate_tag`] in this cache's namespace.
    pub fn invalidate_tag(&self, tag: &Tag) -> InvalidateTag {
        self.ns_op(T::invalidate_tag(tag).hold(self.opts.hold))
    }

    fn ns_op<O: crate::keys::Namespaced>(&self, op: O) -> O {
        match &self.ns {
            Some(ns) => op.namespace(ns),
            None => op,
        }
    }

    /// Number of loads in progress in this process (single-flight leaders).
    pub fn loads_in_flight(&self) -> usize
    where
        T: Clone,
    {
        self.flights.in_flight()
    }
}

impl<T> Cache<T>
where
    T: Cached + Clone + Send + Sync + 'static,
{
    /// Cache-aside: the value of `id` from the cache, or from `loader`
    /// (called at most once across concurrent callers of every process, see
    /// the [module docs](super)), which is then cached. `Ok(None)` from the
    /// loader is "not found", remembered for `negative_ttl` when the type
    /// has one. A loader error is returned as [`Error::User`] and nothing is
    /// cached; concurrent callers that waited for it get
    /// [`Error::LoadFailed`].
    ///
    /// Round trips: a local-cache hit none; a hit one (the `acquire` script
    /// as "get or lease": the entry, or the fill lease taken); a miss two,
    /// that script, then the `fill` script (plus one `tag_add` per tag,
    /// pipelined) after the loader. With [`FirstRead::Get`] (see
    /// [`CacheOptions::first_read`]) a hit is one plain `GET` and a miss
    /// three: the `GET`, the `acquire` script, the fill. A caller that waits for another
    /// process adds, with a [`CacheWaker`], one `XREAD` and `EXISTS` after
    /// subscribing, one per message and one per 500 ms, and without one
    /// non-blocking `XREAD` polls (2 ms apart at first, then doubling to
    /// 25 ms); neither holds `con` for other tasks. A stale or
    /// early-refreshed hit adds `acquire` and, for the one caller that
    /// refreshes, `fill`; if that refresh fails the current value is
    /// returned and the failure logged.
    pub async fn get_or_load_async<Q, C, F, Fut, E>(
        &self,
        con: &mut C,
        id: &Q,
        loader: F,
    ) -> Result<Option<T>>
    where
        Q: IdValue + ?Sized,
        T::Id: std::borrow::Borrow<Q>,
        C: AsyncExecutor + ?Sized,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = std::result::Result<Option<T>, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let key = entry_key(T::SCHEMA, self.ns.as_ref(), &id_of(id));
        let read = CacheRead::start(T::SCHEMA.model, &key);
        let mut served = CacheOutcome::Miss;
        let r = read
            .scope(self.flow(&mut Async::new(con), key, loader, true, None, &mut served))
            .await;
        read.finish(if r.is_ok() {
            served
        } else {
            CacheOutcome::Error
        });
        r
    }

    /// [`Cache::get_or_load_async`] on a blocking connection, with a blocking
    /// loader. Concurrent callers of one process wait on a condition
    /// variable; the local cache is not used (it is async).
    pub fn get_or_load<Q, C, F, E>(&self, con: &mut C, id: &Q, loader: F) -> Result<Option<T>>
    where
        Q: IdValue + ?Sized,
        T::Id: std::borrow::Borrow<Q>,
        C: SyncExecutor + Send + ?Sized,
        F: FnOnce() -> std::result::Result<Option<T>, E> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    {
        let key = entry_key(T::SCHEMA, self.ns.as_ref(), &id_of(id));
        let read = CacheRead::start(T::SCHEMA.model, &key);
        let mut served = CacheOutcome::Miss;
        // The hit path runs straight, outside the loader state machine.
        let r = read.scope_sync(|| {
            let token = self.first_token();
            let first = self.first_read(&key, &token).run(con)?;
            if let Acquired::Hit(raw) = &first
                && let Decoded::Found(f) = decode_entry::<T>(&key, raw, now_ms())?
                && !needs_refresh(&f)
            {
                served = CacheOutcome::Hit;
                return Ok(f.value);
            }
            block_on(self.flow(
                &mut Blocking::new(con),
                key.clone(),
                move || std::future::ready(loader()),
                false,
                Some(First { token, got: first }),
                &mut served,
            ))
        });
        read.finish(if r.is_ok() {
            served
        } else {
            CacheOutcome::Error
        });
        r
    }

    /// Write-through: runs `write` (the source of truth) and, when it
    /// succeeds, stores `value` in the cache, revoking fills in flight. When
    /// `write` fails its error is returned ([`Error::User`]) and the cache is
    /// not touched. A local copy in this process is dropped at once. One
    /// round trip after `write`: the `store` script and one `tag_add` per
    /// tag.
    pub async fn write_through_async<'v, C, F, Fut, E>(
        &self,
        con: &mut C,
        value: &'v T,
        write: F,
    ) -> Result<()>
    where
        T: CachedKeyed,
        C: AsyncExecutor + ?Sized,
        F: FnOnce(&'v T) -> Fut + Send,
        Fut: Future<Output = std::result::Result<(), E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.write_then_store(&mut Async::new(con), value, write)
            .await
    }

    /// [`Cache::write_through_async`] on a blocking connection.
    pub fn write_through<C, F, E>(&self, con: &mut C, value: &T, write: F) -> Result<()>
    where
        T: CachedKeyed,
        C: SyncExecutor + ?Sized,
        F: FnOnce(&T) -> std::result::Result<(), E>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        block_on(self.write_then_store(&mut Blocking::new(con), value, |v| {
            std::future::ready(write(v))
        }))
    }

    async fn write_then_store<'v, I, F, Fut, E>(
        &self,
        io: &mut I,
        value: &'v T,
        write: F,
    ) -> Result<()>
    where
        T: CachedKeyed,
        I: Io,
        F: FnOnce(&'v T) -> Fut,
        Fut: Future<Output = std::result::Result<(), E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        write(value).await.map_err(Error::user)?;
        let op = self.ns_op(value.put());
        self.drop_local(value);
        io.run(op).await
    }

    fn drop_local(&self, value: &T)
    where
        T: CachedKeyed,
    {
        if let Some(local) = &self.local {
            let mut id = IdBuf::new();
            value.write_id(&mut id);
            local.invalidate(&entry_key(T::SCHEMA, self.ns.as_ref(), &id));
        }
    }

    /// The read of `key` after the first `GET` (`first`, when the caller
    /// made it); `served` is set to how it was served.
    async fn flow<I, L>(
        &self,
        io: &mut I,
        key: String,
        loader: L,
        use_local: bool,
        first: Option<First>,
        served: &mut CacheOutcome,
    ) -> Result<Option<T>>
    where
        I: Io,
        L: Loader<T>,
    {
        let local = self.local.as_ref().filter(|_| use_local);
        let ticket = match local {
            Some(l) => {
                if let Some(v) = l.get::<T>(&key) {
                    *served = CacheOutcome::LocalHit;
                    return Ok(Some(v));
                }
                l.begin(&key)
            }
            None => None,
        };
        let (token, got) = match first {
            Some(first) => (first.token, first.got),
            None => {
                let token = self.first_token();
                let got = io.run(self.first_read(&key, &token)).await?;
                (token, got)
            }
        };
        let start = match got {
            Acquired::Hit(raw) => match decode_entry::<T>(&key, &raw, now_ms())? {
                Decoded::Found(f) => {
                    if !needs_refresh(&f) {
                        *served = CacheOutcome::Hit;
                        if let (Some(l), Some(t), Some(v)) = (local, ticket, &f.value) {
                            l.complete(t, v.clone());
                        }
                        return Ok(f.value);
                    }
                    // Not kept locally: end the read before the refresh.
                    drop(ticket);
                    return self.refresh(io, &key, f.value, loader, served).await;
                }
                // An entry that does not decode: take the lease over it.
                Decoded::Miss => None,
            },
            Acquired::Foreign => match another_type::<T>(&key)? {
                Decoded::Found(f) => {
                    *served = CacheOutcome::Hit;
                    return Ok(f.value);
                }
                Decoded::Miss => None,
            },
            other => Some((token, other)),
        };
        // A miss is not kept locally (the next read keeps the filled value).
        drop(ticket);
        // This caller holds the cross-process lease: it loads whatever else
        // this process does (a single-flight registered meanwhile by a
        // caller that found the lease busy waits for this fill anyway).
        // Otherwise concurrent callers of this process share one wait.
        let holds_lease = matches!(start, Some((_, Acquired::Leader)));
        let guard = match self.flights.join(&key) {
            Joined::Leader(guard) => Some(guard),
            Joined::Follower(_) if holds_lease => None,
            Joined::Follower(flight) => {
                return io
                    .wait(flight)
                    .await
                    .map_err(|message| Error::LoadFailed { key, message });
            }
        };
        let r = self.miss(io, &key, start, loader).await;
        if let Some(guard) = guard {
            guard.finish(outcome(&r));
        }
        r
    }

    /// The lease token the first read sends: none for a plain `GET` (the
    /// miss then takes the lease with a token of its own).
    fn first_token(&self) -> String {
        match self.opts.first_read {
            FirstRead::Lease => token(),
            FirstRead::Get => String::new(),
        }
    }

    /// The first round trip of a read, as [`CacheOptions::first_read`]
    /// says: the entry, or its fill lease taken with `token` (see
    /// [`Acquire`]); or the entry by a plain `GET` (the lease is then taken
    /// by the miss).
    fn first_read(&self, key: &str, token: &str) -> FirstOp {
        match self.opts.first_read {
            FirstRead::Lease => FirstOp::Lease(Acquire {
                key: key.to_owned(),
                token: token.to_owned(),
                lease: self.opts.lease,
                force: false,
            }),
            FirstRead::Get => FirstOp::Get(key.to_owned()),
        }
    }

    /// An entry that is stale or due for early refresh: one caller (per
    /// process: the flight; across processes: the lease) recomputes it, the
    /// others return `current` at once.
    async fn refresh<I, L>(
        &self,
        io: &mut I,
        key: &str,
        current: Option<T>,
        loader: L,
        served: &mut CacheOutcome,
    ) -> Result<Option<T>>
    where
        I: Io,
        L: Loader<T>,
    {
        *served = CacheOutcome::Stale;
        let guard = match self.flights.join(key) {
            Joined::Follower(_) => return Ok(current),
            Joined::Leader(guard) => guard,
        };
        let token = token();
        let r = match self.acquire(io, key, &token, true).await {
            Ok(Acquired::Leader) => match self.load_and_fill(io, key, token, loader).await {
                Ok(v) => {
                    *served = CacheOutcome::Refresh;
                    Ok(v)
                }
                Err(e) => {
                    log::warn!(
                        target: "redis_state::cache",
                        "refreshing `{key}` ({}) failed, serving the current value: {e}",
                        T::SCHEMA.model
                    );
                    Ok(current)
                }
            },
            Ok(_) => Ok(current),
            Err(e) => Err(e),
        };
        guard.finish(outcome(&r));
        r
    }

    /// A miss: `start` is what the first round trip learned (with the token
    /// it sent), `None` for an entry that is there but unusable (the lease
    /// is then taken over it). After a plain `GET` ([`Acquired::Absent`])
    /// the lease is taken here, in the second round trip.
    async fn miss<I, L>(
        &self,
        io: &mut I,
        key: &str,
        start: Option<(String, Acquired)>,
        loader: L,
    ) -> Result<Option<T>>
    where
        I: Io,
        L: Loader<T>,
    {
        let mut force = start.is_none();
        let mut next = start;
        // The first answer, then at most two more tries of the lease.
        for _ in 0..3 {
            let (token, got) = match next.take() {
                Some(given) => given,
                None => {
                    let token = token();
                    let got = self.acquire(io, key, &token, force).await?;
                    (token, got)
                }
            };
            match got {
                Acquired::Hit(raw) => match decode_entry::<T>(key, &raw, now_ms())? {
                    Decoded::Found(f) => return Ok(f.value),
                    Decoded::Miss => force = true,
                },
                Acquired::Foreign => match another_type::<T>(key)? {
                    Decoded::Found(f) => return Ok(f.value),
                    Decoded::Miss => force = true,
                },
                // The first read was a plain `GET`: take the lease now.
                Acquired::Absent => {}
                Acquired::Leader => return self.load_and_fill(io, key, token, loader).await,
                Acquired::Hold => return load_only(loader).await,
                Acquired::Busy => match self.wait(io, key).await? {
                    Some(Woken::Value(raw)) => match decode_entry::<T>(key, &raw, now_ms())? {
                        Decoded::Found(f) => return Ok(f.value),
                        Decoded::Miss => force = true,
                    },
                    Some(Woken::NotFound) => return Ok(None),
                    // An invalidation revoked the fill, or its holder is
                    // gone: the lease is free or held back (`inv`), so the
                    // retry loads at once.
                    Some(Woken::Revoked) => {}
                    Some(Woken::Failed(message)) => {
                        return Err(Error::LoadFailed {
                            key: key.to_owned(),
                            message,
                        });
                    }
                    // Timed out: the holder may be gone; try the lease again.
                    None => {}
                },
            }
        }
        load_only(loader).await
    }

    /// Runs the `acquire` script for the lease of `key` with `token`.
    async fn acquire<I: Io>(
        &self,
        io: &mut I,
        key: &str,
        token: &str,
        force: bool,
    ) -> Result<Acquired> {
        io.run(Acquire {
            key: key.to_owned(),
            token: token.to_owned(),
            lease: self.opts.lease,
            force,
        })
        .await
    }

    /// Waits for the key's `done` stream for at most `opts.wait`, without
    /// busy polling and without holding a shared connection:
    ///
    /// * an async caller with a [`CacheWaker`] sleeps until the fill's
    ///   `PUBLISH` arrives (rereading the stream every
    ///   [`SAFETY_RECHECK`](super::waker::SAFETY_RECHECK) anyway);
    /// * otherwise [`driver::read_until`]: `XREAD BLOCK` in slices on a
    ///   connection of the caller's own (a blocking caller's), non-blocking
    ///   `XREAD` polls 2 ms apart at first, doubling to 25 ms, on a shared
    ///   one, where a blocked `XREAD` would stall every other task's
    ///   commands.
    async fn wait<I: Io>(&self, io: &mut I, key: &str) -> Result<Option<Woken>> {
        crate::observe::cache_lease_wait(T::SCHEMA.model);
        let deadline = Deadline::after(self.opts.wait);
        let poll = |block: Option<Duration>| WaitDone {
            key: key.to_owned(),
            block,
        };
        let watch = match &self.waker {
            Some(waker) if !io.exclusive() => match waker.watch(&companion(key, "done")).await {
                Ok(w) => Some(w),
                Err(e) => {
                    log::warn!(
                        target: "redis_state::cache",
                        "the cache waker cannot subscribe ({e}); waiting for `{key}` by polling"
                    );
                    None
                }
            },
            _ => None,
        };
        let Some(mut watch) = watch else {
            return driver::read_until(io, deadline, poll).await;
        };
        loop {
            watch.seen();
            let woken = io.run(poll(None)).await?;
            if woken.is_some() || deadline.is_over() {
                return Ok(woken);
            }
            watch
                .changed(deadline.cap(super::waker::SAFETY_RECHECK))
                .await;
        }
    }

    async fn load_and_fill<I, L>(
        &self,
        io: &mut I,
        key: &str,
        token: String,
        loader: L,
    ) -> Result<Option<T>>
    where
        I: Io,
        L: Loader<T>,
    {
        let started = Instant::now();
        let loaded = loader.load().await;
        let delta = millis(started.elapsed());
        let schema = T::SCHEMA;
        let value = match loaded {
            Ok(v) => v,
            Err(e) => return Err(abandon(io, key, token, Error::user(e)).await),
        };
        if value.is_none() && !schema.remembers_misses() {
            io.run(Abandon {
                key: key.to_owned(),
                token,
                error: None,
            })
            .await?;
            return Ok(None);
        }
        let prepared = match Prepared::new(value.as_ref(), delta) {
            Ok(p) => p,
            Err(e) => return Err(abandon(io, key, token, e).await),
        };
        let enc = prepared.encode(schema, self.ns.as_ref());
        io.run(Fill {
            key: key.to_owned(),
            token,
            enc,
        })
        .await?;
        crate::observe::cache_fill(schema.model);
        Ok(value)
    }
}

/// The first round trip of a blocking read, run before the procedure (so
/// that a hit never enters it): the token sent and the answer.
struct First {
    token: String,
    got: Acquired,
}

/// Gives up the lease of `key` after a failed load, so that waiters see
/// `error`; returns `error`, or the failure to give the lease up.
async fn abandon<I: Io>(io: &mut I, key: &str, token: String, error: Error) -> Error {
    let given_up = io
        .run(Abandon {
            key: key.to_owned(),
            token,
            error: Some(error.to_string()),
        })
        .await;
    match given_up {
        Ok(()) => error,
        Err(e) => e,
    }
}

/// What a single-flight leader hands its followers.
fn outcome<T: Clone>(r: &Result<Option<T>>) -> Outcome<T> {
    match r {
        Ok(v) => Ok(v.clone()),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether a found entry is stale or due for an early refresh (XFetch).
fn needs_refresh<T: Cached>(f: &super::Found<T>) -> bool {
    f.stale
        || xfetch(
            now_ms(),
            millis(f.delta),
            T::SCHEMA.beta,
            f.fresh_until_ms,
            1.0 - fastrand::f64(),
        )
}

async fn load_only<T, L: Loader<T>>(loader: L) -> Result<Option<T>> {
    loader.load().await.map_err(Error::user)
}

/// A loader handed to a strategy: called at most once, its future gives
/// the value, `None` for "not found", or the caller's error.
trait Loader<T>: Send {
    /// The load in progress.
    type Load: Future<Output = std::result::Result<Option<T>, Self::Error>> + Send;
    /// The caller's error.
    type Error: Into<Box<dyn std::error::Error + Send + Sync>>;
    /// Starts the load.
    fn load(self) -> Self::Load;
}

impl<T, F, Fut, E> Loader<T> for F
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = std::result::Result<Option<T>, E>> + Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Load = Fut;
    type Error = E;
    fn load(self) -> Fut {
        self()
    }
}
