//! Pools of deadpool-redis, bb8-redis and r2d2 configured from
//! [`ConnectionOptions`], running operations through the same attempt loop
//! as the other configured connections.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{IntoConnectionInfo, Value};

use super::{ConnectionOptions, ReadFrom, Shared, Transport, endpoint_of, run_plan};
use crate::error::{Error, Result};
use crate::op::Plan;

/// A connection pool configured from [`ConnectionOptions`] that runs every
/// operation of the library: `P` is a deadpool-redis `Pool` (feature
/// `deadpool`), a bb8 `Pool` of bb8-redis (feature `bb8`), or an r2d2
/// `Pool` of single-server or Cluster connections (feature `r2d2`).
///
/// Each attempt of an operation checks a connection out, runs the plan on
/// it and gives it back; the options' retries (with backoff), response
/// timeout and circuit breaker apply per operation as on
/// [`Connection`](super::Connection), the breaker being shared by the whole
/// pool. Checking out is bounded by the connect timeout, and a connection
/// is health-checked (`PING`) when it is checked out: a connection broken
/// by a restart or `CLIENT KILL` is replaced instead of failing an
/// operation. Cloning is cheap and shares the pool.
///
/// | pool | opened by | runs |
/// |---|---|---|
/// | deadpool-redis, one server | [`ConnectionOptions::deadpool`] | async |
/// | bb8-redis, one server | [`ConnectionOptions::bb8`] | async |
/// | r2d2, one server | [`ConnectionOptions::r2d2`] | blocking |
/// | r2d2, Cluster | [`ConnectionOptions::r2d2_cluster`] | blocking |
///
/// [`pool`](Self::pool) gives the pool itself (its status, or a connection
/// to use by hand).
#[derive(Clone)]
pub struct Pooled<P> {
    pool: P,
    shared: Arc<Shared>,
    kind: &'static str,
}

impl<P> Pooled<P> {
    fn new(options: &ConnectionOptions, endpoint: String, kind: &'static str, pool: P) -> Self {
        Pooled {
            pool,
            shared: Shared::new(options, endpoint),
            kind,
        }
    }

    /// The pool.
    pub fn pool(&self) -> &P {
        &self.pool
    }

    /// The options it was configured with.
    pub fn options(&self) -> &ConnectionOptions {
        &self.shared.options
    }
}

impl<P> fmt::Debug for Pooled<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("pool", &self.kind)
            .field("endpoint", &self.shared.endpoint)
            .finish_non_exhaustive()
    }
}

/// The pool size must be at least 1.
fn check_size(max_size: usize) -> Result<()> {
    if max_size == 0 {
        return Err(Error::InvalidConfig {
            what: "connection pool",
            reason: "max_size must be at least 1".to_owned(),
        });
    }
    Ok(())
}

/// A checkout that failed: nothing was sent, so the attempt loop retries it
/// (and counts it for the breaker).
fn checkout_failed(endpoint: &str, waited: Duration, reason: String) -> Error {
    Error::Timeout {
        endpoint: endpoint.to_owned(),
        waited,
        may_have_applied: false,
        reason: format!("no pooled connection: {reason}"),
    }
}

// ---------------------------------------------------------------------------
// Async pools.

/// An async pool: checks a connection out and runs one attempt on it.
trait AsyncPool: Clone + Send + Sync + 'static {
    fn run(&self, plan: Plan, endpoint: &str) -> impl Future<Output = Result<Vec<Value>>> + Send;
}

struct AsyncPoolTransport<'a, P> {
    pool: &'a P,
    bound: Duration,
    endpoint: &'a str,
}

