//! Write-behind: the entry is written at once and the write to the source
//! of truth is queued in a Redis stream, drained by [`WriteBehindWorker`]s.
//!
//! # Delivery is at-least-once
//!
//! [`Cache::write_behind`] appends the write to the type's stream and, only
//! once the stream took it, writes the entry. Once it returns, the write is
//! in Redis, not in process memory, and survives a crash of the writer.
//! (Like every Redis write, it is as durable as the server's persistence
//! and replication settings.)
//!
//! On one server (a standalone connection: see
//! [`SyncExecutor::is_one_server`]),
//! or on a Cluster when the stream and the entry share a slot, both happen
//! in one script, one round trip, atomically: a refused append (the stream
//! full, out of memory, a key of another type) stores nothing.
//!
//! Otherwise, and for values with tags, it takes two round trips: on a
//! Cluster the queue and the entry live in different slots, and a pipeline
//! is neither atomic nor sent in order there. A refused `XADD` would still
//! let the entry be written, and the cache would serve a value the source
//! of truth never gets. So the `XADD` goes alone, and the entry follows only
//! when it succeeded; a failure of the second round leaves a queued write
//! without an entry (a miss until the source has it). As a transaction's
//! write, the `XADD` is queued between `MULTI` and `EXEC` and the entry is
//! stored after a successful `EXEC` (see [`tx`](crate::tx)): the
//! transaction decides whether the write is queued.
//!
//! The stream is bounded: [`WriteBehind::max_queued`] (one million writes
//! by default) with an explicit policy. **Error**: a write that finds it
//! full fails with [`Error::StreamFull`] and caches nothing (the append is
//! a script that checks `XLEN` first). **Wait**
//! ([`Cache::write_behind_waiting`]): the write waits, bounded, for the
//! workers to make room, then fails the same way.
//!
//! Workers run the [stream consumer](crate::stream::Consumer) loop, written
//! once for every stream: they read the stream as a consumer group
//! (`XREADGROUP`), on a connection of their own (a blocking read never
//! holds up a shared connection: on one it polls). An entry is
//! acknowledged and deleted (`XACK` and `XDEL`, or one `XACKDEL` where the
//! server has it) only after the
//! handler returned `Ok`. A worker that dies mid-batch leaves its entries
//! pending; any worker of the group claims entries idle for longer than
//! [`WriteBehindWorker::claim_idle`] (`XAUTOCLAIM`, or the read itself,
//! `XREADGROUP … CLAIM`, where the server has it), and a worker restarted
//! under the same consumer name first re-reads its own pending entries. A
//! live worker keeps the entries it holds: it resets an entry's idle time
//! before each retry and before the first attempt of each later entry of a
//! batch (the `keep` script: `XCLAIM … JUSTID` while the entry is still
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
//! to the dead-letter stream (`XADD` there, then `XACK` and `XDEL`),
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

use super::handle::Cache;
use super::ops::{DONE_STREAM_MS, Encoded, Set, complete_tags, id_of, push_store, push_tags};
use super::{Cached, CachedKeyed, companion};
use crate::driver::{Async, Blocking, Deadline, Io, block_on};
use crate::error::{Error, Result};
use crate::exec::{AsyncExecutor, SyncExecutor};
use crate::keys::{IdBuf, IdValue, Namespace};
use crate::op::{Operation, Plan, Replies, Step};
use crate::script::Script;
use crate::stream::{
    Consumer, ConsumerOptions, Delivery, EventCodec, RawFields, Retention, Stream,
};

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

/// Queues a source write and writes the entry; see
/// [`Cache::write_behind`]. The output is the stream entry id.
///
/// One round trip on one server, or on a Cluster when the queue and the
/// entry share a slot: the `behind` script appends to the bounded queue
/// and, only when the queue took the write, stores the entry, atomically.
/// Otherwise (a Cluster, where they live in different slots and a pipeline
/// is neither atomic nor sent in order, or a value with tags) two: the
/// `XADD` alone, then, only when it succeeded, the entry.
pub struct WriteBehind<T: Cached> {
    /// The entry's value, until the first round takes it.
    set: Set<T>,
    /// The entry's key and encoded value, for a second round.
    store: Option<(String, Encoded)>,
    /// The queue stream's key.
    stream: String,
    /// How the first round was planned.
    one_step: bool,
    /// The stream entry id, once the `XADD` succeeded (two rounds).
    queued: Option<String>,
    /// Tag sets written in the last round.
    ntags: usize,
    /// The bound of the stream; see [`WriteBehind::max_queued`].
    max_queued: u64,
}

/// Queues a write and stores its entry, atomically; see `lua/behind.lua`.
static BEHIND: Script = Script::new("redis_state.cache.behind", include_str!("lua/behind.lua"));

