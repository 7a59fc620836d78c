//! The error type of the test support.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Why the test support could not start, reach or configure a `redis-server`.
///
/// Every message names the port, command or file involved and, where a
/// server misbehaved, ends with the last lines of its log, so that a failing
/// test explains itself. `Debug` prints the same text as `Display` (a test that
/// returns `Result<(), TestSupportError>` or uses `.unwrap()` shows the whole
/// message, install hint included).
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TestSupportError {
    /// No `redis-server` executable was found.
    #[error(
        "redis-server was not found (looked at {looked_at}). redis-state's tests start their \
         own Redis 7+ servers. Install it: `sudo apt-get install redis-server` (Debian/Ubuntu), \
         `brew install redis` (macOS), or run `./scripts/test`, which installs it. To use a \
         redis-server that is not on PATH, set REDIS_SERVER_BIN to its path."
    )]
    RedisServerNotFound {
        /// Where the executable was looked for.
        looked_at: String,
    },

    /// The `redis-server` found is older than 7.0.
    #[error(
        "{} is Redis {found}, but redis-state's test support needs Redis 7.0 or newer \
         (CLUSTER ADDSLOTSRANGE, --cluster-port). Install a newer redis-server and put it on \
         PATH, or set REDIS_SERVER_BIN to its path.",
        binary.display()
    )]
    TooOld {
        /// The executable that was checked.
        binary: PathBuf,
        /// The version it reported.
        found: String,
    },

    /// `redis-server --version` failed or printed something unexpected.
    #[error(
        "could not read the version of {} (`{} --version`): {reason}. Check that it is a working \
         redis-server executable, or set REDIS_SERVER_BIN to one.",
        binary.display(),
        binary.display()
    )]
    VersionCheck {
        /// The executable that was checked.
        binary: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// A file-system or process operation failed.
    #[error("could not {action}: {error}")]
    Io {
        /// What was being done, e.g. "create a temporary directory for redis-server".
        action: String,
        /// The underlying error.
        error: std::io::Error,
    },

    /// The server process exited before it answered.
    #[error(
        "redis-server on port {port} exited during startup ({status}); check the arguments \
         given to the builder. Its output ends with:\n{log_tail}"
    )]
    ServerExited {
        /// The port it was started on.
        port: u16,
        /// How it exited.
        status: String,
        /// The last lines of its output and log.
        log_tail: String,
    },

    /// The server could not bind its port, even after retries.
    #[error(
        "redis-server could not bind 127.0.0.1:{port} after {attempts} attempts: another \
         process holds the port. Free it, or retry. Its output ends with:\n{log_tail}"
    )]
    PortUnavailable {
        /// The last port tried.
        port: u16,
        /// How many starts were tried.
        attempts: u32,
        /// The last lines of its output and log.
        log_tail: String,
    },

    /// The server did not answer in time.
    #[error(
        "redis-server on port {port} did not answer within {waited:?} (the machine may be \
         overloaded; the process was killed). Its output ends with:\n{log_tail}"
    )]
    StartTimeout {
        /// The port it was started on.
        port: u16,
        /// How long the support waited.
        waited: Duration,
        /// The last lines of its output and log.
        log_tail: String,
    },

    /// A command sent by the test support (or a connection it opened) failed.
    #[error("`{command}` on 127.0.0.1:{port} failed: {error}")]
    Redis {
        /// The server's port.
        port: u16,
        /// The command, or "connect".
        command: String,
        /// The error from redis-rs.
        error: redis::RedisError,
    },

    /// A server replied in a shape the test support did not expect.
    #[error("unexpected reply to `{command}` from 127.0.0.1:{port}: {detail}")]
    UnexpectedReply {
        /// The server's port.
        port: u16,
        /// The command sent.
        command: String,
        /// What was wrong with the reply.
        detail: String,
    },

    /// A cluster client could not be created or connected.
    #[error("cluster client ({action}) failed for nodes {nodes}: {error}")]
    ClusterClient {
        /// What was being done, e.g. "connect".
        action: String,
        /// The nodes' addresses.
        nodes: String,
        /// The error from redis-rs.
        error: redis::RedisError,
    },

    /// The cluster did not converge in time.
    #[error(
        "the local Redis Cluster was not ready within {waited:?}: {detail} (the machine may be \
         overloaded; all nodes were stopped)"
    )]
    ClusterNotReady {
        /// How long the support waited.
        waited: Duration,
        /// The last discrepancy observed, with the log tail of the node concerned.
        detail: String,
    },

    /// A replica did not finish its initial synchronisation in time.
    #[error(
        "replica on port {port} did not sync with its primary on port {primary_port} within \
         {waited:?} (master_link_status: {status}). Its output ends with:\n{log_tail}"
    )]
    ReplicaNotSynced {
        /// The replica's port.
        port: u16,
        /// The primary's port.
        primary_port: u16,
        /// How long the support waited.
        waited: Duration,
        /// The last `master_link_status` seen.
        status: String,
        /// The last lines of the replica's output and log.
        log_tail: String,
    },

    /// The builder was given values that cannot work.
    #[error("invalid test-support configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },

    /// The keeper thread that spawns every `redis-server` could not be started.
    #[error(
        "the redis-state keeper thread, which spawns every redis-server, is unavailable: {reason}"
    )]
    Keeper {
        /// Why.
        reason: String,
    },
}

impl fmt::Debug for TestSupportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl TestSupportError {
    pub(crate) fn io(action: impl Into<String>, error: std::io::Error) -> Self {
        Self::Io {
            action: action.into(),
            error,
        }
    }

    pub(crate) fn redis(port: u16, command: impl Into<String>, error: redis::RedisError) -> Self {
        Self::Redis {
            port,
            command: command.into(),
            error,
        }
    }
}
