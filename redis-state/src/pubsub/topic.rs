//! Reliable topics: pub/sub with a capped stream behind it; see [`Topic`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::subscriber::{Link, Pending, Raw, decode};
use super::{Channel, Event, Subscriber, SubscriberOptions, Target};
use crate::codec::Codec;
use crate::error::{Error, Result, preview_bytes};
use crate::op::{Operation, Plan, Replies, Step};
use crate::script::Script;

static PUBLISH: Script = Script::new(
    "redis_state.pubsub.topic_publish",
    include_str!("lua/topic_publish.lua"),
);

/// Entries read per `XRANGE` when filling a gap.
const BACKFILL_PAGE: usize = 500;

/// A reliable topic: a [`Channel`] whose messages are also appended to a
/// capped stream, numbered, so that a [`TopicSubscriber`] sees every gap
/// (a reconnect, a dropped buffer) and fills it from the stream.
///
/// # Layout
///
/// * The stream is `{<channel name>}:topic` (in the channel's Cluster slot,
///   so a sharded channel's publish is one script on one node). Its entries
///   have ids `0-<sequence>`, numbered 1, 2, 3, ... by the server, and one
///   field `m`, the message as the channel's codec writes it.
/// * The pub/sub message is `<sequence>:<message>`: a plain subscriber of
///   the channel sees the number in front.
///
/// # Bounded by construction
///
/// The cap is required: each publish trims the stream to about `cap`
/// entries (`XADD ... MAXLEN ~ cap`; the server trims whole nodes, so a
/// stream holds at least `cap` and a little more). A gap longer than what
/// the stream still holds is reported as [`TopicEvent::Lost`] with the
/// exact count, never silently.
#[derive(Debug, Clone)]
pub struct Topic<C: Channel> {
    channel: C,
    name: String,
    key: String,
    cap: u64,
}

impl<C: Channel> Topic<C> {
    /// The topic on `channel`, its stream capped at about `cap` messages
    /// (at least 1).
    pub fn new(channel: C, cap: u64) -> Result<Self> {
        if cap == 0 {
            return Err(Error::InvalidConfig {
                what: "reliable topic cap",
                reason: "a topic's stream holds at least one message; give a cap of 1 or more"
                    .to_owned(),
            });
        }
        let name = channel.name();
        let key = crate::keys::beside(&name, ":topic", ":topic");
        Ok(Topic {
            channel,
            name,
            key,
            cap,
        })
    }

    /// The channel.
    pub fn channel(&self) -> &C {
        &self.channel
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream behind the topic.
    pub fn stream_key(&self) -> &str {
        &self.key
    }

    /// The cap of the stream.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Publishes `message`: one script (`XADD ... MAXLEN ~ cap 0-*` and
    /// `PUBLISH`, or `SPUBLISH` for a sharded channel), one round trip. Its
    /// output is the message's sequence number and the receiver count.
    pub fn publish(&self, message: &C::Message) -> TopicPublish {
        let mut payload = Vec::new();
        let encoded = <C::Codec as Codec<C::Message>>::encode(message, &mut payload)
            .map(|()| payload)
            .map_err(|m| (C::SCHEMA.model, m));
        TopicPublish {
            key: self.key.clone(),
            channel: self.name.clone(),
            cap: self.cap,
            sharded: C::SCHEMA.sharded,
            payload: encoded,
        }
    }
}

fn range_op(
    key: &str,
    from: u64,
    to: Option<u64>,
    limit: usize,
) -> crate::op::CommandOp<Vec<(String, Vec<Vec<u8>>)>> {
    crate::op::command("XRANGE", key)
        .arg(format!("0-{}", from.max(1)))
        .arg(to.map_or_else(|| "+".to_owned(), |t| format!("0-{t}")))
        .arg("COUNT")
        .arg(limit.max(1))
}

/// The sequence number of a topic stream's entry id (`0-<n>`).
fn entry_seq(id: &str) -> Option<u64> {
    id.strip_prefix("0-")?.parse().ok()
}

/// What [`Topic::publish`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The message's sequence number in the topic.
    pub seq: u64,
    /// Clients that received it, as the server counts them.
    pub receivers: u64,
}

