//! The watchdog: renews a held lock in the background and tells the holder
//! the moment the lock is lost.
//!
//! One async loop does the work. [`Lock::acquire_watched_async`] runs it as a task
//! on the caller's tokio runtime; [`Lock::acquire_watched`] runs the
//! same loop on a thread of its own (with a current-thread runtime) for
//! programs without one.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use super::{Extend, Lock, LockGuard, drift, instant_after};
use crate::driver::{Async, Waitable};
use crate::error::{Error, LostReason, Result};
use crate::exec::{AsyncExecutor, Shared};
use crate::op::Operation;

/// Tells a lock holder that its lock is lost: poll it
/// ([`reason`](LossSignal::reason)), await it ([`lost_async`](LossSignal::lost_async)),
/// or block on it ([`wait_timeout`](LossSignal::wait_timeout)). Clones share
/// one signal. It never fires after a normal release.
#[derive(Clone)]
pub struct LossSignal {
    inner: Arc<Signal>,
}

struct Signal {
    reason: Mutex<Option<LostReason>>,
    cv: Condvar,
    notify: Notify,
}

impl LossSignal {
    fn new() -> Self {
        LossSignal {
            inner: Arc::new(Signal {
                reason: Mutex::new(None),
                cv: Condvar::new(),
                notify: Notify::new(),
            }),
        }
    }

    fn fire(&self, reason: LostReason) {
        let mut slot = self
            .inner
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(reason);
        }
        drop(slot);
        self.inner.cv.notify_all();
        self.inner.notify.notify_waiters();
    }

    /// Why the lock was lost, or `None` while it is held.
    pub fn reason(&self) -> Option<LostReason> {
        self.inner
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// True once the lock is lost.
    pub fn is_lost(&self) -> bool {
        self.reason().is_some()
    }

    /// Resolves when the lock is lost (never, if it is released normally).
    pub async fn lost_async(&self) -> LostReason {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(reason) = self.reason() {
                return reason;
            }
            notified.await;
        }
    }

    /// Blocks until the lock is lost or `timeout` passes (a timeout too
    /// large to add to the clock waits without a bound).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<LostReason> {
        let deadline = Instant::now().checked_add(timeout);
        let mut slot = self
            .inner
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(reason) = &*slot {
                return Some(reason.clone());
            }
            slot = match deadline {
                Some(deadline) => {
                    let left = deadline.checked_duration_since(Instant::now())?;
                    if left.is_zero() {
                        return None;
                    }
                    self.inner
                        .cv
                        .wait_timeout(slot, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .inner
                    .cv
                    .wait(slot)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

impl fmt::Debug for LossSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LossSignal")
            .field("lost", &self.reason())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Control of the watchdog task

enum Command {
    /// Release the lock and report.
    Release(oneshot::Sender<Result<bool>>),
    /// The guard was dropped: release, best effort.
    Abandon,
}

struct Control {
    state: Mutex<ControlState>,
    notify: Notify,
}

#[derive(Default)]
struct ControlState {
    command: Option<Command>,
    /// The task has ended: nobody will take a command any more.
    closed: bool,
}

impl Control {
    /// Hands `command` to the task. When the task has ended, the command is
    /// dropped at once, which closes a release's reply channel: the caller
    /// hears "stopped" instead of waiting forever.
    fn send(&self, command: Command) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed {
            drop(state);
            drop(command);
            return;
        }
        state.command = Some(command);
        drop(state);
        // notify_one keeps a permit when the task is not waiting yet.
        self.notify.notify_one();
    }

    fn take(&self) -> Option<Command> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .command
            .take()
    }

    /// Marks the task ended and drops a command nobody will run.
    fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.closed = true;
        let orphan = state.command.take();
        drop(state);
        drop(orphan);
    }
}

/// Owned by the watchdog task (moved into its future, so it is dropped
/// however the task ends: it returns, it panics, it is dropped unpolled
/// when its runtime shuts down). Unless the task ended by releasing the
/// lock, dropping it fires the loss signal ([`LostReason::WatchdogStopped`])
/// and closes the control, so that a waiting or later `release` answers.
struct Sentinel {
    ctl: Arc<Control>,
    signal: LossSignal,
    released: bool,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if !self.released {
            self.signal.fire(LostReason::WatchdogStopped);
        }
        self.ctl.close();
    }
}