impl<P: AsyncPool> Transport for AsyncPoolTransport<'_, P> {
    async fn send(&mut self, plan: Plan, _reads: bool) -> Result<Vec<Value>> {
        // Checkout and reply within the connect and response timeouts.
        match tokio::time::timeout(self.bound, self.pool.run(plan, self.endpoint)).await {
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

    async fn recover(&mut self, _moved: Option<Vec<u8>>) {
        // The next checkout health-checks the connection it hands out.
    }
}

impl<P: AsyncPool> crate::exec::AsyncExecutor for Pooled<P> {
    async fn execute_async(&mut self, plan: Plan) -> Result<Vec<Value>> {
        let shared = Arc::clone(&self.shared);
        let mut t = AsyncPoolTransport {
            pool: &self.pool,
            bound: shared.options.attempt_bound(),
            endpoint: &shared.endpoint,
        };
        run_plan(&mut t, &shared, ReadFrom::Primary, plan).await
    }
}

impl<P> Pooled<P> {
    /// A health check: `PING` through the attempt loop (a checkout, which
    /// checks the connection too); returns the round-trip time.
    ///
    /// # Errors
    ///
    /// As any operation.
    pub async fn health_check_async(&mut self) -> Result<Duration>
    where
        Self: crate::exec::AsyncExecutor,
    {
        let started = Instant::now();
        let mut plan = Plan::new();
        plan.keyless("PING");
        crate::exec::AsyncExecutor::execute_async(self, plan).await?;
        Ok(started.elapsed())
    }
}

#[cfg(feature = "deadpool")]
impl AsyncPool for deadpool_redis::Pool {
    async fn run(&self, plan: Plan, endpoint: &str) -> Result<Vec<Value>> {
        let started = Instant::now();
        let mut con = self.get().await.map_err(|e| match e {
            deadpool_redis::PoolError::Backend(e) => Error::Redis(e),
            other => checkout_failed(endpoint, started.elapsed(), other.to_string()),
        })?;
        crate::exec::AsyncExecutor::execute_async(&mut con, plan).await
    }
}

#[cfg(feature = "bb8")]
impl AsyncPool for bb8_redis::bb8::Pool<bb8_redis::RedisConnectionManager> {
    async fn run(&self, plan: Plan, endpoint: &str) -> Result<Vec<Value>> {
        let started = Instant::now();
        let mut con = self.get().await.map_err(|e| match e {
            bb8_redis::bb8::RunError::User(e) => Error::Redis(e),
            bb8_redis::bb8::RunError::TimedOut => checkout_failed(
                endpoint,
                started.elapsed(),
                "timed out waiting for a connection".to_owned(),
            ),
        })?;
        crate::exec::AsyncExecutor::execute_async(&mut con, plan).await
    }
}

// ---------------------------------------------------------------------------
// Blocking pools.

/// A blocking pool: checks a connection out and runs one attempt on it.
trait SyncPool {
    fn run(&self, plan: Plan, endpoint: &str) -> Result<Vec<Value>>;
}

struct SyncPoolTransport<'a, P> {
    pool: &'a P,
    endpoint: &'a str,
}

impl<P: SyncPool> Transport for SyncPoolTransport<'_, P> {
    fn send(
        &mut self,
        plan: Plan,
        _reads: bool,
    ) -> impl Future<Output = Result<Vec<Value>>> + Send {
        std::future::ready(self.pool.run(plan, self.endpoint))
    }

    fn pause(&mut self, d: Duration) -> impl Future<Output = ()> + Send {
        std::thread::sleep(d);
        std::future::ready(())
    }

    fn recover(&mut self, _moved: Option<Vec<u8>>) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

impl<P: SyncPool> crate::exec::SyncExecutor for Pooled<P> {
    fn execute(&mut self, plan: Plan) -> Result<Vec<Value>> {
        let shared = Arc::clone(&self.shared);
        let mut t = SyncPoolTransport {
            pool: &self.pool,
            endpoint: &shared.endpoint,
        };
        crate::driver::block_on(run_plan(&mut t, &shared, ReadFrom::Primary, plan))
    }
}

