//! Optimistic transactions: `WATCH`, read, decide, `MULTI`/`EXEC`, retried
//! when another client changed a watched key in between.
//!
//! A [`Transaction`] names the keys to watch and how often to try. Running
//! it takes two closures, so that one logic serves the blocking and the
//! async form:
//!
//! * `read`: builds the [`Operation`] that reads what the decision needs
//!   (any operation: a [`command`](crate::op::command), a [`batch`](crate::batch),
//!   a model load). It runs after `WATCH`, in the same round trip.
//! * `decide`: a plain function of what was read, with no I/O: it returns
//!   [`Decision::Commit`] with the writes (again any operation, queued
//!   between `MULTI` and `EXEC`) and the value to return, or
//!   [`Decision::Abort`] with a value (then `UNWATCH` is sent and nothing is
//!   written).
//!
//! When `EXEC` reports that a watched key changed, nothing was written: the
//! transaction starts again with a fresh read (after a short random pause
//! from the second conflict on, see [`retry_delay`](Transaction::retry_delay)),
//! up to [`max_tries`](Transaction::max_tries) times, then fails with
//! [`Error::TransactionConflict`].
//!
//! ```no_run
//! use redis_state::op::command;
//! use redis_state::tx::{Decision, Transaction};
//! use redis_state::batch;
//! # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
//! let (from, to, amount) = ("user:1:credits", "user:2:credits", 30i64);
//! let moved: bool = Transaction::new(&[from, to]).run(
//!     con,
//!     || batch((command::<Option<i64>>("GET", from), command::<Option<i64>>("GET", to))),
//!     |(a, b)| {
//!         let (a, b) = (a.unwrap_or(0), b.unwrap_or(0));
//!         if a < amount {
//!             return Ok(Decision::Abort(false));
//!         }
//!         let writes = batch((
//!             command::<()>("SET", from).arg(a - amount),
//!             command::<()>("SET", to).arg(b + amount),
//!         ));
//!         Ok(Decision::Commit(writes, true))
//!     },
//! )?;
//! # Ok(()) }
//! ```
//!
//! # A connection of its own
//!
//! `WATCH` belongs to a connection, not to a caller: on a connection shared
//! by several tasks (a `MultiplexedConnection`, a `ConnectionManager`), one
//! task's `MULTI`/`EXEC` would be checked against another's `WATCH`, and a
//! stray `UNWATCH` would silently drop the protection. So the types demand
//! a connection that nobody else uses: a blocking `redis::Connection` (or a
//! pooled one, `&mut *pooled`), borrowed mutably for the whole transaction,
//! or, for async code, a [`WatchConnection`]: a connection opened for this
//! purpose that cannot be cloned.
//!
//! Cluster connections route each command on its own, so `MULTI` may reach
//! another node than `WATCH`; transactions are for standalone servers (and
//! primaries). On a Cluster, make the read-decide-write one Lua script (see
//! [`script!`](crate::script!)) over keys that share a hash tag.
//!
//! Round trips per try: 2 (`WATCH` + the reads; `MULTI` + the writes +
//! `EXEC`), 1 more for each extra round of a multi-round read.
//!
//! Writes with further rounds (a model save that invalidates cache entries
//! by tag learns the tagged entries in its first round and deletes them in
//! a second) run their first round between `MULTI` and `EXEC` and the rest
//! after a successful `EXEC`, as ordinary pipelines on the same connection:
//! the transaction's writes are committed by then, so an error in a later
//! round is returned although the writes stand.

use std::fmt;
use std::time::Duration;

use redis::Value;

use crate::error::{Error, Result};
use crate::exec::{AsyncExecutor, SyncExecutor};
use crate::op::{Operation, Plan, Replies, Step};

/// What a transaction's `decide` closure returns.
#[derive(Debug)]
pub enum Decision<W, T> {
    /// Queue these writes between `MULTI` and `EXEC`; if no watched key
    /// changed, the transaction returns the value.
    Commit(W, T),
    /// Write nothing and return the value.
    Abort(T),
}

/// An optimistic transaction over some keys; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Transaction {
    keys: Vec<Vec<u8>>,
    max_tries: u32,
    max_delay: Duration,
}

impl Transaction {
    /// A transaction watching `keys`, tried at most 10 times, with
    /// jittered backoff between tries of up to 20 ms.
    pub fn new<K: AsRef<[u8]>>(keys: &[K]) -> Self {
        Transaction {
            keys: keys.iter().map(|k| k.as_ref().to_vec()).collect(),
            max_tries: 10,
            max_delay: Duration::from_millis(20),
        }
    }

    /// The longest pause between two tries. After the first conflict the
    /// transaction retries at once; after the k-th it waits a random time
    /// up to `min(2^(k-1) ms, max)`, so that contenders spread out instead
    /// of colliding again. `Duration::ZERO` retries at once, always.
    /// Default 20 ms.
    pub fn retry_delay(mut self, max: Duration) -> Self {
        self.max_delay = max;
        self
    }

