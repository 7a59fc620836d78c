//! A local Redis Cluster built from [`RedisServer`]s, without `redis-cli`.

use std::ffi::OsStr;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;

use super::TestSupportError;
use super::server::{HOST, RedisServer, ServerBuilder, info_field};
use crate::keys::key_slot;

/// Number of hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;
const DEFAULT_PRIMARIES: usize = 3;
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// A local Redis Cluster: N primaries (default 3) splitting the 16384 slots
/// evenly, optionally with replicas, each node a [`RedisServer`] in cluster
/// mode (`--cluster-enabled yes --cluster-port <free port>
/// --cluster-node-timeout 5000 --cluster-announce-ip 127.0.0.1`).
///
/// The support builds it itself: distinct `CLUSTER SET-CONFIG-EPOCH`s,
/// `CLUSTER ADDSLOTSRANGE` on each primary, `CLUSTER MEET` between every pair of
/// nodes, `CLUSTER REPLICATE` for replicas; [`start`](Self::start) returns once
/// every node reports `cluster_state:ok`, knows every node, has all 16384 slots
/// assigned, and returns the expected `CLUSTER SLOTS` (and every replica has
/// synchronised).
///
/// Primary `i` owns the `i`-th slice of the slot space in order. The order of
/// [`nodes`](Self::nodes) is: the primaries, then the replicas of primary 0,
/// of primary 1, and so on. Dropping the cluster stops every node.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    primaries: usize,
    replicas_per_primary: usize,
    /// Slot range of each primary, in primary order.
    ranges: Vec<(u16, u16)>,
    client: ClusterClient,
}

/// Configures and starts a [`RedisCluster`]. Obtained from [`RedisCluster::builder`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `.start()` is called"]
pub struct ClusterBuilder {
    primaries: usize,
    replicas_per_primary: usize,
    server: ServerBuilder,
    ready_timeout: Duration,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        Self {
            primaries: DEFAULT_PRIMARIES,
            replicas_per_primary: 0,
            server: ServerBuilder::default(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }
}

impl ClusterBuilder {
    /// Number of primaries (default 3, at least 1).
    pub fn primaries(mut self, count: usize) -> Self {
        self.primaries = count;
        self
    }

    /// Replicas attached to each primary (default 0).
    pub fn replicas_per_primary(mut self, count: usize) -> Self {
        self.replicas_per_primary = count;
        self
    }

    /// Appends a raw command-line argument to every node.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.server = self.server.arg(arg);
        self
    }

    /// Sets `--name value` on every node.
    pub fn config(mut self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.server = self.server.config(name, value);
        self
    }

