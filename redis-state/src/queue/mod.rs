//! Job queues: typed jobs that a worker that dies never loses.
//!
//! ```no_run
//! use redis_state::queue::Queue;
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Email { to: String }
//! # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
//! use redis_state::prelude::*;
//! let emails = Queue::<Email>::new("emails");
//! emails.push(&Email { to: "ann@example.com".into() }).priority(5).run(con)?;
//! let (_stop, shutdown) = redis_state::cache::shutdown();
//! emails.worker().run(con, &shutdown, |job| {
//!     println!("to {}", job.data.to);
//!     Ok::<_, String>(())
//! })?;
//! # Ok(()) }
//! ```
//!
//! # How a job moves
//!
//! Every state change is one Lua script over the queue's keys (one hash
//! tag, so one Cluster slot):
//!
//! * **push**: the payload is stored and the job is *ready* (a sorted set
//!   by priority, oldest first among equals) or *delayed* (a sorted set by
//!   due time).
//! * **take**: promotes the delayed jobs that are due and reclaims the jobs
//!   whose lease ran out (at most 100 of each per call, and only once the
//!   earliest due time or lease end, kept in `<q>:due`, has passed; no
//!   pub/sub, no sweeper process: the workers' own calls do it, by the
//!   server's clock),
//!   then pops the ready job of highest priority under a *lease* (the
//!   visibility timeout, separate from any delay) with a fresh random
//!   token. A job whose lease ran out goes back to ready (its attempt
//!   counted) and is taken again: **a job taken by a worker that dies is
//!   never lost**, only delayed by the lease.
//! * **complete**, **fail**, **extend**: fenced by the token. The script
//!   checks that the token is the job's and that the lease has not run out;
//!   a worker whose lease ran out gets [`Error::LeaseLost`]-style refusal
//!   (its completion, failure, extension and [`Effect`] are not applied).
//!   An effect is applied with the completion in the same script: exactly
//!   once for effects inside Redis. An effect command the server refuses
//!   fails the completion ([`Error::Server`]) with the job still leased. Everything outside Redis is at least
//!   once: a job may run again after its lease ran out.
//! * A failure retries the job after an exponential backoff with jitter
//!   (it waits in *delayed*); after `max_attempts` attempts (or when its
//!   payload does not decode) the job is *dead*: kept, with its last
//!   error, in the dead-letter set (the newest `dead_max` jobs).
//!
//! # Keys (`<q>` is `queue:{<name>}`)
//!
//! | key | type | content |
//! |---|---|---|
//! | `<q>:seq` | string | the last job id |
//! | `<q>:jobs` | hash | per job id `<id>`: fields `<id>` the payload (JSON), `<id>:p` its ready score, `<id>:a` attempts so far, `<id>:t` lease token, `<id>:l` lease end (ms), `<id>:e` last error |
//! | `<q>:ready` | sorted set | ready jobs, by minus the priority |
//! | `<q>:delayed` | sorted set | delayed and retrying jobs, by due time (ms) |
//! | `<q>:active` | sorted set | leased jobs, by lease end (ms) |
//! | `<q>:dead` | sorted set | dead jobs, by the time they died |
//! | `<q>:due` | string | a lower bound (ms) of the earliest due time and lease end: takes look at `delayed` and `active` only once it has passed |
//! | `<q>:notify` | list | a wake-up token for blocked workers |
//!
//! Before this layout, each job field had its own hash (`<q>:data`,
//! `<q>:prio`, `<q>:attempts`, `<q>:token`, `<q>:errors`). A take that meets
//! a job left there puts it back untouched and fails with
//! [`Error::QueueLayout`]: drain such a queue with the version that pushed
//! its jobs before running this one, and never run both on one queue.
//!
//! [`ListQueue`] is the plain form other clients use (`RPUSH` / `BLPOP` of
//! JSON at `queue:<name>`): simple and interoperable, but a job popped by a
//! worker that dies is lost.

