//! [`Subscriber`]: see its docs.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::Stream;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::Notify;

use super::{Channel, Pattern};
use crate::error::{Error, Result};

/// Where a subscriber connects.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Target {
    /// A standalone server (`redis://host:port/db`); RESP3 is turned on.
    Standalone(String),
    /// A Cluster, by the URLs of some of its nodes.
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    Cluster(Vec<String>),
}

impl Target {
    /// A standalone server.
    pub fn standalone(url: impl Into<String>) -> Self {
        Target::Standalone(url.into())
    }

    /// A Cluster, by the URLs of some of its nodes.
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn cluster<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> Self {
        Target::Cluster(urls.into_iter().map(Into::into).collect())
    }
}

/// What a full buffer does with the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Drops the oldest buffered message to make room (the reader sees
    /// the newest ones); counted and reported as [`Event::Lagged`].
    DropOldest,
    /// Drops the new message; counted and reported as [`Event::Lagged`].
    DropNewest,
    /// Stops the subscriber: the reader gets the buffered messages, then
    /// [`Error::SubscriberOverflow`], then the end.
    Fail,
}

/// How a subscriber buffers and watches its connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SubscriberOptions {
    /// Most messages buffered between the connection and the reader.
    /// Default 10 000.
    pub capacity: usize,
    /// What a full buffer does. Default [`Overflow::DropOldest`].
    pub overflow: Overflow,
    /// How often the connection is pinged, so that a dead one is noticed
    /// and replaced. Default 1 s.
    pub health_check: Duration,
    /// The bound on connecting and on each command. Default 2 s.
    pub timeout: Duration,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        SubscriberOptions {
            capacity: 10_000,
            overflow: Overflow::DropOldest,
            health_check: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
        }
    }
}

impl SubscriberOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`capacity`](Self::capacity) (at least 1).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Sets [`overflow`](Self::overflow).
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Sets [`health_check`](Self::health_check).
    pub fn health_check(mut self, every: Duration) -> Self {
        self.health_check = every;
        self
    }

    /// Sets [`timeout`](Self::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Which kind of subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `SUBSCRIBE` to a channel.
    Channel,
    /// `PSUBSCRIBE` to a pattern.
    Pattern,
    /// `SSUBSCRIBE` to a sharded channel.
    Shard,
}

impl Kind {
    fn verbs(self) -> (&'static str, &'static str) {
        match self {
            Kind::Channel => ("SUBSCRIBE", "UNSUBSCRIBE"),
            Kind::Pattern => ("PSUBSCRIBE", "PUNSUBSCRIBE"),
            Kind::Shard => ("SSUBSCRIBE", "SUNSUBSCRIBE"),
        }
    }
}

/// Why messages may have been missed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissedReason {
    /// The connection (or, on a Cluster, a node's connection) dropped; it
    /// is reconnected and resubscribed, confirmed by `Subscribed` events.
    Disconnected,
    /// The server dropped this sharded channel because its slot moved; it
    /// is re-subscribed at the slot's new owner.
    SlotMoved {
        /// The channel's name.
        channel: String,
    },
}

/// A message, with its channel parsed back into the channel type.
#[non_exhaustive]
pub struct Message<C: Channel> {
    /// The channel, with its name's parts.
    pub channel: C,
    /// The pattern it matched, for a pattern subscription.
    pub pattern: Option<String>,
    /// The message.
    pub message: C::Message,
}

/// What a subscriber reads.
#[non_exhaustive]
pub enum Event<C: Channel> {
    /// A message.
    Message(Message<C>),
    /// The server confirmed a subscription; `count` is the connection's
    /// number of subscriptions of that family now. Reported once per
    /// subscription the server takes on: a confirmation repeating one in
    /// force since the last [`MayHaveMissed`](Event::MayHaveMissed) (after
    /// a reconnect the Cluster client's own resubscription and the
    /// subscriber's both confirm it; subscribing twice to one name) is not
    /// reported again.
    Subscribed {
        /// Channel, pattern or sharded channel.
        kind: Kind,
        /// Its name or glob.
        name: String,
        /// The server's count.
        count: u64,
    },
    /// The server confirmed an unsubscription (asked for, or, for a
    /// sharded channel whose slot moved, its own).
    Unsubscribed {
        /// Channel, pattern or sharded channel.
        kind: Kind,
        /// Its name or glob.
        name: String,
        /// The server's count.
        count: u64,
    },
    /// The buffer was full: `dropped` messages were dropped since the last
    /// such event.
    Lagged {
        /// How many.
        dropped: u64,
    },
    /// Messages may have been lost here (at-most-once delivery).
    MayHaveMissed {
        /// Why.
        reason: MissedReason,
    },
}

