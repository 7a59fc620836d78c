//! Reads: score, rank, standing, entries, percentile, slices, counts, scans.

use super::*;
use crate::driver::{Blocking, Io, block_on};

// ---------------------------------------------------------------------------
// Score, rank, standing, entries, percentile

/// A member's score; see [`Board::score`].
pub struct ScoreOf<M: Leaderboard> {
    pub(super) board: Board<M>,
    pub(super) member: Result<Vec<u8>, Option<Error>>,
    pub(super) target: Option<Target>,
}

board_op!(ScoreOf);

impl<M: Leaderboard> Operation for ScoreOf<M> {
    type Output = Option<M::Score>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let member = take_member(&mut self.member)?;
        let t = self.board.target("score")?;
        plan.cmd("ZSCORE", &t.keys.board).arg(&member);
        self.target = Some(t);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let v = replies.next_value()?;
        if v == Value::Nil {
            return Ok(Step::Done(None));
        }
        let Some(t) = &self.target else {
            return Err(Error::unexpected("ZSCORE", &v));
        };
        let member = self.member.as_ref().map(Vec::as_slice).unwrap_or_default();
        let dec = Decoder::<M>::new(&self.board.id, &t.keys);
        let stored = dec.stored(member, &v)?;
        dec.score(member, stored).map(|(s, _)| Step::Done(Some(s)))
    }
}

/// A member's rank; see [`Board::rank`].
pub struct RankOf<M: Leaderboard> {
    pub(super) board: Board<M>,
    pub(super) member: Result<Vec<u8>, Option<Error>>,
    pub(super) plain: bool,
}

board_op!(RankOf);

impl<M: Leaderboard> Operation for RankOf<M> {
    type Output = Option<u64>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        let member = take_member(&mut self.member)?;
        let t = self.board.target("rank")?;
        self.plain = schema.rank == RankMode::Ordinal;
        if self.plain {
            let name = if schema.high() { "ZREVRANK" } else { "ZRANK" };
            plan.cmd(name, &t.keys.board).arg(&member);
            return Ok(());
        }
        let mut keys: Vec<&str> = Vec::with_capacity(2);
        keys.push(&t.keys.board);
        if let Some(n) = &t.keys.dense {
            keys.push(n);
        }
        let cmd = plan.script(RankScript::script(), &keys)?;
        schema.header_for_rank(cmd);
        cmd.arg(member);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        // ZREVRANK answers the position from 0, the script the rank from 1.
        let offset = u64::from(self.plain);
        match replies.next_value()? {
            Value::Nil => Ok(Step::Done(None)),
            v => int_of(&v)
                .and_then(|r| u64::try_from(r).ok())
                .map(|r| Step::Done(Some(r + offset)))
                .ok_or_else(|| Error::unexpected("a rank", &v)),
        }
    }
}

fn push_standing<M: Leaderboard>(
    plan: &mut Plan,
    t: &Target,
    what: &str,
    members: &[Vec<u8>],
) -> Result<()> {
    let mut keys: Vec<&str> = Vec::with_capacity(3);
    t.keys.push_into(&mut keys);
    let cmd = plan.script(StandingScript::script(), &keys)?;
    M::SCHEMA.header(cmd);
    cmd.arg(what);
    for m in members {
        cmd.arg(m);
    }
    Ok(())
}

/// A member's score and rank together, read atomically; see
/// [`Board::standing`].
pub struct StandingOf<M: Leaderboard> {
    pub(super) board: Board<M>,
    pub(super) member: Result<Vec<u8>, Option<Error>>,
    pub(super) target: Option<Target>,
}

board_op!(StandingOf);

impl<M: Leaderboard> Operation for StandingOf<M> {
    type Output = Option<Standing<M::Score>>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let member = take_member(&mut self.member)?;
        let t = self.board.target("standing")?;
        push_standing::<M>(plan, &t, "s", std::slice::from_ref(&member))?;
        self.target = Some(t);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let items = array(replies.next_value()?, "the standing script")?;
        let (Some(t), Some(stored)) = (&self.target, items.first()) else {
            return Ok(Step::Done(None));
        };
        if *stored == Value::Nil {
            return Ok(Step::Done(None));
        }
        let member = self.member.as_ref().map(Vec::as_slice).unwrap_or_default();
        let dec = Decoder::<M>::new(&self.board.id, &t.keys);
        let (score, _) = dec.score(member, dec.stored(member, stored)?)?;
        let rank = items
            .get(1)
            .and_then(int_of)
            .and_then(|r| u64::try_from(r).ok())
            .ok_or_else(|| Error::unexpected("the standing script", stored))?;
        Ok(Step::Done(Some(Standing { score, rank })))
    }
}

