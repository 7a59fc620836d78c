//! The operations of [`Leaderboard`] models and their [`Board`]s: shared
//! reply helpers and decoding here, writes in `write`, reads in `read`, the
//! board's methods in `board`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::Value;

use super::score::{MemberRef, ScoreValue, f64_text, write_f64};
use super::{
    Aggregate, Board, BoardKeys, DataReader, DataWriter, Entry, FamilyBoard, Leaderboard,
    LeaderboardSchema, RankMode, ScanItem, Standing, Submitted, Target, UpdatePolicy,
    WindowStanding,
};
use crate::codec::FieldValue;
use crate::error::{DecodeError, Error, Result, preview_bytes};
use crate::keys::{IdBuf, Namespace, impl_namespaced, namespaced};
use crate::op::{Operation, Plan, Replies, Step};
use crate::reply::{bytes_of, num_of};

// Every script is `base.lua` (configuration, ranks) with the layers it uses
// (`common`: more read helpers; `write`: write helpers) and its own body:
// every local function of a script is created anew on each call, so each
// takes only what it needs. Keys and arguments vary with the model (its
// windows, its data key, the schema's header), so calls go through
// `Plan::script(X::script(), &keys)` and write their arguments there.

crate::script! {
    /// Submits scores (with the update policy, tie-break, cap and member data) to a board and its windows.
    #[allow(dead_code, reason = "called through `Plan::script` with the arguments the schema writes")]
    struct SubmitScript {
        name: "redis_state.leaderboard.submit",
        keys: [..keys],
        args: [..args],
        returns: Value,
        lua: concat!(
            include_str!("../lua/base.lua"),
            include_str!("../lua/common.lua"),
            include_str!("../lua/write.lua"),
            include_str!("../lua/submit.lua"),
        ),
    }
}

crate::script! {
    /// Removes members, with their data, from a board and its windows.
    #[allow(dead_code, reason = "called through `Plan::script` with the arguments the schema writes")]
    struct RemoveScript {
        name: "redis_state.leaderboard.remove",
        keys: [..keys],
        args: [..args],
        returns: Value,
        lua: concat!(
            include_str!("../lua/base.lua"),
            include_str!("../lua/common.lua"),
            include_str!("../lua/write.lua"),
            include_str!("../lua/remove.lua"),
        ),
    }
}

crate::script! {
    /// Merges boards into a destination board.
    #[allow(dead_code, reason = "called through `Plan::script` with the arguments the schema writes")]
    struct MergeScript {
        name: "redis_state.leaderboard.merge",
        keys: [..keys],
        args: [..args],
        returns: Value,
        lua: concat!(
            include_str!("../lua/base.lua"),
            include_str!("../lua/common.lua"),
            include_str!("../lua/write.lua"),
            include_str!("../lua/merge.lua"),
        ),
    }
}

crate::script! {
    /// Reads members' scores and ranks atomically.
    #[allow(dead_code, reason = "called through `Plan::script` with the arguments the schema writes")]
    struct StandingScript {
        name: "redis_state.leaderboard.standing",
        keys: [..keys],
        args: [..args],
        returns: Value,
        lua: concat!(
            include_str!("../lua/base.lua"),
            include_str!("../lua/common.lua"),
            include_str!("../lua/standing.lua"),
        ),
    }
}

crate::script! {
    /// One `ZSCAN` step with the members' data.
    #[allow(dead_code, reason = "called through `Plan::script` with the arguments the schema writes")]
    struct ScanScript {
        name: "redis_state.leaderboard.scan",
        keys: [..keys],
        args: [..args],
        returns: Value,
        lua: concat!(
            include_str!("../lua/base.lua"),
            include_str!("../lua/common.lua"),
            include_str!("../lua/scan.lua"),
        ),
    }
}

