//! `#[derive(Leaderboard)]`: ranked boards on Redis sorted sets.
//!
//! The derive declares a board on a struct: one value of the struct is one
//! entry (the board it goes on, the member, the score, and optional member
//! data). It generates the schema and the field code; everything else lives
//! here, generic over [`Leaderboard`] (DESIGN principle 2). The guide chapter
//! `docs/04-leaderboards.md` walks through a game with daily and all-time
//! boards.
//!
//! ```no_run
//! use redis_state::prelude::*;
//!
//! #[derive(Leaderboard, Debug, Clone)]
//! #[leaderboard(
//!     key = "{{lb:{game}}}",
//!     update = "keep_best",
//!     rank = "competition",
//!     tie_break = "earlier",
//!     max_score = 1_000_000,
//!     windows(daily = "7d"),
//! )]
//! struct Run {
//!     game: String,
//!     #[leaderboard(member)]
//!     player: String,
//!     #[leaderboard(score)]
//!     points: u32,
//!     /// Member data: kept beside the board.
//!     country: String,
//! }
//!
//! # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
//! let run = Run { game: "chess".into(), player: "ada".into(), points: 1200, country: "UK".into() };
//! let done = run.submit().run(con)?; // one script: policy, windows, data, rank
//! println!("#{:?} with {:?}", done.rank, done.score);
//! let board = Run::board("chess");
//! for e in board.top(10).run(con)? {
//!     println!("{}. {} {}", e.rank, e.member, e.score);
//! }
//! let today = board.daily().around("ada", 2).run(con)?;
//! # Ok(()) }
//! ```
//!
//! # Attributes
//!
//! On the struct, `#[leaderboard(...)]`:
//!
//! | attribute | meaning |
//! |---|---|
//! | `key = "lb:{{{game}}}"` | board key template; `{field}` names a *board field* (any field may be one), `{{`/`}}` are literal braces (a Cluster hash tag). Each placeholder is a whole segment, set off by `:` or the tag's braces. Default: `"{{<snake_case name>}}"` |
//! | `hash_tag = "game"` | wraps the `{game}` placeholder in a hash tag |
//! | `namespace = "app"` | static key prefix; an operation's `.namespace(..)` replaces it |
//! | `order = "high_first"` / `"low_first"` | which end of the board ranks first (default `high_first`) |
//! | `update = "replace"` / `"keep_best"` / `"add"` | what a submit does to an existing score (default `replace`) |
//! | `rank = "ordinal"` / `"competition"` / `"dense"` | ranks of equal scores: 1-2-3-4, 1-2-2-4, 1-2-2-3 (default `ordinal`) |
//! | `tie_break = "earlier"` / `"later"` | equal scores rank by achievement time, encoded in the stored score (see below) |
//! | `max_score = 1_000_000` | with `tie_break`: the largest score magnitude (required for scores wider than 16 bits) |
//! | `decimals = 2` | with `tie_break` on a float score: decimal places kept (default 0) |
//! | `tie_resolution = "1s"` | with `tie_break`: the time unit (default `"1s"`) |
//! | `tie_epoch = "2025-01-01"` | with `tie_break`: the first instant it encodes (UTC; default 2025-01-01) |
//! | `windows(daily = "7d", weekly, monthly = "90d")` | time-window boards kept beside the all-time board; the value is how long a board is kept after its period ends (default: one period) |
//! | `cap = 1000` | each board keeps only its best `cap` members |
//! | `rename_all = "camelCase"` | JSON keys of the member data fields |
//! | `crate = "path"` | where `redis_state` is |
//!
//! On fields: `member` (exactly one; the sorted-set member, any type with a
//! plain string form: [`MemberValue`]), `score` (exactly one; any integer or
//! float type: [`ScoreValue`]). Fields named in the key template are the
//! board's coordinates. Every other field is *member data* (any serde type),
//! with `rename = "..."`, `skip`, `default`.
//!
//! # What is stored
//!
//! With `key = "{{lb:{game}}}"` and `game = "chess"`:
//!
//! | key | type | content |
//! |---|---|---|
//! | `{lb:chess}` | ZSET | the all-time board: member → stored score |
//! | `{lb:chess}:#data` | HASH | member → member data as a JSON object (models with member data) |
//! | `{lb:chess}:#dense` | ZSET | one entry per distinct score (`rank = "dense"`) |
//! | `{lb:chess}:#d:2026-11-21` | ZSET | the daily board of that UTC day (and its own `:#data`, `:#dense`) |
//! | `{lb:chess}:#w:2026-W47` | ZSET | the weekly board of that ISO week |
//! | `{lb:chess}:#m:2026-11` | ZSET | the monthly board of that month |
//!
//! Every board is a plain sorted set: `ZREVRANGE {lb:chess} 0 9 WITHSCORES`
//! in `redis-cli` lists the top ten (`ZRANGE` for `low_first` boards). The
//! stored score is the real score, except on boards with a tie-break (below).
//! Window boards expire a set time after their period ends (`PEXPIREAT`,
//! applied by every write). Because one script updates all the keys of a
//! family, they must share a Cluster hash slot: the derive refuses windows,
//! member data or dense ranking on a key template without a hash tag.
//!
//! Member data is per board: each board keeps the data of the submit that set
//! its current score (under `keep_best`, a worse run does not overwrite the
//! data of the best one), and loses it with the member (remove, cap, expiry).
//! Unknown JSON keys are ignored; a data field added to the struct later reads
//! as a decode error for entries written before it, unless it is an `Option`
//! or has `default`.
//!
//! # Ranks
//!
//! Ranks start at 1. `ordinal` ranks are positions; equal scores are ordered
//! by the tie-break when there is one, otherwise the way Redis orders them
//! (by member bytes, descending on `high_first` boards as `ZREVRANGE` does).
//! `competition` gives equal scores the rank of the first of them, `dense`
//! gives them consecutive ranks. All three are computed on the server in
//! O(log N): competition with `ZCOUNT` over the scores better than the
//! member's, dense with `ZCOUNT` on the `#dense` set of distinct scores, which
//! every write keeps in step. (Counting distinct scores on the board itself
//! would cost O(rank) per lookup, which blocks the server for members deep in
//! a large board.) Under a tie-break, "equal" means equal real scores.
//!
//! # Tie-break by time, and its precision limits
//!
//! `tie_break = "earlier"` makes the earlier achiever of an equal score rank
//! higher, in one sorted set: the stored score is `S * 2^T + tie`, where `S`
//! is the score times `10^decimals`, and `tie` is the achievement time in
//! `tie_resolution` units since `tie_epoch`, reversed so that earlier sorts
//! first. A double holds integers exactly up to 2^53, so `S` and the time share
//! 53 bits: `max_score` takes `ceil(log2(max_score * 10^decimals + 1))` bits
//! and the time gets the rest, `T`. With `max_score = 1_000_000` (20 bits) the
//! time has 33 bits: 272 years of seconds, or 99 days of milliseconds. The
//! derive refuses settings that cover less than a year. At run time a score
//! above `max_score`, with more decimals than `decimals`, not finite, or an
//! achievement time before `tie_epoch` or past the horizon is refused with
//! [`Error::ScoreNotEncodable`] before
//! anything is written; an `add` that would leave the range is refused by the
//! script and writes nothing. Two achievements in the same `tie_resolution`
//! unit tie, and then Redis orders them by member.
//!
//! In `redis-cli` the stored score of such a board is that encoded number:
//! with `T = 33`, a score of 1200 reached 5 s after the epoch shows as
//! `1200 * 2^33 + (2^33 - 1 - 5)`. The real score is `floor(stored / 2^T) /
//! 10^decimals`; `T` is [`TieBreak::time_bits`] of [`Leaderboard::SCHEMA`],
//! and [`LeaderboardSchema::decode_stored`] does the arithmetic.
//!
//! # Time
//!
//! Windows are UTC periods (a day from 00:00 UTC, ISO weeks from Monday 00:00
//! UTC, months from the 1st) and the tie-break time is UTC too. The instant of
//! an operation is the client's clock when the operation is prepared, or the
//! instant given with `.at(..)`: tests and imports pass their own, so a test
//! of a window rolling over does not wait a day. Keep application servers'
//! clocks synchronised (NTP): the tie-break compares their clocks.
//!
//! # The seed functions, typed
//!
//! | hand-written redis-py | here |
//! |---|---|
//! | `update_score(lb, user, score)`: `ZADD` | `entry.submit()` (policy `replace`), or `keep_best` / `add` |
//! | `get_leaderboard(lb, start, end)`: `ZREVRANGE .. WITHSCORES` | [`Board::top`], [`Board::page`], [`Board::slice`] |
//! | `get_user_rank(lb, user)`: `ZREVRANK`, -1 when absent | [`Board::rank`]: `Option<u64>`, 1-based, in the rank mode |
//! | `get_user_score(lb, user)`: `ZSCORE`, 0.0 when absent | [`Board::score`]: `Option<Score>`, typed |
//! | `get_score_range(lb, min, max)`: `ZRANGEBYSCORE` | [`Board::between`]: ranked entries, best first |

