//! The one error type of the crate.
//!
//! Every failure names what went wrong in terms of the user's data: which key,
//! which field, what type was expected and what was found. Nothing in the crate
//! panics on bad input from Redis or from callers (DESIGN principle 8).

use std::fmt;

/// The result type of every operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when redis-state talks to Redis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection failed (I/O error, dropped or refused connection,
    /// a timeout before anything was sent) or redis-rs refused a request.
    /// Displays redis-rs' message as is (its `source()` is redis-rs' own).
    #[error(transparent)]
    Redis(#[from] redis::RedisError),

    /// The server answered a command with an error reply (`WRONGTYPE`,
    /// `NOPERM`, `OOM`, an error raised inside a script, `NOSCRIPT`, ...):
    /// names the operation (command or script name) and its keys.
    #[error("{operation}{} failed: {}", on_keys(keys), server_message(error))]
    Server {
        /// The command (`GET`, `HSET`, ...) or the script's name.
        operation: String,
        /// The keys of the command (empty for a keyless command).
        keys: Vec<String>,
        /// The server's error, with its code (`error.code()`).
        error: redis::ServerError,
    },

    /// Commands were sent but no reply came (a response timeout, a
    /// connection dropped after sending): they may have run, so a write may
    /// have been applied. Read back before retrying a write that is not
    /// idempotent.
    #[error(
        "no reply to {operation}{}{}: {error}; it may have been sent and applied",
        on_keys(keys),
        and_more(*commands)
    )]
    NoReply {
        /// The first command (or script) of the round trip.
        operation: String,
        /// Its keys.
        keys: Vec<String>,
        /// How many commands the round trip held.
        commands: usize,
        /// What redis-rs reported. Displayed in this message, so not
        /// returned as `source()`.
        error: redis::RedisError,
    },

    /// Data stored in Redis could not be decoded into the Rust type.
    #[error(transparent)]
    Decode(#[from] Box<DecodeError>),

    /// A value could not be encoded for Redis (for example a `serde` type that
    /// refuses to serialize).
    #[error("cannot encode field `{field}` of {model}: {message}")]
    Encode {
        /// The model (Rust type) being written.
        model: &'static str,
        /// The field that failed.
        field: &'static str,
        /// What the encoder said.
        message: String,
    },

    /// `insert` found an entity already stored under this key.
    #[error("{model} already exists at key `{key}`")]
    AlreadyExists {
        /// The model.
        model: &'static str,
        /// The key that is taken.
        key: String,
    },

    /// `update`, `increment` or another operation that needs an existing entity
    /// found none.
    #[error("{model} not found at key `{key}`")]
    NotFound {
        /// The model.
        model: &'static str,
        /// The key that was looked up.
        key: String,
    },

    /// A save would give a `unique` field a value another entity already holds
    /// (the holder was checked to exist and to hold the value, except inside
    /// a transaction, where the unique index is trusted).
    #[error(
        "{model}.{field} must be unique: value `{value}` is held by the entity with id `{holder}`"
    )]
    UniqueViolation {
        /// The model.
        model: &'static str,
        /// The unique field.
        field: &'static str,
        /// The conflicting value, as stored.
        value: String,
        /// The id (as it appears in keys) of the entity that holds the value.
        holder: String,
    },

    /// A versioned save lost the race: another writer saved first.
    #[error("version conflict on `{key}`: expected version {expected}, found {actual}")]
    VersionConflict {
        /// The entity key.
        key: String,
        /// The version the caller read and expected to still be current.
        expected: u64,
        /// The version now stored.
        actual: u64,
    },

    /// An increment would take a counter outside the range of its Rust type.
    #[error("counter `{field}` at `{key}` would leave the range of {ty}: {message}")]
    CounterOutOfRange {
        /// The entity key.
        key: String,
        /// The counter field.
        field: &'static str,
        /// The Rust type of the counter.
        ty: &'static str,
        /// The details.
        message: String,
    },

    /// Keys of one atomic unit would land in different Cluster hash slots.
    /// Raised before anything is sent.
    #[error("keys of one {unit} hash to different cluster slots: {keys:?}")]
    CrossSlot {
        /// Which unit (script name or command).
        unit: String,
        /// The keys involved.
        keys: Vec<String>,
    },

    /// A value that goes into a key is not acceptable (for example a namespace
    /// containing braces).
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidKeyPart {
        /// What was being validated ("namespace", ...).
        what: &'static str,
        /// The rejected value (shortened).
        value: String,
        /// Why.
        reason: &'static str,
    },

    /// The server answered with a reply whose shape the operation does not
    /// understand (a protocol mismatch, or a key of another type).
    #[error("unexpected reply to {context}: {found}")]
    UnexpectedReply {
        /// The operation that got the reply.
        context: &'static str,
        /// A short rendering of the reply.
        found: String,
    },

    /// A loader failed while other callers waited for its value: they get
    /// this error (with the loader's message); the caller that ran the
    /// loader gets the loader's own error as [`Error::User`]. Nothing was
    /// cached.
    #[error("loading `{key}` failed in a concurrent caller: {message}")]
    LoadFailed {
        /// The cache key.
        key: String,
        /// The loader's error message.
        message: String,
    },

    /// A blocking lock acquisition gave up: the lock stayed held by someone
    /// else for the whole wait.
    #[error("lock `{key}` not acquired within {waited:?}")]
    LockTimeout {
        /// The lock key.
        key: String,
        /// How long the caller waited.
        waited: std::time::Duration,
    },

    /// A lock was lost while its holder still needed it: its TTL ran out
    /// (another client may hold it now), or the server could no longer
    /// confirm it. Work done under it may have overlapped with another
    /// holder's; fencing tokens let the protected resource refuse it.
    #[error("lock `{key}` was lost: {reason}")]
    LockLost {
        /// The lock key.
        key: String,
        /// How it was lost.
        reason: LostReason,
    },

    /// An optimistic transaction saw its watched keys change on every try.
    #[error("optimistic transaction over {keys:?} conflicted on all {tries} tries")]
    TransactionConflict {
        /// The watched keys.
        keys: Vec<String>,
        /// How many times it was tried.
        tries: u32,
    },

    /// A setting or argument that cannot work (a rate limit of 0, a lock
    /// TTL of 0, ...). Raised before anything is sent.
    #[error("invalid {what}: {reason}")]
    InvalidConfig {
        /// What was being configured.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },

    /// The operating system's random number generator failed (lock tokens
    /// and session ids come from it; there is no weaker fallback).
    #[error("the OS random number generator failed: {0}")]
    Entropy(String),
    /// A score cannot be stored exactly on a board: an integer of magnitude
    /// above 2^53 - 1, `NaN`, a sum (an increment, a merge) that would leave
    /// the range of the score type, or, on a board with a tie-break, a score
    /// above `max_score` (or a sum past it), with more decimals than
    /// `decimals`, or an achievement time outside the tie-break's range.
    /// Nothing was written.
    #[error("cannot store score {value} for member `{member}` on `{key}`: {reason}")]
    ScoreNotEncodable {
        /// The board key.
        key: String,
        /// The member (lossy UTF-8).
        member: String,
        /// The score, as text.
        value: String,
        /// Why it cannot be stored.
        reason: String,
    },

    /// An argument the operation cannot use (a page number of 0, a window
    /// the model does not declare). Raised before anything is sent.
    #[error("invalid argument to {operation}: {reason}")]
    InvalidArgument {
        /// The operation.
        operation: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// An error raised by user code inside an operation (for example a loader
    /// or a transaction body).
    /// Displays the user's error as is (its `source()` is the user error's
    /// own).
    #[error(transparent)]
    User(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A pub/sub message (or its channel's name) that does not decode as
    /// the channel's types. The subscriber goes on with the next message.
    #[error(
        "message on channel `{channel}` does not decode as {expected}: {reason}; payload {preview}"
    )]
    BadMessage {
        /// The channel it arrived on.
        channel: String,
        /// What was expected (`"JSON"`, `"u64"`, the channel's template).
        expected: &'static str,
        /// Why it does not decode.
        reason: String,
        /// The payload, quoted and shortened.
        preview: String,
    },

    /// A subscriber with the [`Overflow::Fail`](crate::pubsub::Overflow)
    /// policy received more messages than its buffer holds: it stopped.
    #[error(
        "subscriber buffer full ({capacity} messages): the subscriber stopped, {dropped} messages were dropped"
    )]
    SubscriberOverflow {
        /// The buffer's capacity.
        capacity: usize,
        /// Messages dropped when it stopped.
        dropped: u64,
    },

    /// A server's `notify-keyspace-events` setting lacks what
    /// [entity events](crate::pubsub::EntityEvents) need; turning it on is
    /// the operator's job (`CONFIG SET notify-keyspace-events Kghx`, or
    /// those flags added to the current ones).
    #[error(
        "keyspace notifications are off on {node} (notify-keyspace-events is {setting:?}): entity events need {needed}; set them with CONFIG SET notify-keyspace-events Kghx (added to the current flags)"
    )]
    KeyspaceEventsOff {
        /// The node (its URL without credentials).
        node: String,
        /// Its current setting.
        setting: String,
        /// The flags needed.
        needed: &'static str,
    },

    /// An operation on a [configured connection](crate::connect) got no
    /// answer in time, or lost its connection after sending. Whether its
    /// writes were applied is unknown when `may_have_applied` is true (the
    /// plan held a write and was sent); false when it held only reads or was
    /// never sent.
    #[error(
        "{endpoint} gave no usable answer within {waited:?} ({}): {reason}",
        if *may_have_applied { "the write may have been applied" } else { "nothing was applied" }
    )]
    Timeout {
        /// The server or service (`host:port`, a Cluster, a Sentinel service),
        /// never with credentials.
        endpoint: String,
        /// How long the operation waited in all, retries included.
        waited: std::time::Duration,
        /// Whether a write of the operation may have been applied.
        may_have_applied: bool,
        /// What happened last (a timeout, a dropped connection, a refusal).
        reason: String,
    },

    /// The circuit breaker of a [configured connection](crate::connect) is
    /// open after repeated failures: nothing was sent.
    #[error("circuit open for {endpoint} after {failures} failures; next probe in {retry_in:?}")]
    CircuitOpen {
        /// The server or service.
        endpoint: String,
        /// Consecutive failures that opened it.
        failures: u32,
        /// When a probe will be let through.
        retry_in: std::time::Duration,
    },

    /// No Sentinel answered with a usable primary for the service.
    #[error("no primary for Sentinel service `{service}`: {reason}")]
    NoPrimary {
        /// The service name.
        service: String,
        /// What each sentinel answered.
        reason: String,
    },

    /// A write was applied on its node but fewer replicas than asked
    /// acknowledged it within the timeout (`WAIT`).
    #[error("write acknowledged by {acked} of {wanted} replicas within {timeout:?}")]
    DurabilityShortfall {
        /// Replicas asked for.
        wanted: u32,
        /// Replicas that acknowledged.
        acked: u32,
        /// The `WAIT` timeout.
        timeout: std::time::Duration,
    },

    /// A stream declared with
    /// [`Retention::respect_groups`](crate::stream::Retention::respect_groups)
    /// holds its cap of entries (its groups lag behind): nothing was added.
    #[error("stream `{key}` is full: {len} entries, its groups have not caught up")]
    StreamFull {
        /// The stream key.
        key: String,
        /// Its length when the add was refused.
        len: u64,
    },

    /// A job's lease ran out (or the job was taken by another worker): its
    /// completion, failure or effect was refused.
    #[error("the lease of job `{job}` in queue `{queue}` is no longer held")]
    LeaseLost {
        /// The queue name.
        queue: String,
        /// The job id.
        job: String,
    },

    /// A job queue holds jobs written in the key layout before one hash per
    /// queue (`<q>:data`, `<q>:prio`, `<q>:attempts`, `<q>:token`,
    /// `<q>:errors`): the job met was put back untouched. Drain those jobs
    /// with the version that wrote them, then run this one.
    #[error(
        "queue `{queue}` holds job `{job}` in the old key layout (`{key}`): drain it with the version that pushed it"
    )]
    QueueLayout {
        /// The queue name.
        queue: String,
        /// The job met.
        job: String,
        /// The old layout's payload hash that holds it.
        key: String,
    },
}