crate::script! {
    /// Reads a slice of a board (by rank, around a member, by score).
    #[allow(dead_code, reason = "called through `Plan::script` with the arguments the schema writes")]
    struct ReadScript {
        name: "redis_state.leaderboard.read",
        keys: [..keys],
        args: [..args],
        returns: Value,
        lua: concat!(
            include_str!("../lua/base.lua"),
            include_str!("../lua/read.lua"),
        ),
    }
}

crate::script! {
    /// A member's rank in the model's rank mode.
    #[allow(dead_code, reason = "called through `Plan::script` with the arguments the schema writes")]
    struct RankScript {
        name: "redis_state.leaderboard.rank",
        keys: [..keys],
        args: [..args],
        returns: Value,
        lua: concat!(
            include_str!("../lua/base.lua"),
            include_str!("../lua/rank.lua"),
        ),
    }
}

/// Entries per variadic `ZADD` or script call of a bulk submit.
const CHUNK: usize = 1000;

// ---------------------------------------------------------------------------
// Reply helpers

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => std::str::from_utf8(bytes_of(other)?).ok()?.parse().ok(),
    }
}

fn array(v: Value, context: &'static str) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) => Ok(items),
        other => Err(Error::unexpected(context, &other)),
    }
}

/// Member/score pairs of `ZRANGE .. WITHSCORES`: flat in RESP2, nested in RESP3.
fn pairs(v: Value, context: &'static str) -> Result<Vec<(Value, Value)>> {
    crate::reply::score_pairs(array(v, context)?, context)
}

fn encode_member<M: Leaderboard, Q: MemberRef<M::Member> + ?Sized>(member: &Q) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    member
        .encode_member(&mut out)
        .map_err(|message| Error::Encode {
            model: M::SCHEMA.model,
            field: "member",
            message,
        })?;
    Ok(out)
}

/// Decodes what boards hold into typed values, naming the key in errors.
struct Decoder<'a, M: Leaderboard> {
    schema: &'static LeaderboardSchema,
    board: &'a M::BoardId,
    key: &'a str,
    data_key: Option<&'a str>,
}

impl<'a, M: Leaderboard> Decoder<'a, M> {
    fn new(board: &'a M::BoardId, keys: &'a BoardKeys) -> Self {
        Decoder {
            schema: M::SCHEMA,
            board,
            key: &keys.board,
            data_key: keys.data.as_deref(),
        }
    }

    fn member(&self, raw: &[u8]) -> Result<M::Member> {
        <M::Member as FieldValue>::decode(raw).map_err(|e| {
            let mut d = DecodeError::new(
                self.key,
                Some("member"),
                <M::Member as FieldValue>::EXPECTED,
                Some(raw),
            );
            d.detail = e.detail;
            d.into()
        })
    }

    fn stored(&self, member: &[u8], v: &Value) -> Result<f64> {
        num_of(v).ok_or_else(|| {
            DecodeError::new(
                self.key,
                Some(&format!("score of {}", preview_bytes(member))),
                "a sorted-set score",
                Some(crate::error::preview_value(v).as_bytes()),
            )
            .into()
        })
    }

    fn score(&self, member: &[u8], stored: f64) -> Result<(M::Score, Option<DateTime<Utc>>)> {
        self.schema.decode_score::<M::Score>(stored).ok_or_else(|| {
            DecodeError::new(
                self.key,
                Some(&format!("score of {}", preview_bytes(member))),
                <M::Score as ScoreValue>::EXPECTED,
                Some(f64_text(stored).as_bytes()),
            )
            .with_detail("no value of the score type equals the stored score")
            .into()
        })
    }

    /// The entry as the struct, from its data (if the read asked for it).
    fn record(
        &self,
        member_raw: &[u8],
        member: &M::Member,
        score: M::Score,
        data: Option<&Value>,
        with_data: bool,
    ) -> Result<Option<M>> {
        if !self.schema.has_data() {
            return M::assemble(self.board, member.clone(), score, None);
        }
        if !with_data {
            return Ok(None);
        }
        match data.and_then(bytes_of) {
            None => Ok(None),
            Some(raw) => {
                let mut reader =
                    DataReader::parse(raw, self.data_key.unwrap_or(self.key), member_raw)?;
                M::assemble(self.board, member.clone(), score, Some(&mut reader))
            }
        }
    }

