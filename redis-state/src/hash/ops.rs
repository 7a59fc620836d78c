//! The operations of [`RedisHash`](super::RedisHash) models.

use std::marker::PhantomData;
use std::time::Duration;

use redis::Value;

use super::{FieldKind, FieldReader, FieldWriter, HashSchema, RedisHash, Settable, Ttl};
use crate::cache::CacheInvalidations;
use crate::codec::CounterValue;
use crate::error::{DecodeError, Error, Result};
use crate::keys::{IdBuf, IdValue, Namespace, namespaced};
use crate::op::{Many, Operation, Plan, Replies, Step};

crate::script! {
    /// Writes an entity (save, insert, versioned save, update, TTL change)
    /// with its index upkeep. See `lua/write.lua` for the layout of `rest`.
    pub(super) struct WriteScript {
        name: "redis_state.hash.write",
        keys: [entity, ..indexes],
        args: [mode: &str, id: &str, ..rest],
        returns: Value,
        lua: concat!(include_str!("lua/common.lua"), include_str!("lua/write.lua")),
    }
}

crate::script! {
    /// The plain save of a model without a version field or unique index,
    /// in a compact form of the write script's `save` mode (the same state
    /// after it). See `lua/save.lua` for the layout of `rest`.
    pub(super) struct SaveScript {
        name: "redis_state.hash.save",
        keys: [entity, ..indexes],
        args: [id: &str, ..rest],
        returns: Value,
        // The shared helpers inside a function that only a write that
        // prunes calls: defining them is not paid by every save.
        lua: concat!(
            "local function pruning()\n",
            include_str!("lua/common.lua"),
            "return prune, now_ms\nend\n",
            include_str!("lua/save.lua"),
        ),
    }
}

crate::script! {
    /// Deletes an entity with its index entries; returns 1 if it existed
    /// (with the reserved values to release, for bucketed unique fields).
    pub(super) struct DeleteScript {
        name: "redis_state.hash.delete",
        keys: [entity, ..indexes],
        args: [id: &str, n: usize, ..fields],
        returns: Value,
        lua: concat!(include_str!("lua/common.lua"), include_str!("lua/delete.lua")),
    }
}

crate::script! {
    /// Forgets up to `limit` expired entities of one scope: their index
    /// entries and expiry bookkeeping. Returns `{pruned, still due}`.
    pub(crate) struct PruneScript {
        name: "redis_state.hash.prune",
        keys: [exp, ..indexes],
        args: [n: usize, ..rest],
        returns: Value,
        lua: concat!(include_str!("lua/common.lua"), include_str!("lua/prune.lua")),
    }
}

/// One bounded sweep step over the expiry bookkeeping of one scope: forgets
/// the index entries of at most `limit` entities that expired more than a
/// second ago. The output is `(pruned, still due)`.
#[derive(Debug, Clone)]
pub(crate) struct PruneExpired {
    /// The index keys of the scope, with whether each is unique, in the
    /// model's index order (the order the bookkeeping packs values in).
    pub(crate) indexes: Vec<(String, bool)>,
    /// `<scope>:#<collection>:exp` and `…:expv`.
    pub(crate) exp: String,
    pub(crate) expv: String,
    /// Entities pruned at most (0: only count those due).
    pub(crate) limit: usize,
}

impl Operation for PruneExpired {
    type Output = (u64, u64);
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let mut call = PruneScript::new(&self.exp, self.indexes.len());
        let mut a = Args::default();
        for (k, unique) in &self.indexes {
            call = call.indexes(k.clone());
            a.put(if *unique { "1" } else { "0" });
        }
        a.put(self.limit);
        call.indexes(self.exp.clone())
            .indexes(self.expv.clone())
            .rest(a.0)
            .prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<(u64, u64)>> {
        let v = replies.next_value()?;
        match &v {
            Value::Array(items) => match items.as_slice() {
                [Value::Int(p), Value::Int(d)] => Ok(Step::Done((
                    u64::try_from(*p).unwrap_or(0),
                    u64::try_from(*d).unwrap_or(0),
                ))),
                _ => Err(Error::unexpected("the prune script", &v)),
            },
            _ => Err(Error::unexpected("the prune script", &v)),
        }
    }
}

crate::script! {
    /// Loads the candidates of an index lookup, keeping those that still
    /// match and repairing the index for the others.
    pub(super) struct FindScript {
        name: "redis_state.hash.find",
        keys: [index, ..entities],
        args: [field: &str, value: &[u8], unique: &str, nfields: usize, ..rest],
        returns: Value,
        lua: include_str!("lua/find.lua"),
    }
}

crate::script! {
    /// Adds to a counter field of an existing entity, within the range of
    /// its Rust type.
    pub(super) struct IncrScript {
        name: "redis_state.hash.incr",
        keys: [entity],
        args: [field: &str, delta: &[u8], float: &str, min: &str, max: &str],
        returns: Value,
        lua: include_str!("lua/incr.lua"),
    }
}

fn id_of<Q: IdValue + ?Sized>(id: &Q) -> IdBuf {
    let mut buf = IdBuf::new();
    id.write_id(&mut buf);
    buf
}

/// `Debug` showing the operation's name, the model and the listed fields:
/// `debug_op!([generics] Type => "Name", field, ...; ...)`.
macro_rules! debug_op {
    ($([$($g:tt)*] $ty:ty => $name:literal $(, $field:ident)*;)*) => {$(
        impl<$($g)*> std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct($name)
                    .field("model", &M::SCHEMA.model)
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    )*};
}

// ---------------------------------------------------------------------------
// The write script

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteMode {
    Save,
    Insert,
    Versioned,
}

#[derive(Debug, Clone, Copy)]
enum TtlOp {
    Keep,
    Px(u64),
    PxAt(i64),
    Persist,
}

/// The TTL a full write applies.
fn full_write_ttl(schema: &HashSchema, expires_at: Option<i64>) -> TtlOp {
    match (schema.expires_at.is_some(), expires_at, schema.ttl_ms) {
        (true, Some(at), _) => TtlOp::PxAt(at),
        (_, _, Some(ms)) => TtlOp::Px(ms),
        (true, None, None) => TtlOp::Persist,
        (false, _, None) => TtlOp::Keep,
    }
}

/// What a write does to one field.
#[derive(Clone, Copy)]
enum Change<'b> {
    Untouched,
    Set(&'b [u8]),
    Remove,
}

struct WriteCall<'b> {
    mode: &'static str,
    ttl: TtlOp,
    expected_version: Option<u64>,
    changes: Vec<Change<'b>>,
    /// Unique-index holders to verify in this call (see [`Holders`]).
    verify: &'b [Holder],
    /// Reservation tokens of the bucketed unique values set: (index
    /// position, token). See [`super::reserve`].
    tokens: &'b [(usize, String)],
}

/// A unique-index entry the write script found in the way: the position of
/// the index in [`HashSchema::indexes`] and the holder's id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    index: usize,
    id: String,
}

/// The unique-index check of a write (DESIGN principle 5: indexes cannot
/// misreport).
///
/// The write script reads the unique index; a script may only touch keys it
/// was given (principle 4), and the holder's key is not known before the
/// index is read. So when a value is held by another id, the script writes
/// nothing and names the holder; the operation then calls the script a
/// second time with the holder's key in `KEYS`, and the script checks that
/// the holder still exists and still holds the value. A holder that does is
/// a [`Error::UniqueViolation`]; one that does not (deleted or edited behind
/// the library's back) is removed from the index and the write goes ahead.
/// A write that meets no other holder costs one round trip; one that meets a
/// holder costs two. Inside a [`Transaction`](crate::tx::Transaction) only
/// one round fits between `MULTI` and `EXEC`: there the holder is trusted,
/// as the index says.
#[derive(Debug, Default)]
struct Holders {
    /// The holders to verify in the next call.
    verify: Vec<Holder>,
    /// The second call was made: another unverified holder (one that took
    /// the value between the two calls) is reported, not chased.
    retried: bool,
    /// This write runs inside `MULTI`: no second round.
    single_round: bool,
}

impl Holders {
    /// Reads the write script's reply; `Ok(None)` asks for the verifying
    /// second call.
    fn reply(&mut self, schema: &HashSchema, key: &str, v: Value) -> Result<Option<u64>> {
        match write_reply(schema, key, v) {
            Ok(version) => Ok(Some(version)),
            Err(Unique::Unverified(holders, _)) if !self.retried && !self.single_round => {
                self.verify = holders;
                self.retried = true;
                Ok(None)
            }
            Err(Unique::Unverified(_, e) | Unique::Error(e)) => Err(e),
        }
    }
}