/// ` on `key`` / ` on `a`, `b`` for a message; nothing without keys.
fn on_keys(keys: &[String]) -> String {
    let mut out = String::new();
    for (i, k) in keys.iter().enumerate() {
        out.push_str(if i == 0 { " on `" } else { ", `" });
        out.push_str(k);
        out.push('`');
    }
    out
}

fn and_more(commands: usize) -> String {
    match commands {
        0 | 1 => String::new(),
        n => format!(" (and {} more commands of the round trip)", n - 1),
    }
}

/// `CODE detail`, as the server wrote it.
fn server_message(e: &redis::ServerError) -> String {
    match e.details() {
        Some(d) => format!("{} {d}", e.code()),
        None => e.code().to_owned(),
    }
}

/// What kind of failure an [`Error`] is: what a caller needs to decide
/// whether to retry (see [`Error::kind`], [`Error::is_retryable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection failed: refused, dropped, an I/O error (with commands
    /// in flight: [`Error::NoReply`]). Retrying on a working connection can
    /// succeed.
    Connection,
    /// A timeout: no reply in time ([`Error::NoReply`] of a timeout: the
    /// commands may have run) or a lock not acquired within its wait
    /// ([`Error::LockTimeout`]).
    Timeout,
    /// Data in Redis does not decode as the Rust type expects, or a reply
    /// has a shape the operation does not understand. Retrying does not
    /// help; the data needs repair.
    Decode,
    /// The data changed under the caller or is not in the state the
    /// operation needs: a version or transaction conflict, an entity that
    /// already exists or does not, a unique value held by another entity,
    /// a lock lost, a concurrent loader that failed.
    Conflict,
    /// The server refused a command: an error reply ([`Error::Server`]:
    /// `WRONGTYPE`, `NOPERM`, `OOM`, a script error, `READONLY`, `BUSY`,
    /// ...). A few codes are transient (see [`Error::is_retryable`]).
    Server,
    /// The caller's input or code: an invalid argument, setting or key
    /// part, keys of one unit in different Cluster slots, a value that
    /// cannot be encoded or stored, the OS random generator failing, or an
    /// error the caller's own code returned ([`Error::User`]). Retrying the
    /// same call fails the same way.
    User,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Decode => "decode",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Server => "server",
            ErrorKind::User => "user",
        })
    }
}

