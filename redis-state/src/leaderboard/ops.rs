//! The operations of [`Leaderboard`] models and their [`Board`]s.

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
use crate::keys::{IdBuf, Namespace, Namespaced};
use crate::op::{Operation, Plan, Replies, Step};
use crate::script::Script;

macro_rules! script {
    ($name:ident, $file:literal) => {
        static $name: Script = Script::new(
            concat!("redis_state.leaderboard.", $file),
            concat!(
                include_str!("lua/common.lua"),
                include_str!(concat!("lua/", $file, ".lua"))
            ),
        );
    };
}
script!(SUBMIT, "submit");
script!(REMOVE, "remove");
script!(READ, "read");
script!(STANDING, "standing");
script!(MERGE, "merge");
script!(SCAN, "scan");

/// Entries per variadic `ZADD` or script call of a bulk submit.
const CHUNK: usize = 1000;

// ---------------------------------------------------------------------------
// Reply helpers

fn bytes_of(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn num_of(v: &Value) -> Option<f64> {
    match v {
        Value::Double(d) => Some(*d),
        Value::Int(i) => Some(*i as f64),
        other => std::str::from_utf8(bytes_of(other)?).ok()?.parse().ok(),
    }
}

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
    let items = array(v, context)?;
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let Some(first) = it.next() {
        match first {
            Value::Array(pair) if pair.len() == 2 => {
                let mut p = pair.into_iter();
                if let (Some(m), Some(s)) = (p.next(), p.next()) {
                    out.push((m, s));
                }
            }
            m => {
                let s = it.next().ok_or_else(|| Error::UnexpectedReply {
                    context,
                    found: "an odd number of items".to_owned(),
                })?;
                out.push((m, s));
            }
        }
    }
    Ok(out)
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
                let mut reader = DataReader::parse(
                    raw,
                    self.data_key.unwrap_or(self.key),
                    &preview_bytes(member_raw),
                )?;
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
        let member = self.member(raw)?;
        let stored = self.stored(raw, stored)?;
        let (score, achieved_at) = self.score(raw, stored)?;
        let data = self.record(raw, &member, score, data, with_data)?;
        Ok(Entry {
            rank: rank.next(self.schema.band(stored)),
            member,
            score,
            achieved_at,
            data,
        })
    }
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

        impl<M: Leaderboard> Namespaced for $ty<M> {
            fn namespace(self, ns: &Namespace) -> Self {
                $ty::namespace(self, ns)
            }
        }

        impl<M: Leaderboard> std::fmt::Debug for $ty<M> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("board", &self.board)
                    .finish_non_exhaustive()
            }
        }
    )*};
}

// ---------------------------------------------------------------------------
// Submit

/// Submits one entry; see [`Leaderboard::submit`].
pub struct Submit<'a, M: Leaderboard> {
    entry: &'a M,
    ns: Option<Namespace>,
    at: Option<DateTime<Utc>>,
    family: Vec<FamilyBoard>,
    member: Vec<u8>,
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
    pub(super) fn new(entry: &'a M) -> Self {
        Submit {
            entry,
            ns: None,
            at: None,
            family: Vec::new(),
            member: Vec::new(),
        }
    }

    /// Runs the operation in namespace `ns` (prefixes every key it touches).
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.ns = Some(ns.clone());
        self
    }

    /// The instant of the achievement: selects the window periods and sets the
    /// tie-break time. Default: the client's clock when the submit is prepared.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }
}

impl<M: Leaderboard> Namespaced for Submit<'_, M> {
    fn namespace(self, ns: &Namespace) -> Self {
        Submit::namespace(self, ns)
    }
}

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

/// One entry of a submit script call.
struct ScriptEntry {
    member: Vec<u8>,
    s: f64,
    tie: f64,
    data: Vec<u8>,
}

