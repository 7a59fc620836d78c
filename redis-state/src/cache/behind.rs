//! Write-behind: the entry is written at once and the write to the source
//! of truth is queued in a Redis stream, drained by [`WriteBehindWorker`]s.
//!
//! # Delivery is at-least-once
//!
//! [`Cache::write_behind`] `XADD`s the write to the type's stream, and only
//! once that succeeded writes the entry: two round trips. Once it returns,
//! the write is in Redis, not in process memory, and survives a crash of the
//! writer. (Like every Redis write, it is as durable as the server's
//! persistence and replication settings.)
//!
//! The two cannot share a pipeline: a pipeline is not atomic, and on a
//! Cluster the queue and the entry live in different slots, sent
//! concurrently. A refused `XADD` (out of memory, a failing node, a key of
//! another type) would still let the entry be written, and the cache would
//! serve a value the source of truth never gets. In two rounds, a refused
//! `XADD` returns its error and writes nothing; a failure of the second
//! round leaves a queued write without an entry (a miss until the source
//! has it). As a transaction's write, the `XADD` is queued between `MULTI`
//! and `EXEC` and the entry is stored after a successful `EXEC` (see
//! [`tx`](crate::tx)): the transaction decides whether the write is queued.
//!
//! Workers read the stream as a consumer group (`XREADGROUP`). An entry is
//! acknowledged and deleted (`XACK`, `XDEL`, one script) only after the
//! handler returned `Ok`. A worker that dies mid-batch leaves its entries
//! pending; any worker of the group claims entries idle for longer than
//! [`WriteBehindWorker::claim_idle`] (`XAUTOCLAIM`), and a worker restarted
//! under the same consumer name first re-reads its own pending entries. A
//! live worker keeps the entries it holds: it resets an entry's idle time
//! before each retry and before the first attempt of each later entry of a
//! batch (the `wb_keep` script: `XCLAIM … JUSTID` while the entry is still
//! pending under its name), so `claim_idle` needs to exceed one handler
//! attempt plus one backoff delay, and an entry another worker claimed
//! meanwhile is left to that worker. So
//! every write reaches the handler at least once, and may reach it more than
//! once (a worker killed after the handler succeeded but before the
//! acknowledgement): **handlers must be idempotent** (an upsert by id, a
//! version check).
//!
//! Entries of one id may be handled out of order when a claimed entry is
//! retried after a newer one; make the source write carry a version or a
//! timestamp if order matters.
//!
//! A handler error is retried in place with exponential backoff and jitter,
//! up to [`WriteBehindWorker::max_attempts`] times; then the entry is moved
//! to the dead-letter stream (`XADD` there, `XACK`, `XDEL` in one script),
//! with its fields plus `origin` (its id), `error` and `attempts`. An entry
//! delivered more than [`WriteBehindWorker::max_deliveries`] times (its
//! workers keep dying on it) is dead-lettered without running the handler
//! again, and so is an entry whose value does not decode.
//!
//! # Keys
//!
//! | key | type | content |
//! |---|---|---|
//! | `<ns>:#wb:{<name>}` | stream | queued writes: fields `id` (escaped id), `key` (entry key), `v` (JSON) |
//! | `<ns>:#wb:{<name>}:dead` | stream | dead letters |
//!
//! `<name>` is the snake_case type name; the braces keep both streams in one
//! Cluster slot.
//!
//! Workers are async (tokio); [`WriteBehindWorker::process_async`] returns after a
//! graceful shutdown: the entry being handled is finished (or left pending if
//! it was waiting to retry), no new entry is read.

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use redis::Value;

use super::handle::Cache;
use super::ops::{Set, id_of};
use super::{Cached, CachedKeyed};
use crate::error::Result;
use crate::exec::AsyncExecutor;
use crate::keys::{IdBuf, IdValue, Namespace};
use crate::op::{Operation, Plan, Replies, Step};

