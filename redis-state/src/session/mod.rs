//! Sessions for any serde type, with sliding expiry and a per-user index.
//!
//! Two layouts, one key each, `session:<id>`:
//!
//! * [`JsonSessions`]: one JSON document, **the conventional layout** other
//!   clients use (the Python `SessionManager` pattern):
//!   `{"user_id": 42, "created_at": "2024-05-01T12:00:00.123456", "data": {...}}`,
//!   written byte for byte as Python's `json.dumps` writes it. A read is one
//!   `GETEX`.
//! * [`HashSessions`]: a hash with `user_id`, `created_at` and one field per
//!   field of your type (strings as plain text, other values as JSON), so
//!   single fields can be read and written without touching the rest (the
//!   `HashSessionManager` pattern).
//!
//! Both have the same life cycle:
//!
//! | operation | what it does | round trips |
//! |---|---|---|
//! | `create(user, data)` | a new random id (128 bits from the OS), the session with the idle TTL, the user's index entry | 1 |
//! | `get(id)` | reads and slides the expiry (the TTL starts again) | 1 |
//! | `update(&session)` | replaces the data of an existing session, slides the expiry | 1 |
//! | `touch(id)` | slides the expiry without reading | 1 |
//! | `delete(id)` | removes the session | 1 |
//! | `list_for_user(user)` | the user's live sessions; prunes index entries of sessions that are gone | 2 (3 when pruning) |
//! | `delete_all_for_user(user)` | removes every session of the user ("log out everywhere") | 2 |
//!
//! # Ids
//!
//! New ids are 32 lower-case hex digits: 128 bits from the operating
//! system's generator, never from a user-space PRNG. With
//! `id_format(IdFormat::Uuid4)` they are the text of a random UUID
//! (`str(uuid.uuid4())` in Python), 122 bits from the same generator. Ids given to `get`,
//! `touch`, `delete` (from a cookie, say) are untrusted: they are escaped
//! into the key like every user value, so no id can reach another key, add a
//! segment, or act as a pattern; an empty id or one longer than 256 bytes
//! is no session at all and costs no round trip. Ids of other clients
//! (UUIDs, for example) work as they are.
//!
//! # Expiry
//!
//! Every session has an idle TTL, restarted by every `get`, `update` and
//! `touch` (sliding expiry), and a maximum lifetime (default 7 days,
//! measured from `created_at`): a session older than that reads as absent
//! and is deleted on sight, however often it was used.
//!
//! # The per-user index
//!
//! `session:#user:<user id>` is a sorted set of the user's session ids,
//! written with every `create` in the same round trip. It cannot go stale:
//! reads check that each listed session still exists and remove the
//! entries of those that do not; entries older than the maximum lifetime
//! are dropped at every `create`; and the index itself expires one maximum
//! lifetime after the user's newest session was created, which is after
//! every session it lists has become unusable. Sessions created by other
//! clients are not in the index.
//!
//! `user_index(false)` turns the index off: `create` then writes the
//! session key alone, exactly what other clients write, and the per-user
//! operations fail with [`Error::InvalidConfig`].
//!
//! On a Cluster the session and the index are on different slots, so
//! `create` sends two commands (each atomic) in one round trip; if one of
//! them fails the call fails and the session id is never handed out (a
//! session created without its index entry is deleted in a second round
//! trip).

mod hash;
mod json;

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Timelike, Utc};
use redis::Value;

pub use self::hash::{CreateHash, GetField, GetHash, HashSessions, SetField};
pub use self::json::{CreateJson, GetJson, JsonSessions, UpdateJson, to_python_json};
use crate::error::{DecodeError, Error, Result};
use crate::keys::{IdBuf, KeyPart, Namespace, escape_into};
use crate::op::{Operation, Plan, Replies, Step};
use crate::random::{self, millis};

/// The longest session id `get` and friends look up (longer ones are no
/// session).
pub const MAX_ID_LEN: usize = 256;

crate::script! {
    /// Adds a session id to its user's index, drops entries past the
    /// maximum lifetime, sets the index TTL; returns the index size.
    pub(crate) struct IndexAdd {
        name: "redis_state.session.index_add",
        keys: [index],
        args: [id: &str, max_lifetime_ms: u64],
        returns: i64,
        lua: include_str!("lua/index_add.lua"),
    }
}

