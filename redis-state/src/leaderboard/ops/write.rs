//! Writes: submit, bulk submit, increment, remove, clear, merge.

use super::*;

// ---------------------------------------------------------------------------
// Submit

/// Submits one entry; see [`Leaderboard::submit`].
pub struct Submit<'a, M: Leaderboard> {
    pub(super) entry: &'a M,
    pub(super) ns: Option<Namespace>,
    pub(super) at: Option<DateTime<Utc>>,
    pub(super) family: Vec<FamilyBoard>,
    pub(super) member: Vec<u8>,
}

impl<M: Leaderboard> std::fmt::Debug for Submit<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submit")
            .field("model", &M::SCHEMA.model)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl<'a, M: Leaderboard> Submit<'a, M> {
    pub(crate) fn new(entry: &'a M) -> Self {
        Submit {
            entry,
            ns: None,
            at: None,
            family: Vec::new(),
            member: Vec::new(),
        }
    }

    /// The instant of the achievement: selects the window periods and sets the
    /// tie-break time. Default: the client's clock when the submit is prepared.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }
}

namespaced!(['a, M: Leaderboard] Submit<'a, M>);

/// Where a write failed to encode a score.
fn not_encodable(key: &str, member: &[u8], value: impl std::fmt::Display, reason: String) -> Error {
    Error::ScoreNotEncodable {
        key: key.to_owned(),
        member: member_text(member),
        value: value.to_string(),
        reason,
    }
}

fn policy_code(p: UpdatePolicy) -> &'static str {
    match p {
        UpdatePolicy::Replace => "r",
        UpdatePolicy::KeepBest => "b",
        UpdatePolicy::Add => "a",
    }
}

/// Encoded entries: members and data in one arena, so that a bulk submit
/// does not allocate per entry.
#[derive(Default)]
pub(super) struct Encoded {
    arena: Vec<u8>,
    entries: Vec<EncodedEntry>,
}

#[derive(Clone, Copy)]
struct EncodedEntry {
    member: (u32, u32),
    data: (u32, u32),
    s: f64,
    tie: f64,
}

impl Encoded {
    fn with_capacity(n: usize) -> Self {
        Encoded {
            arena: Vec::with_capacity(n * 16),
            entries: Vec::with_capacity(n),
        }
    }

    /// Encodes one entry of model `M` scored at `at_ms`; `base` names the
    /// board in errors. Returns the entry's index.
    fn push<M: Leaderboard>(&mut self, entry: &M, base: &str, at_ms: i64) -> Result<usize> {
        let schema = M::SCHEMA;
        let start = self.arena.len();
        entry
            .member()
            .encode(&mut self.arena)
            .map_err(|message| Error::Encode {
                model: schema.model,
                field: "member",
                message,
            })?;
        let member = (start as u32, self.arena.len() as u32);
        let value = entry.score();
        let (s, tie) = schema
            .encode_score(value, at_ms)
            .map_err(|reason| not_encodable(base, self.slice(member), value, reason))?;
        let start = self.arena.len();
        if schema.has_data() {
            let mut w = DataWriter::new_in(schema.model, std::mem::take(&mut self.arena));
            let written = entry.write_data(&mut w);
            self.arena = w.finish();
            if let Err(e) = written {
                self.arena.truncate(start);
                return Err(e);
            }
        }
        let data = (start as u32, self.arena.len() as u32);
        self.entries.push(EncodedEntry {
            member,
            data,
            s,
            tie,
        });
        Ok(self.entries.len() - 1)
    }

    fn slice(&self, (s, e): (u32, u32)) -> &[u8] {
        &self.arena[s as usize..e as usize]
    }
}