mod depth;
mod list;

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use crate::cache::Shutdown;
use crate::driver::{Async, Blocking, Deadline, Io, block_on, read_until};
use crate::error::{DecodeError, Error, Result};
use crate::exec::{AsyncExecutor, SyncExecutor};
use crate::op::{Operation, Plan, Replies, Step};
use crate::script::Script;
use crate::stream::consumer::retry_delay;
pub use crate::stream::{Ack, Effect};

pub use depth::{Depth, QueueDepth, depth_of};
pub(crate) use depth::{SERVER_TIME, time_ms};
pub use list::{ListPop, ListPush, ListQueue};

static PUSH: Script = Script::new("redis_state.queue.push", include_str!("lua/push.lua"));
// take, settle and a worker's settle-and-take share their Lua (the key
// layout, the clock, the functions) and differ in their last lines.
static TAKE: Script = Script::new(
    "redis_state.queue.take",
    concat!(
        include_str!("lua/common.lua"),
        include_str!("lua/take_fn.lua"),
        include_str!("lua/take.lua")
    ),
);
static SETTLE: Script = Script::new(
    "redis_state.queue.settle",
    concat!(
        include_str!("lua/common.lua"),
        include_str!("../stream/lua/effect.lua"),
        include_str!("lua/settle_fn.lua"),
        include_str!("lua/settle.lua")
    ),
);
static SETTLE_TAKE: Script = Script::new(
    "redis_state.queue.settle_take",
    concat!(
        include_str!("lua/common.lua"),
        include_str!("../stream/lua/effect.lua"),
        include_str!("lua/settle_fn.lua"),
        include_str!("lua/take_fn.lua"),
        include_str!("lua/settle_take.lua")
    ),
);

/// The keys of the take and settle scripts, in their order (the Lua's
/// `KEYS[1..8]`; a completion's effect keys follow). `data` is the payload
/// hash of the layout before `jobs`, only read to name a job left in it.
const SCRIPT_KEYS: [&str; 8] = [
    "jobs", "ready", "delayed", "active", "dead", "notify", "due", "data",
];

/// Where the wake-up list is in [`SCRIPT_KEYS`].
const NOTIFY: usize = 5;

/// The keys of the push script, in its order.
const PUSH_KEYS: [&str; 6] = ["seq", "jobs", "ready", "delayed", "notify", "due"];

/// A queue of jobs of type `T` (JSON payloads); see the [module docs](self).
pub struct Queue<T> {
    name: String,
    base: String,
    /// The keys of the take and settle scripts ([`SCRIPT_KEYS`]), written
    /// once: a worker's every round passes them.
    script_keys: Arc<[String]>,
    /// The keys of the push script ([`PUSH_KEYS`]).
    push_keys: Arc<[String]>,
    options: QueueOptions,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            name: self.name.clone(),
            base: self.base.clone(),
            script_keys: Arc::clone(&self.script_keys),
            push_keys: Arc::clone(&self.push_keys),
            options: self.options.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("job", &std::any::type_name::<T>())
            .field("options", &self.options)
            .finish()
    }
}

/// How a queue's workers handle jobs. Start from `QueueOptions::default()`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QueueOptions {
    /// How long a taken job stays leased before it is taken again
    /// (default 30 s). Longer jobs extend it ([`Queue::extend`]).
    pub lease: Duration,
    /// Attempts before a job is dead (default 5); a lease that ran out
    /// counts as an attempt.
    pub max_attempts: u32,
    /// The first retry delay, doubled per attempt up to `max_backoff`, with
    /// jitter on the upper half (defaults 1 s and 5 min).
    pub backoff: Duration,
    /// See `backoff`.
    pub max_backoff: Duration,
    /// How many dead jobs are kept (default 10 000; the oldest go first).
    pub dead_max: u64,
    /// How long one wait for a job lasts before a worker looks at shutdown
    /// again (default 400 ms; also how late an idle worker sees a delayed
    /// job become due, at worst).
    pub block: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            lease: Duration::from_secs(30),
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            dead_max: 10_000,
            block: Duration::from_millis(400),
        }
    }
}

