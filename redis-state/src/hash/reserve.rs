//! Unique values of the bucketed layout: each value is reserved in the slot
//! of its own bucket before the entity write, with clock-free fencing of
//! reservations whose holder never wrote (see the module docs of
//! [`hash`](super), *Bucketed layout*, and `docs/design.md`).
//!
//! A reservation is one entry of the HASH `<bucket scope>:#<collection>:uniq:<field>`
//! of the value's bucket (FNV-1a of the value's bytes modulo the number of
//! buckets): value -> `<id>|<token>`, the token `<server ms>.<random hex>`.
//! A write that takes a reserved value presents its token; the write script
//! refuses a token revoked in the entity's bucket (`…:#<collection>:fence`,
//! a ZSET token -> revocation time) or older than [`PENDING_MS`].

use redis::Value;

use super::{HashSchema, IndexSchema};
use crate::error::{Error, Result};
use crate::keys::{IdBuf, Namespace};
use crate::op::{Operation, Plan, Replies};

crate::script! {
    /// Reserves a unique value in its own slot. See `lua/reserve.lua`.
    struct ReserveScript {
        name: "redis_state.hash.reserve",
        keys: [reservations],
        args: [value: &[u8], id: &str, random: &str, renew: &str],
        returns: Value,
        lua: include_str!("lua/reserve.lua"),
    }
}

crate::script! {
    /// Revokes the token of a holder that does not hold the value, in the
    /// holder's bucket. See `lua/fence.lua`.
    struct FenceScript {
        name: "redis_state.hash.fence",
        keys: [entity, fence],
        args: [field: &str, value: &[u8], token: &str, keep_ms: u64],
        returns: Value,
        lua: include_str!("lua/fence.lua"),
    }
}

crate::script! {
    /// Compare-and-set (or delete) of one reservation. See `lua/claim.lua`.
    struct ClaimScript {
        name: "redis_state.hash.claim",
        keys: [reservations],
        args: [value: &[u8], expected: &[u8], id: &str, random: &str],
        returns: Value,
        lua: include_str!("lua/claim.lua"),
    }
}

/// How old (by the entity's server clock) a reservation token may be when
/// the write that presents it runs: a write later than that is refused and
/// renews its reservation. It bounds how long a revocation must be kept.
pub(super) const PENDING_MS: u64 = 30_000;

/// How long a revocation is kept in its bucket's fence set: far longer than
/// [`PENDING_MS`], so that a token whose revocation was pruned is refused
/// for its age (servers' clocks may differ by up to the difference).
pub(super) const FENCE_KEEP_MS: u64 = 600_000;

/// The bucket of a unique value: FNV-1a (64 bits) of its stored bytes
/// modulo the number of buckets, as for ids.
fn value_bucket(value: &[u8], buckets: u16) -> u16 {
    if buckets == 0 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in value {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(buckets)) as u16
}

impl HashSchema {
    /// Whether unique index `ix` is kept as reservations in the values' own
    /// slots (a unique field of the bucketed layout).
    pub(crate) fn reserved(&self, ix: &IndexSchema) -> bool {
        ix.unique && self.buckets > 0
    }

    /// Whether any unique field of the model is reserved.
    pub(crate) fn has_reserved(&self) -> bool {
        self.indexes.iter().any(|ix| self.reserved(ix))
    }

    /// The bucket of a unique value in the bucketed layout: FNV-1a (64
    /// bits) of its stored bytes modulo [`buckets`](Self::buckets).
    pub fn value_bucket(&self, value: &[u8]) -> u16 {
        value_bucket(value, self.buckets)
    }

    /// The reservation HASH of unique values of index `ix` in the bucketed
    /// layout whose bucket is that of `value`
    /// (`<bucket scope>:#<collection>:uniq:<field>`): value ->
    /// `<id>|<token>`, the token `<server ms>.<random hex>`.
    pub fn reservation_key(
        &self,
        ns: Option<&Namespace>,
        ix: &IndexSchema,
        value: &[u8],
    ) -> String {
        let scope = self.bucket_scope(ns, value_bucket(value, self.buckets));
        self.index_key(&scope, ix)
    }