/// The default bound of a write-behind stream: [`WriteBehind::max_queued`].
pub const DEFAULT_MAX_QUEUED: u64 = 1_000_000;

impl<T: Cached> WriteBehind<T> {
    /// The most writes the type's stream may hold (default
    /// [`DEFAULT_MAX_QUEUED`], at least 1). The policy is **error**: a write
    /// that finds the stream full fails with [`Error::StreamFull`] and
    /// caches nothing; the caller decides to wait and retry, shed, or write
    /// through. For the **wait** policy see
    /// [`Cache::write_behind_waiting`]. Nothing is ever trimmed: a queued
    /// write is never dropped. The depth is [`WriteBehindWorker::depth`].
    pub fn max_queued(mut self, n: u64) -> Self {
        self.max_queued = n.max(1);
        self
    }
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
            let Some((key, enc)) = &self.store else {
                return Err(prepared_twice());
            };
            push_store(plan, key, enc)?;
            push_tags(plan, key, enc)?;
            self.ntags = enc.tags.len();
            return Ok(());
        }
        self.stream = stream_key::<T>(self.set.ns());
        let id = self.set.id().joined().to_owned();
        let payload = self.set.queued_write(CONTEXT)?.1.to_vec();
        let (key, enc) = self.set.take_encoded(CONTEXT)?;
        let lease = companion(&key, "lease");
        let done = companion(&key, "done");
        let keys = [self.stream.as_str(), &key, &lease, &done];
        self.one_step = enc.tags.is_empty() && plan.fits_one_script(&keys);
        if self.one_step {
            let Some(cmd) = plan.script_on_one_server(&BEHIND, &keys) else {
                return Err(prepared_twice());
            };
            // The fields' names are in the script (the key is KEYS[2]).
            cmd.arg(self.max_queued)
                .arg(&enc.bytes[..])
                .arg(enc.px)
                .arg(DONE_STREAM_MS)
                .arg(id)
                .arg(payload);
        } else {
            let cmd = plan.script(&crate::stream::ADD_CAPPED, &[&self.stream])?;
            cmd.arg(self.max_queued)
                .arg("id")
                .arg(id)
                .arg("key")
                .arg(&key)
                .arg("v")
                .arg(payload);
        }
        self.store = Some((key, enc));
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<String>> {
        if self.one_step {
            // A refused append (a full queue) stored nothing.
            return crate::stream::added(replies.next_raw()?, &self.stream).map(Step::Done);
        }
        match self.queued.take() {
            None => {
                // A refused XADD ends the operation here: nothing is cached.
                self.queued = Some(crate::stream::added(replies.next_raw()?, &self.stream)?);
                Ok(Step::Again)
            }
            Some(entry_id) => {
                replies.next_value()?;
                complete_tags(replies, self.ntags)?;
                Ok(Step::Done(entry_id))
            }
        }
    }
}

/// The second round found nothing to store: a bug, reported, not a panic.
fn prepared_twice() -> Error {
    Error::UnexpectedReply {
        context: CONTEXT,
        found: "a write-behind planned twice".to_owned(),
    }
}

