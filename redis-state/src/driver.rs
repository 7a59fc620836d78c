//! The driver: a procedure of several round trips, written once, run by both
//! executors.
//!
//! An [`Operation`] is one round trip (or a few, for a lookup and its
//! follow-up). Some work is more than that: a loop that retries after a
//! conflict, waits with backoff, scans cursor by cursor, or waits for
//! another process to publish. Such a *procedure* is written once as an
//! `async fn` over an [`Io`]: it runs operations ([`Io::run`]), pauses
//! ([`Io::sleep`]), waits for something in the process ([`Io::wait`]) and
//! reads what the server will only have later ([`read_until`]). Two
//! implementations of `Io` serve it:
//!
//! | caller | `Io` | how the procedure runs |
//! |---|---|---|
//! | blocking, `&mut` a [`SyncExecutor`] | [`Blocking`] | [`block_on`] on the calling thread: every step completes inside its poll (real blocking I/O, `thread::sleep`, condition variables) |
//! | async, `&mut` an [`AsyncExecutor`] | [`Async`] | awaited like any future (tokio timers, notifications) |
//!
//! So a public pair reads:
//!
//! ```
//! # use redis_state::driver::{Async, Blocking, Io, block_on};
//! # use redis_state::exec::{AsyncExecutor, SyncExecutor};
//! # use redis_state::Result;
//! async fn twice<I: Io>(io: &mut I, key: &str) -> Result<i64> {
//!     io.run(redis_state::op::command::<i64>("INCR", key)).await?;
//!     io.sleep(std::time::Duration::from_millis(1)).await;
//!     io.run(redis_state::op::command::<i64>("INCR", key)).await
//! }
//!
//! /// Blocks.
//! pub fn bump<C: SyncExecutor + ?Sized>(con: &mut C, key: &str) -> Result<i64> {
//!     block_on(twice(&mut Blocking::new(con), key))
//! }
//!
//! /// Awaits.
//! pub async fn bump_async<C: AsyncExecutor + ?Sized>(con: &mut C, key: &str) -> Result<i64> {
//!     twice(&mut Async::new(con), key).await
//! }
//! ```
//!
//! # Rules for a procedure
//!
//! * It awaits only its `Io` (and futures the caller handed in, such as a
//!   loader, which the blocking entry point wraps in `async { f() }`): under
//!   [`Blocking`] nothing else would wake it.
//! * Every loop is bounded: by a [`Deadline`], a number of tries, or a
//!   cursor the server guarantees to finish.
//! * A command that blocks on the server (`XREAD BLOCK`, `BLMOVE`,
//!   `XREADGROUP BLOCK`) goes through [`read_until`], never through
//!   [`Io::run`] directly: it blocks only a connection that is the caller's
//!   alone ([`Io::exclusive`]), and polls with backoff on a shared one, so
//!   that no other task's commands queue behind it.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::exec::{AsyncExecutor, SyncExecutor};
use crate::op::Operation;

/// The I/O a procedure needs; see the [module docs](self).
pub trait Io {
    /// Whether the connection is the caller's alone for the whole procedure
    /// (a blocking connection borrowed `&mut`, or an async connection that
    /// cannot be shared), so that a command may block on the server.
    fn exclusive(&self) -> bool;

    /// Runs one operation (all its round trips) on the connection.
    fn run<O>(&mut self, op: O) -> impl Future<Output = Result<O::Output>> + Send
    where
        O: Operation + Send,
        O::Output: Send;

    /// Pauses the caller (not the connection) for `d`.
    fn sleep(&mut self, d: Duration) -> impl Future<Output = ()> + Send;

    /// Waits for `w`, an event inside the process (another task's result, a
    /// reply on a channel): blocking the thread under [`Blocking`],
    /// awaiting under [`Async`].
    fn wait<W: Waitable>(&mut self, w: W) -> impl Future<Output = W::Output> + Send;
}

/// Something a procedure can wait for, both ways (see [`Io::wait`]).
pub trait Waitable: Send {
    /// What the wait ends with.
    type Output: Send;
    /// Blocks the thread until it is there.
    fn wait(self) -> Self::Output;
    /// Awaits it.
    fn wait_async(self) -> impl Future<Output = Self::Output> + Send;
}

