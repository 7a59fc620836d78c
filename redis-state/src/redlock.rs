//! Redlock: one lock over N independent Redis servers.
//!
//! The algorithm of the redis.io "Distributed Locks with Redis" page: take
//! the lock (`SET key token NX PX ttl`) on every server, each with a short
//! timeout; the lock is held when a majority (`N / 2 + 1`) said yes and
//! time is left: the **validity** is `ttl − elapsed − drift`, with drift =
//! 1% of the TTL + 2 ms. Otherwise it is released on every server and tried
//! again after a random delay. Release is sent to every server.
//!
//! ```no_run
//! use std::time::Duration;
//! use redis_state::redlock::Redlock;
//! # fn f(clients: Vec<redis::Client>) -> redis_state::Result<()> {
//! let redlock = Redlock::new(clients)?.ttl(Duration::from_secs(10));
//! if let Some(lease) = redlock.lock("nightly-report")? {
//!     // finish well within lease.validity()
//!     redlock.unlock(&lease)?;
//! }
//! # Ok(()) }
//! ```
//!
//! # An efficiency lock, not a correctness lock
//!
//! Martin Kleppmann's critique ("How to do distributed locking", 2016)
//! holds and is worth reading before using this: Redlock's safety rests on
//! timing assumptions (bounded network delay, bounded process pauses,
//! clocks that run at about the same rate). A client paused by GC, by a VM
//! migration or by swapping can wake up after its validity ended and carry
//! on as if it held the lock, while another client holds it; a server that
//! restarts without persisting its keys (or whose clock jumps) can grant
//! the lock twice. And Redlock has no fencing token: there is no
//! monotonically increasing number that all servers agree on.
//!
//! So use Redlock to **avoid doing work twice** (cheap to redo, harmless if
//! it happens now and then): deduplicating a cron job across hosts,
//! throttling an expensive refresh. When two holders at once would corrupt
//! data, the resource itself must check: use the single-server
//! [`Lock`](crate::lock::Lock) with its fencing tokens and
//! [`fence`](crate::lock::fence) on the resource side (or a consensus system
//! such as ZooKeeper or etcd), and treat [`RedlockGuard::validity`] as a
//! hint, not a guarantee.
//!
//! The servers must be independent primaries (no replication between
//! them), ideally with `appendfsync always` or a restart delay longer than
//! the TTL, as the algorithm's description requires.

use std::future::Future;
use std::time::{Duration, Instant};

/// The longest TTL a lock may ask for: 2^53 - 1 ms.
const MAX_TTL: Duration = Duration::from_millis((1 << 53) - 1);

use redis::Value;

use crate::driver::block_on;
use crate::error::{Error, Result};
use crate::keys::{IdBuf, KeyPart, Namespace};
use crate::lock::{Extend, Release, drift, lock_key};
use crate::op::{Operation, command};
use crate::random;

/// One server of the set, with its lazily (re)opened connections.
struct Instance {
    client: redis::Client,
    sync: std::sync::Mutex<Option<redis::Connection>>,
    #[cfg(feature = "async")]
    asynchronous: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
}

/// A lock over several independent servers; see the [module docs](self).
pub struct Redlock {
    instances: Vec<Instance>,
    ns: Option<Namespace>,
    verbatim: Option<String>,
    ttl: Duration,
    retries: u32,
    retry_delay: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for Redlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redlock")
            .field("instances", &self.instances.len())
            .field("ttl", &self.ttl)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// A Redlock held on a majority of the servers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the lock stays held until unlocked or until its TTL runs out"]
pub struct RedlockGuard {
    key: String,
    token: String,
    validity: Duration,
    valid_until: Instant,
    acquired: usize,
}

impl RedlockGuard {
    /// The lock key on every server.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The random token the servers hold for this guard.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// How long the lock was valid when it was granted: TTL minus the time
    /// the acquisition took minus the drift allowance.
    pub fn validity(&self) -> Duration {
        self.validity
    }

    /// Until when, by the local clock, the lock is valid (see the module
    /// docs for why this is a hint).
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }

    /// On how many servers the lock was taken.
    pub fn acquired_on(&self) -> usize {
        self.acquired
    }
}

impl Redlock {
    /// A Redlock over the servers of `clients` (independent primaries; an
    /// odd number, usually 5). TTL 30 s, 3 retries after a random delay of
    /// up to 200 ms, 50 ms timeout per server.
    pub fn new(clients: impl IntoIterator<Item = redis::Client>) -> Result<Self> {
        let instances: Vec<Instance> = clients
            .into_iter()
            .map(|client| Instance {
                client,
                sync: std::sync::Mutex::new(None),
                #[cfg(feature = "async")]
                asynchronous: tokio::sync::Mutex::new(None),
            })
            .collect();
        if instances.is_empty() {
            return Err(Error::InvalidConfig {
                what: "redlock",
                reason: "at least one server is needed".to_owned(),
            });
        }
        Ok(Redlock {
            instances,
            ns: None,
            verbatim: None,
            ttl: Duration::from_secs(30),
            retries: 3,
            retry_delay: Duration::from_millis(200),
            timeout: Duration::from_millis(50),
        })
    }