impl<T> Cache<T>
where
    T: Cached + Clone + Send + Sync + 'static,
{
    /// Write-behind: queues the write to the source of truth in the type's
    /// stream and stores `value` in the cache. One round trip on one
    /// server (the `behind` script: the append, then the entry, atomically);
    /// on a Cluster, or for a value with tags, two: the capped `XADD`, then
    /// (only when it succeeded) the `store` script and one `tag_add` per
    /// tag. Either way a refused append returns its error and caches
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

    /// Write-behind with the **wait** policy for a full queue: as
    /// [`Cache::write_behind`] with [`WriteBehind::max_queued`]`(max_queued)`,
    /// but a write that finds the queue full waits for room (the workers
    /// draining it) for at most `wait`, retrying 2 ms apart at first, the
    /// pause doubling to 50 ms; after `wait` it fails with
    /// [`Error::StreamFull`] and caches nothing. Each try is one write-behind
    /// (one round trip on one server); nothing is trimmed or dropped.
    pub fn write_behind_waiting<Q, C>(
        &self,
        con: &mut C,
        id: &Q,
        value: &T,
        max_queued: u64,
        wait: Duration,
    ) -> Result<String>
    where
        Q: IdValue + ?Sized,
        T::Id: std::borrow::Borrow<Q>,
        C: SyncExecutor + ?Sized,
    {
        let id = id_of(id);
        block_on(self.queue_waiting(&mut Blocking::new(con), id, value, max_queued, wait))
    }

    /// [`Cache::write_behind_waiting`] on an async connection.
    pub async fn write_behind_waiting_async<Q, C>(
        &self,
        con: &mut C,
        id: &Q,
        value: &T,
        max_queued: u64,
        wait: Duration,
    ) -> Result<String>
    where
        Q: IdValue + ?Sized,
        T::Id: std::borrow::Borrow<Q>,
        C: AsyncExecutor + ?Sized,
    {
        let id = id_of(id);
        self.queue_waiting(&mut Async::new(con), id, value, max_queued, wait)
            .await
    }

    /// The wait policy, once for both callers: bounded by `wait`.
    async fn queue_waiting<I: Io>(
        &self,
        io: &mut I,
        id: IdBuf,
        value: &T,
        max_queued: u64,
        wait: Duration,
    ) -> Result<String> {
        let deadline = Deadline::after(wait);
        let mut pause = Duration::from_millis(2);
        loop {
            let op = self.queued(id.clone(), value).max_queued(max_queued);
            match io.run(op).await {
                Err(Error::StreamFull { .. }) if !deadline.is_over() => {
                    io.sleep(deadline.cap(pause)).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn queued(&self, id: IdBuf, value: &T) -> WriteBehind<T> {
        WriteBehind {
            set: Set::new(id, Some(value), 0).in_namespace(self.namespace_ref().cloned()),
            store: None,
            stream: String::new(),
            one_step: false,
            queued: None,
            ntags: 0,
            max_queued: DEFAULT_MAX_QUEUED,
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

    /// The number of queued writes not yet settled (`XLEN` of the stream):
    /// the depth to watch against [`WriteBehind::max_queued`].
    pub fn depth(&self) -> crate::op::CommandOp<u64> {
        crate::op::command("XLEN", &self.stream)
    }

    /// Runs until `shutdown` fires, handling each queued write with
    /// `handler`. Returns what it did; a Redis error ends the run (restart
    /// it: nothing is lost).
    ///
    /// The loop is the [stream consumer](crate::stream::Consumer)'s, run
    /// under this worker's stable name with entries deleted once settled.
    /// Give the worker a connection of its own (a
    /// [`DedicatedConnection`](crate::exec::DedicatedConnection)): on a
    /// shared multiplexed connection it never blocks (it polls), so other
    /// commands on that connection do not wait behind its reads.
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
        let o = ConsumerOptions {
            batch: self.batch,
            max_attempts: self.max_attempts,
            max_deliveries: self.max_deliveries,
            backoff: self.backoff,
            max_backoff: self.max_backoff,
            claim_idle: self.claim_idle,
            claim_every: Duration::ZERO,
            block: self.block,
            delete_acked: true,
            ..ConsumerOptions::default()
        };
        let stream = Stream::<Queued<T>, QueuedCodec>::with_codec(
            self.stream.clone(),
            // Never trimmed by the consumer: settled entries are deleted.
            Retention::max_len(u64::MAX),
        );
        let consumer =
            Consumer::named(stream.group(self.group.clone()), self.consumer.clone()).options(o);
        let stats = consumer
            .run_async(con, &shutdown, |d: Delivery<Queued<T>>| {
                handler(QueuedWrite {
                    entry_id: d.id,
                    id: d.event.id,
                    key: d.event.key,
                    value: d.event.value,
                    attempt: d.attempt,
                    deliveries: d.deliveries,
                })
            })
            .await?;
        Ok(WorkerStats {
            done: stats.done,
            retries: stats.retries,
            dead: stats.dead,
            claimed: stats.claimed,
        })
    }
}

/// A queued write as the stream holds it: fields `id`, `key`, `v` (JSON).
struct Queued<T> {
    id: String,
    key: String,
    value: T,
}

/// Reads and writes [`Queued`] entries.
struct QueuedCodec;

impl<T: Cached> EventCodec<Queued<T>> for QueuedCodec {
    fn encode(event: &Queued<T>, out: &mut RawFields) -> Result<()> {
        let v = serde_json::to_vec(&event.value).map_err(|e| Error::Encode {
            model: T::SCHEMA.model,
            field: "v",
            message: e.to_string(),
        })?;
        out.push((b"id".to_vec(), event.id.clone().into_bytes()));
        out.push((b"key".to_vec(), event.key.clone().into_bytes()));
        out.push((b"v".to_vec(), v));
        Ok(())
    }

    fn decode(_at: &str, fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Queued<T>> {
        let field = |name: &[u8]| {
            fields
                .iter()
                .find(|(f, _)| f == name)
                .map(|(_, v)| v.as_slice())
        };
        let value = serde_json::from_slice::<T>(field(b"v").unwrap_or_default()).map_err(|e| {
            Error::user(format!(
                "the queued value does not decode as {}: {e}",
                T::SCHEMA.model
            ))
        })?;
        Ok(Queued {
            id: String::from_utf8_lossy(field(b"id").unwrap_or_default()).into_owned(),
            key: String::from_utf8_lossy(field(b"key").unwrap_or_default()).into_owned(),
            value,
        })
    }
}