    /// Runs this executable for every node (see [`ServerBuilder::binary`]).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.server = self.server.binary(path);
        self
    }

    /// How long each node may take to answer (default 10 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.server = self.server.start_timeout(timeout);
        self
    }

    /// TLS on every node (see [`ServerBuilder::tls`]): one CA for the whole
    /// cluster, the cluster bus and replication over TLS (`tls-cluster
    /// yes`, `tls-replication yes`), so that clients connected over TLS
    /// are sent to the nodes' TLS ports ([`RedisCluster::tls_urls`]). The
    /// plain ports stay open for the test support.
    pub fn tls(mut self) -> Self {
        self.server = self.server.tls();
        self
    }

    /// How long the cluster may take to converge once its nodes run (default 30 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts the nodes (in parallel), joins them into a cluster and waits
    /// until it is ready.
    ///
    /// # Errors
    ///
    /// Any [`ServerBuilder::start`] error of a node;
    /// [`TestSupportError::ClusterNotReady`] naming the last discrepancy seen;
    /// [`TestSupportError::Redis`] if a setup command fails;
    /// [`TestSupportError::InvalidConfig`] for zero primaries. Every node
    /// already started is stopped.
    pub fn start(self) -> Result<RedisCluster, TestSupportError> {
        if self.primaries == 0 || self.primaries > usize::from(SLOTS) {
            return Err(TestSupportError::InvalidConfig {
                reason: format!(
                    "a cluster needs between 1 and {SLOTS} primaries, not {}",
                    self.primaries
                ),
            });
        }
        let total = self
            .replicas_per_primary
            .checked_add(1)
            .and_then(|per| per.checked_mul(self.primaries))
            .ok_or_else(|| TestSupportError::InvalidConfig {
                reason: "too many replicas".to_owned(),
            })?;
        let server = self.server.clone().cluster_bus().share_tls()?;
        let mut nodes = start_nodes(&server, total)?;
        let ranges = split_slots(self.primaries);
        let deadline = Instant::now() + self.ready_timeout;

        let mut ids = Vec::with_capacity(total);
        for (index, node) in nodes.iter().enumerate() {
            let epoch = index + 1;
            node.query::<()>(redis::cmd("CLUSTER").arg("SET-CONFIG-EPOCH").arg(epoch))?;
            ids.push(node.query::<String>(redis::cmd("CLUSTER").arg("MYID"))?);
        }
        for (node, (start, end)) in nodes.iter().zip(&ranges) {
            node.query::<()>(
                redis::cmd("CLUSTER")
                    .arg("ADDSLOTSRANGE")
                    .arg(*start)
                    .arg(*end),
            )?;
        }
        for (i, node) in nodes.iter().enumerate() {
            for other in &nodes[i + 1..] {
                let bus_port = other.cluster_port().unwrap_or(0);
                node.query::<()>(
                    redis::cmd("CLUSTER")
                        .arg("MEET")
                        .arg(HOST)
                        .arg(other.port())
                        .arg(bus_port),
                )?;
            }
        }

        let primaries = self.primaries;
        let replicas = self.replicas_per_primary;
        for primary in 0..primaries {
            for r in 0..replicas {
                let index = primaries + primary * replicas + r;
                let primary_port = nodes[primary].port();
                replicate(&nodes[index], &ids[primary], deadline, self.ready_timeout)?;
                nodes[index].set_primary_port(primary_port);
            }
        }

        if replicas > 0 {
            for replica in &nodes[primaries..] {
                let remaining = deadline.saturating_duration_since(Instant::now());
                replica.wait_until_synced(remaining)?;
            }
            for primary in &nodes[..primaries] {
                advance_replication_offset(primary)?;
            }
        }

        let expected = expected_slots(&nodes, &ranges, replicas);
        wait_until_ready(&nodes, &expected, deadline, self.ready_timeout)?;

        let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
        let client = bounded_client(&urls)?;
        Ok(RedisCluster {
            nodes,
            primaries,
            replicas_per_primary: replicas,
            ranges,
            client,
        })
    }
}

impl RedisCluster {
    /// Starts a cluster of `primaries` primaries without replicas.
    ///
    /// # Errors
    ///
    /// See [`ClusterBuilder::start`].
    pub fn start(primaries: usize) -> Result<Self, TestSupportError> {
        Self::builder().primaries(primaries).start()
    }

    /// A builder for replicas, node arguments or timeouts.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// Every node: the primaries first (in slot order), then the replicas.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The primaries, in slot order (as created; failovers are not followed).
    pub fn primaries(&self) -> &[RedisServer] {
        &self.nodes[..self.primaries]
    }

    /// Every replica, grouped by primary.
    pub fn replicas(&self) -> &[RedisServer] {
        &self.nodes[self.primaries..]
    }

    /// The replicas of primary `primary` (empty if there is no such primary).
    pub fn replicas_of(&self, primary: usize) -> &[RedisServer] {
        if primary >= self.primaries {
            return &[];
        }
        let start = self.primaries + primary * self.replicas_per_primary;
        &self.nodes[start..start + self.replicas_per_primary]
    }

    /// Mutable access to one node, to [`stop`](RedisServer::stop) or
    /// [`restart`](RedisServer::restart) it (index as in [`nodes`](Self::nodes)).
    pub fn node_mut(&mut self, index: usize) -> Option<&mut RedisServer> {
        self.nodes.get_mut(index)
    }