crate::script! {
    /// Acknowledges and deletes an entry, dead-lettering it first (with
    /// its fields, the error and the attempts) when `verdict` is `dead`.
    struct SettleScript {
        name: "redis_state.cache.wb_settle",
        keys: [stream, dead_stream],
        args: [group: &str, entry_id: &str, verdict: &str, error: &str, attempts: u32, ..fields],
        returns: Value,
        lua: include_str!("lua/wb_settle.lua"),
    }
}

crate::script! {
    /// Resets the idle time of an entry still pending under `consumer`.
    struct KeepScript {
        name: "redis_state.cache.wb_keep",
        keys: [stream],
        args: [group: &str, consumer: &str, entry_id: &str],
        returns: i64,
        lua: include_str!("lua/wb_keep.lua"),
    }
}

/// The stream of queued writes of `T` in `ns`.
pub fn stream_key<T: Cached>(ns: Option<&Namespace>) -> String {
    let mut out = String::new();
    crate::keys::write_ns_prefix(ns, T::SCHEMA.key.namespace, &mut out);
    out.push_str("#wb:{");
    out.push_str(T::SCHEMA.name);
    out.push('}');
    out
}

/// The dead-letter stream of `T` in `ns`.
pub fn dead_letter_key<T: Cached>(ns: Option<&Namespace>) -> String {
    let mut s = stream_key::<T>(ns);
    s.push_str(":dead");
    s
}

// ---------------------------------------------------------------------------
// Enqueue

/// Queues a source write, then writes the entry; see
/// [`Cache::write_behind`]. The output is the stream entry id.
///
/// Two round trips: the `XADD` alone, then, only when it succeeded, the
/// entry. A pipeline is not atomic (and on a Cluster the queue and the entry
/// live on different slots, sent concurrently), so the entry cannot ride
/// with the `XADD`: a refused `XADD` would leave an entry the source never
/// gets.
pub struct WriteBehind<T: Cached> {
    /// The entry's store, planned in the second round.
    set: Set<T>,
    /// The stream entry id, once the `XADD` succeeded.
    queued: Option<String>,
}

impl<T: Cached> std::fmt::Debug for WriteBehind<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehind")
            .field("model", &T::SCHEMA.model)
            .field("id", self.set.id())
            .finish_non_exhaustive()
    }
}

const CONTEXT: &str = "a write-behind";

impl<T: Cached> Operation for WriteBehind<T> {
    type Output = String;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if self.queued.is_some() {
            // Second round: the queued write is in Redis, now the entry.
            return self.set.prepare_store(plan, CONTEXT);
        }
        let stream = stream_key::<T>(self.set.ns());
        let id = self.set.id().joined().to_owned();
        let (key, payload) = self.set.queued_write(CONTEXT)?;
        plan.cmd("XADD", stream)
            .arg("*")
            .arg("id")
            .arg(id)
            .arg("key")
            .arg(key)
            .arg("v")
            .arg(payload);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<String>> {
        match self.queued.take() {
            None => {
                // A refused XADD ends the operation here: nothing is cached.
                self.queued = Some(replies.next("XADD")?);
                Ok(Step::Again)
            }
            Some(entry_id) => {
                self.set.complete(replies)?;
                Ok(Step::Done(entry_id))
            }
        }
    }
}

impl<T> Cache<T>
where
    T: Cached + Clone + Send + Sync + 'static,
{
    /// Write-behind: queues the write to the source of truth in the type's
    /// stream, then stores `value` in the cache. Two round trips: the
    /// `XADD`, then (only when it succeeded) the `store` script and one
    /// `tag_add` per tag; a refused `XADD` returns its error and caches
    /// nothing (see the [module docs](self)). A [`WriteBehindWorker`]
    /// performs the source write later, at least once.
    pub fn write_behind<Q: IdValue + ?Sized>(&self, id: &Q, value: &T) -> WriteBehind<T>
    where
        T::Id: std::borrow::Borrow<Q>,
    {
        self.queued(id_of(id), value)
    }

    /// [`Cache::write_behind`] under the value's own id.
    pub fn write_behind_keyed(&self, value: &T) -> WriteBehind<T>
    where
        T: CachedKeyed,
    {
        let mut id = IdBuf::new();
        value.write_id(&mut id);
        self.queued(id, value)
    }

    fn queued(&self, id: IdBuf, value: &T) -> WriteBehind<T> {
        WriteBehind {
            set: Set::new(id, Some(value), 0).in_namespace(self.namespace_ref().cloned()),
            queued: None,
        }
    }
}

