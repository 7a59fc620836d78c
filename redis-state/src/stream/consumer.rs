//! The consumer loop of a group, written once over the
//! [driver](crate::driver) and served blocking ([`Consumer::run`]) and
//! async ([`Consumer::run_async`]).

use std::future::Future;
use std::time::{Duration, Instant};

use redis::{ToRedisArgs, Value};

use super::{
    EventCodec, Group, RawEntry, RawFields, StreamFeatures, entry_list, stream_entries, text,
};
use crate::cache::Shutdown;
use crate::driver::{Async, Blocking, Deadline, Io, block_on, read_until};
use crate::error::{Error, Result};
use crate::exec::{AsyncExecutor, SyncExecutor};
use crate::op::{Operation, Plan, Replies, Step};
use crate::script::Script;

static KEEP: Script = Script::new("redis_state.stream.keep", include_str!("lua/keep.lua"));
static ACK_EFFECT: Script = Script::new(
    "redis_state.stream.ack_effect",
    concat!(
        include_str!("lua/effect.lua"),
        include_str!("lua/ack_effect.lua")
    ),
);

// ---------------------------------------------------------------------------
// Effects applied with the acknowledgement

/// Redis commands applied atomically with an acknowledgement, in one
/// script: exactly once per entry (or job) for what they do inside Redis.
///
/// Every command names one key first; all keys must share the stream's
/// (or queue's) Cluster slot, so give them its hash tag (`{orders}:events`
/// and `{orders}:totals`): a mismatch is refused with
/// [`Error::CrossSlot`] before anything is sent. The script checks that
/// the entry is still pending in the group (for a queue: that the lease
/// is still held, by its token) before it applies anything; a consumer
/// that lost the entry to another one applies nothing. Effects outside
/// Redis (an email, an HTTP call) stay at least once: make them
/// idempotent. A command that fails inside the script (a key of another
/// type) stops it before the acknowledgement, leaving the commands before
/// it applied: the entry comes back, so prefer commands that cannot fail.
#[derive(Debug, Clone, Default)]
pub struct Effect {
    pub(crate) keys: Vec<Vec<u8>>,
    pub(crate) args: Vec<Vec<u8>>,
}

impl Effect {
    /// No command yet.
    pub fn new() -> Self {
        Effect::default()
    }

    /// Adds command `name key args…` (`HINCRBY`, `("sum", 5)`).
    pub fn command(mut self, name: &str, key: impl AsRef<[u8]>, args: impl ToRedisArgs) -> Self {
        let args = args.to_redis_args();
        self.keys.push(key.as_ref().to_vec());
        self.args.push(name.as_bytes().to_vec());
        self.args.push(args.len().to_string().into_bytes());
        self.args.extend(args);
        self
    }