impl<P> Pooled<P> {
    /// A health check: `PING` through the attempt loop; returns the
    /// round-trip time.
    ///
    /// # Errors
    ///
    /// As any operation.
    pub fn health_check(&mut self) -> Result<Duration>
    where
        Self: crate::exec::SyncExecutor,
    {
        let started = Instant::now();
        let mut plan = Plan::new();
        plan.keyless("PING");
        crate::exec::SyncExecutor::execute(self, plan)?;
        Ok(started.elapsed())
    }
}

/// The r2d2 manager of [`ConnectionOptions::r2d2`]: connections opened with
/// the options' connect timeout, read and write timeouts, keepalive and TLS
/// root; checked with `PING` on checkout.
#[cfg(feature = "r2d2")]
pub struct R2d2Manager {
    client: redis::Client,
    options: ConnectionOptions,
}

#[cfg(feature = "r2d2")]
impl fmt::Debug for R2d2Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("R2d2Manager")
            .field("endpoint", &endpoint_of(self.client.get_connection_info()))
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "r2d2")]
impl r2d2::ManageConnection for R2d2Manager {
    type Connection = redis::Connection;
    type Error = Error;

    fn connect(&self) -> Result<redis::Connection> {
        super::open_sync(&self.client, &self.options)
    }

    fn is_valid(&self, con: &mut redis::Connection) -> Result<()> {
        Ok(redis::cmd("PING").query::<()>(con)?)
    }

    fn has_broken(&self, con: &mut redis::Connection) -> bool {
        !redis::ConnectionLike::is_open(con)
    }
}

#[cfg(feature = "r2d2")]
fn r2d2_checkout<M: r2d2::ManageConnection>(
    pool: &r2d2::Pool<M>,
    endpoint: &str,
) -> Result<r2d2::PooledConnection<M>> {
    let started = Instant::now();
    pool.get()
        .map_err(|e| checkout_failed(endpoint, started.elapsed(), e.to_string()))
}

#[cfg(feature = "r2d2")]
impl SyncPool for r2d2::Pool<R2d2Manager> {
    fn run(&self, plan: Plan, endpoint: &str) -> Result<Vec<Value>> {
        let mut con = r2d2_checkout(self, endpoint)?;
        crate::exec::SyncExecutor::execute(&mut *con, plan)
    }
}

#[cfg(feature = "r2d2")]
impl SyncPool for r2d2::Pool<redis::cluster::ClusterClient> {
    fn run(&self, plan: Plan, endpoint: &str) -> Result<Vec<Value>> {
        let mut con = r2d2_checkout(self, endpoint)?;
        crate::exec::SyncExecutor::execute(&mut *con, plan)
    }
}

// ---------------------------------------------------------------------------
// Constructors.