impl<C: Channel + std::fmt::Debug> std::fmt::Debug for Message<C>
where
    C::Message: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("channel", &self.channel)
            .field("pattern", &self.pattern)
            .field("message", &self.message)
            .finish()
    }
}

impl<C: Channel + std::fmt::Debug> std::fmt::Debug for Event<C>
where
    C::Message: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Message(m) => m.fmt(f),
            Event::Subscribed { kind, name, count } => f
                .debug_struct("Subscribed")
                .field("kind", kind)
                .field("name", name)
                .field("count", count)
                .finish(),
            Event::Unsubscribed { kind, name, count } => f
                .debug_struct("Unsubscribed")
                .field("kind", kind)
                .field("name", name)
                .field("count", count)
                .finish(),
            Event::Lagged { dropped } => {
                f.debug_struct("Lagged").field("dropped", dropped).finish()
            }
            Event::MayHaveMissed { reason } => f
                .debug_struct("MayHaveMissed")
                .field("reason", reason)
                .finish(),
        }
    }
}

/// An undecoded item: a filed push, or a count of dropped messages.
pub(super) enum Pending {
    Raw(Raw),
    Lagged(u64),
}

/// What the push handler files.
pub(super) enum Raw {
    Msg {
        channel: Vec<u8>,
        pattern: Option<Vec<u8>>,
        payload: Vec<u8>,
    },
    Sub {
        kind: Kind,
        name: Vec<u8>,
        count: u64,
        on: bool,
    },
    Missed(MissedReason),
}

#[derive(Default)]
struct State {
    items: VecDeque<Raw>,
    /// Messages in `items`.
    messages: usize,
    /// Dropped since the last `Lagged`.
    lagged: u64,
    dropped: u64,
    received: u64,
    /// The buffer overflowed under `Overflow::Fail`: `Some(reported)`.
    failed: Option<bool>,
    closed: bool,
    /// What the user subscribed to.
    desired: BTreeSet<(Kind, Vec<u8>)>,
    /// Unsubscriptions asked for and not yet confirmed.
    leaving: BTreeSet<(Kind, Vec<u8>)>,
    /// What the server confirmed since the last disconnection: a repeated
    /// confirmation (the client's own resubscription and the subscriber's
    /// crossing after a reconnect, or a re-subscription that found the
    /// subscription in force) is not reported twice.
    confirmed: BTreeSet<(Kind, Vec<u8>)>,
    /// Sharded channels the server dropped, to subscribe again.
    resub: Vec<Vec<u8>>,
    /// A standalone connection dropped and is not resubscribed yet.
    disconnected: bool,
    /// On a Cluster, until when the sharded channels' owners are checked
    /// after a node's connection dropped.
    verify_until: Option<std::time::Instant>,
}

