//! Entity events: keyspace notifications of a `RedisHash` model, typed; see
//! [`EntityEvents`].

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::subscriber::{Link, Pending, Raw, Rt, decode};
use super::{
    Channel, ChannelSchema, Event, Kind, PartError, Subscriber, SubscriberOptions, Target,
};
use crate::codec::Plain;
use crate::error::{Error, Result};
use crate::hash::RedisHash;
use crate::keys::{IdBuf, KeyTemplate, Namespace};

/// The flags entity events need in `notify-keyspace-events`.
const NEEDED: &str = "K (keyspace), g (generic: del, expire, rename), h (hash) and x (expired)";

/// The stand-in channel type of a keyspace subscription: names are read by
/// [`EntityEvents`] itself.
#[derive(Debug)]
#[doc(hidden)]
pub struct Keyspace;

static KEYSPACE: ChannelSchema = ChannelSchema::new("keyspace", KeyTemplate::EMPTY, false);

impl Channel for Keyspace {
    type Message = Vec<u8>;
    type Codec = Plain;
    const SCHEMA: &'static ChannelSchema = &KEYSPACE;

    fn write_parts(&self, _out: &mut IdBuf) {}

    fn from_parts(_parts: &[Vec<u8>]) -> std::result::Result<Self, PartError> {
        Ok(Keyspace)
    }
}

/// What happened to an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Written: `hset` (a save), `hincrby` / `hincrbyfloat` (a counter),
    /// `rename_to`, `restore`, `copy_to`.
    Saved,
    /// Removed: `del` (a delete, or a hash whose last field went), `rename_from`.
    Deleted,
    /// Its time to live ran out (`expired`).
    Expired,
    /// Evicted under `maxmemory` (`evicted`).
    Evicted,
    /// Another event on the entity's key, by its server name (`hdel`,
    /// `expire`, `persist`, ...). A save sends several commands, so it
    /// may come with some of these beside its `Saved`.
    Other(String),
}

impl Change {
    fn of(event: &str) -> Self {
        match event {
            "hset" | "hincrby" | "hincrbyfloat" | "rename_to" | "restore" | "copy_to" => {
                Change::Saved
            }
            "del" | "rename_from" => Change::Deleted,
            "expired" => Change::Expired,
            "evicted" => Change::Evicted,
            other => Change::Other(other.to_owned()),
        }
    }
}

/// One entity event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntityEvent {
    /// What happened.
    pub change: Change,
    /// The entity's key.
    pub key: String,
    /// The id parts read back from the key (unescaped), in template order.
    pub id: Vec<String>,
}

/// What an [`EntityEvents`] reads.
#[derive(Debug)]
#[non_exhaustive]
pub enum EntityItem {
    /// An event on an entity of the model.
    Entity(EntityEvent),
    /// What a node's subscriber reports: confirmations, and
    /// [`Event::MayHaveMissed`] after a reconnect (events in between are
    /// lost).
    Notice(Event<Keyspace>),
}

/// Keyspace notifications of a [`RedisHash`] model as typed events: saved,
/// deleted, expired.
///
/// # Best effort
///
/// Keyspace notifications are pub/sub: an event that happens while the
/// connection is down is lost (the reader gets an
/// [`Event::MayHaveMissed`] notice), and a Cluster node reports only the
/// keys it holds, so on a Cluster this subscribes on every primary (found
/// with `CLUSTER NODES` when connecting; a primary added later is not
/// covered). Use them to refresh views and caches, never for correctness
/// (the indexes of this crate never rely on them).
///
/// # The server's setting
///
/// Turning notifications on is the operator's job: connecting reads
/// `notify-keyspace-events` on every node (`CONFIG GET`) and fails with
/// [`Error::KeyspaceEventsOff`] naming the node, its setting and the
/// flags to add when it lacks `K`, `g`, `h` or `x` (`A` covers the last
/// three). The subscription is one `PSUBSCRIBE __keyspace@<db>__:<the
/// model's key pattern>` per node.
pub struct EntityEvents<M: RedisHash> {
    subs: Vec<Subscriber<Keyspace>>,
    rt: Arc<Rt>,
    prefix: String,
    _m: PhantomData<fn() -> M>,
}