/// A job taken under a lease.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Job<T> {
    /// The job id (16 digits, increasing).
    pub id: String,
    /// The payload.
    pub data: T,
    /// 1 for the first attempt, then 2, 3, ...
    pub attempt: u32,
    /// The lease token: what fences this worker's completion.
    pub token: String,
}

/// A dead job, as [`Queue::dead`] lists it.
#[derive(Debug)]
#[non_exhaustive]
pub struct DeadJob<T> {
    /// The job id.
    pub id: String,
    /// The payload, or why it does not decode.
    pub data: Result<T>,
    /// The last error.
    pub error: String,
    /// The attempts made.
    pub attempts: u32,
}

/// What a worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Jobs completed.
    pub done: u64,
    /// Failures scheduled for a retry.
    pub retried: u64,
    /// Jobs that died here.
    pub dead: u64,
    /// Completions or failures refused because the lease ran out meanwhile.
    pub fenced: u64,
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Queue<T> {
    /// The queue `name` (keys `queue:{<name>}:…`).
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let base = format!("queue:{{{name}}}");
        Queue {
            script_keys: SCRIPT_KEYS.iter().map(|p| format!("{base}:{p}")).collect(),
            push_keys: PUSH_KEYS.iter().map(|p| format!("{base}:{p}")).collect(),
            base,
            name,
            options: QueueOptions::default(),
            _t: PhantomData,
        }
    }

    /// Replaces the options.
    pub fn options(mut self, options: QueueOptions) -> Self {
        self.options = options;
        self
    }

    /// The queue name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key of part `part` (`ready`, `data`, ...).
    pub fn key(&self, part: &str) -> String {
        format!("{}:{part}", self.base)
    }

    fn check_name(&self) -> Result<()> {
        if self.name.contains(['{', '}']) || self.name.is_empty() {
            return Err(Error::InvalidKeyPart {
                what: "queue name",
                value: self.name.clone(),
                reason: "must be non-empty and hold no brace",
            });
        }
        Ok(())
    }

    fn keys(&self, parts: &[&str]) -> Result<Vec<String>> {
        self.check_name()?;
        Ok(parts.iter().map(|p| self.key(p)).collect())
    }

    /// The keys of the take and settle scripts.
    fn script_keys(&self) -> Result<Arc<[String]>> {
        self.check_name()?;
        Ok(Arc::clone(&self.script_keys))
    }

    /// Adds a job, ready now at priority 0; set [`Push::priority`] and
    /// [`Push::delay`]. One `EVALSHA`; the output is the job id. Many
    /// pushes in [`many`](crate::many) are one pipeline.
    pub fn push(&self, data: &T) -> Push {
        let payload = serde_json::to_vec(data).map_err(|e| Error::Encode {
            model: std::any::type_name::<T>(),
            field: "data",
            message: e.to_string(),
        });
        Push {
            keys: self.check_name().map(|()| Arc::clone(&self.push_keys)),
            payload: Some(payload),
            priority: 0,
            delay: Duration::ZERO,
        }
    }

    /// Takes the next job under a lease, without waiting: one `EVALSHA`
    /// (with `block`, a `BLPOP` of the wake-up list first, in the same
    /// pipeline). `None` when no job is ready. Workers do this for you.
    pub fn take(&self) -> Take<T> {
        self.take_op(None)
    }

    fn take_op(&self, block: Option<Duration>) -> Take<T> {
        Take {
            raw: TakeRaw {
                keys: self.script_keys(),
                lease: self.options.lease,
                max_attempts: self.options.max_attempts.max(1),
                dead_max: self.options.dead_max,
                block,
                token: None,
            },
            queue: self.name.clone(),
            _t: PhantomData,
        }
    }

    fn settle(&self, job_id: &str, token: &str, verdict: Verdict) -> Settle {
        Settle {
            keys: self.script_keys(),
            queue: self.name.clone(),
            id: job_id.to_owned(),
            token: token.to_owned(),
            dead_max: self.options.dead_max,
            verdict,
        }
    }

    /// Completes `job` (with an [`Effect`] applied in the same script when
    /// `ack` carries one), only while its lease is held: fails with
    /// [`Error::LeaseLost`] otherwise, applying nothing. One `EVALSHA`.
    pub fn complete(&self, job: &Job<T>, ack: impl Into<Ack>) -> Settle {
        self.settle(&job.id, &job.token, Verdict::Done(ack.into().0))
    }

    /// Fails `job`: retried after a backoff, or dead after `max_attempts`.
    /// Fenced like [`complete`](Self::complete).
    pub fn fail(&self, job: &Job<T>, error: &str) -> Settle {
        self.fail_verdict(&job.id, &job.token, job.attempt, error)
    }

    fn fail_verdict(&self, id: &str, token: &str, attempt: u32, error: &str) -> Settle {
        let o = &self.options;
        let verdict = if attempt >= o.max_attempts.max(1) {
            Verdict::Dead(error.to_owned())
        } else {
            Verdict::Retry(
                error.to_owned(),
                retry_delay(o.backoff, o.max_backoff, attempt),
            )
        };
        self.settle(id, token, verdict)
    }

    /// Extends the lease of `job` to `lease` from now, while it is held
    /// (else [`Error::LeaseLost`]). Run it from another connection while a
    /// long job works.
    pub fn extend(&self, job: &Job<T>, lease: Duration) -> Settle {
        self.settle(&job.id, &job.token, Verdict::Extend(lease))
    }

    /// Counts: (ready, delayed, active, dead). One pipeline of four `ZCARD`s.
    pub fn counts(&self) -> impl Operation<Output = (u64, u64, u64, u64)> + Send + use<T> {
        crate::op::batch((
            crate::op::command::<u64>("ZCARD", self.key("ready")),
            crate::op::command::<u64>("ZCARD", self.key("delayed")),
            crate::op::command::<u64>("ZCARD", self.key("active")),
            crate::op::command::<u64>("ZCARD", self.key("dead")),
        ))
    }

    /// The newest `count` dead jobs, with their last error.
    pub fn dead(&self, count: usize) -> Dead<T> {
        Dead {
            keys: self.keys(&["dead", "jobs"]),
            queue: self.name.clone(),
            count,
            ids: None,
            _t: PhantomData,
        }
    }

    /// A worker with this queue's options.
    pub fn worker(&self) -> Worker<T> {
        Worker {
            queue: self.clone(),
        }
    }
}