fn push_write(
    plan: &mut Plan,
    schema: &'static HashSchema,
    ns: Option<&Namespace>,
    id: &IdBuf,
    key: &str,
    call: &WriteCall<'_>,
) -> Result<()> {
    let mut a = Args::default();
    match call.ttl {
        TtlOp::Keep => a.put("keep").put(""),
        TtlOp::Px(ms) => a.put("px").put(ms),
        TtlOp::PxAt(at) => a.put("pxat").put(at),
        TtlOp::Persist => a.put("persist").put(""),
    };
    match schema.version {
        Some(v) => a.put(schema.fields[v].name),
        None => a.put(""),
    };
    match call.expected_version {
        Some(v) => a.put(v),
        None => a.put(""),
    };
    let settable = |i: usize| schema.version != Some(i);
    let nset = call
        .changes
        .iter()
        .enumerate()
        .filter(|(i, c)| settable(*i) && matches!(c, Change::Set(_)))
        .count();
    a.put(nset);
    for (i, c) in call.changes.iter().enumerate() {
        if let (true, Change::Set(v)) = (settable(i), c) {
            a.put(schema.fields[i].name).put(*v);
        }
    }
    let ndel = call
        .changes
        .iter()
        .enumerate()
        .filter(|(i, c)| settable(*i) && matches!(c, Change::Remove))
        .count();
    a.put(ndel);
    for (i, c) in call.changes.iter().enumerate() {
        if settable(i) && matches!(c, Change::Remove) {
            a.put(schema.fields[i].name);
        }
    }
    a.put(schema.indexes.len());
    for ix in schema.indexes {
        let f = &schema.fields[ix.field];
        a.put(f.name).put(index_kind(schema, ix));
        match call
            .changes
            .get(ix.field)
            .copied()
            .unwrap_or(Change::Untouched)
        {
            Change::Untouched => a.put("0").put("0").put(""),
            Change::Set(v) => a.put("1").put("1").put(v),
            Change::Remove => a.put("1").put("0").put(""),
        };
    }
    let index_keys = schema.index_keys(ns, id)?;
    // The holders' keys follow the index keys in `KEYS`. A holder whose key
    // is in another slot cannot be an entity of this index's hash tag: the
    // entry is garbage, passed as position 0.
    let slot = crate::keys::key_slot(key.as_bytes());
    let mut holder_keys = Vec::with_capacity(call.verify.len());
    a.put(call.verify.len());
    for h in call.verify {
        let holder_key = schema.key(ns, &IdBuf::from_joined(&h.id));
        let pos = if crate::keys::key_slot(holder_key.as_bytes()) == slot {
            holder_keys.push(holder_key);
            1 + index_keys.len() + holder_keys.len()
        } else {
            0
        };
        a.put(h.index + 1).put(h.id.as_str()).put(pos);
    }
    a.put(call.tokens.len());
    for (index, token) in call.tokens {
        a.put(index + 1).put(token.as_str());
    }
    a.put(super::reserve::PENDING_MS);
    let mut script = WriteScript::new(key, call.mode, id.joined());
    for k in index_keys.into_iter().chain(holder_keys) {
        script = script.indexes(k);
    }
    if !call.tokens.is_empty() {
        // The bucket's fence set, last in `KEYS`.
        script = script.indexes(schema.fence_key(ns, id));
    }
    script.rest(a.0).prepare(plan)
}

/// Writes the compact save script's call (`lua/save.lua`) straight into
/// the plan: the fields set, each index's field by its position among the
/// arguments, then the fields removed.
fn push_save(
    plan: &mut Plan,
    schema: &'static HashSchema,
    ns: Option<&Namespace>,
    id: &IdBuf,
    key: &str,
    w: &FieldWriter,
    ttl: TtlOp,
) -> Result<()> {
    let nfields = schema.fields.len();
    let written = |i: usize| schema.writes(i);
    let nset = (0..nfields)
        .filter(|&i| written(i) && w.get(i).is_some())
        .count();
    let ndel = (0..nfields)
        .filter(|&i| written(i) && w.get(i).is_none())
        .count();
    let n = schema.indexes.len();
    let index_keys = schema.index_keys(ns, id)?;
    let mut keys: Vec<&str> = Vec::with_capacity(1 + index_keys.len());
    keys.push(key);
    keys.extend(index_keys.iter().map(String::as_str));
    let joined = id.joined();
    let cmd = plan.script_sized(
        SaveScript::script(),
        &keys,
        5 + n + 2 * nset + ndel,
        joined.len() + 24 + 4 * n + schema.names_len() + w.encoded_len(),
    )?;
    let mut num = itoa::Buffer::new();
    cmd.arg(joined);
    match ttl {
        TtlOp::Keep => cmd.arg("keep").arg(""),
        TtlOp::Px(ms) => cmd.arg("px").arg(num.format(ms)),
        TtlOp::PxAt(at) => cmd.arg("pxat").arg(num.format(at)),
        TtlOp::Persist => cmd.arg("persist").arg(""),
    };
    // ARGV positions (1-based): id, ttl op, ttl value, n positions, nset,
    // then the pairs.
    let set_from = 5 + n;
    let del_from = set_from + 2 * nset;
    for ix in schema.indexes {
        let (mut set_at, mut del_at) = (0usize, 0usize);
        for i in 0..ix.field {
            if written(i) {
                match w.get(i) {
                    Some(_) => set_at += 1,
                    None => del_at += 1,
                }
            }
        }
        let pos = match w.get(ix.field) {
            Some(_) => (set_from + 2 * set_at) as i64,
            None => -((del_from + del_at) as i64),
        };
        cmd.arg(num.format(pos));
    }
    cmd.arg(num.format(nset));
    for (i, f) in schema.fields.iter().enumerate() {
        if let (true, Some(v)) = (written(i), w.get(i)) {
            cmd.arg(f.name).arg(v);
        }
    }
    for (i, f) in schema.fields.iter().enumerate() {
        if written(i) && w.get(i).is_none() {
            cmd.arg(f.name);
        }
    }
    Ok(())
}

/// The kind of an index as the scripts read it: `1` unique (beside the
/// entities), `r` unique reserved in the value's own slot (the bucketed
/// layout), `0` plain index.
fn index_kind(schema: &HashSchema, ix: &super::IndexSchema) -> &'static str {
    if schema.reserved(ix) {
        "r"
    } else if ix.unique {
        "1"
    } else {
        "0"
    }
}

/// The variadic tail of a script call, built up argument by argument.
#[derive(Default)]
struct Args(Vec<Vec<u8>>);

impl Args {
    fn put(&mut self, v: impl redis::ToRedisArgs) -> &mut Self {
        v.write_redis_args(&mut self.0);
        self
    }
}

/// A failed write: a unique value held by ids the script could not verify
/// (with the error to report if they are not verified), or any other error.
enum Unique {
    Unverified(Vec<Holder>, Error),
    Error(Error),
}

impl From<Error> for Unique {
    fn from(e: Error) -> Self {
        Unique::Error(e)
    }
}

impl From<Unique> for Error {
    fn from(u: Unique) -> Self {
        match u {
            Unique::Unverified(_, e) | Unique::Error(e) => e,
        }
    }
}

/// Decodes the reply of the write script. Returns the new version (0 when
/// the model has none).
fn write_reply(schema: &HashSchema, key: &str, v: Value) -> std::result::Result<u64, Unique> {
    let items = match &v {
        Value::Array(items) => items,
        _ => return Err(Error::unexpected("the write script", &v).into()),
    };
    // The common reply, `{'ok', version}`, read without allocating.
    if let [Value::BulkString(status), version] = items.as_slice()
        && status.as_slice() == b"ok"
        && let Value::BulkString(version) = version
    {
        return Ok(std::str::from_utf8(version)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0));
    }
    let text = |i: usize| -> Option<String> {
        match items.get(i)? {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            Value::Int(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let e = match text(0).as_deref() {
        Some("ok") => return Ok(text(1).and_then(|s| s.parse().ok()).unwrap_or(0)),
        Some("exists") => Error::AlreadyExists {
            model: schema.model,
            key: key.to_owned(),
        },
        Some("missing") => Error::NotFound {
            model: schema.model,
            key: key.to_owned(),
        },
        Some("conflict") => Error::VersionConflict {
            key: key.to_owned(),
            expected: 0,
            actual: text(1).and_then(|s| s.parse().ok()).unwrap_or(0),
        },
        // {'unique', (field, value, holder, verified) ...}
        Some("unique") if items.len() >= 5 && (items.len() - 1) % 4 == 0 => {
            let mut unverified = Vec::new();
            let mut first = None;
            for j in 0..(items.len() - 1) / 4 {
                let at = 1 + 4 * j;
                let name = text(at).unwrap_or_default();
                let index = schema
                    .indexes
                    .iter()
                    .position(|ix| ix.unique && schema.fields[ix.field].name == name);
                let violation = Error::UniqueViolation {
                    model: schema.model,
                    field: index.map_or("?", |i| schema.fields[schema.indexes[i].field].rust_name),
                    value: text(at + 1).unwrap_or_default(),
                    holder: text(at + 2).unwrap_or_default(),
                };
                if text(at + 3).as_deref() == Some("1") {
                    // A live holder, verified in this call.
                    return Err(violation.into());
                }
                if let (Some(index), Some(Value::BulkString(id))) = (index, items.get(at + 2)) {
                    unverified.push(Holder {
                        index,
                        id: String::from_utf8_lossy(id).into_owned(),
                    });
                }
                first.get_or_insert(violation);
            }
            match first {
                Some(e) if !unverified.is_empty() => return Err(Unique::Unverified(unverified, e)),
                Some(e) => e,
                None => Error::unexpected("the write script", &v),
            }
        }
        _ => Error::unexpected("the write script", &v),
    };
    Err(e.into())
}

// ---------------------------------------------------------------------------
// Save

/// Saves one entity; see [`RedisHash::save`], [`RedisHash::insert`],
/// [`RedisHash::save_versioned`]. The output is the entity's new version
/// (0 for models without a `version` field).
pub struct Save<'a, M: RedisHash> {
    entity: &'a M,
    mode: WriteMode,
    ns: Option<Namespace>,
    key: String,
    plain: bool,
    /// The write goes out as the compact save script (`lua/save.lua`).
    compact: bool,
    /// The compact save script is not used (see [`Save::__general_script`]).
    general: bool,
    /// Cache entries depending on the entity.
    inv: Option<CacheInvalidations>,
    /// The write's outcome (its version, or why it was refused) while a
    /// second round deletes the members of the tags its invalidations took.
    settled: Option<Result<u64>>,
    holders: Holders,
    /// Invalidations sent beside a write that then asked to verify a
    /// unique-index holder: the tag members they took are deleted in the
    /// next round.
    earlier: Option<CacheInvalidations>,
    /// The invalidations still need a round (members of the tags taken).
    inv_pending: bool,
    /// Bucketed unique values: reserved before the write, the replaced
    /// ones released after it.
    res: Option<super::reserve::Reservations>,
}

impl<'a, M: RedisHash> Save<'a, M> {
    pub(super) fn new(entity: &'a M, mode: WriteMode) -> Self {
        Save {
            entity,
            mode,
            ns: None,
            key: String::new(),
            plain: false,
            compact: false,
            general: false,
            inv: None,
            settled: None,
            holders: Holders::default(),
            earlier: None,
            inv_pending: false,
            res: None,
        }
    }
}

impl<M: RedisHash> Save<'_, M> {
    /// Sends the save through the general write script even where the
    /// compact save script applies, for tests that compare the state the
    /// two leave: not public API, no semver guarantees.
    #[doc(hidden)]
    pub fn __general_script(mut self) -> Self {
        self.general = true;
        self
    }
}