mod data;
mod ops;
mod period;
mod score;

use std::marker::PhantomData;
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use self::data::{DataReader, DataWriter};
pub use self::ops::{
    Around, BulkSubmitted, Clear, Count, Entries, EntryOf, Increment, Merge, Percentile, RankOf,
    Remove, ScanIter, ScanPage, ScanPageOf, ScoreOf, Slice, StandingOf, Submit, SubmitMany,
};
pub use self::period::{Period, Window};
pub use self::score::{MemberRef, MemberValue, ScoreValue, TieBreak, TieWinner};
use crate::error::{Error, Result};
use crate::keys::{IdBuf, IdValue, KeyTemplate, Namespace};

/// Which end of a board ranks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Order {
    /// Highest score first (points).
    HighFirst,
    /// Lowest score first (times, golf).
    LowFirst,
}

/// What a submit does to a member that already has a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdatePolicy {
    /// The new score replaces the old one.
    Replace,
    /// The new score replaces the old one only if it is better.
    KeepBest,
    /// The new score is added to the old one.
    Add,
}

/// How equal scores are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RankMode {
    /// 1-2-3-4: positions.
    Ordinal,
    /// 1-2-2-3: equal scores share a rank, the next score takes the next rank.
    Dense,
    /// 1-2-2-4: equal scores share a rank, the next score skips as many.
    Competition,
}