    /// True when no command was added.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What a handler returns on success: a plain acknowledgement (`()`), or
/// one with an [`Effect`].
#[derive(Debug, Clone, Default)]
pub struct Ack(pub(crate) Option<Effect>);

impl From<()> for Ack {
    fn from((): ()) -> Self {
        Ack(None)
    }
}

impl From<Effect> for Ack {
    fn from(e: Effect) -> Self {
        Ack((!e.is_empty()).then_some(e))
    }
}

// ---------------------------------------------------------------------------
// Options and stats

/// How a [`Consumer`] works. Start from `ConsumerOptions::default()`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// Entries read per `XREADGROUP` / `XAUTOCLAIM` (default 16).
    pub batch: usize,
    /// Handler tries per delivery before the entry is dead-lettered with
    /// the last error (default 5).
    pub max_attempts: u32,
    /// Deliveries (the group's delivery count) after which an entry is
    /// dead-lettered without running the handler: its consumers kept dying
    /// on it (default 5).
    pub max_deliveries: u64,
    /// The first retry delay, doubled per try up to `max_backoff`, with
    /// jitter on the upper half (defaults 100 ms and 5 s).
    pub backoff: Duration,
    /// See `backoff`.
    pub max_backoff: Duration,
    /// How long an entry stays pending and untouched before another
    /// consumer claims it (`XREADGROUP … CLAIM` where the server has it,
    /// `XAUTOCLAIM` otherwise; default 30 s). A consumer keeps
    /// what it handles (resets the idle time before each retry and before
    /// each entry of a batch after the first), so this must exceed one
    /// handler attempt plus one backoff delay.
    pub claim_idle: Duration,
    /// How often a consumer looks for idle entries to claim with
    /// `XAUTOCLAIM` (default 1 s). On a server with `XREADGROUP … CLAIM`
    /// every read claims, and this is not used (see `sweep_every`).
    pub claim_every: Duration,
    /// On a server with `XREADGROUP … CLAIM`: how often a consumer still
    /// runs one `XAUTOCLAIM` round (default 60 s, the first one after that
    /// long). A `CLAIM` read skips pending entries whose entry was deleted
    /// (trimmed by `XADD MAXLEN`, or `XDEL`) and leaves them in the
    /// group's pending list; `XAUTOCLAIM` drops them, as it does every
    /// `claim_every` on older servers.
    pub sweep_every: Duration,
    /// How often a consumer trims a stream declared with
    /// [`Retention::respect_groups`](super::Retention::respect_groups)
    /// (default 1 s).
    pub trim_every: Duration,
    /// How long one wait for new entries lasts before the consumer looks
    /// at shutdown, claims and trimming again (default 400 ms; blocking
    /// reads are sliced at 400 ms at most).
    pub block: Duration,
    /// The length the dead-letter stream is trimmed to (`MAXLEN ~`,
    /// default 10 000).
    pub dead_max_len: u64,
    /// Deletes each entry (`XDEL`) once acknowledged or dead-lettered
    /// (default false): for a stream that is a work queue of one group,
    /// such as write-behind's. Where the server has `XACKDEL`, a plain
    /// acknowledgement and the delete are that one command (`KEEPREF`, as
    /// `XDEL` does).
    pub delete_acked: bool,
    /// The newer stream commands to use; `None` (the default): the
    /// consumer detects them on its connection when it starts
    /// ([`StreamFeatures::detect`], one round trip), and again when the
    /// server refuses a `CLAIM` read (a failover to an older server).
    /// [`StreamFeatures::BASELINE`] keeps it on the Redis 7.0 commands.
    pub features: Option<StreamFeatures>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            batch: 16,
            max_attempts: 5,
            max_deliveries: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            claim_idle: Duration::from_secs(30),
            claim_every: Duration::from_secs(1),
            sweep_every: Duration::from_secs(60),
            trim_every: Duration::from_secs(1),
            block: Duration::from_millis(400),
            dead_max_len: 10_000,
            delete_acked: false,
            features: None,
        }
    }
}

/// What a consumer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// Entries handled and acknowledged.
    pub done: u64,
    /// Handler failures that were retried.
    pub retries: u64,
    /// Entries moved to the dead-letter stream.
    pub dead: u64,
    /// Entries claimed from idle (dead) consumers.
    pub claimed: u64,
    /// Acknowledgements with an effect that found the entry acknowledged
    /// already (by a consumer that claimed it): the effect was not applied.
    pub already_acked: u64,
    /// Entries removed by trimming.
    pub trimmed: u64,
}

/// One delivered event, as the handler sees it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Delivery<T> {
    /// The entry id.
    pub id: String,
    /// The event.
    pub event: T,
    /// 1 for the first try of this delivery, then 2, 3, ...
    pub attempt: u32,
    /// How many times the group delivered the entry (more than 1 when a
    /// consumer died with it).
    pub deliveries: u64,
}

// ---------------------------------------------------------------------------
// The consumer

/// One consumer of a [`Group`], with a name unique by construction (see
/// [`Group::consumer`]).
///
/// # Delivery
///
/// At least once: an entry is acknowledged (`XACK`) only after the handler
/// returned `Ok`; a consumer that dies leaves its entries pending, and any
/// consumer of the group claims entries idle for longer than
/// [`ConsumerOptions::claim_idle`]: on a server with `XREADGROUP … CLAIM`
/// (Redis 8.4) with every read, in the same command; on older ones with
/// an `XAUTOCLAIM` round every [`ConsumerOptions::claim_every`]. Which
/// commands a consumer uses it finds out when it starts (see
/// [`ConsumerOptions::features`]); the behaviour is the same. A handler error is
/// retried in place with exponential backoff and jitter, up to
/// `max_attempts`; then the entry goes to the dead-letter stream
/// (`<stream>:dead`) with fields `origin` (its id), `group`, `error`,
/// `attempts`, `deliveries` and its own fields, and is acknowledged. An
/// entry delivered more than `max_deliveries` times, or that does not
/// decode, is dead-lettered without running the handler. Dead-lettering
/// is `XADD` then `XACK` (two round trips, so an entry may be
/// dead-lettered twice, never lost).
///
/// A handler that returns an [`Effect`] has it applied with the
/// acknowledgement in one script, only while the entry is still pending:
/// **exactly once for effects inside Redis, at least once for everything
/// else** (make those idempotent).
///
/// The group is created on start (`MKSTREAM`) and again when a read says
/// `NOGROUP`. [`Shutdown`] stops the consumer after the entry in hand (a
/// retry delay is cut short and the entry left pending for others).
///
/// # Connections
///
/// The blocking form owns the connection it is given for the whole run
/// and blocks on it (`XREADGROUP … BLOCK`, at most 400 ms at a time). The
/// async form blocks only on a connection that is its own (a
/// [`DedicatedConnection`](crate::exec::DedicatedConnection)): on a shared
/// multiplexed connection it polls without blocking, so other tasks'
/// commands never wait behind it. Give each async consumer a
/// `DedicatedConnection`.
pub struct Consumer<T, C> {
    group: Group<T, C>,
    name: String,
    options: ConsumerOptions,
    /// The streams read under the group's name when there are several
    /// (write-behind's buckets); empty: the group's own stream.
    streams: Vec<String>,
}