/// The entries of given members (score, rank, data); see
/// [`Board::entries_of`].
pub struct Entries<M: Leaderboard> {
    pub(super) board: Board<M>,
    pub(super) members: Result<Vec<Vec<u8>>, Option<Error>>,
    pub(super) with_data: bool,
    pub(super) target: Option<Target>,
}

board_op!(Entries);

impl<M: Leaderboard> Entries<M> {
    /// Leaves the member data out of the read (`data` is then `None` for
    /// models with member data).
    pub fn without_data(mut self) -> Self {
        self.with_data = false;
        self
    }
}

impl<M: Leaderboard> Operation for Entries<M> {
    type Output = Vec<Option<Entry<M>>>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let members = match &mut self.members {
            Ok(m) => m.clone(),
            Err(e) => {
                return Err(e.take().unwrap_or_else(|| Error::UnexpectedReply {
                    context: "entries_of",
                    found: "an operation run twice".to_owned(),
                }));
            }
        };
        let t = self.board.target("entries_of")?;
        if members.is_empty() {
            self.target = Some(t);
            return Ok(());
        }
        let what = if self.with_data { "e" } else { "s" };
        push_standing::<M>(plan, &t, what, &members)?;
        self.target = Some(t);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let members = self.members.as_ref().map(Vec::as_slice).unwrap_or_default();
        if members.is_empty() {
            return Ok(Step::Done(Vec::new()));
        }
        let items = array(replies.next_value()?, "the standing script")?;
        let Some(t) = &self.target else {
            return Ok(Step::Done(Vec::new()));
        };
        let dec = Decoder::<M>::new(&self.board.id, &t.keys);
        let mut out = Vec::with_capacity(members.len());
        for (i, raw) in members.iter().enumerate() {
            let stored = items.get(3 * i).unwrap_or(&Value::Nil);
            if *stored == Value::Nil {
                out.push(None);
                continue;
            }
            let rank = items
                .get(3 * i + 1)
                .and_then(int_of)
                .and_then(|r| u64::try_from(r).ok())
                .unwrap_or(0);
            let member = dec.member(raw)?;
            let x = dec.stored(raw, stored)?;
            let (score, achieved_at) = dec.score(raw, x)?;
            let data = dec.record(raw, &member, score, items.get(3 * i + 2), self.with_data)?;
            out.push(Some(Entry {
                rank,
                member,
                score,
                achieved_at,
                data,
            }));
        }
        Ok(Step::Done(out))
    }
}

/// For reads that wrap another (`inner`): `namespace`, `without_data`,
/// [`Namespaced`] and `Debug`.
macro_rules! wrapped_read {
    ($($ty:ident),*) => {$(
        impl<M: Leaderboard> $ty<M> {
            /// Runs the operation in namespace `ns`.
            pub fn namespace(mut self, ns: &Namespace) -> Self {
                self.inner = self.inner.namespace(ns);
                self
            }

            /// Leaves the member data out of the read.
            pub fn without_data(mut self) -> Self {
                self.inner = self.inner.without_data();
                self
            }
        }

        impl_namespaced!([M: Leaderboard] $ty<M>);

        impl<M: Leaderboard> std::fmt::Debug for $ty<M> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("board", &self.inner.board)
                    .finish_non_exhaustive()
            }
        }
    )*};
}
wrapped_read!(EntryOf, Around);

/// One member's entry; see [`Board::entry`].
pub struct EntryOf<M: Leaderboard> {
    pub(super) inner: Entries<M>,
}

impl<M: Leaderboard> Operation for EntryOf<M> {
    type Output = Option<Entry<M>>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.inner.prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        Ok(match self.inner.complete(replies)? {
            Step::Done(v) => Step::Done(v.into_iter().next().flatten()),
            Step::Again => Step::Again,
        })
    }
}

/// A member's percentile rank; see [`Board::percentile`].
pub struct Percentile<M: Leaderboard> {
    pub(super) board: Board<M>,
    pub(super) member: Result<Vec<u8>, Option<Error>>,
}

board_op!(Percentile);