/// Writes one call of the submit script with the entries `which` of `enc`.
fn push_submit<S: ScoreValue>(
    plan: &mut Plan,
    schema: &'static LeaderboardSchema,
    family: &[FamilyBoard],
    policy: UpdatePolicy,
    want: bool,
    enc: &Encoded,
    which: &[usize],
) -> Result<()> {
    let mut keys: Vec<&str> = Vec::with_capacity(family.len() * 3);
    for b in family {
        b.keys.push_into(&mut keys);
    }
    let cmd = plan.script(SubmitScript::script(), &keys)?;
    schema.header(cmd);
    cmd.arg(policy_code(policy));
    if policy == UpdatePolicy::Add {
        let (lo, hi) = schema.add_bounds::<S>();
        cmd.arg(f64_text(lo)).arg(f64_text(hi));
    } else {
        cmd.arg("").arg("");
    }
    cmd.arg(if want { "1" } else { "0" }).arg(family.len());
    for b in family {
        match b.expire_at {
            Some(at) => cmd.arg(at),
            None => cmd.arg(""),
        };
    }
    cmd.arg(which.len());
    let mut num = Vec::with_capacity(24);
    for &i in which {
        let e = enc.entries[i];
        cmd.arg(enc.slice(e.member));
        num.clear();
        write_f64(&mut num, e.s);
        cmd.arg(&num);
        num.clear();
        write_f64(&mut num, e.tie);
        cmd.arg(&num).arg(enc.slice(e.data));
    }
    Ok(())
}

/// Turns a `{'range', member, board, value}` reply into an error.
fn range_error<S: ScoreValue>(
    schema: &LeaderboardSchema,
    family: &[FamilyBoard],
    items: &[Value],
) -> Error {
    let member = items.get(1).and_then(bytes_of).unwrap_or_default();
    let board = items
        .get(2)
        .and_then(int_of)
        .and_then(|i| family.get(usize::try_from(i).ok()?))
        .map_or("?", |b| b.keys.board.as_str());
    let scaled = items.get(3).and_then(num_of).unwrap_or(f64::NAN);
    let real = match &schema.tie_break {
        Some(t) => scaled / t.scale(),
        None => scaled,
    };
    let (lo, hi) = schema.add_bounds::<S>();
    let scale = schema.tie_break.map_or(1.0, |t| t.scale());
    not_encodable(
        board,
        member,
        f64_text(real),
        format!(
            "the sum would leave {}..={}, the range the board can hold for {}; nothing was written",
            f64_text(lo / scale),
            f64_text(hi / scale),
            S::EXPECTED
        ),
    )
}

/// Decodes the reply of a submit script that returned standings.
fn submitted<M: Leaderboard>(
    family: &[FamilyBoard],
    board: &M::BoardId,
    member: &[u8],
    v: Value,
) -> Result<Submitted<M::Score>> {
    let schema = M::SCHEMA;
    let items = array(v, "the submit script")?;
    match items.first().and_then(bytes_of) {
        Some(b"ok") => {}
        Some(b"range") => return Err(range_error::<M::Score>(schema, family, &items)),
        _ => return Err(Error::unexpected("the submit script", &Value::Array(items))),
    }
    let mut standings = Vec::with_capacity(family.len());
    for (i, fb) in family.iter().enumerate() {
        let at = 2 + 3 * i;
        let dec = Decoder::<M>::new(board, &fb.keys);
        let score = match items.get(at) {
            Some(Value::Nil) | None => None,
            Some(v) => Some(dec.score(member, dec.stored(member, v)?)?.0),
        };
        let rank = items
            .get(at + 1)
            .and_then(int_of)
            .and_then(|r| u64::try_from(r).ok());
        let updated = items.get(at + 2).and_then(int_of) == Some(1);
        standings.push(WindowStanding {
            period: fb.period,
            score,
            rank,
            updated,
        });
    }
    let mut it = standings.into_iter();
    let all = it.next().ok_or_else(|| Error::UnexpectedReply {
        context: "the submit script",
        found: "no standing".to_owned(),
    })?;
    Ok(Submitted {
        score: all.score,
        rank: all.rank,
        updated: all.updated,
        windows: it.collect(),
    })
}