impl<T, C> std::fmt::Debug for Consumer<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group", &self.group)
            .field("name", &self.name)
            .field("options", &self.options)
            .field("streams", &self.streams.len().max(1))
            .finish()
    }
}

impl<T, C> Clone for Consumer<T, C> {
    fn clone(&self) -> Self {
        Consumer {
            group: self.group.clone(),
            name: self.name.clone(),
            options: self.options.clone(),
            streams: self.streams.clone(),
        }
    }
}

impl<T, C: EventCodec<T>> Consumer<T, C> {
    /// A consumer of `group` under exactly `name`: for a process that
    /// keeps one stable name across restarts (it re-reads its own pending
    /// entries first). Two live processes must never share a name;
    /// [`Group::consumer`] makes unique ones.
    pub fn named(group: Group<T, C>, name: String) -> Self {
        Consumer::new(group, name)
    }

    pub(crate) fn new(group: Group<T, C>, name: String) -> Self {
        Consumer {
            group,
            name,
            options: ConsumerOptions::default(),
            streams: Vec::new(),
        }
    }

    /// Reads `streams` (their entries in the group's codec, under the
    /// group's name, each its own group) instead of the group's stream
    /// alone: one loop drains them all. For streams in different Cluster
    /// slots that no single `XREADGROUP` can block on together: each pass
    /// reads every stream without blocking (one round trip per node),
    /// claims idle entries of every stream, and, when nothing came, pauses
    /// 2 ms at first, doubling up to [`ConsumerOptions::block`]. The
    /// streams are not trimmed by the consumer (write-behind deletes what
    /// it settles).
    pub(crate) fn across(mut self, streams: Vec<String>) -> Self {
        self.streams = if streams.len() > 1 {
            streams
        } else {
            Vec::new()
        };
        self
    }

    /// The keys of the streams read.
    fn keys(&self) -> Vec<&str> {
        if self.streams.is_empty() {
            vec![self.group.stream.key.as_str()]
        } else {
            self.streams.iter().map(String::as_str).collect()
        }
    }

    /// Creates the group on every stream read.
    fn create(&self) -> crate::op::Many<super::CreateGroup> {
        crate::op::many(
            self.keys()
                .into_iter()
                .map(|key| super::CreateGroup {
                    key: key.to_owned(),
                    group: self.group.name.clone(),
                })
                .collect::<Vec<_>>(),
        )
    }

    /// Replaces the options.
    pub fn options(mut self, options: ConsumerOptions) -> Self {
        self.options = options;
        self
    }

    /// The consumer name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs until `shutdown` fires, handling each event with `handler`
    /// on this blocking connection (its own for the run). A Redis error
    /// ends the run; nothing is lost (restart it).
    pub fn run<Con, F, R, E>(
        &self,
        con: &mut Con,
        shutdown: &Shutdown,
        mut handler: F,
    ) -> Result<ConsumerStats>
    where
        Con: SyncExecutor + ?Sized,
        F: FnMut(Delivery<T>) -> std::result::Result<R, E>,
        R: Into<Ack>,
        E: std::fmt::Display,
        T: Send,
    {
        block_on(self.consume(&mut Blocking::new(con), shutdown, &mut |d| {
            std::future::ready(handler(d))
        }))
    }

    /// [`run`](Self::run), awaited, with an async handler.
    pub async fn run_async<Con, F, Fut, R, E>(
        &self,
        con: &mut Con,
        shutdown: &Shutdown,
        mut handler: F,
    ) -> Result<ConsumerStats>
    where
        Con: AsyncExecutor + ?Sized,
        F: FnMut(Delivery<T>) -> Fut,
        Fut: Future<Output = std::result::Result<R, E>>,
        R: Into<Ack>,
        E: std::fmt::Display,
        T: Send,
    {
        self.consume(&mut Async::new(con), shutdown, &mut handler)
            .await
    }

