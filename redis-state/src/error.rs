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
    /// The connection or the server failed (I/O error, dropped connection,
    /// server error reply such as `OOM` or `WRONGTYPE`).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),

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
    #[error("{0}")]
    User(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

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
}

impl Error {
    /// Wraps any error raised by user code.
    pub fn user(err: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Error::User(err.into())
    }

    /// True when the failure is in the transport (connection dropped, I/O
    /// error, timeout), which is when retrying on a fresh connection can help.
    pub fn is_connection_error(&self) -> bool {
        match self {
            Error::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
            }
            _ => false,
        }
    }

    pub(crate) fn unexpected(context: &'static str, found: &redis::Value) -> Self {
        Error::UnexpectedReply {
            context,
            found: preview_value(found),
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
