//! One connection configuration for every topology: bounded timeouts,
//! keepalive, retries with backoff and jitter, a circuit breaker, Sentinel
//! that follows failovers, reads on replicas.
//!
//! [`ConnectionOptions`] opens a standalone server, a Cluster or a Sentinel
//! service; what it returns runs every operation of the library like any
//! other connection:
//!
//! | topology | async ([`Connection`], `Clone`, shared by tasks) | blocking ([`BlockingConnection`]) |
//! |---|---|---|
//! | standalone | [`connect_async`](ConnectionOptions::connect_async): a `ConnectionManager` (reconnects after `CLIENT KILL` or a restart) | [`connect`](ConnectionOptions::connect): a `redis::Connection`, reopened after a failure |
//! | Cluster | [`connect_cluster_async`](ConnectionOptions::connect_cluster_async) | [`connect_cluster`](ConnectionOptions::connect_cluster) |
//! | Sentinel | [`connect_sentinel_async`](ConnectionOptions::connect_sentinel_async): finds the primary, follows failovers | [`connect_sentinel`](ConnectionOptions::connect_sentinel): the async one on a runtime of its own |
//! | pools | `Pooled` of deadpool-redis (`deadpool`) or bb8-redis (`bb8`), one server | `Pooled` of r2d2 (`r2d2`), one server or Cluster |
//!
//! Prefer these over a bare `MultiplexedConnection`: a multiplexed
//! connection whose socket was closed (`CLIENT KILL`, a server restart, a
//! failover) fails every later command and never reconnects; the
//! `ConnectionManager` inside [`Connection`] reconnects.
//!
//! # Bounds
//!
//! Every attempt is bounded by `connect_timeout + response_timeout`, and an
//! operation makes at most `1 + retries` attempts separated by backoff
//! pauses of at most `backoff_max`: [`ConnectionOptions::worst_case`] is
//! that bound (default 3 × 2 s + 2 × 1 s = 8 s). No operation on a
//! configured connection waits longer.
//!
//! # What is retried
//!
//! * A reply of `READONLY` (a demoted primary), `LOADING`, `MASTERDOWN`,
//!   `TRYAGAIN`, `CLUSTERDOWN`, or `MOVED`/`ASK` left in a Cluster
//!   pipeline's replies: the server did not apply the command. The
//!   connection rediscovers its primary (Sentinel) and the whole plan is
//!   sent again.
//! * A refused connection: nothing was sent.
//! * A timeout or a dropped connection on a plan of reads only.
//!
//! A timeout or a dropped connection on a plan that writes is not retried:
//! the write may have been applied, and the error says so
//! ([`Error::Timeout`] with `may_have_applied: true`). Make such a write
//! idempotent (a save, a `SET`) before retrying it yourself.
//!
//! # Circuit breaker
//!
//! After `failures` consecutive operations failed on the transport, the
//! breaker opens: operations fail at once with [`Error::CircuitOpen`]
//! without touching the network, for `open_for`. Then one operation goes
//! through as a probe (half-open): its success closes the breaker, its
//! failure opens it again.

mod durable;
#[cfg(any(feature = "deadpool", feature = "bb8", feature = "r2d2"))]
mod pool;
mod sentinel;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::{ErrorKind, IntoConnectionInfo, ServerErrorKind, Value};

use crate::driver::block_on;
use crate::error::{Error, Result};
use crate::exec::{AsyncExecutor, SyncExecutor};
use crate::op::{Command, Plan};

pub use durable::{Durable, durable};
#[cfg(any(feature = "deadpool", feature = "bb8", feature = "r2d2"))]
pub use pool::Pooled;
#[cfg(feature = "r2d2")]
pub use pool::R2d2Manager;
pub use sentinel::SentinelConnection;

/// Where reads go on a topology with replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReadFrom {
    /// Every command goes to the primary (the default): reads see every
    /// acknowledged write.
    #[default]
    Primary,
    /// Plans made only of reads go to a replica (round robin); a replica
    /// may lag behind the primary, so a read may miss recent writes (a
    /// *stale read*).
    Replica,
    /// As [`Replica`](Self::Replica), but a connection that wrote in the
    /// last `window` reads from the primary, so that it reads its own
    /// writes unless a replica lags by more than the window.
    ReplicaAfterWrites {
        /// How long reads stay on the primary after a write.
        window: Duration,
    },
}