/// See [`Queue::push`].
#[derive(Debug)]
pub struct Push {
    keys: Result<Arc<[String]>>,
    payload: Option<Result<Vec<u8>>>,
    priority: i32,
    delay: Duration,
}

impl Push {
    /// Higher first (default 0); among equals, oldest first.
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = p;
        self
    }

    /// Due after `d` instead of now (by the server's clock).
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

impl Operation for Push {
    type Output = String;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let Some(payload) = self.payload.take() else {
            return Ok(());
        };
        let payload = payload?;
        let keys = self.keys.as_ref().map_err(clone_err)?;
        plan.script(&PUSH, &keys[..])?
            .arg(payload)
            .arg(-i64::from(self.priority))
            .arg(ms(self.delay));
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<String>> {
        replies.next("the queue push script").map(Step::Done)
    }
}

/// See [`Queue::take`].
#[derive(Debug)]
pub struct Take<T> {
    raw: TakeRaw,
    queue: String,
    _t: PhantomData<fn() -> T>,
}

/// A job as taken, before its payload is decoded.
#[derive(Debug)]
struct Taken {
    id: String,
    payload: Option<Vec<u8>>,
    attempt: u32,
    token: String,
}

impl<T> Take<T> {
    fn raw(self) -> TakeRaw {
        self.raw
    }
}

#[derive(Debug)]
struct TakeRaw {
    keys: Result<Arc<[String]>>,
    lease: Duration,
    max_attempts: u32,
    dead_max: u64,
    block: Option<Duration>,
    token: Option<String>,
}