    fn entry(
        &self,
        member_raw: &Value,
        stored: &Value,
        data: Option<&Value>,
        rank: &mut Walk,
        with_data: bool,
    ) -> Result<Entry<M>> {
        let raw =
            bytes_of(member_raw).ok_or_else(|| Error::unexpected("a board read", member_raw))?;
        let stored = self.stored(raw, stored)?;
        // Ranked before decoding, so an entry that fails to decode (and is
        // skipped) still holds its place.
        let rank = rank.next(self.schema.band(stored));
        let member = self.member(raw)?;
        let (score, achieved_at) = self.score(raw, stored)?;
        let data = self.record(raw, &member, score, data, with_data)?;
        Ok(Entry {
            rank,
            member,
            score,
            achieved_at,
            data,
        })
    }
}

/// Collects the entries of a page read: an entry that does not decode (a
/// member, score or member data another writer left in a form the model
/// cannot read) is skipped with a warning naming the key and the member,
/// so that one bad member does not hide the whole page; with `strict` it
/// fails the read instead. Errors that are not about the data (an
/// unexpected reply) always fail it.
fn gather<T>(
    strict: bool,
    key: &str,
    items: impl Iterator<Item = (Value, Result<T>)>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for (member, entry) in items {
        match entry {
            Ok(e) => out.push(e),
            Err(Error::Decode(e)) if !strict => log::warn!(
                target: "redis_state::leaderboard",
                "skipping member {} of `{key}` in a page read: {e}",
                crate::error::preview_value(&member)
            ),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Ranks consecutive entries from the rank of the first one.
struct Walk {
    mode: RankMode,
    pos: u64,
    rank: u64,
    band: Option<f64>,
}

impl Walk {
    fn new(mode: RankMode, pos: u64, first_rank: u64) -> Self {
        Walk {
            mode,
            pos,
            rank: first_rank,
            band: None,
        }
    }

    fn next(&mut self, band: f64) -> u64 {
        let rank = match (self.band, self.mode) {
            (None, _) => self.rank,
            (_, RankMode::Ordinal) => self.pos + 1,
            (Some(prev), _) if prev == band => self.rank,
            (_, RankMode::Competition) => self.pos + 1,
            (_, RankMode::Dense) => self.rank + 1,
        };
        self.band = Some(band);
        self.rank = rank;
        self.pos += 1;
        rank
    }
}

/// Takes an encoded member out of an operation (it is used once per run).
fn take_member(m: &mut Result<Vec<u8>, Option<Error>>) -> Result<Vec<u8>> {
    match m {
        Ok(v) => Ok(v.clone()),
        Err(e) => Err(e.take().unwrap_or_else(|| Error::UnexpectedReply {
            context: "a leaderboard operation",
            found: "an operation run twice after a failed member encoding".to_owned(),
        })),
    }
}

fn member_text(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

macro_rules! board_op {
    ($($ty:ident),*) => {$(
        impl<M: Leaderboard> $ty<M> {
            /// Runs the operation in namespace `ns` (prefixes every key it touches).
            pub fn namespace(mut self, ns: &Namespace) -> Self {
                self.board = self.board.namespace(ns);
                self
            }
        }

        impl_namespaced!([M: Leaderboard] $ty<M>);

        impl<M: Leaderboard> std::fmt::Debug for $ty<M> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("board", &self.board)
                    .finish_non_exhaustive()
            }
        }
    )*};
}

// The submodules come after the macros they use (`board_op!`).
mod board;
mod read;
mod write;

use self::read::Pages;
pub use self::read::{
    Around, Count, Entries, EntryOf, Percentile, RankOf, ScanIter, ScanPage, ScanPageOf, ScoreOf,
    Slice, StandingOf,
};
pub use self::write::{BulkSubmitted, Clear, Increment, Merge, Remove, Submit, SubmitMany};