    /// The pause before try `next` (0-based).
    fn pause(&self, next: u32) -> Duration {
        if next < 2 || self.max_delay.is_zero() {
            return Duration::ZERO;
        }
        let ceiling = Duration::from_millis(1u64 << (next - 2).min(20)).min(self.max_delay);
        crate::random::between(Duration::ZERO, ceiling)
    }

    /// How many times to try before failing with
    /// [`Error::TransactionConflict`] (at least 1). Default 10.
    pub fn max_tries(mut self, tries: u32) -> Self {
        self.max_tries = tries.max(1);
        self
    }

    /// Runs the transaction on a blocking connection of its own.
    pub fn run<R, W, T>(
        &self,
        con: &mut redis::Connection,
        mut read: impl FnMut() -> R,
        mut decide: impl FnMut(R::Output) -> Result<Decision<W, T>>,
    ) -> Result<T>
    where
        R: Operation,
        W: Operation,
    {
        for try_no in 0..self.max_tries {
            let pause = self.pause(try_no);
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let mut attempt = Attempt::new(self, read());
            let mut read_phase = || -> Result<R::Output> {
                for _ in 0..MAX_READ_ROUNDS {
                    let plan = attempt.plan()?;
                    let values = con.execute(plan)?;
                    if let Some(out) = attempt.read(values)? {
                        return Ok(out);
                    }
                }
                Err(too_many_rounds())
            };
            let out = match read_phase() {
                Ok(out) => out,
                Err(e) => {
                    // WATCH is per connection: leave none behind.
                    let _ = con.execute(unwatch());
                    return Err(e);
                }
            };
            match decide(out) {
                Err(e) => {
                    let _ = con.execute(unwatch());
                    return Err(e);
                }
                Ok(Decision::Abort(value)) => {
                    con.execute(unwatch())?;
                    return Ok(value);
                }
                Ok(Decision::Commit(writes, value)) => {
                    let mut commit = Commit::new(writes);
                    let plan = match commit.plan() {
                        Ok(plan) => plan,
                        Err(e) => {
                            let _ = con.execute(unwatch());
                            return Err(e);
                        }
                    };
                    let values = con.execute(plan)?;
                    match commit.done(values)? {
                        Committed::No => {}
                        Committed::Yes => return Ok(value),
                        Committed::More => {
                            // Committed: the further rounds run as ordinary
                            // pipelines on the same connection.
                            for _ in 0..MAX_READ_ROUNDS {
                                let values = con.execute(commit.next_plan()?)?;
                                if commit.more(values)? {
                                    return Ok(value);
                                }
                            }
                            return Err(too_many_rounds());
                        }
                    }
                }
            }
        }
        Err(self.conflict())
    }

    /// Runs the transaction on an async connection of its own.
    pub async fn run_async<R, W, T>(
        &self,
        con: &mut WatchConnection,
        mut read: impl FnMut() -> R + Send,
        mut decide: impl FnMut(R::Output) -> Result<Decision<W, T>> + Send,
    ) -> Result<T>
    where
        R: Operation + Send,
        R::Output: Send,
        W: Operation + Send,
        T: Send,
    {
        let con = &mut con.con;
        for try_no in 0..self.max_tries {
            let pause = self.pause(try_no);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            let mut attempt = Attempt::new(self, read());
            let read_phase = async {
                for _ in 0..MAX_READ_ROUNDS {
                    let plan = attempt.plan()?;
                    let values = con.execute_async(plan).await?;
                    if let Some(out) = attempt.read(values)? {
                        return Ok(out);
                    }
                }
                Err(too_many_rounds())
            };
            let out = match read_phase.await {
                Ok(out) => out,
                Err(e) => {
                    // WATCH is per connection: leave none behind.
                    let _ = con.execute_async(unwatch()).await;
                    return Err(e);
                }
            };
            match decide(out) {
                Err(e) => {
                    let _ = con.execute_async(unwatch()).await;
                    return Err(e);
                }
                Ok(Decision::Abort(value)) => {
                    con.execute_async(unwatch()).await?;
                    return Ok(value);
                }
                Ok(Decision::Commit(writes, value)) => {
                    let mut commit = Commit::new(writes);
                    let plan = match commit.plan() {
                        Ok(plan) => plan,
                        Err(e) => {
                            let _ = con.execute_async(unwatch()).await;
                            return Err(e);
                        }
                    };
                    let values = con.execute_async(plan).await?;
                    match commit.done(values)? {
                        Committed::No => {}
                        Committed::Yes => return Ok(value),
                        Committed::More => {
                            for _ in 0..MAX_READ_ROUNDS {
                                let values = con.execute_async(commit.next_plan()?).await?;
                                if commit.more(values)? {
                                    return Ok(value);
                                }
                            }
                            return Err(too_many_rounds());
                        }
                    }
                }
            }
        }
        Err(self.conflict())
    }