/// A session id: 32 hex digits for sessions created here, any string for
/// sessions created by others.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// A new id: 16 bytes (128 bits) from the OS random number generator,
    /// as 32 lower-case hex digits.
    pub fn generate() -> Result<Self> {
        random::hex_token(16).map(SessionId)
    }

    /// A new id in the text form of a random (version 4) UUID, as Python's
    /// `str(uuid.uuid4())` writes it: `8-4-4-4-12` lower-case hex digits,
    /// 122 random bits from the OS random number generator.
    pub fn generate_uuid4() -> Result<Self> {
        random::uuid4().map(SessionId)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for SessionId {
    fn from(s: String) -> Self {
        SessionId(s)
    }
}

impl From<&str> for SessionId {
    fn from(s: &str) -> Self {
        SessionId(s.to_owned())
    }
}

impl AsRef<str> for SessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A session: its id, its user, when it was created, your data.
#[derive(Debug, Clone, PartialEq)]
pub struct Session<T, U = u64> {
    /// The id (the cookie value).
    pub id: SessionId,
    /// The user the session belongs to.
    pub user_id: U,
    /// When it was created (microsecond precision, as stored).
    pub created_at: DateTime<Utc>,
    /// Your data.
    pub data: T,
}

/// How new session ids look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IdFormat {
    /// 32 lower-case hex digits (128 random bits): [`SessionId::generate`].
    #[default]
    Hex,
    /// The text of a random UUID, `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`, as
    /// Python's `str(uuid.uuid4())` writes it (122 random bits):
    /// [`SessionId::generate_uuid4`].
    Uuid4,
}

/// The settings both layouts share.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    ns: Option<Namespace>,
    idle: Duration,
    max_lifetime: Duration,
    ids: IdFormat,
    index: bool,
}

impl Config {
    fn new(idle: Duration) -> Self {
        Config {
            ns: None,
            idle,
            max_lifetime: Duration::from_secs(7 * 24 * 3600),
            ids: IdFormat::Hex,
            index: true,
        }
    }

    /// A new id in the configured format.
    pub(crate) fn new_id(&self) -> Result<SessionId> {
        match self.ids {
            IdFormat::Hex => SessionId::generate(),
            IdFormat::Uuid4 => SessionId::generate_uuid4(),
        }
    }

    /// The error of a per-user operation on a store that keeps no index.
    fn no_index(&self) -> Option<Error> {
        (!self.index).then(|| Error::InvalidConfig {
            what: "session index",
            reason: "this store keeps no per-user index (`user_index(false)`): \
                     sessions are not listed by user"
                .to_owned(),
        })
    }

    fn prefix(&self, out: &mut String) {
        if let Some(ns) = &self.ns {
            out.push_str(ns.as_str());
            out.push(':');
        }
        out.push_str("session:");
    }

    /// The key of session `id`, or `None` for an id that cannot be one.
    pub(crate) fn key(&self, id: &str) -> Option<String> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return None;
        }
        let mut key = String::with_capacity(id.len() + 16);
        self.prefix(&mut key);
        escape_into(&mut key, id);
        Some(key)
    }

    pub(crate) fn index_key(&self, user: &dyn Fn(&mut IdBuf)) -> String {
        let mut id = IdBuf::new();
        user(&mut id);
        let mut key = String::new();
        self.prefix(&mut key);
        key.push_str("#user:");
        key.push_str(id.joined());
        key
    }

    pub(crate) fn idle_ms(&self) -> u64 {
        millis(self.idle)
    }

    pub(crate) fn max_lifetime_ms(&self) -> u64 {
        millis(self.max_lifetime)
    }

    /// Whether a session created at `created_at` is past its maximum
    /// lifetime.
    pub(crate) fn too_old(&self, created_at: DateTime<Utc>) -> bool {
        let age = Utc::now().signed_duration_since(created_at);
        age.to_std().is_ok_and(|age| age > self.max_lifetime)
    }
}