namespaced!(
    ['a, M: RedisHash] Save<'a, M>,
    [M: RedisHash] Update<M>,
    [M: RedisHash] Load<M>,
    [M: RedisHash] Exists<M>,
    [M: RedisHash] TtlOf<M>,
    [M: RedisHash] Expire<M>,
    [M: RedisHash] Delete<M>,
    [M: RedisHash, T: CounterValue] Increment<M, T>,
    [M: RedisHash] FindBy<M>,
    [M: RedisHash] FindUnique<M>,
);

debug_op! {
    [M: RedisHash] Save<'_, M> => "Save", mode;
    [M: RedisHash] Update<M> => "Update", id;
    [M: RedisHash] Load<M> => "Load", id;
    [M: RedisHash] Exists<M> => "Exists", id;
    [M: RedisHash] TtlOf<M> => "TtlOf", id;
    [M: RedisHash] Expire<M> => "Expire", id, ttl;
    [M: RedisHash] Delete<M> => "Delete", id;
    [M: RedisHash, T: CounterValue] Increment<M, T> => "Increment", id;
    [M: RedisHash] FindBy<M> => "FindBy";
    [M: RedisHash] FindUnique<M> => "FindUnique";
}

impl<M: RedisHash> DeleteMany<M> {
    /// Runs every delete in namespace `ns`.
    pub fn namespace(self, ns: &Namespace) -> Self {
        DeleteMany {
            inner: self.inner.namespace(ns),
        }
    }
}

impl<M: RedisHash> Operation for Save<'_, M> {
    type Output = u64;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if self.settled.is_some() {
            // After the write: the members of invalidated tags, and the
            // release of replaced reserved values.
            if self.inv_pending
                && let Some(inv) = &mut self.inv
            {
                inv.prepare(plan)?;
            }
            if let Some(res) = &mut self.res {
                res.prepare_releases(plan)?;
            }
            return Ok(());
        }
        if M::SCHEMA.has_reserved() {
            if self.res.is_none() {
                self.start_reservations(plan)?;
            }
            if let Some(res) = &mut self.res
                && res.claiming()
            {
                // Before the write: reserve its unique values.
                return res.prepare_claims(plan);
            }
        }
        self.prepare_write(plan)?;
        if M::INVALIDATES_CACHE {
            // After the write in the pipeline: see `cache::CacheInvalidations`.
            let mut inv = CacheInvalidations::new(self.ns.clone());
            self.entity.cache_invalidations(&mut inv);
            inv.prepare(plan)?;
            self.inv = Some(inv);
        }
        if let Some(earlier) = &mut self.earlier {
            earlier.prepare(plan)?;
        }
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        if let Some(settled) = self.settled.take() {
            // After the write: the members of invalidated tags and the
            // released reservations, then the write's outcome.
            if after_write(&mut self.inv_pending, &mut self.inv, &mut self.res, replies)? {
                self.settled = Some(settled);
                return Ok(Step::Again);
            }
            return settled.map(Step::Done);
        }
        if let Some(res) = &mut self.res
            && res.claiming()
        {
            if let Err(e) = res.complete_claims(replies) {
                // A value held by another entity: the values reserved
                // meanwhile are released before the error is returned.
                if release_after_refusal(res, &e) {
                    self.settled = Some(Err(e));
                    return Ok(Step::Again);
                }
                return Err(e);
            }
            return Ok(Step::Again);
        }
        let written = self.complete_write(replies);
        if let (Err(e), Some(res)) = (&written, &mut self.res) {
            release_after_refusal(res, e);
        }
        let inv_step = match &mut self.inv {
            Some(inv) => Some(inv.complete(replies)?),
            None => None,
        };
        if let Some(mut earlier) = self.earlier.take() {
            earlier.complete(replies)?;
        }
        // A refused write is settled too: the invalidations beside it ran,
        // so the tag sets they took are gone, and their members are
        // deleted before the error is returned, or no tag could reach
        // those entries again.
        let settled = match written {
            Ok(Some(version)) => Ok(version),
            Ok(None) => {
                // A unique-index holder to verify: the write runs again,
                // and the tag members these invalidations took are deleted
                // then.
                if let Some(Step::Again) = inv_step {
                    self.earlier = self.inv.take();
                }
                return Ok(Step::Again);
            }
            Err(e) => Err(e),
        };
        self.inv_pending = matches!(inv_step, Some(Step::Again));
        let releasing = self.res.as_ref().is_some_and(|r| r.releasing());
        if self.inv_pending || releasing {
            self.settled = Some(settled);
            return Ok(Step::Again);
        }
        settled.map(Step::Done)
    }
}

impl<M: RedisHash> Save<'_, M> {
    /// The reservations of the bucketed unique values the entity sets.
    fn start_reservations(&mut self, plan: &Plan) -> Result<()> {
        let schema = M::SCHEMA;
        if plan.single_round {
            return Err(super::reserve::no_transaction(schema, "save"));
        }
        let mut id = IdBuf::new();
        self.entity.write_id(&mut id);
        let mut w = FieldWriter::new(schema);
        self.entity.encode(&mut w)?;
        let values: Vec<(usize, Vec<u8>)> = schema
            .indexes
            .iter()
            .enumerate()
            .filter(|(_, ix)| schema.reserved(ix))
            .filter_map(|(i, ix)| w.get(ix.field).map(|v| (i, v.to_vec())))
            .collect();
        self.res = Some(super::reserve::Reservations::new(
            schema,
            self.ns.as_ref(),
            &id,
            values,
        ));
        Ok(())
    }

    fn prepare_write(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        let mut id = IdBuf::new();
        self.entity.write_id(&mut id);
        self.key = schema.key(self.ns.as_ref(), &id);
        let mut w = FieldWriter::new(schema);
        self.entity.encode(&mut w)?;
        let all_present = (0..schema.fields.len()).all(|i| w.get(i).is_some() || !schema.writes(i));
        self.plain = self.mode == WriteMode::Save && schema.plain_save() && all_present;
        if self.plain {
            let cmd = plan.cmd_sized(
                "HSET",
                self.key.as_bytes(),
                2 * schema.fields.len(),
                schema.names_len() + w.encoded_len(),
            );
            for (i, f) in schema.fields.iter().enumerate() {
                if let (true, Some(v)) = (schema.writes(i), w.get(i)) {
                    cmd.arg(f.name).arg(v);
                }
            }
            return Ok(());
        }
        self.compact = self.mode == WriteMode::Save && !self.general && schema.compact_save();
        if self.compact {
            let ttl = full_write_ttl(schema, self.entity.expires_at_ms());
            return push_save(plan, schema, self.ns.as_ref(), &id, &self.key, &w, ttl);
        }
        let tokens = self.res.as_ref().map(|r| r.tokens()).unwrap_or_default();
        let changes = (0..schema.fields.len())
            .map(|i| match w.get(i) {
                _ if !schema.writes(i) => Change::Untouched,
                Some(v) => Change::Set(v),
                None => Change::Remove,
            })
            .collect();
        let call = WriteCall {
            mode: match self.mode {
                WriteMode::Save => "save",
                WriteMode::Insert => "insert",
                WriteMode::Versioned => "versioned",
            },
            ttl: full_write_ttl(schema, self.entity.expires_at_ms()),
            expected_version: (self.mode == WriteMode::Versioned).then(|| self.entity.version()),
            changes,
            verify: &self.holders.verify,
            tokens: &tokens,
        };
        self.holders.single_round = plan.single_round;
        push_write(plan, schema, self.ns.as_ref(), &id, &self.key, &call)
    }

    /// The new version, or `None` when the write runs again to verify a
    /// unique-index holder.
    fn complete_write(&mut self, replies: &mut Replies) -> Result<Option<u64>> {
        let v = replies.next_value()?;
        if self.plain {
            return match v {
                Value::Int(_) => Ok(Some(0)),
                other => Err(Error::unexpected("HSET", &other)),
            };
        }
        if self.compact {
            return match v {
                Value::Int(1) => Ok(Some(0)),
                other => Err(Error::unexpected(SaveScript::script().name(), &other)),
            };
        }
        if let Some(res) = &mut self.res {
            match reserved_reply(res, &v)? {
                Some(()) => {}
                // A refused token, renewed: the write runs again.
                None => return Ok(None),
            }
        }
        match self.holders.reply(M::SCHEMA, &self.key, v) {
            Err(Error::VersionConflict { key, actual, .. }) => Err(Error::VersionConflict {
                key,
                expected: self.entity.version(),
                actual,
            }),
            other => other,
        }
    }
}

/// Reads the round after an entity write or delete: the members of the
/// invalidated cache tags, then the releases of replaced reservations.
/// True while either has another round to go.
fn after_write(
    inv_pending: &mut bool,
    inv: &mut Option<CacheInvalidations>,
    res: &mut Option<super::reserve::Reservations>,
    replies: &mut Replies,
) -> Result<bool> {
    if *inv_pending && let Some(inv) = inv {
        *inv_pending = matches!(inv.complete(replies)?, Step::Again);
    }
    let releasing = match res {
        Some(res) => {
            res.complete_releases(replies)?;
            res.releasing()
        }
        None => false,
    };
    Ok(*inv_pending || releasing)
}

/// After a write refused for what the data holds (a unique value held by
/// another entity, the entity present or missing, a version conflict):
/// queues the release of the values this write reserved, so that no
/// orphan reservation outlives the refusal. True when there are rounds to
/// run before the error is returned. Other errors (a dropped connection,
/// an unexpected reply) release nothing: the reservations are then orphans
/// that the next saver of the value takes over.
fn release_after_refusal(res: &mut super::reserve::Reservations, e: &Error) -> bool {
    if matches!(
        e,
        Error::UniqueViolation { .. }
            | Error::AlreadyExists { .. }
            | Error::NotFound { .. }
            | Error::VersionConflict { .. }
    ) {
        res.release_claims();
    }
    res.releasing()
}