/// How a connection connects, waits, retries and gives up. See the
/// [module docs](self).
///
/// Defaults: connect timeout 1 s, response timeout 1 s, TCP keepalive after
/// 30 s idle, 2 retries with backoff from 50 ms doubling to at most 1 s
/// (full jitter), a circuit breaker opening after 5 failed operations for
/// 2 s, reads on the primary. Worst case for one operation: 8 s.
#[derive(Clone, Debug)]
#[must_use]
pub struct ConnectionOptions {
    connect_timeout: Duration,
    response_timeout: Duration,
    keepalive: Option<Duration>,
    retries: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    breaker: Option<(u32, Duration)>,
    read_from: ReadFrom,
    #[cfg(feature = "tls")]
    tls_root: Option<TlsRoot>,
}

/// A CA certificate (PEM); its `Debug` shows only its size.
#[cfg(feature = "tls")]
#[derive(Clone)]
struct TlsRoot(Vec<u8>);

#[cfg(feature = "tls")]
impl fmt::Debug for TlsRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<PEM, {} bytes>", self.0.len())
    }
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            keepalive: Some(Duration::from_secs(30)),
            retries: 2,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            breaker: Some((5, Duration::from_secs(2))),
            read_from: ReadFrom::Primary,
            #[cfg(feature = "tls")]
            tls_root: None,
        }
    }
}

/// The longest a timeout may be (a day): longer settings saturate to it.
const MAX_SETTING: Duration = Duration::from_secs(86_400);
/// Retries above this are refused (saturated): the bound must stay readable.
const MAX_RETRIES: u32 = 100;

fn clamp(d: Duration) -> Duration {
    d.clamp(Duration::from_millis(1), MAX_SETTING)
}

