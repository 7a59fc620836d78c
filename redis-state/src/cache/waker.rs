//! [`CacheWaker`]: wakes the async callers that wait for another process's
//! fill when the value lands, by pub/sub, without polling and without
//! holding the caller's connection.
//!
//! Every script that ends a fill (`fill`, `abandon`, `store` replacing a
//! fill, `invalidate` revoking one) `PUBLISH`es on the key's wake-up stream
//! name (`{<key>}:#done`) after writing the stream. A `CacheWaker` keeps one
//! RESP3 connection of its own, subscribed to the channels of the keys this
//! process waits for; a waiter subscribes (one round trip on the waker's
//! connection, shared by every waiter of the process), reads the stream
//! once (a fill may have landed before the subscription took effect), and
//! then sleeps until a message arrives for its channel.
//!
//! Pub/sub delivery is at-most-once: a message sent while the waker's
//! connection is down is lost. So a waiter also rereads the stream every
//! 500 ms (which is also how it sees a lease whose holder died
//! without a word), and a lost connection wakes every waiter to reread at
//! once; the next wait reconnects.
//!
//! On a Cluster, `PUBLISH` reaches the subscribers of every node, so the
//! waker connects to any one node. (Each fill then costs a message on the
//! cluster bus, as any `PUBLISH` does.)
//!
//! Blocking callers do not need a waker: their connection is their own
//! (`&mut`), so they block on the server (`XREAD BLOCK`). Async callers
//! without a waker poll the stream with backoff, because a blocked `XREAD`
//! on a shared connection would stall every other task's commands on it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::{PushInfo, PushKind, Value};
use tokio::sync::watch;

use crate::error::Result;

/// How often a waiter with a waker rereads the wake-up stream anyway.
pub(crate) const SAFETY_RECHECK: Duration = Duration::from_millis(500);

/// Wakes async cache waiters by pub/sub; see the [module docs](self).
/// Cheap to clone; give one to every [`Cache`](super::Cache) of the
/// process with [`Cache::with_waker`](super::Cache::with_waker).
#[derive(Clone)]
pub struct CacheWaker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CacheWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheWaker")
            .field("channels", &self.inner.lock().len())
            .field("connected", &self.inner.alive.load(Ordering::SeqCst))
            .finish()
    }
}

struct Inner {
    client: redis::Client,
    con: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    channels: Mutex<HashMap<Vec<u8>, Channel>>,
    alive: AtomicBool,
    messages: AtomicU64,
}

/// One subscribed channel: how many waiters use it, and a counter bumped on
/// every message (waiters watch it).
struct Channel {
    users: usize,
    tx: watch::Sender<u64>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Channel>> {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn on_push(&self, info: &PushInfo) {
        match info.kind {
            PushKind::Message => {
                let channel = match info.data.first() {
                    Some(Value::BulkString(b)) => b.as_slice(),
                    Some(Value::SimpleString(s)) => s.as_bytes(),
                    _ => return,
                };
                self.messages.fetch_add(1, Ordering::Relaxed);
                if let Some(c) = self.lock().get(channel) {
                    c.tx.send_modify(|n| *n += 1);
                }
            }
            PushKind::Disconnection => {
                self.alive.store(false, Ordering::SeqCst);
                // Messages may be lost from here on: every waiter rereads.
                for c in self.lock().values() {
                    c.tx.send_modify(|n| *n += 1);
                }
            }
            _ => {}
        }
    }
}

struct PushHandler(Weak<Inner>);

impl redis::aio::AsyncPushSender for PushHandler {
    fn send(&self, info: PushInfo) -> std::result::Result<(), redis::aio::SendError> {
        match self.0.upgrade() {
            Some(inner) => {
                inner.on_push(&info);
                Ok(())
            }
            None => Err(redis::aio::SendError),
        }
    }
}

impl CacheWaker {
    /// Connects to a server (`redis://…`; RESP3 is turned on), or to any
    /// one node of a Cluster. Returns once connected. Needs a tokio runtime.
    pub async fn connect_async(url: &str) -> Result<Self> {
        let client = redis::Client::open(super::local::resp3_info(url)?)?;
        let inner = Arc::new(Inner {
            client,
            con: tokio::sync::Mutex::new(None),
            channels: Mutex::new(HashMap::new()),
            alive: AtomicBool::new(false),
            messages: AtomicU64::new(0),
        });
        let waker = CacheWaker { inner };
        waker.connection().await?;
        Ok(waker)
    }

    /// Whether the waker's connection is up.
    pub fn is_connected(&self) -> bool {
        self.inner.alive.load(Ordering::SeqCst)
    }

    /// Messages received so far (for tests and metrics).
    pub fn messages(&self) -> u64 {
        self.inner.messages.load(Ordering::Relaxed)
    }

    /// The connection, reconnected (and resubscribed) if it was lost.
    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection> {
        let mut slot = self.inner.con.lock().await;
        if let (Some(con), true) = (&*slot, self.is_connected()) {
            return Ok(con.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_push_sender(PushHandler(Arc::downgrade(&self.inner)));
        let mut con = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        self.inner.alive.store(true, Ordering::SeqCst);
        let channels: Vec<Vec<u8>> = self.inner.lock().keys().cloned().collect();
        if !channels.is_empty() {
            con.subscribe(&channels).await?;
        }
        *slot = Some(con.clone());
        Ok(con)
    }

    /// Subscribes to `channel` (unless already subscribed) and returns a
    /// watch on its messages. Channels nobody waits on any more are
    /// unsubscribed here, in the same round trip.
    pub(crate) async fn watch(&self, channel: &str) -> Result<Watch> {
        let key = channel.as_bytes().to_vec();
        let (rx, new, idle) = {
            let mut map = self.inner.lock();
            let idle: Vec<Vec<u8>> = map
                .iter()
                .filter(|(k, c)| c.users == 0 && **k != key)
                .map(|(k, _)| k.clone())
                .collect();
            for k in &idle {
                map.remove(k);
            }
            let new = !map.contains_key(&key);
            let c = map.entry(key.clone()).or_insert_with(|| Channel {
                users: 0,
                tx: watch::channel(0).0,
            });
            c.users += 1;
            (c.tx.subscribe(), new, idle)
        };
        let watch = Watch {
            waker: self.clone(),
            channel: key,
            rx,
        };
        if new || !idle.is_empty() || !self.is_connected() {
            let mut con = self.connection().await?;
            if !idle.is_empty() {
                con.unsubscribe(&idle).await?;
            }
            if new {
                con.subscribe(&watch.channel).await?;
            }
        }
        Ok(watch)
    }
}

/// A waiter's view of one channel; dropping it releases the channel.
pub(crate) struct Watch {
    waker: CacheWaker,
    channel: Vec<u8>,
    rx: watch::Receiver<u64>,
}

impl Watch {
    /// Marks every message so far as seen (call before reading the stream).
    pub(crate) fn seen(&mut self) {
        self.rx.borrow_and_update();
    }

    /// Waits for a message after the last [`Watch::seen`], at most `limit`.
    pub(crate) async fn changed(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.rx.changed()).await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Unsubscribed lazily, by the next `watch` call.
        if let Some(c) = self.waker.inner.lock().get_mut(&self.channel) {
            c.users = c.users.saturating_sub(1);
        }
    }
}