// ---------------------------------------------------------------------------
// Shutdown

/// Fires a [`Shutdown`]; see [`shutdown`].
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(std::sync::Arc<tokio::sync::watch::Sender<bool>>);

/// A graceful-shutdown signal for workers; see [`shutdown`].
#[derive(Debug, Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

/// A pair: fire the trigger and every worker holding a clone of the
/// `Shutdown` stops after its current entry.
pub fn shutdown() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    (ShutdownTrigger(std::sync::Arc::new(tx)), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Asks the workers to stop.
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// A signal that never fires.
    pub fn never() -> Shutdown {
        let (tx, rx) = tokio::sync::watch::channel(false);
        // Keep the sender alive for as long as the receiver.
        std::mem::forget(tx);
        Shutdown(rx)
    }

    /// Whether shutdown was asked for.
    pub fn is_fired(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when shutdown is asked for.
    pub async fn fired_async(&mut self) {
        let _ = self.0.wait_for(|fired| *fired).await;
    }
}

// ---------------------------------------------------------------------------
// The worker

/// One queued write, as the handler sees it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QueuedWrite<T> {
    /// The stream entry id.
    pub entry_id: String,
    /// The id, escaped and joined as in keys (`42`, `acme:7`).
    pub id: String,
    /// The cache key.
    pub key: String,
    /// The value to write to the source of truth.
    pub value: T,
    /// 1 for the first try of this delivery, then 2, 3, ...
    pub attempt: u32,
    /// How many times the stream delivered this entry (more than 1 when a
    /// worker died with it).
    pub deliveries: u64,
}

/// What a worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Entries written to the source and acknowledged.
    pub done: u64,
    /// Handler failures that were retried.
    pub retries: u64,
    /// Entries moved to the dead-letter stream.
    pub dead: u64,
    /// Entries claimed from other (dead) consumers.
    pub claimed: u64,
}

/// Drains the write-behind stream of `T`; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct WriteBehindWorker<T> {
    stream: String,
    dead: String,
    group: String,
    consumer: String,
    batch: usize,
    max_attempts: u32,
    max_deliveries: u64,
    backoff: Duration,
    max_backoff: Duration,
    claim_idle: Duration,
    block: Duration,
    _t: PhantomData<fn() -> T>,
}

/// A stream entry: id and field/value pairs.
type RawEntry = (String, Vec<(Vec<u8>, Vec<u8>)>);

