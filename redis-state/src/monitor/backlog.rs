//! Backlogs of streams and job queues, for the people who run them: what a
//! stream's consumer groups have not processed, what each consumer holds,
//! the dead letters with their errors, and replaying them.
//!
//! These read streams and queues by key and name, whatever their event or
//! job type, so that a tool (the `redis-state` command) can show any of
//! them. Typed code reads the same through [`Group::info`](crate::stream::Group::info)
//! and [`Queue::depth`](crate::queue::Queue::depth).
//!
//! ```no_run
//! # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
//! use redis_state::prelude::*;
//! use redis_state::monitor::backlog;
//! let s = backlog::stream_info("{orders}:events").run(con)?;
//! for g in &s.groups {
//!     println!("{}: {} pending, lag {:?}", g.name, g.pending, g.lag);
//! }
//! for d in backlog::stream_dead("{orders}:events", 10).run(con)? {
//!     println!("{} failed: {}", d.origin, d.error);
//! }
//! # Ok(()) }
//! ```

use std::time::Duration;

use redis::Value;
use serde::Serialize;

use crate::driver::{Blocking, Io, block_on};
use crate::error::{Error, Result};
use crate::exec::SyncExecutor;
use crate::op::{Operation, Plan, Replies, Step};
use crate::queue::{QueueDepth, depth_of};
use crate::script::Script;

static REPLAY_JOBS: Script = Script::new(
    "redis_state.monitor.replay_jobs",
    include_str!("lua/replay_jobs.lua"),
);

fn text(v: &Value) -> Option<String> {
    super::text(v)
}

fn num(v: &Value) -> Option<u64> {
    super::int(v).and_then(|i| u64::try_from(i).ok())
}

/// The fields of an `XINFO` reply item: RESP2 flat array or RESP3 map.
fn pairs(v: &Value) -> Option<Vec<(String, &Value)>> {
    match v {
        Value::Array(items) => items
            .chunks(2)
            .map(|c| Some((text(c.first()?)?, c.get(1)?)))
            .collect(),
        Value::Map(kv) => kv.iter().map(|(k, v)| Some((text(k)?, v))).collect(),
        _ => None,
    }
}

fn field<'a>(p: &[(String, &'a Value)], name: &str) -> Option<&'a Value> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(ms(*d))
}

fn ser_opt_ms<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&ms(*d)),
        None => s.serialize_none(),
    }
}

// ---------------------------------------------------------------------------
// Streams

/// A consumer group of a stream, as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct GroupInfo {
    /// The group name.
    pub name: String,
    /// Its consumers.
    pub consumers: u64,
    /// Entries delivered to it and not acknowledged.
    pub pending: u64,
    /// The last entry delivered to it.
    pub last_delivered_id: String,
    /// Entries it has not read yet (`lag` of `XINFO GROUPS`); `None` when
    /// the server cannot tell (entries deleted in between, or a server
    /// older than Redis 7).
    pub lag: Option<u64>,
    /// How long the oldest pending entry has waited since it was last
    /// delivered; `None` when nothing is pending.
    #[serde(rename = "oldest_pending_idle_ms", serialize_with = "ser_opt_ms")]
    pub oldest_pending_idle: Option<Duration>,
}

/// A stream's length, groups and dead letters; see [`stream_info`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StreamInfo {
    /// The stream key.
    pub key: String,
    /// Entries in the stream.
    pub length: u64,
    /// Its consumer groups, by name.
    pub groups: Vec<GroupInfo>,
    /// Entries in its dead-letter stream (`<key>:dead`).
    pub dead_letters: u64,
}

/// The length, consumer groups (pending, lag, the oldest pending entry's
/// idle time) and dead letters of the stream at `key`: `XLEN`, `XINFO
/// GROUPS` and `XLEN` of the dead-letter stream, then one `XPENDING … - + 1`
/// per group with entries pending. A missing stream has length 0 and no
/// group. With feature `metrics`, sets each group's gauges.
pub fn stream_info(key: &str) -> StreamInfoOp {
    StreamInfoOp {
        key: key.to_owned(),
        info: None,
    }
}

/// See [`stream_info`].
#[derive(Debug)]
pub struct StreamInfoOp {
    key: String,
    info: Option<StreamInfo>,
}