impl Operation for TakeRaw {
    type Output = Option<Taken>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let keys = self.keys.as_ref().map_err(clone_err)?;
        if let Some(b) = self.block {
            plan.cmd("BLPOP", &keys[NOTIFY])
                .arg(format!("{:.3}", b.as_secs_f64().max(0.001)));
        }
        let token = crate::random::hex_token(16)?;
        plan.script(&TAKE, &keys[..])?
            .arg(crate::random::millis(self.lease).max(1))
            .arg(&token)
            .arg(self.max_attempts)
            .arg(self.dead_max)
            .arg(u8::from(self.block.is_some()));
        self.token = Some(token);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Option<Taken>>> {
        if self.block.is_some() {
            replies.next_value()?;
        }
        let v = replies.next_value()?;
        self.decode(v).map(Step::Done)
    }
}

impl TakeRaw {
    /// The error for job `id` met in the layout before `<q>:jobs`.
    fn old_layout(&self, id: &[u8]) -> Error {
        let key = self
            .keys
            .as_ref()
            .map(|k| k[SCRIPT_KEYS.len() - 1].clone())
            .unwrap_or_default();
        let queue = key
            .strip_prefix("queue:{")
            .and_then(|k| k.strip_suffix("}:data"))
            .unwrap_or_default()
            .to_owned();
        Error::QueueLayout {
            queue,
            job: String::from_utf8_lossy(id).into_owned(),
            key,
        }
    }

    /// The take script's reply: `{id, payload, attempt}` or `{false, ms}`.
    fn decode(&mut self, v: Value) -> Result<Option<Taken>> {
        let Value::Array(parts) = v else {
            return Err(Error::unexpected("the queue take script", &v));
        };
        let mut it = parts.into_iter();
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(Value::BulkString(id)), Some(payload), Some(Value::Int(attempt)), None) => {
                Ok(Some(Taken {
                    id: String::from_utf8(id)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                    payload: match payload {
                        Value::BulkString(b) => Some(b),
                        _ => None,
                    },
                    attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                    token: self.token.take().unwrap_or_default(),
                }))
            }
            (Some(Value::Nil), Some(Value::Int(-2)), Some(Value::BulkString(id)), None) => {
                Err(self.old_layout(&id))
            }
            (Some(Value::Nil), ..) => Ok(None),
            (a, b, c, d) => {
                let parts: Vec<Value> = [a, b, c, d].into_iter().flatten().collect();
                Err(Error::unexpected(
                    "the queue take script",
                    &Value::Array(parts),
                ))
            }
        }
    }
}

/// Milliseconds for a script argument, 0 allowed, at most 2^53 - 1.
fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(crate::random::MAX_MILLIS)) as u64
}

fn clone_err(e: &Error) -> Error {
    match e {
        Error::InvalidKeyPart {
            what,
            value,
            reason,
        } => Error::InvalidKeyPart {
            what,
            value: value.clone(),
            reason,
        },
        other => Error::InvalidArgument {
            operation: "a queue",
            reason: other.to_string(),
        },
    }
}

fn decode<T: serde::de::DeserializeOwned>(queue: &str, t: &Taken) -> Result<T> {
    let at = format!("queue:{{{queue}}}:jobs#{}", t.id);
    let Some(raw) = &t.payload else {
        return Err(DecodeError::new(at, Some(&t.id), "JSON", None).into());
    };
    serde_json::from_slice(raw).map_err(|e| {
        let mut d = DecodeError::new(at, Some(&t.id), "JSON", Some(raw));
        d.detail = Some(e.to_string());
        d.into()
    })
}

impl<T: serde::de::DeserializeOwned> Operation for Take<T> {
    type Output = Option<Job<T>>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.raw.prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let Step::Done(taken) = self.raw.complete(replies)? else {
            return Ok(Step::Again);
        };
        let Some(t) = taken else {
            return Ok(Step::Done(None));
        };
        let data = decode::<T>(&self.queue, &t)?;
        Ok(Step::Done(Some(Job {
            id: t.id,
            data,
            attempt: t.attempt,
            token: t.token,
        })))
    }
}