/// What both stores share: `Clone`, `Debug`, `new` and the builder and
/// key-level methods.
macro_rules! store_settings {
    ($store:ident) => {
        impl<T, U> Clone for $store<T, U> {
            fn clone(&self) -> Self {
                $store {
                    cfg: self.cfg.clone(),
                    _t: $crate::session::Types::default(),
                }
            }
        }

        impl<T, U> std::fmt::Debug for $store<T, U> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($store))
                    .field("cfg", &self.cfg)
                    .finish()
            }
        }

        impl<T, U> $store<T, U>
        where
            T: serde::Serialize + serde::de::DeserializeOwned,
            U: serde::Serialize + serde::de::DeserializeOwned + $crate::keys::KeyPart,
        {
            /// A store whose sessions expire after `idle_ttl` without use.
            pub fn new(idle_ttl: std::time::Duration) -> Self {
                $store {
                    cfg: $crate::session::Config::new(idle_ttl),
                    _t: $crate::session::Types::default(),
                }
            }
        }

        impl<T, U> $store<T, U> {
            /// Puts the store's keys in namespace `ns`.
            pub fn namespace(mut self, ns: &$crate::Namespace) -> Self {
                self.cfg.ns = Some(ns.clone());
                self
            }

            /// The longest a session lives, however often it is used
            /// (measured from `created_at`). Default 7 days.
            pub fn max_lifetime(mut self, max: std::time::Duration) -> Self {
                self.cfg.max_lifetime = max;
                self
            }

            /// How new session ids look: 32 hex digits (the default) or
            /// [`IdFormat::Uuid4`](crate::session::IdFormat::Uuid4), the
            /// text of a random UUID as Python's `str(uuid.uuid4())` writes
            /// it, for stores shared with clients that expect it. Ids of
            /// either form (and any other) are read whatever this says.
            pub fn id_format(mut self, format: $crate::session::IdFormat) -> Self {
                self.cfg.ids = format;
                self
            }

            /// Whether `create` also writes the user's index
            /// (`session:#user:<user id>`, on by default). Without it a
            /// create is one command and the store writes exactly the
            /// session key, as other clients do; `list_for_user` and
            /// `delete_all_for_user` then fail with
            /// [`Error::InvalidConfig`]($crate::Error::InvalidConfig).
            pub fn user_index(mut self, on: bool) -> Self {
                self.cfg.index = on;
                self
            }

            /// The idle TTL: how long a session lives without being read,
            /// updated or touched.
            pub fn idle_ttl(&self) -> std::time::Duration {
                self.cfg.idle
            }

            /// The key of session `id` (`None` for an id that cannot be one).
            pub fn key(&self, id: &str) -> Option<String> {
                self.cfg.key(id)
            }

            /// The key of `user`'s session index.
            pub fn index_key(&self, user: &U) -> String
            where
                U: $crate::keys::KeyPart,
            {
                self.cfg.index_key(&|id| user.write_key_part(id))
            }

            /// Slides the expiry of session `id` without reading it; `false`
            /// when there is no such session. One `PEXPIRE`, one round trip.
            pub fn touch(&self, id: &str) -> $crate::session::Touch {
                $crate::session::Touch::new(&self.cfg, id)
            }

            /// Deletes session `id`; `false` when there was none. One `DEL`,
            /// one round trip (the user's index drops the entry on its next
            /// read).
            pub fn delete(&self, id: &str) -> $crate::session::Delete {
                $crate::session::Delete::new(&self.cfg, id)
            }

            /// The ids of `user`'s live sessions, oldest first. Two round
            /// trips: `ZRANGE` on the index, then one `EXISTS` per session
            /// (pipelined); a third, `ZREM`, removes the entries of sessions
            /// that are gone.
            pub fn list_for_user(&self, user: &U) -> $crate::session::ListForUser
            where
                U: $crate::keys::KeyPart,
            {
                $crate::session::ListForUser::new(&self.cfg, self.index_key(user))
            }

            /// Deletes every session of `user` (log out everywhere); the
            /// output is how many existed. Two round trips: `ZRANGE` on the
            /// index, then one `DEL` per session and one `ZREM` of exactly
            /// those entries (pipelined), so a session created meanwhile
            /// keeps its entry.
            pub fn delete_all_for_user(&self, user: &U) -> $crate::session::DeleteAllForUser
            where
                U: $crate::keys::KeyPart,
            {
                $crate::session::DeleteAllForUser::new(&self.cfg, self.index_key(user))
            }
        }
    };
}
pub(crate) use store_settings;