impl<T> WriteBehindWorker<T>
where
    T: Cached + Clone + Send + Sync + 'static,
{
    /// A worker for `cache`'s type and namespace, named `consumer` in the
    /// consumer group `redis-state` (give every worker process its own
    /// stable name: a restarted worker re-reads its own pending entries).
    pub fn new(cache: &Cache<T>, consumer: impl Into<String>) -> Self {
        let ns = cache.namespace_ref();
        WriteBehindWorker {
            stream: stream_key::<T>(ns),
            dead: dead_letter_key::<T>(ns),
            group: "redis-state".to_owned(),
            consumer: consumer.into(),
            batch: 16,
            max_attempts: 5,
            max_deliveries: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            claim_idle: Duration::from_secs(30),
            block: Duration::from_millis(250),
            _t: PhantomData,
        }
    }

    /// The consumer group (default `redis-state`).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }
    /// Entries read per `XREADGROUP` / `XAUTOCLAIM` (default 16).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }
    /// Handler tries per delivery before dead-lettering (default 5).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
    /// Deliveries before an entry is dead-lettered unhandled (default 5).
    pub fn max_deliveries(mut self, n: u64) -> Self {
        self.max_deliveries = n.max(1);
        self
    }
    /// First retry delay, doubled per try up to `max` (defaults 100 ms, 5 s).
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = first;
        self.max_backoff = max.max(first);
        self
    }
    /// How long an entry must stay idle (pending, untouched) before another
    /// worker claims it (default 30 s).
    ///
    /// A worker keeps the entry it handles: it resets the entry's idle time
    /// (`XCLAIM … JUSTID` in a script, only while the entry is still
    /// pending under its name) before each retry, and before the first
    /// attempt of each entry after the first of a batch (along with the
    /// settlement of the entry before). So `claim_idle` must exceed **one
    /// handler attempt plus one backoff delay** (at most `max` of
    /// [`backoff`](Self::backoff)), not the whole run of retries nor the
    /// batch. A worker that finds its entry claimed away after a backoff
    /// leaves it to the claimer; a single attempt that outlasts
    /// `claim_idle` can still run concurrently with the claimer's.
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.claim_idle = idle;
        self
    }
    /// How long one `XREADGROUP` blocks (default 250 ms, at most 400 ms so
    /// async connections' default response timeout never fires).
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block.clamp(Duration::from_millis(1), Duration::from_millis(400));
        self
    }

    /// The stream this worker reads.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The dead-letter stream.
    pub fn dead_letter_stream(&self) -> &str {
        &self.dead
    }

    /// Runs until `shutdown` fires, handling each queued write with
    /// `handler`. Returns what it did; a Redis error ends the run (restart
    /// it: nothing is lost).
    pub async fn process_async<C, F, Fut, E>(
        &self,
        con: &mut C,
        shutdown: Shutdown,
        mut handler: F,
    ) -> Result<WorkerStats>
    where
        C: AsyncExecutor + ?Sized,
        F: FnMut(QueuedWrite<T>) -> Fut + Send,
        Fut: Future<Output = std::result::Result<(), E>> + Send,
        E: std::fmt::Display,
    {
        let mut stats = WorkerStats::default();
        self.ensure_group(con).await?;
        let mut own_pending = true;
        while !shutdown.is_fired() {
            let entries: Vec<(RawEntry, u64)> = if own_pending {
                let got = self.read(con, "0", None).await?;
                if got.is_empty() {
                    own_pending = false;
                    continue;
                }
                self.with_deliveries(con, got).await?
            } else {
                let claimed = self.claim(con).await?;
                if claimed.is_empty() {
                    self.read(con, ">", Some(self.block))
                        .await?
                        .into_iter()
                        .map(|e| (e, 1))
                        .collect()
                } else {
                    stats.claimed += claimed.len() as u64;
                    self.with_deliveries(con, claimed).await?
                }
            };
            // The first entry was just delivered (its idle time is ~0); each
            // later one is kept (its idle time reset) along with the
            // settlement of the one before, or before its first attempt.
            let mut kept = Kept::Yes;
            let mut entries = entries.into_iter().peekable();
            while let Some((entry, deliveries)) = entries.next() {
                if shutdown.is_fired() {
                    break;
                }
                let next = entries.peek().map(|((id, _), _)| id.clone());
                let job = Job {
                    entry,
                    deliveries,
                    kept,
                    next: next.as_deref(),
                };
                kept = self
                    .handle(con, &shutdown, &mut handler, job, &mut stats)
                    .await?;
            }
        }
        Ok(stats)
    }

    /// Handles one entry; returns whether the next entry of the batch was
    /// kept along with this one's settlement.
    async fn handle<C, F, Fut, E>(
        &self,
        con: &mut C,
        shutdown: &Shutdown,
        handler: &mut F,
        job: Job<'_>,
        stats: &mut WorkerStats,
    ) -> Result<Kept>
    where
        C: AsyncExecutor + ?Sized,
        F: FnMut(QueuedWrite<T>) -> Fut + Send,
        Fut: Future<Output = std::result::Result<(), E>> + Send,
        E: std::fmt::Display,
    {
        let Job {
            entry: (entry_id, fields),
            deliveries,
            kept,
            next,
        } = job;
        // An entry that waited in the batch may have been claimed by another
        // worker meanwhile: it is that worker's now.
        let ours = match kept {
            Kept::Yes => true,
            Kept::No => false,
            Kept::Unknown => self.keep(con, &entry_id).await?,
        };
        if !ours {
            self.handed_over(&entry_id);
            return Ok(Kept::Unknown);
        }
        let field = |name: &[u8]| {
            fields
                .iter()
                .find(|(f, _)| f == name)
                .map(|(_, v)| v.as_slice())
        };
        let id = String::from_utf8_lossy(field(b"id").unwrap_or_default()).into_owned();
        let key = String::from_utf8_lossy(field(b"key").unwrap_or_default()).into_owned();
        let value = match serde_json::from_slice::<T>(field(b"v").unwrap_or_default()) {
            Ok(v) => v,
            Err(e) => {
                let error = format!(
                    "the queued value does not decode as {}: {e}",
                    T::SCHEMA.model
                );
                log::warn!(target: "redis_state::cache", "dead-lettering {entry_id} of `{}`: {error}", self.stream);
                stats.dead += 1;
                return self
                    .settle(con, &entry_id, &fields, Some((&error, 0)), next)
                    .await;
            }
        };
        if deliveries > self.max_deliveries {
            let error = format!("delivered {deliveries} times (its workers did not finish it)");
            log::warn!(target: "redis_state::cache", "dead-lettering {entry_id} of `{}`: {error}", self.stream);
            stats.dead += 1;
            return self
                .settle(con, &entry_id, &fields, Some((&error, 0)), next)
                .await;
        }
        let mut attempt = 1;
        loop {
            let write = QueuedWrite {
                entry_id: entry_id.clone(),
                id: id.clone(),
                key: key.clone(),
                value: value.clone(),
                attempt,
                deliveries,
            };
            match handler(write).await {
                Ok(()) => {
                    stats.done += 1;
                    return self.settle(con, &entry_id, &fields, None, next).await;
                }
                Err(e) if attempt >= self.max_attempts => {
                    let error = e.to_string();
                    log::warn!(target: "redis_state::cache", "dead-lettering {entry_id} of `{}` after {attempt} attempts: {error}", self.stream);
                    stats.dead += 1;
                    return self
                        .settle(con, &entry_id, &fields, Some((&error, attempt)), next)
                        .await;
                }
                Err(e) => {
                    stats.retries += 1;
                    log::debug!(target: "redis_state::cache", "write-behind {entry_id} of `{}` failed (attempt {attempt}): {e}", self.stream);
                    let delay = self.delay(attempt);
                    let mut sd = shutdown.clone();
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = sd.fired_async() => return Ok(Kept::Unknown), // left pending
                    }
                    // Still pending under this worker: reset its idle time,
                    // so that no other worker claims it during the next
                    // attempt. Taken already (the attempt and the backoff
                    // outlasted `claim_idle`): the other worker has it.
                    if !self.keep(con, &entry_id).await? {
                        self.handed_over(&entry_id);
                        return Ok(Kept::Unknown);
                    }
                    attempt += 1;
                }
            }
        }
    }

    fn handed_over(&self, entry_id: &str) {
        log::debug!(target: "redis_state::cache", "write-behind {entry_id} of `{}` was claimed by another worker; left to it", self.stream);
    }

    /// Resets the idle time of `entry_id` if it is still pending under this
    /// worker; false when another worker claimed it (or it was settled).
    async fn keep<C: AsyncExecutor + ?Sized>(&self, con: &mut C, entry_id: &str) -> Result<bool> {
        KeepEntry {
            stream: &self.stream,
            group: &self.group,
            consumer: &self.consumer,
            entry_id,
        }
        .run_async(con)
        .await
    }

    fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.max_backoff);
        // Full jitter on the upper half, so retries of many workers spread.
        let half = exp / 2;
        half + Duration::from_micros(fastrand::u64(
            0..=u64::try_from(half.as_micros()).unwrap_or(0),
        ))
    }

    async fn ensure_group<C: AsyncExecutor + ?Sized>(&self, con: &mut C) -> Result<()> {
        let r = Raw::new("XGROUP", &self.stream)
            .args([
                "CREATE".as_bytes(),
                self.stream.as_bytes(),
                self.group.as_bytes(),
                b"0",
                b"MKSTREAM",
            ])
            .run_async(con)
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.server_code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn read<C: AsyncExecutor + ?Sized>(
        &self,
        con: &mut C,
        from: &str,
        block: Option<Duration>,
    ) -> Result<Vec<RawEntry>> {
        let count = self.batch.to_string();
        let mut args: Vec<Vec<u8>> = vec![
            b"GROUP".to_vec(),
            self.group.clone().into_bytes(),
            self.consumer.clone().into_bytes(),
            b"COUNT".to_vec(),
            count.into_bytes(),
        ];
        if let Some(b) = block {
            args.push(b"BLOCK".to_vec());
            args.push(b.as_millis().to_string().into_bytes());
        }
        args.push(b"STREAMS".to_vec());
        args.push(self.stream.clone().into_bytes());
        args.push(from.as_bytes().to_vec());
        let v = Raw::new("XREADGROUP", &self.stream)
            .args(args)
            .run_async(con)
            .await?;
        Ok(stream_entries(&v))
    }

    async fn claim<C: AsyncExecutor + ?Sized>(&self, con: &mut C) -> Result<Vec<RawEntry>> {
        // Saturates at 2^53 - 1 ms ("never"): Redis refuses what does not
        // fit its 64-bit integers.
        let idle = self
            .claim_idle
            .as_millis()
            .min(u128::from(crate::random::MAX_MILLIS))
            .to_string();
        let count = self.batch.to_string();
        let v = Raw::new("XAUTOCLAIM", &self.stream)
            .args([
                self.stream.as_bytes(),
                self.group.as_bytes(),
                self.consumer.as_bytes(),
                idle.as_bytes(),
                b"0-0",
                b"COUNT",
                count.as_bytes(),
            ])
            .run_async(con)
            .await?;
        // [next cursor, [entries], [deleted ids]]
        Ok(match &v {
            Value::Array(parts) => parts.get(1).map(entry_list).unwrap_or_default(),
            _ => Vec::new(),
        })
    }

    /// Looks up how often each entry was delivered (`XPENDING` extended form).
    async fn with_deliveries<C: AsyncExecutor + ?Sized>(
        &self,
        con: &mut C,
        entries: Vec<RawEntry>,
    ) -> Result<Vec<(RawEntry, u64)>> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(Vec::new());
        };
        let count = (entries.len() * 2).to_string();
        let v = Raw::new("XPENDING", &self.stream)
            .args([
                self.stream.as_bytes(),
                self.group.as_bytes(),
                first.0.as_bytes(),
                last.0.as_bytes(),
                count.as_bytes(),
                self.consumer.as_bytes(),
            ])
            .run_async(con)
            .await?;
        let mut counts = std::collections::HashMap::new();
        if let Value::Array(rows) = &v {
            for row in rows {
                if let Value::Array(cols) = row
                    && let (Some(id), Some(Value::Int(n))) = (cols.first(), cols.get(3))
                    && let Some(id) = text(id)
                {
                    counts.insert(id, u64::try_from(*n).unwrap_or(1));
                }
            }
        }
        Ok(entries
            .into_iter()
            .map(|e| {
                let n = counts.get(e.0.as_bytes()).copied().unwrap_or(1);
                (e, n)
            })
            .collect())
    }

    /// Acknowledges and deletes `entry_id` (dead-lettering it first when
    /// `dead` says why), and keeps `next` in the same round trip.
    async fn settle<C: AsyncExecutor + ?Sized>(
        &self,
        con: &mut C,
        entry_id: &str,
        fields: &[(Vec<u8>, Vec<u8>)],
        dead: Option<(&str, u32)>,
        next: Option<&str>,
    ) -> Result<Kept> {
        Settle {
            stream: &self.stream,
            dead_stream: &self.dead,
            group: &self.group,
            entry_id,
            fields,
            dead,
            next: next.map(|entry_id| KeepEntry {
                stream: &self.stream,
                group: &self.group,
                consumer: &self.consumer,
                entry_id,
            }),
        }
        .run_async(con)
        .await
    }
}

