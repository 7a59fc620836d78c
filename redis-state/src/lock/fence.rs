//! The resource side of fencing tokens.
//!
//! A lock holder can lose its lock without knowing it (a pause longer than
//! the TTL). The fix (Kleppmann, "How to do distributed locking") is on the
//! resource: every write carries the writer's fencing token
//! ([`LockGuard::fence`](super::LockGuard::fence)), and the resource refuses
//! a token smaller than the largest it has accepted. Then a holder that lost
//! its lock to a newer holder cannot overwrite the newer holder's work.
//!
//! For data in Redis, [`fenced_set`] does this in one script: it keeps the
//! largest accepted token beside the value and compares before writing. For
//! a resource elsewhere (a database row, a file), store the token with the
//! data and compare in the same transaction as the write.
//!
//! ```no_run
//! use redis_state::lock::{Lock, fence::fenced_set};
//! # use redis_state::prelude::*;
//! # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
//! let guard = Lock::new("report").acquire(con)?;
//! // ... work ...
//! if !fenced_set("report:latest", guard.fence(), b"v2").run(con)? {
//!     // a newer holder wrote first: this holder lost the lock
//! }
//! # Ok(()) }
//! ```

use crate::error::Result;
use crate::keys::beside;

crate::script! {
    /// Writes `value` at `resource` if `token` is at least the largest token
    /// `fence` has recorded, and records it. The output is `(written,
    /// token)`: `(true, token)`, or `(false, largest token seen)`.
    pub struct FencedSet {
        name: "redis_state.lock.fenced_set",
        keys: [resource, fence],
        args: [token: u64, value: &[u8]],
        returns: (bool, u64),
        lua: include_str!("lua/fenced_set.lua"),
    }
}

/// The key that records the largest token accepted for `resource`: in the
/// same Cluster slot as `resource`, and different for every resource:
///
/// | `resource` | fence key |
/// |---|---|
/// | with a hash tag: `account:{42}:balance` | `account:{42}:balance:#fence` |
/// | without one: `report:latest` | `{report:latest}#fence` |
/// | without one, but with a `}` (or empty): `a}b` | `{<n>}%a%7Db#fence` |
///
/// In the last form `<n>` is the smallest decimal number in the slot of
/// `resource` (a hash tag cannot hold a `}`), and the resource follows it
/// escaped like every user value in a key. The three forms differ in what
/// follows the first `}` or precedes `#fence`, so two resources never share
/// a fence key.
pub fn fence_key_for(resource: &str) -> String {
    beside(resource, ":#fence", "#fence")
}

/// Sets `resource` to `value` if `token` is not smaller than any token
/// accepted for it before (kept at [`fence_key_for`]`(resource)`); the
/// output says whether it was written. One `EVALSHA` (`GET`, compare, two
/// `SET`s), one round trip. Like `SET`, the write removes any TTL
/// `resource` had; the fence key has none.
pub fn fenced_set(resource: &str, token: u64, value: &[u8]) -> FencedWrite {
    FencedWrite {
        inner: FencedSet::new(resource, fence_key_for(resource), token, value),
    }
}

/// See [`fenced_set`].
#[derive(Debug, Clone)]
#[must_use = "an operation does nothing until it is run"]
pub struct FencedWrite {
    inner: FencedSet,
}

impl FencedWrite {
    /// Runs the write in namespace `ns` (both keys get the prefix).
    pub fn namespace(mut self, ns: &crate::Namespace) -> Self {
        self.inner = self.inner.namespace(ns);
        self
    }
}

impl crate::Operation for FencedWrite {
    type Output = bool;
    fn prepare(&mut self, plan: &mut crate::op::Plan) -> Result<()> {
        self.inner.prepare(plan)
    }
    fn complete(&mut self, replies: &mut crate::op::Replies) -> Result<crate::op::Step<bool>> {
        Ok(match self.inner.complete(replies)? {
            crate::op::Step::Done((written, _)) => crate::op::Step::Done(written),
            crate::op::Step::Again => crate::op::Step::Again,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::key_slot;

    #[test]
    fn fence_keys() {
        assert_eq!(fence_key_for("a:{b}:c"), "a:{b}:c:#fence");
        assert_eq!(fence_key_for("{a}"), "{a}:#fence");
        assert_eq!(fence_key_for("a"), "{a}#fence");
        assert_eq!(fence_key_for("a{"), "{a{}#fence");
        let odd = fence_key_for("a}b");
        assert!(odd.ends_with("}%a%7Db#fence"), "{odd}");
        for r in ["a}b", "", "}", "{}", "{}}"] {
            let f = fence_key_for(r);
            assert_eq!(
                key_slot(f.as_bytes()),
                key_slot(r.as_bytes()),
                "{r:?} -> {f:?}"
            );
        }
    }
}