// ---------------------------------------------------------------------------
// created_at, as Python's datetime.isoformat() writes a naive UTC time

/// `2024-05-01T12:00:00.123456`, or without the fraction when it is zero.
pub(crate) fn format_created_at(t: DateTime<Utc>) -> String {
    let naive = t.naive_utc();
    if naive.nanosecond() / 1000 == 0 {
        naive.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        naive.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

/// Reads `created_at` written by Python (naive, meaning UTC) or as RFC 3339.
pub(crate) fn parse_created_at(s: &str) -> Option<DateTime<Utc>> {
    // Python's naive form first: it is what sessions hold.
    if let Ok(n) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(n.and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Now, at the precision sessions are stored with.
pub(crate) fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub(crate) fn decode_error(
    key: &str,
    field: Option<&str>,
    expected: &'static str,
    raw: &[u8],
    detail: impl fmt::Display,
) -> Error {
    DecodeError::new(key, field, expected, Some(raw))
        .with_detail(detail)
        .into()
}

// ---------------------------------------------------------------------------
// Operations both layouts share

/// Takes the error an operation kept from when it was built, for
/// `prepare` to return; a second `prepare` gets an error that repeats its
/// message.
pub(crate) fn take_error(e: &mut Error) -> Error {
    let again = Error::UnexpectedReply {
        context: "a session operation",
        found: format!("prepared again after it failed to build: {e}"),
    };
    std::mem::replace(e, again)
}

fn run_twice() -> Error {
    Error::UnexpectedReply {
        context: "a session create",
        found: "an operation run twice".to_owned(),
    }
}

/// Writes the session itself (the layout's part of a create).
pub(crate) type WriteSession = Box<dyn FnOnce(&mut Plan) -> Result<()> + Send>;

/// `create` of either layout: the new session and the round trip that
/// writes it with its index entry, or the error met building them.
pub(crate) struct CreateSession<T, U> {
    session: Option<Session<T, U>>,
    core: Result<CreateCore>,
    /// Reads the reply of the session write: `Ok(true)` when created.
    created: fn(Result<Value>) -> Result<bool>,
}

impl<T, U: KeyPart> CreateSession<T, U> {
    /// `write` builds the layout's write of `session` at its key, `created`
    /// reads that write's reply.
    pub(crate) fn new(
        cfg: &Config,
        session: Result<Session<T, U>>,
        write: impl FnOnce(&Session<T, U>, &str) -> Result<WriteSession>,
        created: fn(Result<Value>) -> Result<bool>,
    ) -> Self {
        let prepared = session.and_then(|s| {
            let key = cfg.key(s.id.as_str()).ok_or_else(|| Error::InvalidConfig {
                what: "session id",
                reason: "a generated id must fit in a key".to_owned(),
            })?;
            let write = write(&s, &key)?;
            let index = cfg.index_key(&|id| s.user_id.write_key_part(id));
            let core = CreateCore::new(cfg, &s.id, key, index, write);
            Ok((s, core))
        });
        match prepared {
            Ok((s, core)) => CreateSession {
                session: Some(s),
                core: Ok(core),
                created,
            },
            Err(e) => CreateSession {
                session: None,
                core: Err(e),
                created,
            },
        }
    }
}

impl<T, U> CreateSession<T, U> {
    pub(crate) fn fmt_debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("id", &self.session.as_ref().map(|s| &s.id))
            .finish_non_exhaustive()
    }

    pub(crate) fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match &mut self.core {
            Ok(core) => core.prepare(plan),
            Err(e) => Err(take_error(e)),
        }
    }

    pub(crate) fn complete(&mut self, replies: &mut Replies) -> Result<Step<Session<T, U>>> {
        let core = self.core.as_mut().map_err(|_| run_twice())?;
        match core.complete(replies, self.created)? {
            Step::Again => Ok(Step::Again),
            Step::Done(()) => self.session.take().map(Step::Done).ok_or_else(run_twice),
        }
    }
}

/// `Debug` and [`Operation`] of a layout's create (`CreateJson`,
/// `CreateHash`), a `CreateSession` inside.
macro_rules! create_op {
    ($op:ident) => {
        impl<T, U> fmt::Debug for $op<T, U> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt_debug(stringify!($op), f)
            }
        }

        impl<T, U> Operation for $op<T, U> {
            type Output = Session<T, U>;

            fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
                self.0.prepare(plan)
            }

            fn complete(&mut self, replies: &mut Replies) -> Result<Step<Session<T, U>>> {
                self.0.complete(replies)
            }
        }
    };
}
pub(crate) use create_op;

