//! Invalidation by key pattern: the last resort (it `SCAN`s every primary),
//! for groups no tag was declared for.

use std::any::Any;
use std::collections::BTreeSet;
use std::time::Duration;

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ConnectionLike, Value};

use super::Cached;
use super::ops::{DEFAULT_HOLD, push_invalidate};
use crate::error::{Error, Result};
use crate::exec::{AsyncExecutor, SyncExecutor};
use crate::keys::{IdBuf, IdValue, KeyPart, Namespace, Seg, glob_escape};
use crate::op::{Operation, Plan, Replies, Step};

/// A `SCAN MATCH` pattern whose user values are escaped: literal text is
/// glob-escaped, values are escaped like key parts (which escapes `*`, `?`,
/// `[`, `]` and `\` too), and only [`KeyPattern::any`] adds a wildcard.
///
/// ```
/// use redis_state::cache::KeyPattern;
/// let p = KeyPattern::new().lit("user:").value(&"4*2").lit(":").any();
/// assert_eq!(p.as_str(), "user:4%2A2:*");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPattern(String);

impl KeyPattern {
    /// An empty pattern.
    pub fn new() -> Self {
        KeyPattern(String::new())
    }

    /// Appends literal text (glob characters escaped).
    pub fn lit(mut self, literal: &str) -> Self {
        self.0.push_str(&glob_escape(literal));
        self
    }

    /// Appends a value, escaped as a key part.
    pub fn value<V: KeyPart + ?Sized>(mut self, value: &V) -> Self {
        let mut buf = IdBuf::new();
        value.write_key_part(&mut buf);
        self.0.push_str(&glob_escape(buf.joined()));
        self
    }

    /// Appends `*`.
    pub fn any(mut self) -> Self {
        self.0.push('*');
        self
    }