/// A time window declared on a model, with how long its boards are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowSpec {
    /// The window.
    pub window: Window,
    /// How long a board is kept after its period ends, in milliseconds.
    pub keep_ms: u64,
}

impl WindowSpec {
    /// The positional form, from before the named one (`of` and the
    /// `with_*` setters) that the derive writes.
    #[doc(hidden)]
    pub const fn new(window: Window, keep_ms: u64) -> Self {
        WindowSpec { window, keep_ms }
    }

    /// Named construction, as the derive writes it:
    /// `WindowSpec::of(Window::Daily).with_keep_ms(604_800_000)`. Unset,
    /// boards are kept for no time after their period.
    #[doc(hidden)]
    pub const fn of(window: Window) -> Self {
        WindowSpec { window, keep_ms: 0 }
    }
}

crate::setters::const_setters!(WindowSpec {
    with_keep_ms(keep_ms: u64);
});

/// Everything the runtime knows about a board model, generated by the derive.
#[derive(Debug)]
#[non_exhaustive]
pub struct LeaderboardSchema {
    /// The Rust type name.
    pub model: &'static str,
    /// The board key template (over the board fields).
    pub key: KeyTemplate,
    /// Which end ranks first.
    pub order: Order,
    /// What a submit does to an existing score.
    pub update: UpdatePolicy,
    /// How equal scores are ranked.
    pub rank: RankMode,
    /// The tie-break by time, if any.
    pub tie_break: Option<TieBreak>,
    /// The time windows kept beside the all-time board.
    pub windows: &'static [WindowSpec],
    /// The most members a board keeps.
    pub cap: Option<u64>,
    /// The JSON keys of the member data fields (empty: no member data).
    pub data: &'static [&'static str],
}

/// Named construction, as the derive writes it:
/// `LeaderboardSchema::of("Run").with_key(..).with_order(Order::HighFirst)...`.
/// Unset values: the key template has no segments, `HighFirst`, `Replace`,
/// `Ordinal`, no tie-break, no windows, no cap, no member data.
impl LeaderboardSchema {
    /// The schema of the board model named `model`.
    #[doc(hidden)]
    pub const fn of(model: &'static str) -> Self {
        LeaderboardSchema {
            model,
            key: KeyTemplate::EMPTY,
            order: Order::HighFirst,
            update: UpdatePolicy::Replace,
            rank: RankMode::Ordinal,
            tie_break: None,
            windows: &[],
            cap: None,
            data: &[],
        }
    }
}