/// What a settlement does.
#[derive(Debug)]
enum Verdict {
    Done(Option<Effect>),
    Retry(String, Duration),
    Dead(String),
    Extend(Duration),
}

/// What a settlement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settled {
    /// Completed (or, for an extension, extended).
    Done,
    /// Scheduled for a retry.
    Retried,
    /// Dead: in the dead-letter set.
    Dead,
}

/// See [`Queue::complete`], [`Queue::fail`], [`Queue::extend`].
#[derive(Debug)]
pub struct Settle {
    keys: Result<Arc<[String]>>,
    queue: String,
    id: String,
    token: String,
    dead_max: u64,
    verdict: Verdict,
}

impl Settle {
    /// The script's keys (the queue's, then an effect's) and what its
    /// first six arguments need.
    fn call(&self) -> Result<(Vec<&[u8]>, SettleArgs<'_>)> {
        let queue_keys = self.keys.as_ref().map_err(clone_err)?;
        let mut keys: Vec<&[u8]> = queue_keys.iter().map(|k| k.as_bytes()).collect();
        let (verdict, error, ms) = match &self.verdict {
            Verdict::Done(effect) => {
                if let Some(e) = effect {
                    keys.extend(e.keys.iter().map(|k| &k[..]));
                }
                ("done", "", 0)
            }
            Verdict::Retry(e, d) => ("retry", e.as_str(), ms(*d)),
            Verdict::Dead(e) => ("dead", e.as_str(), 0),
            Verdict::Extend(d) => ("extend", "", crate::random::millis(*d).max(1)),
        };
        Ok((keys, SettleArgs { verdict, error, ms }))
    }

    /// Writes ARGV[1..6] of the settle script.
    fn write_args(&self, cmd: &mut redis::Cmd, a: &SettleArgs<'_>) {
        cmd.arg(&self.id)
            .arg(&self.token)
            .arg(a.verdict)
            .arg(a.error)
            .arg(a.ms)
            .arg(self.dead_max);
    }

    /// Writes the effect commands of a completion, if any.
    fn write_effect(&self, cmd: &mut redis::Cmd) {
        if let Verdict::Done(Some(e)) = &self.verdict {
            for a in &e.args {
                cmd.arg(&a[..]);
            }
        }
    }

    fn outcome(&self, n: i64) -> Result<Settled> {
        match n {
            1 => Ok(Settled::Done),
            2 => Ok(Settled::Retried),
            3 => Ok(Settled::Dead),
            _ => Err(Error::LeaseLost {
                queue: self.queue.clone(),
                job: self.id.clone(),
            }),
        }
    }
}

struct SettleArgs<'a> {
    verdict: &'static str,
    error: &'a str,
    ms: u64,
}

impl Operation for Settle {
    type Output = Settled;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let (keys, args) = self.call()?;
        let cmd = plan.script(&SETTLE, &keys)?;
        self.write_args(cmd, &args);
        self.write_effect(cmd);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Settled>> {
        let n: i64 = replies.next("the queue settle script")?;
        self.outcome(n).map(Step::Done)
    }
}

/// See [`Queue::dead`].
#[derive(Debug)]
pub struct Dead<T> {
    keys: Result<Vec<String>>,
    queue: String,
    count: usize,
    ids: Option<Vec<String>>,
    _t: PhantomData<fn() -> T>,
}