impl<M: RedisHash> std::fmt::Debug for EntityEvents<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityEvents")
            .field("model", &M::SCHEMA.model)
            .field("nodes", &self.subs.len())
            .finish()
    }
}

impl<M: RedisHash> EntityEvents<M> {
    /// Subscribes to the model's events (in namespace `ns`, if given) on
    /// the caller's tokio runtime.
    pub async fn connect_async(
        target: Target,
        ns: Option<&Namespace>,
        opts: SubscriberOptions,
    ) -> Result<Self> {
        let rt = Arc::new(Rt::Borrowed(tokio::runtime::Handle::current()));
        Self::start(target, ns, opts, rt).await
    }

    /// Blocking [`connect_async`](Self::connect_async), with a runtime
    /// thread of its own.
    pub fn connect(
        target: Target,
        ns: Option<&Namespace>,
        opts: SubscriberOptions,
    ) -> Result<Self> {
        let rt = Arc::new(Rt::own()?);
        let ns = ns.cloned();
        rt.block(Self::start(target, ns.as_ref(), opts, rt.clone()))
    }

    async fn start(
        target: Target,
        ns: Option<&Namespace>,
        opts: SubscriberOptions,
        rt: Arc<Rt>,
    ) -> Result<Self> {
        let (nodes, db) = match &target {
            Target::Standalone(url) => (vec![url.clone()], url_db(url)),
            #[cfg(feature = "cluster")]
            Target::Cluster(urls) => (primaries(urls, &opts).await?, 0),
        };
        let mut prefix = String::new();
        crate::keys::write_ns_prefix(ns, M::SCHEMA.key.namespace, &mut prefix);
        let glob = format!("__keyspace@{db}__:{}", M::SCHEMA.key.scan_pattern(ns));
        let mut subs = Vec::with_capacity(nodes.len());
        for url in nodes {
            let mut link = Link::connect_plain(&Target::Standalone(url.clone()), &opts).await?;
            let mut setting: std::collections::HashMap<String, String> = link
                .run(
                    crate::op::command::<std::collections::HashMap<String, String>>(
                        "CONFIG", "GET",
                    )
                    .arg("notify-keyspace-events"),
                )
                .await?;
            let flags = setting.remove("notify-keyspace-events").unwrap_or_default();
            if !covers(&flags) {
                return Err(Error::KeyspaceEventsOff {
                    node: redact(&url),
                    setting: flags,
                    needed: NEEDED,
                });
            }
            let sub =
                Subscriber::<Keyspace>::start(Target::Standalone(url), opts.clone(), rt.clone())
                    .await?;
            sub.change(Kind::Pattern, true, glob.clone().into_bytes())
                .await?;
            subs.push(sub);
        }
        Ok(EntityEvents {
            subs,
            rt,
            prefix,
            _m: PhantomData,
        })
    }

    /// The nodes subscribed to (one on a standalone server, every primary
    /// on a Cluster).
    pub fn nodes(&self) -> usize {
        self.subs.len()
    }

    /// The next item from any node. `None` once every node's subscriber
    /// stopped.
    pub async fn next_async(&mut self) -> Option<Result<EntityItem>> {
        loop {
            if self.subs.is_empty() {
                return None;
            }
            let waits = self
                .subs
                .iter_mut()
                .map(|s| Box::pin(s.next_pending_async()));
            let (item, i, _) = futures_util::future::select_all(waits).await;
            let item = match item {
                None => {
                    self.subs.remove(i);
                    continue;
                }
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(Pending::Lagged(dropped))) => {
                    return Some(Ok(EntityItem::Notice(Event::Lagged { dropped })));
                }
                Some(Ok(Pending::Raw(raw))) => raw,
            };
            match raw_event::<M>(item, &self.prefix) {
                Some(event) => return Some(event),
                None => continue,
            }
        }
    }

    /// Blocking [`next_async`](Self::next_async), waiting at most
    /// `timeout`: `None` when nothing came.
    pub fn recv(&mut self, timeout: Duration) -> Option<Result<EntityItem>> {
        let rt = self.rt.clone();
        rt.recv_within(timeout, self.next_async())
    }
}