impl<M: Leaderboard> Operation for Percentile<M> {
    type Output = Option<f64>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let member = take_member(&mut self.member)?;
        let t = self.board.target("percentile")?;
        push_standing::<M>(plan, &t, "p", std::slice::from_ref(&member))
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let items = array(replies.next_value()?, "the standing script")?;
        if items.first().is_none_or(|v| *v == Value::Nil) {
            return Ok(Step::Done(None));
        }
        let n = |i: usize| items.get(i).and_then(int_of).unwrap_or(0) as f64;
        let (worse, equal, card) = (n(1), n(2), n(3));
        if card <= 0.0 {
            return Ok(Step::Done(None));
        }
        Ok(Step::Done(Some(100.0 * (worse + 0.5 * equal) / card)))
    }
}

// ---------------------------------------------------------------------------
// Slices: top, page, around, score range

#[derive(Debug, Clone)]
pub(super) enum SliceKind {
    /// Nothing to read (`top(0)`): no command.
    Empty,
    Rank {
        start: u64,
        stop: u64,
    },
    Around {
        member: Vec<u8>,
        n: u64,
    },
    Score {
        min: f64,
        max: f64,
        offset: u64,
        count: Option<u64>,
    },
}

/// A run of consecutive ranked entries; see [`Board::top`], [`Board::page`],
/// [`Board::slice`], [`Board::between`].
pub struct Slice<M: Leaderboard> {
    pub(super) board: Board<M>,
    pub(super) kind: Result<SliceKind, Option<Error>>,
    pub(super) with_data: bool,
    pub(super) strict: bool,
    pub(super) plain: bool,
    pub(super) target: Option<Target>,
}

board_op!(Slice);

impl<M: Leaderboard> Slice<M> {
    pub(super) fn new(board: &Board<M>, kind: Result<SliceKind, Error>) -> Self {
        Slice {
            board: board.clone(),
            kind: kind.map_err(Some),
            with_data: true,
            strict: false,
            plain: false,
            target: None,
        }
    }

    /// Leaves the member data out of the read (`data` is then `None` for
    /// models with member data), which lets top and page reads on ordinal
    /// boards be one plain `ZREVRANGE`.
    pub fn without_data(mut self) -> Self {
        self.with_data = false;
        self
    }

    /// Fails the read with the [`Error::Decode`] of the first entry that
    /// does not decode. By default such an entry (a member, score or member
    /// data written by another client in a form the model cannot read) is
    /// left out of the page and logged at `warn` (target
    /// `redis_state::leaderboard`), and the other entries keep their ranks.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }
}

impl<M: Leaderboard> Operation for Slice<M> {
    type Output = Vec<Entry<M>>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        let kind = match &mut self.kind {
            Ok(k) => &*k,
            Err(e) => {
                return Err(e.take().unwrap_or_else(|| Error::UnexpectedReply {
                    context: "a board read",
                    found: "an operation run twice".to_owned(),
                }));
            }
        };
        let t = self.board.target("a board read")?;
        let want_data = self.with_data && schema.has_data();
        self.plain = false;
        if let SliceKind::Empty = kind {
            self.target = Some(t);
            return Ok(());
        }
        if let SliceKind::Rank { start, stop } = kind
            && !want_data
            && (schema.rank == RankMode::Ordinal || *start == 0)
        {
            self.plain = true;
            let name = if schema.high() { "ZREVRANGE" } else { "ZRANGE" };
            plan.cmd(name, &t.keys.board)
                .arg(start)
                .arg(stop)
                .arg("WITHSCORES");
            self.target = Some(t);
            return Ok(());
        }
        let mut keys: Vec<&str> = Vec::with_capacity(3);
        t.keys.push_into(&mut keys);
        let cmd = plan.script(ReadScript::script(), &keys)?;
        schema.header(cmd);
        cmd.arg(if want_data { "1" } else { "0" });
        match kind {
            SliceKind::Empty => {}
            SliceKind::Rank { start, stop } => {
                cmd.arg("rank").arg(start).arg(stop);
            }
            SliceKind::Around { member, n } => {
                cmd.arg("around").arg(member).arg(n);
            }
            SliceKind::Score {
                min,
                max,
                offset,
                count,
            } => {
                let (lo, hi) = schema.stored_range(*min, *max);
                let (best, worst) = if schema.high() { (hi, lo) } else { (lo, hi) };
                cmd.arg("score")
                    .arg(f64_text(best))
                    .arg(f64_text(worst))
                    .arg(offset);
                match count {
                    Some(c) => cmd.arg(c),
                    None => cmd.arg(-1),
                };
            }
        }
        self.target = Some(t);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let schema = M::SCHEMA;
        if let Ok(SliceKind::Empty) = self.kind {
            return Ok(Step::Done(Vec::new()));
        }
        let v = replies.next_value()?;
        let Some(t) = &self.target else {
            return Err(Error::unexpected("a board read", &v));
        };
        let dec = Decoder::<M>::new(&self.board.id, &t.keys);
        if self.plain {
            let start = match &self.kind {
                Ok(SliceKind::Rank { start, .. }) => *start,
                _ => 0,
            };
            let items = pairs(v, "ZREVRANGE")?;
            let mut walk = Walk::new(schema.rank, start, start + 1);
            let entries = items
                .iter()
                .map(|(m, s)| (m.clone(), dec.entry(m, s, None, &mut walk, false)));
            return gather(self.strict, &t.keys.board, entries).map(Step::Done);
        }
        let mut items = array(v, "the read script")?.into_iter();
        let pos = items.next().as_ref().and_then(int_of).unwrap_or(-1);
        let Ok(pos) = u64::try_from(pos) else {
            return Ok(Step::Done(Vec::new()));
        };
        let first_rank = items
            .next()
            .as_ref()
            .and_then(int_of)
            .and_then(|r| u64::try_from(r).ok())
            .unwrap_or(pos + 1);
        let range = pairs(items.next().unwrap_or(Value::Nil), "the read script")?;
        let data = match items.next() {
            Some(Value::Array(d)) => d,
            _ => Vec::new(),
        };
        let mut walk = Walk::new(schema.rank, pos, first_rank);
        let entries = range.iter().enumerate().map(|(i, (m, s))| {
            let entry = dec.entry(m, s, data.get(i), &mut walk, self.with_data);
            (m.clone(), entry)
        });
        gather(self.strict, &t.keys.board, entries).map(Step::Done)
    }
}