    /// The slot range of primary `primary`.
    pub fn slot_range(&self, primary: usize) -> Option<RangeInclusive<u16>> {
        self.ranges.get(primary).map(|&(start, end)| start..=end)
    }

    /// The primary that was given `slot` (taken modulo 16384) when the cluster
    /// was created. Failovers a test provokes are not followed.
    pub fn node_for_slot(&self, slot: u16) -> &RedisServer {
        let slot = slot % SLOTS;
        let index = self
            .ranges
            .iter()
            .position(|&(start, end)| (start..=end).contains(&slot))
            .unwrap_or(0);
        &self.nodes[index]
    }

    /// The primary that owns `key`'s slot (hash tags honoured), as for
    /// [`node_for_slot`](Self::node_for_slot).
    pub fn node_for_key(&self, key: impl AsRef<[u8]>) -> &RedisServer {
        self.node_for_slot(key_slot(key.as_ref()))
    }

    /// The URL of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// `rediss://127.0.0.1:<tls port>/` of every node of a cluster built
    /// with [`ClusterBuilder::tls`] (empty otherwise).
    pub fn tls_urls(&self) -> Vec<String> {
        self.nodes.iter().filter_map(RedisServer::tls_url).collect()
    }

    /// The PEM of the CA that signed every node's certificate (a cluster
    /// built with [`ClusterBuilder::tls`]).
    pub fn ca_cert(&self) -> Option<Vec<u8>> {
        self.nodes.first().and_then(RedisServer::ca_cert)
    }

    /// A cluster client seeded with every node, bounded: connect timeout
    /// 5 s, response timeout [`RESPONSE_TIMEOUT`](super::RESPONSE_TIMEOUT),
    /// [`CLUSTER_RETRIES`](super::CLUSTER_RETRIES) retries waiting at most
    /// 500 ms each, so that a command to a cluster whose node was killed
    /// fails (or succeeds after the failover) instead of hanging.
    pub fn client(&self) -> ClusterClient {
        self.client.clone()
    }

    /// A new synchronous cluster connection.
    ///
    /// # Errors
    ///
    /// [`TestSupportError::ClusterClient`] if it cannot connect.
    pub fn connection(&self) -> Result<redis::cluster::ClusterConnection, TestSupportError> {
        self.client
            .get_connection()
            .map_err(|error| self.client_error("connect", error))
    }

    /// A new asynchronous cluster connection. Needs a Tokio runtime.
    #[cfg(feature = "async")]
    ///
    /// # Errors
    ///
    /// [`TestSupportError::ClusterClient`] if it cannot connect.
    pub async fn async_connection(
        &self,
    ) -> Result<redis::cluster_async::ClusterConnection, TestSupportError> {
        self.client
            .get_async_connection()
            .await
            .map_err(|error| self.client_error("connect async", error))
    }

    /// The primary (index in [`primaries`](Self::primaries)) that owns
    /// `slot` now, as primary 0 sees it (migrations made with
    /// [`migrate_slot`](Self::migrate_slot) are followed).
    ///
    /// # Errors
    ///
    /// [`TestSupportError::Redis`] or [`TestSupportError::UnexpectedReply`]
    /// if `CLUSTER SLOTS` fails.
    pub fn owner_of_slot(&self, slot: u16) -> Result<usize, TestSupportError> {
        let owners = slot_owners(&self.primaries()[0])?;
        let port = owners
            .iter()
            .find(|(range, _)| range.contains(&slot))
            .map(|(_, port)| *port)
            .ok_or_else(|| TestSupportError::UnexpectedReply {
                port: self.primaries()[0].port(),
                command: "CLUSTER SLOTS".to_owned(),
                detail: format!("no node owns slot {slot}"),
            })?;
        self.primaries()
            .iter()
            .position(|n| n.port() == port)
            .ok_or_else(|| TestSupportError::UnexpectedReply {
                port,
                command: "CLUSTER SLOTS".to_owned(),
                detail: format!("slot {slot} is owned by a node that is not a primary"),
            })
    }

