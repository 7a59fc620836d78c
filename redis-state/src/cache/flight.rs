//! Single-flight inside a process: concurrent misses of one key make one
//! loader call; the other callers wait for its result, blocking (sync) or
//! asynchronously.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use tokio::sync::Notify;

/// What the leader of a flight ended with: the value (or `None` for "not
/// found"), or the loader's error message.
pub(crate) type Outcome<T> = Result<Option<T>, String>;

/// One load in progress.
pub(crate) struct Flight<T> {
    outcome: Mutex<Option<Outcome<T>>>,
    ready: Condvar,
    notify: Notify,
}

impl<T: Clone> Flight<T> {
    fn new() -> Self {
        Flight {
            outcome: Mutex::new(None),
            ready: Condvar::new(),
            notify: Notify::new(),
        }
    }

    fn finish(&self, outcome: Outcome<T>) {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(outcome);
        drop(slot);
        self.ready.notify_all();
        self.notify.notify_waiters();
    }

    fn peek(&self) -> Option<Outcome<T>> {
        self.outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Blocks the thread until the leader finishes.
    fn wait(&self) -> Outcome<T> {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(outcome) = slot.as_ref() {
                return outcome.clone();
            }
            slot = self
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits asynchronously until the leader finishes.
    async fn wait_async(&self) -> Outcome<T> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Register before looking, so a finish in between is not missed.
            notified.as_mut().enable();
            if let Some(outcome) = self.peek() {
                return outcome;
            }
            notified.await;
        }
    }
}

impl<T: Clone + Send + Sync> crate::driver::Waitable for Arc<Flight<T>> {
    type Output = Outcome<T>;
    fn wait(self) -> Outcome<T> {
        Flight::wait(&self)
    }
    async fn wait_async(self) -> Outcome<T> {
        Flight::wait_async(&self).await
    }
}

/// The flights of one cache, by key.
pub(crate) struct Flights<T> {
    map: Mutex<HashMap<String, Arc<Flight<T>>>>,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }
}

/// A caller's place in a flight.
pub(crate) enum Joined<'f, T: Clone> {
    /// This caller loads; it must call [`Leader::finish`] (dropping the
    /// guard without finishing reports a failure to the followers).
    Leader(Leader<'f, T>),
    /// Another caller loads; wait on the flight.
    Follower(Arc<Flight<T>>),
}

impl<T: Clone> Flights<T> {
    pub(crate) fn join(&self, key: &str) -> Joined<'_, T> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = map.get(key) {
            return Joined::Follower(f.clone());
        }
        let flight = Arc::new(Flight::new());
        map.insert(key.to_owned(), flight.clone());
        Joined::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            flight,
            done: false,
        })
    }

    /// Number of loads in progress (for tests and metrics).
    pub(crate) fn in_flight(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The leader's guard of a flight.
pub(crate) struct Leader<'f, T: Clone> {
    flights: &'f Flights<T>,
    key: String,
    flight: Arc<Flight<T>>,
    done: bool,
}

impl<T: Clone> Leader<'_, T> {
    /// Publishes the outcome to the followers and ends the flight.
    pub(crate) fn finish(mut self, outcome: Outcome<T>) {
        self.end(outcome);
    }

    fn end(&mut self, outcome: Outcome<T>) {
        if self.done {
            return;
        }
        self.done = true;
        self.flights
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
        self.flight.finish(outcome);
    }
}

impl<T: Clone> Drop for Leader<'_, T> {
    fn drop(&mut self) {
        // A leader that was cancelled (its future dropped) or panicked.
        self.end(Err("the caller loading this key was cancelled".to_owned()));
    }
}
