//! Typed pub/sub: channels declared as types, publishing as an operation,
//! subscribers that say what the server did (confirmations, slot moves,
//! reconnects), with a bounded buffer and an overflow policy.
//!
//! # Channels as types
//!
//! A channel is a struct whose fields are the typed parts of its name:
//!
//! ```
//! use redis_state::pubsub::Channel;
//! #[derive(Debug, serde::Serialize, serde::Deserialize)]
//! struct UserEvent { kind: String }
//!
//! #[derive(redis_state::Channel, Debug, PartialEq)]
//! #[channel(name = "user:{id}:events", message = UserEvent)]
//! struct UserEvents { id: u64 }
//!
//! assert_eq!(UserEvents { id: 7 }.name(), "user:7:events");
//! assert_eq!(UserEvents::pattern().glob(), "user:*:events");
//! ```
//!
//! # Attributes
//!
//! On the struct, `#[channel(...)]`:
//!
//! | attribute | meaning |
//! |---|---|
//! | `name = "user:{id}:events"` | the name template (required): `{field}` names a field (a [`KeyPart`](crate::keys::KeyPart) that is also a [`FieldValue`], so that a pattern subscription parses it back); every field is named once; each placeholder is a whole segment set off by `:`. Values are escaped as in keys, so two ids never share a channel |
//! | `message = Type` | the message type (required) |
//! | `format = "json"` | how messages are written: `"json"` (default; any serde type) or `"plain"` (the type's plain [`FieldValue`] form: a `String` is sent as is, integers as decimal, so `redis-cli` users read and write it) |
//! | `sharded` | a sharded channel (`SPUBLISH` / `SSUBSCRIBE`): on a Cluster only the primary that owns the name's slot carries it |
//! | `crate = "path"` | where `redis_state` is, for crates that re-export it |
//!
//! # Publishing
//!
//! [`Channel::publish`] is an [`Operation`] (one
//! `PUBLISH`, or `SPUBLISH` for a sharded channel) whose output is the
//! number of clients that received the message, as the server counts it
//! (on a Cluster, `PUBLISH` counts only the receiving node's subscribers).
//! It pipelines with any other operation ([`batch`](crate::batch)).
//!
//! # Subscribing
//!
//! See [`Subscriber`]: an async stream and a blocking handler runner over
//! one core, with a bounded buffer ([`Overflow`]), the server's
//! confirmations, and an [`Event::MayHaveMissed`] after every reconnect.
//!
//! Pub/sub is at most once: a message published while no subscriber
//! connection is up is lost, and the subscriber is told so, never silently.

#[cfg(feature = "async")]
mod entity;
#[cfg(feature = "async")]
mod subscriber;
#[cfg(feature = "async")]
mod topic;

#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use entity::{Change, EntityEvent, EntityEvents, EntityItem, Keyspace};
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use subscriber::{
    Event, Kind, Message, MissedReason, Overflow, Runner, Subscriber, SubscriberOptions, Target,
};
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use topic::{
    Published, Topic, TopicEvent, TopicMessage, TopicPublish, TopicStats, TopicSubscriber,
};

use std::marker::PhantomData;

use crate::codec::{Codec, FieldValue};
use crate::error::{Error, Result, preview_bytes};
use crate::keys::{IdBuf, KeyTemplate, Seg, key_slot, unescape_into};
use crate::op::{Operation, Plan, Replies, Step};

/// How a channel is named and carried: what `#[derive(Channel)]` writes.
#[derive(Debug)]
pub struct ChannelSchema {
    /// The Rust type's name.
    pub model: &'static str,
    /// The name template (its namespace is unused).
    pub template: KeyTemplate,
    /// `SPUBLISH` / `SSUBSCRIBE` rather than `PUBLISH` / `SUBSCRIBE`.
    pub sharded: bool,
}

impl ChannelSchema {
    /// A schema (for the derive).
    pub const fn new(model: &'static str, template: KeyTemplate, sharded: bool) -> Self {
        ChannelSchema {
            model,
            template,
            sharded,
        }
    }
}

