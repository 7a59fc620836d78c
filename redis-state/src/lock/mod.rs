//! Locks on one Redis server, with fencing tokens.
//!
//! A [`Lock`] names a mutex (`lock:{<name>}`) and its settings. Taking it
//! sets the key to a random token with `SET NX PX` and, in the same script,
//! draws a **fencing token** from a per-lock counter, so every holder of one
//! lock gets a strictly larger number than the holders before it. Releasing
//! and extending compare the random token first, so only the holder can do
//! either.
//!
//! | what | how | round trips |
//! |---|---|---|
//! | [`Lock::try_acquire`] | `EVALSHA` (`SET NX PX` + `INCR` of the fence counter) | 1 |
//! | [`Lock::acquire`] / [`Lock::acquire_async`] | `try_acquire` until it succeeds or the wait times out, with jittered exponential backoff; a try whose reply is lost is released | 1 per try (+1 after a lost reply) |
//! | [`LockGuard::release`] | `EVALSHA` (compare token, `DEL`) | 1 |
//! | [`LockGuard::extend`] | `EVALSHA` (compare token, `PEXPIRE`) | 1 |
//! | [`LockGuard::is_held`] | `GET` | 1 |
//! | [`Lock::scope`] / [`Lock::scope_async`] | acquire, your code, release (also on error and panic) | 2 + tries |
//! | [`Lock::acquire_watched`] / [`Lock::acquire_watched_async`] / [`Lock::scope_watched_async`] | acquire, then a watchdog task renews every `ttl / 3` | 1 per renewal |
//!
//! # Keys
//!
//! | key | type | content |
//! |---|---|---|
//! | `lock:{<name>}` | string | the holder's random token (32 hex digits), with the lock TTL |
//! | `lock:{<name>}:#fence` | string | the last fencing token handed out; never expires |
//!
//! `<name>` is escaped like every user value in a key, and sits in a hash
//! tag, so both keys share a Cluster slot. With a [`Namespace`] the keys
//! start with `<namespace>:`.
//!
//! # What a lock does and does not guarantee
//!
//! A lock expires after its TTL even if the holder still works: a holder that
//! stalls (a GC pause, a stopped VM, a slow disk) past the TTL loses it while
//! believing it holds it. No lock service can prevent this; the protected
//! resource can. Pass [`LockGuard::fence`] along with every write and let the
//! resource refuse tokens smaller than one it has seen ([`fence`] does this
//! for data kept in Redis). The watchdog ([`Lock::acquire_watched_async`]) keeps a
//! live holder's lock and tells it at once when the lock is lost, which is
//! what a holder that is not stalled needs.
//!
//! A single Redis server (or a primary with asynchronous replicas) is the
//! authority here: if it loses data (a failover before replication, a restart
//! without persistence), two holders can overlap. The fence counter then
//! protects the resource as long as the counter itself survives.

pub mod fence;
#[cfg(feature = "async")]
mod watchdog;

use std::future::Future;
use std::time::{Duration, Instant};

use redis::Value;

#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use self::watchdog::{Connect, LossSignal, WatchedGuard};
use crate::driver::{Async, Blocking, Io, block_on};
pub use crate::error::LostReason;
use crate::error::{DecodeError, Error, Result};
use crate::exec::{AsyncExecutor, Detached, SyncExecutor};
use crate::keys::{IdBuf, KeyPart, Namespace, impl_namespaced};
use crate::lock::fence::fence_key_for;
use crate::op::{Operation, Plan, Replies, Step};
use crate::random;

crate::script! {
    /// `SET NX PX` plus the fencing token, atomically; refuses a fence
    /// counter that is not a non-negative integer.
    pub(crate) struct AcquireScript {
        name: "redis_state.lock.acquire",
        keys: [lock, fence],
        args: [token: &str, ttl_ms: u64],
        returns: Value,
        lua: include_str!("lua/acquire.lua"),
    }
}

crate::script! {
    /// Deletes the lock if it still holds `token`; `true` when it did. The
    /// typed script behind [`LockGuard::release`].
    pub struct Release {
        name: "redis_state.lock.release",
        keys: [lock],
        args: [token: &str],
        returns: bool,
        lua: include_str!("lua/release.lua"),
    }
}

crate::script! {
    /// Resets the lock's TTL if it still holds `token`; `true` when it did.
    /// The typed script behind [`LockGuard::extend`].
    pub struct Extend {
        name: "redis_state.lock.extend",
        keys: [lock],
        args: [token: &str, ttl_ms: u64],
        returns: bool,
        lua: include_str!("lua/extend.lua"),
    }
}