fn group_info(v: &Value) -> Option<GroupInfo> {
    let p = pairs(v)?;
    Some(GroupInfo {
        name: text(field(&p, "name")?)?,
        consumers: num(field(&p, "consumers")?)?,
        pending: num(field(&p, "pending")?)?,
        last_delivered_id: field(&p, "last-delivered-id")
            .and_then(text)
            .unwrap_or_default(),
        lag: field(&p, "lag").and_then(num),
        oldest_pending_idle: None,
    })
}

/// `XPENDING key group - + n` entries: id, consumer, idle ms, deliveries.
fn pending_entries(v: &Value) -> Option<Vec<PendingEntry>> {
    let Value::Array(items) = v else {
        return None;
    };
    items
        .iter()
        .map(|item| {
            let Value::Array(e) = item else {
                return None;
            };
            Some(PendingEntry {
                id: text(e.first()?)?,
                consumer: text(e.get(1)?)?,
                idle: Duration::from_millis(num(e.get(2)?)?),
                deliveries: num(e.get(3)?)?,
            })
        })
        .collect()
}

impl Operation for StreamInfoOp {
    type Output = StreamInfo;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match &self.info {
            None => {
                plan.cmd("XLEN", &self.key);
                plan.cmd_routed("XINFO", &self.key)
                    .arg("GROUPS")
                    .arg(&self.key);
                plan.cmd("XLEN", format!("{}:dead", self.key));
            }
            Some(info) => {
                for g in info.groups.iter().filter(|g| g.pending > 0) {
                    plan.cmd("XPENDING", &self.key)
                        .arg(&g.name)
                        .arg("-")
                        .arg("+")
                        .arg(1);
                }
            }
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<StreamInfo>> {
        let Some(info) = &mut self.info else {
            let length = replies.next("XLEN")?;
            let groups = match replies.next_raw()? {
                // `ERR no such key`: no stream, no group.
                Value::ServerError(e) if e.details().is_some_and(|d| d.contains("no such key")) => {
                    Vec::new()
                }
                Value::ServerError(e) => {
                    return Err(Error::Server {
                        operation: "XINFO GROUPS".to_owned(),
                        keys: vec![self.key.clone()],
                        error: e,
                    });
                }
                Value::Array(items) => items
                    .iter()
                    .map(|g| group_info(g).ok_or_else(|| Error::unexpected("XINFO GROUPS", g)))
                    .collect::<Result<Vec<_>>>()?,
                other => return Err(Error::unexpected("XINFO GROUPS", &other)),
            };
            let dead_letters = replies.next("XLEN")?;
            let info = StreamInfo {
                key: self.key.clone(),
                length,
                groups,
                dead_letters,
            };
            let again = info.groups.iter().any(|g| g.pending > 0);
            self.info = Some(info);
            return Ok(if again {
                Step::Again
            } else {
                Step::Done(self.finish())
            });
        };
        for g in info.groups.iter_mut().filter(|g| g.pending > 0) {
            let v = replies.next_value()?;
            let first = pending_entries(&v).ok_or_else(|| Error::unexpected("XPENDING", &v))?;
            g.oldest_pending_idle = first.first().map(|e| e.idle);
        }
        Ok(Step::Done(self.finish()))
    }
}

impl StreamInfoOp {
    fn finish(&mut self) -> StreamInfo {
        let mut info = self.info.take().unwrap_or_else(|| StreamInfo {
            key: self.key.clone(),
            length: 0,
            groups: Vec::new(),
            dead_letters: 0,
        });
        info.groups.sort_by(|a, b| a.name.cmp(&b.name));
        for g in &info.groups {
            crate::observe::stream_group(&info.key, &g.name, g.pending, g.lag);
        }
        info
    }
}

/// A consumer of a group, as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConsumerInfo {
    /// The consumer name.
    pub name: String,
    /// Entries delivered to it and not acknowledged.
    pub pending: u64,
    /// Since its last read or claim.
    #[serde(rename = "idle_ms", serialize_with = "ser_ms")]
    pub idle: Duration,
}

