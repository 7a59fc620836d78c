//! A connection to the primary of a Sentinel service that follows failovers.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};

use super::ConnectionOptions;
use crate::error::{Error, Result};
use crate::exec::AsyncExecutor;
use crate::op::Plan;

/// The connections of a Sentinel service: its primary, and its replicas for
/// reads. Obtained inside a [`Connection`](super::Connection) from
/// [`ConnectionOptions::connect_sentinel_async`].
///
/// * **Discovery**: asks each sentinel in turn `SENTINEL
///   GET-MASTER-ADDR-BY-NAME` and keeps the first address whose server
///   answers `ROLE` as a primary; `SENTINEL REPLICAS` lists the replicas
///   (those not down, with their link to the primary up).
/// * **Following a failover**: after a failed attempt (a refused or dropped
///   connection, a timeout) or a `READONLY`/`LOADING`/`MASTERDOWN` reply,
///   the connection asks the sentinels again and, if they name another
///   primary, moves to it; the attempt loop then retries what was not
///   applied. One task rediscovers while the others wait for its result.
///   A task also follows `+switch-master` on one sentinel (the next one
///   when it fails) and moves at once; it ends with the last handle.
///   Writes a demoted primary accepted between the promotion and the move
///   are lost: a [`durable`](super::durable) write notices (its `WAIT` falls
///   short, the replicas having left).
/// * **Stale reads**: until a write meets `READONLY`, a demoted primary
///   still answers reads with what it holds.
#[derive(Clone)]
pub struct SentinelConnection(Arc<State>);

struct State {
    service: String,
    sentinels: Vec<ConnectionInfo>,
    /// Credentials, database and protocol of the data nodes.
    template: ConnectionInfo,
    options: ConnectionOptions,
    current: Mutex<Current>,
    rediscovering: tokio::sync::Mutex<()>,
    next_replica: AtomicUsize,
}

#[derive(Clone)]
struct Current {
    generation: u64,
    primary: (String, ConnectionManager),
    replicas: Vec<(String, ConnectionManager)>,
}

impl fmt::Debug for SentinelConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current();
        f.debug_struct("SentinelConnection")
            .field("service", &self.0.service)
            .field("primary", &current.primary.0)
            .field(
                "replicas",
                &current.replicas.iter().map(|r| &r.0).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl SentinelConnection {
    pub(super) async fn connect(
        options: &ConnectionOptions,
        sentinel_urls: &[&str],
        service: &str,
    ) -> Result<Self> {
        let mut sentinels = Vec::with_capacity(sentinel_urls.len());
        for url in sentinel_urls {
            sentinels.push(url.into_connection_info()?);
        }
        let Some(template) = sentinels.first().cloned() else {
            return Err(Error::InvalidConfig {
                what: "Sentinel connection",
                reason: "no sentinel address was given".to_owned(),
            });
        };
        let mut state = State {
            service: service.to_owned(),
            sentinels,
            template,
            options: options.clone(),
            current: Mutex::new(Current {
                generation: 0,
                primary: (String::new(), placeholder(options)?),
                replicas: Vec::new(),
            }),
            rediscovering: tokio::sync::Mutex::new(()),
            next_replica: AtomicUsize::new(0),
        };
        let (primary, replicas) = state.discover().await?;
        state.current = Mutex::new(Current {
            generation: 1,
            primary,
            replicas,
        });
        let state = Arc::new(state);
        tokio::spawn(watch(Arc::downgrade(&state)));
        Ok(SentinelConnection(state))
    }

    fn current(&self) -> Current {
        self.0
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The primary's address (`host:port`) as last discovered.
    pub fn primary_address(&self) -> String {
        self.current().primary.0
    }

    /// The replicas' addresses as last discovered.
    pub fn replica_addresses(&self) -> Vec<String> {
        self.current().replicas.into_iter().map(|r| r.0).collect()
    }

    pub(super) async fn send(&self, plan: Plan, reads: bool) -> Result<Vec<Value>> {
        let current = self.current();
        let mut con = if reads && !current.replicas.is_empty() {
            let i = self.0.next_replica.fetch_add(1, Ordering::Relaxed) % current.replicas.len();
            current.replicas[i].1.clone()
        } else {
            current.primary.1
        };
        con.execute_async(plan).await
    }

    /// Asks the sentinels again and moves to the primary they name. Bounded
    /// by one attempt's budget; failures are logged and leave the current
    /// connections in place.
    pub(super) async fn rediscover(&self) {
        self.0.rediscover().await;
    }
}

/// Follows `+switch-master` on one sentinel after another (re-subscribing
/// after a failure) and rediscovers on each, until the connection is
/// dropped.
async fn watch(state: std::sync::Weak<State>) {
    let mut i = 0usize;
    loop {
        let Some(s) = state.upgrade() else { return };
        let sentinel = s.sentinels[i % s.sentinels.len()].clone();
        let options = s.options.clone();
        drop(s);
        i = i.wrapping_add(1);
        let subscribed = async {
            let client = options.client(sentinel)?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe("+switch-master").await?;
            Ok::<_, Error>(pubsub)
        };
        let mut pubsub = match tokio::time::timeout(options.attempt_bound(), subscribed).await {
            Ok(Ok(p)) => p,
            _ => {
                tokio::time::sleep(options.backoff_max).await;
                continue;
            }
        };
        let mut messages = pubsub.on_message();
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(1), messages.next()).await {
                Ok(Some(_)) => match state.upgrade() {
                    Some(s) => s.rediscover().await,
                    None => return,
                },
                Ok(None) => break, // the sentinel went away: next one
                Err(_) if state.strong_count() == 0 => return,
                Err(_) => {}
            }
        }
    }
}