    fn conflict(&self) -> Error {
        Error::TransactionConflict {
            keys: self
                .keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect(),
            tries: self.max_tries,
        }
    }
}

/// The most round trips a transaction's read (or the writes' rounds after
/// `EXEC`) may take.
const MAX_READ_ROUNDS: usize = 16;

fn too_many_rounds() -> Error {
    Error::UnexpectedReply {
        context: "a transaction's read",
        found: format!("more than {MAX_READ_ROUNDS} round trips"),
    }
}

fn unwatch() -> Plan {
    let mut plan = Plan::new();
    plan.keyless("UNWATCH");
    plan
}

/// The read phase of one try: `WATCH` plus the read operation's first
/// round, then its further rounds if it has any.
struct Attempt<'t, R> {
    tx: &'t Transaction,
    read: R,
    first: bool,
}

impl<'t, R: Operation> Attempt<'t, R> {
    fn new(tx: &'t Transaction, read: R) -> Self {
        Attempt {
            tx,
            read,
            first: true,
        }
    }

    fn plan(&mut self) -> Result<Plan> {
        let mut plan = Plan::new();
        if self.first {
            // WATCH takes keys of any slot on a standalone server.
            let cmd = plan.keyless("WATCH");
            for k in &self.tx.keys {
                cmd.arg(k.as_slice());
            }
        }
        self.read.prepare(&mut plan)?;
        Ok(plan)
    }

    fn read(&mut self, values: Vec<Value>) -> Result<Option<R::Output>> {
        let mut replies = Replies::new(values);
        if std::mem::replace(&mut self.first, false) {
            let ok = replies.next_value()?;
            if !matches!(ok, Value::Okay) {
                return Err(Error::unexpected("WATCH", &ok));
            }
        }
        match self.read.complete(&mut replies)? {
            Step::Done(out) => Ok(Some(out)),
            Step::Again => Ok(None),
        }
    }
}

/// The write phase: `MULTI`, the writes, `EXEC`.
struct Commit<W> {
    writes: W,
    queued: usize,
}

impl<W: Operation> Commit<W> {
    fn new(writes: W) -> Self {
        Commit { writes, queued: 0 }
    }

    fn plan(&mut self) -> Result<Plan> {
        let mut plan = Plan::new();
        plan.single_round = true;
        plan.keyless("MULTI");
        self.writes.prepare(&mut plan)?;
        self.queued = plan.len() - 1;
        plan.keyless("EXEC");
        Ok(plan)
    }

    /// Whether `EXEC` committed the writes, and whether they have further
    /// rounds to run.
    fn done(&mut self, values: Vec<Value>) -> Result<Committed> {
        let mut replies = Replies::new(values);
        replies.next_value()?; // MULTI
        for _ in 0..self.queued {
            // QUEUED, or the error that will make EXEC fail
            replies.next_value()?;
        }
        match replies.next_value()? {
            Value::Nil => Ok(Committed::No),
            Value::Array(results) => {
                let mut results = Replies::new(results);
                match self.writes.complete(&mut results)? {
                    Step::Done(_) => Ok(Committed::Yes),
                    Step::Again => Ok(Committed::More),
                }
            }
            other => Err(Error::unexpected("EXEC", &other)),
        }
    }

    /// The next round of writes that need more than one (after `EXEC`).
    fn next_plan(&mut self) -> Result<Plan> {
        let mut plan = Plan::new();
        self.writes.prepare(&mut plan)?;
        Ok(plan)
    }

    /// Reads a later round's replies; `true` when the writes are done.
    fn more(&mut self, values: Vec<Value>) -> Result<bool> {
        let mut replies = Replies::new(values);
        Ok(matches!(self.writes.complete(&mut replies)?, Step::Done(_)))
    }
}

/// What `EXEC` did with the writes.
enum Committed {
    /// A watched key changed: nothing was written.
    No,
    /// Written.
    Yes,
    /// Written; the writes have further rounds, which run after `EXEC`
    /// outside the transaction (a model's cache invalidations).
    More,
}

/// An async connection used by one transaction at a time, which `WATCH`
/// needs (see the [module docs](self#a-connection-of-its-own)): opened for
/// this purpose, never shared, not `Clone`.
pub struct WatchConnection {
    con: redis::aio::MultiplexedConnection,
}

impl WatchConnection {
    /// Opens a new connection with `client`.
    pub async fn open(client: &redis::Client) -> Result<Self> {
        Ok(WatchConnection {
            con: client.get_multiplexed_async_connection().await?,
        })
    }

    /// Runs an ordinary operation on this connection (outside any
    /// transaction).
    pub async fn run<O: Operation + Send>(&mut self, op: O) -> Result<O::Output> {
        op.run_async(&mut self.con).await
    }
}

impl fmt::Debug for WatchConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchConnection").finish_non_exhaustive()
    }
}