/// Server error codes that say "not now" rather than "never".
const TRANSIENT_CODES: &[&str] = &[
    "TRYAGAIN",
    "BUSY",
    "LOADING",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "READONLY",
    "MOVED",
    "ASK",
];

impl Error {
    /// Wraps any error raised by user code.
    pub fn user(err: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Error::User(err.into())
    }

    /// True when the failure is in the transport (connection dropped, I/O
    /// error, timeout), which is when retrying on a fresh connection can help.
    pub fn is_connection_error(&self) -> bool {
        matches!(self.kind(), ErrorKind::Connection | ErrorKind::Timeout)
            && !matches!(self, Error::LockTimeout { .. })
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Redis(e) => redis_kind(e),
            // A timeout, or a connection that broke with the commands in
            // flight.
            Error::NoReply { error, .. } => redis_kind(error),
            Error::LockTimeout { .. }
            | Error::Timeout { .. }
            | Error::DurabilityShortfall { .. } => ErrorKind::Timeout,
            Error::CircuitOpen { .. } | Error::NoPrimary { .. } => ErrorKind::Connection,
            Error::Server { .. } => ErrorKind::Server,
            Error::Decode(_) | Error::UnexpectedReply { .. } | Error::BadMessage { .. } => {
                ErrorKind::Decode
            }
            Error::AlreadyExists { .. }
            | Error::NotFound { .. }
            | Error::UniqueViolation { .. }
            | Error::VersionConflict { .. }
            | Error::TransactionConflict { .. }
            | Error::LockLost { .. }
            | Error::LeaseLost { .. }
            | Error::LoadFailed { .. } => ErrorKind::Conflict,
            // The stream's groups lag: adding again later can succeed.
            Error::StreamFull { .. } => ErrorKind::Server,
            Error::Encode { .. }
            | Error::CounterOutOfRange { .. }
            | Error::CrossSlot { .. }
            | Error::InvalidKeyPart { .. }
            | Error::InvalidConfig { .. }
            | Error::QueueLayout { .. }
            | Error::Entropy(_)
            | Error::ScoreNotEncodable { .. }
            | Error::InvalidArgument { .. }
            | Error::SubscriberOverflow { .. }
            | Error::KeyspaceEventsOff { .. }
            | Error::User(_) => ErrorKind::User,
        }
    }

    /// True when running the same call again, unchanged, can succeed: a
    /// connection failure, a lock still held, a transaction that kept
    /// conflicting, a transient server refusal (`TRYAGAIN`, `BUSY`,
    /// `LOADING`, `MASTERDOWN`, `CLUSTERDOWN`, `READONLY` during a
    /// failover). False for [`Error::NoReply`]: the commands may have run,
    /// so retrying a write that is not idempotent could apply it twice
    /// (check [`Error::may_have_applied`], read back, then decide).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Redis(e) => {
                matches!(redis_kind(e), ErrorKind::Connection | ErrorKind::Timeout)
                    || e.code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
            }
            Error::Server { error, .. } => TRANSIENT_CODES.contains(&error.code()),
            Error::LockTimeout { .. }
            | Error::TransactionConflict { .. }
            | Error::CircuitOpen { .. }
            | Error::NoPrimary { .. }
            | Error::StreamFull { .. } => true,
            // Only when nothing can have been applied.
            Error::Timeout {
                may_have_applied, ..
            } => !*may_have_applied,
            _ => false,
        }
    }

    /// True when the commands were sent and no reply came: a write may have
    /// been applied although the call failed ([`Error::NoReply`]).
    pub fn may_have_applied(&self) -> bool {
        match self {
            Error::NoReply { .. } | Error::DurabilityShortfall { .. } => true,
            Error::Timeout {
                may_have_applied, ..
            } => *may_have_applied,
            _ => false,
        }
    }

    /// The server's error code (`WRONGTYPE`, `NOPERM`, `NOSCRIPT`, `ERR`,
    /// ...) when the server refused a command.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            Error::Server { error, .. } => Some(error.code()),
            Error::Redis(e) => e.code(),
            _ => None,
        }
    }

    /// The keys the failure is about, when it names some.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Error::Server { keys, .. }
            | Error::NoReply { keys, .. }
            | Error::CrossSlot { keys, .. }
            | Error::TransactionConflict { keys, .. } => keys.iter().map(String::as_str).collect(),
            Error::Decode(d) => vec![d.key.as_str()],
            Error::AlreadyExists { key, .. }
            | Error::NotFound { key, .. }
            | Error::VersionConflict { key, .. }
            | Error::CounterOutOfRange { key, .. }
            | Error::LoadFailed { key, .. }
            | Error::LockTimeout { key, .. }
            | Error::LockLost { key, .. }
            | Error::ScoreNotEncodable { key, .. } => vec![key.as_str()],
            _ => Vec::new(),
        }
    }

    /// A server error reply to `operation` on `keys`.
    pub(crate) fn server(operation: String, keys: Vec<String>, error: redis::ServerError) -> Self {
        Error::Server {
            operation,
            keys,
            error,
        }
    }

    pub(crate) fn unexpected(context: &'static str, found: &redis::Value) -> Self {
        Error::UnexpectedReply {
            context,
            found: preview_value(found),
        }
    }
}