/// A manager for a closed port, never used: the slot the first discovery fills.
fn placeholder(options: &ConnectionOptions) -> Result<ConnectionManager> {
    let client = redis::Client::open("redis://127.0.0.1:1/")?;
    Ok(ConnectionManager::new_lazy_with_config(
        client,
        options.manager_config(),
    )?)
}

type Discovered = (
    (String, ConnectionManager),
    Vec<(String, ConnectionManager)>,
);

impl State {
    /// See [`SentinelConnection::rediscover`].
    async fn rediscover(&self) {
        let generation = || {
            self.current
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .generation
        };
        let seen = generation();
        let _one = self.rediscovering.lock().await;
        if generation() != seen {
            return; // another task just did it
        }
        let bound = self.options.attempt_bound();
        match tokio::time::timeout(bound, self.discover()).await {
            Ok(Ok((primary, replicas))) => {
                let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
                if current.primary.0 != primary.0 {
                    log::info!(
                        "Sentinel service `{}`: primary moved from {} to {}",
                        self.service,
                        current.primary.0,
                        primary.0
                    );
                    current.primary = primary;
                }
                current.replicas = replicas;
                current.generation += 1;
            }
            Ok(Err(e)) => log::warn!("Sentinel service `{}`: {e}", self.service),
            Err(_) => log::warn!(
                "Sentinel service `{}`: rediscovery took over {bound:?}",
                self.service
            ),
        }
    }

    /// A client for a data node the sentinels named: over TLS when the
    /// sentinels were reached over TLS (`rediss://`), with the same
    /// verification.
    fn node_client(&self, host: &str, port: u16) -> Result<redis::Client> {
        let addr = match self.template.addr() {
            ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: *insecure,
                tls_params: None,
            },
            _ => ConnectionAddr::Tcp(host.to_owned(), port),
        };
        self.options.client(self.template.clone().set_addr(addr))
    }

    async fn ask(&self, sentinel: &ConnectionInfo, cmd: &redis::Cmd) -> Result<Value> {
        let client = self.options.client(sentinel.clone())?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.options.connect_timeout))
            .set_response_timeout(Some(self.options.response_timeout));
        let mut con = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(cmd.query_async(&mut con).await?)
    }

    /// The primary the first answering sentinel names (checked with
    /// `ROLE`), and the replicas it lists.
    async fn discover(&self) -> Result<Discovered> {
        let mut reasons = Vec::new();
        for sentinel in &self.sentinels {
            let who = super::endpoint_of(sentinel);
            let addr = self
                .ask(
                    sentinel,
                    redis::cmd("SENTINEL")
                        .arg("GET-MASTER-ADDR-BY-NAME")
                        .arg(&self.service),
                )
                .await;
            let (host, port) = match addr.map(redis::from_redis_value::<Option<(String, u16)>>) {
                Ok(Ok(Some(addr))) => addr,
                Ok(Ok(None)) => {
                    reasons.push(format!("{who} does not know the service"));
                    continue;
                }
                Ok(Err(e)) => {
                    reasons.push(format!("{who}: {e}"));
                    continue;
                }
                Err(e) => {
                    reasons.push(format!("{who}: {e}"));
                    continue;
                }
            };
            let client = self.node_client(&host, port)?;
            let manager = client.get_connection_manager_with_config(self.options.manager_config());
            let mut manager = match manager.await {
                Ok(m) => m,
                Err(e) => {
                    reasons.push(format!("{who} names {host}:{port}, which refuses: {e}"));
                    continue;
                }
            };
            let role: redis::RedisResult<Vec<Value>> =
                redis::cmd("ROLE").query_async(&mut manager).await;
            let is_primary =
                matches!(role.as_deref(), Ok([Value::BulkString(b), ..]) if b == b"master");
            if !is_primary {
                reasons.push(format!(
                    "{who} names {host}:{port}, which is not a primary (yet)"
                ));
                continue;
            }
            let replicas = self.replicas(sentinel).await.unwrap_or_default();
            return Ok(((format!("{host}:{port}"), manager), replicas));
        }
        Err(Error::NoPrimary {
            service: self.service.clone(),
            reason: reasons.join("; "),
        })
    }

    async fn replicas(
        &self,
        sentinel: &ConnectionInfo,
    ) -> Result<Vec<(String, ConnectionManager)>> {
        let reply = self
            .ask(
                sentinel,
                redis::cmd("SENTINEL").arg("REPLICAS").arg(&self.service),
            )
            .await?;
        let rows: Vec<Vec<String>> =
            redis::from_redis_value(reply).map_err(|e| Error::UnexpectedReply {
                context: "SENTINEL REPLICAS",
                found: e.to_string(),
            })?;
        let mut out = Vec::new();
        for row in rows {
            let get = |name: &str| {
                row.chunks(2)
                    .find(|kv| kv.first().map(String::as_str) == Some(name))
                    .and_then(|kv| kv.get(1))
                    .cloned()
                    .unwrap_or_default()
            };
            let flags = get("flags");
            if flags.contains("s_down")
                || flags.contains("o_down")
                || flags.contains("disconnected")
            {
                continue;
            }
            if get("master-link-status") != "ok" {
                continue;
            }
            let (host, Ok(port)) = (get("ip"), get("port").parse::<u16>()) else {
                continue;
            };
            let client = self.node_client(&host, port)?;
            let manager =
                ConnectionManager::new_lazy_with_config(client, self.options.manager_config())?;
            out.push((format!("{host}:{port}"), manager));
        }
        Ok(out)
    }
}