    /// The fence ZSET of the bucket of the entity with `id`
    /// (`<bucket scope>:#<collection>:fence`): reservation tokens revoked in
    /// that bucket -> the server time (ms) of the revocation.
    pub fn fence_key(&self, ns: Option<&Namespace>, id: &IdBuf) -> String {
        let scope = self.bucket_scope(ns, self.bucket_of(id));
        self.scoped_key(&scope, &["fence"])
    }
}

/// A reservation found in the way: its holder, token and stored text.
#[derive(Debug, Clone)]
struct Held {
    holder: String,
    token: String,
    entry: Vec<u8>,
}

#[derive(Debug, Clone)]
enum ClaimState {
    /// Round: reserve (or renew) in the value's slot.
    Reserve { renew: bool },
    /// Round: revoke the holder's token in the holder's bucket.
    Fence(Held),
    /// Round: replace the revoked reservation with ours.
    Claim(Held),
    /// The token the write presents.
    Done(String),
}

/// One reserved value a write sets.
#[derive(Debug, Clone)]
struct Claim {
    /// Position in [`HashSchema::indexes`].
    index: usize,
    value: Vec<u8>,
    key: String,
    state: ClaimState,
    /// Renewed once already (after a refused write): not again.
    renewed: bool,
}

#[derive(Debug, Clone)]
enum ReleaseState {
    /// Round: read the reservation of the value the write replaced.
    Read,
    /// Round: revoke our own token, unless the entity holds the value again.
    Fence(Held),
    /// Round: delete the reservation if it is still that one.
    Delete(Held),
}

#[derive(Debug, Clone)]
struct Release {
    index: usize,
    value: Vec<u8>,
    key: String,
    state: ReleaseState,
}

/// The reservation rounds of one write (or delete) of one entity.
#[derive(Debug)]
pub(super) struct Reservations {
    schema: &'static HashSchema,
    ns: Option<Namespace>,
    id: IdBuf,
    claims: Vec<Claim>,
    releases: Vec<Release>,
}

fn random_part() -> Result<String> {
    crate::random::hex_token(8)
}