impl<T: serde::de::DeserializeOwned> Operation for Dead<T> {
    type Output = Vec<DeadJob<T>>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let keys = self.keys.as_ref().map_err(clone_err)?;
        match &self.ids {
            None => {
                plan.cmd("ZRANGE", &keys[0])
                    .arg(0)
                    .arg(self.count.max(1) - 1)
                    .arg("REV");
            }
            Some(ids) if !ids.is_empty() => {
                // Per job its payload, last error and attempts.
                let cmd = plan.cmd("HMGET", &keys[1]);
                for id in ids {
                    cmd.arg(id).arg(format!("{id}:e")).arg(format!("{id}:a"));
                }
            }
            Some(_) => {}
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let Some(ids) = &self.ids else {
            let ids: Vec<String> = replies.next("ZRANGE")?;
            let empty = ids.is_empty();
            self.ids = Some(ids);
            return Ok(if empty {
                Step::Done(Vec::new())
            } else {
                Step::Again
            });
        };
        let fields: Vec<Option<Vec<u8>>> = replies.next("HMGET")?;
        let text = |b: Option<&Vec<u8>>| {
            b.map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        Ok(Step::Done(
            ids.iter()
                .zip(fields.chunks(3))
                .map(|(id, f)| {
                    let t = Taken {
                        id: id.clone(),
                        payload: f.first().cloned().flatten(),
                        attempt: 0,
                        token: String::new(),
                    };
                    DeadJob {
                        id: id.clone(),
                        data: decode::<T>(&self.queue, &t),
                        error: text(f.get(1).and_then(Option::as_ref)),
                        attempts: text(f.get(2).and_then(Option::as_ref)).parse().unwrap_or(0),
                    }
                })
                .collect(),
        ))
    }
}

// ---------------------------------------------------------------------------
// The worker

/// Takes jobs and runs a handler on each, until shutdown; see the
/// [module docs](self). Written once over the [driver](crate::driver):
/// [`run`](Self::run) blocks, [`run_async`](Self::run_async) awaits.
///
/// While jobs are ready, each costs one round trip: the settlement of a
/// job and the take of the next are one script call (one `EVALSHA`).
///
/// Waiting for a job blocks on the server (`BLPOP` of the wake-up list,
/// 400 ms at most at a time) only on a connection that is the worker's own
/// (a blocking connection, or a
/// [`DedicatedConnection`](crate::exec::DedicatedConnection)); on a shared
/// async connection it polls, so other tasks' commands never wait behind
/// it.
#[derive(Debug, Clone)]
pub struct Worker<T> {
    queue: Queue<T>,
}

impl<T: serde::Serialize + serde::de::DeserializeOwned + Send> Worker<T> {
    /// Runs until `shutdown` fires (after the job in hand; a worker takes
    /// its next job in the same round trip as it settles the last one, so
    /// that job too is run first). A handler
    /// error fails the job (retry or dead); a Redis error ends the run
    /// (restart it: a job in hand comes back when its lease runs out).
    pub fn run<Con, F, R, E>(
        &self,
        con: &mut Con,
        shutdown: &Shutdown,
        mut handler: F,
    ) -> Result<WorkerStats>
    where
        Con: SyncExecutor + ?Sized,
        F: FnMut(Job<T>) -> std::result::Result<R, E>,
        R: Into<Ack>,
        E: std::fmt::Display,
    {
        block_on(self.work(&mut Blocking::new(con), shutdown, &mut |j| {
            std::future::ready(handler(j))
        }))
    }

    /// [`run`](Self::run), awaited, with an async handler.
    pub async fn run_async<Con, F, Fut, R, E>(
        &self,
        con: &mut Con,
        shutdown: &Shutdown,
        mut handler: F,
    ) -> Result<WorkerStats>
    where
        Con: AsyncExecutor + ?Sized,
        F: FnMut(Job<T>) -> Fut,
        Fut: Future<Output = std::result::Result<R, E>>,
        R: Into<Ack>,
        E: std::fmt::Display,
    {
        self.work(&mut Async::new(con), shutdown, &mut handler)
            .await
    }