    /// Every entry of `T` in `ns` (or the type's namespace) whose id starts
    /// with `prefix` (a leading part of the id: one key part or a tuple;
    /// `&()` for all entries of the type).
    pub fn entries_of<T: Cached, P: IdValue + ?Sized>(ns: Option<&Namespace>, prefix: &P) -> Self {
        let mut parts = IdBuf::new();
        prefix.write_id(&mut parts);
        let key = &T::SCHEMA.key;
        let mut prefix = String::new();
        crate::keys::write_ns_prefix(ns, key.namespace, &mut prefix);
        let mut out = KeyPattern::new().lit(&prefix);
        for seg in key.segs {
            match *seg {
                Seg::Lit(s) => out = out.lit(s),
                Seg::Part(i) if (i as usize) < parts.len() => {
                    out.0.push_str(&glob_escape(parts.part(i as usize)));
                }
                Seg::Part(_) => out = out.any(),
            }
        }
        out
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const SCAN_COUNT: usize = 512;

/// The suffix of fill-lease keys (see `cache::aux_key`).
const LEASE_SUFFIX: &str = ":#lease";

/// Deletes every string key matching `pattern` on a blocking connection
/// (`SCAN … MATCH … TYPE string` on the server, or on every primary of a
/// Cluster), revoking fills in flight like [`Cached::invalidate`]. Returns
/// how many keys were deleted.
///
/// Cost: one `SCAN` round trip per 512 keys scanned per primary, then one
/// pipeline of `invalidate` scripts per batch found. Prefer tags.
pub fn invalidate_pattern<C>(con: &mut C, pattern: &KeyPattern) -> Result<usize>
where
    C: redis::ConnectionLike + SyncExecutor + Any,
{
    let any: &mut dyn Any = con;
    let nodes = match any.downcast_mut::<redis::cluster::ClusterConnection>() {
        Some(cluster) => Some(primaries(cluster.req_command(&cluster_slots())?)?),
        None => None,
    };
    let mut deleted = 0;
    for node in targets(nodes) {
        let mut cursor = 0u64;
        loop {
            let cmd = scan(cursor, pattern);
            let reply = match &node {
                Some((host, port)) => {
                    let any: &mut dyn Any = con;
                    match any.downcast_mut::<redis::cluster::ClusterConnection>() {
                        Some(cluster) => cluster.route_command(&cmd, by_address(host, *port))?,
                        None => con.req_command(&cmd)?,
                    }
                }
                None => con.req_command(&cmd)?,
            };
            let (next, keys) = parse_scan(&reply)?;
            if !keys.is_empty() {
                deleted += Delete {
                    keys,
                    hold: DEFAULT_HOLD,
                }
                .run(con)?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(deleted)
}

/// [`invalidate_pattern`] on an async connection.
pub async fn invalidate_pattern_async<C>(con: &mut C, pattern: &KeyPattern) -> Result<usize>
where
    C: redis::aio::ConnectionLike + AsyncExecutor + Any,
{
    let any: &mut dyn Any = con;
    let nodes = match any.downcast_mut::<redis::cluster_async::ClusterConnection>() {
        Some(cluster) => Some(primaries(
            cluster
                .route_command(
                    cluster_slots(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                )
                .await?,
        )?),
        None => None,
    };
    let mut deleted = 0;
    for node in targets(nodes) {
        let mut cursor = 0u64;
        loop {
            let cmd = scan(cursor, pattern);
            let reply = match &node {
                Some((host, port)) => {
                    let any: &mut dyn Any = con;
                    match any.downcast_mut::<redis::cluster_async::ClusterConnection>() {
                        Some(cluster) => {
                            cluster.route_command(cmd, by_address(host, *port)).await?
                        }
                        None => con.req_packed_command(&cmd).await?,
                    }
                }
                None => con.req_packed_command(&cmd).await?,
            };
            let (next, keys) = parse_scan(&reply)?;
            if !keys.is_empty() {
                deleted += Delete {
                    keys,
                    hold: DEFAULT_HOLD,
                }
                .run_async(con)
                .await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(deleted)
}

fn targets(nodes: Option<BTreeSet<(String, u16)>>) -> Vec<Option<(String, u16)>> {
    match nodes {
        Some(nodes) => nodes.into_iter().map(Some).collect(),
        None => vec![None],
    }
}

fn cluster_slots() -> Cmd {
    let mut cmd = Cmd::new();
    cmd.arg("CLUSTER").arg("SLOTS");
    cmd
}

fn by_address(host: &str, port: u16) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port,
    })
}

fn scan(cursor: u64, pattern: &KeyPattern) -> Cmd {
    let mut cmd = Cmd::new();
    cmd.arg("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern.as_str())
        .arg("COUNT")
        .arg(SCAN_COUNT)
        .arg("TYPE")
        .arg("string");
    cmd
}

/// The primaries' addresses from a `CLUSTER SLOTS` reply.
fn primaries(v: Value) -> Result<BTreeSet<(String, u16)>> {
    let bad = |v: &Value| Error::unexpected("CLUSTER SLOTS", v);
    let Value::Array(ranges) = &v else {
        return Err(bad(&v));
    };
    let mut out = BTreeSet::new();
    for r in ranges {
        let Value::Array(items) = r else {
            return Err(bad(r));
        };
        let Some(Value::Array(primary)) = items.get(2) else {
            return Err(bad(r));
        };
        let host = match primary.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => return Err(bad(r)),
        };
        let port = match primary.get(1) {
            Some(Value::Int(p)) => u16::try_from(*p).map_err(|_| bad(r))?,
            _ => return Err(bad(r)),
        };
        out.insert((host, port));
    }
    Ok(out)
}

fn parse_scan(v: &Value) -> Result<(u64, Vec<String>)> {
    let bad = || Error::unexpected("SCAN", v);
    let Value::Array(parts) = v else {
        return Err(bad());
    };
    let cursor = match parts.first() {
        Some(Value::BulkString(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?,
        Some(Value::Int(n)) => u64::try_from(*n).map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    let keys = match parts.get(1) {
        Some(Value::Array(keys)) => keys
            .iter()
            .filter_map(|k| match k {
                Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
                _ => None,
            })
            // Fill leases are strings too (`<key>:#lease` when the key has a
            // hash tag); deleting one would lift an invalidation's hold. A
            // user value cannot end so: `#` is escaped in key parts.
            .filter(|k: &String| !k.ends_with(LEASE_SUFFIX))
            .collect(),
        _ => return Err(bad()),
    };
    Ok((cursor, keys))
}

/// Invalidates the keys one `SCAN` batch found (pipelined; per slot on a
/// Cluster).
struct Delete {
    keys: Vec<String>,
    hold: Duration,
}

impl Operation for Delete {
    type Output = usize;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        for k in &self.keys {
            push_invalidate(plan, k, self.hold)?;
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<usize>> {
        let mut n = 0;
        for _ in &self.keys {
            if replies.next::<i64>("the invalidate script")? > 0 {
                n += 1;
            }
        }
        Ok(Step::Done(n))
    }
}