/// The entries around a member; see [`Board::around`]. `None` when the
/// member is not on the board.
pub struct Around<M: Leaderboard> {
    pub(super) inner: Slice<M>,
}

impl<M: Leaderboard> Operation for Around<M> {
    type Output = Option<Vec<Entry<M>>>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.inner.prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        Ok(match self.inner.complete(replies)? {
            Step::Done(v) if v.is_empty() => Step::Done(None),
            Step::Done(v) => Step::Done(Some(v)),
            Step::Again => Step::Again,
        })
    }
}

// ---------------------------------------------------------------------------
// Count, clear

/// The number of members; see [`Board::count`], [`Board::count_between`].
pub struct Count<M: Leaderboard> {
    pub(super) board: Board<M>,
    pub(super) range: Option<(f64, f64)>,
}

board_op!(Count);

impl<M: Leaderboard> Operation for Count<M> {
    type Output = u64;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let t = self.board.target("count")?;
        match self.range {
            None => {
                plan.cmd("ZCARD", &t.keys.board);
            }
            Some((min, max)) => {
                let (lo, hi) = M::SCHEMA.stored_range(min, max);
                plan.cmd("ZCOUNT", &t.keys.board)
                    .arg(f64_text(lo))
                    .arg(f64_text(hi));
            }
        }
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        let v = replies.next_value()?;
        int_of(&v)
            .and_then(|n| u64::try_from(n).ok())
            .map(Step::Done)
            .ok_or_else(|| Error::unexpected("ZCARD", &v))
    }
}

// ---------------------------------------------------------------------------
// Scan

/// One page of a scan: the members found and the cursor to continue from
/// (0 when the scan is complete).
#[non_exhaustive]
pub struct ScanPage<M: Leaderboard> {
    /// The cursor of the next page; 0 when the scan is complete.
    pub cursor: u64,
    /// The members of this page.
    pub items: Vec<ScanItem<M>>,
}

impl<M: Leaderboard> std::fmt::Debug for ScanPage<M>
where
    M: std::fmt::Debug,
    M::Member: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanPage")
            .field("cursor", &self.cursor)
            .field("items", &self.items)
            .finish()
    }
}

/// One `ZSCAN` step; see [`Board::scan_page`].
pub struct ScanPageOf<M: Leaderboard> {
    pub(super) board: Board<M>,
    pub(super) cursor: u64,
    pub(super) count: usize,
    pub(super) strict: bool,
    pub(super) target: Option<Target>,
    pub(super) script: bool,
}

board_op!(ScanPageOf);

impl<M: Leaderboard> ScanPageOf<M> {
    /// Fails the step with the [`Error::Decode`] of the first member that
    /// does not decode, instead of leaving it out with a warning (see
    /// [`Slice::strict`]).
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }
}