/// One entry of a batch, as [`WriteBehindWorker::handle`] takes it.
struct Job<'a> {
    entry: RawEntry,
    deliveries: u64,
    /// Whether the entry is known to be still this worker's.
    kept: Kept,
    /// The id of the next entry of the batch, kept with this settlement.
    next: Option<&'a str>,
}

/// Whether an entry is still pending under this worker, with its idle time
/// reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// Yes: just delivered or kept.
    Yes,
    /// No: another worker claimed it (or it was settled).
    No,
    /// Not known: ask before handling it.
    Unknown,
}

/// Resets the idle time of an entry still pending under `consumer`; the
/// output says whether it was.
struct KeepEntry<'a> {
    stream: &'a str,
    group: &'a str,
    consumer: &'a str,
    entry_id: &'a str,
}

impl Operation for KeepEntry<'_> {
    type Output = bool;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        KeepScript::new(self.stream, self.group, self.consumer, self.entry_id).prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        let kept: i64 = replies.next("the wb_keep script")?;
        Ok(Step::Done(kept == 1))
    }
}

struct Settle<'a> {
    stream: &'a str,
    dead_stream: &'a str,
    group: &'a str,
    entry_id: &'a str,
    fields: &'a [(Vec<u8>, Vec<u8>)],
    dead: Option<(&'a str, u32)>,
    /// The next entry of the batch, kept in the same round trip.
    next: Option<KeepEntry<'a>>,
}