impl ConnectionOptions {
    /// The defaults (see the type's docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// How long opening a connection may take (default 1 s; 1 ms to a day).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = clamp(d);
        self
    }

    /// How long one attempt waits for its replies (default 1 s; 1 ms to a
    /// day). A command that blocks on the server longer than this fails.
    pub fn response_timeout(mut self, d: Duration) -> Self {
        self.response_timeout = clamp(d);
        self
    }

    /// TCP keepalive: probes after the connection was idle this long
    /// (default 30 s); `None` leaves the system default (off on Linux).
    pub fn keepalive(mut self, idle: Option<Duration>) -> Self {
        self.keepalive = idle.map(clamp);
        self
    }

    /// Retries after a failure that left nothing applied (default 2; at
    /// most 100).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries.min(MAX_RETRIES);
        self
    }

    /// Backoff between attempts: `base · 2^attempt`, capped at `max`, then a
    /// random point below it (full jitter). Defaults 50 ms and 1 s.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_max = max.min(MAX_SETTING);
        self.backoff_base = base.min(self.backoff_max);
        self
    }

    /// A circuit breaker that opens after `failures` consecutive failed
    /// operations (at least 1) and lets a probe through after `open_for`.
    pub fn circuit_breaker(mut self, failures: u32, open_for: Duration) -> Self {
        self.breaker = Some((failures.max(1), open_for.min(MAX_SETTING)));
        self
    }

    /// No circuit breaker: every operation tries the network.
    pub fn no_circuit_breaker(mut self) -> Self {
        self.breaker = None;
        self
    }

    /// Where plans of reads go (default [`ReadFrom::Primary`]); Sentinel
    /// and Cluster connections honour it.
    pub fn read_from(mut self, read_from: ReadFrom) -> Self {
        self.read_from = read_from;
        self
    }

    /// Trusts the CA whose certificate is `pem` (instead of the system's
    /// roots) for `rediss://` URLs: standalone, Sentinel and Cluster
    /// (feature `tls`, rustls).
    #[cfg(feature = "tls")]
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(TlsRoot(pem.into()));
        self
    }

    #[cfg(feature = "tls")]
    fn tls_certificates(&self) -> Option<redis::TlsCertificates> {
        self.tls_root.as_ref().map(|root| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root.0.clone()),
        })
    }

    /// The longest one operation can take on a connection with these
    /// options: `(1 + retries) · (connect_timeout + response_timeout) +
    /// retries · backoff_max`.
    pub fn worst_case(&self) -> Duration {
        let attempts = self.retries.saturating_add(1);
        self.attempt_bound()
            .saturating_mul(attempts)
            .saturating_add(self.backoff_max.saturating_mul(self.retries))
    }

    fn attempt_bound(&self) -> Duration {
        self.connect_timeout.saturating_add(self.response_timeout)
    }

    /// The pause before retry number `attempt` (0-based): full jitter below
    /// `min(base · 2^attempt, max)`.
    fn backoff_for(&self, attempt: u32) -> Duration {
        let cap = self
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.backoff_max);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    fn tcp_settings(&self) -> redis::io::tcp::TcpSettings {
        let tcp = redis::io::tcp::TcpSettings::default();
        match self.keepalive {
            Some(idle) => tcp.set_keepalive(
                redis::io::tcp::socket2::TcpKeepalive::new()
                    .with_time(idle)
                    .with_interval(Duration::from_secs(5)),
            ),
            None => tcp,
        }
    }

    fn manager_config(&self) -> redis::aio::ConnectionManagerConfig {
        redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(usize::try_from(self.retries).unwrap_or(usize::MAX))
            .set_min_delay(self.backoff_base.max(Duration::from_millis(1)))
            .set_max_delay(self.backoff_max)
    }

    fn client(&self, info: redis::ConnectionInfo) -> Result<redis::Client> {
        let info = info.set_tcp_settings(self.tcp_settings());
        #[cfg(feature = "tls")]
        if let Some(certs) = self.tls_certificates()
            && matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. })
        {
            return Ok(redis::Client::build_with_tls(info, certs)?);
        }
        Ok(redis::Client::open(info)?)
    }

    #[cfg(feature = "cluster")]
    fn cluster_client(&self, urls: &[&str]) -> Result<redis::cluster::ClusterClient> {
        let mut infos = Vec::with_capacity(urls.len());
        for url in urls {
            infos.push(url.into_connection_info()?);
        }
        let mut builder = redis::cluster::ClusterClientBuilder::new(infos)
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.response_timeout)
            .overall_response_timeout(Some(self.attempt_bound()))
            .retries(self.retries)
            .min_retry_wait(u64::try_from(self.backoff_base.as_millis()).unwrap_or(u64::MAX))
            .max_retry_wait(u64::try_from(self.backoff_max.as_millis()).unwrap_or(u64::MAX))
            .tcp_settings(self.tcp_settings());
        #[cfg(feature = "tls")]
        if let Some(certs) = self.tls_certificates() {
            builder = builder.certs(certs);
        }
        if self.read_from != ReadFrom::Primary {
            builder =
                builder.read_routing_strategy(redis::cluster_read_routing::RandomReplicaStrategy);
        }
        Ok(builder.build()?)
    }

    /// Opens an async connection to a standalone server (a
    /// `ConnectionManager` configured with these options).
    ///
    /// # Errors
    ///
    /// A bad URL, or the server not answering within the connect budget.
    pub async fn connect_async(&self, url: impl IntoConnectionInfo) -> Result<Connection> {
        let info = url.into_connection_info()?;
        let endpoint = endpoint_of(&info);
        let client = self.client(info)?;
        let manager = bounded(
            self.worst_case(),
            &endpoint,
            client.get_connection_manager_with_config(self.manager_config()),
        )
        .await?;
        Ok(Connection::new(self, endpoint, Inner::Standalone(manager)))
    }

    /// Opens an async Cluster connection seeded with `urls` (redis-rs'
    /// `ClusterClientBuilder` with these timeouts, retries and keepalive;
    /// [`ReadFrom::Replica`] turns on `read_from_replicas`).
    ///
    /// # Errors
    ///
    /// A bad URL, or no node answering within the connect budget.
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub async fn connect_cluster_async(&self, urls: &[&str]) -> Result<Connection> {
        let client = self.cluster_client(urls)?;
        let con = bounded(
            self.worst_case(),
            "the Cluster",
            client.get_async_connection(),
        )
        .await?;
        Ok(Connection::new(
            self,
            "the Cluster".to_owned(),
            Inner::Cluster(con),
        ))
    }

    /// Opens an async connection to the primary of Sentinel service
    /// `service`, asking the sentinels at `sentinel_urls`. The data nodes
    /// are reached with the credentials and database of the first URL.
    /// See [`SentinelConnection`].
    ///
    /// # Errors
    ///
    /// A bad URL; [`Error::NoPrimary`] if no sentinel names a primary that
    /// answers `ROLE` as one.
    pub async fn connect_sentinel_async(
        &self,
        sentinel_urls: &[&str],
        service: &str,
    ) -> Result<Connection> {
        let sentinel = SentinelConnection::connect(self, sentinel_urls, service).await?;
        Ok(Connection::new(
            self,
            format!("Sentinel service `{service}`"),
            Inner::Sentinel(sentinel),
        ))
    }

    /// Opens a blocking connection to a standalone server (connect, read
    /// and write timeouts set; reopened after a failure).
    ///
    /// # Errors
    ///
    /// A bad URL, or the server not answering within the connect timeout.
    pub fn connect(&self, url: impl IntoConnectionInfo) -> Result<BlockingConnection> {
        let info = url.into_connection_info()?;
        let endpoint = endpoint_of(&info);
        let client = self.client(info)?;
        let con = open_sync(&client, self)?;
        Ok(BlockingConnection {
            shared: Shared::new(self, endpoint),
            inner: BlockingInner::Standalone {
                client,
                con: Some(con),
            },
        })
    }

    /// Opens a blocking connection to the primary of Sentinel service
    /// `service`: the [async one](Self::connect_sentinel_async) (discovery,
    /// failover following, replica reads, the same attempt loop) driven on
    /// a current-thread runtime owned by the connection. Call it, and run
    /// operations on it, outside any async runtime.
    ///
    /// # Errors
    ///
    /// As [`connect_sentinel_async`](Self::connect_sentinel_async);
    /// [`Error::InvalidConfig`] when called inside an async runtime.
    pub fn connect_sentinel(
        &self,
        sentinel_urls: &[&str],
        service: &str,
    ) -> Result<BlockingConnection> {
        outside_runtime()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::InvalidConfig {
                what: "Sentinel connection",
                reason: format!("cannot start its runtime: {e}"),
            })?;
        let con = rt.block_on(self.connect_sentinel_async(sentinel_urls, service))?;
        Ok(BlockingConnection {
            shared: Arc::clone(&con.shared),
            inner: BlockingInner::Sentinel(Box::new((rt, con))),
        })
    }

    /// Opens a blocking Cluster connection seeded with `urls`.
    ///
    /// # Errors
    ///
    /// A bad URL, or no node answering.
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn connect_cluster(&self, urls: &[&str]) -> Result<BlockingConnection> {
        let client = self.cluster_client(urls)?;
        let con = client.get_connection()?;
        Ok(BlockingConnection {
            shared: Shared::new(self, "the Cluster".to_owned()),
            inner: BlockingInner::Cluster(Box::new(con)),
        })
    }
}