/// The [`Io`] of a blocking caller: its own connection, borrowed `&mut` for
/// the whole procedure, so commands may block on the server.
#[derive(Debug)]
pub struct Blocking<'c, C: ?Sized>(&'c mut C);

impl<'c, C: SyncExecutor + ?Sized> Blocking<'c, C> {
    /// Drives procedures on `con`.
    pub fn new(con: &'c mut C) -> Self {
        Blocking(con)
    }
}

impl<C: SyncExecutor + ?Sized> Io for Blocking<'_, C> {
    fn exclusive(&self) -> bool {
        true
    }

    fn run<O>(&mut self, op: O) -> impl Future<Output = Result<O::Output>> + Send
    where
        O: Operation + Send,
        O::Output: Send,
    {
        std::future::ready(op.run(self.0))
    }

    fn sleep(&mut self, d: Duration) -> impl Future<Output = ()> + Send {
        std::thread::sleep(d);
        std::future::ready(())
    }

    fn wait<W: Waitable>(&mut self, w: W) -> impl Future<Output = W::Output> + Send {
        std::future::ready(w.wait())
    }
}

/// The [`Io`] of an async caller. Exclusive only when the connection says
/// so ([`AsyncExecutor::is_exclusive`]): multiplexed connections, the
/// connection manager and the async Cluster client are shared.
#[derive(Debug)]
pub struct Async<'c, C: ?Sized>(&'c mut C);

impl<'c, C: AsyncExecutor + ?Sized> Async<'c, C> {
    /// Drives procedures on `con`.
    pub fn new(con: &'c mut C) -> Self {
        Async(con)
    }
}

impl<C: AsyncExecutor + ?Sized> Io for Async<'_, C> {
    fn exclusive(&self) -> bool {
        self.0.is_exclusive()
    }

    fn run<O>(&mut self, op: O) -> impl Future<Output = Result<O::Output>> + Send
    where
        O: Operation + Send,
        O::Output: Send,
    {
        op.run_async(self.0)
    }

    async fn sleep(&mut self, d: Duration) {
        #[cfg(feature = "async")]
        tokio::time::sleep(d).await;
        #[cfg(not(feature = "async"))]
        ThreadTimer::new(d).await;
    }

    fn wait<W: Waitable>(&mut self, w: W) -> impl Future<Output = W::Output> + Send {
        w.wait_async()
    }
}

/// A pause that needs no async runtime: a thread of its own sleeps and then
/// wakes the task. What [`Async`] pauses with when the `async` feature (and
/// with it tokio's timers) is left out, for an [`AsyncExecutor`] of the
/// caller's own.
#[cfg(not(feature = "async"))]
struct ThreadTimer {
    until: Instant,
    /// The waker of the latest poll, once the thread is started.
    waker: Option<Arc<std::sync::Mutex<Waker>>>,
}

#[cfg(not(feature = "async"))]
impl ThreadTimer {
    fn new(d: Duration) -> Self {
        ThreadTimer {
            until: Instant::now() + d,
            waker: None,
        }
    }
}

#[cfg(not(feature = "async"))]
impl Future for ThreadTimer {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Poll::Ready(());
        }
        match &self.waker {
            Some(waker) => {
                waker
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone_from(cx.waker());
            }
            None => {
                let waker = Arc::new(std::sync::Mutex::new(cx.waker().clone()));
                self.waker = Some(Arc::clone(&waker));
                std::thread::spawn(move || {
                    std::thread::sleep(left);
                    waker
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .wake_by_ref();
                });
            }
        }
        Poll::Pending
    }
}

