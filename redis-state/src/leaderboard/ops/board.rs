//! The board's methods: each builds one operation.

use super::read::SliceKind;
use super::*;

/// The largest position or count a read sends: 2^52. The read script
/// computes with them as Lua numbers (doubles), exact up to 2^53, leaving
/// room to add a position to another, and passes them on to Redis, which
/// refuses a range bound that is not an integer (a count of `i64::MAX`
/// becomes the double 2^63). No board holds 2^52 members, so a larger count
/// ("everything": `top(u64::MAX)`) reads the same.
pub(crate) const MAX_POSITION: u64 = 1 << 52;

// ---------------------------------------------------------------------------
// The board's methods

impl<M: Leaderboard> Board<M> {
    fn member_of<Q: MemberRef<M::Member> + ?Sized>(member: &Q) -> Result<Vec<u8>, Option<Error>> {
        encode_member::<M, Q>(member).map_err(Some)
    }

    /// The member's score, or `None`. One `ZSCORE`, one round trip.
    pub fn score<Q: MemberRef<M::Member> + ?Sized>(&self, member: &Q) -> ScoreOf<M> {
        ScoreOf {
            board: self.clone(),
            member: Self::member_of(member),
            target: None,
        }
    }

    /// The member's rank (from 1, in the model's rank mode), or `None`. One
    /// `ZREVRANK` (`ZRANK` on `low_first` boards) for ordinal ranks, else one
    /// `EVALSHA` (`ZSCORE` + `ZCOUNT`); one round trip.
    pub fn rank<Q: MemberRef<M::Member> + ?Sized>(&self, member: &Q) -> RankOf<M> {
        RankOf {
            board: self.clone(),
            member: Self::member_of(member),
            plain: false,
        }
    }

    /// The member's score and rank, read together atomically, or `None`.
    /// One `EVALSHA`, one round trip.
    pub fn standing<Q: MemberRef<M::Member> + ?Sized>(&self, member: &Q) -> StandingOf<M> {
        StandingOf {
            board: self.clone(),
            member: Self::member_of(member),
            target: None,
        }
    }

    /// The member's entry (score, rank and member data), or `None`. One
    /// `EVALSHA`, one round trip.
    pub fn entry<Q: MemberRef<M::Member> + ?Sized>(&self, member: &Q) -> EntryOf<M> {
        EntryOf {
            inner: self.entries_of([member]),
        }
    }

    /// The entries of several members (a friends list), `None` for those not
    /// on the board, in the order given. One `EVALSHA`, one round trip.
    pub fn entries_of<'q, Q, I>(&self, members: I) -> Entries<M>
    where
        Q: MemberRef<M::Member> + ?Sized + 'q,
        I: IntoIterator<Item = &'q Q>,
    {
        let members = members
            .into_iter()
            .map(encode_member::<M, Q>)
            .collect::<Result<Vec<_>>>()
            .map_err(Some);
        Entries {
            board: self.clone(),
            members,
            with_data: true,
            target: None,
        }
    }

    /// The member's percentile rank: the share of the board it beats, counting
    /// equal scores half, `100 * (worse + equal / 2) / members`, in `(0, 100)`.
    /// `None` when the member is not on the board. One `EVALSHA`, one round
    /// trip.
    pub fn percentile<Q: MemberRef<M::Member> + ?Sized>(&self, member: &Q) -> Percentile<M> {
        Percentile {
            board: self.clone(),
            member: Self::member_of(member),
        }
    }

    /// The best `n` entries. One `ZREVRANGE .. WITHSCORES` (`ZRANGE` on
    /// `low_first` boards) when no member data is read, else one `EVALSHA`
    /// that adds `HMGET` of the data; one round trip.
    pub fn top(&self, n: u64) -> Slice<M> {
        if n == 0 {
            return Slice::new(self, Ok(SliceKind::Empty));
        }
        self.slice(0, n - 1)
    }

    /// Page `number` (from 1) of `size` entries: positions `(number - 1) *
    /// size` to `number * size - 1`. Page 0 or size 0 is
    /// [`Error::InvalidArgument`]. Costs as [`Board::top`], except that on
    /// competition and dense boards a page after the first is one `EVALSHA`
    /// (the rank of its first entry needs a `ZCOUNT`).
    pub fn page(&self, number: u64, size: u64) -> Slice<M> {
        if number == 0 || size == 0 {
            return Slice::new(
                self,
                Err(Error::InvalidArgument {
                    operation: "page",
                    reason: format!("page {number} of size {size}: pages and sizes start at 1"),
                }),
            );
        }
        let start = (number - 1).saturating_mul(size);
        self.slice(start, start.saturating_add(size - 1))
    }

    /// The entries at positions `start` to `stop` (0-based, inclusive), as
    /// `ZREVRANGE start stop` would list them, ranked. Costs as
    /// [`Board::page`].
    pub fn slice(&self, start: u64, stop: u64) -> Slice<M> {
        let stop = stop.min(MAX_POSITION);
        let start = start.min(stop.saturating_add(1));
        Slice::new(self, Ok(SliceKind::Rank { start, stop }))
    }

