//! Server introspection: `INFO`, `SLOWLOG GET` and `LATENCY LATEST` as
//! typed values, from every primary.
//!
//! Each is an [`Operation`]: one command per node, sent once to a
//! standalone server and once to each primary of a Cluster (one round trip;
//! the Cluster clients send to the nodes concurrently or in turn), so one
//! value runs on both executors and both topologies. The output is one
//! entry per [`Node`].
//!
//! ```no_run
//! # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
//! use redis_state::prelude::*;
//! use redis_state::monitor;
//! for (node, info) in monitor::info().run(con)? {
//!     println!("{node}: {:?} bytes used", info.memory.used_memory);
//! }
//! for (node, entries) in monitor::slowlog(10).run(con)? {
//!     for e in entries {
//!         println!("{node}: {} us {:?}", e.duration_us, e.args);
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod backlog;
mod info;
pub mod stats;

pub use info::{
    ClientsSection, CommandStat, KeyspaceDb, MAX_INFO_BYTES, MemorySection, PersistenceSection,
    ReplicaInfo, ReplicationSection, ServerInfo, ServerSection, StatsSection,
};

use redis::Value;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::op::{Node, Operation, Plan, Replies, Step};

/// Text of a bulk or simple string reply; `None` for anything else.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

/// Runs `decode` on each node's reply of the next every-primary command.
fn per_node<T>(
    replies: &mut Replies,
    context: &'static str,
    decode: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<(Node, T)>> {
    let mut out: Vec<(Node, T)> = replies
        .next_per_node()?
        .into_iter()
        .map(|(node, v)| match decode(&v) {
            Some(t) => Ok((node, t)),
            None => Err(Error::unexpected(context, &v)),
        })
        .collect::<Result<_>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// `INFO` of every primary; see [`info`].
#[derive(Debug, Clone)]
pub struct Info {
    sections: Vec<String>,
}

/// `INFO all` on every primary, parsed into [`ServerInfo`] (one round trip).
/// Output sorted by node.
pub fn info() -> Info {
    Info {
        sections: vec!["all".to_owned()],
    }
}

impl Info {
    /// Asks only for these sections (`INFO memory keyspace`; several
    /// sections in one call need Redis 7). The others are left empty.
    pub fn sections<S: AsRef<str>>(mut self, sections: &[S]) -> Self {
        self.sections = sections.iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }
}

impl Operation for Info {
    type Output = Vec<(Node, ServerInfo)>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let cmd = plan.every_primary("INFO");
        for s in &self.sections {
            cmd.arg(s);
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        per_node(replies, "INFO", |v| text(v).map(|t| ServerInfo::parse(&t))).map(Step::Done)
    }
}

/// One `SLOWLOG GET` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SlowlogEntry {
    /// The entry's id (increasing per node).
    pub id: i64,
    /// When the command ran, Unix seconds.
    pub at_unix_secs: i64,
    /// How long it ran, microseconds.
    pub duration_us: i64,
    /// The command and its arguments (the server shortens long ones).
    pub args: Vec<String>,
    /// The client's address (Redis 4+).
    pub client_addr: Option<String>,
    /// The client's name (Redis 4+), when it set one.
    pub client_name: Option<String>,
}

impl SlowlogEntry {
    fn decode(v: &Value) -> Option<SlowlogEntry> {
        let Value::Array(items) = v else { return None };
        let args = match items.get(3)? {
            Value::Array(a) => a.iter().filter_map(text).collect(),
            _ => return None,
        };
        Some(SlowlogEntry {
            id: int(items.first()?)?,
            at_unix_secs: int(items.get(1)?)?,
            duration_us: int(items.get(2)?)?,
            args,
            client_addr: items.get(4).and_then(text).filter(|s| !s.is_empty()),
            client_name: items.get(5).and_then(text).filter(|s| !s.is_empty()),
        })
    }
}

/// `SLOWLOG GET` of every primary; see [`slowlog`].
#[derive(Debug, Clone)]
pub struct Slowlog {
    count: usize,
}

/// The newest `count` (at most 1024) slow log entries of every primary
/// (`SLOWLOG GET count`, one round trip), newest first per node. Output
/// sorted by node.
pub fn slowlog(count: usize) -> Slowlog {
    Slowlog {
        count: count.min(1024),
    }
}

impl Operation for Slowlog {
    type Output = Vec<(Node, Vec<SlowlogEntry>)>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.every_primary("SLOWLOG").arg("GET").arg(self.count);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        per_node(replies, "SLOWLOG GET", |v| match v {
            Value::Array(entries) => entries.iter().map(SlowlogEntry::decode).collect(),
            Value::Nil => Some(Vec::new()),
            _ => None,
        })
        .map(Step::Done)
    }
}