struct Shared {
    state: Mutex<State>,
    ready: Notify,
    maint: Notify,
    capacity: usize,
    overflow: Overflow,
    standalone: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn on_push(&self, info: PushInfo) {
        let mut data = info.data.into_iter().map(bytes);
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let sub = |kind, on| (kind, on);
        let (kind, on) = match info.kind {
            PushKind::Message | PushKind::SMessage | PushKind::PMessage => {
                let pattern = if info.kind == PushKind::PMessage {
                    data.next()
                } else {
                    None
                };
                let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                    return;
                };
                self.file_message(
                    &mut st,
                    Raw::Msg {
                        channel,
                        pattern,
                        payload,
                    },
                );
                drop(st);
                self.ready.notify_one();
                return;
            }
            PushKind::Subscribe => sub(Kind::Channel, true),
            PushKind::PSubscribe => sub(Kind::Pattern, true),
            PushKind::SSubscribe => sub(Kind::Shard, true),
            PushKind::Unsubscribe => sub(Kind::Channel, false),
            PushKind::PUnsubscribe => sub(Kind::Pattern, false),
            PushKind::SUnsubscribe => sub(Kind::Shard, false),
            PushKind::Disconnection => {
                let already = matches!(
                    st.items.back(),
                    Some(Raw::Missed(MissedReason::Disconnected))
                );
                if !already {
                    st.items.push_back(Raw::Missed(MissedReason::Disconnected));
                }
                // What was confirmed is to be confirmed again.
                st.confirmed.clear();
                if self.standalone {
                    st.disconnected = true;
                } else {
                    // The Cluster client resubscribes a node it reconnects,
                    // but not a sharded channel whose slot went to another
                    // node (a failover): subscribe them all again, routed
                    // by the client's refreshed slot map.
                    let shards: Vec<Vec<u8>> = st
                        .desired
                        .iter()
                        .filter(|(k, _)| *k == Kind::Shard)
                        .map(|(_, n)| n.clone())
                        .filter(|n| !st.resub.contains(n))
                        .collect();
                    st.resub.extend(shards);
                    st.verify_until = Some(std::time::Instant::now() + VERIFY_WINDOW);
                }
                drop(st);
                self.maint.notify_one();
                self.ready.notify_one();
                return;
            }
            _ => return,
        };
        let name = data.next().unwrap_or_default();
        let count = data.next().and_then(|c| parse_count(&c)).unwrap_or(0);
        let entry = (kind, name.clone());
        let mut moved = false;
        if on {
            if !st.confirmed.insert(entry) {
                // The same subscription confirmed again: nothing changed at
                // the server, nothing to report.
                return;
            }
        } else {
            st.confirmed.remove(&entry);
            if !st.leaving.remove(&entry) && st.desired.contains(&entry) {
                // Not asked for: the server dropped a sharded channel whose
                // slot moved away from this node.
                moved = kind == Kind::Shard;
            }
        }
        st.items.push_back(Raw::Sub {
            kind,
            name: name.clone(),
            count,
            on,
        });
        if moved {
            st.items.push_back(Raw::Missed(MissedReason::SlotMoved {
                channel: String::from_utf8_lossy(&name).into_owned(),
            }));
            st.resub.push(name);
        }
        drop(st);
        if moved {
            self.maint.notify_one();
        }
        self.ready.notify_one();
    }

    fn file_message(&self, st: &mut State, raw: Raw) {
        st.received += 1;
        if st.failed.is_some() {
            st.dropped += 1;
            return;
        }
        if st.messages >= self.capacity {
            match self.overflow {
                Overflow::DropNewest => {
                    st.dropped += 1;
                    st.lagged += 1;
                    return;
                }
                Overflow::DropOldest => {
                    if let Some(i) = st.items.iter().position(|r| matches!(r, Raw::Msg { .. })) {
                        st.items.remove(i);
                        st.messages -= 1;
                    }
                    st.dropped += 1;
                    st.lagged += 1;
                }
                Overflow::Fail => {
                    st.dropped += 1;
                    st.failed = Some(false);
                    return;
                }
            }
        }
        st.messages += 1;
        st.items.push_back(raw);
    }
}

fn bytes(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.into_bytes(),
        Value::Int(i) => i.to_string().into_bytes(),
        _ => Vec::new(),
    }
}