/// The renewal schedule and the lock's validity, by the local clock.
struct Renewal {
    ttl: Duration,
    every: Duration,
    retry: Duration,
    valid_until: Instant,
    next_renewal: Instant,
    stop_renewing_at: Option<Instant>,
    last_error: Option<String>,
}

enum Action {
    Renew,
    Wait(Instant),
    Lost(LostReason),
}

impl Renewal {
    fn new(lock: &Lock, guard: &LockGuard, now: Instant) -> Self {
        let every = lock.renew_interval();
        Renewal {
            ttl: guard.ttl,
            every,
            retry: every.min((guard.ttl / 20).max(Duration::from_millis(10))),
            valid_until: guard.valid_until,
            next_renewal: instant_after(now, every),
            // A cap too far ahead to add to the clock is no cap.
            stop_renewing_at: lock.max_hold_duration().and_then(|d| now.checked_add(d)),
            last_error: None,
        }
    }

    fn capped(&self, now: Instant) -> bool {
        self.stop_renewing_at.is_some_and(|at| now >= at)
    }

    fn next(&self, now: Instant) -> Action {
        if now >= self.valid_until {
            return Action::Lost(if self.capped(now) {
                LostReason::MaxHoldReached
            } else {
                LostReason::Unconfirmed {
                    error: self
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "the renewal did not answer in time".to_owned()),
                }
            });
        }
        if self.capped(now) {
            return Action::Wait(self.valid_until);
        }
        if now >= self.next_renewal {
            return Action::Renew;
        }
        let mut wake = self.next_renewal.min(self.valid_until);
        if let Some(at) = self.stop_renewing_at {
            wake = wake.min(at);
        }
        Action::Wait(wake)
    }

    /// How long a renewal may take before it no longer helps.
    fn budget(&self, now: Instant) -> Duration {
        self.valid_until
            .saturating_duration_since(now)
            .max(Duration::from_millis(1))
    }

    fn renewed(&mut self, sent: Instant, result: Result<bool>) -> Option<LostReason> {
        match result {
            Ok(true) => {
                self.valid_until = instant_after(sent, self.ttl.saturating_sub(drift(self.ttl)));
                self.next_renewal = instant_after(sent, self.every);
                self.last_error = None;
                None
            }
            Ok(false) => Some(LostReason::Expired),
            Err(e) => {
                self.last_error = Some(e.to_string());
                self.next_renewal = instant_after(Instant::now(), self.retry);
                None
            }
        }
    }
}

/// The loop: renews until told to release, reports a loss once, then waits
/// for the guard to be released or dropped.
async fn watch<C: AsyncExecutor>(mut con: C, lock: Lock, guard: LockGuard, mut sentinel: Sentinel) {
    let ctl = sentinel.ctl.clone();
    let signal = sentinel.signal.clone();
    let mut renewal = Renewal::new(&lock, &guard, Instant::now());
    let mut lost = false;
    loop {
        if let Some(command) = ctl.take() {
            // The release is bounded like a renewal: a dead server must not
            // keep the caller waiting past the lock's own lifetime.
            let budget = renewal.budget(Instant::now()).max(lock.renew_interval());
            let result = tokio::time::timeout(budget, guard.release().run_async(&mut con))
                .await
                .unwrap_or_else(|_| Err(timeout_error("release")));
            sentinel.released = true;
            if let Command::Release(reply) = command {
                let _ = reply.send(result);
            }
            return;
        }
        let action = if lost {
            Action::Wait(instant_after(Instant::now(), Duration::from_secs(3600)))
        } else {
            renewal.next(Instant::now())
        };
        match action {
            Action::Lost(reason) => {
                signal.fire(reason);
                lost = true;
            }
            Action::Wait(until) => {
                tokio::select! {
                    () = tokio::time::sleep_until(until.into()) => {}
                    () = ctl.notify.notified() => {}
                }
            }
            Action::Renew => {
                let sent = Instant::now();
                let extend: Extend = guard.extend(renewal.ttl);
                let result = tokio::time::timeout(renewal.budget(sent), extend.run_async(&mut con))
                    .await
                    .unwrap_or_else(|_| Err(timeout_error("renewal")));
                if let Some(reason) = renewal.renewed(sent, result) {
                    signal.fire(reason);
                    lost = true;
                }
            }
        }
    }
}