/// See [`Topic::publish`].
#[derive(Debug)]
pub struct TopicPublish {
    key: String,
    channel: String,
    cap: u64,
    sharded: bool,
    payload: std::result::Result<Vec<u8>, (&'static str, String)>,
}

impl Operation for TopicPublish {
    type Output = Published;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let payload = match &self.payload {
            Ok(p) => p,
            Err((model, message)) => {
                return Err(Error::Encode {
                    model,
                    field: "(message)",
                    message: message.clone(),
                });
            }
        };
        plan.script(&PUBLISH, &[&self.key])?
            .arg(self.cap)
            .arg(&self.channel)
            .arg(payload.as_slice())
            .arg(if self.sharded { "1" } else { "0" });
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Published>> {
        let (seq, receivers): (String, u64) = replies.next("the topic publish script")?;
        let seq = seq.parse().map_err(|_| Error::UnexpectedReply {
            context: "the topic publish script",
            found: format!("sequence {seq:?}"),
        })?;
        Ok(Step::Done(Published { seq, receivers }))
    }
}

/// A message of a reliable topic.
#[non_exhaustive]
pub struct TopicMessage<C: Channel> {
    /// The channel.
    pub channel: C,
    /// Its sequence number in the topic.
    pub seq: u64,
    /// True when it was read from the stream to fill a gap, false when it
    /// came by pub/sub.
    pub backfilled: bool,
    /// The message.
    pub message: C::Message,
}

impl<C: Channel + std::fmt::Debug> std::fmt::Debug for TopicMessage<C>
where
    C::Message: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicMessage")
            .field("channel", &self.channel)
            .field("seq", &self.seq)
            .field("backfilled", &self.backfilled)
            .field("message", &self.message)
            .finish()
    }
}

/// What a [`TopicSubscriber`] reads.
#[non_exhaustive]
pub enum TopicEvent<C: Channel> {
    /// The next message of a topic, in sequence order, each once.
    Message(TopicMessage<C>),
    /// Messages `first..first + count` of a topic were missed and are no
    /// longer in its stream (the gap was longer than the cap): lost.
    Lost {
        /// The channel's name.
        channel: String,
        /// The first lost sequence number.
        first: u64,
        /// How many.
        count: u64,
    },
    /// What the subscriber underneath reports (confirmations, reconnects,
    /// dropped buffer entries); never a message. A gap it announces is
    /// filled from the stream right after.
    Notice(Event<C>),
}

impl<C: Channel + std::fmt::Debug> std::fmt::Debug for TopicEvent<C>
where
    C::Message: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicEvent::Message(m) => m.fmt(f),
            TopicEvent::Lost {
                channel,
                first,
                count,
            } => f
                .debug_struct("Lost")
                .field("channel", channel)
                .field("first", first)
                .field("count", count)
                .finish(),
            TopicEvent::Notice(e) => f.debug_tuple("Notice").field(e).finish(),
        }
    }
}

/// Counts kept by a [`TopicSubscriber`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicStats {
    /// Messages delivered from pub/sub.
    pub delivered: u64,
    /// Messages delivered from the stream, filling gaps.
    pub backfilled: u64,
    /// Messages that came twice (by pub/sub after a backfill read them)
    /// and were dropped by their sequence number.
    pub duplicates: u64,
    /// Messages reported lost ([`TopicEvent::Lost`]).
    pub lost: u64,
}

struct Position {
    key: String,
    /// The last sequence number delivered (or skipped as lost).
    last: u64,
}