    /// How long the lock lives on each server. Default 30 s. At least
    /// 1 ms; at most 2^53 - 1 ms (what Redis accepts and Lua counts exactly).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.clamp(Duration::from_millis(1), MAX_TTL);
        self
    }

    /// Tries again `retries` times after a failed attempt, each time after
    /// a random delay of up to `max_delay` (any duration: the delay is
    /// drawn from its first 584 years). Default 3 and 200 ms.
    pub fn retry(mut self, retries: u32, max_delay: Duration) -> Self {
        self.retries = retries;
        self.retry_delay = max_delay;
        self
    }

    /// How long to wait for one server (connecting, or answering) before
    /// counting it as a no; keep it small against the TTL. Default 50 ms,
    /// at least 1 ms, at most one hour.
    pub fn instance_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.clamp(Duration::from_millis(1), Duration::from_secs(3600));
        self
    }

    /// Puts the lock keys in namespace `ns`.
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.ns = Some(ns.clone());
        self
    }

    /// Keys each lock at `<prefix><resource>`, the resource as given (not
    /// escaped, no hash tag), the layout other Redlock clients use:
    /// `verbatim_keys("lock:")` is `lock:<resource>` (the redis-py Redlock
    /// recipe), `verbatim_keys("")` the resource itself (node-redlock,
    /// redlock-py). Clients that agree on the key exclude each other, and
    /// the release script is the common one (compare the token, then
    /// `DEL`), so either side releases what the other took given its token.
    /// Two resources share a key when their text is equal, so keep them to
    /// names the application makes.
    pub fn verbatim_keys(mut self, prefix: &str) -> Self {
        self.verbatim = Some(prefix.to_owned());
        self
    }

    /// How many servers must agree: `N / 2 + 1`.
    pub fn quorum(&self) -> usize {
        self.instances.len() / 2 + 1
    }

    fn key(&self, resource: &dyn Fn(&mut IdBuf)) -> String {
        let mut id = IdBuf::new();
        resource(&mut id);
        lock_key(self.ns.as_ref(), self.verbatim.as_deref(), &id)
    }

    /// Decides one attempt: `Some(guard)` with a quorum and time left.
    fn conclude(
        &self,
        key: &str,
        token: &str,
        started: Instant,
        acquired: usize,
    ) -> Option<RedlockGuard> {
        let validity = self
            .ttl
            .checked_sub(started.elapsed())
            .and_then(|left| left.checked_sub(drift(self.ttl)))
            .filter(|v| !v.is_zero())?;
        (acquired >= self.quorum()).then(|| RedlockGuard {
            key: key.to_owned(),
            token: token.to_owned(),
            validity,
            valid_until: started.checked_add(validity).unwrap_or(started),
            acquired,
        })
    }

    fn retry_pause(&self) -> Duration {
        random::between(Duration::ZERO, self.retry_delay)
    }

    /// Takes the lock on a majority of the servers, trying up to `1 +
    /// retries` times; `None` when no attempt got a quorum with time left.
    /// Servers are asked one after the other (one `SET NX PX` each, bounded
    /// by the instance timeout); a failed attempt is undone with the
    /// release script on every server.
    pub fn lock(&self, resource: impl KeyPart) -> Result<Option<RedlockGuard>> {
        let key = self.key(&|id| resource.write_key_part(id));
        block_on(self.lock_with(&mut OneByOne(self), &key))
    }

    /// [`lock`](Redlock::lock) on the current tokio runtime: the servers
    /// are asked at the same time.
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub async fn lock_async(&self, resource: impl KeyPart) -> Result<Option<RedlockGuard>> {
        let key = self.key(&|id| resource.write_key_part(id));
        self.lock_with(&mut AllAtOnce(self), &key).await
    }

    /// Releases the lock on every server; the output is on how many it was
    /// still held by this guard.
    pub fn unlock(&self, guard: &RedlockGuard) -> Result<usize> {
        Ok(block_on(
            OneByOne(self).ask(|| Release::new(&guard.key, &guard.token)),
        ))
    }

    /// [`unlock`](Redlock::unlock), asking the servers at the same time.
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub async fn unlock_async(&self, guard: &RedlockGuard) -> Result<usize> {
        Ok(AllAtOnce(self)
            .ask(|| Release::new(&guard.key, &guard.token))
            .await)
    }

    /// Resets the TTL to the configured TTL on every server that still
    /// holds this guard's token; `Some` new guard (with a new validity)
    /// when a majority did in time, `None` otherwise (the lock should then
    /// be considered lost).
    pub fn extend(&self, guard: &RedlockGuard) -> Result<Option<RedlockGuard>> {
        Ok(block_on(self.extend_with(&mut OneByOne(self), guard)))
    }

    /// [`extend`](Redlock::extend), asking the servers at the same time.
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub async fn extend_async(&self, guard: &RedlockGuard) -> Result<Option<RedlockGuard>> {
        Ok(self.extend_with(&mut AllAtOnce(self), guard).await)
    }

    /// The attempts of a lock: `SET NX PX` everywhere, a quorum with time
    /// left wins; otherwise release everywhere and try again after a
    /// random pause.
    async fn lock_with<Q: Quorum>(&self, q: &mut Q, key: &str) -> Result<Option<RedlockGuard>> {
        for attempt in 0..=self.retries {
            if attempt > 0 {
                q.sleep(self.retry_pause()).await;
            }
            let token = random::hex_token(16)?;
            let started = Instant::now();
            let acquired = q.ask(|| set_nx(key, &token, self.ttl)).await;
            if let Some(guard) = self.conclude(key, &token, started, acquired) {
                return Ok(Some(guard));
            }
            q.ask(|| Release::new(key, &token)).await;
        }
        Ok(None)
    }

    async fn extend_with<Q: Quorum>(
        &self,
        q: &mut Q,
        guard: &RedlockGuard,
    ) -> Option<RedlockGuard> {
        let started = Instant::now();
        let ms = random::millis(self.ttl);
        let extended = q.ask(|| Extend::new(&guard.key, &guard.token, ms)).await;
        self.conclude(&guard.key, &guard.token, started, extended)
    }

    /// Runs `op` on one server over its blocking connection (opened, with
    /// the instance timeout on connect, read and write, on first use and
    /// after a connection error).
    fn run_on<O: Operation>(&self, instance: &Instance, op: O) -> Result<O::Output> {
        let mut slot = instance
            .sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            let con = instance.client.get_connection_with_timeout(self.timeout)?;
            con.set_read_timeout(Some(self.timeout))?;
            con.set_write_timeout(Some(self.timeout))?;
            *slot = Some(con);
        }
        let con = slot.as_mut().ok_or_else(|| Error::InvalidConfig {
            what: "redlock",
            reason: "no connection".to_owned(),
        })?;
        let result = op.run(con);
        if result.as_ref().is_err_and(Error::is_connection_error) {
            *slot = None; // reconnect next time
        }
        result
    }

    /// Runs `op` on one server over its async connection, the whole call
    /// (connecting included) bounded by the instance timeout.
    #[cfg(feature = "async")]
    async fn run_on_async<O: Operation + Send>(
        &self,
        instance: &Instance,
        op: O,
    ) -> Result<O::Output>
    where
        O::Output: Send,
    {
        let work = async {
            let mut slot = instance.asynchronous.lock().await;
            if slot.is_none() {
                *slot = Some(instance.client.get_multiplexed_async_connection().await?);
            }
            let con = slot.as_mut().ok_or_else(|| Error::InvalidConfig {
                what: "redlock",
                reason: "no connection".to_owned(),
            })?;
            let result = op.run_async(con).await;
            if result.as_ref().is_err_and(Error::is_connection_error) {
                *slot = None;
            }
            result
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => {
                // The connection may be stuck mid-reply: start afresh.
                *instance.asynchronous.lock().await = None;
                Err(Error::Redis(
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "redlock server timed out")
                        .into(),
                ))
            }
        }
    }
}