/// A blocking Sentinel connection drives a runtime: refused inside one.
fn outside_runtime() -> Result<()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::InvalidConfig {
            what: "blocking Sentinel connection",
            reason: "used inside an async runtime; use connect_sentinel_async there".to_owned(),
        });
    }
    Ok(())
}

/// `host:port` of a connection, never its credentials.
fn endpoint_of(info: &redis::ConnectionInfo) -> String {
    match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port} (TLS)"),
        redis::ConnectionAddr::Unix(path) => path.display().to_string(),
        _ => "the server".to_owned(),
    }
}

/// Awaits `fut` for at most `limit`.
async fn bounded<T>(
    limit: Duration,
    endpoint: &str,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(Error::Timeout {
            endpoint: endpoint.to_owned(),
            waited: limit,
            may_have_applied: false,
            reason: "connecting timed out".to_owned(),
        }),
    }
}

fn open_sync(client: &redis::Client, opts: &ConnectionOptions) -> Result<redis::Connection> {
    let con = client.get_connection_with_timeout(opts.connect_timeout)?;
    con.set_read_timeout(Some(opts.response_timeout))?;
    con.set_write_timeout(Some(opts.response_timeout))?;
    Ok(con)
}

// ---------------------------------------------------------------------------
// The circuit breaker.

#[derive(Debug, Default)]
struct BreakerState {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

#[derive(Debug)]
struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<BreakerState>,
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lets an operation through, or says when the next probe goes.
    fn admit(&self, endpoint: &str) -> Result<()> {
        let mut s = self.lock();
        let Some(until) = s.open_until else {
            return Ok(());
        };
        let now = Instant::now();
        if now < until || s.probing {
            return Err(Error::CircuitOpen {
                endpoint: endpoint.to_owned(),
                failures: s.failures,
                retry_in: until.saturating_duration_since(now),
            });
        }
        s.probing = true;
        Ok(())
    }

    fn success(&self) {
        let mut s = self.lock();
        *s = BreakerState::default();
    }

    fn failure(&self) {
        let mut s = self.lock();
        s.failures = s.failures.saturating_add(1);
        if s.probing || s.failures >= self.threshold {
            s.open_until = Some(Instant::now() + self.open_for);
            s.probing = false;
        }
    }
}

/// What every clone of a connection shares.
#[derive(Debug)]
struct Shared {
    options: ConnectionOptions,
    endpoint: String,
    breaker: Option<Breaker>,
    /// When a plan with writes last went out (for read-your-writes).
    last_write: Mutex<Option<Instant>>,
}

impl Shared {
    fn new(options: &ConnectionOptions, endpoint: String) -> Arc<Self> {
        Arc::new(Shared {
            options: options.clone(),
            endpoint,
            breaker: options.breaker.map(|(threshold, open_for)| Breaker {
                threshold,
                open_for,
                state: Mutex::new(BreakerState::default()),
            }),
            last_write: Mutex::new(None),
        })
    }

    /// Whether a plan of reads may go to a replica now.
    fn reads_on_replica(&self, read_from: ReadFrom) -> bool {
        match read_from {
            ReadFrom::Primary => false,
            ReadFrom::Replica => true,
            ReadFrom::ReplicaAfterWrites { window } => self
                .last_write
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_none_or(|at| at.elapsed() >= window),
        }
    }