    async fn work<I, F, Fut, R, E>(
        &self,
        io: &mut I,
        shutdown: &Shutdown,
        handler: &mut F,
    ) -> Result<WorkerStats>
    where
        I: Io,
        F: FnMut(Job<T>) -> Fut,
        Fut: Future<Output = std::result::Result<R, E>>,
        R: Into<Ack>,
        E: std::fmt::Display,
    {
        let q = &self.queue;
        let mut stats = WorkerStats::default();
        // The job taken in the same round trip as the last settlement.
        let mut next: Option<Taken> = None;
        while next.is_some() || !shutdown.is_fired() {
            let mut taken = match next.take() {
                Some(t) => Some(t),
                // A take that does not wait first: when jobs are there, no
                // wake-up `BLPOP` rides along.
                None => io.run(q.take_op(None).raw()).await?,
            };
            if taken.is_none() {
                taken = read_until(io, Deadline::after(q.options.block), |block| {
                    q.take_op(block).raw()
                })
                .await?;
            }
            let Some(t) = taken else { continue };
            let data = match decode::<T>(&q.name, &t) {
                Ok(d) => d,
                Err(e) => {
                    log::warn!(target: "redis_state::queue", "job {} of `{}` is dead: {e}", t.id, q.name);
                    let settle = q.settle(&t.id, &t.token, Verdict::Dead(e.to_string()));
                    count(&mut stats, io.run(settle).await)?;
                    continue;
                }
            };
            let (id, token, attempt) = (t.id, t.token, t.attempt);
            let job = Job {
                id: id.clone(),
                data,
                attempt,
                token: token.clone(),
            };
            let settle = match handler(job).await {
                Ok(r) => q.settle(&id, &token, Verdict::Done(r.into().0)),
                Err(e) => {
                    let error = e.to_string();
                    log::debug!(target: "redis_state::queue", "job {id} of `{}` failed (attempt {attempt}): {error}", q.name);
                    q.fail_verdict(&id, &token, attempt, &error)
                }
            };
            if shutdown.is_fired() {
                count(&mut stats, io.run(settle).await)?;
            } else {
                // Settle and take the next job in one round trip.
                let (settled, then) = io
                    .run(SettleThenTake {
                        settle,
                        take: q.take_op(None).raw(),
                    })
                    .await?;
                count(&mut stats, settled)?;
                next = then;
            }
        }
        Ok(stats)
    }
}

/// A settlement and the next take in one script call (`settle_take.lua`).
/// The settlement's own outcome (a refusal included) is the first output,
/// so a refused completion never drops the job taken beside it.
#[derive(Debug)]
struct SettleThenTake {
    settle: Settle,
    take: TakeRaw,
}

impl Operation for SettleThenTake {
    type Output = (Result<Settled>, Option<Taken>);
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        // One script, so one EVALSHA: a lone call that a server without
        // the script answers NOSCRIPT is simply sent again as EVAL.
        let (keys, args) = self.settle.call()?;
        let token = crate::random::hex_token(16)?;
        let cmd = plan.script(&SETTLE_TAKE, &keys)?;
        self.settle.write_args(cmd, &args);
        cmd.arg(crate::random::millis(self.take.lease).max(1))
            .arg(&token)
            .arg(self.take.max_attempts);
        self.settle.write_effect(cmd);
        self.take.token = Some(token);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let v = match replies.next_value() {
            Ok(v) => v,
            // The script failed (an effect's command was refused): nothing
            // was taken, and the settlement reports the error.
            Err(e @ Error::Server { .. }) => return Ok(Step::Done((Err(e), None))),
            Err(e) => return Err(e),
        };
        let Value::Array(mut parts) = v else {
            return Err(Error::unexpected("the queue settle-and-take script", &v));
        };
        let outcome = match parts.first() {
            Some(Value::Int(n)) => *n,
            _ => {
                return Err(Error::unexpected(
                    "the queue settle-and-take script",
                    &Value::Array(parts),
                ));
            }
        };
        parts.remove(0);
        let taken = self.take.decode(Value::Array(parts))?;
        Ok(Step::Done((self.settle.outcome(outcome), taken)))
    }
}

fn count(stats: &mut WorkerStats, r: Result<Settled>) -> Result<()> {
    match r {
        Ok(Settled::Done) => stats.done += 1,
        Ok(Settled::Retried) => stats.retried += 1,
        Ok(Settled::Dead) => stats.dead += 1,
        Err(Error::LeaseLost { queue, job }) => {
            log::warn!(target: "redis_state::queue", "job {job} of `{queue}`: the lease ran out before it was settled; another worker has it");
            stats.fenced += 1;
        }
        Err(e) => return Err(e),
    }
    Ok(())
}