/// Reads one filed push: `None` for a key that is not one of the model's
/// entities (an index beside them).
fn raw_event<M: RedisHash>(raw: Raw, prefix: &str) -> Option<Result<EntityItem>> {
    let Raw::Msg {
        channel, payload, ..
    } = raw
    else {
        return Some(decode::<Keyspace>(raw).map(EntityItem::Notice));
    };
    let channel = String::from_utf8_lossy(&channel);
    let key = channel.split_once("__:").map(|(_, k)| k)?;
    let rest = key.strip_prefix(prefix)?;
    let parts = super::split_name(M::SCHEMA.key.segs, rest.as_bytes()).ok()?;
    let event = String::from_utf8_lossy(&payload);
    Some(Ok(EntityItem::Entity(EntityEvent {
        change: Change::of(&event),
        key: key.to_owned(),
        id: parts
            .into_iter()
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .collect(),
    })))
}

/// Whether a `notify-keyspace-events` setting sends what entity events
/// need.
fn covers(flags: &str) -> bool {
    flags.contains('K')
        && (flags.contains('A') || ['g', 'h', 'x'].iter().all(|f| flags.contains(*f)))
}

/// The database number of a `redis://host:port/<db>` URL (0 without one).
fn url_db(url: &str) -> i64 {
    let after = url.split_once("://").map_or(url, |(_, r)| r);
    after
        .split_once('/')
        .map(|(_, path)| path.split(['?', '#']).next().unwrap_or(""))
        .and_then(|db| db.parse().ok())
        .unwrap_or(0)
}

/// A URL without its credentials, for messages.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => url.to_owned(),
    }
}

/// The URLs of a Cluster's primaries, from `CLUSTER NODES` on the first
/// node that answers, with the scheme and credentials of that node's URL.
#[cfg(feature = "cluster")]
async fn primaries(urls: &[String], opts: &SubscriberOptions) -> Result<Vec<String>> {
    let mut last = None;
    for url in urls {
        let nodes = async {
            let mut link = Link::connect_plain(&Target::Standalone(url.clone()), opts).await?;
            link.run(crate::op::command::<String>("CLUSTER", "NODES"))
                .await
        }
        .await;
        match nodes {
            Ok(text) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
                let auth = rest.rsplit_once('@').map(|(a, _)| format!("{a}@"));
                let mut out = Vec::new();
                for line in text.lines() {
                    let f: Vec<&str> = line.split(' ').collect();
                    if f.len() < 8 || !f[2].split(',').any(|x| x == "master") {
                        continue;
                    }
                    if f[2].contains("fail") || f.len() < 9 {
                        continue;
                    }
                    let addr = f[1].split('@').next().unwrap_or(f[1]);
                    let addr = addr.split(',').next().unwrap_or(addr);
                    out.push(format!(
                        "{scheme}://{}{addr}",
                        auth.clone().unwrap_or_default()
                    ));
                }
                if !out.is_empty() {
                    return Ok(out);
                }
                last = Some(Error::InvalidConfig {
                    what: "entity events on a Cluster",
                    reason: format!("{} lists no primary with slots", redact(url)),
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::InvalidConfig {
        what: "entity events on a Cluster",
        reason: "no node URL given".to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_urls() {
        assert!(covers("AK"));
        assert!(covers("Kghx"));
        assert!(covers("KEA"));
        assert!(!covers(""));
        assert!(!covers("Ex"));
        assert!(!covers("Kgh"));
        assert_eq!(url_db("redis://h:1/3"), 3);
        assert_eq!(url_db("redis://h:1"), 0);
        assert_eq!(url_db("redis://h:1/2?protocol=resp3"), 2);
        assert_eq!(redact("redis://u:p@h:1/0"), "redis://h:1/0");
        assert_eq!(Change::of("hset"), Change::Saved);
        assert_eq!(Change::of("expired"), Change::Expired);
        assert_eq!(Change::of("hdel"), Change::Other("hdel".into()));
    }
}