/// A channel declared as a type; derive it with `#[derive(Channel)]` (see
/// the [module docs](self)).
pub trait Channel: Sized + Send + 'static {
    /// What is published on the channel.
    type Message: Send + 'static;
    /// How a message is written and read back.
    type Codec: Codec<Self::Message>;
    /// The channel's name template and kind.
    const SCHEMA: &'static ChannelSchema;

    /// Appends the name's parts (escaped), in template order.
    fn write_parts(&self, out: &mut IdBuf);

    /// Builds the channel from its name's parts (unescaped), in template
    /// order; `Err` names the part that does not parse.
    fn from_parts(parts: &[Vec<u8>]) -> std::result::Result<Self, PartError>;

    /// The channel's name.
    fn name(&self) -> String {
        let mut id = IdBuf::new();
        self.write_parts(&mut id);
        Self::SCHEMA.template.render(None, &id)
    }

    /// Publishes `message`: one `PUBLISH` (or `SPUBLISH`), whose output is
    /// the number of receivers the server reports. An encoding failure is
    /// an error before anything is sent.
    ///
    /// The name and the message are written into buffers the thread
    /// reuses, then into the command, sized once: building a publish costs
    /// two allocations for the command and one for [`Publish::channel`].
    fn publish(&self, message: &Self::Message) -> Publish {
        let verb = if Self::SCHEMA.sharded {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        with_scratch(|s| {
            s.id.clear();
            self.write_parts(&mut s.id);
            s.name.clear();
            Self::SCHEMA.template.render_into(None, &s.id, &mut s.name);
            s.payload.clear();
            let cmd = match <Self::Codec as Codec<Self::Message>>::encode(message, &mut s.payload) {
                Ok(()) => {
                    let mut cmd =
                        redis::Cmd::with_capacity(3, verb.len() + s.name.len() + s.payload.len());
                    cmd.arg(verb).arg(s.name.as_str()).arg(s.payload.as_slice());
                    Ok(Some(cmd))
                }
                Err(m) => Err((Self::SCHEMA.model, m)),
            };
            Publish {
                channel: s.name.clone(),
                cmd,
            }
        })
    }

    /// The pattern of every channel of this type (`user:*:events`), for
    /// [`Subscriber::psubscribe`].
    fn pattern() -> Pattern<Self> {
        let mut glob = String::new();
        for seg in Self::SCHEMA.template.segs {
            match *seg {
                Seg::Lit(s) => glob.push_str(&crate::keys::glob_escape(s)),
                Seg::Part(_) => glob.push('*'),
            }
        }
        Pattern {
            glob,
            _c: PhantomData,
        }
    }

    /// Reads a channel name back into the type: the template's literals
    /// must match and every part must parse.
    ///
    /// The parts are unescaped into buffers the thread reuses: parsing a
    /// received message's channel allocates only what the fields own.
    fn parse_name(name: &[u8]) -> std::result::Result<Self, PartError> {
        with_parts(|pool| {
            let n = split_name_into(Self::SCHEMA.template.segs, name, pool)?;
            Self::from_parts(pool.get(..n).unwrap_or_default())
        })
    }

    /// Decodes a payload received on `channel`; the error names the
    /// channel and shows a preview of the payload.
    fn decode_message(channel: &[u8], payload: &[u8]) -> Result<Self::Message> {
        <Self::Codec as Codec<Self::Message>>::decode(payload).map_err(|e| Error::BadMessage {
            channel: String::from_utf8_lossy(channel).into_owned(),
            expected: <Self::Codec as Codec<Self::Message>>::EXPECTED,
            reason: e.detail.unwrap_or_else(|| "does not decode".to_owned()),
            preview: preview_bytes(payload),
        })
    }
}

/// A pattern over the channels of one type; see [`Channel::pattern`].
#[derive(Debug)]
pub struct Pattern<C> {
    glob: String,
    _c: PhantomData<fn() -> C>,
}

impl<C> Clone for Pattern<C> {
    fn clone(&self) -> Self {
        Pattern {
            glob: self.glob.clone(),
            _c: PhantomData,
        }
    }
}