impl Operation for Settle<'_> {
    type Output = Kept;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let (verdict, error, attempts) = match self.dead {
            Some((error, attempts)) => ("dead", error, attempts),
            None => ("done", "", 0),
        };
        let mut settle = SettleScript::new(
            self.stream,
            self.dead_stream,
            self.group,
            self.entry_id,
            verdict,
            error,
            attempts,
        );
        if self.dead.is_some() {
            for (f, v) in self.fields {
                settle = settle.fields(&f[..]).fields(&v[..]);
            }
        }
        settle.prepare(plan)?;
        if let Some(next) = &mut self.next {
            next.prepare(plan)?;
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Kept>> {
        replies.next_value()?;
        Ok(Step::Done(match &mut self.next {
            None => Kept::Unknown,
            Some(next) => match next.complete(replies)? {
                Step::Done(true) => Kept::Yes,
                _ => Kept::No,
            },
        }))
    }
}

/// One command routed by `key`, with its arguments, replying a raw value.
struct Raw {
    name: &'static str,
    route: String,
    args: Vec<Vec<u8>>,
}

impl Raw {
    fn new(name: &'static str, route: &str) -> Self {
        Raw {
            name,
            route: route.to_owned(),
            args: Vec::new(),
        }
    }
    fn args<A: AsRef<[u8]>>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_vec()));
        self
    }
}