/// Reads the parts of a write's reply that concern bucketed unique values:
/// `Ok(None)` after a refused token that was renewed (the write runs
/// again), the error when it cannot be, and the released values of a
/// successful write recorded in `res`.
fn reserved_reply(res: &mut super::reserve::Reservations, v: &Value) -> Result<Option<()>> {
    let Value::Array(items) = v else {
        return Ok(Some(()));
    };
    match items.first() {
        Some(Value::BulkString(s)) if s.as_slice() == b"fenced" || s.as_slice() == b"stale" => {
            let field = match items.get(1) {
                Some(Value::BulkString(f)) => f.as_slice(),
                _ => b"",
            };
            res.refused(field)?;
            Ok(None)
        }
        Some(Value::BulkString(s)) if s.as_slice() == b"ok" && items.len() > 2 => {
            res.release_from(&items[2..]);
            Ok(Some(()))
        }
        _ => Ok(Some(())),
    }
}

// ---------------------------------------------------------------------------
// Update

/// Changes some fields of an existing entity; see [`RedisHash::update`].
/// The output is the new version (0 for models without one).
pub struct Update<M: RedisHash> {
    id: IdBuf,
    ns: Option<Namespace>,
    key: String,
    buf: Vec<u8>,
    /// Per field: untouched, set (byte range in `buf`), or removed.
    changes: Vec<Option<Option<(u32, u32)>>>,
    expiry: Option<Option<i64>>,
    error: Option<Error>,
    holders: Holders,
    /// Bucketed unique values set: reserved before the write, the replaced
    /// ones released after it.
    res: Option<super::reserve::Reservations>,
    /// The new version, while the replaced reservations are released.
    settled: Option<Result<u64>>,
    _m: PhantomData<fn() -> M>,
}

impl<M: RedisHash> Update<M> {
    pub(super) fn new<Q: IdValue + ?Sized>(id: &Q) -> Self {
        Update {
            id: id_of(id),
            ns: None,
            key: String::new(),
            buf: Vec::new(),
            changes: vec![None; M::SCHEMA.fields.len()],
            expiry: None,
            error: None,
            holders: Holders::default(),
            res: None,
            settled: None,
            _m: PhantomData,
        }
    }

    /// Sets `field` to `value` (`None` removes an optional field).
    pub fn set<T, F: Settable<M, T>>(mut self, field: F, value: impl Into<T>) -> Self {
        let value = value.into();
        let idx = field.position();
        let start = self.buf.len();
        match field.encode(&value, &mut self.buf) {
            Ok(present) => {
                if let Some(slot) = self.changes.get_mut(idx) {
                    *slot = Some(present.then_some((start as u32, self.buf.len() as u32)));
                }
                if M::SCHEMA.expires_at == Some(idx) {
                    self.expiry = Some(field.expiry_ms(&value));
                }
            }
            Err(message) => {
                self.error.get_or_insert(Error::Encode {
                    model: M::SCHEMA.model,
                    field: M::SCHEMA.fields.get(idx).map_or("?", |f| f.rust_name),
                    message,
                });
            }
        }
        self
    }
}

impl<M: RedisHash> Operation for Update<M> {
    type Output = u64;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let schema = M::SCHEMA;
        if self.settled.is_some() {
            // After the write: release the replaced reserved values.
            return match &mut self.res {
                Some(res) => res.prepare_releases(plan),
                None => Ok(()),
            };
        }
        // Reservations only when the update sets or removes a reserved
        // unique value (an update of other fields is one write, in a
        // transaction too).
        let touches_reserved = schema.indexes.iter().any(|ix| {
            schema.reserved(ix) && self.changes.get(ix.field).is_some_and(Option::is_some)
        });
        if touches_reserved {
            if self.res.is_none() {
                if plan.single_round {
                    return Err(super::reserve::no_transaction(schema, "update"));
                }
                let values: Vec<(usize, Vec<u8>)> = schema
                    .indexes
                    .iter()
                    .enumerate()
                    .filter(|(_, ix)| schema.reserved(ix))
                    .filter_map(|(i, ix)| match self.changes.get(ix.field) {
                        Some(Some(Some((s, e)))) => {
                            Some((i, self.buf[*s as usize..*e as usize].to_vec()))
                        }
                        _ => None,
                    })
                    .collect();
                self.res = Some(super::reserve::Reservations::new(
                    schema,
                    self.ns.as_ref(),
                    &self.id,
                    values,
                ));
            }
            if let Some(res) = &mut self.res
                && res.claiming()
            {
                return res.prepare_claims(plan);
            }
        }
        let tokens = self.res.as_ref().map(|r| r.tokens()).unwrap_or_default();
        self.key = schema.key(self.ns.as_ref(), &self.id);
        let changes = self
            .changes
            .iter()
            .map(|c| match c {
                None => Change::Untouched,
                Some(None) => Change::Remove,
                Some(Some((s, e))) => Change::Set(&self.buf[*s as usize..*e as usize]),
            })
            .collect();
        let ttl = match self.expiry {
            None => TtlOp::Keep,
            Some(at) => full_write_ttl(schema, at),
        };
        let call = WriteCall {
            mode: "update",
            ttl,
            expected_version: None,
            changes,
            verify: &self.holders.verify,
            tokens: &tokens,
        };
        self.holders.single_round = plan.single_round;
        push_write(plan, schema, self.ns.as_ref(), &self.id, &self.key, &call)
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        if let Some(settled) = self.settled.take() {
            let releasing = match &mut self.res {
                Some(res) => {
                    res.complete_releases(replies)?;
                    res.releasing()
                }
                None => false,
            };
            if releasing {
                self.settled = Some(settled);
                return Ok(Step::Again);
            }
            return settled.map(Step::Done);
        }
        if let Some(res) = &mut self.res
            && res.claiming()
        {
            if let Err(e) = res.complete_claims(replies) {
                if release_after_refusal(res, &e) {
                    self.settled = Some(Err(e));
                    return Ok(Step::Again);
                }
                return Err(e);
            }
            return Ok(Step::Again);
        }
        let v = replies.next_value()?;
        let written = match &mut self.res {
            Some(res) => match reserved_reply(res, &v) {
                // A refused token, renewed: the write runs again.
                Ok(None) => return Ok(Step::Again),
                Ok(Some(())) => self.holders.reply(M::SCHEMA, &self.key, v),
                Err(e) => Err(e),
            },
            None => self.holders.reply(M::SCHEMA, &self.key, v),
        };
        let settled = match written {
            Ok(Some(version)) => Ok(version),
            Ok(None) => return Ok(Step::Again),
            Err(e) => {
                let releasing = self
                    .res
                    .as_mut()
                    .is_some_and(|res| release_after_refusal(res, &e));
                if !releasing {
                    return Err(e);
                }
                Err(e)
            }
        };
        if self.res.as_ref().is_some_and(|r| r.releasing()) {
            self.settled = Some(settled);
            return Ok(Step::Again);
        }
        settled.map(Step::Done)
    }
}

// ---------------------------------------------------------------------------
// Load

/// Loads one entity; see [`RedisHash::load`].
pub struct Load<M: RedisHash> {
    id: IdBuf,
    ns: Option<Namespace>,
    key: String,
    _m: PhantomData<fn() -> M>,
}

impl<M: RedisHash> Load<M> {
    pub(super) fn new<Q: IdValue + ?Sized>(id: &Q) -> Self {
        Load {
            id: id_of(id),
            ns: None,
            key: String::new(),
            _m: PhantomData,
        }
    }
}

/// Decodes an `HMGET` reply of all fields: `None` when every field is
/// absent. An id field the hash does not hold is taken from `id`, the id
/// the key was rendered from (other clients keep the id only in the key).
pub(super) fn decode_hmget<M: RedisHash>(
    key: &str,
    v: &Value,
    id: Option<&IdBuf>,
) -> Result<Option<M>> {
    let values = match v {
        Value::Array(values) => values,
        other => return Err(Error::unexpected("HMGET", other)),
    };
    if values.iter().all(|v| matches!(v, Value::Nil)) {
        return Ok(None);
    }
    let schema = M::SCHEMA;
    let missing_id = |(i, v): (usize, &Value)| {
        matches!(v, Value::Nil)
            && schema
                .fields
                .get(i)
                .is_some_and(|f| f.kind == FieldKind::Id)
    };
    match id {
        Some(id) if values.iter().enumerate().any(missing_id) => {
            let filled = with_id_fields(schema, values, id);
            M::decode(&FieldReader::new(schema, key, &filled)).map(Some)
        }
        _ => M::decode(&FieldReader::new(schema, key, values)).map(Some),
    }
}

/// `values` with each absent id field set to its part of `id`, unescaped.
#[cold]
fn with_id_fields(schema: &HashSchema, values: &[Value], id: &IdBuf) -> Vec<Value> {
    values
        .iter()
        .zip(schema.fields)
        .map(|(v, f)| match v {
            Value::Nil if f.kind == FieldKind::Id => {
                let part = id.part(usize::from(f.id_part));
                Value::BulkString(
                    crate::keys::unescape(part).unwrap_or_else(|| part.as_bytes().to_vec()),
                )
            }
            v => v.clone(),
        })
        .collect()
}

impl<M: RedisHash> Operation for Load<M> {
    type Output = Option<M>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        self.key = schema.key(self.ns.as_ref(), &self.id);
        let cmd = plan.cmd_sized(
            "HMGET",
            self.key.as_bytes(),
            schema.fields.len(),
            schema.names_len(),
        );
        for name in schema.field_names() {
            cmd.arg(name);
        }
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Option<M>>> {
        let v = replies.next_value()?;
        decode_hmget(&self.key, &v, Some(&self.id)).map(Step::Done)
    }
}