crate::setters::const_setters!(LeaderboardSchema {
    with_key(key: KeyTemplate);
    with_order(order: Order);
    with_update(update: UpdatePolicy);
    with_rank(rank: RankMode);
    with_tie_break(tie_break: TieBreak) => Some;
    with_windows(windows: &'static [WindowSpec]);
    with_cap(cap: u64) => Some;
    with_data(data: &'static [&'static str]);
});

impl LeaderboardSchema {
    /// The positional form, from before the named one (`of` and the
    /// `with_*` setters) that the derive writes.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        model: &'static str,
        key: KeyTemplate,
        order: Order,
        update: UpdatePolicy,
        rank: RankMode,
        tie_break: Option<TieBreak>,
        windows: &'static [WindowSpec],
        cap: Option<u64>,
        data: &'static [&'static str],
    ) -> Self {
        LeaderboardSchema {
            model,
            key,
            order,
            update,
            rank,
            tie_break,
            windows,
            cap,
            data,
        }
    }

    /// The key of one board of the family with board id `id`.
    pub fn board_key(&self, ns: Option<&Namespace>, id: &IdBuf, period: Period) -> String {
        let mut key = self.key.render(ns, id);
        key.push_str(&period.key_suffix());
        key
    }

    /// Splits a stored score into the real score and, on boards with a
    /// tie-break, the achievement time (rounded down to the resolution).
    pub fn decode_stored(&self, stored: f64) -> (f64, Option<DateTime<Utc>>) {
        match &self.tie_break {
            None => (stored, None),
            Some(t) => {
                let (real, at) = t.decode(stored, self.tie_reversed());
                (real, DateTime::from_timestamp_millis(at))
            }
        }
    }

    pub(crate) fn has_data(&self) -> bool {
        !self.data.is_empty()
    }

    pub(crate) fn dense(&self) -> bool {
        self.rank == RankMode::Dense
    }

    /// True when a board is one key (no data hash, no dense set).
    pub(crate) fn single_key(&self) -> bool {
        !self.has_data() && !self.dense()
    }

    pub(crate) fn high(&self) -> bool {
        self.order == Order::HighFirst
    }

    /// The tie is `2^T - 1 - t` (rather than `t`) when an earlier time must
    /// sort first on a high-first board or last on a low-first one.
    pub(crate) fn tie_reversed(&self) -> bool {
        match &self.tie_break {
            Some(t) => (t.winner == TieWinner::Earlier) == self.high(),
            None => false,
        }
    }

    pub(crate) fn window(&self, w: Window) -> Option<&WindowSpec> {
        self.windows.iter().find(|s| s.window == w)
    }

    /// The keys of one board, from its full board key.
    pub(crate) fn keys(&self, board: String) -> BoardKeys {
        let data = self.has_data().then(|| format!("{board}:#data"));
        let dense = self.dense().then(|| format!("{board}:#dense"));
        BoardKeys { board, data, dense }
    }

    /// The boards a write touches at `at`: the all-time board, then the
    /// current period of every window (with its expiry time).
    pub(crate) fn family(&self, base: &str, at: DateTime<Utc>) -> Vec<FamilyBoard> {
        let mut out = Vec::with_capacity(1 + self.windows.len());
        out.push(FamilyBoard {
            period: Period::AllTime,
            keys: self.keys(base.to_owned()),
            expire_at: None,
        });
        for spec in self.windows {
            let period = Period::of(spec.window, at);
            let end = period.end().map_or(i64::MAX, |e| e.timestamp_millis());
            out.push(FamilyBoard {
                period,
                keys: self.keys(format!("{base}{}", period.key_suffix())),
                expire_at: Some(end.saturating_add(spec.keep_ms.min(i64::MAX as u64) as i64)),
            });
        }
        out
    }

    /// Writes the common script arguments (see `lua/common.lua`).
    pub(crate) fn header(&self, cmd: &mut redis::Cmd) {
        cmd.arg(if self.high() { "h" } else { "l" })
            .arg(self.tie_break.map_or(0, |t| t.time_bits))
            .arg(match self.rank {
                RankMode::Ordinal => "o",
                RankMode::Competition => "c",
                RankMode::Dense => "d",
            })
            .arg(if self.has_data() { "1" } else { "0" })
            .arg(self.cap.unwrap_or(0));
    }

    /// The header of the rank script, whose only keys are the board and its
    /// dense set (no data key): the data flag is off.
    pub(crate) fn header_for_rank(&self, cmd: &mut redis::Cmd) {
        cmd.arg(if self.high() { "h" } else { "l" })
            .arg(self.tie_break.map_or(0, |t| t.time_bits))
            .arg(match self.rank {
                RankMode::Ordinal => "o",
                RankMode::Competition => "c",
                RankMode::Dense => "d",
            })
            .arg("0")
            .arg(0);
    }

    /// The lowest stored value of the band (equal real score) of `stored`.
    pub(crate) fn band(&self, stored: f64) -> f64 {
        match &self.tie_break {
            None => stored,
            Some(t) => (stored / t.factor()).floor() * t.factor(),
        }
    }

    /// `S` (the scaled score) and `tie` of a score achieved at `at_ms`.
    pub(crate) fn encode_score<S: ScoreValue>(
        &self,
        value: S,
        at_ms: i64,
    ) -> std::result::Result<(f64, f64), String> {
        let v = value.to_exact().ok_or_else(|| {
            if S::FLOAT {
                "NaN is not a score".to_owned()
            } else {
                "its magnitude is above 2^53 - 1, the largest integer a sorted-set score (a double) holds without rounding"
                    .to_owned()
            }
        })?;
        match &self.tie_break {
            None => Ok((v, 0.0)),
            Some(t) => Ok((t.scaled(v)?, self.tie_at(at_ms)?)),
        }
    }

    /// The tie of an achievement at `at_ms` (0 without a tie-break).
    pub(crate) fn tie_at(&self, at_ms: i64) -> std::result::Result<f64, String> {
        match &self.tie_break {
            None => Ok(0.0),
            Some(t) => {
                let idx = t.time_index(at_ms)?;
                Ok(if self.tie_reversed() {
                    t.factor() - 1.0 - idx
                } else {
                    idx
                })
            }
        }
    }

    /// The scaled form of an increment.
    pub(crate) fn encode_delta<S: ScoreValue>(
        &self,
        delta: S::Delta,
    ) -> std::result::Result<f64, String> {
        let d = S::delta_exact(delta).ok_or_else(|| {
            "the increment has no exact double (NaN, or an integer above 2^53 - 1)".to_owned()
        })?;
        match &self.tie_break {
            None => Ok(d),
            Some(t) => {
                let scale = t.scale();
                let s = (d * scale).round();
                if s / scale != d {
                    return Err(format!(
                        "the increment has more than {} decimal places, which is all the tie-break keeps",
                        t.decimals
                    ));
                }
                Ok(s)
            }
        }
    }

    /// Bounds of the scaled score after an add.
    pub(crate) fn add_bounds<S: ScoreValue>(&self) -> (f64, f64) {
        match &self.tie_break {
            None => (S::MIN, S::MAX),
            Some(t) => {
                let max = t.max_scaled as f64;
                let scale = t.scale();
                ((S::MIN * scale).max(-max), (S::MAX * scale).min(max))
            }
        }
    }

    /// The inclusive range of stored values whose real score is within
    /// `[min, max]`.
    pub(crate) fn stored_range(&self, min: f64, max: f64) -> (f64, f64) {
        match &self.tie_break {
            None => (min, max),
            Some(t) => {
                let scale = t.scale();
                let f = t.factor();
                let lo = (min * scale).ceil() * f;
                let hi = (max * scale).floor() * f + (f - 1.0);
                (lo, hi)
            }
        }
    }

    /// Decodes a stored score as the Rust type.
    pub(crate) fn decode_score<S: ScoreValue>(
        &self,
        stored: f64,
    ) -> Option<(S, Option<DateTime<Utc>>)> {
        let (real, at) = self.decode_stored(stored);
        S::from_exact(real).map(|s| (s, at))
    }
}