/// `get` of either layout: the layout's read, which slides the expiry, and
/// a `DEL` in a second round trip of a session past its maximum lifetime.
pub(crate) struct GetSession<T, U> {
    cfg: Config,
    id: String,
    key: Option<String>,
    expired: bool,
    _t: Types<T, U>,
}

impl<T, U> GetSession<T, U> {
    pub(crate) fn new(cfg: &Config, id: &str) -> Self {
        GetSession {
            cfg: cfg.clone(),
            id: id.to_owned(),
            key: cfg.key(id),
            expired: false,
            _t: Types::default(),
        }
    }

    pub(crate) fn fmt_debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }

    /// `read(plan, key, idle_ms)` plans the layout's read.
    pub(crate) fn prepare(
        &mut self,
        plan: &mut Plan,
        read: impl FnOnce(&mut Plan, &str, u64) -> Result<()>,
    ) -> Result<()> {
        if let Some(key) = &self.key {
            if self.expired {
                plan.cmd("DEL", key);
            } else {
                read(plan, key, self.cfg.idle_ms())?;
            }
        }
        Ok(())
    }

    /// `decode(key, id, reply)` reads the layout's reply.
    pub(crate) fn complete(
        &mut self,
        replies: &mut Replies,
        decode: impl FnOnce(&str, String, Value) -> Result<Option<Session<T, U>>>,
    ) -> Result<Step<Option<Session<T, U>>>> {
        let Some(key) = &self.key else {
            return Ok(Step::Done(None));
        };
        if self.expired {
            replies.next::<i64>("DEL")?;
            return Ok(Step::Done(None));
        }
        let v = replies.next_value()?;
        match decode(key, std::mem::take(&mut self.id), v)? {
            Some(s) if self.cfg.too_old(s.created_at) => {
                self.expired = true;
                Ok(Step::Again)
            }
            found => Ok(Step::Done(found)),
        }
    }
}

/// Creates the session and its index entry in one round trip; see
/// `create` on [`JsonSessions`] and [`HashSessions`]. Deletes the session
/// again if the index write failed.
pub(crate) struct CreateCore {
    key: String,
    index: Option<IndexAdd>,
    write: Option<WriteSession>,
    state: CreateState,
}

enum CreateState {
    Send,
    Cleanup(Error),
    Done,
}

impl CreateCore {
    pub(crate) fn new(
        cfg: &Config,
        id: &SessionId,
        key: String,
        index_key: String,
        write: WriteSession,
    ) -> Self {
        CreateCore {
            key,
            index: cfg
                .index
                .then(|| IndexAdd::new(index_key, id.as_str(), cfg.max_lifetime_ms())),
            write: Some(write),
            state: CreateState::Send,
        }
    }