// ---------------------------------------------------------------------------
// One field

/// One field of an entity; see [`RedisHash::load_field`].
pub struct LoadField<M: RedisHash, T> {
    id: IdBuf,
    ns: Option<Namespace>,
    idx: usize,
    key: String,
    decode: fn(&[u8]) -> std::result::Result<T, crate::codec::FieldError>,
    absent: fn() -> Option<T>,
    _m: PhantomData<fn() -> M>,
}

impl<M: RedisHash, T> LoadField<M, T> {
    pub(super) fn new<Q: IdValue + ?Sized, S: crate::codec::Slot<T>>(id: &Q, idx: usize) -> Self {
        LoadField {
            id: id_of(id),
            ns: None,
            idx,
            key: String::new(),
            decode: S::decode,
            absent: S::absent,
            _m: PhantomData,
        }
    }

    /// Runs the read in namespace `ns`.
    pub fn namespace(mut self, ns: &Namespace) -> Self {
        self.ns = Some(ns.clone());
        self
    }
}

impl<M: RedisHash, T> crate::keys::Namespaced for LoadField<M, T> {
    fn namespace(self, ns: &Namespace) -> Self {
        LoadField::namespace(self, ns)
    }
}

impl<M: RedisHash, T> std::fmt::Debug for LoadField<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = M::SCHEMA.fields.get(self.idx).map_or("?", |f| f.rust_name);
        f.debug_struct("LoadField")
            .field("model", &M::SCHEMA.model)
            .field("id", &self.id)
            .field("field", &field)
            .finish()
    }
}

impl<M: RedisHash, T> Operation for LoadField<M, T> {
    type Output = Option<T>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        let field = schema
            .fields
            .get(self.idx)
            .ok_or_else(|| Error::InvalidArgument {
                operation: "load_field",
                reason: format!("{} has no field number {}", schema.model, self.idx),
            })?;
        self.key = schema.key(self.ns.as_ref(), &self.id);
        plan.cmd("HGET", &self.key).arg(field.name);
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Option<T>>> {
        let v = replies.next_value()?;
        let raw = match &v {
            Value::Nil => return Ok(Step::Done((self.absent)())),
            Value::BulkString(b) => &b[..],
            Value::SimpleString(s) => s.as_bytes(),
            other => return Err(Error::unexpected("HGET", other)),
        };
        let field = &M::SCHEMA.fields[self.idx];
        (self.decode)(raw)
            .map(|t| Step::Done(Some(t)))
            .map_err(|e| {
                let mut err =
                    DecodeError::new(&self.key, Some(field.name), field.expected, Some(raw));
                if let Some(detail) = e.detail {
                    err = err.with_detail(detail);
                }
                err.into()
            })
    }
}

// ---------------------------------------------------------------------------
// Exists, TTL

/// Whether an entity exists; see [`RedisHash::exists`].
pub struct Exists<M: RedisHash> {
    id: IdBuf,
    ns: Option<Namespace>,
    _m: PhantomData<fn() -> M>,
}

impl<M: RedisHash> Exists<M> {
    pub(super) fn new<Q: IdValue + ?Sized>(id: &Q) -> Self {
        Exists {
            id: id_of(id),
            ns: None,
            _m: PhantomData,
        }
    }
}

impl<M: RedisHash> Operation for Exists<M> {
    type Output = bool;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.cmd("EXISTS", M::SCHEMA.key(self.ns.as_ref(), &self.id));
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        replies.next::<bool>("EXISTS").map(Step::Done)
    }
}

/// The remaining time to live; see [`RedisHash::ttl`].
pub struct TtlOf<M: RedisHash> {
    id: IdBuf,
    ns: Option<Namespace>,
    _m: PhantomData<fn() -> M>,
}

impl<M: RedisHash> TtlOf<M> {
    pub(super) fn new<Q: IdValue + ?Sized>(id: &Q) -> Self {
        TtlOf {
            id: id_of(id),
            ns: None,
            _m: PhantomData,
        }
    }
}

impl<M: RedisHash> Operation for TtlOf<M> {
    type Output = Ttl;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.cmd("PTTL", M::SCHEMA.key(self.ns.as_ref(), &self.id));
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Ttl>> {
        let ms: i64 = replies.next("PTTL")?;
        Ok(Step::Done(match ms {
            -2 => Ttl::Missing,
            -1 => Ttl::Persistent,
            ms => Ttl::Expires(Duration::from_millis(ms.max(0) as u64)),
        }))
    }
}

// ---------------------------------------------------------------------------
// Expire / persist

/// Sets or removes the TTL; see [`RedisHash::expire`], [`RedisHash::persist`].
/// The output says whether the entity exists.
pub struct Expire<M: RedisHash> {
    id: IdBuf,
    ns: Option<Namespace>,
    ttl: Option<Duration>,
    key: String,
    _m: PhantomData<fn() -> M>,
}

/// [`RedisHash::persist`] is an [`Expire`] without a TTL.
pub type Persist<M> = Expire<M>;

impl<M: RedisHash> Expire<M> {
    pub(super) fn new<Q: IdValue + ?Sized>(id: &Q, ttl: Option<Duration>) -> Self {
        Expire {
            id: id_of(id),
            ns: None,
            ttl,
            key: String::new(),
            _m: PhantomData,
        }
    }
}

impl<M: RedisHash> Operation for Expire<M> {
    type Output = bool;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        self.key = schema.key(self.ns.as_ref(), &self.id);
        // At most 2^53 - 1 ms: Redis refuses a TTL whose sum with the
        // current time overflows, and the script reads it as a double.
        let ms = self.ttl.map(crate::random::millis);
        if schema.indexes.is_empty() {
            match ms {
                Some(ms) => {
                    plan.cmd("PEXPIRE", &self.key).arg(ms);
                }
                None => {
                    // PERSIST answers 0 both for a missing key and for a key
                    // without TTL; EXISTS tells them apart.
                    plan.cmd("PERSIST", &self.key);
                    plan.cmd("EXISTS", &self.key);
                }
            }
            return Ok(());
        }
        let call = WriteCall {
            mode: "ttl",
            ttl: ms.map_or(TtlOp::Persist, TtlOp::Px),
            expected_version: None,
            changes: vec![Change::Untouched; schema.fields.len()],
            verify: &[],
            tokens: &[],
        };
        push_write(plan, schema, self.ns.as_ref(), &self.id, &self.key, &call)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        if M::SCHEMA.indexes.is_empty() {
            let first: i64 = replies.next("PEXPIRE")?;
            if self.ttl.is_some() {
                return Ok(Step::Done(first == 1));
            }
            return replies.next::<bool>("EXISTS").map(Step::Done);
        }
        let v = replies.next_value()?;
        match write_reply(M::SCHEMA, &self.key, v).map_err(Error::from) {
            Ok(_) => Ok(Step::Done(true)),
            Err(Error::NotFound { .. }) => Ok(Step::Done(false)),
            Err(e) => Err(e),
        }
    }
}

// ---------------------------------------------------------------------------
// Delete

/// Deletes one entity; see [`RedisHash::delete`]. The output says whether it
/// existed.
///
/// For a model whose deletes invalidate cache entries
/// (`#[redis(invalidates(..))]`), the entity is read first (`HMGET`, one
/// round trip) to know which entries depend on it; the delete then carries
/// the invalidations in its pipeline, and a third round trip deletes tag
/// members when there are any.
pub struct Delete<M: RedisHash> {
    id: IdBuf,
    ns: Option<Namespace>,
    phase: DeletePhase,
    existed: bool,
    inv: Option<CacheInvalidations>,
    /// The invalidations still need a round (members of the tags taken).
    inv_pending: bool,
    /// The reservations of the entity's bucketed unique values, released
    /// after the delete (not inside a transaction: there they stay, and
    /// the next save of each value takes them over).
    res: Option<super::reserve::Reservations>,
    single_round: bool,
    _m: PhantomData<fn() -> M>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeletePhase {
    /// Reading the entity (models with cache invalidations only).
    Read,
    Delete,
    /// Deleting the members of invalidated tags.
    Members,
}

impl<M: RedisHash> Delete<M> {
    pub(super) fn new<Q: IdValue + ?Sized>(id: &Q) -> Self {
        Delete {
            id: id_of(id),
            ns: None,
            phase: if M::INVALIDATES_CACHE {
                DeletePhase::Read
            } else {
                DeletePhase::Delete
            },
            existed: false,
            inv: None,
            inv_pending: false,
            res: None,
            single_round: false,
            _m: PhantomData,
        }
    }