    /// The procedure, written once.
    async fn consume<I, F, Fut, R, E>(
        &self,
        io: &mut I,
        shutdown: &Shutdown,
        handler: &mut F,
    ) -> Result<ConsumerStats>
    where
        I: Io,
        F: FnMut(Delivery<T>) -> Fut,
        Fut: Future<Output = std::result::Result<R, E>>,
        R: Into<Ack>,
        E: std::fmt::Display,
        T: Send,
    {
        let o = &self.options;
        let mut stats = ConsumerStats::default();
        let keys = self.keys();
        let several = keys.len() > 1;
        io.run(self.create()).await?;
        let mut features = match o.features {
            Some(f) => f,
            None => io.run(StreamFeatures::detect()).await?,
        };
        // With `CLAIM` reads, the `XAUTOCLAIM` round is a rare sweep.
        let claim_period = |f: &StreamFeatures| {
            if f.xreadgroup_claim {
                o.sweep_every
            } else {
                o.claim_every
            }
        };
        let mut next_claim = if features.xreadgroup_claim {
            Instant::now() + o.sweep_every
        } else {
            Instant::now()
        };
        let mut next_trim = Instant::now();
        // A consumer restarted under the name it had first re-reads what
        // it held (nothing, for a name made by `Group::consumer`), stream
        // by stream.
        let mut own_pending = vec![true; keys.len()];
        // The pause after a pass over several streams that found nothing.
        let mut idle = crate::driver::POLL_FIRST;
        while !shutdown.is_fired() {
            // (stream, entry, deliveries)
            let mut batch: Vec<(usize, RawEntry, u64)> = Vec::new();
            if own_pending.contains(&true) {
                // Every stream that may still hold some, in one round trip
                // per node.
                let pending: Vec<usize> = (0..keys.len()).filter(|k| own_pending[*k]).collect();
                let reads = crate::op::many(
                    pending
                        .iter()
                        .map(|k| {
                            let mut read = self.read_group(keys[*k], None);
                            read.from = "0";
                            read
                        })
                        .collect::<Vec<_>>(),
                );
                match io.run(reads).await {
                    Ok(per_stream) => {
                        for (k, got) in pending.into_iter().zip(per_stream) {
                            match got {
                                Some(got) => {
                                    let got = got.into_iter().map(|(e, _)| e).collect();
                                    batch.extend(self.with_deliveries(io, k, keys[k], got).await?)
                                }
                                None => own_pending[k] = false,
                            }
                        }
                    }
                    Err(e) if is_nogroup(&e) => {
                        io.run(self.create()).await?;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            if batch.is_empty() && Instant::now() >= next_claim {
                next_claim = Instant::now() + claim_period(&features);
                let claims = crate::op::many(
                    keys.iter()
                        .map(|key| self.autoclaim(key))
                        .collect::<Vec<_>>(),
                );
                match io.run(claims).await {
                    Ok(per_stream) => {
                        for (k, claimed) in per_stream.into_iter().enumerate() {
                            if claimed.is_empty() {
                                continue;
                            }
                            stats.claimed += claimed.len() as u64;
                            batch.extend(self.with_deliveries(io, k, keys[k], claimed).await?);
                        }
                    }
                    Err(e) if is_nogroup(&e) => {
                        io.run(self.create()).await?;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            if batch.is_empty() {
                // With `CLAIM`, idle entries of any consumer come first,
                // then new ones, in one read.
                let claim = features
                    .xreadgroup_claim
                    .then(|| crate::random::millis(o.claim_idle));
                let read = if several {
                    // Streams in several slots: one non-blocking read of
                    // each, in one round trip per node.
                    let reads = crate::op::many(
                        keys.iter()
                            .map(|key| {
                                let mut r = self.read_group(key, None);
                                r.claim = claim;
                                r
                            })
                            .collect::<Vec<_>>(),
                    );
                    io.run(reads).await.map(|per_stream| {
                        per_stream
                            .into_iter()
                            .enumerate()
                            .flat_map(|(k, got)| {
                                got.unwrap_or_default()
                                    .into_iter()
                                    .map(move |(e, n)| (k, e, n))
                            })
                            .collect::<Vec<_>>()
                    })
                } else {
                    read_until(io, Deadline::after(o.block), |block| {
                        let mut r = self.read_group(keys[0], block);
                        r.claim = claim;
                        r
                    })
                    .await
                    .map(|got| {
                        got.unwrap_or_default()
                            .into_iter()
                            .map(|(e, n)| (0, e, n))
                            .collect()
                    })
                };
                match read {
                    Ok(got) => {
                        batch = got;
                        // Claimed entries were delivered before.
                        stats.claimed += batch.iter().filter(|(_, _, n)| *n > 1).count() as u64;
                    }
                    Err(e) if is_nogroup(&e) => {
                        io.run(self.create()).await?;
                        continue;
                    }
                    Err(e) if claim.is_some() && e.server_code() == Some("ERR") => {
                        // A server without `CLAIM` (a failover to an older
                        // one): look again, go on with what it has.
                        let now = io.run(StreamFeatures::detect()).await?;
                        if now.xreadgroup_claim {
                            return Err(e);
                        }
                        log::warn!(target: "redis_state::stream", "{}: the server refused XREADGROUP … CLAIM; using XAUTOCLAIM: {e}", self.group.stream.key);
                        features = now;
                        next_claim = Instant::now();
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                if several {
                    if batch.is_empty() {
                        if !pause(io, shutdown, idle).await {
                            break;
                        }
                        idle = (idle * 2).min(o.block.max(crate::driver::POLL_FIRST));
                    } else {
                        idle = crate::driver::POLL_FIRST;
                    }
                }
            }
            // The first entry was just delivered; each later one is kept
            // (its idle time reset) with the settlement of the one before,
            // once the batch is older than half of `claim_idle` (before
            // that, no other consumer can claim it).
            let mut kept = true;
            let read_at = Instant::now();
            let safe = o.claim_idle / 2;
            let ids: Vec<(usize, String)> = batch
                .iter()
                .map(|(k, (id, _), _)| (*k, id.clone()))
                .collect();
            for (i, (k, (id, fields), deliveries)) in batch.into_iter().enumerate() {
                if shutdown.is_fired() {
                    break; // the rest stays pending
                }
                let fresh = read_at.elapsed() < safe;
                kept |= fresh;
                let next = ids
                    .get(i + 1)
                    .map(|(nk, nid)| (keys[*nk], nid.as_str()))
                    .filter(|_| !fresh);
                kept = self
                    .handle(
                        io,
                        (shutdown, &features),
                        handler,
                        (keys[k], &id, &fields, deliveries),
                        kept,
                        next,
                        &mut stats,
                    )
                    .await?;
            }
            if !several
                && self.group.stream.retention.groups.is_some()
                && Instant::now() >= next_trim
            {
                next_trim = Instant::now() + o.trim_every;
                stats.trimmed += io.run(self.group.stream.trim()).await?;
            }
        }
        Ok(stats)
    }

    /// Handles one entry; returns whether the next entry of the batch was
    /// kept along with this one's settlement.
    #[allow(clippy::too_many_arguments, reason = "one private step")]
    async fn handle<I, F, Fut, R, E>(
        &self,
        io: &mut I,
        (shutdown, features): (&Shutdown, &StreamFeatures),
        handler: &mut F,
        (key, id, fields, deliveries): (&str, &str, &RawFields, u64),
        kept: bool,
        next: Option<(&str, &str)>,
        stats: &mut ConsumerStats,
    ) -> Result<bool>
    where
        I: Io,
        F: FnMut(Delivery<T>) -> Fut,
        Fut: Future<Output = std::result::Result<R, E>>,
        R: Into<Ack>,
        E: std::fmt::Display,
    {
        let o = &self.options;
        if !kept && !io.run(self.keep(key, id)).await? {
            // Claimed by another consumer meanwhile: it is theirs.
            return Ok(false);
        }
        let at = format!("{key}@{id}");
        if let Err(e) = C::decode(&at, fields) {
            log::warn!(target: "redis_state::stream", "dead-lettering {at}: {e}");
            stats.dead += 1;
            io.run(
                self.dead_letter(key, id, fields, &e.to_string(), 0, deliveries)
                    .ackdel(features),
            )
            .await?;
            return Ok(false);
        }
        if deliveries > o.max_deliveries {
            let error = format!("delivered {deliveries} times (its consumers did not finish it)");
            log::warn!(target: "redis_state::stream", "dead-lettering {at}: {error}");
            stats.dead += 1;
            io.run(
                self.dead_letter(key, id, fields, &error, 0, deliveries)
                    .ackdel(features),
            )
            .await?;
            return Ok(false);
        }
        let mut attempt = 1;
        loop {
            let event = C::decode(&at, fields)?;
            let d = Delivery {
                id: id.to_owned(),
                event,
                attempt,
                deliveries,
            };
            match handler(d).await {
                Ok(r) => {
                    let (applied, next_kept) = io
                        .run(Settle {
                            key,
                            group: &self.group.name,
                            id,
                            effect: r.into().0,
                            delete: o.delete_acked,
                            ackdel: features.xackdel,
                            next: next.map(|(nk, n)| self.keep(nk, n)),
                        })
                        .await?;
                    if applied {
                        stats.done += 1;
                    } else {
                        stats.already_acked += 1;
                    }
                    return Ok(next_kept);
                }
                Err(e) if attempt >= o.max_attempts.max(1) => {
                    let error = e.to_string();
                    log::warn!(target: "redis_state::stream", "dead-lettering {at} after {attempt} attempts: {error}");
                    stats.dead += 1;
                    io.run(
                        self.dead_letter(key, id, fields, &error, attempt, deliveries)
                            .ackdel(features),
                    )
                    .await?;
                    return Ok(false);
                }
                Err(e) => {
                    stats.retries += 1;
                    log::debug!(target: "redis_state::stream", "{at} failed (attempt {attempt}): {e}");
                    if !pause(io, shutdown, backoff(o, attempt)).await {
                        return Ok(false); // left pending for the others
                    }
                    if !io.run(self.keep(key, id)).await? {
                        return Ok(false);
                    }
                    attempt += 1;
                }
            }
        }
    }

    fn read_group<'a>(&'a self, key: &'a str, block: Option<Duration>) -> ReadGroup<'a> {
        ReadGroup {
            key,
            group: &self.group.name,
            consumer: &self.name,
            count: self.options.batch,
            block,
            from: ">",
            claim: None,
        }
    }

    fn keep<'a>(&'a self, key: &'a str, id: &'a str) -> Keep<'a> {
        Keep {
            key,
            group: &self.group.name,
            consumer: &self.name,
            id,
        }
    }

    fn autoclaim<'a>(&'a self, key: &'a str) -> AutoClaim<'a> {
        AutoClaim {
            key,
            group: &self.group.name,
            consumer: &self.name,
            idle: crate::random::millis(self.options.claim_idle),
            count: self.options.batch,
        }
    }

    fn dead_letter<'a>(
        &'a self,
        key: &'a str,
        id: &'a str,
        fields: &'a RawFields,
        error: &'a str,
        attempts: u32,
        deliveries: u64,
    ) -> DeadLetter<'a> {
        DeadLetter {
            key,
            dead: format!("{key}:dead"),
            group: &self.group.name,
            id,
            fields,
            error,
            attempts,
            deliveries,
            max_len: self.options.dead_max_len,
            delete: self.options.delete_acked,
            ackdel: false,
            added: false,
        }
    }

    /// Looks up how often each claimed entry of stream `k` (`key`) was
    /// delivered (`XPENDING` extended form, this consumer's entries).
    async fn with_deliveries<I: Io>(
        &self,
        io: &mut I,
        k: usize,
        key: &str,
        entries: Vec<RawEntry>,
    ) -> Result<Vec<(usize, RawEntry, u64)>> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(Vec::new());
        };
        let counts = io
            .run(
                crate::op::command::<Value>("XPENDING", key)
                    .arg(&self.group.name)
                    .arg(&first.0)
                    .arg(&last.0)
                    .arg(entries.len() * 2)
                    .arg(&self.name),
            )
            .await?;
        let mut map = std::collections::HashMap::new();
        if let Value::Array(rows) = &counts {
            for row in rows {
                if let Value::Array(cols) = row
                    && let (Some(id), Some(Value::Int(n))) = (cols.first(), cols.get(3))
                    && let Some(id) = text(id)
                {
                    map.insert(id, u64::try_from(*n).unwrap_or(1));
                }
            }
        }
        Ok(entries
            .into_iter()
            .map(|e| {
                let n = map.get(e.0.as_bytes()).copied().unwrap_or(1);
                (k, e, n)
            })
            .collect())
    }
}

/// The delay before retry `attempt + 1`: exponential, capped, with jitter
/// on the upper half.
pub(crate) fn backoff(o: &ConsumerOptions, attempt: u32) -> Duration {
    retry_delay(o.backoff, o.max_backoff, attempt)
}

/// `first * 2^(attempt-1)` capped at `max`, jittered over its upper half.
pub(crate) fn retry_delay(first: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = first
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max.max(first));
    crate::random::between(exp / 2, exp)
}

/// Sleeps `d` in slices, watching `shutdown`; false when it fired.
pub(crate) async fn pause<I: Io>(io: &mut I, shutdown: &Shutdown, d: Duration) -> bool {
    let deadline = Deadline::after(d);
    while !deadline.is_over() {
        if shutdown.is_fired() {
            return false;
        }
        io.sleep(deadline.cap(Duration::from_millis(50))).await;
    }
    !shutdown.is_fired()
}

fn is_nogroup(e: &Error) -> bool {
    e.server_code() == Some("NOGROUP")
}

// ---------------------------------------------------------------------------
// Operations of the loop

/// `XREADGROUP GROUP g c COUNT n [BLOCK ms] [CLAIM idle] STREAMS key >`;
/// `None` when nothing came. The output pairs each entry with its
/// delivery count as of this read: 1 for a new entry; with `CLAIM`, one
/// more than the count the reply gives for a claimed one (the server
/// reports the count before this delivery).
struct ReadGroup<'a> {
    key: &'a str,
    group: &'a str,
    consumer: &'a str,
    count: usize,
    block: Option<Duration>,
    /// `>` for new entries, `0` for this consumer's pending ones.
    from: &'static str,
    /// `CLAIM <ms>`: entries idle that long are claimed by the read.
    claim: Option<u64>,
}

