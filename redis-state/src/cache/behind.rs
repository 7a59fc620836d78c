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
//! # Buckets: one step on a Cluster
//!
//! A type declared with `#[cache(buckets = N)]` (the bucketed layout of
//! `RedisHash` models, same attribute, same rules: 1 to 16384, not with a
//! hash tag in the key) shares a slot between each entry and its queue:
//! the id's bucket (FNV-1a of the escaped id, modulo `N`) picks one of `N`
//! slots spread evenly over the 16,384, the entry key carries that slot's
//! hash tag after the template's leading text (`product:{<tag>}:42`), and
//! each bucket has its own queue in the same tag
//! (`product:{<tag>}:#wb:product`). So every write-behind is the one
//! script on a Cluster too, and the entries (and their reads) still spread
//! over every primary, `N / primaries` buckets on each. The bound
//! [`WriteBehind::max_queued`] is per bucket's queue (the script checks
//! the queue it appends to; a total would need a counter in another slot,
//! which the append could not check atomically), so a type's queues hold
//! at most `N × max_queued` writes; [`WriteBehindWorker::depth`] sums them.
//! Changing `N` moves every key: entries written under the old layout are
//! misses, queued writes stay in the old queues (drain them first).
//!
//! Otherwise (a Cluster without buckets), and for values with tags, it
//! takes two round trips: on a Cluster the queue and the entry live in
//! different slots, and a pipeline is neither atomic nor sent in order
//! there (values with tags also write tag sets, which live in slots of
//! their own). A refused `XADD` would still
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
//! holds up a shared connection: on one it polls). A worker of a bucketed
//! type drains every bucket's queue in the same loop, one consumer group
//! per queue: since no `XREADGROUP` can block on streams of several slots,
//! each pass reads every queue without blocking and claims idle entries of
//! every queue (one round trip per node each), and a pass that found
//! nothing pauses 2 ms at first, doubling up to
//! [`WriteBehindWorker::block`], before the next (what is queued is seen
//! at most that late; an idle worker sends `2 × N` commands per pause). An
//! entry is acknowledged and deleted (`XACK` and `XDEL`, or one `XACKDEL`
//! where the server has it) only after the
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
//! | `<bucket scope>:#wb:<name>` | stream | bucketed layout: the queued writes of one bucket |
//! | `<bucket scope>:#wb:<name>:dead` | stream | bucketed layout: that bucket's dead letters |
//!
//! `<name>` is the snake_case type name; the braces keep both streams in one
//! Cluster slot. A bucket's scope is `<ns>:<the template's leading
//! text>{<tag>}` (`app:product:{<tag>}`), the scope of its entries' keys.
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

/// The stream of queued writes of `T` in `ns`: `<ns>:#wb:{<name>}` for a
/// type without buckets. A type in the bucketed layout
/// (`#[cache(buckets = N)]`) has one stream per bucket instead: see
/// [`bucket_stream_key`] and [`stream_keys`].
pub fn stream_key<T: Cached>(ns: Option<&Namespace>) -> String {
    let mut out = String::new();
    crate::keys::write_ns_prefix(ns, T::SCHEMA.key.namespace, &mut out);
    out.push_str("#wb:{");
    out.push_str(T::SCHEMA.name);
    out.push('}');
    out
}

/// The stream of queued writes of bucket `bucket` of a type in the
/// bucketed layout: `<bucket scope>:#wb:<name>` (`product:{<tag>}:#wb:product`),
/// in the slot of the bucket's entries, so that one script appends to it
/// and stores the entry.
pub fn bucket_stream_key<T: Cached>(ns: Option<&Namespace>, bucket: u16) -> String {
    let mut out = T::SCHEMA.bucket_scope(ns, bucket);
    out.push_str(":#wb:");
    out.push_str(T::SCHEMA.name);
    out
}

/// Every write-behind stream of `T` in `ns`: [`stream_key`], or one
/// [`bucket_stream_key`] per bucket, in bucket order.
pub fn stream_keys<T: Cached>(ns: Option<&Namespace>) -> Vec<String> {
    match T::SCHEMA.buckets {
        0 => vec![stream_key::<T>(ns)],
        n => (0..n).map(|b| bucket_stream_key::<T>(ns, b)).collect(),
    }
}

/// The stream that queues the write of `id`: its bucket's, or the type's.
fn stream_of<T: Cached>(ns: Option<&Namespace>, id: &IdBuf) -> String {
    match T::SCHEMA.buckets {
        0 => stream_key::<T>(ns),
        _ => bucket_stream_key::<T>(ns, T::SCHEMA.bucket_of(id)),
    }
}

/// The dead-letter stream of `T` in `ns` (of a type without buckets; a
/// bucketed type has one per bucket, `<bucket stream>:dead`: see
/// [`WriteBehindWorker::dead_letter_streams`]).
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
/// entry share a slot (always, for a type with `buckets`): the `behind`
/// script appends to the bounded queue
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
    /// [`DEFAULT_MAX_QUEUED`], at least 1); in the bucketed layout, the
    /// most each bucket's stream may hold. The policy is **error**: a write
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
        self.stream = stream_of::<T>(self.set.ns(), self.set.id());
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
    /// stream (its bucket's, in the bucketed layout) and stores `value` in
    /// the cache. One round trip on one server and, for a type with
    /// `buckets`, on a Cluster (the `behind` script: the append, then the
    /// entry, atomically); otherwise on a Cluster, or for a value with
    /// tags, two: the capped `XADD`, then
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
    /// Every stream of the type: one, or one per bucket.
    streams: Vec<String>,
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
        let streams = stream_keys::<T>(ns);
        WriteBehindWorker {
            dead: format!("{}:dead", streams[0]),
            streams,
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
    /// async connections' default response timeout never fires). In the
    /// bucketed layout, where the queues are read without blocking, the
    /// longest pause between two passes that found nothing.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block.clamp(Duration::from_millis(1), Duration::from_millis(400));
        self
    }

    /// The stream this worker reads: the type's one stream, or, in the
    /// bucketed layout, bucket 0's (see [`streams`](Self::streams)).
    pub fn stream(&self) -> &str {
        &self.streams[0]
    }

    /// Every stream this worker reads: the type's one stream, or one per
    /// bucket in bucket order (`<bucket scope>:#wb:<name>`).
    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    /// The dead-letter stream of [`stream`](Self::stream).
    pub fn dead_letter_stream(&self) -> &str {
        &self.dead
    }

    /// Every dead-letter stream, one per stream of
    /// [`streams`](Self::streams) (`<stream>:dead`).
    pub fn dead_letter_streams(&self) -> Vec<String> {
        self.streams.iter().map(|s| format!("{s}:dead")).collect()
    }

    /// The number of queued writes not yet settled: the `XLEN` of the
    /// stream, or the sum over every bucket's stream (one `XLEN` each, in
    /// one round trip per node). The bound [`WriteBehind::max_queued`]
    /// applies to each stream, so a bucketed type's depth may reach
    /// `buckets × max_queued`.
    pub fn depth(&self) -> impl Operation<Output = u64> + Send + use<T> {
        crate::op::many(
            self.streams
                .iter()
                .map(|s| crate::op::command::<u64>("XLEN", s))
                .collect::<Vec<_>>(),
        )
        .map(|lens| lens.iter().sum())
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
            self.streams[0].clone(),
            // Never trimmed by the consumer: settled entries are deleted.
            Retention::max_len(u64::MAX),
        );
        let consumer = Consumer::named(stream.group(self.group.clone()), self.consumer.clone())
            .options(o)
            .across(self.streams.clone());
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