    fn push_delete(&self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        let key = schema.key(self.ns.as_ref(), &self.id);
        if schema.indexes.is_empty() {
            plan.cmd("DEL", &key);
            return Ok(());
        }
        let mut call = DeleteScript::new(&key, self.id.joined(), schema.indexes.len());
        for k in schema.index_keys(self.ns.as_ref(), &self.id)? {
            call = call.indexes(k);
        }
        let mut a = Args::default();
        for ix in schema.indexes {
            a.put(schema.fields[ix.field].name)
                .put(index_kind(schema, ix));
        }
        call.fields(a.0).prepare(plan)
    }
}

impl<M: RedisHash> Operation for Delete<M> {
    type Output = bool;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match self.phase {
            DeletePhase::Read => {
                let schema = M::SCHEMA;
                let key = schema.key(self.ns.as_ref(), &self.id);
                let cmd = plan.cmd("HMGET", &key);
                for name in schema.field_names() {
                    cmd.arg(name);
                }
                Ok(())
            }
            DeletePhase::Delete => {
                self.single_round = plan.single_round;
                self.push_delete(plan)?;
                match &mut self.inv {
                    Some(inv) => inv.prepare(plan),
                    None => Ok(()),
                }
            }
            DeletePhase::Members => {
                if self.inv_pending
                    && let Some(inv) = &mut self.inv
                {
                    inv.prepare(plan)?;
                }
                match &mut self.res {
                    Some(res) => res.prepare_releases(plan),
                    None => Ok(()),
                }
            }
        }
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        match self.phase {
            DeletePhase::Read => {
                let key = M::SCHEMA.key(self.ns.as_ref(), &self.id);
                let v = replies.next_value()?;
                // An entity that does not decode is deleted all the same;
                // only the entries its fields would name cannot be found.
                match decode_hmget::<M>(&key, &v, Some(&self.id)) {
                    Ok(Some(entity)) => {
                        let mut inv = CacheInvalidations::new(self.ns.clone());
                        entity.cache_invalidations(&mut inv);
                        self.inv = Some(inv);
                    }
                    Ok(None) => {}
                    Err(e) => log::warn!(
                        target: "redis_state::cache",
                        "deleting `{key}`: it does not decode ({e}), so the cache entries that depend on it are not known and stay"
                    ),
                }
                self.phase = DeletePhase::Delete;
                Ok(Step::Again)
            }
            DeletePhase::Delete => {
                let schema = M::SCHEMA;
                let v = replies.next_value()?;
                self.existed = match &v {
                    Value::Int(n) => *n > 0,
                    Value::Array(items) if schema.has_reserved() => {
                        if !self.single_round {
                            let mut res = super::reserve::Reservations::new(
                                schema,
                                self.ns.as_ref(),
                                &self.id,
                                [],
                            );
                            res.release_from(items.get(1..).unwrap_or_default());
                            self.res = Some(res);
                        }
                        matches!(items.first(), Some(Value::Int(n)) if *n > 0)
                    }
                    other => return Err(Error::unexpected("the delete script", other)),
                };
                self.inv_pending = match &mut self.inv {
                    Some(inv) => matches!(inv.complete(replies)?, Step::Again),
                    None => false,
                };
                let releasing = self.res.as_ref().is_some_and(|r| r.releasing());
                if self.inv_pending || releasing {
                    self.phase = DeletePhase::Members;
                    return Ok(Step::Again);
                }
                Ok(Step::Done(self.existed))
            }
            DeletePhase::Members => {
                if after_write(&mut self.inv_pending, &mut self.inv, &mut self.res, replies)? {
                    return Ok(Step::Again);
                }
                Ok(Step::Done(self.existed))
            }
        }
    }
}

/// Deletes many entities; see [`RedisHash::delete_many`]. The output is the
/// number that existed.
#[derive(Debug)]
pub struct DeleteMany<M: RedisHash> {
    inner: Many<Delete<M>>,
}

impl<M: RedisHash> DeleteMany<M> {
    pub(super) fn new(inner: Many<Delete<M>>) -> Self {
        DeleteMany { inner }
    }
}

impl<M: RedisHash> Operation for DeleteMany<M> {
    type Output = usize;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.inner.prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<usize>> {
        Ok(match self.inner.complete(replies)? {
            Step::Done(existed) => Step::Done(existed.into_iter().filter(|&e| e).count()),
            Step::Again => Step::Again,
        })
    }
}

// ---------------------------------------------------------------------------
// Increment

/// Adds to a counter field; see [`RedisHash::increment`]. The output is the
/// new value.
pub struct Increment<M: RedisHash, T: CounterValue> {
    id: IdBuf,
    ns: Option<Namespace>,
    field: usize,
    by: T::Delta,
    key: String,
    _m: PhantomData<fn() -> M>,
}

impl<M: RedisHash, T: CounterValue> Increment<M, T> {
    pub(super) fn new<Q: IdValue + ?Sized>(id: &Q, field: usize, by: T::Delta) -> Self {
        Increment {
            id: id_of(id),
            ns: None,
            field,
            by,
            key: String::new(),
            _m: PhantomData,
        }
    }
}

impl<M: RedisHash, T: CounterValue> Operation for Increment<M, T> {
    type Output = T;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        let field = &schema.fields[self.field];
        debug_assert_eq!(field.kind, FieldKind::Counter);
        self.key = schema.key(self.ns.as_ref(), &self.id);
        let mut delta = Vec::new();
        T::encode_delta(self.by, &mut delta);
        IncrScript::new(
            &self.key,
            field.name,
            &delta,
            if T::FLOAT { "1" } else { "0" },
            T::MIN,
            T::MAX,
        )
        .prepare(plan)
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<T>> {
        let schema = M::SCHEMA;
        let field = &schema.fields[self.field];
        let v = replies.next_value()?;
        let items = match &v {
            Value::Array(items) => items,
            other => return Err(Error::unexpected("the increment script", other)),
        };
        let text = |i: usize| match items.get(i) {
            Some(Value::BulkString(b)) => Some(b.as_slice()),
            _ => None,
        };
        match text(0) {
            Some(b"ok") => {
                let raw = text(1).unwrap_or_default();
                T::decode(raw).map(Step::Done).map_err(|e| {
                    let mut d =
                        DecodeError::new(&self.key, Some(field.name), T::EXPECTED, Some(raw));
                    d.detail = e.detail;
                    d.into()
                })
            }
            Some(b"missing") => Err(Error::NotFound {
                model: schema.model,
                key: self.key.clone(),
            }),
            Some(b"range") => Err(Error::CounterOutOfRange {
                key: self.key.clone(),
                field: field.rust_name,
                ty: T::EXPECTED,
                message: format!(
                    "adding {} gives {}; the counter is unchanged",
                    self.by,
                    String::from_utf8_lossy(text(1).unwrap_or_default())
                ),
            }),
            _ => Err(Error::unexpected("the increment script", &v)),
        }
    }
}

// ---------------------------------------------------------------------------
// Find

enum FindState {
    /// Round 1: look the value up in the index (every bucket's partition
    /// of it, in the bucketed layout).
    Lookup,
    /// Round 2: load the candidates, verified: (partition, id) in the
    /// order of the result.
    Verify(Vec<(usize, String)>),
    /// Without a limit: each partition is read a page at a time; the
    /// candidates of the last page read (partition, id), verified in the
    /// same round as the next page's read.
    Paged(Vec<(usize, String)>),
    /// After [`FindState::Verify`]: the candidates whose find script a
    /// migrating slot refused ([`Finder::recheck`]) are read one key per
    /// command; [`Finder::held`] holds the others' results.
    Recheck,
    Failed(Option<Error>),
}

/// Whether a find script's error reply is a Cluster's refusal of its keys
/// while their slot migrates (`TRYAGAIN`: the keys are split between the
/// two nodes; `ASK`, `MOVED`, `CROSSSLOT` for a script the client could
/// not redirect as a whole), rather than a fault of the data.
fn is_slot_refusal(e: &redis::ServerError) -> bool {
    matches!(e.code(), "TRYAGAIN" | "ASK" | "MOVED" | "CROSSSLOT")
}

struct Finder<M: RedisHash> {
    ns: Option<Namespace>,
    scope_id: IdBuf,
    scope_parts: usize,
    field: usize,
    unique: bool,
    value: Vec<u8>,
    limit: Option<(usize, usize)>,
    state: FindState,
    /// The index partitions looked up: one, or one per bucket.
    index_keys: Vec<String>,
    /// Round 2: per partition with candidates, its position in
    /// `index_keys` and the positions of its candidates in the result.
    groups: Vec<(usize, Vec<usize>)>,
    /// Round 2: the find scripts sent, each with the positions of its
    /// entities in the result (at most [`FIND_CHUNK`] per script).
    calls: Vec<Vec<usize>>,
    /// Index entries one paged read returns at most.
    page: usize,
    /// Paged reads: per partition, the lower bound of its next page, or
    /// `None` once read to the end.
    cursors: Vec<Option<Vec<u8>>>,
    /// Paged reads: the partitions read in the current round.
    reading: Vec<usize>,
    /// Paged reads: the entities verified so far, with their ids.
    found: Vec<(String, M)>,
    /// Pages read so far; see [`Operation::progress`].
    pages: u64,
    /// Candidates (position in the round's result, id) whose find script
    /// a migrating slot refused, to read one key per command in the next
    /// round: a lone command follows `ASK` to whichever node holds the key
    /// now, where a script over keys split between two nodes gets
    /// `TRYAGAIN` until the migration goes on.
    recheck: Vec<(usize, String)>,
    /// [`FindState::Recheck`]: the results of the verify round.
    held: Vec<Option<M>>,
    /// Whether candidates were rechecked: `found` is then out of id order.
    rechecked: bool,
    /// A unique field of the bucketed layout: the one partition read is
    /// the value's reservation, whose holder lives in another slot and is
    /// verified with `HMGET` rather than the find script.
    reserved: bool,
    _m: PhantomData<fn() -> M>,
}

/// Index entries one paged read of a partition returns at most, when
/// `find_by` has no limit: four find scripts' worth ([`FIND_CHUNK`]), so a
/// round's longest command is about as long as one script, and the rounds
/// of a large result are few enough (200 for 200,000 matches) that their
/// round trips cost less than the reads themselves.
const FIND_PAGE: usize = 4 * FIND_CHUNK;

/// Candidates one find script verifies at most: a lookup over many matches
/// runs several scripts (pipelined in one round trip) rather than one that
/// grows with the data, so other clients are served between them.
const FIND_CHUNK: usize = 256;

impl<M: RedisHash> Finder<M> {
    fn new<Sc: IdValue + ?Sized>(
        scope: &Sc,
        field: usize,
        unique: bool,
        encode: impl FnOnce(&mut Vec<u8>) -> std::result::Result<bool, String>,
    ) -> Self {
        let mut value = Vec::new();
        let state = match encode(&mut value) {
            Ok(true) => FindState::Lookup,
            // Looking up `None`: absent values are not indexed.
            Ok(false) => FindState::Verify(Vec::new()),
            Err(message) => FindState::Failed(Some(Error::Encode {
                model: M::SCHEMA.model,
                field: M::SCHEMA.fields.get(field).map_or("?", |f| f.rust_name),
                message,
            })),
        };
        Finder {
            ns: None,
            scope_id: id_of(scope),
            scope_parts: Sc::PARTS,
            field,
            unique,
            value,
            limit: None,
            state,
            index_keys: Vec::new(),
            groups: Vec::new(),
            calls: Vec::new(),
            page: FIND_PAGE,
            cursors: Vec::new(),
            reading: Vec::new(),
            found: Vec::new(),
            pages: 0,
            recheck: Vec::new(),
            held: Vec::new(),
            rechecked: false,
            reserved: false,
            _m: PhantomData,
        }
    }