    fn wrote(&self) {
        *self
            .last_write
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }
}

// ---------------------------------------------------------------------------
// The attempt loop, written once for both executors.

/// One way of sending a plan: the async connection or the blocking one.
trait Transport {
    /// Sends one attempt of `plan`; `reads` says the plan may go to a replica.
    fn send(&mut self, plan: Plan, reads: bool) -> impl Future<Output = Result<Vec<Value>>> + Send;
    /// Pauses before the next attempt.
    fn pause(&mut self, d: Duration) -> impl Future<Output = ()> + Send;
    /// Makes the next attempt use a fresh connection or a rediscovered
    /// primary; `moved` is a key a Cluster node answered `MOVED`/`ASK` for.
    fn recover(&mut self, moved: Option<Vec<u8>>) -> impl Future<Output = ()> + Send;
}

/// The commands that only read: a plan made of these may be sent again
/// after a timeout, and may go to a replica.
const READ_ONLY: &[&str] = &[
    "GET",
    "MGET",
    "STRLEN",
    "GETRANGE",
    "EXISTS",
    "TYPE",
    "TTL",
    "PTTL",
    "EXPIRETIME",
    "PEXPIRETIME",
    "HGET",
    "HMGET",
    "HGETALL",
    "HEXISTS",
    "HLEN",
    "HKEYS",
    "HVALS",
    "HSCAN",
    "SMEMBERS",
    "SISMEMBER",
    "SMISMEMBER",
    "SCARD",
    "SSCAN",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZREVRANGE",
    "ZREVRANGEBYSCORE",
    "ZRANGEBYLEX",
    "ZSCORE",
    "ZMSCORE",
    "ZRANK",
    "ZREVRANK",
    "ZCARD",
    "ZCOUNT",
    "ZLEXCOUNT",
    "ZSCAN",
    "LRANGE",
    "LLEN",
    "LINDEX",
    "XRANGE",
    "XREVRANGE",
    "XLEN",
    "SCAN",
    "PING",
    "EVALSHA_RO",
    "EVAL_RO",
    "FCALL_RO",
];

fn command_name(c: &Command) -> Option<&[u8]> {
    match c.cmd.args_iter().next()? {
        redis::Arg::Simple(name) => Some(name),
        _ => None,
    }
}

/// Whether every command of `plan` only reads.
pub(crate) fn is_read_only(plan: &Plan) -> bool {
    !plan.commands.is_empty()
        && plan.commands.iter().all(|c| {
            c.script.is_none()
                && command_name(c).is_some_and(|n| {
                    READ_ONLY
                        .iter()
                        .any(|r| r.as_bytes().eq_ignore_ascii_case(n))
                })
        })
}

fn copy_plan(plan: &Plan) -> Plan {
    Plan {
        commands: plan
            .commands
            .iter()
            .map(|c| Command {
                cmd: c.cmd.clone(),
                script: c.script,
                slot: c.slot,
                target: c.target.clone(),
                keys: c.keys,
            })
            .collect(),
        single_round: plan.single_round,
        one_server: plan.one_server,
    }
}

/// A reply that says the server did not apply the command and another try
/// (after rediscovery) may succeed.
fn not_applied(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if matches!(
        e.kind(),
        Some(
            ServerErrorKind::ReadOnly
                | ServerErrorKind::BusyLoading
                | ServerErrorKind::MasterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
        )
    ))
}

fn is_redirect(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if matches!(
        e.kind(),
        Some(ServerErrorKind::Moved | ServerErrorKind::Ask)
    ))
}

/// The first key of the first command answered with a redirection.
fn moved_key(plan: Option<&Plan>, values: &[Value]) -> Option<Vec<u8>> {
    let i = values.iter().position(is_redirect)?;
    key_of(plan?.commands.get(i)?)
}

/// The first key of the plan's first keyed command.
fn first_key(plan: &Plan) -> Option<Vec<u8>> {
    plan.commands
        .iter()
        .filter(|c| c.slot.is_some())
        .find_map(key_of)
}

fn key_of(c: &Command) -> Option<Vec<u8>> {
    let args: Vec<&[u8]> = c
        .cmd
        .args_iter()
        .filter_map(|a| match a {
            redis::Arg::Simple(b) => Some(b),
            _ => None,
        })
        .collect();
    let name = args.first()?;
    let scripted = [
        &b"EVAL"[..],
        b"EVALSHA",
        b"EVAL_RO",
        b"EVALSHA_RO",
        b"FCALL",
        b"FCALL_RO",
    ]
    .iter()
    .any(|n| n.eq_ignore_ascii_case(name));
    args.get(if scripted { 3 } else { 1 }).map(|k| k.to_vec())
}