impl Operation for ReadGroup<'_> {
    type Output = Option<Vec<(RawEntry, u64)>>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        // redis-rs' typed options write `GROUP … COUNT … BLOCK … CLAIM …`.
        let mut options = redis::streams::StreamReadOptions::default()
            .group(self.group, self.consumer)
            .count(self.count.max(1));
        if let Some(b) = self.block {
            options = options
                .block(usize::try_from(crate::random::millis(b).max(1)).unwrap_or(usize::MAX));
        }
        if let Some(idle) = self.claim {
            options = options
                .claim(usize::try_from(idle.min(crate::random::MAX_MILLIS)).unwrap_or(usize::MAX));
        }
        let cmd = plan.cmd_routed("XREADGROUP", self.key);
        cmd.arg(&options)
            .arg("STREAMS")
            .arg(self.key)
            .arg(self.from);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let v = replies.next_value()?;
        let got = stream_entries(&v)?;
        if got.is_empty() {
            return Ok(Step::Done(None));
        }
        let counts = if self.claim.is_some() {
            claim_counts(&v)
        } else {
            Vec::new()
        };
        Ok(Step::Done(Some(
            got.into_iter()
                .enumerate()
                .map(|(i, e)| (e, counts.get(i).copied().flatten().unwrap_or(0) + 1))
                .collect(),
        )))
    }
}