impl<M: Leaderboard> Operation for Submit<'_, M> {
    type Output = Submitted<M::Score>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        let mut id = IdBuf::new();
        self.entry.write_board(&mut id);
        let base = schema.key.render(self.ns.as_ref(), &id);
        let at = self.at.unwrap_or_else(Utc::now);
        self.family = schema.family(&base, at);
        let mut enc = Encoded::with_capacity(1);
        let i = enc.push(self.entry, &base, at.timestamp_millis())?;
        self.member = enc.slice(enc.entries[i].member).to_vec();
        push_submit::<M::Score>(plan, schema, &self.family, schema.update, true, &enc, &[i])
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let v = replies.next_value()?;
        let board = self.entry.board_id();
        submitted::<M>(&self.family, &board, &self.member, v).map(Step::Done)
    }
}

// ---------------------------------------------------------------------------
// Bulk submit

/// What a bulk submit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BulkSubmitted {
    /// Entries sent.
    pub submitted: usize,
    /// Entries that added a member to, or changed a score on, their all-time
    /// board (`ZADD CH` semantics).
    pub changed: usize,
}

/// Submits many entries; see [`Leaderboard::submit_many`].
pub struct SubmitMany<'a, M: Leaderboard> {
    pub(super) entries: Vec<&'a M>,
    pub(super) ns: Option<Namespace>,
    pub(super) at: Option<DateTime<Utc>>,
    /// Per command: whether it is a `ZADD` (else a script) and its family.
    pub(super) calls: Vec<(bool, Vec<FamilyBoard>)>,
}

impl<M: Leaderboard> std::fmt::Debug for SubmitMany<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmitMany")
            .field("model", &M::SCHEMA.model)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl<'a, M: Leaderboard> SubmitMany<'a, M> {
    pub(crate) fn new(entries: Vec<&'a M>) -> Self {
        SubmitMany {
            entries,
            ns: None,
            at: None,
            calls: Vec::new(),
        }
    }

    /// The instant of every achievement (see [`Submit::at`]).
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }
}