/// Time the holder subtracts from the TTL for clock drift between itself and
/// the server: 1% of the TTL plus 2 ms, as the Redlock description does.
pub(crate) fn drift(ttl: Duration) -> Duration {
    (ttl / 100).saturating_add(Duration::from_millis(2))
}

/// `at + d`; when that overflows the clock (`Duration::MAX` as "forever"),
/// a time a century ahead, which nothing in a process waits for.
pub(crate) fn instant_after(at: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(d)
        .or_else(|| at.checked_add(CENTURY))
        .unwrap_or(at)
}

/// A named lock and its settings. Cheap to clone; holds no connection.
///
/// ```no_run
/// use std::time::Duration;
/// use redis_state::lock::Lock;
/// # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
/// let lock = Lock::new("invoice:42").ttl(Duration::from_secs(5));
/// let total = lock.scope(con, |guard| {
///     // only one process at a time runs this; pass guard.fence() to the
///     // resource so it can refuse a holder that lost the lock
///     guard.fence()
/// })?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Lock {
    name: IdBuf,
    verbatim: Option<String>,
    ns: Option<Namespace>,
    key: String,
    fence_key: String,
    ttl: Duration,
    wait: Duration,
    retry_min: Duration,
    retry_max: Duration,
    renew_every: Option<Duration>,
    max_hold: Option<Duration>,
}

impl Lock {
    /// A lock named `name` (a string, an integer, or any [`KeyPart`]), with
    /// a TTL of 30 s, a wait of 10 s for [`acquire`](Lock::acquire), retry
    /// delays between 1 ms and 50 ms, and a watchdog that renews every
    /// `ttl / 3` for at most 10 minutes.
    pub fn new(name: impl KeyPart) -> Self {
        let mut id = IdBuf::new();
        name.write_key_part(&mut id);
        let mut lock = Lock {
            name: id,
            verbatim: None,
            ns: None,
            key: String::new(),
            fence_key: String::new(),
            ttl: Duration::from_secs(30),
            wait: Duration::from_secs(10),
            retry_min: Duration::from_millis(1),
            retry_max: Duration::from_millis(50),
            renew_every: None,
            max_hold: Some(Duration::from_secs(600)),
        };
        lock.build_keys();
        lock
    }

    fn build_keys(&mut self) {
        let key = lock_key(self.ns.as_ref(), self.verbatim.as_deref(), &self.name);
        // `lock:{<name>}:#fence`; for an empty name (`lock:{}` has no hash
        // tag) and for verbatim keys, a key of the same slot all the same.
        self.fence_key = fence_key_for(&key);
        self.key = key;
    }

    /// Keys the lock at `<prefix><name>`, the name as given (not escaped, no
    /// hash tag), the layout other clients use for names the application
    /// controls: `Lock::new("resource:123").verbatim_keys("lock:")` is the
    /// key `lock:resource:123` of the common redis-py `RedisLock` recipe, so
    /// a Rust and a Python process exclude each other, and either side's
    /// owner-only release (`GET` and compare, then `DEL`) releases a lock the
    /// other took. An empty prefix makes the name the whole key (redis-py's
    /// `Lock`, node-redlock and Redisson take the key as given).
    ///
    /// The fence counter goes to [`fence_key_for`]`(key)`
    /// (`{lock:resource:123}#fence`), which shares the lock's Cluster slot.
    /// Two names map to one key only if their text is equal (a name that is
    /// not UTF-8 has its bad bytes replaced), so keep such names to ones the
    /// application makes, never ones its users send.
    pub fn verbatim_keys(mut self, prefix: &str) -> Self {
        self.verbatim = Some(prefix.to_owned());
        self.build_keys();
        self
    }