impl<M: Leaderboard> Operation for ScanPageOf<M> {
    type Output = ScanPage<M>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        let t = self.board.target("scan")?;
        self.script = schema.has_data();
        if self.script {
            let mut keys: Vec<&str> = Vec::with_capacity(3);
            t.keys.push_into(&mut keys);
            let cmd = plan.script(ScanScript::script(), &keys)?;
            schema.header(cmd);
            cmd.arg(self.cursor).arg(self.count);
        } else {
            plan.cmd("ZSCAN", &t.keys.board)
                .arg(self.cursor)
                .arg("COUNT")
                .arg(self.count);
        }
        self.target = Some(t);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let v = replies.next_value()?;
        let Some(t) = &self.target else {
            return Err(Error::unexpected("ZSCAN", &v));
        };
        let dec = Decoder::<M>::new(&self.board.id, &t.keys);
        let mut items = array(v, "ZSCAN")?.into_iter();
        let cursor = items
            .next()
            .as_ref()
            .and_then(int_of)
            .and_then(|c| u64::try_from(c).ok())
            .ok_or_else(|| Error::UnexpectedReply {
                context: "ZSCAN",
                found: "no cursor".to_owned(),
            })?;
        let list = pairs(items.next().unwrap_or(Value::Array(Vec::new())), "ZSCAN")?;
        let data = match items.next() {
            Some(Value::Array(d)) => d,
            _ => Vec::new(),
        };
        let found: Vec<(Value, Value, Option<Value>)> = list
            .into_iter()
            .zip(
                data.into_iter()
                    .map(Some)
                    .chain(std::iter::repeat_with(|| None)),
            )
            .map(|((m, s), d)| (m, s, d))
            .collect();
        let items = found.iter().map(|(m, s, d)| {
            let item = (|| {
                let raw = bytes_of(m).ok_or_else(|| Error::unexpected("ZSCAN", m))?;
                let member = dec.member(raw)?;
                let stored = dec.stored(raw, s)?;
                let (score, achieved_at) = dec.score(raw, stored)?;
                let data = dec.record(raw, &member, score, d.as_ref(), true)?;
                Ok(ScanItem {
                    member,
                    score,
                    achieved_at,
                    data,
                })
            })();
            (m.clone(), item)
        });
        let items = gather(self.strict, &t.keys.board, items)?;
        Ok(Step::Done(ScanPage { cursor, items }))
    }
}

/// A scan over a whole board, page by page: what [`Board::scan`] and
/// [`Board::scan_async`] both walk.
pub(super) struct Pages<M: Leaderboard> {
    pub(super) board: Board<M>,
    pub(super) count: usize,
    pub(super) cursor: Option<u64>,
    pub(super) buf: std::vec::IntoIter<ScanItem<M>>,
}

impl<M: Leaderboard + Send> Pages<M> {
    /// The next member, reading the next page when the last one is used
    /// up; `None` after the last page (or after an error).
    pub(super) async fn next<I: Io>(&mut self, io: &mut I) -> Option<Result<ScanItem<M>>> {
        loop {
            if let Some(item) = self.buf.next() {
                return Some(Ok(item));
            }
            let cursor = self.cursor?;
            match io.run(self.board.scan_page(cursor, self.count)).await {
                Ok(page) => {
                    self.cursor = (page.cursor != 0).then_some(page.cursor);
                    self.buf = page.items.into_iter();
                }
                Err(e) => {
                    self.cursor = None;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Iterates over a whole board on a blocking connection, one `ZSCAN` page
/// per round trip; see [`Board::scan`].
pub struct ScanIter<'c, M: Leaderboard, C: crate::exec::SyncExecutor + ?Sized> {
    pub(super) pages: Pages<M>,
    pub(super) con: &'c mut C,
}

impl<M: Leaderboard, C: crate::exec::SyncExecutor + ?Sized> std::fmt::Debug for ScanIter<'_, M, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanIter")
            .field("board", &self.pages.board)
            .field("cursor", &self.pages.cursor)
            .finish_non_exhaustive()
    }
}

impl<M, C> Iterator for ScanIter<'_, M, C>
where
    M: Leaderboard + Send,
    C: crate::exec::SyncExecutor + ?Sized,
{
    type Item = Result<ScanItem<M>>;

    fn next(&mut self) -> Option<Self::Item> {
        block_on(self.pages.next(&mut Blocking::new(self.con)))
    }
}