/// A subscriber to reliable [`Topic`]s: a [`Subscriber`] whose messages
/// carry sequence numbers, delivered in order and once each.
///
/// * A message whose number skips ahead means the ones between were
///   missed: they are read from the topic's stream (`XRANGE` from the last
///   seen, on a second connection the subscriber keeps for this) and
///   delivered first, marked
///   `backfilled`.
/// * After a reconnect, a slot move or a dropped buffer entry (the events
///   that say messages may have been missed, passed on as
///   [`TopicEvent::Notice`]), the stream is read from the last seen number
///   to its end at once, so a gap at the end of a burst is filled too.
/// * A message that comes again (pub/sub delivering what a backfill
///   already read) is dropped by its number and counted.
/// * What the stream no longer holds is a [`TopicEvent::Lost`] with the
///   count.
///
/// A backfill that fails (the server unreachable past the subscriber's
/// timeout) is an `Err` item; the next read tries again, nothing is
/// skipped. Topics are subscribed by channel (no patterns).
pub struct TopicSubscriber<C: Channel> {
    sub: Subscriber<C>,
    /// A connection of its own for reading the streams.
    reader: Link,
    positions: BTreeMap<Vec<u8>, Position>,
    out: VecDeque<Result<TopicEvent<C>>>,
    /// Messages taken from the subscriber, waiting for a backfill.
    held: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// A read of every topic's stream to its end is owed.
    owed: bool,
    /// A backfill failed: wait before the next try.
    failures: u32,
    timeout: Duration,
    stats: TopicStats,
}