namespaced!(['a, M: Leaderboard] SubmitMany<'a, M>);

impl<M: Leaderboard> Operation for SubmitMany<'_, M> {
    type Output = BulkSubmitted;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        let at = self.at.unwrap_or_else(Utc::now);
        let at_ms = at.timestamp_millis();
        // A plain variadic ZADD does exactly what the script would.
        let fast = schema.single_key()
            && schema.windows.is_empty()
            && schema.cap.is_none()
            && schema.update != UpdatePolicy::Add;
        // Encode everything first: a value that cannot be stored fails the
        // whole bulk before anything is sent. Group per board, keeping the
        // order of entries within a board; entries usually come in runs of
        // one board, so the key is rendered once per run.
        let mut enc = Encoded::with_capacity(self.entries.len());
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let (mut id, mut last_id) = (IdBuf::new(), String::new());
        let mut last_group = None;
        for entry in &self.entries {
            id.clear();
            entry.write_board(&mut id);
            let g = match last_group {
                Some(g) if id.joined() == last_id => g,
                _ => {
                    let base = schema.key.render(self.ns.as_ref(), &id);
                    let g = match index.get(&base) {
                        Some(&g) => g,
                        None => {
                            index.insert(base.clone(), groups.len());
                            groups.push((base, Vec::new()));
                            groups.len() - 1
                        }
                    };
                    last_id.clear();
                    last_id.push_str(id.joined());
                    last_group = Some(g);
                    g
                }
            };
            let i = enc.push(*entry, &groups[g].0, at_ms)?;
            groups[g].1.push(i);
        }
        self.calls.clear();
        let factor = schema.tie_break.map_or(1.0, |t| t.factor());
        let mut num = Vec::with_capacity(24);
        for (base, which) in &groups {
            let family = schema.family(base, at);
            for chunk in which.chunks(CHUNK) {
                if fast {
                    let cmd = plan.cmd("ZADD", base);
                    if schema.update == UpdatePolicy::KeepBest {
                        cmd.arg(if schema.high() { "GT" } else { "LT" });
                    }
                    cmd.arg("CH");
                    for &i in chunk {
                        let e = enc.entries[i];
                        num.clear();
                        write_f64(&mut num, e.s * factor + e.tie);
                        cmd.arg(&num).arg(enc.slice(e.member));
                    }
                    self.calls.push((true, Vec::new()));
                } else {
                    push_submit::<M::Score>(
                        plan,
                        schema,
                        &family,
                        schema.update,
                        false,
                        &enc,
                        chunk,
                    )?;
                    self.calls.push((false, family.clone()));
                }
            }
        }
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<BulkSubmitted>> {
        let mut out = BulkSubmitted {
            submitted: self.entries.len(),
            changed: 0,
        };
        let mut first_error = None;
        for (zadd, family) in &self.calls {
            let v = match replies.next_value() {
                Ok(v) => v,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            if *zadd {
                match int_of(&v) {
                    Some(n) => out.changed += usize::try_from(n).unwrap_or(0),
                    None => {
                        first_error.get_or_insert(Error::unexpected("ZADD", &v));
                    }
                }
                continue;
            }
            let items = match array(v, "the submit script") {
                Ok(items) => items,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            match items.first().and_then(bytes_of) {
                Some(b"ok") => {
                    out.changed += items
                        .get(1)
                        .and_then(int_of)
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or(0);
                }
                Some(b"range") => {
                    first_error.get_or_insert(range_error::<M::Score>(M::SCHEMA, family, &items));
                }
                _ => {
                    first_error.get_or_insert(Error::unexpected(
                        "the submit script",
                        &Value::Array(items),
                    ));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(Step::Done(out)),
        }
    }
}

// ---------------------------------------------------------------------------
// Increment

/// Adds to a member's score on every board of the family; see
/// [`Board::increment`].
pub struct Increment<M: Leaderboard> {
    pub(super) board: Board<M>,
    pub(super) member: Result<Vec<u8>, Option<Error>>,
    pub(super) by: <M::Score as ScoreValue>::Delta,
    pub(super) family: Vec<FamilyBoard>,
}

board_op!(Increment);

impl<M: Leaderboard> Operation for Increment<M> {
    type Output = Submitted<M::Score>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        let member = take_member(&mut self.member)?;
        let base = self.board.base();
        let at = self.board.now();
        self.family = schema.family(&base, at);
        let s = schema
            .encode_delta::<M::Score>(self.by)
            .map_err(|reason| not_encodable(&base, &member, self.by, reason))?;
        let tie = schema
            .tie_at(at.timestamp_millis())
            .map_err(|reason| not_encodable(&base, &member, self.by, reason))?;
        let mut enc = Encoded::with_capacity(1);
        enc.arena.extend_from_slice(&member);
        enc.entries.push(EncodedEntry {
            member: (0, member.len() as u32),
            data: (member.len() as u32, member.len() as u32),
            s,
            tie,
        });
        push_submit::<M::Score>(
            plan,
            schema,
            &self.family,
            UpdatePolicy::Add,
            true,
            &enc,
            &[0],
        )
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let v = replies.next_value()?;
        let member = match &self.member {
            Ok(m) => m.clone(),
            Err(_) => Vec::new(),
        };
        submitted::<M>(&self.family, &self.board.id, &member, v).map(Step::Done)
    }
}

// ---------------------------------------------------------------------------
// Remove

/// Removes a member from every board of the family; see [`Board::remove`].
pub struct Remove<M: Leaderboard> {
    pub(super) board: Board<M>,
    pub(super) member: Result<Vec<u8>, Option<Error>>,
    pub(super) plain: bool,
}

board_op!(Remove);

impl<M: Leaderboard> Operation for Remove<M> {
    type Output = bool;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        let member = take_member(&mut self.member)?;
        let base = self.board.base();
        self.plain = schema.single_key() && schema.windows.is_empty();
        if self.plain {
            plan.cmd("ZREM", &base).arg(&member);
            return Ok(());
        }
        let family = schema.family(&base, self.board.now());
        let mut keys: Vec<&str> = Vec::new();
        for b in &family {
            b.keys.push_into(&mut keys);
        }
        let cmd = plan.script(RemoveScript::script(), &keys)?;
        schema.header(cmd);
        cmd.arg(family.len()).arg(1).arg(&member);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        let v = replies.next_value()?;
        if self.plain {
            return int_of(&v)
                .map(|n| Step::Done(n > 0))
                .ok_or_else(|| Error::unexpected("ZREM", &v));
        }
        let items = array(v, "the remove script")?;
        Ok(Step::Done(items.first().and_then(int_of).unwrap_or(0) > 0))
    }
}

/// Deletes the selected board with its data; see [`Board::clear`].
pub struct Clear<M: Leaderboard> {
    pub(super) board: Board<M>,
}

board_op!(Clear);

impl<M: Leaderboard> Operation for Clear<M> {
    type Output = bool;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let t = self.board.target("clear")?;
        let mut keys: Vec<&str> = Vec::with_capacity(3);
        t.keys.push_into(&mut keys);
        plan.cmd_keys("DEL", &keys)?;
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        let v = replies.next_value()?;
        int_of(&v)
            .map(|n| Step::Done(n > 0))
            .ok_or_else(|| Error::unexpected("DEL", &v))
    }
}

// ---------------------------------------------------------------------------
// Merge

/// Writes the union or intersection of boards into a board; see
/// [`Leaderboard::union`]. The output is the number of members of the result.
///
/// The destination is replaced (its data and dense set rebuilt); member data
/// comes from the first source that has it; the destination's window expiry
/// (or [`Merge::ttl`]) and the model's cap are applied. Scores combine with
/// [`Aggregate::Best`] (or [`Aggregate::Sum`] for `add` models) unless
/// [`Merge::aggregate`] says otherwise. Boards may be of different periods
/// (this week's dailies into a custom board).
///
/// A sum is checked like an [`increment`](Board::increment): one that would
/// leave the range of the score type (or `max_score`), or whose running
/// total on an integer board would pass 2^53 - 1 (where doubles round),
/// writes nothing and fails with [`Error::ScoreNotEncodable`]. Such sums
/// (every sum on integer, `f32` and tie-break boards) are added by the
/// script, member by member; `f64` sums are one `ZUNIONSTORE` /
/// `ZINTERSTORE`.
pub struct Merge<M: Leaderboard> {
    pub(super) sources: Vec<Board<M>>,
    pub(super) into: Board<M>,
    pub(super) intersection: bool,
    pub(super) aggregate: Aggregate,
    pub(super) ttl: Option<Duration>,
}

impl<M: Leaderboard> std::fmt::Debug for Merge<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merge")
            .field("sources", &self.sources)
            .field("into", &self.into)
            .field("intersection", &self.intersection)
            .field("aggregate", &self.aggregate)
            .finish_non_exhaustive()
    }
}