    /// Puts the lock's keys in namespace `ns`.
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.ns = Some(ns.clone());
        self.build_keys();
        self
    }

    /// How long the lock lives unless extended (at least 1 ms; Redis is sent
    /// at most 2^53 - 1 ms, about 285,000 years). Default 30 s.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// How long [`acquire`](Lock::acquire) and the scoped forms wait for the
    /// lock before failing with [`Error::LockTimeout`]. `Duration::ZERO`
    /// tries once. Default 10 s.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The delays between tries of a blocking acquire: each delay is drawn
    /// uniformly from `[min, current]`, where `current` starts at `min` and
    /// doubles after every failed try (from at least 1 ms) up to `max`; it
    /// is never longer than the holder's remaining TTL or the wait left.
    /// Any durations work, `Duration::MAX` included. Defaults 1 ms and 50 ms.
    pub fn retry_delay(mut self, min: Duration, max: Duration) -> Self {
        self.retry_min = min;
        self.retry_max = max.max(min);
        self
    }

    /// How often the watchdog renews the lock. Default `ttl / 3`.
    pub fn renew_every(mut self, every: Duration) -> Self {
        self.renew_every = Some(every.max(Duration::from_millis(1)));
        self
    }

    /// The longest the watchdog keeps renewing; after that it lets the lock
    /// run out and reports [`LostReason::MaxHoldReached`] when it has.
    /// `None` renews until released. Default 10 minutes.
    pub fn max_hold(mut self, max: Option<Duration>) -> Self {
        self.max_hold = max;
        self
    }

    /// The lock key (`[<ns>:]lock:{<name>}`, or the
    /// [verbatim](Lock::verbatim_keys) `[<ns>:]<prefix><name>`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key of the fence counter (`[<ns>:]lock:{<name>}:#fence`, or
    /// [`fence_key_for`] of a verbatim key).
    pub fn fence_key(&self) -> &str {
        &self.fence_key
    }

    /// The configured TTL.
    pub fn ttl_duration(&self) -> Duration {
        self.ttl
    }

    #[cfg(feature = "async")]
    pub(crate) fn renew_interval(&self) -> Duration {
        self.renew_every
            .unwrap_or(self.ttl / 3)
            .max(Duration::from_millis(1))
    }

    #[cfg(feature = "async")]
    pub(crate) fn max_hold_duration(&self) -> Option<Duration> {
        self.max_hold
    }

    /// One try: takes the lock if it is free. The output is the guard, or
    /// `None` when someone else holds it. One `EVALSHA`, one round trip.
    ///
    /// This is a plain operation: when its reply is lost (an error after
    /// sending, a dropped future), the lock may have been taken with a
    /// token you never see, and it stays taken until its TTL runs out.
    /// [`acquire`](Lock::acquire) with [`wait`](Lock::wait)`(Duration::ZERO)`
    /// also tries once, and releases that token in such a case.
    pub fn try_acquire(&self) -> TryAcquire {
        TryAcquire {
            attempt: Attempt::new(self),
        }
    }

    /// Takes the lock, waiting up to [`wait`](Lock::wait) on a blocking
    /// connection; fails with [`Error::LockTimeout`]. One `EVALSHA` per try.
    ///
    /// A try that fails after it was sent (a read timeout, a lost
    /// connection) may still have taken the lock on the server; its token
    /// is then released (one more `EVALSHA` on `con`, sent after the try,
    /// best effort) before the error is returned, so that the lock is not
    /// held by nobody until its TTL runs out.
    pub fn acquire<C: SyncExecutor + ?Sized>(&self, con: &mut C) -> Result<LockGuard> {
        block_on(self.acquire_with(&mut Blocking::new(con), None::<&Detached>))
    }

    /// [`acquire`](Lock::acquire) on an async connection.
    ///
    /// A try that fails after it was sent (a response timeout, a lost
    /// connection) gets its token released as in [`acquire`](Lock::acquire).
    /// If the future is dropped while a try is on the wire (a timeout
    /// around the call, a `select!`), the try's token is released in the
    /// background on the current tokio runtime, through a clone of `con`:
    /// this works with `MultiplexedConnection`, `ConnectionManager` and the
    /// async Cluster client (handles that clone cheaply and share the
    /// original connection, so the release runs after the try). On other
    /// connection types (a connection borrowed from a pool), a dropped
    /// future leaves such a lock to its TTL.
    pub async fn acquire_async<C: AsyncExecutor + ?Sized>(&self, con: &mut C) -> Result<LockGuard> {
        let spare = con.detached();
        self.acquire_with(&mut Async::new(con), spare.as_ref())
            .await
    }

    /// Tries until the lock is taken or the wait is over, releasing the
    /// token of a try whose reply was lost: through `io` when the try
    /// failed, through `spare` (in the background) when the future was
    /// dropped mid-try.
    pub(crate) async fn acquire_with<I, S>(
        &self,
        io: &mut I,
        spare: Option<&S>,
    ) -> Result<LockGuard>
    where
        I: Io,
        S: AsyncExecutor + Clone + Sync + 'static,
    {
        let started = Instant::now();
        let mut backoff = Backoff::new(self);
        loop {
            let attempt = Attempt::new(self);
            let mut unsettled = Unsettled {
                release: attempt.release(),
                spare,
            };
            let tried = match io.run(attempt).await {
                Ok(tried) => tried,
                Err(e) => {
                    if let Some(release) = unsettled.release.clone() {
                        let _ = io.run(release).await;
                    }
                    unsettled.release = None;
                    return Err(e);
                }
            };
            unsettled.release = None;
            match tried {
                Tried::Acquired(guard) => return Ok(guard),
                Tried::Busy { pttl } => match backoff.next(started, pttl) {
                    Some(delay) => io.sleep(delay).await,
                    None => return Err(self.timeout(started)),
                },
            }
        }
    }

    fn timeout(&self, started: Instant) -> Error {
        Error::LockTimeout {
            key: self.key.clone(),
            waited: started.elapsed(),
        }
    }

    /// Runs `body` under the lock on a blocking connection: acquires (waiting
    /// up to [`wait`](Lock::wait)), runs `body`, releases, also when `body`
    /// panics (the panic then continues). Fails with [`Error::LockLost`] when
    /// the release finds the lock no longer held (its TTL ran out during
    /// `body`, so another holder may have overlapped): `body`'s output is
    /// dropped then. Without a watchdog, keep `body` well under the TTL or
    /// call [`LockGuard::extend`].
    pub fn scope<C, R>(&self, con: &mut C, body: impl FnOnce(&LockGuard) -> R) -> Result<R>
    where
        C: SyncExecutor + ?Sized,
    {
        block_on(self.scoped(
            &mut Blocking::new(con),
            None::<&Detached>,
            |guard| async move { body(&guard) },
        ))
    }

    /// [`scope`](Lock::scope) on an async connection: `body` gets a copy of the
    /// guard and returns a future. If the returned future is dropped before
    /// it finishes, the lock is not released and runs out after its TTL;
    /// [`scope_watched_async`](Lock::scope_watched_async) releases in that
    /// case too.
    pub async fn scope_async<C, F, Fut, R>(&self, con: &mut C, body: F) -> Result<R>
    where
        C: AsyncExecutor + ?Sized,
        F: FnOnce(LockGuard) -> Fut,
        Fut: Future<Output = R>,
    {
        let spare = con.detached();
        self.scoped(&mut Async::new(con), spare.as_ref(), body)
            .await
    }

    /// Acquires, runs `body`, releases (also when `body` panics; the panic
    /// then continues).
    async fn scoped<I, S, F, Fut, R>(&self, io: &mut I, spare: Option<&S>, body: F) -> Result<R>
    where
        I: Io,
        S: AsyncExecutor + Clone + Sync + 'static,
        F: FnOnce(LockGuard) -> Fut,
        Fut: Future<Output = R>,
    {
        use futures_util::FutureExt;
        let guard = self.acquire_with(io, spare).await?;
        let out = std::panic::AssertUnwindSafe(body(guard.clone()))
            .catch_unwind()
            .await;
        let released = io.run(guard.release()).await;
        match out {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(out) => guard.conclude(released).map(|()| out),
        }
    }
}