fn timeout_error(what: &'static str) -> Error {
    Error::Redis(
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the lock {what} got no answer in time"),
        )
        .into(),
    )
}

/// A lock held with a watchdog: renewed every `renew_every` (default
/// `ttl / 3`) until released, dropped, or `max_hold` passes. Dropping it
/// releases the lock in the background.
#[must_use = "the lock stays held (and renewed) until released or dropped"]
pub struct WatchedGuard {
    guard: LockGuard,
    signal: LossSignal,
    ctl: Arc<Control>,
    done: bool,
}

impl WatchedGuard {
    /// The guard: key, token and fencing token.
    pub fn guard(&self) -> &LockGuard {
        &self.guard
    }

    /// The fencing token (see [`LockGuard::fence`]).
    pub fn fence(&self) -> u64 {
        self.guard.fence
    }

    /// The signal that fires when the lock is lost.
    pub fn loss(&self) -> &LossSignal {
        &self.signal
    }

    /// Stops the watchdog and releases the lock; `false` when it was no
    /// longer held. One `EVALSHA`, sent by the watchdog's connection. When
    /// the watchdog task has ended (it panicked, or its runtime shut down)
    /// there is nothing to send it with: the call fails at once with
    /// [`Error::LockLost`] ([`LostReason::WatchdogStopped`]) and the lock
    /// runs out after its TTL.
    pub async fn release_async(self) -> Result<bool> {
        self.ask_release().wait_async().await
    }

    /// [`release_async`](WatchedGuard::release_async) for blocking code. Must not be
    /// called from inside an async runtime (it would block it); that is
    /// reported as an error rather than a panic.
    pub fn release(self) -> Result<bool> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InvalidConfig {
                what: "WatchedGuard::release",
                reason: "called from inside an async runtime; use `release_async().await`"
                    .to_owned(),
            });
        }
        self.ask_release().wait()
    }

    /// Hands the release to the watchdog task; the answer comes back
    /// through the returned [`Waitable`].
    fn ask_release(mut self) -> Released {
        self.done = true;
        let (tx, rx) = oneshot::channel();
        self.ctl.send(Command::Release(tx));
        Released {
            rx,
            key: self.guard.key.clone(),
            signal: self.signal.clone(),
        }
    }
}

/// The answer to a release handed to the watchdog task, or, when the task
/// has ended, the error that says so.
struct Released {
    rx: oneshot::Receiver<Result<bool>>,
    key: String,
    signal: LossSignal,
}

impl Released {
    /// The error of a release the watchdog task can no longer run.
    fn stopped(key: &str, signal: &LossSignal) -> Error {
        Error::LockLost {
            key: key.to_owned(),
            reason: signal.reason().unwrap_or(LostReason::WatchdogStopped),
        }
    }
}

impl Waitable for Released {
    type Output = Result<bool>;
    fn wait(self) -> Result<bool> {
        let Released { rx, key, signal } = self;
        rx.blocking_recv()
            .unwrap_or_else(|_| Err(Released::stopped(&key, &signal)))
    }
    async fn wait_async(mut self) -> Result<bool> {
        let answer = (&mut self.rx).await;
        answer.unwrap_or_else(|_| Err(Released::stopped(&self.key, &self.signal)))
    }
}

impl Drop for WatchedGuard {
    fn drop(&mut self) {
        if !self.done {
            self.ctl.send(Command::Abandon);
        }
    }
}

impl fmt::Debug for WatchedGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchedGuard")
            .field("guard", &self.guard)
            .field("lost", &self.signal.reason())
            .finish()
    }
}

fn start<C>(
    con: C,
    lock: &Lock,
    guard: LockGuard,
) -> (WatchedGuard, impl Future<Output = ()> + use<C>)
where
    C: AsyncExecutor,
{
    let ctl = Arc::new(Control {
        state: Mutex::new(ControlState::default()),
        notify: Notify::new(),
    });
    let signal = LossSignal::new();
    let sentinel = Sentinel {
        ctl: ctl.clone(),
        signal: signal.clone(),
        released: false,
    };
    let task = watch(con, lock.clone(), guard.clone(), sentinel);
    (
        WatchedGuard {
            guard,
            signal,
            ctl,
            done: false,
        },
        task,
    )
}

