//! Real `redis-server` processes for tests, benchmarks and demos
//! (feature `test-support`).
//!
//! - [`RedisServer`]: one server on a free port of 127.0.0.1 in its own
//!   temporary directory; builder for arguments and replicas; stop, restart.
//! - [`RedisCluster`]: a local Redis Cluster (3 primaries by default, optional
//!   replicas), built without `redis-cli`.
//! - [`ReplicaSet`]: a primary with replicas; [`RedisSentinel`]: 3 sentinels
//!   over a primary and 2 replicas; failover helpers (kill the primary,
//!   `SENTINEL FAILOVER`, `CLUSTER FAILOVER`, wait for the promotion).
//! - [`shared_server`] / [`shared_cluster`]: one instance per test process,
//!   started on first use. Tests sharing them isolate their keys with
//!   [`unique_prefix`] and must not `FLUSHALL`.
//!
//! The executable is `$REDIS_SERVER_BIN` if set, else `redis-server` on `PATH`;
//! it must be Redis 7.0 or newer. When it is missing, starting a server fails
//! with [`TestSupportError::RedisServerNotFound`], whose message says what to
//! install: tests fail, they never skip.
//!
//! ```no_run
//! use redis::Commands;
//! use redis_state::testing::{RedisServer, unique_prefix};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let server = RedisServer::start()?;
//!     let mut con = server.connection()?;
//!     let key = format!("{}:greeting", unique_prefix("doc"));
//!     let () = con.set(&key, "hello")?;
//!     Ok(())
//! } // the server is killed here
//! ```
//!
//! # No orphan servers
//!
//! Dropping a [`RedisServer`] kills and reaps its process, also while a
//! panicking test unwinds. Servers kept in statics are never dropped, so:
//!
//! - every server is spawned by one dedicated thread that lives as long as
//!   the process (the *keeper*), and on Linux each server gets
//!   `PR_SET_PDEATHSIG = SIGKILL`, which the kernel sends when the thread that
//!   spawned it ends, so when the test process ends, however it ends
//!   (even `SIGKILL`). A test's own thread could not spawn it: `cargo test`
//!   runs each test on a short-lived thread, whose end would kill the server;
//! - on every unix an `atexit` hook also kills and reaps the servers still
//!   running at a normal exit and removes their directories.
//!
//! On unix systems other than Linux only the `atexit` hook applies: a test
//! process killed by a signal leaves its servers running.

mod binary;
#[cfg(feature = "cluster")]
mod cluster;
mod error;
mod process;
mod server;
mod topology;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

#[cfg(feature = "cluster")]
pub use cluster::{ClusterBuilder, RedisCluster};
pub use error::TestSupportError;
pub use server::{RedisServer, ServerBuilder};
pub use topology::{RedisSentinel, ReplicaSet, SERVICE_NAME};

/// How long the test support's clients wait to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the test support's connections ([`RedisServer::connection`],
/// [`RedisServer::async_connection`], [`RedisCluster::client`]) wait for a
/// reply: a command sent to a killed server fails after this instead of
/// hanging.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of [`RedisCluster::client`] (redirections, a node being failed
/// over), each after at most 500 ms.
pub const CLUSTER_RETRIES: u32 = 6;

static SHARED_SERVER: OnceLock<RedisServer> = OnceLock::new();
#[cfg(feature = "cluster")]
static SHARED_CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
static SHARED_SERVER_INIT: Mutex<()> = Mutex::new(());
#[cfg(feature = "cluster")]
static SHARED_CLUSTER_INIT: Mutex<()> = Mutex::new(());

/// The process-wide standalone server, started on first use.
///
/// # Panics
///
/// If it cannot be started, with the [`TestSupportError`] message (which says
/// what to install or fix): a test cannot continue without it. Use
/// [`try_shared_server`] to handle the error.
#[allow(
    clippy::panic,
    reason = "called from tests, which cannot run without the server; the message says why"
)]
pub fn shared_server() -> &'static RedisServer {
    try_shared_server().unwrap_or_else(|error| panic!("{error}"))
}

/// The process-wide standalone server, started on first use.
///
/// # Errors
///
/// Why it could not be started. A later call tries again.
pub fn try_shared_server() -> Result<&'static RedisServer, TestSupportError> {
    get_or_try_init(&SHARED_SERVER, &SHARED_SERVER_INIT, RedisServer::start)
}

#[cfg(feature = "cluster")]
/// The process-wide cluster of 3 primaries, started on first use.
///
/// # Panics
///
/// If it cannot be started, with the [`TestSupportError`] message. Use
/// [`try_shared_cluster`] to handle the error.
#[allow(
    clippy::panic,
    reason = "called from tests, which cannot run without the cluster; the message says why"
)]
pub fn shared_cluster() -> &'static RedisCluster {
    try_shared_cluster().unwrap_or_else(|error| panic!("{error}"))
}

#[cfg(feature = "cluster")]
/// The process-wide cluster of 3 primaries, started on first use.
///
/// # Errors
///
/// Why it could not be started. A later call tries again.
pub fn try_shared_cluster() -> Result<&'static RedisCluster, TestSupportError> {
    get_or_try_init(&SHARED_CLUSTER, &SHARED_CLUSTER_INIT, || {
        RedisCluster::builder().start()
    })
}

/// `OnceLock::get_or_try_init` (unstable) with a mutex so that one caller
/// starts the instance while the others wait for it.
fn get_or_try_init<T>(
    cell: &'static OnceLock<T>,
    init_lock: &Mutex<()>,
    init: impl FnOnce() -> Result<T, TestSupportError>,
) -> Result<&'static T, TestSupportError> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    // A poisoned lock only means an earlier initialiser panicked; the cell is
    // still empty or complete, both fine.
    let _guard = init_lock.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = init()?;
    Ok(cell.get_or_init(|| value))
}

/// A key prefix unique in this process and among processes running at the
/// same time: `rs-<pid>-<counter>-<label>`, made only of `[a-z0-9_-]` (so it
/// fits in a hash tag and needs no escaping in `SCAN` patterns).
///
/// `label` (e.g. the test name) is lower-cased, other characters become `_`,
/// and it is cut to 32 characters. No prefix returned is a prefix of another,
/// so `SCAN MATCH <prefix>*` sees only its own keys.
pub fn unique_prefix(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut label: String = label
        .chars()
        .take(32)
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if label.is_empty() {
        label.push('t');
    }
    format!("rs-{}-{count}-{label}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::unique_prefix;

    #[test]
    fn prefixes_are_unique_and_clean() {
        let a = unique_prefix("My Test::case{1}");
        let b = unique_prefix("My Test::case{1}");
        assert_ne!(a, b);
        assert!(!b.starts_with(&a) && !a.starts_with(&b));
        for prefix in [&a, &b, &unique_prefix("")] {
            assert!(
                prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'),
                "{prefix}"
            );
        }
        assert!(a.ends_with("-my_test__case_1_"), "{a}");
    }
}