/// The token of a try whose outcome is not known yet. Dropped while still
/// holding it (the acquiring future was dropped mid-try), it sends the
/// release from a task of its own through a clone of `spare`, when there is
/// one and a tokio runtime to run it.
struct Unsettled<'a, S: AsyncExecutor + Clone + 'static> {
    release: Option<Release>,
    spare: Option<&'a S>,
}

impl<S: AsyncExecutor + Clone + 'static> Drop for Unsettled<'_, S> {
    fn drop(&mut self) {
        let (Some(release), Some(spare)) = (self.release.take(), self.spare) else {
            return;
        };
        // Without the `async` feature no runtime can run it: the token is
        // left to its TTL.
        #[cfg(not(feature = "async"))]
        let _ = (release, spare);
        #[cfg(feature = "async")]
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let mut con = spare.clone();
            runtime.spawn(async move {
                let _ = release.run_async(&mut con).await;
            });
        }
    }
}

/// The key of the lock on `name`: `[<ns>:]lock:{<name>}` (escaped, in a hash
/// tag), or `[<ns>:]<prefix><name>` as given with a verbatim prefix. Shared
/// with [`Redlock`](crate::redlock::Redlock).
pub(crate) fn lock_key(ns: Option<&Namespace>, verbatim: Option<&str>, name: &IdBuf) -> String {
    let mut key = String::new();
    if let Some(ns) = ns {
        key.push_str(ns.as_str());
        key.push(':');
    }
    match verbatim {
        None => {
            key.push_str("lock:{");
            key.push_str(name.joined());
            key.push('}');
        }
        Some(prefix) => {
            key.push_str(prefix);
            key.push_str(&name.verbatim());
        }
    }
    key
}