/// The keys of one board.
#[derive(Debug, Clone)]
pub(crate) struct BoardKeys {
    pub(crate) board: String,
    pub(crate) data: Option<String>,
    pub(crate) dense: Option<String>,
}

impl BoardKeys {
    pub(crate) fn push_into<'a>(&'a self, out: &mut Vec<&'a str>) {
        out.push(&self.board);
        if let Some(d) = &self.data {
            out.push(d);
        }
        if let Some(n) = &self.dense {
            out.push(n);
        }
    }
}

/// One board a write touches.
#[derive(Debug, Clone)]
pub(crate) struct FamilyBoard {
    pub(crate) period: Period,
    pub(crate) keys: BoardKeys,
    pub(crate) expire_at: Option<i64>,
}

// ---------------------------------------------------------------------------
// Outputs

/// One ranked entry of a board.
#[non_exhaustive]
pub struct Entry<M: Leaderboard> {
    /// The rank, from 1, in the model's rank mode.
    pub rank: u64,
    /// The member.
    pub member: M::Member,
    /// The real score (decoded from the tie-break encoding if there is one).
    pub score: M::Score,
    /// On boards with a tie-break: when the score was achieved, to the
    /// tie-break's resolution.
    pub achieved_at: Option<DateTime<Utc>>,
    /// The entry as the struct: its board fields, the member, the current
    /// score and the member data of the submit that set it. `None` when the
    /// model has member data and none is stored for this member (it was
    /// only ever incremented, or the data was left out of the read).
    pub data: Option<M>,
}