fn parse_count(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

struct PushHandler(Weak<Shared>);

impl redis::aio::AsyncPushSender for PushHandler {
    fn send(&self, info: PushInfo) -> std::result::Result<(), redis::aio::SendError> {
        match self.0.upgrade() {
            Some(shared) => {
                shared.on_push(info);
                Ok(())
            }
            None => Err(redis::aio::SendError),
        }
    }
}

/// The connection: redis-rs' reconnecting standalone or Cluster client.
#[derive(Clone)]
pub(super) enum Link {
    Single(redis::aio::ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Link {
    /// A reconnecting connection with no subscriptions, for reads beside a
    /// subscriber (a reliable topic's backfill), so that they never race
    /// the subscriber's own reconnects.
    pub(super) async fn connect_plain(target: &Target, opts: &SubscriberOptions) -> Result<Self> {
        Self::open(target, opts, None).await
    }

    async fn connect(
        target: &Target,
        opts: &SubscriberOptions,
        shared: &Arc<Shared>,
    ) -> Result<Self> {
        Self::open(target, opts, Some(PushHandler(Arc::downgrade(shared)))).await
    }

    async fn open(
        target: &Target,
        opts: &SubscriberOptions,
        handler: Option<PushHandler>,
    ) -> Result<Self> {
        match target {
            Target::Standalone(url) => {
                let client = redis::Client::open(crate::cache::local::resp3_info(url)?)?;
                let mut config = redis::aio::ConnectionManagerConfig::new();
                if let Some(handler) = handler {
                    config = config.set_push_sender(handler);
                }
                let config = config
                    .set_connection_timeout(Some(opts.timeout))
                    .set_response_timeout(Some(opts.timeout))
                    .set_number_of_retries(3)
                    .set_max_delay(Duration::from_secs(1));
                let con = tokio::time::timeout(
                    opts.timeout,
                    client.get_connection_manager_with_config(config),
                )
                .await
                .map_err(|_| timeout_error("connecting a subscriber"))??;
                Ok(Link::Single(con))
            }
            #[cfg(feature = "cluster")]
            Target::Cluster(urls) => {
                let mut builder = redis::cluster::ClusterClientBuilder::new(urls.clone())
                    .use_protocol(redis::ProtocolVersion::RESP3);
                if let Some(handler) = handler {
                    builder = builder.push_sender(handler);
                }
                let client = builder
                    .connection_timeout(opts.timeout)
                    .response_timeout(opts.timeout)
                    .build()?;
                let con = tokio::time::timeout(opts.timeout, client.get_async_connection())
                    .await
                    .map_err(|_| timeout_error("connecting a subscriber"))??;
                Ok(Link::Cluster(con))
            }
        }
    }

    /// Sends `SUBSCRIBE`-like `verb` for `name` (one name per command, so
    /// one confirmation per command).
    async fn send(&mut self, kind: Kind, on: bool, name: &[u8]) -> Result<()> {
        match self {
            Link::Single(con) => {
                let (sub, unsub) = kind.verbs();
                redis::cmd(if on { sub } else { unsub })
                    .arg(name)
                    .exec_async(con)
                    .await?;
            }
            #[cfg(feature = "cluster")]
            Link::Cluster(con) => match (kind, on) {
                (Kind::Channel, true) => con.subscribe(name).await?,
                (Kind::Channel, false) => con.unsubscribe(name).await?,
                (Kind::Pattern, true) => con.psubscribe(name).await?,
                (Kind::Pattern, false) => con.punsubscribe(name).await?,
                (Kind::Shard, true) => con.ssubscribe(name).await?,
                (Kind::Shard, false) => con.sunsubscribe(name).await?,
            },
        }
        Ok(())
    }

    /// Runs an operation on the subscriber's connection (RESP3 lets a
    /// subscribed connection send other commands).
    pub(super) async fn run<O: crate::op::Operation + Send>(&mut self, op: O) -> Result<O::Output>
    where
        O::Output: Send,
    {
        match self {
            Link::Single(con) => op.run_async(con).await,
            #[cfg(feature = "cluster")]
            Link::Cluster(con) => op.run_async(con).await,
        }
    }

    /// `PUBSUB SHARDNUMSUB` at the owner of `name`'s slot (a Cluster
    /// only); `None` when it cannot be asked.
    #[cfg(not(feature = "cluster"))]
    async fn shard_subscribers(&mut self, _name: &[u8]) -> Option<u64> {
        None
    }

    /// `PUBSUB SHARDNUMSUB` at the owner of `name`'s slot (a Cluster
    /// only); `None` when it cannot be asked.
    #[cfg(feature = "cluster")]
    async fn shard_subscribers(&mut self, name: &[u8]) -> Option<u64> {
        let Link::Cluster(con) = self else {
            return None;
        };
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
        let slot = crate::keys::key_slot(name);
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg("SHARDNUMSUB").arg(name);
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
            slot,
            SlotAddr::Master,
        )));
        let reply = con.route_command(cmd, routing).await.ok()?;
        let (_, n): (Vec<u8>, u64) = match reply {
            Value::Map(mut m) if m.len() == 1 => {
                let (k, v) = m.pop()?;
                (
                    redis::from_redis_value(k).ok()?,
                    redis::from_redis_value(v).ok()?,
                )
            }
            other => redis::from_redis_value(other).ok()?,
        };
        Some(n)
    }

    async fn ping(&mut self) -> Result<()> {
        match self {
            Link::Single(con) => redis::cmd("PING").exec_async(con).await?,
            #[cfg(feature = "cluster")]
            Link::Cluster(con) => redis::cmd("PING").exec_async(con).await?,
        }
        Ok(())
    }
}

fn timeout_error(what: &'static str) -> Error {
    Error::Redis(redis::RedisError::from((
        redis::ErrorKind::Io,
        "timed out",
        what.to_owned(),
    )))
}

/// How long after a Cluster node's connection dropped the owners of the
/// sharded channels are checked (a failover's promotion and the client's
/// slot refresh happen in this time).
const VERIFY_WINDOW: Duration = Duration::from_secs(30);