    pub(crate) fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match &self.state {
            CreateState::Send => {
                if let Some(index) = &mut self.index {
                    index.prepare(plan)?;
                }
                let write = self.write.take().ok_or_else(run_twice)?;
                write(plan)
            }
            CreateState::Cleanup(_) => {
                plan.cmd("DEL", &self.key);
                Ok(())
            }
            CreateState::Done => Ok(()),
        }
    }

    /// `created` reads the reply of the session write: `Ok(true)` when the
    /// session was created.
    pub(crate) fn complete(
        &mut self,
        replies: &mut Replies,
        created: impl FnOnce(Result<Value>) -> Result<bool>,
    ) -> Result<Step<()>> {
        match std::mem::replace(&mut self.state, CreateState::Done) {
            CreateState::Send => {
                let indexed = match &mut self.index {
                    Some(index) => index.complete(replies).map(|_| ()),
                    None => Ok(()),
                };
                let written = created(replies.next_value());
                match (indexed, written) {
                    (Ok(_), Ok(true)) => Ok(Step::Done(())),
                    (_, Ok(false)) => Err(Error::AlreadyExists {
                        model: "session",
                        key: self.key.clone(),
                    }),
                    (Err(e), Ok(true)) => {
                        self.state = CreateState::Cleanup(e);
                        Ok(Step::Again)
                    }
                    (_, Err(e)) => Err(e),
                }
            }
            CreateState::Cleanup(e) => {
                let _ = replies.next_value();
                Err(e)
            }
            CreateState::Done => Err(run_twice()),
        }
    }
}

/// See `touch` on [`JsonSessions`] / [`HashSessions`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct Touch {
    key: Option<String>,
    idle_ms: u64,
}

impl Touch {
    pub(crate) fn new(cfg: &Config, id: &str) -> Self {
        Touch {
            key: cfg.key(id),
            idle_ms: cfg.idle_ms(),
        }
    }
}

impl Operation for Touch {
    type Output = bool;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if let Some(key) = &self.key {
            plan.cmd("PEXPIRE", key).arg(self.idle_ms);
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        if self.key.is_none() {
            return Ok(Step::Done(false));
        }
        replies.next::<bool>("PEXPIRE").map(Step::Done)
    }
}

/// See `delete` on [`JsonSessions`] / [`HashSessions`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct Delete {
    key: Option<String>,
}

impl Delete {
    pub(crate) fn new(cfg: &Config, id: &str) -> Self {
        Delete { key: cfg.key(id) }
    }
}

impl Operation for Delete {
    type Output = bool;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if let Some(key) = &self.key {
            plan.cmd("DEL", key);
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        if self.key.is_none() {
            return Ok(Step::Done(false));
        }
        replies.next::<i64>("DEL").map(|n| Step::Done(n > 0))
    }
}

/// Reads a user's index (the first round of listing and deleting).
fn index_members(replies: &mut Replies) -> Result<Vec<String>> {
    let v = replies.next_value()?;
    match &v {
        Value::Array(items) => items
            .iter()
            .map(|m| match m {
                Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
                other => Err(Error::unexpected("a session index", other)),
            })
            .collect(),
        _ => Err(Error::unexpected("a session index", &v)),
    }
}

enum ListState {
    Read,
    Check(Vec<String>),
    Prune(Vec<String>, Vec<String>),
}

/// See `list_for_user` on [`JsonSessions`] / [`HashSessions`].
#[must_use = "an operation does nothing until it is run"]
pub struct ListForUser {
    cfg: Config,
    index: String,
    state: ListState,
}

impl fmt::Debug for ListForUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListForUser")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl ListForUser {
    pub(crate) fn new(cfg: &Config, index: String) -> Self {
        ListForUser {
            cfg: cfg.clone(),
            index,
            state: ListState::Read,
        }
    }
}

impl Operation for ListForUser {
    type Output = Vec<SessionId>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if let Some(e) = self.cfg.no_index() {
            return Err(e);
        }
        match &self.state {
            ListState::Read => {
                plan.cmd("ZRANGE", &self.index).arg(0).arg(-1);
            }
            ListState::Check(ids) => {
                // An entry that cannot be a session id is pruned unchecked.
                for key in ids.iter().filter_map(|id| self.cfg.key(id)) {
                    plan.cmd("EXISTS", key);
                }
            }
            ListState::Prune(_, dead) => {
                let cmd = plan.cmd("ZREM", &self.index);
                for id in dead {
                    cmd.arg(id);
                }
            }
        }
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Vec<SessionId>>> {
        match std::mem::replace(&mut self.state, ListState::Read) {
            ListState::Read => {
                let ids = index_members(replies)?;
                if ids.is_empty() {
                    return Ok(Step::Done(Vec::new()));
                }
                self.state = ListState::Check(ids);
                Ok(Step::Again)
            }
            ListState::Check(ids) => {
                let mut live = Vec::with_capacity(ids.len());
                let mut dead = Vec::new();
                for id in ids {
                    if self.cfg.key(&id).is_some() && replies.next::<i64>("EXISTS")? == 1 {
                        live.push(id);
                    } else {
                        dead.push(id);
                    }
                }
                if dead.is_empty() {
                    return Ok(Step::Done(live.into_iter().map(SessionId).collect()));
                }
                self.state = ListState::Prune(live, dead);
                Ok(Step::Again)
            }
            ListState::Prune(live, _) => {
                replies.next::<i64>("ZREM")?;
                Ok(Step::Done(live.into_iter().map(SessionId).collect()))
            }
        }
    }
}