impl<M: Leaderboard> std::fmt::Debug for Entry<M>
where
    M: std::fmt::Debug,
    M::Member: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("rank", &self.rank)
            .field("member", &self.member)
            .field("score", &self.score)
            .field("achieved_at", &self.achieved_at)
            .field("data", &self.data)
            .finish()
    }
}

impl<M: Leaderboard + Clone> Clone for Entry<M> {
    fn clone(&self) -> Self {
        Entry {
            rank: self.rank,
            member: self.member.clone(),
            score: self.score,
            achieved_at: self.achieved_at,
            data: self.data.clone(),
        }
    }
}

impl<M: Leaderboard + PartialEq> PartialEq for Entry<M>
where
    M::Member: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.rank == other.rank
            && self.member == other.member
            && self.score == other.score
            && self.achieved_at == other.achieved_at
            && self.data == other.data
    }
}

/// One member of a board found by a scan (no rank: a scan visits members in
/// no particular order).
#[non_exhaustive]
pub struct ScanItem<M: Leaderboard> {
    /// The member.
    pub member: M::Member,
    /// The real score.
    pub score: M::Score,
    /// When the score was achieved (boards with a tie-break).
    pub achieved_at: Option<DateTime<Utc>>,
    /// The entry as the struct, as in [`Entry::data`].
    pub data: Option<M>,
}

impl<M: Leaderboard> std::fmt::Debug for ScanItem<M>
where
    M: std::fmt::Debug,
    M::Member: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanItem")
            .field("member", &self.member)
            .field("score", &self.score)
            .field("achieved_at", &self.achieved_at)
            .field("data", &self.data)
            .finish()
    }
}

/// A member's score and rank.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Standing<S> {
    /// The real score.
    pub score: S,
    /// The rank, from 1, in the model's rank mode.
    pub rank: u64,
}

/// What a submit or an increment did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Submitted<S> {
    /// The member's score on the all-time board afterwards (the kept one
    /// when `keep_best` refused a worse score). `None` only when the cap left
    /// the member off the board.
    pub score: Option<S>,
    /// The member's rank on the all-time board afterwards.
    pub rank: Option<u64>,
    /// Whether the update policy applied the submitted score to the
    /// all-time board (`replace` and `add`: always; `keep_best`: when it was
    /// better or new).
    pub updated: bool,
    /// The same for the current period of each window, in declaration order.
    pub windows: Vec<WindowStanding<S>>,
}

/// The outcome of a submit on one window board.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WindowStanding<S> {
    /// The period written.
    pub period: Period,
    /// The member's score on that board afterwards.
    pub score: Option<S>,
    /// The member's rank on that board afterwards.
    pub rank: Option<u64>,
    /// Whether the policy applied the submitted score to that board.
    pub updated: bool,
}