/// Wakes the thread that [`block_on`] parked.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a procedure to completion on the calling thread. Under [`Blocking`]
/// every step completes inside its poll; a future that still returns
/// `Pending` (one that needs no runtime, such as a channel) parks the thread
/// until it is woken.
///
/// Not for futures that need a tokio runtime (timers, sockets): those are
/// for [`Async`], awaited by the caller.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    // Under `Blocking` the first poll finishes: no waker to allocate.
    if let Poll::Ready(out) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return out;
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        // Polled again with a waker that unparks this thread before
        // parking: the first poll registered none.
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// A bound on a wait: a point in time, or none when the bound is past what
/// an [`Instant`] can hold (`Duration::MAX` as "until it happens").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// `d` from now (no bound when `now + d` overflows the clock).
    pub fn after(d: Duration) -> Self {
        Deadline(Instant::now().checked_add(d))
    }

    /// No bound.
    pub fn never() -> Self {
        Deadline(None)
    }

    /// The time left, `None` when there is no bound.
    pub fn left(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// True once the bound is spent.
    pub fn is_over(&self) -> bool {
        self.left().is_some_and(|l| l.is_zero())
    }

    /// `d`, or the time left when that is shorter.
    pub fn cap(&self, d: Duration) -> Duration {
        self.left().map_or(d, |l| l.min(d))
    }

    /// The instant, `None` when there is no bound.
    pub fn instant(&self) -> Option<Instant> {
        self.0
    }
}

/// The longest one blocking command of [`read_until`] blocks on the server,
/// so that a connection with a read (or response) timeout of half a second
/// or more never trips it; redis-rs' async connections time a response out
/// after 500 ms by default.
pub const BLOCK_SLICE: Duration = Duration::from_millis(400);

/// The first pause between two polls of [`read_until`] on a shared
/// connection; each pause doubles up to [`POLL_MAX`].
pub const POLL_FIRST: Duration = Duration::from_millis(2);

/// The longest pause between two polls of [`read_until`] on a shared
/// connection: what is there is seen at most this late.
pub const POLL_MAX: Duration = Duration::from_millis(25);

/// A read that waits on the server: runs `make(block)` until its output is
/// `Some` or `deadline` passes (then `Ok(None)`, after one last read).
///
/// `make` builds the read: with `Some(d)` (at least 1 ms, at most
/// [`BLOCK_SLICE`]) it may block on the server for up to `d` (`XREAD BLOCK`,
/// `BLMOVE … timeout`); with `None` it must not block at all. On an
/// [`exclusive`](Io::exclusive) connection the reads block, slice after
/// slice; on a shared one they never do: non-blocking reads 2 ms apart at
/// first, doubling up to 25 ms, so that other tasks' commands on the
/// connection never wait behind this one.
pub async fn read_until<I, O, T, F>(
    io: &mut I,
    deadline: Deadline,
    mut make: F,
) -> Result<Option<T>>
where
    I: Io + ?Sized,
    F: FnMut(Option<Duration>) -> O,
    O: Operation<Output = Option<T>> + Send,
    T: Send,
{
    if io.exclusive() {
        loop {
            let slice = deadline.cap(BLOCK_SLICE);
            // A bound (nearly) spent still reads once, without blocking.
            let block = (slice >= Duration::from_millis(1)).then_some(slice);
            let got = io.run(make(block)).await?;
            if got.is_some() || block.is_none() {
                return Ok(got);
            }
        }
    }
    let mut pause = POLL_FIRST;
    loop {
        let got = io.run(make(None)).await?;
        if got.is_some() || deadline.is_over() {
            return Ok(got);
        }
        io.sleep(deadline.cap(pause)).await;
        pause = (pause * 2).min(POLL_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_past_the_clock_are_no_bound() {
        assert_eq!(Deadline::after(Duration::MAX), Deadline::never());
        assert_eq!(Deadline::never().left(), None);
        assert!(!Deadline::never().is_over());
        assert_eq!(
            Deadline::never().cap(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
        let spent = Deadline::after(Duration::ZERO);
        assert!(spent.is_over());
        assert_eq!(spent.cap(Duration::from_secs(3)), Duration::ZERO);
    }

    #[test]
    fn block_on_parks_until_woken() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(7).expect("receiver alive");
        });
        assert_eq!(block_on(rx).expect("sent"), 7);
        sender.join().expect("sender thread");
    }
}