/// The delivery counts of a `CLAIM` read's entries, in order: each entry
/// is `[id, fields, idle ms, delivery count]` (0 for a new entry).
fn claim_counts(v: &Value) -> Vec<Option<u64>> {
    let lists: Vec<&Value> = match v {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => Some(&pair[1]),
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams.iter().map(|(_, e)| e).collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for list in lists {
        if let Value::Array(items) = list {
            for item in items {
                out.push(match item {
                    Value::Array(parts) => match parts.get(3) {
                        Some(Value::Int(n)) => u64::try_from(*n).ok(),
                        _ => None,
                    },
                    _ => None,
                });
            }
        }
    }
    out
}

/// `XAUTOCLAIM key g c idle 0-0 COUNT n`.
struct AutoClaim<'a> {
    key: &'a str,
    group: &'a str,
    consumer: &'a str,
    idle: u64,
    count: usize,
}

impl Operation for AutoClaim<'_> {
    type Output = Vec<RawEntry>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.cmd("XAUTOCLAIM", self.key)
            .arg(self.group)
            .arg(self.consumer)
            .arg(self.idle.min(crate::random::MAX_MILLIS))
            .arg("0-0")
            .arg("COUNT")
            .arg(self.count.max(1));
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let v = replies.next_value()?;
        // [next cursor, [entries], [deleted ids]]; entries deleted while
        // pending were dropped from the pending list by the server.
        match &v {
            Value::Array(parts) => match parts.get(1) {
                Some(list) => entry_list(list).map(Step::Done),
                None => Err(Error::unexpected("XAUTOCLAIM", &v)),
            },
            _ => Err(Error::unexpected("XAUTOCLAIM", &v)),
        }
    }
}