/// How an attempt failed.
enum Failure {
    /// Nothing was sent (refused connection, open breaker of redis-rs).
    NotSent(String),
    /// Refused by the server as not its to apply now (`MOVED`, `READONLY`,
    /// `LOADING`...): nothing was applied.
    Redirected(String),
    /// Sent, and no answer came (timeout, dropped connection).
    Unanswered(String),
    /// Any other error (a bad reply, a client error): not a transport failure.
    Other(Error),
}

fn classify(e: Error) -> Failure {
    match e {
        Error::Redis(r)
            if r.is_connection_refusal() || r.kind() == ErrorKind::ClusterConnectionNotFound =>
        {
            Failure::NotSent(r.to_string())
        }
        Error::Redis(r)
            if matches!(
                r.kind(),
                ErrorKind::Server(
                    ServerErrorKind::ReadOnly
                        | ServerErrorKind::BusyLoading
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::Moved
                        | ServerErrorKind::Ask
                )
            ) =>
        {
            Failure::Redirected(r.to_string())
        }
        Error::Redis(r) if r.is_timeout() || r.is_io_error() || r.is_connection_dropped() => {
            Failure::Unanswered(r.to_string())
        }
        // Nothing went out (a pool had no connection to hand out in time).
        Error::Timeout {
            reason,
            may_have_applied: false,
            ..
        } => Failure::NotSent(reason),
        Error::Timeout { reason, .. } => Failure::Unanswered(reason),
        // The same failures as the operation loop names them: a server
        // refusal with its command and keys, a round trip with no reply.
        Error::Server { error, .. } if REDIRECTED.contains(&error.code()) => {
            Failure::Redirected(error.to_string())
        }
        Error::NoReply { error, .. } if error.is_connection_refusal() => {
            Failure::NotSent(error.to_string())
        }
        Error::NoReply { error, .. } => Failure::Unanswered(error.to_string()),
        other => Failure::Other(other),
    }
}

/// Server error codes that mean "not applied here, now": rediscover or
/// follow, then retry.
const REDIRECTED: &[&str] = &[
    "READONLY",
    "LOADING",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MOVED",
    "ASK",
];

/// Runs `plan` with the retry policy and the breaker of `shared`.
async fn run_plan<T: Transport>(
    t: &mut T,
    shared: &Shared,
    read_from: ReadFrom,
    plan: Plan,
) -> Result<Vec<Value>> {
    if plan.is_empty() {
        return Ok(Vec::new());
    }
    let opts = &shared.options;
    if let Some(b) = &shared.breaker {
        b.admit(&shared.endpoint)?;
    }
    let started = Instant::now();
    let reads = is_read_only(&plan);
    let to_replica = reads && shared.reads_on_replica(read_from);
    if !reads {
        shared.wrote();
    }
    let mut plan = Some(plan);
    let mut attempt = 0u32;
    loop {
        let last = attempt >= opts.retries;
        let this = if last {
            plan.take()
        } else {
            plan.as_ref().map(copy_plan)
        };
        let Some(this) = this else {
            return Ok(Vec::new());
        };
        let mut moved = None;
        let failure = match t.send(this, to_replica).await {
            Ok(values) => {
                if last || !values.iter().any(not_applied) {
                    if let Some(b) = &shared.breaker {
                        b.success();
                    }
                    return Ok(values);
                }
                log::debug!(
                    "{}: not applied (READONLY, LOADING, MOVED...), rediscovering and retrying",
                    shared.endpoint
                );
                moved = moved_key(plan.as_ref(), &values);
                None
            }
            Err(e) => match classify(e) {
                Failure::Other(e) => return Err(e),
                Failure::NotSent(reason) => Some((reason, false)),
                Failure::Redirected(reason) => {
                    moved = plan.as_ref().and_then(first_key);
                    Some((reason, false))
                }
                Failure::Unanswered(reason) => Some((reason, !reads)),
            },
        };
        if let Some((reason, may_have_applied)) = failure
            && (last || may_have_applied)
        {
            if let Some(b) = &shared.breaker {
                b.failure();
            }
            t.recover(None).await;
            return Err(Error::Timeout {
                endpoint: shared.endpoint.clone(),
                waited: started.elapsed(),
                may_have_applied,
                reason,
            });
        }
        t.recover(moved).await;
        t.pause(opts.backoff_for(attempt)).await;
        attempt += 1;
    }
}

// ---------------------------------------------------------------------------
// The async connection.