fn texts(v: &Value) -> Option<Vec<&[u8]>> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::BulkString(b) => Some(b.as_slice()),
                Value::SimpleString(s) => Some(s.as_bytes()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Reservations {
    /// The reservations of a write of the entity `id` setting `values`
    /// (per index position, the value set, if any).
    pub(super) fn new(
        schema: &'static HashSchema,
        ns: Option<&Namespace>,
        id: &IdBuf,
        values: impl IntoIterator<Item = (usize, Vec<u8>)>,
    ) -> Self {
        let claims = values
            .into_iter()
            .map(|(index, value)| Claim {
                index,
                key: schema.reservation_key(ns, &schema.indexes[index], &value),
                value,
                state: ClaimState::Reserve { renew: false },
                renewed: false,
            })
            .collect();
        Reservations {
            schema,
            ns: ns.cloned(),
            id: id.clone(),
            claims,
            releases: Vec::new(),
        }
    }

    /// Whether claims still need rounds before the write.
    pub(super) fn claiming(&self) -> bool {
        self.claims
            .iter()
            .any(|c| !matches!(c.state, ClaimState::Done(_)))
    }

    /// The tokens the write presents: (index position, token).
    pub(super) fn tokens(&self) -> Vec<(usize, String)> {
        self.claims
            .iter()
            .filter_map(|c| match &c.state {
                ClaimState::Done(t) => Some((c.index, t.clone())),
                _ => None,
            })
            .collect()
    }

    fn field_name(&self, index: usize) -> &'static str {
        self.schema.fields[self.schema.indexes[index].field].name
    }

    fn violation(&self, index: usize, value: &[u8], holder: String) -> Error {
        Error::UniqueViolation {
            model: self.schema.model,
            field: self.schema.fields[self.schema.indexes[index].field].rust_name,
            value: lossy(value),
            holder,
        }
    }

    pub(super) fn prepare_claims(&mut self, plan: &mut Plan) -> Result<()> {
        let id = self.id.joined().to_owned();
        for i in 0..self.claims.len() {
            let c = &self.claims[i];
            match &c.state {
                ClaimState::Reserve { renew } => {
                    ReserveScript::new(
                        &c.key,
                        &c.value,
                        &id,
                        &random_part()?,
                        if *renew { "1" } else { "0" },
                    )
                    .prepare(plan)?;
                }
                ClaimState::Fence(h) => {
                    let hid = IdBuf::from_joined(&h.holder);
                    FenceScript::new(
                        self.schema.key(self.ns.as_ref(), &hid),
                        self.schema.fence_key(self.ns.as_ref(), &hid),
                        self.field_name(c.index),
                        &c.value,
                        &h.token,
                        FENCE_KEEP_MS,
                    )
                    .prepare(plan)?;
                }
                ClaimState::Claim(h) => {
                    ClaimScript::new(&c.key, &c.value, &h.entry, &id, &random_part()?)
                        .prepare(plan)?;
                }
                ClaimState::Done(_) => {}
            }
        }
        Ok(())
    }

    /// Reads the replies of [`prepare_claims`](Self::prepare_claims): a
    /// value held by a live holder (or taken meanwhile) is a
    /// [`Error::UniqueViolation`].
    pub(super) fn complete_claims(&mut self, replies: &mut Replies) -> Result<()> {
        let own = self.id.joined().to_owned();
        let mut first_err = None;
        for i in 0..self.claims.len() {
            let state = self.claims[i].state.clone();
            let next = match state {
                ClaimState::Done(_) => continue,
                ClaimState::Reserve { .. } => {
                    let v = replies.next_value()?;
                    match texts(&v).as_deref() {
                        Some([b"ok", token]) => ClaimState::Done(lossy(token)),
                        Some([b"held", holder, token, entry]) => ClaimState::Fence(Held {
                            holder: lossy(holder),
                            token: lossy(token),
                            entry: entry.to_vec(),
                        }),
                        _ => return Err(Error::unexpected("the reserve script", &v)),
                    }
                }
                ClaimState::Fence(h) => {
                    let v = replies.next_value()?;
                    let reply = match &v {
                        Value::BulkString(b) => b.as_slice(),
                        Value::SimpleString(s) => s.as_bytes(),
                        _ => return Err(Error::unexpected("the fence script", &v)),
                    };
                    match reply {
                        // The entity holds the value already (a concurrent
                        // save of its own): the write changes nothing there.
                        b"held" if h.holder == own => ClaimState::Done(h.token),
                        b"held" => {
                            let c = &self.claims[i];
                            first_err.get_or_insert(self.violation(
                                c.index,
                                &c.value,
                                h.holder.clone(),
                            ));
                            continue;
                        }
                        b"revoked" => ClaimState::Claim(h),
                        _ => return Err(Error::unexpected("the fence script", &v)),
                    }
                }
                ClaimState::Claim(_) => {
                    let v = replies.next_value()?;
                    match texts(&v).as_deref() {
                        Some([b"ok", token]) => ClaimState::Done(lossy(token)),
                        Some([b"changed", holder]) => {
                            let c = &self.claims[i];
                            first_err.get_or_insert(self.violation(
                                c.index,
                                &c.value,
                                lossy(holder),
                            ));
                            continue;
                        }
                        _ => return Err(Error::unexpected("the claim script", &v)),
                    }
                }
            };
            self.claims[i].state = next;
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The write refused the token of the field named `field` (revoked, or
    /// older than [`PENDING_MS`]): renews that reservation once (its token
    /// is revoked unless the entity holds the value, then replaced), or
    /// returns the error to report.
    pub(super) fn refused(&mut self, field: &[u8]) -> std::result::Result<(), Error> {
        let Some(i) = self
            .claims
            .iter()
            .position(|c| self.field_name(c.index).as_bytes() == field)
        else {
            return Err(Error::UnexpectedReply {
                context: "the write script",
                found: format!("a refused token for `{}`", lossy(field)),
            });
        };
        let c = &mut self.claims[i];
        if c.renewed {
            let (index, value) = (c.index, c.value.clone());
            return Err(self.violation(
                index,
                &value,
                "(unknown: its reservation was revoked and taken over)".to_owned(),
            ));
        }
        c.renewed = true;
        c.state = ClaimState::Reserve { renew: true };
        Ok(())
    }

    /// Reads the values a write or delete replaced from the tail of its
    /// reply (`(index, old value) * k`, 1-based indexes), to release them.
    pub(super) fn release_from(&mut self, tail: &[Value]) {
        for pair in tail.chunks(2) {
            let index = match &pair[0] {
                Value::Int(n) => usize::try_from(*n).ok(),
                Value::BulkString(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
                _ => None,
            };
            let (Some(index), Some(Value::BulkString(old))) = (index, pair.get(1)) else {
                continue;
            };
            let Some(index) = index.checked_sub(1) else {
                continue;
            };
            let Some(ix) = self.schema.indexes.get(index) else {
                continue;
            };
            if !self.schema.reserved(ix) {
                continue;
            }
            self.releases.push(Release {
                index,
                key: self.schema.reservation_key(self.ns.as_ref(), ix, old),
                value: old.clone(),
                state: ReleaseState::Read,
            });
        }
    }

    /// After a refused write: releases the values this write reserved,
    /// through the rounds of a replaced value. A value the entity held
    /// before the write is left alone: the fence round finds the entity
    /// holding it and revokes nothing.
    pub(super) fn release_claims(&mut self) {
        for c in std::mem::take(&mut self.claims) {
            if let ClaimState::Done(_) = c.state {
                self.releases.push(Release {
                    index: c.index,
                    key: c.key,
                    value: c.value,
                    state: ReleaseState::Read,
                });
            }
        }
    }

    /// Whether released values still need rounds.
    pub(super) fn releasing(&self) -> bool {
        !self.releases.is_empty()
    }

    pub(super) fn prepare_releases(&mut self, plan: &mut Plan) -> Result<()> {
        let id = self.id.joined().to_owned();
        for r in &self.releases {
            match &r.state {
                ReleaseState::Read => {
                    plan.cmd("HGET", &r.key).arg(&r.value);
                }
                ReleaseState::Fence(h) => {
                    FenceScript::new(
                        self.schema.key(self.ns.as_ref(), &self.id),
                        self.schema.fence_key(self.ns.as_ref(), &self.id),
                        self.field_name(r.index),
                        &r.value,
                        &h.token,
                        FENCE_KEEP_MS,
                    )
                    .prepare(plan)?;
                }
                ReleaseState::Delete(h) => {
                    ClaimScript::new(&r.key, &r.value, &h.entry, &id, "").prepare(plan)?;
                }
            }
        }
        Ok(())
    }

    /// Reads the replies of [`prepare_releases`](Self::prepare_releases).
    /// A reservation that is no longer the entity's, or a value the entity
    /// holds again, is left alone.
    pub(super) fn complete_releases(&mut self, replies: &mut Replies) -> Result<()> {
        let own = self.id.joined().to_owned();
        let mut next = Vec::with_capacity(self.releases.len());
        for mut r in std::mem::take(&mut self.releases) {
            let v = replies.next_value()?;
            let state = match &r.state {
                ReleaseState::Read => match &v {
                    Value::BulkString(entry) => {
                        let text = lossy(entry);
                        match text.rsplit_once('|') {
                            Some((holder, token)) if holder == own && !token.is_empty() => {
                                Some(ReleaseState::Fence(Held {
                                    holder: holder.to_owned(),
                                    token: token.to_owned(),
                                    entry: entry.clone(),
                                }))
                            }
                            _ => None,
                        }
                    }
                    Value::Nil => None,
                    _ => return Err(Error::unexpected("HGET", &v)),
                },
                ReleaseState::Fence(h) => match &v {
                    Value::BulkString(b) if b.as_slice() == b"revoked" => {
                        Some(ReleaseState::Delete(h.clone()))
                    }
                    Value::SimpleString(s) if s == "revoked" => {
                        Some(ReleaseState::Delete(h.clone()))
                    }
                    Value::BulkString(_) | Value::SimpleString(_) => None,
                    _ => return Err(Error::unexpected("the fence script", &v)),
                },
                ReleaseState::Delete(_) => match texts(&v) {
                    Some(_) => None,
                    None => return Err(Error::unexpected("the claim script", &v)),
                },
            };
            if let Some(state) = state {
                r.state = state;
                next.push(r);
            }
        }
        self.releases = next;
        Ok(())
    }
}

/// The typed error for a write of a model with bucketed unique fields
/// inside a transaction: its reservation rounds cannot fit between `MULTI`
/// and `EXEC`.
pub(super) fn no_transaction(schema: &HashSchema, operation: &'static str) -> Error {
    Error::InvalidArgument {
        operation,
        reason: format!(
            "{} has unique fields in the bucketed layout: a write reserves each value in its own slot first, which takes rounds a transaction (MULTI/EXEC) cannot hold; run it outside the transaction",
            schema.model
        ),
    }
}