/// How [`Leaderboard::union`] and [`Leaderboard::intersection`] combine the
/// scores of a member found on several boards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Aggregate {
    /// The best score (the highest on `high_first` boards). The default,
    /// except for `add` models.
    Best,
    /// The worst score.
    Worst,
    /// The sum (the default for `add` models). On boards with a tie-break the
    /// sum is computed in the script (scores decoded, added, re-encoded with
    /// the latest achievement time), which visits every member.
    Sum,
}

// ---------------------------------------------------------------------------
// The trait

/// A struct that is one entry of a board. Implemented by
/// `#[derive(Leaderboard)]`.
///
/// Every method returns an [operation](crate::op::Operation): nothing is sent
/// until `.run(&mut con)` or `.run_async(&mut con).await`, and operations
/// combine with [`batch`](crate::batch) into one pipeline.
pub trait Leaderboard: Sized {
    /// The board's coordinates: the type of the one field named in the key
    /// template, a tuple of them in template order, or `()`.
    type BoardId: IdValue + Clone + Send + Sync + 'static;
    /// The member field's type.
    type Member: MemberValue;
    /// The score field's type.
    type Score: ScoreValue;

    /// The schema generated by the derive.
    const SCHEMA: &'static LeaderboardSchema;

    /// Writes the board id parts of this entry.
    fn write_board(&self, out: &mut IdBuf);

    /// The board id of this entry.
    fn board_id(&self) -> Self::BoardId;

    /// The member.
    fn member(&self) -> &Self::Member;

    /// The score.
    fn score(&self) -> Self::Score;

    /// Writes the member data fields.
    fn write_data(&self, out: &mut DataWriter) -> Result<()>;

    /// Builds an entry from its parts. `data` is `None` when none is stored;
    /// models with member data then return `None`.
    fn assemble(
        board: &Self::BoardId,
        member: Self::Member,
        score: Self::Score,
        data: Option<&mut DataReader<'_>>,
    ) -> Result<Option<Self>>;

    // -- handles ----------------------------------------------------------------

    /// The board with id `id` (its all-time board; select a window with
    /// [`Board::daily`] and the like). Building it sends nothing.
    fn board(id: impl Into<Self::BoardId>) -> Board<Self> {
        Board::new(id.into())
    }

    /// The board this entry goes on.
    fn board_of(&self) -> Board<Self> {
        Board::new(self.board_id())
    }

    // -- writes -----------------------------------------------------------------

    /// Submits this entry under the model's update policy to its all-time
    /// board and the current period of every window, with its member data;
    /// applies window expiry and the cap; returns the new score and rank on
    /// every board written. Atomic: one `EVALSHA` over the family's keys, one
    /// round trip.
    fn submit(&self) -> Submit<'_, Self> {
        Submit::new(self)
    }

    /// Submits many entries in one pipeline, grouped per board. On a model
    /// whose board is one sorted set and whose policy is `replace` or
    /// `keep_best`, each group of up to 1,000 entries is one variadic `ZADD`
    /// (`GT`/`LT` for `keep_best`); otherwise each group is one `EVALSHA` of
    /// the submit script. Same results as submitting one by one, without the
    /// per-entry ranks. One round trip (one per slot group on a Cluster).
    fn submit_many<'a, I>(entries: I) -> SubmitMany<'a, Self>
    where
        I: IntoIterator<Item = &'a Self>,
        Self: 'a,
    {
        SubmitMany::new(entries.into_iter().collect())
    }

    /// Writes the union of `sources` into `into`, replacing what `into`
    /// held; see [`Merge`]. Every board must be of one Cluster slot (a hash
    /// tag they share). One `EVALSHA`, one round trip; O(total members).
    fn union(sources: &[&Board<Self>], into: &Board<Self>) -> Merge<Self> {
        Merge::new(sources, into, false)
    }

    /// Writes the members present on every one of `sources` into `into`; see
    /// [`Leaderboard::union`].
    fn intersection(sources: &[&Board<Self>], into: &Board<Self>) -> Merge<Self> {
        Merge::new(sources, into, true)
    }
}

// ---------------------------------------------------------------------------
// Board handles

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Select {
    AllTime,
    Current(Window),
    Fixed(Period),
}