/// Turns the jittered exponential backoff settings into delays.
struct Backoff {
    wait: Duration,
    min: Duration,
    current: Duration,
    max: Duration,
}

impl Backoff {
    fn new(lock: &Lock) -> Self {
        Backoff {
            wait: lock.wait,
            min: lock.retry_min,
            current: lock.retry_min,
            max: lock.retry_max,
        }
    }

    /// The delay before the next try, or `None` when the wait is over.
    fn next(&mut self, started: Instant, holder_pttl: i64) -> Option<Duration> {
        let left = self.wait.checked_sub(started.elapsed())?;
        if left.is_zero() {
            return None;
        }
        let mut delay = random::between(self.min, self.current);
        if holder_pttl >= 0 {
            delay = delay.min(Duration::from_millis(holder_pttl as u64 + 1));
        }
        // Doubles from at least 1 ms, so that a minimum of zero still backs off.
        self.current = self
            .current
            .saturating_mul(2)
            .max(Duration::from_millis(1))
            .min(self.max);
        Some(delay.min(left))
    }
}

/// The result of one try.
#[derive(Debug)]
pub(crate) enum Tried {
    Acquired(LockGuard),
    Busy { pttl: i64 },
}

/// One try, with the holder's remaining TTL when busy.
#[derive(Debug)]
pub(crate) struct Attempt {
    key: String,
    fence_key: String,
    token: Option<String>,
    ttl: Duration,
    call: Option<AcquireScript>,
    sent: Option<Instant>,
    error: Option<Error>,
}

impl Attempt {
    pub(crate) fn new(lock: &Lock) -> Self {
        let mut attempt = Attempt {
            key: lock.key.clone(),
            fence_key: lock.fence_key.clone(),
            token: None,
            ttl: lock.ttl,
            call: None,
            sent: None,
            error: None,
        };
        match random::hex_token(16) {
            Ok(token) => {
                attempt.call = Some(AcquireScript::new(
                    &lock.key,
                    &lock.fence_key,
                    &token,
                    random::millis(lock.ttl),
                ));
                attempt.token = Some(token);
            }
            Err(e) => attempt.error = Some(e),
        }
        attempt
    }

    /// The release of this try's token (`None` when it has none).
    pub(crate) fn release(&self) -> Option<Release> {
        self.token.as_deref().map(|t| Release::new(&self.key, t))
    }
}

impl Operation for Attempt {
    type Output = Tried;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.sent = Some(Instant::now());
        match &mut self.call {
            Some(call) => call.prepare(plan),
            None => Err(Error::UnexpectedReply {
                context: "a lock acquisition",
                found: "an operation run twice".to_owned(),
            }),
        }
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Tried>> {
        let call = self.call.as_mut().ok_or_else(|| Error::UnexpectedReply {
            context: "a lock acquisition",
            found: "no call".to_owned(),
        })?;
        let reply = match call.complete(replies)? {
            Step::Done(v) => v,
            Step::Again => return Ok(Step::Again),
        };
        let n = match reply.as_sequence() {
            Some([Value::Int(1), Value::Int(n)]) => *n,
            Some([Value::Int(0), Value::Int(pttl)]) => {
                return Ok(Step::Done(Tried::Busy { pttl: *pttl }));
            }
            Some([Value::Int(-1), Value::BulkString(found)]) => {
                return Err(DecodeError::new(
                    &self.fence_key,
                    None,
                    "a fence counter (a non-negative integer below 10^18)",
                    Some(found),
                )
                .with_detail(
                    "the lock was not taken: fencing tokens drawn from it would not grow; \
                     set it to at least the largest token handed out so far",
                )
                .into());
            }
            _ => return Err(Error::unexpected("a lock acquisition", &reply)),
        };
        let sent = self.sent.unwrap_or_else(Instant::now);
        Ok(Step::Done(Tried::Acquired(LockGuard {
            key: self.key.clone(),
            token: self.token.take().unwrap_or_default(),
            fence: n.max(0) as u64,
            ttl: self.ttl,
            valid_until: instant_after(sent, self.ttl.saturating_sub(drift(self.ttl))),
        })))
    }
}

