//! Replicated topologies for failover tests: a primary with replicas
//! ([`ReplicaSet`]), Sentinel over one ([`RedisSentinel`]), and failover
//! helpers for [`RedisCluster`].

use std::fmt;
use std::time::{Duration, Instant};

use super::TestSupportError;
#[cfg(feature = "cluster")]
use super::cluster::RedisCluster;
#[cfg(feature = "cluster")]
use super::server::info_field;
use super::server::{HOST, RedisServer, ServerBuilder};

const POLL: Duration = Duration::from_millis(20);
/// The name Sentinel monitors the primary under.
pub const SERVICE_NAME: &str = "mymaster";

/// A primary and its replicas (`--replicaof`), each a [`RedisServer`].
///
/// Node 0 starts as the primary; [`start`](Self::start) returns once every
/// replica has synchronised. After a failover the roles move:
/// [`primary_index`](Self::primary_index) asks the nodes (`ROLE`).
pub struct ReplicaSet {
    nodes: Vec<RedisServer>,
}

impl ReplicaSet {
    /// Starts a primary and `replicas` replicas with the default configuration.
    ///
    /// # Errors
    ///
    /// See [`ServerBuilder::start`].
    pub fn start(replicas: usize) -> Result<Self, TestSupportError> {
        Self::start_with(&RedisServer::builder(), replicas)
    }

    /// Starts a primary and `replicas` replicas, each configured by `server`
    /// (extra arguments, another executable).
    ///
    /// # Errors
    ///
    /// See [`ServerBuilder::start`].
    pub fn start_with(server: &ServerBuilder, replicas: usize) -> Result<Self, TestSupportError> {
        let server = server.clone().share_tls()?;
        let primary = server.clone().start()?;
        let mut nodes = vec![primary];
        for _ in 0..replicas {
            let replica = server.clone().replica_of(&nodes[0]).start()?;
            nodes.push(replica);
        }
        Ok(ReplicaSet { nodes })
    }

    /// Every node; node 0 was the first primary.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Mutable access to one node, to stop or restart it.
    pub fn node_mut(&mut self, index: usize) -> Option<&mut RedisServer> {
        self.nodes.get_mut(index)
    }