/// Resubscribes after reconnects and slot moves, and pings; ends when the
/// subscriber closes.
async fn maintain(shared: Arc<Shared>, mut link: Link, every: Duration) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let woken = tokio::select! {
            _ = shared.maint.notified() => true,
            _ = tokio::time::sleep(every) => false,
        };
        let (full, resub, desired, verify_until) = {
            let mut st = shared.lock();
            if st.closed {
                return;
            }
            let resub: Vec<Vec<u8>> = std::mem::take(&mut st.resub)
                .into_iter()
                .filter(|n| st.desired.contains(&(Kind::Shard, n.clone())))
                .collect();
            (st.disconnected, resub, st.desired.clone(), st.verify_until)
        };
        let mut failed = false;
        if full {
            // Everything again, on the new connection.
            let mut ok = link.ping().await.is_ok();
            for (kind, name) in &desired {
                if ok {
                    ok = link.send(*kind, true, name).await.is_ok();
                }
            }
            if ok {
                shared.lock().disconnected = false;
            }
            failed |= !ok;
        }
        for name in resub {
            if link.send(Kind::Shard, true, &name).await.is_err() {
                shared.lock().resub.push(name);
                failed = true;
            }
        }
        if verify_until.is_some_and(|t| std::time::Instant::now() < t) {
            // After a failover the client's own resubscription can land on
            // a connection it then replaces: ask each sharded channel's
            // owner, and subscribe again where it counts no subscriber.
            for (kind, name) in &desired {
                if *kind == Kind::Shard
                    && link.shard_subscribers(name).await == Some(0)
                    && link.send(Kind::Shard, true, name).await.is_err()
                {
                    failed = true;
                }
            }
        }
        if !woken && !full && link.ping().await.is_err() && shared.standalone {
            shared.lock().disconnected = true;
            failed = true;
        }
        if failed {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
            shared.maint.notify_one();
        } else {
            backoff = Duration::from_millis(20);
        }
    }
}

/// The runtime the connection lives on.
pub(super) enum Rt {
    /// The caller's.
    Borrowed(tokio::runtime::Handle),
    /// A thread of the subscriber's own, running a current-thread runtime
    /// until the sender drops.
    Owned {
        handle: tokio::runtime::Handle,
        _stop: tokio::sync::oneshot::Sender<()>,
    },
}

impl Rt {
    pub(super) fn handle(&self) -> &tokio::runtime::Handle {
        match self {
            Rt::Borrowed(h) | Rt::Owned { handle: h, .. } => h,
        }
    }

    pub(super) fn own() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::InvalidConfig {
                what: "subscriber runtime",
                reason: e.to_string(),
            })?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("redis-state-subscriber".to_owned())
            .spawn(move || {
                let _ = rt.block_on(stopped);
            })
            .map_err(|e| Error::InvalidConfig {
                what: "subscriber thread",
                reason: e.to_string(),
            })?;
        Ok(Rt::Owned {
            handle,
            _stop: stop,
        })
    }

    /// Runs `fut` to completion on the calling thread (a blocking call).
    pub(super) fn block<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InvalidConfig {
                what: "blocking subscriber call",
                reason: "called inside an async runtime; use the `_async` form".to_owned(),
            });
        }
        self.handle().block_on(fut)
    }

    /// The blocking read of a subscriber's next item: `next` awaited on the
    /// calling thread for at most `timeout`; `None` when nothing came.
    pub(super) fn recv_within<T>(
        &self,
        timeout: Duration,
        next: impl Future<Output = Option<Result<T>>>,
    ) -> Option<Result<T>> {
        match self.block(async { Ok(tokio::time::timeout(timeout, next).await.ok().flatten()) }) {
            Ok(item) => item,
            Err(e) => Some(Err(e)),
        }
    }
}

/// One connection of its own, subscribed to channels and
/// patterns of one [`Channel`] type.
///
/// # One core, two ways to read
///
/// The connection is redis-rs' (a `ConnectionManager` on a standalone
/// server, the async Cluster client on a Cluster), in RESP3, with a push
/// sender that files every push into the subscriber's bounded buffer as it
/// arrives. A small maintenance task on the same runtime resubscribes
/// after a reconnect, re-subscribes a sharded channel the server dropped
/// when its slot moved, and pings on an interval so that a dead connection
/// is noticed. Reading is the same code for both callers:
/// [`Subscriber::next_async`] awaits the buffer; the blocking forms
/// ([`Subscriber::recv`], [`Subscriber::run`] with a handler on its own
/// thread) drive that same future on the calling thread.
///
/// [`Subscriber::connect_async`] runs the connection on the caller's tokio
/// runtime; [`Subscriber::connect`] starts a small runtime thread of its
/// own, for programs without one.
///
/// # What the subscriber reports
///
/// * [`Event::Subscribed`] / [`Event::Unsubscribed`]: the server's
///   confirmations, with the connection's subscription count; after a
///   reconnect, one `Subscribed` per subscription however many
///   resubscriptions crossed.
/// * [`Event::Lagged`]: the buffer was full and this many messages were
///   dropped ([`Overflow`]); [`Subscriber::dropped`] counts them all.
/// * [`Event::MayHaveMissed`]: the connection dropped (messages published
///   until the next `Subscribed` confirmations are lost), or the server
///   dropped a sharded channel because its slot moved (it is re-subscribed
///   at the new owner).
/// * An `Err(`[`Error::BadMessage`]`)` item: a payload (or a channel name)
///   that does not decode, with the channel and a preview; the next item
///   follows as usual.
///
/// # Bounds
///
/// The buffer holds at most `capacity` messages (confirmations and notices
/// are few and kept). Unsubscribing always names what it drops:
/// `unsubscribe_all` sends the subscriber's own list, never a bare
/// `UNSUBSCRIBE`.
pub struct Subscriber<C: Channel> {
    shared: Arc<Shared>,
    pub(super) link: Link,
    pub(super) rt: Arc<Rt>,
    _c: std::marker::PhantomData<fn() -> C>,
}