/// See [`Lock::try_acquire`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct TryAcquire {
    attempt: Attempt,
}

impl Operation for TryAcquire {
    type Output = Option<LockGuard>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.attempt.prepare(plan)
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Option<LockGuard>>> {
        Ok(match self.attempt.complete(replies)? {
            Step::Done(Tried::Acquired(g)) => Step::Done(Some(g)),
            Step::Done(Tried::Busy { .. }) => Step::Done(None),
            Step::Again => Step::Again,
        })
    }
}

/// A held lock: its key, the holder's random token, the fencing token.
///
/// Dropping a guard does not release the lock (a release needs a
/// connection): call [`release`](LockGuard::release), use the scoped forms
/// ([`Lock::scope`]), or let the TTL run out. A [`WatchedGuard`] releases when
/// dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the lock stays held until released or until its TTL runs out"]
pub struct LockGuard {
    key: String,
    token: String,
    fence: u64,
    ttl: Duration,
    valid_until: Instant,
}

impl LockGuard {
    /// The fencing token: strictly larger than the token of every earlier
    /// holder of this lock. Pass it to the resource you protect with every
    /// write so it can refuse writes from a holder that lost the lock (see
    /// [`fence`]).
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// The lock key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The random token the lock key holds while this guard owns it.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The TTL the lock was taken with.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Until when the lock is certainly held, by the local clock: the send
    /// time of the acquisition plus the TTL minus a drift allowance. Extends
    /// do not move it; a [`WatchedGuard`] tracks renewals.
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }

    /// Releases the lock if this guard still owns it. The output is `false`
    /// when it did not (the TTL ran out; someone else may hold it now). One
    /// `EVALSHA` (`GET`, compare, `DEL`), one round trip.
    pub fn release(&self) -> Release {
        Release::new(&self.key, &self.token)
    }

    /// Resets the lock's TTL to `ttl` if this guard still owns it; `false`
    /// when it does not. One `EVALSHA` (`GET`, compare, `PEXPIRE`), one
    /// round trip.
    pub fn extend(&self, ttl: Duration) -> Extend {
        Extend::new(&self.key, &self.token, random::millis(ttl))
    }

    /// Whether the lock key still holds this guard's token. One `GET`, one
    /// round trip.
    pub fn is_held(&self) -> IsHeld {
        IsHeld {
            key: self.key.clone(),
            token: self.token.clone(),
        }
    }

    fn conclude(&self, released: Result<bool>) -> Result<()> {
        match released? {
            true => Ok(()),
            false => Err(Error::LockLost {
                key: self.key.clone(),
                reason: LostReason::Expired,
            }),
        }
    }
}

/// See [`LockGuard::is_held`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct IsHeld {
    key: String,
    token: String,
}

impl Operation for IsHeld {
    type Output = bool;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.cmd("GET", &self.key);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        let v: Option<Vec<u8>> = replies.next("GET")?;
        Ok(Step::Done(v.as_deref() == Some(self.token.as_bytes())))
    }
}

impl_namespaced!([] Lock);

#[cfg(test)]
mod tests {
    use super::*;

    /// Retry delays doubling from 1 ms towards `Duration::MAX` pass 2^64 ns
    /// after 44 tries; each is still drawn, capped by the holder's TTL and
    /// the wait, without overflowing.
    #[test]
    fn backoff_doubles_to_any_maximum() {
        for (min, max) in [
            (Duration::from_millis(1), Duration::MAX),
            (Duration::ZERO, Duration::MAX),
            (Duration::from_nanos(1), Duration::MAX),
            (Duration::MAX, Duration::MAX),
        ] {
            let lock = Lock::new("b").wait(Duration::MAX).retry_delay(min, max);
            let mut backoff = Backoff::new(&lock);
            let started = Instant::now();
            for _ in 0..200 {
                let d = backoff.next(started, 5).expect("the wait is not over");
                assert!(d <= Duration::from_millis(6), "{d:?}");
            }
            assert_eq!(backoff.current, max);
            // A holder without a TTL does not cap it; the draw still works.
            assert!(backoff.next(started, -1).is_some());
        }
    }
}