/// Resets the idle time of an entry still pending under `consumer`; the
/// output says whether it was.
struct Keep<'a> {
    key: &'a str,
    group: &'a str,
    consumer: &'a str,
    id: &'a str,
}

impl Operation for Keep<'_> {
    type Output = bool;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.script(&KEEP, &[self.key])?
            .arg(self.group)
            .arg(self.consumer)
            .arg(self.id);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        let kept: i64 = replies.next("the stream keep script")?;
        Ok(Step::Done(kept == 1))
    }
}

/// Acknowledges an entry (with its effect), and keeps the next one of the
/// batch in the same round trip. Output: (acknowledged now, next kept).
struct Settle<'a> {
    key: &'a str,
    group: &'a str,
    id: &'a str,
    effect: Option<Effect>,
    delete: bool,
    /// The server has `XACKDEL`.
    ackdel: bool,
    next: Option<Keep<'a>>,
}

/// `XACKDEL key group KEEPREF IDS 1 id` (Redis 8.2), written by redis-rs'
/// typed command; its reply is one code per id (1: acknowledged and
/// deleted).
fn ack_del(key: &str, group: &str, id: &str) -> redis::Cmd {
    redis::Cmd::xack_del(
        key,
        group,
        &[id],
        redis::streams::StreamDeletionPolicy::KeepRef,
    )
}