/// One `LATENCY LATEST` event.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LatencyEvent {
    /// The event (`command`, `fast-command`, `fork`, `expire-cycle`, ...).
    pub event: String,
    /// When the latest spike happened, Unix seconds.
    pub at_unix_secs: i64,
    /// The latest spike, milliseconds.
    pub latest_ms: i64,
    /// The largest spike since the server started or was reset, milliseconds.
    pub max_ms: i64,
}

impl LatencyEvent {
    fn decode(v: &Value) -> Option<LatencyEvent> {
        let Value::Array(items) = v else { return None };
        Some(LatencyEvent {
            event: text(items.first()?)?,
            at_unix_secs: int(items.get(1)?)?,
            latest_ms: int(items.get(2)?)?,
            max_ms: int(items.get(3)?)?,
        })
    }
}

/// `LATENCY LATEST` of every primary; see [`latency_latest`].
#[derive(Debug, Clone, Default)]
pub struct LatencyLatest;

/// The latest latency spike of each event on every primary (`LATENCY
/// LATEST`, one round trip; empty unless `latency-monitor-threshold` is
/// set). Output sorted by node.
pub fn latency_latest() -> LatencyLatest {
    LatencyLatest
}

impl Operation for LatencyLatest {
    type Output = Vec<(Node, Vec<LatencyEvent>)>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.every_primary("LATENCY").arg("LATEST");
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        per_node(replies, "LATENCY LATEST", |v| match v {
            Value::Array(events) => events.iter().map(LatencyEvent::decode).collect(),
            Value::Nil => Some(Vec::new()),
            _ => None,
        })
        .map(Step::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn slowlog_entries_decode_and_odd_ones_are_refused() {
        let v = Value::Array(vec![
            Value::Int(3),
            Value::Int(1_700_000_000),
            Value::Int(120),
            Value::Array(vec![bulk("SET"), bulk("k"), bulk("v")]),
            bulk("127.0.0.1:5000"),
            bulk(""),
        ]);
        let e = SlowlogEntry::decode(&v).expect("entry");
        assert_eq!(e.id, 3);
        assert_eq!(e.duration_us, 120);
        assert_eq!(e.args, ["SET", "k", "v"]);
        assert_eq!(e.client_addr.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(e.client_name, None);
        // Redis 2.x/3.x entries have no client fields.
        let old = Value::Array(vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(3),
            Value::Array(vec![]),
        ]);
        assert_eq!(
            SlowlogEntry::decode(&old).map(|e| e.client_addr),
            Some(None)
        );
        for bad in [
            Value::Nil,
            Value::Int(1),
            Value::Array(vec![]),
            Value::Array(vec![
                bulk("x"),
                Value::Int(1),
                Value::Int(1),
                Value::Array(vec![]),
            ]),
            Value::Array(vec![
                Value::Int(1),
                Value::Int(1),
                Value::Int(1),
                bulk("SET"),
            ]),
        ] {
            assert_eq!(SlowlogEntry::decode(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn latency_events_decode_and_odd_ones_are_refused() {
        let v = Value::Array(vec![
            bulk("command"),
            Value::Int(1_700_000_000),
            Value::Int(250),
            Value::Int(300),
        ]);
        let e = LatencyEvent::decode(&v).expect("event");
        assert_eq!(
            (e.event.as_str(), e.latest_ms, e.max_ms),
            ("command", 250, 300)
        );
        for bad in [Value::Nil, Value::Array(vec![bulk("command")])] {
            assert_eq!(LatencyEvent::decode(&bad), None);
        }
    }
}