/// An entry delivered and not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PendingEntry {
    /// The entry id.
    pub id: String,
    /// The consumer holding it.
    pub consumer: String,
    /// Since it was last delivered.
    #[serde(rename = "idle_ms", serialize_with = "ser_ms")]
    pub idle: Duration,
    /// Times it was delivered.
    pub deliveries: u64,
}

/// What a group holds; see [`stream_pending`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct GroupPending {
    /// Each consumer with its pending count and idle time.
    pub consumers: Vec<ConsumerInfo>,
    /// The oldest pending entries (at most the count asked for).
    pub entries: Vec<PendingEntry>,
}

/// The consumers of group `group` of stream `key` and its oldest `count`
/// pending entries (consumer, idle time, delivery count): `XINFO
/// CONSUMERS` and `XPENDING … - + count`, one round trip. A missing group
/// is [`Error::Server`] (`NOGROUP`).
pub fn stream_pending(key: &str, group: &str, count: usize) -> StreamPending {
    StreamPending {
        key: key.to_owned(),
        group: group.to_owned(),
        count,
    }
}

/// See [`stream_pending`].
#[derive(Debug)]
pub struct StreamPending {
    key: String,
    group: String,
    count: usize,
}

impl Operation for StreamPending {
    type Output = GroupPending;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.cmd_routed("XINFO", &self.key)
            .arg("CONSUMERS")
            .arg(&self.key)
            .arg(&self.group);
        plan.cmd("XPENDING", &self.key)
            .arg(&self.group)
            .arg("-")
            .arg("+")
            .arg(self.count.max(1));
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<GroupPending>> {
        let v = replies.next_value()?;
        let bad = || Error::unexpected("XINFO CONSUMERS", &v);
        let Value::Array(items) = &v else {
            return Err(bad());
        };
        let consumers = items
            .iter()
            .map(|c| {
                let p = pairs(c)?;
                Some(ConsumerInfo {
                    name: text(field(&p, "name")?)?,
                    pending: num(field(&p, "pending")?)?,
                    idle: Duration::from_millis(num(field(&p, "idle")?)?),
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        let v = replies.next_value()?;
        let entries = pending_entries(&v).ok_or_else(|| Error::unexpected("XPENDING", &v))?;
        Ok(Step::Done(GroupPending { consumers, entries }))
    }
}

/// An entry of a stream's dead-letter stream, as a consumer wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    /// The entry's id in the stream it came from.
    pub origin: String,
    /// The group that gave up on it.
    pub group: String,
    /// The handler's (or the decoder's) last error.
    pub error: String,
    /// Handler attempts made.
    pub attempts: u64,
    /// Times it was delivered.
    pub deliveries: u64,
    /// The event's own fields, as stored.
    pub fields: Vec<(String, String)>,
}

const META: [&str; 5] = ["origin", "group", "error", "attempts", "deliveries"];

fn dead_letter(id: String, raw: &[(Vec<u8>, Vec<u8>)]) -> DeadLetter {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    // The consumer writes the five bookkeeping fields first, then the
    // event's own (which may reuse those names).
    let meta = raw
        .iter()
        .zip(META)
        .take_while(|((k, _), name)| k == name.as_bytes())
        .count();
    let get = |i: usize| raw.get(i).filter(|_| i < meta).map(|(_, v)| s(v));
    DeadLetter {
        id,
        origin: get(0).unwrap_or_default(),
        group: get(1).unwrap_or_default(),
        error: get(2).unwrap_or_default(),
        attempts: get(3).and_then(|v| v.parse().ok()).unwrap_or(0),
        deliveries: get(4).and_then(|v| v.parse().ok()).unwrap_or(0),
        fields: raw[meta..].iter().map(|(k, v)| (s(k), s(v))).collect(),
    }
}

/// The oldest `count` dead letters of the stream at `key` (`XRANGE
/// <key>:dead - + COUNT count`).
pub fn stream_dead(key: &str, count: usize) -> StreamDead {
    StreamDead {
        dead: format!("{key}:dead"),
        count,
    }
}

/// See [`stream_dead`].
#[derive(Debug)]
pub struct StreamDead {
    dead: String,
    count: usize,
}

impl Operation for StreamDead {
    type Output = Vec<DeadLetter>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.cmd("XRANGE", &self.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(self.count.max(1));
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Vec<DeadLetter>>> {
        let entries = crate::stream::entry_list(&replies.next_value()?)?;
        Ok(Step::Done(
            entries
                .into_iter()
                .map(|(id, f)| dead_letter(id, &f))
                .collect(),
        ))
    }
}

/// One dead letter replayed: its dead-letter id and its new id in the
/// stream (`None` in a dry run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Replayed {
    /// Its id in the dead-letter stream (deleted there once re-added).
    pub dead_id: String,
    /// The entry it was in the stream before.
    pub origin: String,
    /// Its new id in the stream; `None` in a dry run.
    pub new_id: Option<String>,
}

/// Moves the oldest `count` dead letters of the stream at `key` back to
/// the stream, their own fields only (the bookkeeping fields dropped), so
/// that the groups read them again as new entries; `dry_run` lists what
/// would move and changes nothing. Each is `XADD`ed (no trimming: the next
/// add trims), and only once that succeeded `XDEL`eted from the dead-letter
/// stream: a failure between leaves a letter in both places, never in
/// neither.
pub async fn stream_replay<I: Io>(
    io: &mut I,
    key: &str,
    count: usize,
    dry_run: bool,
) -> Result<Vec<Replayed>> {
    {
        let letters = io.run(stream_dead(key, count)).await?;
        if dry_run {
            return Ok(letters
                .into_iter()
                .map(|d| Replayed {
                    dead_id: d.id,
                    origin: d.origin,
                    new_id: None,
                })
                .collect());
        }
        let mut out = Vec::with_capacity(letters.len());
        for d in letters {
            let mut add = crate::op::command::<String>("XADD", key).arg("*");
            for (f, v) in &d.fields {
                add = add.arg(f).arg(v);
            }
            let new_id = if d.fields.is_empty() {
                // An entry needs a field; a letter without its own keeps its
                // origin.
                io.run(add.arg("origin").arg(&d.origin)).await?
            } else {
                io.run(add).await?
            };
            io.run(crate::op::command::<u64>("XDEL", format!("{key}:dead")).arg(&d.id))
                .await?;
            out.push(Replayed {
                dead_id: d.id,
                origin: d.origin,
                new_id: Some(new_id),
            });
        }
        Ok(out)
    }
}

/// [`stream_replay`] on a blocking connection.
pub fn stream_replay_blocking<C: SyncExecutor + ?Sized>(
    con: &mut C,
    key: &str,
    count: usize,
    dry_run: bool,
) -> Result<Vec<Replayed>> {
    block_on(stream_replay(&mut Blocking::new(con), key, count, dry_run))
}

// ---------------------------------------------------------------------------
// Job queues

/// A queue's name and depth; see [`queues`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueInfo {
    /// The queue name.
    pub name: String,
    /// Its jobs by state, and its lag.
    #[serde(flatten)]
    pub depth: QueueDepth,
}

/// The names of the job queues on every primary (the keys
/// `queue:{<name>}:seq`, scanned `count` at a time), sorted.
pub async fn queue_names<I: Io>(io: &mut I, count: usize) -> Result<Vec<String>> {
    let mut names = std::collections::BTreeSet::new();
    super::stats::scan_each(io, "queue:{*}:seq", count, async |_, _, keys| {
        for k in keys {
            if let Some(name) = k
                .strip_prefix("queue:{")
                .and_then(|r| r.strip_suffix("}:seq"))
            {
                names.insert(name.to_owned());
            }
        }
        Ok(true)
    })
    .await?;
    Ok(names.into_iter().collect())
}

/// Every job queue with its depth.
pub async fn queues<I: Io>(io: &mut I, count: usize) -> Result<Vec<QueueInfo>> {
    let mut out = Vec::new();
    for name in queue_names(io, count).await? {
        let depth = io.run(depth_of(&name)).await?;
        out.push(QueueInfo { name, depth });
    }
    Ok(out)
}

/// The keys of the streams on every primary (dead-letter streams,
/// `…:dead`, left out), sorted.
pub async fn stream_keys<I: Io>(io: &mut I, pattern: &str, count: usize) -> Result<Vec<String>> {
    let mut keys = std::collections::BTreeSet::new();
    super::stats::scan_each_of_type(io, pattern, Some("stream"), count, async |_, _, found| {
        keys.extend(found.into_iter().filter(|k| !k.ends_with(":dead")));
        Ok(true)
    })
    .await?;
    Ok(keys.into_iter().collect())
}

/// A job under a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ActiveJob {
    /// The job id.
    pub id: String,
    /// The attempt running (1 for the first).
    pub attempt: u64,
    /// Milliseconds until its lease ends, by the server's clock; negative
    /// when it ran out (the next take gives the job to another worker).
    pub lease_left_ms: i64,
}

/// The `count` jobs of queue `name` whose lease ends first: `ZRANGE
/// <q>:active … WITHSCORES`, then `HMGET` of their attempts (`<id>:a` in
/// `<q>:jobs`) and `TIME`.
pub fn queue_active(name: &str, count: usize) -> QueueActive {
    QueueActive {
        base: queue_base(name),
        count,
        ids: None,
    }
}

/// See [`queue_active`].
#[derive(Debug)]
pub struct QueueActive {
    base: std::result::Result<String, String>,
    count: usize,
    ids: Option<Vec<(String, f64)>>,
}

impl Operation for QueueActive {
    type Output = Vec<ActiveJob>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let base = self.base.as_ref().map_err(|n| bad_queue_name(n))?;
        match &self.ids {
            None => {
                plan.cmd("ZRANGE", format!("{base}:active"))
                    .arg(0)
                    .arg(self.count.max(1) - 1)
                    .arg("WITHSCORES");
            }
            Some(ids) => {
                let cmd = plan.cmd("HMGET", format!("{base}:jobs"));
                for (id, _) in ids {
                    cmd.arg(format!("{id}:a"));
                }
                plan.script(&crate::queue::SERVER_TIME, &[format!("{base}:seq")])?;
            }
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Vec<ActiveJob>>> {
        let Some(ids) = &self.ids else {
            let ids: Vec<(String, f64)> = replies.next("ZRANGE WITHSCORES")?;
            if ids.is_empty() {
                return Ok(Step::Done(Vec::new()));
            }
            self.ids = Some(ids);
            return Ok(Step::Again);
        };
        let attempts: Vec<Option<u64>> = replies.next("HMGET")?;
        let now = crate::queue::time_ms(&replies.next_value()?)? as u64;
        Ok(Step::Done(
            ids.iter()
                .zip(attempts)
                .map(|((id, end), a)| ActiveJob {
                    id: id.clone(),
                    attempt: a.unwrap_or(0),
                    lease_left_ms: *end as i64 - now as i64,
                })
                .collect(),
        ))
    }
}

/// Moves the oldest `count` dead jobs of queue `name` back to ready, their
/// attempts reset and their errors cleared, in one script; the output is
/// the ids moved. A dead job whose payload is gone stays dead.
pub fn queue_replay(name: &str, count: usize) -> QueueReplay {
    QueueReplay {
        keys: queue_base(name)
            .map(|base| ["dead", "ready", "jobs", "notify"].map(|p| format!("{base}:{p}"))),
        count,
    }
}

/// `queue:{<name>}`, or the name when it cannot be one.
fn queue_base(name: &str) -> std::result::Result<String, String> {
    if name.is_empty() || name.contains(['{', '}']) {
        Err(name.to_owned())
    } else {
        Ok(format!("queue:{{{name}}}"))
    }
}

fn bad_queue_name(name: &str) -> Error {
    Error::InvalidKeyPart {
        what: "queue name",
        value: name.to_owned(),
        reason: "must be non-empty and hold no brace",
    }
}

/// See [`queue_replay`].
#[derive(Debug)]
pub struct QueueReplay {
    keys: std::result::Result<[String; 4], String>,
    count: usize,
}

impl Operation for QueueReplay {
    type Output = Vec<String>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let keys = self.keys.as_ref().map_err(|n| bad_queue_name(n))?;
        plan.script(&REPLAY_JOBS, keys)?.arg(self.count.max(1));
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Vec<String>>> {
        replies.next("the queue replay script").map(Step::Done)
    }
}