impl<C: Channel> std::fmt::Debug for Subscriber<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("Subscriber")
            .field("channel", &C::SCHEMA.model)
            .field("subscriptions", &st.desired.len())
            .field("buffered", &st.messages)
            .field("dropped", &st.dropped)
            .finish()
    }
}

impl<C: Channel> Subscriber<C> {
    pub(super) async fn start(
        target: Target,
        opts: SubscriberOptions,
        rt: Arc<Rt>,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            maint: Notify::new(),
            capacity: opts.capacity.max(1),
            overflow: opts.overflow,
            standalone: matches!(target, Target::Standalone(_)),
        });
        let link = Link::connect(&target, &opts, &shared).await?;
        rt.handle()
            .spawn(maintain(shared.clone(), link.clone(), opts.health_check));
        Ok(Subscriber {
            shared,
            link,
            rt,
            _c: std::marker::PhantomData,
        })
    }

    /// Connects on the caller's tokio runtime. Nothing is subscribed yet.
    pub async fn connect_async(target: Target, opts: SubscriberOptions) -> Result<Self> {
        let rt = Rt::Borrowed(tokio::runtime::Handle::current());
        Self::start(target, opts, Arc::new(rt)).await
    }

    /// Connects, with a runtime thread of the subscriber's own (for
    /// programs without a tokio runtime). Blocks.
    pub fn connect(target: Target, opts: SubscriberOptions) -> Result<Self> {
        let rt = Rt::own()?;
        let handle = rt.handle().clone();
        let start = Self::start(target, opts, Arc::new(rt));
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InvalidConfig {
                what: "blocking subscriber call",
                reason: "called inside an async runtime; use `connect_async`".to_owned(),
            });
        }
        handle.block_on(start)
    }

    pub(super) async fn change(&self, kind: Kind, on: bool, name: Vec<u8>) -> Result<()> {
        let entry = (kind, name.clone());
        {
            let mut st = self.shared.lock();
            if on {
                st.desired.insert(entry.clone());
                st.leaving.remove(&entry);
            } else {
                if !st.desired.remove(&entry) {
                    return Ok(());
                }
                st.leaving.insert(entry.clone());
            }
        }
        let mut link = self.link.clone();
        let sent = link.send(kind, on, &name).await;
        if sent.is_err() && on {
            self.shared.lock().desired.remove(&entry);
        }
        sent
    }

    fn kind_of_channel() -> Kind {
        if C::SCHEMA.sharded {
            Kind::Shard
        } else {
            Kind::Channel
        }
    }

    /// Subscribes to `channel` (`SUBSCRIBE`, or `SSUBSCRIBE` for a sharded
    /// channel); returns once the server confirmed it. One round trip.
    pub async fn subscribe_async(&self, channel: &C) -> Result<()> {
        self.change(Self::kind_of_channel(), true, channel.name().into_bytes())
            .await
    }

    /// Unsubscribes from `channel`; its confirmation follows as an
    /// [`Event::Unsubscribed`]. One round trip.
    pub async fn unsubscribe_async(&self, channel: &C) -> Result<()> {
        self.change(Self::kind_of_channel(), false, channel.name().into_bytes())
            .await
    }

    /// Subscribes to a pattern (`PSUBSCRIBE`; not for sharded channels,
    /// which have no patterns). One round trip.
    pub async fn psubscribe_async(&self, pattern: &Pattern<C>) -> Result<()> {
        if C::SCHEMA.sharded {
            return Err(Error::InvalidArgument {
                operation: "psubscribe",
                reason: format!(
                    "{} is a sharded channel: Redis has no pattern subscriptions for those",
                    C::SCHEMA.model
                ),
            });
        }
        self.change(Kind::Pattern, true, pattern.glob().as_bytes().to_vec())
            .await
    }

    /// Unsubscribes from a pattern. One round trip.
    pub async fn punsubscribe_async(&self, pattern: &Pattern<C>) -> Result<()> {
        self.change(Kind::Pattern, false, pattern.glob().as_bytes().to_vec())
            .await
    }

    /// Unsubscribes from everything this subscriber subscribed to, by name
    /// (one round trip per name, pipelined by the connection).
    pub async fn unsubscribe_all_async(&self) -> Result<()> {
        let all: Vec<(Kind, Vec<u8>)> = self.shared.lock().desired.iter().cloned().collect();
        let mut first_err = None;
        for (kind, name) in all {
            if let Err(e) = self.change(kind, false, name).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Blocking [`subscribe_async`](Self::subscribe_async).
    pub fn subscribe(&self, channel: &C) -> Result<()> {
        self.rt.block(self.subscribe_async(channel))
    }

    /// Blocking [`unsubscribe_async`](Self::unsubscribe_async).
    pub fn unsubscribe(&self, channel: &C) -> Result<()> {
        self.rt.block(self.unsubscribe_async(channel))
    }

    /// Blocking [`psubscribe_async`](Self::psubscribe_async).
    pub fn psubscribe(&self, pattern: &Pattern<C>) -> Result<()> {
        self.rt.block(self.psubscribe_async(pattern))
    }

    /// Blocking [`punsubscribe_async`](Self::punsubscribe_async).
    pub fn punsubscribe(&self, pattern: &Pattern<C>) -> Result<()> {
        self.rt.block(self.punsubscribe_async(pattern))
    }

    /// Blocking [`unsubscribe_all_async`](Self::unsubscribe_all_async).
    pub fn unsubscribe_all(&self) -> Result<()> {
        self.rt.block(self.unsubscribe_all_async())
    }

    /// What this subscriber is subscribed to (as asked; the server's view
    /// comes as events).
    pub fn subscriptions(&self) -> Vec<(Kind, String)> {
        self.shared
            .lock()
            .desired
            .iter()
            .map(|(k, n)| (*k, String::from_utf8_lossy(n).into_owned()))
            .collect()
    }

    /// Messages dropped by the overflow policy so far.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }

    /// Messages received from the server so far (dropped ones included).
    pub fn received(&self) -> u64 {
        self.shared.lock().received
    }

    /// Messages waiting in the buffer.
    pub fn buffered(&self) -> usize {
        self.shared.lock().messages
    }

    /// The next filed item without waiting, undecoded: `None` when the
    /// buffer is empty.
    fn poll_pending(&self) -> Option<Option<Result<Pending>>> {
        let mut st = self.shared.lock();
        if st.lagged > 0 {
            let dropped = std::mem::take(&mut st.lagged);
            return Some(Some(Ok(Pending::Lagged(dropped))));
        }
        match st.items.pop_front() {
            Some(raw) => {
                if matches!(raw, Raw::Msg { .. }) {
                    st.messages -= 1;
                }
                Some(Some(Ok(Pending::Raw(raw))))
            }
            None => match st.failed {
                Some(false) => {
                    st.failed = Some(true);
                    Some(Some(Err(Error::SubscriberOverflow {
                        capacity: self.shared.capacity,
                        dropped: st.dropped,
                    })))
                }
                Some(true) => Some(None),
                None if st.closed => Some(None),
                None => None,
            },
        }
    }

    /// The next filed item, undecoded (what [`next_async`](Self::next_async)
    /// and the reliable topic's reader decode).
    pub(super) async fn next_pending_async(&mut self) -> Option<Result<Pending>> {
        loop {
            let ready = self.shared.ready.notified();
            if let Some(item) = self.poll_pending() {
                return item;
            }
            ready.await;
        }
    }

    /// The next item: an event, or an `Err` for a message that does not
    /// decode (the next call goes on). `None` once the subscriber stopped
    /// (after [`Overflow::Fail`] reported its error).
    pub async fn next_async(&mut self) -> Option<Result<Event<C>>> {
        Some(match self.next_pending_async().await? {
            Ok(Pending::Lagged(dropped)) => Ok(Event::Lagged { dropped }),
            Ok(Pending::Raw(raw)) => decode::<C>(raw),
            Err(e) => Err(e),
        })
    }

    /// Blocking [`next_async`](Self::next_async), waiting at most
    /// `timeout`: `None` when nothing came (or the subscriber stopped).
    pub fn recv(&mut self, timeout: Duration) -> Option<Result<Event<C>>> {
        let rt = self.rt.clone();
        rt.recv_within(timeout, self.next_async())
    }

    /// The items as a stream (see [`next_async`](Self::next_async)).
    pub fn stream(&mut self) -> impl Stream<Item = Result<Event<C>>> + '_ {
        futures_util::stream::unfold(self, |s| async move {
            let item = s.next_async().await?;
            Some((item, s))
        })
    }

    /// The items as an owned stream.
    pub fn into_stream(self) -> impl Stream<Item = Result<Event<C>>> + Send + 'static
    where
        C::Message: Send,
    {
        futures_util::stream::unfold(self, |mut s| async move {
            let item = s.next_async().await?;
            Some((item, s))
        })
    }

    /// Runs `handler` on every item, on a thread of its own, until
    /// [`Runner::stop`] (which hands the subscriber back) or until the
    /// subscriber stops.
    ///
    /// The thread drives the same reader as [`next_async`](Self::next_async).
    /// A subscriber from [`connect`](Self::connect) brings its own runtime;
    /// one from [`connect_async`](Self::connect_async) on a current-thread
    /// runtime receives only while that runtime runs (its thread inside
    /// `block_on`).
    pub fn run<F>(self, mut handler: F) -> Result<Runner<C>>
    where
        F: FnMut(Result<Event<C>>) + Send + 'static,
    {
        let stop = Arc::new((AtomicBool::new(false), Notify::new()));
        let flag = stop.clone();
        let mut sub = self;
        let thread = std::thread::Builder::new()
            .name(format!("redis-state-{}", C::SCHEMA.model))
            .spawn(move || {
                let rt = sub.rt.clone();
                while !flag.0.load(Ordering::SeqCst) {
                    let next = rt.handle().block_on(async {
                        tokio::select! {
                            item = sub.next_async() => Some(item),
                            _ = flag.1.notified() => None,
                        }
                    });
                    match next {
                        Some(Some(item)) => handler(item),
                        Some(None) => break,
                        None => {}
                    }
                }
                sub
            })
            .map_err(|e| Error::InvalidConfig {
                what: "subscriber handler thread",
                reason: e.to_string(),
            })?;
        Ok(Runner {
            stop,
            thread: Some(thread),
        })
    }
}