    /// The node that reports itself primary now (`ROLE` is `master`), among
    /// the running ones; `None` while there is none (during a failover).
    pub fn primary_index(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.is_running() && role(n).as_deref() == Some("master"))
    }

    /// The current primary (see [`primary_index`](Self::primary_index)).
    pub fn primary(&self) -> Option<&RedisServer> {
        self.primary_index().map(|i| &self.nodes[i])
    }

    /// The running nodes that report themselves replicas.
    pub fn replicas(&self) -> Vec<&RedisServer> {
        self.nodes
            .iter()
            .filter(|n| n.is_running() && role(n).as_deref() == Some("slave"))
            .collect()
    }

    /// Kills the current primary with `SIGKILL` (a crash) and returns its
    /// index and the instant of the kill.
    ///
    /// # Errors
    ///
    /// [`TestSupportError::InvalidConfig`] if no node is primary.
    pub fn kill_primary(&mut self) -> Result<(usize, Instant), TestSupportError> {
        let index = self
            .primary_index()
            .ok_or_else(|| TestSupportError::InvalidConfig {
                reason: "no running node of the replica set is a primary".to_owned(),
            })?;
        self.nodes[index].stop();
        Ok((index, Instant::now()))
    }

    /// A failover by hand, without Sentinel: `REPLICAOF NO ONE` on node
    /// `index`, then every other running node replicates it.
    ///
    /// # Errors
    ///
    /// [`TestSupportError::Redis`] if a node refuses.
    pub fn promote(&self, index: usize) -> Result<(), TestSupportError> {
        let Some(new) = self.nodes.get(index) else {
            return Err(TestSupportError::InvalidConfig {
                reason: format!("no node {index} in a replica set of {}", self.nodes.len()),
            });
        };
        new.query::<()>(redis::cmd("REPLICAOF").arg("NO").arg("ONE"))?;
        for (i, node) in self.nodes.iter().enumerate() {
            if i != index && node.is_running() {
                // TLS nodes replicate over TLS (`tls-replication yes`).
                let port = new.tls_port().unwrap_or(new.port());
                node.query::<()>(redis::cmd("REPLICAOF").arg(HOST).arg(port))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ReplicaSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaSet")
            .field("nodes", &self.nodes)
            .finish()
    }
}

/// Sentinel over a [`ReplicaSet`]: by default 3 sentinels (quorum 2) watching
/// a primary and 2 replicas under the name [`SERVICE_NAME`], with
/// `down-after-milliseconds 1000` and `failover-timeout 5000` so that a
/// failover takes a few seconds.
///
/// [`start`](Self::start) returns once every sentinel knows both replicas
/// and the other sentinels.
///
/// From a TLS builder ([`ServerBuilder::tls`]) every data node and sentinel
/// shares one CA, the sentinels listen on a TLS port too
/// ([`sentinel_tls_urls`](Self::sentinel_tls_urls)) and reach the data
/// nodes, and each other, over TLS (`tls-replication yes`): they then name
/// the nodes by their TLS ports.
pub struct RedisSentinel {
    data: ReplicaSet,
    sentinels: Vec<RedisServer>,
}

impl RedisSentinel {
    /// Starts 3 sentinels over a primary and 2 replicas.
    ///
    /// # Errors
    ///
    /// Any start error; [`TestSupportError::ClusterNotReady`] if the sentinels
    /// do not discover each other and the replicas within 30 s.
    pub fn start() -> Result<Self, TestSupportError> {
        Self::start_with(&RedisServer::builder(), 2, 3)
    }

    /// Starts `sentinels` sentinels (quorum: a majority) over a primary and
    /// `replicas` replicas configured by `server`.
    ///
    /// # Errors
    ///
    /// As for [`start`](Self::start).
    pub fn start_with(
        server: &ServerBuilder,
        replicas: usize,
        sentinels: usize,
    ) -> Result<Self, TestSupportError> {
        let server = server.clone().share_tls()?;
        let data = ReplicaSet::start_with(&server, replicas)?;
        let primary_port = if server.is_tls() {
            data.nodes[0].tls_port().unwrap_or(data.nodes[0].port())
        } else {
            data.nodes[0].port()
        };
        let quorum = sentinels / 2 + 1;
        let conf = format!(
            "sentinel monitor {SERVICE_NAME} {HOST} {primary_port} {quorum}\n\
             sentinel down-after-milliseconds {SERVICE_NAME} 1000\n\
             sentinel failover-timeout {SERVICE_NAME} 5000\n\
             sentinel parallel-syncs {SERVICE_NAME} 2\n"
        );
        let builder = server.clone().sentinel(conf);
        let sentinels = (0..sentinels)
            .map(|_| builder.clone().start())
            .collect::<Result<Vec<_>, _>>()?;
        let set = RedisSentinel { data, sentinels };
        set.wait_until_discovered(replicas, Duration::from_secs(30))?;
        Ok(set)
    }

    fn wait_until_discovered(
        &self,
        replicas: usize,
        timeout: Duration,
    ) -> Result<(), TestSupportError> {
        let deadline = Instant::now() + timeout;
        let others = self.sentinels.len() - 1;
        loop {
            let problem = self.sentinels.iter().find_map(|s| {
                let fields = match s
                    .query::<Vec<String>>(redis::cmd("SENTINEL").arg("MASTER").arg(SERVICE_NAME))
                {
                    Ok(fields) => fields,
                    Err(e) => return Some(e.to_string()),
                };
                let get = |name: &str| {
                    fields
                        .iter()
                        .position(|f| f == name)
                        .and_then(|i| fields.get(i + 1))
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0)
                };
                let (r, o) = (get("num-slaves"), get("num-other-sentinels"));
                (r < replicas || o < others).then(|| {
                    format!(
                        "sentinel on port {} knows {r} of {replicas} replicas and {o} of \
                         {others} other sentinels",
                        s.port()
                    )
                })
            });
            let Some(problem) = problem else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(TestSupportError::ClusterNotReady {
                    waited: timeout,
                    detail: problem,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The monitored name ([`SERVICE_NAME`]).
    pub fn service_name(&self) -> &'static str {
        SERVICE_NAME
    }

    /// The sentinels.
    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    /// The sentinels' URLs (`redis://127.0.0.1:<port>/`).
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisServer::url).collect()
    }

    /// The sentinels' TLS URLs (`rediss://127.0.0.1:<tls port>/`) when
    /// started from a TLS builder, else empty.
    pub fn sentinel_tls_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .filter_map(RedisServer::tls_url)
            .collect()
    }

    /// The PEM of the CA of a TLS set (see [`ServerBuilder::tls`]).
    pub fn ca_cert(&self) -> Option<Vec<u8>> {
        self.sentinels.first().and_then(RedisServer::ca_cert)
    }

    /// The data nodes.
    pub fn data(&self) -> &ReplicaSet {
        &self.data
    }

    /// The data nodes, to stop or restart one.
    pub fn data_mut(&mut self) -> &mut ReplicaSet {
        &mut self.data
    }

    /// The primary's port as the first sentinel that answers reports it
    /// (`SENTINEL GET-MASTER-ADDR-BY-NAME`).
    ///
    /// # Errors
    ///
    /// The last sentinel's error if none answers.
    pub fn reported_primary_port(&self) -> Result<u16, TestSupportError> {
        let mut last = None;
        for s in &self.sentinels {
            match s.query::<(String, u16)>(
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(SERVICE_NAME),
            ) {
                Ok((_, port)) => return Ok(port),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| TestSupportError::InvalidConfig {
            reason: "no sentinel".to_owned(),
        }))
    }

    /// Kills the primary the sentinels report (`SIGKILL`): its index among
    /// [`data`](Self::data)'s nodes, its port and the instant of the kill.
    ///
    /// # Errors
    ///
    /// If no sentinel answers, or the reported primary is not a data node.
    pub fn kill_primary(&mut self) -> Result<(usize, u16, Instant), TestSupportError> {
        let port = self.reported_primary_port()?;
        let index = self
            .data
            .nodes
            .iter()
            .position(|n| n.has_port(port))
            .ok_or_else(|| TestSupportError::InvalidConfig {
                reason: format!("the sentinels report a primary on port {port}, not a data node"),
            })?;
        self.data.nodes[index].stop();
        Ok((index, port, Instant::now()))
    }

    /// Asks a sentinel for a failover (`SENTINEL FAILOVER`), as an operator
    /// would; returns the old primary's port. See
    /// [`wait_for_promotion`](Self::wait_for_promotion).
    ///
    /// # Errors
    ///
    /// [`TestSupportError::Redis`] if the sentinel refuses (e.g. a failover
    /// is in progress).
    pub fn failover(&self) -> Result<u16, TestSupportError> {
        let old = self.reported_primary_port()?;
        self.sentinels[0].query::<()>(redis::cmd("SENTINEL").arg("FAILOVER").arg(SERVICE_NAME))?;
        Ok(old)
    }

    /// Waits until a majority of the sentinels report a primary other than
    /// `old_port` and that node says it is a primary (`ROLE`); returns its port.
    ///
    /// # Errors
    ///
    /// [`TestSupportError::ClusterNotReady`] after `timeout`.
    pub fn wait_for_promotion(
        &self,
        old_port: u16,
        timeout: Duration,
    ) -> Result<u16, TestSupportError> {
        let deadline = Instant::now() + timeout;
        loop {
            let ports: Vec<u16> = self
                .sentinels
                .iter()
                .filter_map(|s| {
                    s.query::<(String, u16)>(
                        redis::cmd("SENTINEL")
                            .arg("GET-MASTER-ADDR-BY-NAME")
                            .arg(SERVICE_NAME),
                    )
                    .ok()
                })
                .map(|(_, p)| p)
                .filter(|&p| p != old_port)
                .collect();
            if ports.len() > self.sentinels.len() / 2
                && let Some(node) = self.data.nodes.iter().find(|n| n.has_port(ports[0]))
                && role(node).as_deref() == Some("master")
            {
                return Ok(ports[0]);
            }
            if Instant::now() >= deadline {
                return Err(TestSupportError::ClusterNotReady {
                    waited: timeout,
                    detail: format!(
                        "the sentinels still report the primary on port {old_port}, or the new \
                         one does not answer ROLE master"
                    ),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The failover time Sentinel itself reports: from the first `+sdown
    /// master` (or `+try-failover`, for a requested failover) to the first
    /// `+switch-master` logged by any sentinel. `None` if the logs hold no
    /// complete failover.
    pub fn reported_failover_time(&self) -> Option<Duration> {
        let first = |needles: &[&str]| {
            self.sentinels
                .iter()
                .flat_map(|s| {
                    let log = s.log();
                    log.lines()
                        .filter(|l| needles.iter().any(|n| l.contains(n)))
                        .filter_map(log_time)
                        .collect::<Vec<_>>()
                })
                .min()
        };
        let start = first(&["+sdown master", "+try-failover"])?;
        let end = first(&["+switch-master"])?;
        (end - start).to_std().ok()
    }
}

impl fmt::Debug for RedisSentinel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSentinel")
            .field("data", &self.data)
            .field("sentinels", &self.sentinels)
            .finish()
    }
}

#[cfg(feature = "cluster")]
/// The failover helpers of a cluster.
impl RedisCluster {
    /// Kills primary `primary` (`SIGKILL`) and returns the instant of the kill.
    ///
    /// # Errors
    ///
    /// [`TestSupportError::InvalidConfig`] if there is no such primary.
    pub fn kill_primary(&mut self, primary: usize) -> Result<Instant, TestSupportError> {
        if primary >= self.primaries().len() {
            return Err(TestSupportError::InvalidConfig {
                reason: format!("no primary {primary}"),
            });
        }
        if let Some(node) = self.node_mut(primary) {
            node.stop();
        }
        Ok(Instant::now())
    }

    /// A failover an operator asks for: `CLUSTER FAILOVER` on the first
    /// replica of primary `primary`, then waits for its promotion.
    ///
    /// # Errors
    ///
    /// [`TestSupportError::InvalidConfig`] without a replica; as for
    /// [`wait_for_promotion`](Self::wait_for_promotion).
    pub fn failover(&self, primary: usize, timeout: Duration) -> Result<u16, TestSupportError> {
        let Some(replica) = self.replicas_of(primary).first() else {
            return Err(TestSupportError::InvalidConfig {
                reason: format!("primary {primary} has no replica to fail over to"),
            });
        };
        replica.query::<()>(redis::cmd("CLUSTER").arg("FAILOVER"))?;
        self.wait_for_promotion(primary, timeout)
    }

    /// Waits until a replica of primary `primary` reports itself primary
    /// (`ROLE`) and every running node reports `cluster_state:ok`; returns
    /// the new primary's port.
    ///
    /// # Errors
    ///
    /// [`TestSupportError::ClusterNotReady`] after `timeout`.
    pub fn wait_for_promotion(
        &self,
        primary: usize,
        timeout: Duration,
    ) -> Result<u16, TestSupportError> {
        let deadline = Instant::now() + timeout;
        loop {
            let promoted = self
                .replicas_of(primary)
                .iter()
                .find(|r| r.is_running() && role(r).as_deref() == Some("master"));
            if let Some(new) = promoted {
                let all_ok = self.nodes().iter().filter(|n| n.is_running()).all(|n| {
                    n.query::<String>(redis::cmd("CLUSTER").arg("INFO"))
                        .ok()
                        .is_some_and(|i| info_field(&i, "cluster_state") == Some("ok"))
                });
                if all_ok {
                    return Ok(new.port());
                }
            }
            if Instant::now() >= deadline {
                return Err(TestSupportError::ClusterNotReady {
                    waited: timeout,
                    detail: format!("no replica of primary {primary} was promoted"),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The failover time the cluster reports: from the first node logging
    /// the primary as failing (`Marking node ... as failing` or `FAIL
    /// message received`) to its replica logging `Failover election won`.
    /// `None` if the logs hold no complete failover.
    pub fn reported_failover_time(&self, primary: usize) -> Option<Duration> {
        let start = self
            .nodes()
            .iter()
            .flat_map(|n| {
                n.log()
                    .lines()
                    .filter(|l| l.contains("as failing") || l.contains("FAIL message received"))
                    .filter_map(log_time)
                    .collect::<Vec<_>>()
            })
            .min()?;
        let end = self
            .replicas_of(primary)
            .iter()
            .flat_map(|n| {
                n.log()
                    .lines()
                    .filter(|l| l.contains("Failover election won"))
                    .filter_map(log_time)
                    .collect::<Vec<_>>()
            })
            .min()?;
        (end - start).to_std().ok()
    }
}

/// The node's role (`master`, `slave`, `sentinel`), `None` if it does not answer.
fn role(node: &RedisServer) -> Option<String> {
    let mut con = node
        .client()
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    con.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let reply: redis::Value = redis::cmd("ROLE").query(&mut con).ok()?;
    match reply {
        redis::Value::Array(items) => match items.into_iter().next()? {
            redis::Value::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            redis::Value::SimpleString(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// The time of a server log line (`pid:R 03 Dec 2026 19:30:01.123 # ...`).
fn log_time(line: &str) -> Option<chrono::NaiveDateTime> {
    let rest = line.split_once(' ')?.1;
    let stamp: String = rest.split(' ').take(4).collect::<Vec<_>>().join(" ");
    chrono::NaiveDateTime::parse_from_str(&stamp, "%d %b %Y %H:%M:%S%.3f").ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_lines_have_times() {
        let t = super::log_time("123:X 03 Dec 2026 19:30:01.123 # +switch-master mymaster");
        assert_eq!(
            t.map(|t| t.format("%H:%M:%S%.3f").to_string()).as_deref(),
            Some("19:30:01.123")
        );
    }
}