/// One board of a model: its all-time board by default, or one period of a
/// window. Cheap to clone; building one sends nothing.
///
/// Reads act on the selected board. Writes ([`Board::increment`],
/// [`Board::remove`]) act on the family, like [`Leaderboard::submit`]: the
/// all-time board and the current period of every window. [`Board::clear`]
/// clears the selected board only.
pub struct Board<M: Leaderboard> {
    id: Arc<M::BoardId>,
    ns: Option<Namespace>,
    /// The family's base key (the all-time board), rendered once.
    base: Arc<str>,
    at: Option<DateTime<Utc>>,
    select: Select,
    _m: PhantomData<fn() -> M>,
}

impl<M: Leaderboard> Clone for Board<M> {
    fn clone(&self) -> Self {
        Board {
            id: Arc::clone(&self.id),
            ns: self.ns.clone(),
            base: Arc::clone(&self.base),
            at: self.at,
            select: self.select,
            _m: PhantomData,
        }
    }
}

impl<M: Leaderboard> std::fmt::Debug for Board<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut id = IdBuf::new();
        self.id.write_id(&mut id);
        f.debug_struct("Board")
            .field("model", &M::SCHEMA.model)
            .field("id", &id)
            .field("namespace", &self.ns)
            .field("select", &self.select)
            .finish()
    }
}

/// A board resolved to its keys.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) keys: BoardKeys,
}

impl<M: Leaderboard> Board<M> {
    /// The all-time board of `id`.
    pub fn new(id: M::BoardId) -> Self {
        let base = Self::render(&id, None);
        Board {
            id: Arc::new(id),
            ns: None,
            base,
            at: None,
            select: Select::AllTime,
            _m: PhantomData,
        }
    }

    /// In namespace `ns` (prefixes every key).
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.base = Self::render(&self.id, Some(ns));
        self.ns = Some(ns.clone());
        self
    }

    fn render(id: &M::BoardId, ns: Option<&Namespace>) -> Arc<str> {
        let mut buf = IdBuf::new();
        id.write_id(&mut buf);
        Arc::from(M::SCHEMA.key.render(ns, &buf))
    }

    /// Uses `at` as "now": for which period [`Board::daily`] and the like
    /// select, and for the windows and tie-break of writes. Default: the
    /// client's clock when an operation is prepared.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }

    /// Today's daily board (UTC).
    pub fn daily(self) -> Self {
        self.current(Window::Daily)
    }

    /// This ISO week's board (UTC).
    pub fn weekly(self) -> Self {
        self.current(Window::Weekly)
    }

    /// This month's board (UTC).
    pub fn monthly(self) -> Self {
        self.current(Window::Monthly)
    }

    /// The current period of `window`. Operations fail with
    /// [`Error::InvalidArgument`] if the model does not declare it.
    pub fn current(mut self, window: Window) -> Self {
        self.select = Select::Current(window);
        self
    }

    /// A given period (any day, week or month, or the all-time board).
    pub fn period(mut self, period: Period) -> Self {
        self.select = Select::Fixed(period);
        self
    }

    /// The all-time board.
    pub fn all_time(mut self) -> Self {
        self.select = Select::AllTime;
        self
    }

    /// The board id.
    pub fn id(&self) -> &M::BoardId {
        &self.id
    }

    /// The namespace, if one was set.
    pub fn namespace_ref(&self) -> Option<&Namespace> {
        self.ns.as_ref()
    }

    /// The selected period at `now` (the board's `at`, or the clock).
    pub fn selected_period(&self) -> Period {
        match self.select {
            Select::AllTime => Period::AllTime,
            Select::Fixed(p) => p,
            Select::Current(w) => Period::of(w, self.now()),
        }
    }

    /// The key of the selected board.
    pub fn key(&self) -> String {
        let mut key = self.base();
        key.push_str(&self.selected_period().key_suffix());
        key
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.at.unwrap_or_else(Utc::now)
    }

    pub(crate) fn base(&self) -> String {
        String::from(&*self.base)
    }

    pub(crate) fn target(&self, operation: &'static str) -> Result<Target> {
        let schema = M::SCHEMA;
        let period = self.selected_period();
        if let Some(w) = period.window()
            && schema.window(w).is_none()
        {
            return Err(Error::InvalidArgument {
                operation,
                reason: format!("{} declares no {w} window", schema.model),
            });
        }
        let mut board = self.base();
        if period != Period::AllTime {
            board.push_str(&period.key_suffix());
        }
        Ok(Target {
            keys: schema.keys(board),
        })
    }
}
