//! Observability of every operation run, in one place: the executors'
//! [`rounds`](crate::op) loop, which both the blocking and the async side
//! go through.
//!
//! * Feature `tracing`: one span per operation run, `redis_state.operation`
//!   at `DEBUG` level, target `redis_state::op`, with the fields
//!   `operation` (the operation's type, paths dropped:
//!   `Save<User>`), `commands` (commands sent, all round trips together),
//!   `round_trips` and `outcome` (`ok`, or the error's kind).
//! * Feature `metrics`: through the `metrics` facade,
//!   `redis_state_operation_seconds` (histogram, label `operation`),
//!   `redis_state_operations_total` (counter, labels `operation`,
//!   `outcome`) and `redis_state_operation_errors_total` (counter, labels
//!   `operation`, `kind`).
//!
//! With both features off, this module holds nothing and the loop counts
//! nothing: the operation's cost is what it was.

use crate::error::Error;

/// A short, stable name for an error, as a metrics label or span field.
pub fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Redis(r) if r.is_timeout() => "timeout",
        Error::Redis(r) if r.is_connection_dropped() || r.is_connection_refusal() => "connection",
        Error::Redis(_) => "redis",
        Error::Server { .. } => "server",
        Error::NoReply { .. } => "no_reply",
        Error::Decode(_) => "decode",
        Error::Encode { .. } => "encode",
        Error::AlreadyExists { .. } => "already_exists",
        Error::NotFound { .. } => "not_found",
        Error::UniqueViolation { .. } => "unique_violation",
        Error::VersionConflict { .. } => "version_conflict",
        Error::CrossSlot { .. } => "cross_slot",
        Error::UnexpectedReply { .. } => "unexpected_reply",
        Error::LockTimeout { .. } => "lock_timeout",
        Error::TransactionConflict { .. } => "transaction_conflict",
        Error::InvalidConfig { .. } | Error::InvalidArgument { .. } => "invalid_argument",
        Error::User(_) => "user",
        _ => "other",
    }
}

/// `redis_state::hash::ops::Save<'_, app::User>` → `Save<User>`: every
/// path dropped, lifetimes too. Computed once per type and kept: each
/// thread asks its own copy of the table first, so operations on many
/// threads never meet on a lock (the shared table is only read when a
/// thread sees a type for the first time).
#[cfg(any(feature = "tracing", feature = "metrics"))]
pub(crate) fn short_name(full: &'static str) -> &'static str {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static SEEN: RefCell<HashMap<&'static str, &'static str>> = RefCell::new(HashMap::new());
    }
    SEEN.with(|seen| {
        if let Some(name) = seen.borrow().get(full) {
            return *name;
        }
        let name = interned_short_name(full);
        seen.borrow_mut().insert(full, name);
        name
    })
}

/// The shared table behind [`short_name`]: one leaked string per type.
#[cfg(any(feature = "tracing", feature = "metrics"))]
fn interned_short_name(full: &'static str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    let mut names = match names.lock() {
        Ok(n) => n,
        Err(poisoned) => poisoned.into_inner(),
    };
    names.entry(full).or_insert_with(|| {
        let mut out = String::with_capacity(full.len());
        let mut token = String::new();
        // After a dropped lifetime, its `, ` goes too.
        let mut after_lifetime = false;
        let mut chars = full.chars().peekable();
        while let Some(c) = chars.next() {
            if c == ':' && chars.peek() == Some(&':') {
                chars.next();
                token.clear();
            } else if c.is_alphanumeric() || c == '_' || c == '\'' {
                token.push(c);
            } else {
                if token.starts_with('\'') {
                    after_lifetime = true;
                } else {
                    out.push_str(&token);
                }
                token.clear();
                if after_lifetime && (c == ',' || c == ' ') {
                    after_lifetime = c == ',';
                    continue;
                }
                after_lifetime = false;
                out.push(c);
            }
        }
        if !token.starts_with('\'') {
            out.push_str(&token);
        }
        Box::leak(out.into_boxed_str())
    })
}

/// One operation being run: started before its first round, finished with
/// its result.
#[cfg(any(feature = "tracing", feature = "metrics"))]
pub(crate) struct Run {
    name: &'static str,
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
    pub(crate) commands: usize,
    pub(crate) round_trips: usize,
}

#[cfg(any(feature = "tracing", feature = "metrics"))]
impl Run {
    pub(crate) fn start<O>() -> Run {
        let name = short_name(std::any::type_name::<O>());
        Run {
            name,
            #[cfg(feature = "tracing")]
            span: tracing::debug_span!(
                target: "redis_state::op",
                "redis_state.operation",
                operation = name,
                commands = tracing::field::Empty,
                round_trips = tracing::field::Empty,
                outcome = tracing::field::Empty,
            ),
            #[cfg(feature = "metrics")]
            started: std::time::Instant::now(),
            commands: 0,
            round_trips: 0,
        }
    }

    /// The span to enter around the operation's rounds.
    #[cfg(feature = "tracing")]
    pub(crate) fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    pub(crate) fn finish<T>(self, result: &crate::Result<T>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => error_kind(e),
        };
        #[cfg(feature = "tracing")]
        {
            self.span.record("commands", self.commands);
            self.span.record("round_trips", self.round_trips);
            self.span.record("outcome", outcome);
        }
        #[cfg(feature = "metrics")]
        {
            let secs = self.started.elapsed().as_secs_f64();
            metrics::histogram!("redis_state_operation_seconds", "operation" => self.name)
                .record(secs);
            metrics::counter!(
                "redis_state_operations_total",
                "operation" => self.name,
                "outcome" => if result.is_ok() { "ok" } else { "error" },
            )
            .increment(1);
            if result.is_err() {
                metrics::counter!(
                    "redis_state_operation_errors_total",
                    "operation" => self.name,
                    "kind" => outcome,
                )
                .increment(1);
            }
        }
        let _ = (self.name, outcome);
    }
}

#[cfg(all(test, any(feature = "tracing", feature = "metrics")))]
mod tests {
    use super::short_name;

    #[test]
    fn names_lose_their_paths() {
        assert_eq!(
            short_name("redis_state::hash::ops::Save<'_, app::User>"),
            "Save<User>"
        );
        assert_eq!(
            short_name(
                "redis_state::op::Batch<(redis_state::op::Child<a::B>, redis_state::op::Child<c::D<e::F>>)>"
            ),
            "Batch<(Child<B>, Child<D<F>>)>"
        );
        assert_eq!(short_name("u64"), "u64");
    }
}