#[derive(Clone)]
enum Inner {
    Standalone(redis::aio::ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
    Sentinel(SentinelConnection),
}

/// An async connection opened by [`ConnectionOptions`]: a handle (clone it
/// for each task) that runs every operation of the library with the
/// options' timeouts, retries and circuit breaker. See the
/// [module docs](self).
#[derive(Clone)]
pub struct Connection {
    inner: Inner,
    shared: Arc<Shared>,
    read_from: ReadFrom,
}

impl Connection {
    fn new(options: &ConnectionOptions, endpoint: String, inner: Inner) -> Self {
        Connection {
            inner,
            shared: Shared::new(options, endpoint),
            read_from: options.read_from,
        }
    }

    /// A handle on the same connection whose plans of reads go to replicas
    /// as `read_from` says, whatever the connection's options said: use it
    /// for the operations that may read stale data (per operation), keep
    /// the original for the rest. Only Sentinel connections route per
    /// handle; a Cluster connection reads where its options said.
    pub fn with_read_from(&self, read_from: ReadFrom) -> Self {
        let mut c = self.clone();
        c.read_from = read_from;
        c
    }

    /// The options it was opened with.
    pub fn options(&self) -> &ConnectionOptions {
        &self.shared.options
    }

    /// A health check: `PING` through the attempt loop (so it counts for
    /// the circuit breaker, and on an open breaker fails at once); returns
    /// the round-trip time.
    ///
    /// # Errors
    ///
    /// As any operation: [`Error::Timeout`], [`Error::CircuitOpen`], ...
    pub async fn health_check_async(&mut self) -> Result<Duration> {
        let started = Instant::now();
        let mut plan = Plan::new();
        plan.keyless("PING");
        self.execute_async(plan).await?;
        Ok(started.elapsed())
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            Inner::Standalone(_) => "standalone",
            #[cfg(feature = "cluster")]
            Inner::Cluster(_) => "cluster",
            Inner::Sentinel(_) => "sentinel",
        };
        f.debug_struct("Connection")
            .field("kind", &kind)
            .field("endpoint", &self.shared.endpoint)
            .field("read_from", &self.read_from)
            .finish_non_exhaustive()
    }
}

struct AsyncTransport<'a> {
    inner: &'a mut Inner,
    bound: Duration,
    endpoint: &'a str,
}

impl Transport for AsyncTransport<'_> {
    async fn send(&mut self, plan: Plan, reads: bool) -> Result<Vec<Value>> {
        let fut = async {
            match self.inner {
                Inner::Standalone(con) => con.execute_async(plan).await,
                #[cfg(feature = "cluster")]
                Inner::Cluster(con) => con.execute_async(plan).await,
                Inner::Sentinel(s) => s.send(plan, reads).await,
            }
        };
        match tokio::time::timeout(self.bound, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                endpoint: self.endpoint.to_owned(),
                waited: self.bound,
                may_have_applied: true,
                reason: format!("no reply within {:?}", self.bound),
            }),
        }
    }

    async fn pause(&mut self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    #[cfg_attr(not(feature = "cluster"), allow(unused_variables))]
    async fn recover(&mut self, moved: Option<Vec<u8>>) {
        match self.inner {
            Inner::Sentinel(s) => s.rediscover().await,
            // A redirection left in a pipeline's replies does not make
            // redis-rs refresh its slot map; a lone command on the key does
            // (it follows the redirection and refreshes).
            #[cfg(feature = "cluster")]
            Inner::Cluster(con) => {
                if let Some(key) = moved {
                    let probe = redis::cmd("EXISTS").arg(key).clone();
                    let _ = tokio::time::timeout(
                        self.bound,
                        redis::aio::ConnectionLike::req_packed_command(con, &probe),
                    )
                    .await;
                }
            }
            Inner::Standalone(_) => {}
        }
    }
}

impl AsyncExecutor for Connection {
    async fn execute_async(&mut self, plan: Plan) -> Result<Vec<Value>> {
        let shared = Arc::clone(&self.shared);
        let mut t = AsyncTransport {
            inner: &mut self.inner,
            bound: shared.options.attempt_bound(),
            endpoint: &shared.endpoint,
        };
        run_plan(&mut t, &shared, self.read_from, plan).await
    }

    fn detached(&self) -> Option<crate::exec::Detached> {
        Some(crate::exec::Detached::configured(self.clone()))
    }
}

// ---------------------------------------------------------------------------
// The blocking connection.

enum BlockingInner {
    Standalone {
        client: redis::Client,
        con: Option<redis::Connection>,
    },
    #[cfg(feature = "cluster")]
    Cluster(Box<redis::cluster::ClusterConnection>),
    /// The async Sentinel connection, driven on a runtime of its own: its
    /// tasks (the `+switch-master` follower, the connection drivers) run
    /// while an operation runs.
    Sentinel(Box<(tokio::runtime::Runtime, Connection)>),
}