/// The first code of an `XACKDEL` reply, as `XACK` would count it.
fn ack_del_count(v: &Value) -> Result<i64> {
    match v {
        Value::Array(codes) => match codes.first() {
            Some(Value::Int(1)) => Ok(1),
            Some(Value::Int(_)) => Ok(0),
            _ => Err(Error::unexpected("XACKDEL", v)),
        },
        _ => Err(Error::unexpected("XACKDEL", v)),
    }
}

impl Operation for Settle<'_> {
    type Output = (bool, bool);
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match &self.effect {
            None if self.delete && self.ackdel => {
                plan.cmd_built(ack_del(self.key, self.group, self.id), self.key.as_bytes());
            }
            None => {
                plan.cmd("XACK", self.key).arg(self.group).arg(self.id);
            }
            Some(effect) => {
                let mut keys: Vec<&[u8]> = vec![self.key.as_bytes()];
                keys.extend(effect.keys.iter().map(Vec::as_slice));
                let cmd = plan.script(&ACK_EFFECT, &keys)?;
                cmd.arg(self.group).arg(self.id);
                for a in &effect.args {
                    cmd.arg(&a[..]);
                }
            }
        }
        if self.delete && !(self.ackdel && self.effect.is_none()) {
            plan.cmd("XDEL", self.key).arg(self.id);
        }
        if let Some(next) = &mut self.next {
            next.prepare(plan)?;
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<(bool, bool)>> {
        let one = self.delete && self.ackdel && self.effect.is_none();
        let n: i64 = if one {
            ack_del_count(&replies.next_value()?)?
        } else {
            replies.next("XACK")?
        };
        if self.delete && !one {
            replies.next_value()?;
        }
        let next = match &mut self.next {
            None => false,
            Some(k) => matches!(k.complete(replies)?, Step::Done(true)),
        };
        Ok(Step::Done((n == 1 || self.effect.is_none(), next)))
    }
}

/// `XADD <dead> MAXLEN ~ n * origin … error …`, then `XACK`.
struct DeadLetter<'a> {
    key: &'a str,
    dead: String,
    group: &'a str,
    id: &'a str,
    fields: &'a RawFields,
    error: &'a str,
    attempts: u32,
    deliveries: u64,
    max_len: u64,
    delete: bool,
    /// The server has `XACKDEL`: with `delete`, one command settles.
    ackdel: bool,
    added: bool,
}

impl DeadLetter<'_> {
    fn ackdel(mut self, features: &StreamFeatures) -> Self {
        self.ackdel = features.xackdel;
        self
    }
}

impl Operation for DeadLetter<'_> {
    type Output = ();
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if self.added {
            if self.delete && self.ackdel {
                plan.cmd_built(ack_del(self.key, self.group, self.id), self.key.as_bytes());
                return Ok(());
            }
            plan.cmd("XACK", self.key).arg(self.group).arg(self.id);
            if self.delete {
                plan.cmd("XDEL", self.key).arg(self.id);
            }
            return Ok(());
        }
        let cmd = plan.cmd("XADD", &self.dead);
        cmd.arg("MAXLEN")
            .arg("~")
            .arg(self.max_len.max(1))
            .arg("*")
            .arg("origin")
            .arg(self.id)
            .arg("group")
            .arg(self.group)
            .arg("error")
            .arg(self.error)
            .arg("attempts")
            .arg(self.attempts)
            .arg("deliveries")
            .arg(self.deliveries);
        for (f, v) in self.fields {
            cmd.arg(&f[..]).arg(&v[..]);
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<()>> {
        replies.next_value()?;
        if self.added && self.delete && !self.ackdel {
            replies.next_value()?;
        }
        if self.added {
            return Ok(Step::Done(()));
        }
        self.added = true;
        Ok(Step::Again)
    }
}