impl<M: Leaderboard> Merge<M> {
    pub(crate) fn new(sources: &[&Board<M>], into: &Board<M>, intersection: bool) -> Self {
        Merge {
            sources: sources.iter().map(|b| (*b).clone()).collect(),
            into: into.clone(),
            intersection,
            aggregate: if M::SCHEMA.update == UpdatePolicy::Add {
                Aggregate::Sum
            } else {
                Aggregate::Best
            },
            ttl: None,
        }
    }

    /// How scores of a member on several boards combine.
    pub fn aggregate(mut self, aggregate: Aggregate) -> Self {
        self.aggregate = aggregate;
        self
    }

    /// Expires the result `ttl` from now (instead of the window expiry of a
    /// window destination, or no expiry).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Runs every board of the merge in namespace `ns`.
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.sources = self.sources.into_iter().map(|b| b.namespace(ns)).collect();
        self.into = self.into.namespace(ns);
        self
    }
}

impl_namespaced!([M: Leaderboard] Merge<M>);

impl<M: Leaderboard> Operation for Merge<M> {
    type Output = u64;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        if self.sources.is_empty() {
            return Err(Error::InvalidArgument {
                operation: "union / intersection",
                reason: "no source boards".to_owned(),
            });
        }
        let dest = self.into.target("union / intersection")?;
        let sources = self
            .sources
            .iter()
            .map(|b| b.target("union / intersection"))
            .collect::<Result<Vec<_>>>()?;
        let mut keys: Vec<&str> = Vec::with_capacity(3 + 2 * sources.len());
        dest.keys.push_into(&mut keys);
        for s in &sources {
            keys.push(&s.keys.board);
            if let Some(d) = &s.keys.data {
                keys.push(d);
            }
        }
        let expire_at = match self.ttl {
            Some(ttl) => Some(
                Utc::now()
                    .timestamp_millis()
                    .saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64),
            ),
            None => {
                let period = self.into.selected_period();
                match period.window().and_then(|w| schema.window(w)) {
                    Some(spec) => period.end().map(|e| {
                        e.timestamp_millis()
                            .saturating_add(spec.keep_ms.min(i64::MAX as u64) as i64)
                    }),
                    None => None,
                }
            }
        };
        let agg = match (self.aggregate, schema.high()) {
            (Aggregate::Sum, _) => "SUM",
            (Aggregate::Best, true) | (Aggregate::Worst, false) => "MAX",
            (Aggregate::Best, false) | (Aggregate::Worst, true) => "MIN",
        };
        // ZUNIONSTORE's SUM adds doubles unchecked. Sums on a board with a
        // tie-break (the time parts must not add) or with a bounded score
        // type (integers) are added in the script instead, which refuses a
        // total outside the range (or, for integers, a running total past
        // the exact ones) before it writes.
        let (lo, hi) = schema.add_bounds::<M::Score>();
        let lua_sum = self.aggregate == Aggregate::Sum
            && (schema.tie_break.is_some() || lo.is_finite() || hi.is_finite());
        let exact = schema.tie_break.is_some() || !M::Score::FLOAT;
        let cmd = plan.script(MergeScript::script(), &keys)?;
        schema.header(cmd);
        cmd.arg(if self.intersection { "i" } else { "u" })
            .arg(agg)
            .arg(sources.len());
        match expire_at {
            Some(at) => cmd.arg(at),
            None => cmd.arg(""),
        };
        cmd.arg(if lua_sum { "1" } else { "0" })
            .arg(if schema.tie_reversed() { "1" } else { "0" });
        cmd.arg(f64_text(lo))
            .arg(f64_text(hi))
            .arg(if exact { "1" } else { "0" });
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        let items = array(replies.next_value()?, "the merge script")?;
        match items.first().and_then(bytes_of) {
            Some(b"ok") => Ok(Step::Done(
                items
                    .get(1)
                    .and_then(int_of)
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
            )),
            Some(b"range") => {
                let key = self.into.key();
                let member = items.get(1).and_then(bytes_of).unwrap_or_default();
                let scaled = items.get(2).and_then(num_of).unwrap_or(f64::NAN);
                let scale = M::SCHEMA.tie_break.map_or(1.0, |t| t.scale());
                let (lo, hi) = M::SCHEMA.add_bounds::<M::Score>();
                Err(not_encodable(
                    &key,
                    member,
                    f64_text(scaled / scale),
                    format!(
                        "the merged sum would leave {}..={}, the range the board can hold for {}; nothing was written",
                        f64_text(lo / scale),
                        f64_text(hi / scale),
                        M::Score::EXPECTED
                    ),
                ))
            }
            _ => Err(Error::unexpected("the merge script", &Value::Array(items))),
        }
    }
}