    /// The prefix of the index members of the looked-up value.
    fn prefix_len(&self) -> usize {
        self.value.len().to_string().len() + 1 + self.value.len() + 1
    }

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        match &mut self.state {
            FindState::Failed(e) => Err(e.take().unwrap_or_else(|| Error::UnexpectedReply {
                context: "find_by",
                found: "an operation run twice".to_owned(),
            })),
            FindState::Lookup => {
                let want = schema.key.scope_parts().count();
                if self.scope_parts != want {
                    return Err(Error::InvalidKeyPart {
                        what: "index scope",
                        value: format!("{} part(s)", self.scope_parts),
                        reason: if want == 0 {
                            "this model's indexes are not scoped: use find_by / find_unique"
                        } else {
                            "give the id fields of the key's hash tag: use find_by_in / find_unique_in"
                        },
                    });
                }
                let ix = schema
                    .indexes
                    .iter()
                    .find(|ix| ix.field == self.field && ix.unique == self.unique)
                    .ok_or_else(|| Error::UnexpectedReply {
                        context: "find_by",
                        found: "a field without an index".to_owned(),
                    })?;
                self.reserved = self.unique && schema.reserved(ix);
                self.index_keys = if self.reserved {
                    // The value's reservation, in its own bucket's slot.
                    vec![schema.reservation_key(self.ns.as_ref(), ix, &self.value)]
                } else if schema.buckets > 0 {
                    // The bucketed layout: every bucket's partition, one
                    // command each, pipelined per node by the executor.
                    (0..schema.buckets)
                        .map(|b| schema.index_key(&schema.bucket_scope(self.ns.as_ref(), b), ix))
                        .collect()
                } else {
                    let scope = schema.scope(self.ns.as_ref(), &self.scope_id)?;
                    vec![schema.index_key(&scope, ix)]
                };
                if self.limit.is_none() && !self.unique {
                    // Every match: read a page at a time from the start.
                    let (lo, _) = self.bounds();
                    self.cursors = vec![Some(lo); self.index_keys.len()];
                    self.state = FindState::Paged(Vec::new());
                    return self.prepare(plan);
                }
                let fan_out = self.index_keys.len() > 1;
                for index_key in &self.index_keys {
                    if self.unique {
                        plan.cmd("HGET", index_key).arg(&self.value);
                        continue;
                    }
                    let (lo, hi) = self.bounds();
                    let cmd = plan.cmd("ZRANGEBYLEX", index_key);
                    cmd.arg(lo).arg(hi);
                    match self.limit {
                        // Each partition's first `offset + count`: the
                        // merged first ones are among them.
                        Some((offset, count)) if fan_out => {
                            cmd.arg("LIMIT").arg(0).arg(offset.saturating_add(count));
                        }
                        Some((offset, count)) => {
                            cmd.arg("LIMIT").arg(offset).arg(count);
                        }
                        None => {}
                    }
                }
                Ok(())
            }
            FindState::Verify(ids) => {
                let ids = std::mem::take(ids);
                let r = self.prepare_verify(&ids, plan);
                self.state = FindState::Verify(ids);
                r
            }
            FindState::Paged(ids) => {
                let ids = std::mem::take(ids);
                let r = self.prepare_verify(&ids, plan);
                self.state = FindState::Paged(ids);
                r?;
                self.prepare_recheck(plan);
                let (_, hi) = self.bounds();
                self.reading.clear();
                for (part, cursor) in self.cursors.iter().enumerate() {
                    if let Some(lo) = cursor {
                        plan.cmd("ZRANGEBYLEX", &self.index_keys[part])
                            .arg(lo.as_slice())
                            .arg(hi.as_slice())
                            .arg("LIMIT")
                            .arg(0)
                            .arg(self.page);
                        self.reading.push(part);
                    }
                }
                Ok(())
            }
            FindState::Recheck => {
                self.prepare_recheck(plan);
                Ok(())
            }
        }
    }

    /// Writes one `HMGET` per candidate of [`Finder::recheck`].
    fn prepare_recheck(&self, plan: &mut Plan) {
        let schema = M::SCHEMA;
        for (_, id) in &self.recheck {
            let key = schema.key(self.ns.as_ref(), &IdBuf::from_joined(id));
            let cmd = plan.cmd_sized(
                "HMGET",
                key.as_bytes(),
                schema.fields.len(),
                schema.names_len(),
            );
            for name in schema.field_names() {
                cmd.arg(name);
            }
        }
    }

    /// Reads the replies of [`Finder::prepare_recheck`], written for
    /// `recheck`: per candidate, its position, its id and the entity if it
    /// holds the looked-up value. An entity that does not is left out, its
    /// index entry kept: the script that would remove it atomically cannot
    /// run while the slot is split, and a later find removes it.
    fn complete_recheck(
        &mut self,
        recheck: Vec<(usize, String)>,
        replies: &mut Replies,
    ) -> Result<Vec<(usize, String, Option<M>)>> {
        let schema = M::SCHEMA;
        if !recheck.is_empty() {
            self.rechecked = true;
        }
        let mut out = Vec::with_capacity(recheck.len());
        for (at, id) in recheck {
            let v = replies.next_value()?;
            let holds = matches!(
                &v,
                Value::Array(row) if matches!(
                    row.get(self.field),
                    Some(Value::BulkString(b)) if *b == self.value
                )
            );
            let m = if holds {
                let buf = IdBuf::from_joined(&id);
                let key = schema.key(self.ns.as_ref(), &buf);
                decode_hmget::<M>(&key, &v, Some(&buf))?
            } else {
                None
            };
            out.push((at, id, m));
        }
        Ok(out)
    }

    /// The lexical range of the looked-up value's index members.
    fn bounds(&self) -> (Vec<u8>, Vec<u8>) {
        let mut lo = Vec::with_capacity(self.value.len() + 24);
        lo.push(b'[');
        lo.extend_from_slice(self.value.len().to_string().as_bytes());
        lo.push(b':');
        lo.extend_from_slice(&self.value);
        lo.push(b':');
        let mut hi = lo.clone();
        hi[0] = b'(';
        hi.push(0xff);
        (lo, hi)
    }

    /// Writes the find scripts verifying candidates (partition, id).
    fn prepare_verify(&mut self, ids: &[(usize, String)], plan: &mut Plan) -> Result<()> {
        let schema = M::SCHEMA;
        self.calls.clear();
        if ids.is_empty() {
            return Ok(());
        }
        if self.reserved {
            // The holder the reservation names, read in its own slot; the
            // value is checked on the reply (an orphan reads as none).
            for (at, (_, id)) in ids.iter().enumerate() {
                let key = schema.key(self.ns.as_ref(), &IdBuf::from_joined(id));
                let cmd = plan.cmd("HMGET", &key);
                for name in schema.field_names() {
                    cmd.arg(name);
                }
                self.calls.push(vec![at]);
            }
            return Ok(());
        }
        {
            {
                self.groups.clear();
                for (at, (part, _)) in ids.iter().enumerate() {
                    match self.groups.iter_mut().find(|(p, _)| p == part) {
                        Some((_, members)) => members.push(at),
                        None => self.groups.push((*part, vec![at])),
                    }
                }
                let mut names = Args::default();
                for name in schema.field_names() {
                    names.put(name);
                }
                self.calls.clear();
                for (part, members) in &self.groups {
                    let index_key = &self.index_keys[*part];
                    // An entry naming an entity outside the partition's hash
                    // tag (written by hand, or by another program) cannot be
                    // one of this scope: it is removed unread, never sent as
                    // a key (CROSSSLOT on a Cluster, another tenant's entity
                    // anywhere).
                    let tag = crate::keys::hash_tag(index_key.as_bytes());
                    let mut local: Vec<(usize, String)> = Vec::new();
                    let mut foreign: Vec<usize> = Vec::new();
                    for &at in members {
                        let key = schema.key(self.ns.as_ref(), &IdBuf::from_joined(&ids[at].1));
                        if crate::keys::hash_tag(key.as_bytes()) == tag {
                            local.push((at, key));
                        } else {
                            foreign.push(at);
                        }
                    }
                    // Many candidates are verified in scripts of at most
                    // FIND_CHUNK entities, pipelined in the same round.
                    let chunks = local.len().div_ceil(FIND_CHUNK).max(1);
                    for c in 0..chunks {
                        let from = c * FIND_CHUNK;
                        let chunk = &local[from..local.len().min(from + FIND_CHUNK)];
                        let mut call = FindScript::new(
                            index_key,
                            schema.fields[self.field].name,
                            &self.value,
                            if self.unique { "1" } else { "0" },
                            schema.fields.len(),
                        );
                        for (_, key) in chunk {
                            call = call.entities(key);
                        }
                        let mut a = Args(names.0.clone());
                        for (at, _) in chunk {
                            a.put(ids[*at].1.as_str());
                        }
                        if c == 0 {
                            for &at in &foreign {
                                a.put(ids[at].1.as_str());
                            }
                        }
                        call.rest(a.0).prepare(plan)?;
                        self.calls.push(chunk.iter().map(|(at, _)| *at).collect());
                    }
                }
                Ok(())
            }
        }
    }

    /// Reads the replies of [`Finder::prepare_verify`]: per candidate, the
    /// entity, or `None` for a stale entry (removed by the script). The
    /// candidates of a script a migrating slot refused are `None` and go to
    /// [`Finder::recheck`] (with their positions in `ids`).
    fn complete_verify(
        &mut self,
        ids: &[(usize, String)],
        replies: &mut Replies,
    ) -> Result<Vec<Option<M>>> {
        let schema = M::SCHEMA;
        let mut out: Vec<Option<M>> = Vec::new();
        out.resize_with(ids.len(), || None);
        if self.reserved {
            for members in &self.calls {
                let v = replies.next_value()?;
                let Some(&at) = members.first() else { continue };
                let holds = match &v {
                    Value::Array(values) => matches!(
                        values.get(self.field),
                        Some(Value::BulkString(b)) if *b == self.value
                    ),
                    _ => false,
                };
                if holds {
                    let id = IdBuf::from_joined(&ids[at].1);
                    let key = schema.key(self.ns.as_ref(), &id);
                    out[at] = decode_hmget::<M>(&key, &v, Some(&id))?;
                }
            }
            return Ok(out);
        }
        for members in &self.calls {
            let rows = match replies.next_raw()? {
                Value::Array(rows) => rows,
                Value::ServerError(e) if is_slot_refusal(&e) => {
                    self.recheck
                        .extend(members.iter().map(|&at| (at, ids[at].1.clone())));
                    continue;
                }
                Value::ServerError(e) => return Err(replies.server_error(e)),
                other => return Err(Error::unexpected("the find script", &other)),
            };
            for (row, &at) in rows.iter().zip(members) {
                if matches!(row, Value::Nil) {
                    continue; // stale index entry, removed by the script
                }
                let id = IdBuf::from_joined(&ids[at].1);
                let key = schema.key(self.ns.as_ref(), &id);
                out[at] = decode_hmget::<M>(&key, row, Some(&id))?;
            }
        }
        Ok(out)
    }

    /// The ids one partition's lookup names.
    fn ids_of(&self, v: Value) -> Result<Vec<String>> {
        let prefix_len = self.prefix_len();
        Ok(match v {
            Value::Nil => Vec::new(),
            Value::BulkString(entry) if self.reserved => {
                // `<id>|<token>`: the holder is the text before the last `|`.
                let entry = String::from_utf8_lossy(&entry).into_owned();
                match entry.rsplit_once('|') {
                    Some((id, _)) => vec![id.to_owned()],
                    None => Vec::new(),
                }
            }
            Value::BulkString(id) if self.unique => {
                vec![String::from_utf8_lossy(&id).into_owned()]
            }
            Value::Array(members) if !self.unique => members
                .into_iter()
                .filter_map(|m| match m {
                    Value::BulkString(b) if b.len() >= prefix_len => {
                        Some(String::from_utf8_lossy(&b[prefix_len..]).into_owned())
                    }
                    _ => None,
                })
                .collect(),
            other => return Err(Error::unexpected("an index lookup", &other)),
        })
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Vec<M>>> {
        let schema = M::SCHEMA;
        match &mut self.state {
            FindState::Failed(_) => Ok(Step::Done(Vec::new())),
            FindState::Lookup => {
                let fan_out = self.index_keys.len() > 1;
                let mut found: Vec<(usize, String)> = Vec::new();
                for part in 0..self.index_keys.len() {
                    let v = replies.next_value()?;
                    for id in self.ids_of(v)? {
                        // An entry naming an id of another bucket cannot
                        // be checked in this partition's slot: skipped.
                        if fan_out
                            && usize::from(schema.bucket_of(&IdBuf::from_joined(&id))) != part
                        {
                            continue;
                        }
                        found.push((part, id));
                    }
                }
                if fan_out {
                    // The partitions' entries merged in id order, as one
                    // index would list them.
                    found.sort_by(|a, b| a.1.cmp(&b.1));
                    if let Some((offset, count)) = self.limit {
                        found = found.into_iter().skip(offset).take(count).collect();
                    }
                }
                if found.is_empty() {
                    return Ok(Step::Done(Vec::new()));
                }
                self.state = FindState::Verify(found);
                Ok(Step::Again)
            }
            FindState::Verify(ids) => {
                if ids.is_empty() {
                    return Ok(Step::Done(Vec::new()));
                }
                let ids = std::mem::take(ids);
                let out = self.complete_verify(&ids, replies)?;
                if self.recheck.is_empty() {
                    return Ok(Step::Done(out.into_iter().flatten().collect()));
                }
                self.held = out;
                self.state = FindState::Recheck;
                Ok(Step::Again)
            }
            FindState::Recheck => {
                let recheck = std::mem::take(&mut self.recheck);
                for (at, _, m) in self.complete_recheck(recheck, replies)? {
                    if let Some(slot) = self.held.get_mut(at) {
                        *slot = m;
                    }
                }
                let held = std::mem::take(&mut self.held);
                Ok(Step::Done(held.into_iter().flatten().collect()))
            }
            FindState::Paged(ids) => {
                let ids = std::mem::take(ids);
                // The replies come in the order written: this round's
                // scripts (whose refused candidates are rechecked in the
                // next round), the last round's refused candidates, then
                // the pages.
                let previous = std::mem::take(&mut self.recheck);
                let verified = self.complete_verify(&ids, replies)?;
                for ((_, id), m) in ids.into_iter().zip(verified) {
                    if let Some(m) = m {
                        self.found.push((id, m));
                    }
                }
                for (_, id, m) in self.complete_recheck(previous, replies)? {
                    if let Some(m) = m {
                        self.found.push((id, m));
                    }
                }
                let fan_out = self.index_keys.len() > 1;
                let prefix_len = self.prefix_len();
                let mut next: Vec<(usize, String)> = Vec::new();
                for &part in &self.reading {
                    let members = match replies.next_value()? {
                        Value::Array(members) => members,
                        other => return Err(Error::unexpected("an index lookup", &other)),
                    };
                    // A short page is the partition's last; otherwise the
                    // next page starts after this one's last member.
                    self.cursors[part] = match members.last() {
                        Some(Value::BulkString(last)) if members.len() >= self.page => {
                            let mut lo = Vec::with_capacity(last.len() + 1);
                            lo.push(b'(');
                            lo.extend_from_slice(last);
                            Some(lo)
                        }
                        _ => None,
                    };
                    for m in members {
                        let Value::BulkString(b) = m else { continue };
                        if b.len() < prefix_len {
                            continue;
                        }
                        let id = String::from_utf8_lossy(&b[prefix_len..]).into_owned();
                        // An entry naming an id of another bucket cannot
                        // be checked in this partition's slot: skipped.
                        if fan_out
                            && usize::from(schema.bucket_of(&IdBuf::from_joined(&id))) != part
                        {
                            continue;
                        }
                        next.push((part, id));
                    }
                }
                self.pages += 1;
                if next.is_empty()
                    && self.recheck.is_empty()
                    && self.cursors.iter().all(Option::is_none)
                {
                    let mut found = std::mem::take(&mut self.found);
                    if fan_out || self.rechecked {
                        // The partitions' entries (and those rechecked a
                        // round later) merged in id order, as one index
                        // would list them.
                        found.sort_by(|a, b| a.0.cmp(&b.0));
                    }
                    return Ok(Step::Done(found.into_iter().map(|(_, m)| m).collect()));
                }
                self.state = FindState::Paged(next);
                Ok(Step::Again)
            }
        }
    }
}

