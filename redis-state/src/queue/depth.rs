//! How deep a job queue is and how late its work runs: [`Queue::depth`]
//! and, for a queue known only by name (operators' tools),
//! [`depth_of`].

use std::time::Duration;

use redis::Value;
use serde::Serialize;

use super::Queue;
use crate::error::{Error, Result};
use crate::op::{Operation, Plan, Replies, Step};
use crate::script::Script;

/// The server's `TIME` on the node of its key: a Cluster pipeline routes
/// no keyless command, so the clock is read by a script naming a key of the
/// queue.
pub(crate) static SERVER_TIME: Script =
    Script::new("redis_state.queue.server_time", "return redis.call('TIME')");

/// A queue's jobs by state, and its lag; see [`Queue::depth`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueDepth {
    /// Jobs ready to be taken.
    pub ready: u64,
    /// Jobs waiting for their delay or their retry backoff.
    pub delayed: u64,
    /// Jobs taken under a lease (in progress).
    pub active: u64,
    /// Dead jobs kept with their error.
    pub dead: u64,
    /// How long the most overdue job has waited past its due time (a
    /// delayed job) or past its lease's end (a job whose worker died), by
    /// the server's clock. Both move only when a worker takes a job, so a
    /// lag that grows means no worker is taking jobs. Ready jobs carry no
    /// time; their backlog is [`ready`](Self::ready).
    #[serde(rename = "lag_ms", serialize_with = "millis")]
    pub lag: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Queue<T> {
    /// The queue's [`QueueDepth`]: one pipeline of four `ZCARD`s, the
    /// earliest delayed job and lease end, and the server's `TIME`, on the
    /// queue's node. With feature `metrics`, sets the gauges
    /// `redis_state_queue_jobs` and `redis_state_queue_lag_seconds` (see
    /// [`observe`](crate::observe)).
    pub fn depth(&self) -> Depth {
        depth_of(self.name())
    }
}

/// [`Queue::depth`] of the queue named `name`, whatever its job type.
pub fn depth_of(name: &str) -> Depth {
    let base = if name.is_empty() || name.contains(['{', '}']) {
        Err(name.to_owned())
    } else {
        Ok(format!("queue:{{{name}}}"))
    };
    Depth {
        queue: name.to_owned(),
        base,
    }
}

/// See [`Queue::depth`].
#[derive(Debug, Clone)]
pub struct Depth {
    queue: String,
    base: std::result::Result<String, String>,
}

/// The score of the first member of a `ZRANGE … WITHSCORES` reply (RESP2
/// flat or RESP3 pairs); `None` when the set is empty.
fn first_score(v: &Value) -> Result<Option<f64>> {
    let bad = || Error::unexpected("ZRANGE WITHSCORES", v);
    let Value::Array(items) = v else {
        return Err(bad());
    };
    let score = match items.as_slice() {
        [] => return Ok(None),
        [Value::Array(pair), ..] => pair.get(1),
        [_, score, ..] => Some(score),
        _ => None,
    };
    match score {
        Some(Value::Double(d)) => Ok(Some(*d)),
        Some(Value::BulkString(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// `TIME` in milliseconds.
pub(crate) fn time_ms(v: &Value) -> Result<f64> {
    let bad = || Error::unexpected("TIME", v);
    let Value::Array(parts) = v else {
        return Err(bad());
    };
    let num = |i: usize| -> Result<f64> {
        match parts.get(i) {
            Some(Value::BulkString(b)) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad),
            Some(Value::Int(n)) => Ok(*n as f64),
            _ => Err(bad()),
        }
    };
    Ok(num(0)? * 1000.0 + (num(1)? / 1000.0).floor())
}

impl Operation for Depth {
    type Output = QueueDepth;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let base = self.base.as_ref().map_err(|name| Error::InvalidKeyPart {
            what: "queue name",
            value: name.clone(),
            reason: "must be non-empty and hold no brace",
        })?;
        for part in ["ready", "delayed", "active", "dead"] {
            plan.cmd("ZCARD", format!("{base}:{part}"));
        }
        for part in ["delayed", "active"] {
            plan.cmd("ZRANGE", format!("{base}:{part}"))
                .arg(0)
                .arg(0)
                .arg("WITHSCORES");
        }
        plan.script(&SERVER_TIME, &[format!("{base}:seq")])?;
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<QueueDepth>> {
        let ready = replies.next("ZCARD")?;
        let delayed = replies.next("ZCARD")?;
        let active = replies.next("ZCARD")?;
        let dead = replies.next("ZCARD")?;
        let due = first_score(&replies.next_value()?)?;
        let lease_end = first_score(&replies.next_value()?)?;
        let now = time_ms(&replies.next_value()?)?;
        let late = [due, lease_end]
            .into_iter()
            .flatten()
            .map(|at| now - at)
            .fold(0.0_f64, f64::max);
        let depth = QueueDepth {
            ready,
            delayed,
            active,
            dead,
            lag: Duration::from_millis(late as u64),
        };
        crate::observe::queue_depth(&self.queue, &depth);
        Ok(Step::Done(depth))
    }
}
