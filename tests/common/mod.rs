//! Shared by the integration tests: runners that execute operations through
//! each executor (blocking and async, standalone and Cluster) against real
//! servers, and a fresh namespace per test.

#![allow(dead_code)]

pub mod interop;

use redis_state::testing::{shared_cluster, shared_server, unique_prefix};
use redis_state::{Namespace, Operation};

/// Where and how a test runs its operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Standalone,
    Cluster,
}

/// Runs operations on one connection, through the blocking or the async
/// executor.
#[allow(clippy::large_enum_variant, reason = "one per test")]
pub enum Runner {
    Sync(redis::Connection),
    SyncCluster(redis::cluster::ClusterConnection),
    Async(tokio::runtime::Runtime, redis::aio::MultiplexedConnection),
    AsyncCluster(
        tokio::runtime::Runtime,
        redis::cluster_async::ClusterConnection,
    ),
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

impl Runner {
    pub fn new(topology: Topology, asynchronous: bool) -> Runner {
        match (topology, asynchronous) {
            (Topology::Standalone, false) => Runner::Sync(shared_server().connection().unwrap()),
            (Topology::Cluster, false) => {
                Runner::SyncCluster(shared_cluster().connection().unwrap())
            }
            (Topology::Standalone, true) => {
                let rt = runtime();
                let con = rt.block_on(shared_server().async_connection()).unwrap();
                Runner::Async(rt, con)
            }
            (Topology::Cluster, true) => {
                let rt = runtime();
                let con = rt.block_on(shared_cluster().async_connection()).unwrap();
                Runner::AsyncCluster(rt, con)
            }
        }
    }

    /// Runs `op` and returns its output.
    pub fn run<O>(&mut self, op: O) -> redis_state::Result<O::Output>
    where
        O: Operation + Send,
        O::Output: Send,
    {
        match self {
            Runner::Sync(con) => op.run(con),
            Runner::SyncCluster(con) => op.run(con),
            Runner::Async(rt, con) => rt.block_on(op.run_async(con)),
            Runner::AsyncCluster(rt, con) => rt.block_on(op.run_async(con)),
        }
    }

    /// Runs one raw command on `key` (for inspecting what is stored).
    pub fn cmd<T: redis::FromRedisValue + Send>(&mut self, name: &str, key: &str) -> Raw<'_, T> {
        Raw {
            runner: self,
            op: redis_state::op::command::<T>(name, key),
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Runner::SyncCluster(_) | Runner::AsyncCluster(..))
    }
}

/// A raw command being built; `.go()` runs it.
pub struct Raw<'a, T> {
    runner: &'a mut Runner,
    op: redis_state::op::CommandOp<T>,
}

impl<T: redis::FromRedisValue + Send> Raw<'_, T> {
    pub fn arg(mut self, a: impl redis::ToRedisArgs) -> Self {
        self.op = self.op.arg(a);
        self
    }
    pub fn go(self) -> T {
        self.runner.run(self.op).unwrap()
    }
}

/// A namespace no other test uses.
pub fn namespace(label: &str) -> Namespace {
    Namespace::new(unique_prefix(label)).unwrap()
}

/// Generates one `#[test]` per topology and executor for a scenario
/// `fn(&mut Runner, &Namespace)`.
#[macro_export]
macro_rules! matrix {
    ($($scenario:ident),* $(,)?) => {
        mod standalone_sync {
            $( #[test] fn $scenario() { super::$scenario(&mut $crate::common::Runner::new($crate::common::Topology::Standalone, false), &$crate::common::namespace(stringify!($scenario))); } )*
        }
        mod standalone_async {
            $( #[test] fn $scenario() { super::$scenario(&mut $crate::common::Runner::new($crate::common::Topology::Standalone, true), &$crate::common::namespace(stringify!($scenario))); } )*
        }
        mod cluster_sync {
            $( #[test] fn $scenario() { super::$scenario(&mut $crate::common::Runner::new($crate::common::Topology::Cluster, false), &$crate::common::namespace(stringify!($scenario))); } )*
        }
        mod cluster_async {
            $( #[test] fn $scenario() { super::$scenario(&mut $crate::common::Runner::new($crate::common::Topology::Cluster, true), &$crate::common::namespace(stringify!($scenario))); } )*
        }
    };
}

/// Runs a procedure written over [`redis_state::driver::Io`] on the
/// runner's connection, through the driver's blocking or async side:
/// `drive!(runner, |io| my_procedure(io, args))`.
#[macro_export]
macro_rules! drive {
    ($runner:expr, |$io:ident| $body:expr) => {
        match $runner {
            $crate::common::Runner::Sync(con) => redis_state::driver::block_on(async {
                let $io = &mut redis_state::driver::Blocking::new(con);
                $body.await
            }),
            $crate::common::Runner::SyncCluster(con) => redis_state::driver::block_on(async {
                let $io = &mut redis_state::driver::Blocking::new(con);
                $body.await
            }),
            $crate::common::Runner::Async(rt, con) => rt.block_on(async {
                let $io = &mut redis_state::driver::Async::new(con);
                $body.await
            }),
            $crate::common::Runner::AsyncCluster(rt, con) => rt.block_on(async {
                let $io = &mut redis_state::driver::Async::new(con);
                $body.await
            }),
        }
    };
}