/// What [`Lock::acquire_watched`] connects with: a
/// `redis::Client` (one multiplexed connection) or a
/// `redis::cluster::ClusterClient`.
pub trait Connect: Send + Sync {
    /// The async connection the watchdog uses.
    type Connection: AsyncExecutor + Clone + Send + Sync + 'static;
    /// Opens it.
    fn connect_async(&self) -> impl Future<Output = Result<Self::Connection>> + Send;
}

impl Connect for redis::Client {
    type Connection = redis::aio::MultiplexedConnection;
    async fn connect_async(&self) -> Result<Self::Connection> {
        Ok(self.get_multiplexed_async_connection().await?)
    }
}

#[cfg(feature = "cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
impl Connect for redis::cluster::ClusterClient {
    type Connection = redis::cluster_async::ClusterConnection;
    async fn connect_async(&self) -> Result<Self::Connection> {
        Ok(self.get_async_connection().await?)
    }
}

impl Lock {
    /// Takes the lock (waiting up to [`wait`](Lock::wait)) and starts a
    /// watchdog task on the current tokio runtime that renews it every
    /// [`renew_every`](Lock::renew_every) (default `ttl / 3`) with
    /// [`LockGuard::extend`], through a handle on `con` (a
    /// `MultiplexedConnection`, `ConnectionManager`, async Cluster
    /// connection, or a deadpool-redis / bb8-redis pooled connection of
    /// these: the watchdog gets a handle on the connection inside, the
    /// pooled object stays the caller's; see [`Shared`]).
    ///
    /// The guard's [`loss`](WatchedGuard::loss) signal fires as soon as a
    /// renewal finds the lock taken ([`LostReason::Expired`]), when no
    /// renewal could be confirmed before the lock's validity ran out
    /// ([`LostReason::Unconfirmed`], e.g. the server died), or when the lock
    /// ran out after `max_hold` ([`LostReason::MaxHoldReached`]), and
    /// when the watchdog task itself ends early (it panicked or the runtime
    /// shut down: [`LostReason::WatchdogStopped`]).
    ///
    /// If the returned future is dropped while an attempt is on the wire,
    /// that attempt's token is released in the background through another
    /// clone of `con` (see [`acquire_async`](Lock::acquire_async)).
    ///
    /// One `EVALSHA` per try, then one per renewal.
    pub async fn acquire_watched_async<C>(&self, con: &C) -> Result<WatchedGuard>
    where
        C: Shared + Sync + ?Sized,
    {
        let mut con = con.handle();
        let spare = con.clone();
        let guard = self
            .acquire_with(&mut Async::new(&mut con), Some(&spare))
            .await?;
        let (watched, task) = start(con, self, guard);
        tokio::spawn(task);
        Ok(watched)
    }