/// Writes one call of the submit script.
fn push_submit<S: ScoreValue>(
    plan: &mut Plan,
    schema: &'static LeaderboardSchema,
    family: &[FamilyBoard],
    policy: UpdatePolicy,
    want: bool,
    entries: &[ScriptEntry],
) -> Result<()> {
    let mut keys: Vec<&str> = Vec::with_capacity(family.len() * 3);
    for b in family {
        b.keys.push_into(&mut keys);
    }
    let cmd = plan.script(&SUBMIT, &keys)?;
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
    cmd.arg(entries.len());
    let mut num = Vec::with_capacity(24);
    for e in entries {
        cmd.arg(&e.member);
        num.clear();
        write_f64(&mut num, e.s);
        cmd.arg(&num);
        num.clear();
        write_f64(&mut num, e.tie);
        cmd.arg(&num).arg(&e.data);
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
        let member = encode_member::<M, M::Member>(self.entry.member())?;
        let value = self.entry.score();
        let (s, tie) = schema
            .encode_score(value, at.timestamp_millis())
            .map_err(|reason| not_encodable(&base, &member, value, reason))?;
        let data = if schema.has_data() {
            let mut w = DataWriter::new(schema.model);
            self.entry.write_data(&mut w)?;
            w.finish()
        } else {
            Vec::new()
        };
        self.member.clone_from(&member);
        let entry = ScriptEntry {
            member,
            s,
            tie,
            data,
        };
        push_submit::<M::Score>(
            plan,
            schema,
            &self.family,
            schema.update,
            true,
            std::slice::from_ref(&entry),
        )
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
    entries: Vec<&'a M>,
    ns: Option<Namespace>,
    at: Option<DateTime<Utc>>,
    /// Per command: whether it is a `ZADD` (else a script) and its family.
    calls: Vec<(bool, Vec<FamilyBoard>)>,
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
    pub(super) fn new(entries: Vec<&'a M>) -> Self {
        SubmitMany {
            entries,
            ns: None,
            at: None,
            calls: Vec::new(),
        }
    }

    /// Runs the operation in namespace `ns` (prefixes every key it touches).
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.ns = Some(ns.clone());
        self
    }

    /// The instant of every achievement (see [`Submit::at`]).
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }
}