impl<C: Channel> Drop for Subscriber<C> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.maint.notify_one();
    }
}

/// Decodes a filed push into an item.
pub(super) fn decode<C: Channel>(raw: Raw) -> Result<Event<C>> {
    let text = |b: Vec<u8>| {
        String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    };
    match raw {
        Raw::Msg {
            channel,
            pattern,
            payload,
        } => {
            let parsed = C::parse_name(&channel).map_err(|e| Error::BadMessage {
                channel: String::from_utf8_lossy(&channel).into_owned(),
                expected: C::SCHEMA.model,
                reason: format!("the channel name does not parse: {e}"),
                preview: crate::error::preview_bytes(&payload),
            })?;
            let message = C::decode_message(&channel, &payload)?;
            Ok(Event::Message(Message {
                channel: parsed,
                pattern: pattern.map(text),
                message,
            }))
        }
        Raw::Sub {
            kind,
            name,
            count,
            on,
        } => {
            let name = text(name);
            Ok(if on {
                Event::Subscribed { kind, name, count }
            } else {
                Event::Unsubscribed { kind, name, count }
            })
        }
        Raw::Missed(reason) => Ok(Event::MayHaveMissed { reason }),
    }
}

/// A handler running on its own thread; see [`Subscriber::run`]. Dropping
/// it stops it too.
pub struct Runner<C: Channel> {
    stop: Arc<(AtomicBool, Notify)>,
    thread: Option<std::thread::JoinHandle<Subscriber<C>>>,
}

impl<C: Channel> std::fmt::Debug for Runner<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("channel", &C::SCHEMA.model)
            .finish()
    }
}

impl<C: Channel> Runner<C> {
    /// Stops the handler after the item it is handling, waits for its
    /// thread, and hands the subscriber back (still subscribed). `None` if
    /// the handler panicked.
    pub fn stop(mut self) -> Option<Subscriber<C>> {
        self.halt()
    }

    /// True once the handler's thread ended (the subscriber stopped).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    fn halt(&mut self) -> Option<Subscriber<C>> {
        self.stop.0.store(true, Ordering::SeqCst);
        self.stop.1.notify_one();
        self.thread.take()?.join().ok()
    }
}

impl<C: Channel> Drop for Runner<C> {
    fn drop(&mut self) {
        self.halt();
    }
}