    /// [`acquire_watched_async`](Lock::acquire_watched_async) for programs without an
    /// async runtime: opens a connection with `client` on a thread of its
    /// own, acquires there (waiting up to [`wait`](Lock::wait)) and keeps
    /// the watchdog running on that thread. Release with
    /// [`WatchedGuard::release`] (or drop the guard).
    pub fn acquire_watched<K>(&self, client: &K) -> Result<WatchedGuard>
    where
        K: Connect + Clone + 'static,
    {
        let client = client.clone();
        let lock = self.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("redis-state-lock-watchdog".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(Error::user(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let acquired = async {
                        let mut con = client.connect_async().await?;
                        let guard = lock.acquire_async(&mut con).await?;
                        Ok::<_, Error>((con, guard))
                    }
                    .await;
                    match acquired {
                        Ok((con, guard)) => {
                            let (watched, task) = start(con, &lock, guard);
                            // When the caller is gone, the guard comes back
                            // in the error and is dropped here: the task
                            // then releases the lock and ends.
                            let _ = tx.send(Ok(watched));
                            task.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(Error::user)?;
        rx.recv().unwrap_or_else(|_| {
            Err(Error::UnexpectedReply {
                context: "a blocking lock watchdog",
                found: "its thread ended before it acquired the lock".to_owned(),
            })
        })
    }

    /// Runs `body` under a watched lock: acquires (waiting up to
    /// [`wait`](Lock::wait)), renews in the background while `body` runs,
    /// and releases when it finishes, fails or panics, or when the returned
    /// future is dropped (the watchdog then releases in the background).
    ///
    /// `body` gets the guard (for [`fence`](LockGuard::fence)) and the loss
    /// signal. When the lock is lost while `body` runs, `body` is dropped at
    /// its next `.await` and the call fails with [`Error::LockLost`]: no code
    /// of `body` runs after the loss is known.
    pub async fn scope_watched_async<C, F, Fut, R>(&self, con: &C, body: F) -> Result<R>
    where
        C: Shared + Sync + ?Sized,
        F: FnOnce(LockGuard, LossSignal) -> Fut,
        Fut: Future<Output = R>,
    {
        use futures_util::FutureExt;
        let watched = self.acquire_watched_async(con).await?;
        let signal = watched.signal.clone();
        let body = std::panic::AssertUnwindSafe(body(watched.guard.clone(), signal.clone()))
            .catch_unwind();
        tokio::pin!(body);
        let out = tokio::select! {
            biased;
            reason = signal.lost_async() => Err(reason),
            out = &mut body => Ok(out),
        };
        match out {
            Err(reason) => {
                let key = watched.guard.key.clone();
                drop(watched);
                Err(Error::LockLost { key, reason })
            }
            Ok(Err(panic)) => {
                let _ = watched.release_async().await;
                std::panic::resume_unwind(panic)
            }
            Ok(Ok(out)) => {
                if let Some(reason) = signal.reason() {
                    let key = watched.guard.key.clone();
                    drop(watched);
                    return Err(Error::LockLost { key, reason });
                }
                let key = watched.guard.key.clone();
                match watched.release_async().await? {
                    true => Ok(out),
                    false => Err(Error::LockLost {
                        key,
                        reason: LostReason::Expired,
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renewal(ttl_ms: u64, every_ms: u64, cap_ms: Option<u64>, now: Instant) -> Renewal {
        let ttl = Duration::from_millis(ttl_ms);
        Renewal {
            ttl,
            every: Duration::from_millis(every_ms),
            retry: Duration::from_millis(10),
            valid_until: now + ttl - drift(ttl),
            next_renewal: now + Duration::from_millis(every_ms),
            stop_renewing_at: cap_ms.map(|c| now + Duration::from_millis(c)),
            last_error: None,
        }
    }

    #[test]
    fn renews_on_schedule_and_reports_each_loss() {
        let t0 = Instant::now();
        let mut r = renewal(900, 300, None, t0);
        assert!(matches!(r.next(t0), Action::Wait(at) if at == t0 + Duration::from_millis(300)));
        assert!(matches!(
            r.next(t0 + Duration::from_millis(300)),
            Action::Renew
        ));
        let sent = t0 + Duration::from_millis(300);
        assert!(r.renewed(sent, Ok(true)).is_none());
        assert_eq!(
            r.valid_until,
            sent + Duration::from_millis(900) - drift(r.ttl)
        );
        // a failed renewal keeps the old validity and retries soon
        let e = Error::InvalidConfig {
            what: "x",
            reason: "down".into(),
        };
        assert!(r.renewed(t0 + Duration::from_millis(600), Err(e)).is_none());
        match r.next(r.valid_until) {
            Action::Lost(LostReason::Unconfirmed { error }) => assert!(error.contains("down")),
            _ => panic!("expected a loss at the end of validity"),
        }
        assert_eq!(
            r.renewed(Instant::now(), Ok(false)),
            Some(LostReason::Expired)
        );
    }

    #[test]
    fn stops_renewing_at_the_cap() {
        let t0 = Instant::now();
        let r = renewal(900, 300, Some(100), t0);
        let at_cap = t0 + Duration::from_millis(100);
        assert!(matches!(r.next(at_cap), Action::Wait(until) if until == r.valid_until));
        assert!(matches!(
            r.next(r.valid_until),
            Action::Lost(LostReason::MaxHoldReached)
        ));
    }
}