impl<M: Leaderboard> Namespaced for SubmitMany<'_, M> {
    fn namespace(self, ns: &Namespace) -> Self {
        SubmitMany::namespace(self, ns)
    }
}

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
        // Group per board, keeping the order of entries within a board.
        let mut groups: Vec<(String, Vec<ScriptEntry>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for entry in &self.entries {
            let mut id = IdBuf::new();
            entry.write_board(&mut id);
            let base = schema.key.render(self.ns.as_ref(), &id);
            let member = encode_member::<M, M::Member>(entry.member())?;
            let value = entry.score();
            let (s, tie) = schema
                .encode_score(value, at_ms)
                .map_err(|reason| not_encodable(&base, &member, value, reason))?;
            let data = if schema.has_data() {
                let mut w = DataWriter::new(schema.model);
                entry.write_data(&mut w)?;
                w.finish()
            } else {
                Vec::new()
            };
            let e = ScriptEntry {
                member,
                s,
                tie,
                data,
            };
            match index.get(&base) {
                Some(&g) => groups[g].1.push(e),
                None => {
                    index.insert(base.clone(), groups.len());
                    groups.push((base, vec![e]));
                }
            }
        }
        self.calls.clear();
        let factor = schema.tie_break.map_or(1.0, |t| t.factor());
        let mut num = Vec::with_capacity(24);
        for (base, entries) in &groups {
            let family = schema.family(base, at);
            for chunk in entries.chunks(CHUNK) {
                if fast {
                    let cmd = plan.cmd("ZADD", base);
                    if schema.update == UpdatePolicy::KeepBest {
                        cmd.arg(if schema.high() { "GT" } else { "LT" });
                    }
                    cmd.arg("CH");
                    for e in chunk {
                        num.clear();
                        let stored = if schema.tie_break.is_some() {
                            e.s * factor + e.tie
                        } else {
                            e.s
                        };
                        write_f64(&mut num, stored);
                        cmd.arg(&num).arg(&e.member);
                    }
                    self.calls.push((true, family.clone()));
                } else {
                    push_submit::<M::Score>(plan, schema, &family, schema.update, false, chunk)?;
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
    board: Board<M>,
    member: Result<Vec<u8>, Option<Error>>,
    by: <M::Score as ScoreValue>::Delta,
    family: Vec<FamilyBoard>,
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
        let entry = ScriptEntry {
            member,
            s,
            tie,
            data: Vec::new(),
        };
        push_submit::<M::Score>(
            plan,
            schema,
            &self.family,
            UpdatePolicy::Add,
            true,
            std::slice::from_ref(&entry),
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

// ---------------------------------------------------------------------------
// Remove

/// Removes a member from every board of the family; see [`Board::remove`].
pub struct Remove<M: Leaderboard> {
    board: Board<M>,
    member: Result<Vec<u8>, Option<Error>>,
    plain: bool,
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
        let cmd = plan.script(&REMOVE, &keys)?;
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

// ---------------------------------------------------------------------------
// Score, rank, standing, entries, percentile

/// A member's score; see [`Board::score`].
pub struct ScoreOf<M: Leaderboard> {
    board: Board<M>,
    member: Result<Vec<u8>, Option<Error>>,
    target: Option<Target>,
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
    board: Board<M>,
    member: Result<Vec<u8>, Option<Error>>,
    plain: bool,
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
        push_standing::<M>(plan, &t, "s", std::slice::from_ref(&member))
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let v = replies.next_value()?;
        if self.plain {
            return match v {
                Value::Nil => Ok(Step::Done(None)),
                v => int_of(&v)
                    .and_then(|r| u64::try_from(r).ok())
                    .map(|r| Step::Done(Some(r + 1)))
                    .ok_or_else(|| Error::unexpected("ZREVRANK", &v)),
            };
        }
        let items = array(v, "the standing script")?;
        Ok(Step::Done(
            items
                .get(1)
                .and_then(int_of)
                .and_then(|r| u64::try_from(r).ok()),
        ))
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
    let cmd = plan.script(&STANDING, &keys)?;
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
    board: Board<M>,
    member: Result<Vec<u8>, Option<Error>>,
    target: Option<Target>,
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
    board: Board<M>,
    members: Result<Vec<Vec<u8>>, Option<Error>>,
    with_data: bool,
    target: Option<Target>,
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

/// One member's entry; see [`Board::entry`].
pub struct EntryOf<M: Leaderboard> {
    inner: Entries<M>,
}

impl<M: Leaderboard> EntryOf<M> {
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

impl<M: Leaderboard> Namespaced for EntryOf<M> {
    fn namespace(self, ns: &Namespace) -> Self {
        EntryOf::namespace(self, ns)
    }
}

impl<M: Leaderboard> std::fmt::Debug for EntryOf<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryOf")
            .field("board", &self.inner.board)
            .finish_non_exhaustive()
    }
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
    board: Board<M>,
    member: Result<Vec<u8>, Option<Error>>,
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
enum SliceKind {
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
    board: Board<M>,
    kind: Result<SliceKind, Option<Error>>,
    with_data: bool,
    plain: bool,
    target: Option<Target>,
}

board_op!(Slice);

impl<M: Leaderboard> Slice<M> {
    fn new(board: &Board<M>, kind: Result<SliceKind, Error>) -> Self {
        Slice {
            board: board.clone(),
            kind: kind.map_err(Some),
            with_data: true,
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
}

impl<M: Leaderboard> Operation for Slice<M> {
    type Output = Vec<Entry<M>>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        let kind = match &mut self.kind {
            Ok(k) => k.clone(),
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
            && (schema.rank == RankMode::Ordinal || start == 0)
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
        let cmd = plan.script(&READ, &keys)?;
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
                let (lo, hi) = schema.stored_range(min, max);
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
            return items
                .iter()
                .map(|(m, s)| dec.entry(m, s, None, &mut walk, false))
                .collect::<Result<_>>()
                .map(Step::Done);
        }
        let items = array(v, "the read script")?;
        let pos = items.first().and_then(int_of).unwrap_or(-1);
        let Ok(pos) = u64::try_from(pos) else {
            return Ok(Step::Done(Vec::new()));
        };
        let first_rank = items
            .get(1)
            .and_then(int_of)
            .and_then(|r| u64::try_from(r).ok())
            .unwrap_or(pos + 1);
        let mut walk = Walk::new(schema.rank, pos, first_rank);
        items[2..]
            .chunks(3)
            .map(|c| match c {
                [m, s, d] => dec.entry(m, s, Some(d), &mut walk, self.with_data),
                _ => Err(Error::UnexpectedReply {
                    context: "the read script",
                    found: "a truncated entry".to_owned(),
                }),
            })
            .collect::<Result<_>>()
            .map(Step::Done)
    }
}

/// The entries around a member; see [`Board::around`]. `None` when the
/// member is not on the board.
pub struct Around<M: Leaderboard> {
    inner: Slice<M>,
}

impl<M: Leaderboard> Around<M> {
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

impl<M: Leaderboard> Namespaced for Around<M> {
    fn namespace(self, ns: &Namespace) -> Self {
        Around::namespace(self, ns)
    }
}

impl<M: Leaderboard> std::fmt::Debug for Around<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Around")
            .field("board", &self.inner.board)
            .finish_non_exhaustive()
    }
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
    board: Board<M>,
    range: Option<(f64, f64)>,
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

/// Deletes the selected board with its data; see [`Board::clear`].
pub struct Clear<M: Leaderboard> {
    board: Board<M>,
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
    board: Board<M>,
    cursor: u64,
    count: usize,
    target: Option<Target>,
    script: bool,
}

board_op!(ScanPageOf);

impl<M: Leaderboard> Operation for ScanPageOf<M> {
    type Output = ScanPage<M>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        let t = self.board.target("scan")?;
        self.script = schema.has_data();
        if self.script {
            let mut keys: Vec<&str> = Vec::with_capacity(3);
            t.keys.push_into(&mut keys);
            let cmd = plan.script(&SCAN, &keys)?;
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
        let found: Vec<(Value, Value, Option<Value>)> = if self.script {
            let rest: Vec<Value> = items.collect();
            let mut out = Vec::with_capacity(rest.len() / 3);
            let mut it = rest.into_iter();
            while let (Some(m), Some(s), Some(d)) = (it.next(), it.next(), it.next()) {
                out.push((m, s, Some(d)));
            }
            out
        } else {
            let list = items.next().unwrap_or(Value::Array(Vec::new()));
            pairs(list, "ZSCAN")?
                .into_iter()
                .map(|(m, s)| (m, s, None))
                .collect()
        };
        let mut out = Vec::with_capacity(found.len());
        for (m, s, d) in &found {
            let raw = bytes_of(m).ok_or_else(|| Error::unexpected("ZSCAN", m))?;
            let member = dec.member(raw)?;
            let stored = dec.stored(raw, s)?;
            let (score, achieved_at) = dec.score(raw, stored)?;
            let data = dec.record(raw, &member, score, d.as_ref(), true)?;
            out.push(ScanItem {
                member,
                score,
                achieved_at,
                data,
            });
        }
        Ok(Step::Done(ScanPage { cursor, items: out }))
    }
}

/// Iterates over a whole board on a blocking connection, one `ZSCAN` page
/// per round trip; see [`Board::scan`].
pub struct ScanIter<'c, M: Leaderboard, C: crate::exec::SyncExecutor + ?Sized> {
    board: Board<M>,
    con: &'c mut C,
    count: usize,
    cursor: Option<u64>,
    buf: std::vec::IntoIter<ScanItem<M>>,
}

impl<M: Leaderboard, C: crate::exec::SyncExecutor + ?Sized> std::fmt::Debug for ScanIter<'_, M, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanIter")
            .field("board", &self.board)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl<M: Leaderboard, C: crate::exec::SyncExecutor + ?Sized> Iterator for ScanIter<'_, M, C> {
    type Item = Result<ScanItem<M>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.buf.next() {
                return Some(Ok(item));
            }
            let cursor = self.cursor?;
            match self.board.scan_page(cursor, self.count).run(self.con) {
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
pub struct Merge<M: Leaderboard> {
    sources: Vec<Board<M>>,
    into: Board<M>,
    intersection: bool,
    aggregate: Aggregate,
    ttl: Option<Duration>,
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
    pub(super) fn new(sources: &[&Board<M>], into: &Board<M>, intersection: bool) -> Self {
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

impl<M: Leaderboard> Namespaced for Merge<M> {
    fn namespace(self, ns: &Namespace) -> Self {
        Merge::namespace(self, ns)
    }
}

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
        let lua_sum = self.aggregate == Aggregate::Sum && schema.tie_break.is_some();
        let cmd = plan.script(&MERGE, &keys)?;
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
        let (lo, hi) = schema.add_bounds::<M::Score>();
        cmd.arg(f64_text(lo)).arg(f64_text(hi));
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
                Err(not_encodable(
                    &key,
                    member,
                    f64_text(scaled / scale),
                    "the merged sum is outside the range the board can hold; nothing was written"
                        .to_owned(),
                ))
            }
            _ => Err(Error::unexpected("the merge script", &Value::Array(items))),
        }
    }
}

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
        let stop = stop.min(i64::MAX as u64);
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
            n: n.min(i64::MAX as u64 / 2),
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
                offset: offset.min(i64::MAX as u64),
                count: count.map(|c| c.min(i64::MAX as u64)),
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
            board: self.clone(),
            con,
            count,
            cursor: Some(0),
            buf: Vec::new().into_iter(),
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
        let board = self.clone();
        let state = (board, con, Some(0u64), Vec::new().into_iter());
        futures_util::stream::unfold(state, move |(board, con, mut cursor, mut buf)| async move {
            loop {
                if let Some(item) = buf.next() {
                    return Some((Ok(item), (board, con, cursor, buf)));
                }
                let c = cursor?;
                match board.scan_page(c, count).run_async(con).await {
                    Ok(page) => {
                        cursor = (page.cursor != 0).then_some(page.cursor);
                        buf = page.items.into_iter();
                    }
                    Err(e) => return Some((Err(e), (board, con, None, buf))),
                }
            }
        })
        .boxed()
    }
}
