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
//! let moved: bool = Transaction::new(&[from, to]).perform(
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

#[cfg(feature = "async")]
use std::fmt;
use std::time::Duration;

use redis::Value;

#[cfg(feature = "async")]
use crate::driver::Async;
use crate::driver::{Blocking, Io, block_on};
use crate::error::{Error, Result};
#[cfg(feature = "async")]
use crate::exec::AsyncExecutor;
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
    pub fn perform<R, W, T>(
        &self,
        con: &mut redis::Connection,
        read: impl FnMut() -> R,
        decide: impl FnMut(R::Output) -> Result<Decision<W, T>>,
    ) -> Result<T>
    where
        R: Operation + Send,
        R::Output: Send,
        W: Operation + Send,
    {
        block_on(self.tries(&mut Blocking::new(con), read, decide))
    }

    /// Runs the transaction on an async connection of its own.
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub async fn perform_async<R, W, T>(
        &self,
        con: &mut WatchConnection,
        read: impl FnMut() -> R + Send,
        decide: impl FnMut(R::Output) -> Result<Decision<W, T>> + Send,
    ) -> Result<T>
    where
        R: Operation + Send,
        R::Output: Send,
        W: Operation + Send,
        T: Send,
    {
        self.tries(&mut Async::new(con), read, decide).await
    }

    /// The transaction, tried until it commits, aborts, fails or runs out
    /// of tries. `WATCH` is per connection: every path that does not commit
    /// leaves none behind.
    async fn tries<I, R, W, T>(
        &self,
        io: &mut I,
        mut read: impl FnMut() -> R,
        mut decide: impl FnMut(R::Output) -> Result<Decision<W, T>>,
    ) -> Result<T>
    where
        I: Io,
        R: Operation + Send,
        R::Output: Send,
        W: Operation + Send,
    {
        for try_no in 0..self.max_tries {
            let pause = self.pause(try_no);
            if !pause.is_zero() {
                io.sleep(pause).await;
            }
            let read = WatchedRead {
                keys: &self.keys,
                read: read(),
                first: true,
            };
            let decision = match io.run(read).await {
                Ok(out) => decide(out),
                Err(e) => Err(e),
            };
            match decision {
                Err(e) => {
                    let _ = io.run(Unwatch).await;
                    return Err(e);
                }
                Ok(Decision::Abort(value)) => {
                    io.run(Unwatch).await?;
                    return Ok(value);
                }
                Ok(Decision::Commit(writes, value)) => match io.run(Exec::new(writes)).await? {
                    Committed::NotBuilt(e) => {
                        let _ = io.run(Unwatch).await;
                        return Err(e);
                    }
                    Committed::No => {}
                    Committed::Yes => return Ok(value),
                },
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

/// `UNWATCH`.
struct Unwatch;

impl Operation for Unwatch {
    type Output = ();
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.keyless("UNWATCH");
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<()>> {
        replies.next_value().map(|_| Step::Done(()))
    }
}

/// The read phase of one try: `WATCH` plus the read operation's first
/// round, then its further rounds if it has any.
struct WatchedRead<'t, R> {
    keys: &'t [Vec<u8>],
    read: R,
    first: bool,
}

impl<R: Operation> Operation for WatchedRead<'_, R> {
    type Output = R::Output;

    fn progress(&self) -> u64 {
        self.read.progress()
    }

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if self.first {
            // WATCH takes keys of any slot on a standalone server.
            let cmd = plan.keyless("WATCH");
            for k in self.keys {
                cmd.arg(k.as_slice());
            }
        }
        self.read.prepare(plan)
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<R::Output>> {
        if std::mem::replace(&mut self.first, false) {
            let ok = replies.next_value()?;
            if !matches!(ok, Value::Okay) {
                return Err(Error::unexpected("WATCH", &ok));
            }
        }
        self.read.complete(replies)
    }
}

/// The write phase: `MULTI`, the writes, `EXEC`; then, once committed,
/// the writes' further rounds as ordinary pipelines.
struct Exec<W> {
    writes: W,
    queued: usize,
    /// The writes failed to build: nothing was sent.
    unbuilt: Option<Error>,
    /// `EXEC` committed; the writes' later rounds follow.
    committed: bool,
}

/// What `EXEC` did with the writes.
enum Committed {
    /// A watched key changed: nothing was written.
    No,
    /// Written (with every further round of the writes).
    Yes,
    /// The writes failed to build; nothing was sent.
    NotBuilt(Error),
}

impl<W> Exec<W> {
    fn new(writes: W) -> Self {
        Exec {
            writes,
            queued: 0,
            unbuilt: None,
            committed: false,
        }
    }
}

impl<W: Operation> Operation for Exec<W> {
    type Output = Committed;

    fn progress(&self) -> u64 {
        self.writes.progress()
    }

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if self.committed {
            return self.writes.prepare(plan);
        }
        plan.single_round = true;
        plan.keyless("MULTI");
        if let Err(e) = self.writes.prepare(plan) {
            // Nothing goes out; the caller sends `UNWATCH`.
            plan.commands.clear();
            plan.single_round = false;
            self.unbuilt = Some(e);
            return Ok(());
        }
        self.queued = plan.len() - 1;
        plan.keyless("EXEC");
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Committed>> {
        if let Some(e) = self.unbuilt.take() {
            return Ok(Step::Done(Committed::NotBuilt(e)));
        }
        if self.committed {
            // A later round, outside the transaction: the writes stand
            // whatever it returns.
            return Ok(self.writes.complete(replies)?.map_done(|_| Committed::Yes));
        }
        replies.next_value()?; // MULTI
        let first = replies.position();
        for _ in 0..self.queued {
            // QUEUED, or the error that will make EXEC fail
            replies.next_value()?;
        }
        match replies.next_value()? {
            Value::Nil => Ok(Step::Done(Committed::No)),
            Value::Array(results) => {
                let sites = replies.sites(first, self.queued);
                let step = self
                    .writes
                    .complete(&mut Replies::with_sites(results, sites))?;
                self.committed = true;
                Ok(step.map_done(|_| Committed::Yes))
            }
            other => Err(Error::unexpected("EXEC", &other)),
        }
    }
}

/// An async connection used by one transaction at a time, which `WATCH`
/// needs (see the [module docs](self#a-connection-of-its-own)): opened for
/// this purpose, never shared, not `Clone`.
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub struct WatchConnection {
    con: redis::aio::MultiplexedConnection,
}

#[cfg(feature = "async")]
impl WatchConnection {
    /// Opens a new connection with `client`.
    pub async fn connect_async(client: &redis::Client) -> Result<Self> {
        Ok(WatchConnection {
            con: client.get_multiplexed_async_connection().await?,
        })
    }
}

#[cfg(feature = "async")]
impl AsyncExecutor for WatchConnection {
    fn execute_async(
        &mut self,
        plan: Plan,
    ) -> impl std::future::Future<Output = Result<Vec<Value>>> + Send {
        self.con.execute_async(plan)
    }

    fn is_exclusive(&self) -> bool {
        true
    }
}

#[cfg(feature = "async")]
impl fmt::Debug for WatchConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchConnection").finish_non_exhaustive()
    }
}