    /// The member with up to `n` entries above and `n` below it; `None` when
    /// the member is not on the board. One `EVALSHA` (`ZREVRANK` +
    /// `ZREVRANGE`, `ZCOUNT` for the first rank, `HMGET` for data), one round
    /// trip.
    pub fn around<Q: MemberRef<M::Member> + ?Sized>(&self, member: &Q, n: u64) -> Around<M> {
        let kind = encode_member::<M, Q>(member).map(|member| SliceKind::Around {
            member,
            n: n.min(MAX_POSITION),
        });
        Around {
            inner: Slice::new(self, kind),
        }
    }

    /// The entries whose real score is within `[min, max]` (inclusive), best
    /// first, ranked. One `EVALSHA` (`ZREVRANGEBYSCORE` + `ZCOUNT`), one round
    /// trip. Use [`Board::between_limit`] to page through a wide range.
    pub fn between(&self, min: M::Score, max: M::Score) -> Slice<M> {
        self.between_limit(min, max, 0, None)
    }

    /// [`Board::between`], skipping `offset` entries and returning at most
    /// `count`.
    pub fn between_limit(
        &self,
        min: M::Score,
        max: M::Score,
        offset: u64,
        count: Option<u64>,
    ) -> Slice<M> {
        Slice::new(
            self,
            Ok(SliceKind::Score {
                min: min.to_lossy(),
                max: max.to_lossy(),
                offset: offset.min(MAX_POSITION),
                count: count.map(|c| c.min(MAX_POSITION)),
            }),
        )
    }

    /// The number of members. One `ZCARD`, one round trip.
    pub fn count(&self) -> Count<M> {
        Count {
            board: self.clone(),
            range: None,
        }
    }

    /// The number of members whose real score is within `[min, max]`. One
    /// `ZCOUNT`, one round trip.
    pub fn count_between(&self, min: M::Score, max: M::Score) -> Count<M> {
        Count {
            board: self.clone(),
            range: Some((min.to_lossy(), max.to_lossy())),
        }
    }

    /// Adds `by` to the member's score on the all-time board and the current
    /// period of every window (starting from 0 for a member not on a board),
    /// whatever the model's update policy, and returns the new standings. On
    /// boards with a tie-break the achievement time becomes now. An increment
    /// that would take a score outside the range of the score type (or
    /// `max_score`) writes nothing and fails with
    /// [`Error::ScoreNotEncodable`]. Member data is left as it is. One
    /// `EVALSHA`, one round trip.
    pub fn increment<Q: MemberRef<M::Member> + ?Sized>(
        &self,
        member: &Q,
        by: <M::Score as ScoreValue>::Delta,
    ) -> Increment<M> {
        Increment {
            board: self.clone(),
            member: Self::member_of(member),
            by,
            family: Vec::new(),
        }
    }

    /// Removes the member, with its data, from the all-time board and the
    /// current period of every window. Returns whether it was on the all-time
    /// board. One `ZREM` for a model whose board is one sorted set, else one
    /// `EVALSHA`; one round trip.
    pub fn remove<Q: MemberRef<M::Member> + ?Sized>(&self, member: &Q) -> Remove<M> {
        Remove {
            board: self.clone(),
            member: Self::member_of(member),
            plain: false,
        }
    }

    /// Deletes the selected board with its data and dense set. Returns
    /// whether it existed. One `DEL`, one round trip.
    pub fn clear(&self) -> Clear<M> {
        Clear {
            board: self.clone(),
        }
    }

    /// One step of a scan over the whole board, from `cursor` (0 to start),
    /// asking for about `count` members. The server does a bounded amount of
    /// work per step, whatever the board's size. One `ZSCAN` (an `EVALSHA`
    /// adding `HMGET` for models with member data), one round trip.
    ///
    /// `ZSCAN` guarantees: every member present for the whole scan is
    /// returned at least once (possibly more than once), in no particular
    /// order; members added or removed during it may or may not be.
    pub fn scan_page(&self, cursor: u64, count: usize) -> ScanPageOf<M> {
        ScanPageOf {
            board: self.clone(),
            cursor,
            count: count.max(1),
            strict: false,
            target: None,
            script: false,
        }
    }

    /// Iterates over the whole board on a blocking connection, one
    /// [`Board::scan_page`] of about `count` members per round trip.
    pub fn scan<'c, C: crate::exec::SyncExecutor + ?Sized>(
        &self,
        con: &'c mut C,
        count: usize,
    ) -> ScanIter<'c, M, C> {
        ScanIter {
            pages: self.pages(count),
            con,
        }
    }

    /// The async form of [`Board::scan`]: a stream of members, one
    /// [`Board::scan_page`] per round trip.
    pub fn scan_async<'c, C: crate::exec::AsyncExecutor + ?Sized>(
        &self,
        con: &'c mut C,
        count: usize,
    ) -> futures_util::stream::BoxStream<'c, Result<ScanItem<M>>>
    where
        M: Send + 'c,
    {
        use futures_util::StreamExt;
        futures_util::stream::unfold((self.pages(count), con), |(mut pages, con)| async move {
            let item = pages.next(&mut crate::driver::Async::new(con)).await?;
            Some((item, (pages, con)))
        })
        .boxed()
    }

    fn pages(&self, count: usize) -> Pages<M> {
        Pages {
            board: self.clone(),
            count,
            cursor: Some(0),
            buf: Vec::new().into_iter(),
        }
    }
}