/// How the procedures of a [`Redlock`] reach its servers: the driver of a
/// lock over several connections.
trait Quorum {
    /// Runs `make()` on every server; how many answered `true` (a server
    /// that failed or timed out counts as no).
    fn ask<O, F>(&mut self, make: F) -> impl Future<Output = usize> + Send
    where
        F: Fn() -> O + Send,
        O: Operation<Output = bool> + Send;

    /// Pauses the caller.
    fn sleep(&mut self, d: Duration) -> impl Future<Output = ()> + Send;
}

/// Blocking: the servers one after the other, each bounded by the instance
/// timeout.
struct OneByOne<'r>(&'r Redlock);

impl Quorum for OneByOne<'_> {
    fn ask<O, F>(&mut self, make: F) -> impl Future<Output = usize> + Send
    where
        F: Fn() -> O + Send,
        O: Operation<Output = bool> + Send,
    {
        let r = self.0;
        let yes = r
            .instances
            .iter()
            .filter(|i| r.run_on(i, make()).unwrap_or(false))
            .count();
        std::future::ready(yes)
    }

    fn sleep(&mut self, d: Duration) -> impl Future<Output = ()> + Send {
        std::thread::sleep(d);
        std::future::ready(())
    }
}

/// Async: all servers at the same time.
#[cfg(feature = "async")]
struct AllAtOnce<'r>(&'r Redlock);

#[cfg(feature = "async")]
impl Quorum for AllAtOnce<'_> {
    async fn ask<O, F>(&mut self, make: F) -> usize
    where
        F: Fn() -> O + Send,
        O: Operation<Output = bool> + Send,
    {
        let r = self.0;
        futures_util::future::join_all(r.instances.iter().map(|i| r.run_on_async(i, make())))
            .await
            .into_iter()
            .filter(|a| matches!(a, Ok(true)))
            .count()
    }

    async fn sleep(&mut self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// `SET key token NX PX ttl`; `true` when set.
fn set_nx(key: &str, token: &str, ttl: Duration) -> impl Operation<Output = bool> + Send + use<> {
    command::<Value>("SET", key)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(random::millis(ttl))
        .map(|v| matches!(v, Value::Okay))
}