/// A blocking connection opened by [`ConnectionOptions`]: runs every
/// operation of the library with the options' timeouts, retries and circuit
/// breaker; a standalone connection that failed is reopened on the next
/// attempt.
pub struct BlockingConnection {
    inner: BlockingInner,
    shared: Arc<Shared>,
}

impl fmt::Debug for BlockingConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingConnection")
            .field("endpoint", &self.shared.endpoint)
            .finish_non_exhaustive()
    }
}

struct SyncTransport<'a> {
    inner: &'a mut BlockingInner,
    options: &'a ConnectionOptions,
}

impl Transport for SyncTransport<'_> {
    fn send(
        &mut self,
        plan: Plan,
        _reads: bool,
    ) -> impl Future<Output = Result<Vec<Value>>> + Send {
        let r = match self.inner {
            BlockingInner::Standalone { client, con } => {
                let opened = match con.take() {
                    Some(c) => Ok(c),
                    None => open_sync(client, self.options),
                };
                match opened {
                    Ok(mut c) => {
                        let r = c.execute(plan);
                        if r.as_ref().is_ok_and(|_| redis::ConnectionLike::is_open(&c)) {
                            *con = Some(c);
                        }
                        r
                    }
                    Err(e) => Err(e),
                }
            }
            #[cfg(feature = "cluster")]
            BlockingInner::Cluster(c) => c.execute(plan),
            // Not reached: `execute` hands Sentinel plans to the async loop.
            BlockingInner::Sentinel(_) => Ok(Vec::new()),
        };
        std::future::ready(r)
    }

    fn pause(&mut self, d: Duration) -> impl Future<Output = ()> + Send {
        std::thread::sleep(d);
        std::future::ready(())
    }

    fn recover(&mut self, _moved: Option<Vec<u8>>) -> impl Future<Output = ()> + Send {
        if let BlockingInner::Standalone { con, .. } = self.inner {
            *con = None;
        }
        std::future::ready(())
    }
}

impl BlockingConnection {
    /// A health check: `PING` through the attempt loop; returns the
    /// round-trip time. See [`Connection::health_check_async`].
    ///
    /// # Errors
    ///
    /// As any operation.
    pub fn health_check(&mut self) -> Result<Duration> {
        let started = Instant::now();
        let mut plan = Plan::new();
        plan.keyless("PING");
        self.execute(plan)?;
        Ok(started.elapsed())
    }
}

impl SyncExecutor for BlockingConnection {
    fn execute(&mut self, plan: Plan) -> Result<Vec<Value>> {
        if let BlockingInner::Sentinel(inner) = &mut self.inner {
            outside_runtime()?;
            let (rt, con) = &mut **inner;
            return rt.block_on(con.execute_async(plan));
        }
        let shared = Arc::clone(&self.shared);
        let mut t = SyncTransport {
            inner: &mut self.inner,
            options: &shared.options,
        };
        block_on(run_plan(&mut t, &shared, ReadFrom::Primary, plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_case_is_the_documented_one() {
        assert_eq!(
            ConnectionOptions::new().worst_case(),
            Duration::from_secs(8)
        );
        let huge = ConnectionOptions::new()
            .connect_timeout(Duration::MAX)
            .response_timeout(Duration::MAX)
            .retries(u32::MAX)
            .backoff(Duration::MAX, Duration::MAX);
        assert!(huge.worst_case() <= Duration::MAX);
        for attempt in [0, 1, 5, 40, u32::MAX] {
            assert!(huge.backoff_for(attempt) <= MAX_SETTING);
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let o =
            ConnectionOptions::new().backoff(Duration::from_millis(10), Duration::from_millis(100));
        for _ in 0..100 {
            assert!(o.backoff_for(0) <= Duration::from_millis(10));
            assert!(o.backoff_for(2) <= Duration::from_millis(40));
            assert!(o.backoff_for(30) <= Duration::from_millis(100));
        }
    }

    #[test]
    fn the_breaker_opens_then_probes_once() {
        let b = Breaker {
            threshold: 2,
            open_for: Duration::from_millis(30),
            state: Mutex::new(BreakerState::default()),
        };
        b.admit("x").unwrap();
        b.failure();
        b.admit("x").unwrap();
        b.failure();
        assert!(matches!(
            b.admit("x"),
            Err(Error::CircuitOpen { failures: 2, .. })
        ));
        std::thread::sleep(Duration::from_millis(40));
        b.admit("x").unwrap(); // the probe
        assert!(b.admit("x").is_err(), "one probe at a time");
        b.failure();
        assert!(b.admit("x").is_err(), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(40));
        b.admit("x").unwrap();
        b.success();
        b.admit("x").unwrap();
        b.admit("x").unwrap();
    }
}