/// See `delete_all_for_user` on [`JsonSessions`] / [`HashSessions`].
#[must_use = "an operation does nothing until it is run"]
pub struct DeleteAllForUser {
    cfg: Config,
    index: String,
    ids: Option<Vec<String>>,
}

impl fmt::Debug for DeleteAllForUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeleteAllForUser")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl DeleteAllForUser {
    pub(crate) fn new(cfg: &Config, index: String) -> Self {
        DeleteAllForUser {
            cfg: cfg.clone(),
            index,
            ids: None,
        }
    }
}

impl Operation for DeleteAllForUser {
    type Output = usize;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if let Some(e) = self.cfg.no_index() {
            return Err(e);
        }
        match &self.ids {
            None => {
                plan.cmd("ZRANGE", &self.index).arg(0).arg(-1);
            }
            Some(ids) => {
                for id in ids {
                    if let Some(key) = self.cfg.key(id) {
                        plan.cmd("DEL", key);
                    }
                }
                let cmd = plan.cmd("ZREM", &self.index);
                for id in ids {
                    cmd.arg(id);
                }
            }
        }
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<usize>> {
        match self.ids.take() {
            None => {
                let ids = index_members(replies)?;
                if ids.is_empty() {
                    return Ok(Step::Done(0));
                }
                self.ids = Some(ids);
                Ok(Step::Again)
            }
            Some(ids) => {
                let mut deleted = 0;
                for id in &ids {
                    if self.cfg.key(id).is_some() && replies.next::<i64>("DEL")? > 0 {
                        deleted += 1;
                    }
                }
                replies.next::<i64>("ZREM")?;
                Ok(Step::Done(deleted))
            }
        }
    }
}

/// Keeps `PhantomData` of the data and user types without their auto traits.
pub(crate) type Types<T, U> = PhantomData<fn() -> (T, U)>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPart;
    use chrono::TimeZone;

    #[test]
    fn created_at_is_python_isoformat() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        assert_eq!(format_created_at(t), "2024-05-01T12:00:00");
        let t = t + chrono::Duration::microseconds(123_456);
        assert_eq!(format_created_at(t), "2024-05-01T12:00:00.123456");
        assert_eq!(parse_created_at("2024-05-01T12:00:00.123456"), Some(t));
        assert_eq!(parse_created_at("2024-05-01T12:00:00.123456Z"), Some(t));
        assert_eq!(
            parse_created_at("2024-05-01T14:00:00.123456+02:00"),
            Some(t)
        );
        assert_eq!(parse_created_at("yesterday"), None);
    }

    #[test]
    fn ids_are_escaped_and_bounded() {
        let cfg = Config::new(Duration::from_secs(1));
        assert_eq!(cfg.key("abc").unwrap(), "session:abc");
        assert_eq!(cfg.key("a:b*{c}").unwrap(), "session:a%3Ab%2A%7Bc%7D");
        assert_eq!(cfg.key(""), None);
        assert_eq!(cfg.key(&"x".repeat(MAX_ID_LEN + 1)), None);
        assert!(cfg.key(&"x".repeat(MAX_ID_LEN)).is_some());
        assert_eq!(
            cfg.index_key(&|id| 42u64.write_key_part(id)),
            "session:#user:42"
        );
    }
}