/// The kind of a redis-rs error: a server error reply is `Server`, a
/// timeout `Timeout`, a transport failure `Connection`, anything else
/// (a refused request, a reply redis-rs cannot parse) `User` or `Decode`.
fn redis_kind(e: &redis::RedisError) -> ErrorKind {
    if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        ErrorKind::Connection
    } else if e.code().is_some() {
        ErrorKind::Server
    } else {
        match e.kind() {
            redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => ErrorKind::Decode,
            redis::ErrorKind::Io | redis::ErrorKind::ClusterConnectionNotFound => {
                ErrorKind::Connection
            }
            _ => ErrorKind::User,
        }
    }
}

/// Data found in Redis that does not decode as the Rust type expects.
///
/// Names the key, the field, the type that was expected and a preview of what
/// was found, so the report is actionable without a debugger.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeError {
    /// The Redis key that holds the bad data.
    pub key: String,
    /// The hash field (or other location inside the key), if any.
    pub field: Option<String>,
    /// What the Rust type expected, e.g. `"u64"` or `"RFC 3339 timestamp"`.
    pub expected: &'static str,
    /// A short, printable preview of what was found, or `None` when the
    /// field was absent.
    pub found: Option<String>,
    /// Extra detail from the parser, if any.
    pub detail: Option<String>,
}