impl Operation for Raw {
    type Output = Value;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let cmd = plan.cmd_routed(self.name, &self.route);
        for a in &self.args {
            cmd.arg(&a[..]);
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Value>> {
        replies.next_value().map(Step::Done)
    }
}

fn text(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

/// Entries of an `XREADGROUP` reply (RESP2 arrays or RESP3 map).
fn stream_entries(v: &Value) -> Vec<RawEntry> {
    match v {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) => pair.get(1).map(entry_list),
                _ => None,
            })
            .flatten()
            .collect(),
        Value::Map(streams) => streams.iter().flat_map(|(_, e)| entry_list(e)).collect(),
        _ => Vec::new(),
    }
}

/// `[[id, [f, v, ...]], ...]`; entries whose fields are nil (deleted) are
/// skipped.
fn entry_list(v: &Value) -> Vec<RawEntry> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let id = String::from_utf8(text(pair.first()?)?).ok()?;
            let fields = match pair.get(1)? {
                Value::Array(kv) => kv
                    .chunks(2)
                    .filter_map(|c| Some((text(c.first()?)?, text(c.get(1)?)?)))
                    .collect(),
                Value::Map(kv) => kv
                    .iter()
                    .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                    .collect(),
                _ => return None,
            };
            Some((id, fields))
        })
        .collect()
}