impl ConnectionOptions {
    /// A deadpool-redis pool of at most `max_size` connections to one
    /// server, configured from these options (feature `deadpool`): connect
    /// and response timeouts on each connection, the connect timeout on
    /// creating and on waiting for a connection, a `PING` on checkout, and
    /// the attempt loop (retries, circuit breaker) per operation. Connects
    /// on first use. Needs a Tokio runtime to run.
    ///
    /// # Errors
    ///
    /// A bad URL; [`Error::InvalidConfig`] for a `max_size` of 0.
    #[cfg(feature = "deadpool")]
    pub fn deadpool(
        &self,
        url: impl IntoConnectionInfo,
        max_size: usize,
    ) -> Result<Pooled<deadpool_redis::Pool>> {
        check_size(max_size)?;
        let info = url.into_connection_info()?;
        let endpoint = endpoint_of(&info);
        let client = self.client(info)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout));
        let manager =
            deadpool_redis::Manager::new_with_config(client.get_connection_info().clone(), config)?;
        let pool = deadpool_redis::Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(self.connect_timeout))
            .create_timeout(Some(self.connect_timeout))
            .recycle_timeout(Some(self.response_timeout))
            .runtime(deadpool_redis::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::InvalidConfig {
                what: "deadpool pool",
                reason: e.to_string(),
            })?;
        Ok(Pooled::new(self, endpoint, "deadpool", pool))
    }

    /// A bb8-redis pool of at most `max_size` connections to one server,
    /// configured from these options (feature `bb8`): the connect timeout
    /// on checking out (creating a connection included), a `PING` on
    /// checkout, the response timeout and the attempt loop per operation.
    /// Connects on first use. Needs a Tokio runtime to run.
    ///
    /// # Errors
    ///
    /// A bad URL; [`Error::InvalidConfig`] for a `max_size` of 0.
    #[cfg(feature = "bb8")]
    pub fn bb8(
        &self,
        url: impl IntoConnectionInfo,
        max_size: usize,
    ) -> Result<Pooled<bb8_redis::bb8::Pool<bb8_redis::RedisConnectionManager>>> {
        check_size(max_size)?;
        let info = url.into_connection_info()?;
        let endpoint = endpoint_of(&info);
        let client = self.client(info)?;
        let manager = bb8_redis::RedisConnectionManager::new(client.get_connection_info().clone())?;
        let pool = bb8_redis::bb8::Pool::builder()
            .max_size(u32::try_from(max_size).unwrap_or(u32::MAX))
            .connection_timeout(self.connect_timeout)
            .test_on_check_out(true)
            .build_unchecked(manager);
        Ok(Pooled::new(self, endpoint, "bb8", pool))
    }

    /// An r2d2 pool of at most `max_size` blocking connections to one
    /// server, configured from these options (feature `r2d2`): connections
    /// opened with the connect timeout and read/write timeouts, the connect
    /// timeout on checking out, a `PING` on checkout, the attempt loop per
    /// operation. Connects on first use.
    ///
    /// # Errors
    ///
    /// A bad URL; [`Error::InvalidConfig`] for a `max_size` of 0.
    #[cfg(feature = "r2d2")]
    pub fn r2d2(
        &self,
        url: impl IntoConnectionInfo,
        max_size: usize,
    ) -> Result<Pooled<r2d2::Pool<R2d2Manager>>> {
        check_size(max_size)?;
        let info = url.into_connection_info()?;
        let endpoint = endpoint_of(&info);
        let manager = R2d2Manager {
            client: self.client(info)?,
            options: self.clone(),
        };
        let pool = r2d2_builder(self, max_size).build_unchecked(manager);
        Ok(Pooled::new(self, endpoint, "r2d2", pool))
    }

    /// An r2d2 pool of at most `max_size` blocking Cluster connections
    /// seeded with `urls` (redis-rs' Cluster client with these options, as
    /// [`connect_cluster`](Self::connect_cluster)); checkout as for
    /// [`r2d2`](Self::r2d2).
    ///
    /// # Errors
    ///
    /// A bad URL; [`Error::InvalidConfig`] for a `max_size` of 0.
    #[cfg(feature = "r2d2")]
    pub fn r2d2_cluster(
        &self,
        urls: &[&str],
        max_size: usize,
    ) -> Result<Pooled<r2d2::Pool<redis::cluster::ClusterClient>>> {
        check_size(max_size)?;
        let client = self.cluster_client(urls)?;
        let pool = r2d2_builder(self, max_size).build_unchecked(client);
        Ok(Pooled::new(
            self,
            "the Cluster".to_owned(),
            "r2d2 Cluster",
            pool,
        ))
    }
}

#[cfg(feature = "r2d2")]
fn r2d2_builder<M: r2d2::ManageConnection>(
    options: &ConnectionOptions,
    max_size: usize,
) -> r2d2::Builder<M> {
    r2d2::Pool::builder()
        .max_size(u32::try_from(max_size).unwrap_or(u32::MAX))
        .min_idle(Some(0))
        .connection_timeout(options.connect_timeout)
        .test_on_check_out(true)
}