impl<C> Pattern<C> {
    /// The glob sent to `PSUBSCRIBE`.
    pub fn glob(&self) -> &str {
        &self.glob
    }
}

/// A channel name part that does not parse back into its field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartError {
    /// The part's field, or `"(name)"` when the name does not follow the
    /// template at all.
    pub part: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl PartError {
    /// The error of the stand-in impl the derive emits beside compile
    /// errors.
    #[doc(hidden)]
    pub fn fallback() -> Self {
        PartError {
            part: "(invalid)",
            reason: "the channel's declaration has errors".to_owned(),
        }
    }
}

impl std::fmt::Display for PartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "part `{}`: {}", self.part, self.reason)
    }
}

/// Parses one part of a channel name into its field (for the derive).
pub fn parse_part<T: FieldValue>(
    parts: &[Vec<u8>],
    i: usize,
    field: &'static str,
) -> std::result::Result<T, PartError> {
    let raw = parts.get(i).ok_or_else(|| PartError {
        part: field,
        reason: "missing".to_owned(),
    })?;
    T::decode(raw).map_err(|e| PartError {
        part: field,
        reason: format!(
            "expected {}, found {}{}",
            T::EXPECTED,
            preview_bytes(raw),
            e.detail.map(|d| format!(" ({d})")).unwrap_or_default()
        ),
    })
}

/// Splits `name` by the template's literals and unescapes each part.
#[cfg(any(feature = "async", test))]
fn split_name(segs: &[Seg], name: &[u8]) -> std::result::Result<Vec<Vec<u8>>, PartError> {
    let mut parts = Vec::new();
    let n = split_name_into(segs, name, &mut parts)?;
    parts.truncate(n);
    Ok(parts)
}

/// [`split_name`] into the buffers of `pool` (reused, grown as needed):
/// the parts are `pool[..n]` for the `n` returned.
fn split_name_into(
    segs: &[Seg],
    name: &[u8],
    pool: &mut Vec<Vec<u8>>,
) -> std::result::Result<usize, PartError> {
    let bad = |reason: &str| PartError {
        part: "(name)",
        reason: format!("{reason}: {}", preview_bytes(name)),
    };
    let text = std::str::from_utf8(name).map_err(|_| bad("not UTF-8"))?;
    let mut rest = text;
    let mut n = 0;
    let mut i = 0;
    while i < segs.len() {
        match segs[i] {
            Seg::Lit(s) => {
                rest = rest
                    .strip_prefix(s)
                    .ok_or_else(|| bad("does not follow the template"))?;
            }
            Seg::Part(_) => {
                // A part runs to the next literal (escaped parts hold no
                // `:`), or to the end.
                let end = match segs.get(i + 1) {
                    Some(Seg::Lit(s)) => rest
                        .find(s)
                        .ok_or_else(|| bad("does not follow the template"))?,
                    _ => rest.len(),
                };
                let (part, tail) = rest.split_at(end);
                if pool.len() <= n {
                    pool.push(Vec::new());
                }
                let out = &mut pool[n];
                out.clear();
                unescape_into(part, out).ok_or_else(|| bad("a part is not escaped as keys are"))?;
                n += 1;
                rest = tail;
            }
        }
        i += 1;
    }
    if !rest.is_empty() {
        return Err(bad("does not follow the template"));
    }
    Ok(n)
}