impl<C: Channel> std::fmt::Debug for TopicSubscriber<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicSubscriber")
            .field("channel", &C::SCHEMA.model)
            .field("topics", &self.positions.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<C: Channel> TopicSubscriber<C> {
    fn of(sub: Subscriber<C>, reader: Link, timeout: Duration) -> Self {
        TopicSubscriber {
            sub,
            reader,
            positions: BTreeMap::new(),
            out: VecDeque::new(),
            held: VecDeque::new(),
            owed: false,
            failures: 0,
            timeout,
            stats: TopicStats::default(),
        }
    }

    /// Connects on the caller's tokio runtime (see
    /// [`Subscriber::connect_async`]).
    pub async fn connect_async(target: Target, opts: SubscriberOptions) -> Result<Self> {
        let timeout = opts.timeout;
        let reader = Link::connect_plain(&target, &opts).await?;
        Ok(Self::of(
            Subscriber::connect_async(target, opts).await?,
            reader,
            timeout,
        ))
    }

    /// Connects with a runtime thread of its own (see
    /// [`Subscriber::connect`]). Blocks.
    pub fn connect(target: Target, opts: SubscriberOptions) -> Result<Self> {
        let timeout = opts.timeout;
        let sub = Subscriber::connect(target.clone(), opts.clone())?;
        let reader = sub
            .rt
            .block(async { Link::connect_plain(&target, &opts).await })?;
        Ok(Self::of(sub, reader, timeout))
    }

    /// The counts so far.
    pub fn stats(&self) -> TopicStats {
        self.stats
    }

    /// The subscriber underneath (its buffer and counts).
    pub fn subscriber(&self) -> &Subscriber<C> {
        &self.sub
    }

    /// The last sequence number delivered on `topic`, to resume from with
    /// [`subscribe_from_async`](Self::subscribe_from_async).
    pub fn position(&self, topic: &Topic<C>) -> Option<u64> {
        self.positions.get(topic.name.as_bytes()).map(|p| p.last)
    }

    /// Subscribes to `topic` from now on: reads the stream's last sequence
    /// number (`XREVRANGE ... COUNT 1`), then subscribes. Two round trips.
    pub async fn subscribe_async(&mut self, topic: &Topic<C>) -> Result<()> {
        let mut link = self.reader.clone();
        let last: Vec<(String, Vec<Vec<u8>>)> = link
            .run(
                crate::op::command("XREVRANGE", &topic.key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
            )
            .await?;
        let last = last.first().and_then(|(id, _)| entry_seq(id)).unwrap_or(0);
        self.subscribe_from_async(topic, last).await
    }

    /// Subscribes to `topic` and delivers every message after sequence
    /// number `last` (0: from the stream's start), the stored ones first:
    /// for a reader that resumes where it stopped.
    pub async fn subscribe_from_async(&mut self, topic: &Topic<C>, last: u64) -> Result<()> {
        self.positions.insert(
            topic.name.as_bytes().to_vec(),
            Position {
                key: topic.key.clone(),
                last,
            },
        );
        if let Err(e) = self.sub.subscribe_async(&topic.channel).await {
            self.positions.remove(topic.name.as_bytes());
            return Err(e);
        }
        self.owed = true;
        Ok(())
    }

    /// Unsubscribes from `topic`.
    pub async fn unsubscribe_async(&mut self, topic: &Topic<C>) -> Result<()> {
        self.positions.remove(topic.name.as_bytes());
        self.sub.unsubscribe_async(&topic.channel).await
    }

    /// Blocking [`subscribe_async`](Self::subscribe_async).
    pub fn subscribe(&mut self, topic: &Topic<C>) -> Result<()> {
        let rt = self.sub.rt.clone();
        rt.block(self.subscribe_async(topic))
    }

    /// Blocking [`subscribe_from_async`](Self::subscribe_from_async).
    pub fn subscribe_from(&mut self, topic: &Topic<C>, last: u64) -> Result<()> {
        let rt = self.sub.rt.clone();
        rt.block(self.subscribe_from_async(topic, last))
    }

    /// Blocking [`unsubscribe_async`](Self::unsubscribe_async).
    pub fn unsubscribe(&mut self, topic: &Topic<C>) -> Result<()> {
        let rt = self.sub.rt.clone();
        rt.block(self.unsubscribe_async(topic))
    }

    /// The next item: a message in order, a loss, a notice, or an `Err`
    /// (a message that does not decode, a backfill that failed; the next
    /// call goes on). `None` once the subscriber stopped.
    pub async fn next_async(&mut self) -> Option<Result<TopicEvent<C>>> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(item);
            }
            if self.failures > 0 {
                let wait = Duration::from_millis(50) * self.failures.min(20);
                tokio::time::sleep(wait).await;
            }
            if self.owed {
                match self.backfill_all().await {
                    Ok(()) => {
                        self.owed = false;
                        self.failures = 0;
                    }
                    Err(e) => {
                        self.failures += 1;
                        return Some(Err(e));
                    }
                }
                continue;
            }
            // A held message leaves the queue only once filed, so a read
            // given up half way (a `recv` timeout) loses nothing.
            if let Some((channel, payload)) = self.held.front().cloned() {
                if let Err(e) = self.on_message(channel, payload).await {
                    self.failures += 1;
                    return Some(Err(e));
                }
                self.held.pop_front();
                self.failures = 0;
                continue;
            }
            match self.sub.next_pending_async().await? {
                Err(e) => return Some(Err(e)),
                Ok(Pending::Lagged(dropped)) => {
                    self.owed = true;
                    return Some(Ok(TopicEvent::Notice(Event::Lagged { dropped })));
                }
                Ok(Pending::Raw(Raw::Msg {
                    channel, payload, ..
                })) => self.held.push_back((channel, payload)),
                Ok(Pending::Raw(raw)) => {
                    if matches!(raw, Raw::Missed(_)) {
                        self.owed = true;
                    }
                    return Some(decode::<C>(raw).map(TopicEvent::Notice));
                }
            }
        }
    }

    /// Blocking [`next_async`](Self::next_async), waiting at most
    /// `timeout`: `None` when nothing came (or the subscriber stopped).
    pub fn recv(&mut self, timeout: Duration) -> Option<Result<TopicEvent<C>>> {
        let rt = self.sub.rt.clone();
        rt.recv_within(timeout, self.next_async())
    }

    /// Files one message taken from pub/sub: a gap before it is filled
    /// first; a number already delivered is a duplicate. `Err` only when the
    /// backfill failed (the message is then still to do).
    async fn on_message(&mut self, channel: Vec<u8>, payload: Vec<u8>) -> Result<()> {
        let split = payload.iter().position(|&b| b == b':').and_then(|i| {
            let seq = std::str::from_utf8(&payload[..i])
                .ok()?
                .parse::<u64>()
                .ok()?;
            Some((seq, i + 1))
        });
        let Some((seq, start)) = split else {
            self.out.push_back(Err(Error::BadMessage {
                channel: String::from_utf8_lossy(&channel).into_owned(),
                expected: "a reliable topic's `<sequence>:<message>`",
                reason: "no sequence number in front".to_owned(),
                preview: preview_bytes(&payload),
            }));
            return Ok(());
        };
        let Some(last) = self.positions.get(&channel).map(|p| p.last) else {
            // Not (or no longer) subscribed as a topic: delivered as is.
            self.stats.delivered += 1;
            self.push_message(&channel, seq, &payload[start..], false);
            return Ok(());
        };
        if seq <= last {
            self.stats.duplicates += 1;
            return Ok(());
        }
        if seq > last + 1 {
            self.backfill(&channel, Some(seq - 1)).await?;
        }
        if let Some(p) = self.positions.get_mut(&channel) {
            if seq <= p.last {
                self.stats.duplicates += 1;
                return Ok(());
            }
            p.last = seq;
        }
        self.stats.delivered += 1;
        self.push_message(&channel, seq, &payload[start..], false);
        Ok(())
    }

    fn push_message(&mut self, channel: &[u8], seq: u64, body: &[u8], backfilled: bool) {
        let item = C::parse_name(channel)
            .map_err(|e| Error::BadMessage {
                channel: String::from_utf8_lossy(channel).into_owned(),
                expected: C::SCHEMA.model,
                reason: format!("the channel name does not parse: {e}"),
                preview: preview_bytes(body),
            })
            .and_then(|parsed| {
                Ok(TopicEvent::Message(TopicMessage {
                    channel: parsed,
                    seq,
                    backfilled,
                    message: C::decode_message(channel, body)?,
                }))
            });
        self.out.push_back(item);
    }

    /// Reads every topic's stream from its last delivered number to the end.
    async fn backfill_all(&mut self) -> Result<()> {
        let names: Vec<Vec<u8>> = self.positions.keys().cloned().collect();
        for name in names {
            self.backfill(&name, None).await?;
        }
        Ok(())
    }

    /// Delivers the stream's messages after the last delivered one, up to
    /// `to` (inclusive; `None`: the end), reporting what the stream no
    /// longer holds. Each page is retried until the subscriber's timeout.
    async fn backfill(&mut self, channel: &[u8], to: Option<u64>) -> Result<()> {
        let Some(key) = self.positions.get(channel).map(|p| p.key.clone()) else {
            return Ok(());
        };
        let name = String::from_utf8_lossy(channel).into_owned();
        loop {
            let last = self.positions.get(channel).map_or(0, |p| p.last);
            if to.is_some_and(|t| last >= t) {
                return Ok(());
            }
            let page = self.read_page(&key, last + 1, to).await?;
            let full = page.len() >= BACKFILL_PAGE;
            let mut expected = last + 1;
            for (id, fields) in page {
                let Some(seq) = entry_seq(&id) else { continue };
                if seq < expected {
                    continue;
                }
                if seq > expected {
                    self.lost(&name, expected, seq - expected);
                }
                let body = match fields.as_slice() {
                    [f, v] if f.as_slice() == b"m" => v.as_slice(),
                    _ => &[],
                };
                self.stats.backfilled += 1;
                self.push_message(channel, seq, body, true);
                expected = seq + 1;
                if let Some(p) = self.positions.get_mut(channel) {
                    p.last = seq;
                }
            }
            if !full {
                if let Some(t) = to
                    && expected <= t
                {
                    self.lost(&name, expected, t - expected + 1);
                    if let Some(p) = self.positions.get_mut(channel) {
                        p.last = t;
                    }
                }
                return Ok(());
            }
        }
    }

    fn lost(&mut self, channel: &str, first: u64, count: u64) {
        self.stats.lost += count;
        self.out.push_back(Ok(TopicEvent::Lost {
            channel: channel.to_owned(),
            first,
            count,
        }));
    }

    /// One `XRANGE` page, retried while the connection recovers, for at
    /// most the subscriber's timeout.
    async fn read_page(
        &mut self,
        key: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<(String, Vec<Vec<u8>>)>> {
        let start = Instant::now();
        let mut wait = Duration::from_millis(20);
        loop {
            let mut link = self.reader.clone();
            match link.run(range_op(key, from, to, BACKFILL_PAGE)).await {
                Ok(page) => return Ok(page),
                Err(e) if e.is_retryable() && start.elapsed() + wait < self.timeout => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