/// Finds entities by an indexed field; see [`RedisHash::find_by`].
pub struct FindBy<M: RedisHash> {
    ns: Option<Namespace>,
    inner: Finder<M>,
}

impl<M: RedisHash> FindBy<M> {
    /// Used by the derive.
    #[doc(hidden)]
    pub fn __new<Sc: IdValue + ?Sized>(
        scope: &Sc,
        field: usize,
        encode: impl FnOnce(&mut Vec<u8>) -> std::result::Result<bool, String>,
    ) -> Self {
        Self::new(scope, field, encode)
    }

    pub(super) fn new<Sc: IdValue + ?Sized>(
        scope: &Sc,
        field: usize,
        encode: impl FnOnce(&mut Vec<u8>) -> std::result::Result<bool, String>,
    ) -> Self {
        FindBy {
            ns: None,
            inner: Finder::new(scope, field, false, encode),
        }
    }

    /// Returns at most `count` entities, skipping the first `offset` index
    /// entries (in id order).
    pub fn limit(mut self, offset: usize, count: usize) -> Self {
        self.inner.limit = Some((offset, count));
        self
    }

    /// Without a [`limit`](Self::limit), reads the index at most `entries`
    /// entries per command (at least 1; 1,024 by default): a larger page
    /// takes fewer round trips, a smaller one keeps each command shorter.
    pub fn page_size(mut self, entries: usize) -> Self {
        self.inner.page = entries.max(1);
        self
    }
}

impl<M: RedisHash> Operation for FindBy<M> {
    type Output = Vec<M>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.inner.ns = self.ns.clone();
        self.inner.prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Vec<M>>> {
        self.inner.complete(replies)
    }
    fn progress(&self) -> u64 {
        self.inner.pages
    }
}

/// Finds the entity holding a unique value; see [`RedisHash::find_unique`].
pub struct FindUnique<M: RedisHash> {
    ns: Option<Namespace>,
    inner: Finder<M>,
}

impl<M: RedisHash> FindUnique<M> {
    /// Used by the derive.
    #[doc(hidden)]
    pub fn __new<Sc: IdValue + ?Sized>(
        scope: &Sc,
        field: usize,
        encode: impl FnOnce(&mut Vec<u8>) -> std::result::Result<bool, String>,
    ) -> Self {
        Self::new(scope, field, encode)
    }

    pub(super) fn new<Sc: IdValue + ?Sized>(
        scope: &Sc,
        field: usize,
        encode: impl FnOnce(&mut Vec<u8>) -> std::result::Result<bool, String>,
    ) -> Self {
        FindUnique {
            ns: None,
            inner: Finder::new(scope, field, true, encode),
        }
    }
}

impl<M: RedisHash> Operation for FindUnique<M> {
    type Output = Option<M>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.inner.ns = self.ns.clone();
        self.inner.prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Option<M>>> {
        Ok(match self.inner.complete(replies)? {
            Step::Done(mut found) => Step::Done(found.pop()),
            Step::Again => Step::Again,
        })
    }
}