    /// Moves `slot` (with its keys) to primary `to` the way `redis-cli
    /// --cluster reshard` does: `CLUSTER SETSLOT IMPORTING` on the target,
    /// `MIGRATING` on the owner, `MIGRATE` of every key, then `SETSLOT
    /// NODE` on every primary (the owner last but one, so that it drops
    /// the slot's sharded pub/sub subscribers with `SUNSUBSCRIBE`).
    /// Returns once every primary reports the new owner.
    ///
    /// # Errors
    ///
    /// [`TestSupportError::Redis`] naming the command that failed, or
    /// [`TestSupportError::ClusterNotReady`] if the primaries do not agree
    /// within the ready timeout.
    pub fn migrate_slot(&self, slot: u16, to: usize) -> Result<(), TestSupportError> {
        let slot = slot % SLOTS;
        let from = self.owner_of_slot(slot)?;
        if from == to || to >= self.primaries {
            return Ok(());
        }
        let (src, dst) = (&self.primaries()[from], &self.primaries()[to]);
        let id = |n: &RedisServer| n.query::<String>(redis::cmd("CLUSTER").arg("MYID"));
        let (src_id, dst_id) = (id(src)?, id(dst)?);
        let setslot = |n: &RedisServer, state: &str, node: &str| {
            n.query::<()>(
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg(state)
                    .arg(node),
            )
        };
        setslot(dst, "IMPORTING", &src_id)?;
        setslot(src, "MIGRATING", &dst_id)?;
        loop {
            let keys: Vec<Vec<u8>> = src.query(
                redis::cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(slot)
                    .arg(100),
            )?;
            if keys.is_empty() {
                break;
            }
            src.query::<()>(
                redis::cmd("MIGRATE")
                    .arg(HOST)
                    .arg(dst.port())
                    .arg("")
                    .arg(0)
                    .arg(5000)
                    .arg("REPLACE")
                    .arg("KEYS")
                    .arg(keys),
            )?;
        }
        setslot(dst, "NODE", &dst_id)?;
        setslot(src, "NODE", &dst_id)?;
        for (i, n) in self.primaries().iter().enumerate() {
            if i != from && i != to {
                setslot(n, "NODE", &dst_id)?;
            }
        }
        let started = Instant::now();
        loop {
            let mut agree = true;
            for n in self.primaries() {
                let owners = slot_owners(n)?;
                agree &= owners
                    .iter()
                    .any(|(range, port)| range.contains(&slot) && *port == dst.port());
            }
            if agree {
                return Ok(());
            }
            if started.elapsed() > DEFAULT_READY_TIMEOUT {
                return Err(TestSupportError::ClusterNotReady {
                    waited: started.elapsed(),
                    detail: format!(
                        "slot {slot} moved to port {} but not every primary agrees",
                        dst.port()
                    ),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    fn client_error(&self, action: &str, error: redis::RedisError) -> TestSupportError {
        TestSupportError::ClusterClient {
            action: action.to_owned(),
            nodes: self.urls().join(", "),
            error,
        }
    }
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("primaries", &self.primaries)
            .field("replicas_per_primary", &self.replicas_per_primary)
            .field("ranges", &self.ranges)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

/// The test support's cluster client: every wait bounded.
fn bounded_client(urls: &[String]) -> Result<ClusterClient, TestSupportError> {
    ClusterClient::builder(urls.to_vec())
        .connection_timeout(super::CONNECT_TIMEOUT)
        .response_timeout(super::RESPONSE_TIMEOUT)
        .retries(super::CLUSTER_RETRIES)
        .min_retry_wait(50)
        .max_retry_wait(500)
        .build()
        .map_err(|error| TestSupportError::ClusterClient {
            action: "create".to_owned(),
            nodes: urls.join(", "),
            error,
        })
}

/// Starts `total` nodes in parallel; on any failure the others are dropped (killed).
fn start_nodes(server: &ServerBuilder, total: usize) -> Result<Vec<RedisServer>, TestSupportError> {
    let results: Vec<Result<RedisServer, TestSupportError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..total)
            .map(|_| scope.spawn(|| server.clone().start()))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(TestSupportError::InvalidConfig {
                        reason: "a thread starting a cluster node panicked".to_owned(),
                    })
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Even split of the slot space: primary `i` gets `[i*S/n, (i+1)*S/n - 1]`.
fn split_slots(primaries: usize) -> Vec<(u16, u16)> {
    let slots = usize::from(SLOTS);
    (0..primaries)
        .map(|i| {
            let start = i * slots / primaries;
            let end = (i + 1) * slots / primaries - 1;
            // Both are below 16384.
            (
                u16::try_from(start).unwrap_or(SLOTS - 1),
                u16::try_from(end).unwrap_or(SLOTS - 1),
            )
        })
        .collect()
}

/// `CLUSTER REPLICATE`, retried until the replica has learnt about the
/// primary through `CLUSTER MEET`.
fn replicate(
    replica: &RedisServer,
    primary_id: &str,
    deadline: Instant,
    waited: Duration,
) -> Result<(), TestSupportError> {
    let command = redis::cmd("CLUSTER")
        .arg("REPLICATE")
        .arg(primary_id)
        .clone();
    loop {
        match replica.query::<()>(&command) {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                return Err(TestSupportError::ClusterNotReady {
                    waited,
                    detail: format!(
                        "node 127.0.0.1:{} could not replicate {primary_id}: {error}",
                        replica.port()
                    ),
                });
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Redis 7 leaves a replica out of `CLUSTER SLOTS` while its replication
/// offset is 0, and an idle primary only advances it with its periodic ping
/// (`repl-ping-replica-period`, 10 s). A `FLUSHALL` on the still-empty primary
/// changes nothing, is replicated even when the database is empty, and, having
/// no key, is accepted before the cluster is up.
fn advance_replication_offset(primary: &RedisServer) -> Result<(), TestSupportError> {
    primary.query::<()>(&redis::cmd("FLUSHALL"))
}

/// One row of `CLUSTER SLOTS`: the range, its primary and its replicas (sorted),
/// nodes as "ip:port".
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SlotRow {
    start: i64,
    end: i64,
    primary: String,
    replicas: Vec<String>,
}

fn expected_slots(nodes: &[RedisServer], ranges: &[(u16, u16)], replicas: usize) -> Vec<SlotRow> {
    let primaries = ranges.len();
    ranges
        .iter()
        .enumerate()
        .map(|(i, &(start, end))| {
            let start_index = primaries + i * replicas;
            let mut replica_addrs: Vec<String> = nodes[start_index..start_index + replicas]
                .iter()
                .map(|n| format!("{HOST}:{}", n.port()))
                .collect();
            replica_addrs.sort();
            SlotRow {
                start: i64::from(start),
                end: i64::from(end),
                primary: format!("{HOST}:{}", nodes[i].port()),
                replicas: replica_addrs,
            }
        })
        .collect()
}

fn wait_until_ready(
    nodes: &[RedisServer],
    expected: &[SlotRow],
    deadline: Instant,
    waited: Duration,
) -> Result<(), TestSupportError> {
    loop {
        let problem = nodes
            .iter()
            .find_map(|node| node_problem(node, nodes.len(), expected).map(|p| (node, p)));
        let Some((node, problem)) = problem else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(TestSupportError::ClusterNotReady {
                waited,
                detail: format!(
                    "node 127.0.0.1:{}: {problem}. Its output ends with:\n{}",
                    node.port(),
                    node.log_tail()
                ),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// What is not yet as expected on `node`, if anything.
fn node_problem(node: &RedisServer, total: usize, expected: &[SlotRow]) -> Option<String> {
    let info = match node.query::<String>(redis::cmd("CLUSTER").arg("INFO")) {
        Ok(info) => info,
        Err(error) => return Some(error.to_string()),
    };
    let state = info_field(&info, "cluster_state").unwrap_or("?");
    let known = info_field(&info, "cluster_known_nodes").unwrap_or("?");
    let assigned = info_field(&info, "cluster_slots_assigned").unwrap_or("?");
    if state != "ok" || known != total.to_string() || assigned != SLOTS.to_string() {
        return Some(format!(
            "cluster_state:{state}, cluster_known_nodes:{known} (want {total}), \
             cluster_slots_assigned:{assigned} (want {SLOTS})"
        ));
    }
    let slots = match node.query::<redis::Value>(redis::cmd("CLUSTER").arg("SLOTS")) {
        Ok(value) => value,
        Err(error) => return Some(error.to_string()),
    };
    match parse_slots(slots) {
        Ok(rows) if rows == expected => {}
        Ok(rows) => {
            return Some(format!("CLUSTER SLOTS is {rows:?}, expected {expected:?}"));
        }
        Err(detail) => return Some(format!("unexpected CLUSTER SLOTS reply: {detail}")),
    }
    if node.primary_port().is_some() {
        let replication = match node.query::<String>(redis::cmd("INFO").arg("replication")) {
            Ok(info) => info,
            Err(error) => return Some(error.to_string()),
        };
        let link = info_field(&replication, "master_link_status").unwrap_or("absent");
        if link != "up" {
            return Some(format!("replica master_link_status:{link}"));
        }
    }
    None
}

fn parse_slots(value: redis::Value) -> Result<Vec<SlotRow>, String> {
    let redis::Value::Array(rows) = value else {
        return Err(format!("not an array: {value:?}"));
    };
    let mut parsed = rows
        .into_iter()
        .map(|row| {
            let redis::Value::Array(items) = row else {
                return Err(format!("row is not an array: {row:?}"));
            };
            let mut items = items.into_iter();
            let start = as_int(items.next())?;
            let end = as_int(items.next())?;
            let primary = as_node(items.next())?;
            let mut replicas = items
                .map(|n| as_node(Some(n)))
                .collect::<Result<Vec<_>, _>>()?;
            replicas.sort();
            Ok(SlotRow {
                start,
                end,
                primary,
                replicas,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    parsed.sort();
    Ok(parsed)
}

fn as_int(value: Option<redis::Value>) -> Result<i64, String> {
    match value {
        Some(redis::Value::Int(n)) => Ok(n),
        other => Err(format!("expected an integer, got {other:?}")),
    }
}

fn as_node(value: Option<redis::Value>) -> Result<String, String> {
    let Some(redis::Value::Array(fields)) = value else {
        return Err(format!("expected a node, got {value:?}"));
    };
    let mut fields = fields.into_iter();
    let ip = match fields.next() {
        Some(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Some(redis::Value::SimpleString(text)) => text,
        other => return Err(format!("expected a node address, got {other:?}")),
    };
    let port = as_int(fields.next())?;
    Ok(format!("{ip}:{port}"))
}

/// `CLUSTER SLOTS` of `node`: each range and its primary's port.
fn slot_owners(node: &RedisServer) -> Result<Vec<(RangeInclusive<u16>, u16)>, TestSupportError> {
    let reply: Vec<redis::Value> = node.query(redis::cmd("CLUSTER").arg("SLOTS"))?;
    let int = |v: &redis::Value| match v {
        redis::Value::Int(i) => u16::try_from(*i).ok(),
        _ => None,
    };
    let mut out = Vec::new();
    for entry in &reply {
        let redis::Value::Array(items) = entry else {
            continue;
        };
        let (Some(start), Some(end)) = (items.first().and_then(int), items.get(1).and_then(int))
        else {
            continue;
        };
        let port = match items.get(2) {
            Some(redis::Value::Array(node)) => node.get(1).and_then(int),
            _ => None,
        };
        if let Some(port) = port {
            out.push((start..=end, port));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::split_slots;

    #[test]
    fn slots_are_split_without_gaps() {
        for n in 1..=7 {
            let ranges = split_slots(n);
            assert_eq!(ranges.first().map(|r| r.0), Some(0));
            assert_eq!(ranges.last().map(|r| r.1), Some(16383));
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1 + 1, pair[1].0);
            }
        }
    }
}