impl DecodeError {
    /// Creates a decode error for `field` of `key`.
    pub fn new(
        key: impl Into<String>,
        field: Option<&str>,
        expected: &'static str,
        found: Option<&[u8]>,
    ) -> Self {
        DecodeError {
            key: key.into(),
            field: field.map(str::to_owned),
            expected,
            found: found.map(preview_bytes),
            detail: None,
        }
    }

    /// Adds the parser's explanation.
    pub fn with_detail(mut self, detail: impl fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot decode `{}`", self.key)?;
        if let Some(field) = &self.field {
            write!(f, " field `{field}`")?;
        }
        write!(f, ": expected {}", self.expected)?;
        match &self.found {
            Some(found) => write!(f, ", found {found}")?,
            None => write!(f, ", but the field is absent")?,
        }
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DecodeError {}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(Box::new(e))
    }
}

const PREVIEW_LIMIT: usize = 64;

/// Renders raw bytes for an error message: quoted, escaped, shortened.
pub(crate) fn preview_bytes(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len().min(PREVIEW_LIMIT) + 8);
    out.push('"');
    let shown = &raw[..raw.len().min(PREVIEW_LIMIT)];
    for chunk in shown.utf8_chunks() {
        for c in chunk.valid().chars() {
            out.extend(c.escape_debug());
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    if raw.len() > PREVIEW_LIMIT {
        out.push_str(&format!("… ({} bytes)", raw.len()));
    }
    out
}

/// Renders a reply for an error message.
pub(crate) fn preview_value(v: &redis::Value) -> String {
    use redis::Value;
    match v {
        Value::Nil => "nil".to_owned(),
        Value::Int(i) => format!("integer {i}"),
        Value::BulkString(b) => format!("string {}", preview_bytes(b)),
        Value::SimpleString(s) => format!("status {}", preview_bytes(s.as_bytes())),
        Value::Okay => "OK".to_owned(),
        Value::Array(items) => format!("array of {}", items.len()),
        Value::Map(items) => format!("map of {}", items.len()),
        Value::Set(items) => format!("set of {}", items.len()),
        Value::Double(d) => format!("double {d}"),
        Value::Boolean(b) => format!("boolean {b}"),
        Value::ServerError(e) => format!("error {e}"),
        other => {
            let s = format!("{other:?}");
            preview_bytes(s.as_bytes())
        }
    }
}

/// Why a held lock was lost: the reason [`Error::LockLost`] carries (also
/// `lock::LostReason`). Part of the error vocabulary, so that this module
/// depends on no domain module.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// The lock key no longer holds the holder's token: the TTL ran out
    /// (and another client may hold the lock now).
    Expired,
    /// No renewal could be confirmed before the lock's validity ran out
    /// (the server is unreachable or too slow); `error` is the last failure.
    Unconfirmed {
        /// The last error of a renewal.
        error: String,
    },
    /// The watchdog stopped renewing after the lock's `max_hold`, and the
    /// lock has run out since.
    MaxHoldReached,
    /// The watchdog task ended before the lock was released (it panicked,
    /// or the runtime it ran on shut down): nothing renews the lock any
    /// more, and it runs out after its TTL.
    WatchdogStopped,
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::Expired => {
                f.write_str("its TTL ran out; the key no longer holds the token")
            }
            LostReason::Unconfirmed { error } => {
                write!(
                    f,
                    "no renewal was confirmed before the TTL ran out ({error})"
                )
            }
            LostReason::MaxHoldReached => {
                f.write_str("the watchdog stopped renewing after max_hold and the TTL ran out")
            }
            LostReason::WatchdogStopped => f.write_str(
                "the watchdog task ended (it panicked or its runtime shut down); nothing renews the lock",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_escapes_and_shortens() {
        assert_eq!(preview_bytes(b"ab\n\xff"), r#""ab\n\xff""#);
        let long = vec![b'x'; 100];
        let p = preview_bytes(&long);
        assert!(p.ends_with("… (100 bytes)"), "{p}");
    }

    #[test]
    fn decode_error_names_everything() {
        let e = DecodeError::new("user:1", Some("age"), "u8", Some(b"300"));
        assert_eq!(
            e.to_string(),
            r#"cannot decode `user:1` field `age`: expected u8, found "300""#
        );
        let e = DecodeError::new("user:1", Some("name"), "UTF-8 string", None);
        assert!(e.to_string().ends_with("but the field is absent"));
    }
}