thread_local! {
    static PARTS: std::cell::RefCell<Option<Vec<Vec<u8>>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` on the thread's buffers for a name's parts (fresh ones when
/// they are in use: a field's parser that parses a channel name).
fn with_parts<T>(f: impl FnOnce(&mut Vec<Vec<u8>>) -> T) -> T {
    let mut pool = PARTS
        .try_with(|c| c.try_borrow_mut().ok().and_then(|mut p| p.take()))
        .ok()
        .flatten()
        .unwrap_or_default();
    let out = f(&mut pool);
    if pool.iter().map(Vec::capacity).sum::<usize>() <= SCRATCH_KEEP {
        let _ = PARTS.try_with(|c| {
            if let Ok(mut slot) = c.try_borrow_mut() {
                *slot = Some(pool);
            }
        });
    }
    out
}

/// The buffers [`Channel::publish`] writes a name and a message into
/// before copying them into the command.
struct Scratch {
    id: IdBuf,
    name: String,
    payload: Vec<u8>,
}

/// Past this, a buffer is not kept for the next publish (one large message
/// does not pin its size on the thread).
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Option<Scratch>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` on the thread's scratch buffers (fresh ones when they are in
/// use: a message's `Serialize` that publishes).
fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    let fresh = || Scratch {
        id: IdBuf::new(),
        name: String::new(),
        payload: Vec::new(),
    };
    let taken = SCRATCH
        .try_with(|c| c.try_borrow_mut().ok().and_then(|mut s| s.take()))
        .ok()
        .flatten();
    let mut scratch = taken.unwrap_or_else(fresh);
    let out = f(&mut scratch);
    if scratch.payload.capacity() <= SCRATCH_KEEP && scratch.name.capacity() <= SCRATCH_KEEP {
        let _ = SCRATCH.try_with(|c| {
            if let Ok(mut slot) = c.try_borrow_mut() {
                *slot = Some(scratch);
            }
        });
    }
    out
}

/// See [`Channel::publish`]: one `PUBLISH` (`SPUBLISH`), output the
/// receiver count.
#[derive(Debug)]
pub struct Publish {
    channel: String,
    /// The command until `prepare` moves it into the plan, or why the
    /// message does not encode.
    cmd: std::result::Result<Option<redis::Cmd>, (&'static str, String)>,
}

impl Publish {
    /// The channel the message goes to.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl Operation for Publish {
    type Output = u64;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match &mut self.cmd {
            Ok(cmd) => {
                if let Some(cmd) = cmd.take() {
                    // The slot routes a Cluster's command; one server needs
                    // none, and the hash of the name is skipped.
                    let slot = (!plan.one_server()).then(|| key_slot(self.channel.as_bytes()));
                    plan.push_keyed(cmd, slot);
                }
                Ok(())
            }
            Err((model, message)) => Err(Error::Encode {
                model,
                field: "(message)",
                message: message.clone(),
            }),
        }
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        match &self.cmd {
            Ok(_) => replies.next::<u64>("PUBLISH").map(Step::Done),
            Err(_) => Err(Error::UnexpectedReply {
                context: "PUBLISH",
                found: "a reply to a command that was not sent".to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_back_into_parts() {
        let segs = [Seg::Lit("user:"), Seg::Part(0), Seg::Lit(":events")];
        assert_eq!(
            split_name(&segs, b"user:a%3Ab:events").expect("parses"),
            vec![b"a:b".to_vec()]
        );
        assert!(split_name(&segs, b"user:7:other").is_err());
        assert!(split_name(&segs, b"order:7:events").is_err());
        let two = [Seg::Lit("t:"), Seg::Part(0), Seg::Lit(":"), Seg::Part(1)];
        assert_eq!(
            split_name(&two, b"t:x:y").expect("parses"),
            vec![b"x".to_vec(), b"y".to_vec()]
        );
    }

    #[test]
    fn reused_part_buffers_hold_only_the_current_name() {
        let two = [Seg::Lit("t:"), Seg::Part(0), Seg::Lit(":"), Seg::Part(1)];
        let mut pool = Vec::new();
        let n = split_name_into(&two, b"t:long%3Apart:second", &mut pool).expect("parses");
        assert_eq!(&pool[..n], [b"long:part".to_vec(), b"second".to_vec()]);
        let n = split_name_into(&two, b"t:a:b", &mut pool).expect("parses");
        assert_eq!(&pool[..n], [b"a".to_vec(), b"b".to_vec()]);
        assert!(split_name_into(&two, b"t:a%zz:b", &mut pool).is_err());
        let n = split_name_into(&two, b"t:c:d", &mut pool).expect("parses after an error");
        assert_eq!(&pool[..n], [b"c".to_vec(), b"d".to_vec()]);
    }
}
