//! Per-model statistics: how many entities a model holds, how much memory
//! they take, how their TTLs spread, and for hash models how large their
//! indexes are and how many entries point at nothing.
//!
//! A [`ModelSpec`] says where a model's keys are: built from a derive's own
//! schema ([`ModelSpec::hash`], [`ModelSpec::cached`],
//! [`ModelSpec::leaderboard`]) or from a key template given as text
//! ([`ModelSpec::from_template`], what the command-line tool uses). A
//! [`Catalog`] holds the specs an application registers.
//!
//! Statistics are gathered by `SCAN` on every primary (one cursor per node,
//! [`StatsOptions::batch`] keys per call), then `PTTL` for every key found and
//! `MEMORY USAGE` for the first [`StatsOptions::memory_samples`] (the total is
//! extrapolated), one pipeline per batch; at most [`StatsOptions::max_keys`]
//! keys are read (the result says when it stopped early). Keys holding `#`
//! are redis-state's own companions (index structures, leases, fence
//! counters): never counted as entities, since ids are escaped and cannot
//! hold one.
//!
//! Index entries are checked in batches: an entry is an *orphan* when its
//! entity is gone or no longer holds the indexed value. [`sweep`] removes
//! them, each with a script that checks again in the same step, so an
//! entity saved in between keeps its entry.
//!
//! A bucketed model (`#[redis(buckets = N)]`; [`KeyShape::with_buckets`]
//! for a spec from text) has one partition per bucket of each index: every
//! partition is read, and each index is reported once, summed over them
//! ([`IndexStats::partitions`]). Its `unique` indexes hold reservations
//! (`<id>|<token>`, see [`crate::hash`], *Bucketed layout*): an orphan
//! reservation is counted but [`sweep`] leaves it, since removing it
//! safely needs its token revoked first; the next save of the value takes
//! it over that way.

use std::collections::BTreeMap;
use std::sync::Arc;

use redis::Value;
use serde::Serialize;

use crate::driver::{Async, Blocking, Io, block_on};
use crate::error::{Error, Result};
use crate::exec::{AsyncExecutor, SyncExecutor};
use crate::keys::{KeyTemplate, Namespace, Seg};
use crate::op::{Node, Operation, Plan, Replies, Step, command, many};
use crate::script::Script;

/// One segment of a [`KeyShape`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum ShapeSeg {
    Lit(String),
    Part(usize),
}

/// Where a model's keys are: the namespace prefix and the template, owned
/// (from a derive's schema or parsed from text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyShape {
    prefix: String,
    segs: Vec<ShapeSeg>,
    scope: Option<usize>,
    /// The bucketed layout's bucket count (0: not bucketed).
    buckets: u16,
}

impl KeyShape {
    /// The shape of a derive's key template in `ns` (else the template's own
    /// namespace).
    pub fn from_key_template(t: &KeyTemplate, ns: Option<&Namespace>) -> KeyShape {
        let mut prefix = String::new();
        crate::keys::write_ns_prefix(ns, t.namespace, &mut prefix);
        KeyShape {
            prefix,
            segs: t
                .segs
                .iter()
                .map(|s| match *s {
                    Seg::Lit(l) => ShapeSeg::Lit(l.to_owned()),
                    Seg::Part(i) => ShapeSeg::Part(usize::from(i)),
                })
                .collect(),
            scope: t.scope,
            buckets: 0,
        }
    }

    /// Parses a key template written as in the derives' `key = "..."`
    /// (`"user:{id}"`, `"{{user}}:{id}"`, `"order:{{{customer}}}:{id}"`), in
    /// `ns`. Id parts are numbered in the order they appear.
    pub fn parse(template: &str, ns: Option<&Namespace>) -> Result<KeyShape> {
        let t = redis_state_keys::template::Template::parse(template).map_err(|e| {
            Error::InvalidConfig {
                what: "key template",
                reason: format!("{template:?}: {e}"),
            }
        })?;
        let mut names: Vec<&str> = Vec::new();
        let segs = t
            .segments()
            .iter()
            .map(|s| match s {
                redis_state_keys::template::Segment::Lit(l) => ShapeSeg::Lit(l.clone()),
                redis_state_keys::template::Segment::Part(p) => {
                    let i = names.iter().position(|n| n == p).unwrap_or_else(|| {
                        names.push(p);
                        names.len() - 1
                    });
                    ShapeSeg::Part(i)
                }
                _ => ShapeSeg::Lit(String::new()),
            })
            .collect();
        Ok(KeyShape {
            prefix: ns.map(|n| format!("{}:", n.as_str())).unwrap_or_default(),
            segs,
            scope: t.scope(),
            buckets: 0,
        })
    }

    /// The same shape in the bucketed layout with `buckets` buckets (as
    /// `#[redis(buckets = N)]` gives a derive; 0 for the plain layout):
    /// `user:{id}` is then stored as `user:{<tag>}:42` and indexes are
    /// partitioned per bucket under `user:{<tag>}`. Ignored on a shape
    /// with a hash tag, which the derives never bucket.
    pub fn with_buckets(mut self, buckets: u16) -> KeyShape {
        self.buckets = if self.scope.is_some() { 0 } else { buckets };
        self
    }

    /// The bucket count of the bucketed layout (0: not bucketed).
    pub fn buckets(&self) -> u16 {
        self.buckets
    }

    /// The leading literal of a bucketed shape (before its bucket's tag)
    /// and the segments after it.
    fn bucket_split(&self) -> (&str, &[ShapeSeg]) {
        match self.segs.first() {
            Some(ShapeSeg::Lit(lead)) => (lead, &self.segs[1..]),
            _ => ("", &self.segs),
        }
    }

    /// The scope (`<ns>:user:{<tag>}`) of the bucket of the id joined as
    /// `joined`; `None` when not bucketed.
    fn bucket_scope_of(&self, joined: &str) -> Option<String> {
        if self.buckets == 0 {
            return None;
        }
        let bucket = crate::hash::bucket_of_joined(joined, self.buckets);
        let slot = crate::hash::bucket_slot_of(bucket, self.buckets);
        let mut out = self.prefix.clone();
        out.push_str(self.bucket_split().0);
        out.push('{');
        out.push_str(itoa::Buffer::new().format(crate::keys::slot_tag(slot)));
        out.push('}');
        Some(out)
    }

    fn glob(&self, segs: &[ShapeSeg]) -> String {
        let mut out = redis_state_keys::glob_escape(&self.prefix).into_owned();
        for s in segs {
            match s {
                ShapeSeg::Lit(l) => out.push_str(&redis_state_keys::glob_escape(l)),
                ShapeSeg::Part(_) => out.push('*'),
            }
        }
        out
    }

    /// The `SCAN MATCH` pattern of every key of this shape.
    pub fn pattern(&self) -> String {
        self.glob(&self.segs)
    }

    /// The pattern of the companion keys redis-state keeps under the
    /// shape's scope for `collection` (indexes): `<scope>:#<collection>:*`.
    /// `None` without a hash tag.
    pub fn companion_pattern(&self, collection: &str) -> Option<String> {
        let mut p = if self.buckets > 0 {
            // Every bucket's partitions: `<lead>{*}:#<collection>:*`.
            let mut p = redis_state_keys::glob_escape(&self.prefix).into_owned();
            p.push_str(&redis_state_keys::glob_escape(self.bucket_split().0));
            p.push_str("{*}");
            p
        } else {
            let n = self.scope?;
            self.glob(self.segs.get(..n)?)
        };
        p.push_str(":#");
        p.push_str(&redis_state_keys::glob_escape(collection));
        p.push_str(":*");
        Some(p)
    }

    /// The key of the entity whose id, joined as indexes store it (escaped
    /// parts separated by `:`, in id order), is `joined`.
    pub fn render_joined(&self, joined: &str) -> String {
        let parts: Vec<&str> = joined.split(':').collect();
        let (mut out, segs) = match self.bucket_scope_of(joined) {
            Some(mut scope) => {
                scope.push(':');
                (scope, self.bucket_split().1)
            }
            None => (self.prefix.clone(), &self.segs[..]),
        };
        for s in segs {
            match s {
                ShapeSeg::Lit(l) => out.push_str(l),
                ShapeSeg::Part(i) => out.push_str(parts.get(*i).copied().unwrap_or_default()),
            }
        }
        out
    }
}

/// What kind of structure a model's keys hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelKind {
    /// `#[derive(RedisHash)]`: one hash per entity.
    Hash,
    /// `#[derive(Cached)]`: one string per entry (a header line and JSON).
    Cache,
    /// `#[derive(Leaderboard)]`: one sorted set per board.
    Leaderboard,
    /// Any keys matching a template.
    Keys,
}

/// A model to gather statistics for; see the [module docs](self).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ModelSpec {
    /// The name reported (the Rust type name for derived models).
    pub name: String,
    /// The kind of structure.
    pub kind: ModelKind,
    /// Where its keys are.
    pub shape: KeyShape,
    /// For hash models: the collection name under which indexes live
    /// (`<scope>:#<collection>:idx:<field>`).
    pub collection: Option<String>,
    /// For hash models built from a derive: the indexed fields in the
    /// model's order, each with whether it is `unique`. The expiry sweep
    /// needs them to forget an expired entity's index entries itself;
    /// without them (a spec from text) it drops the expiry bookkeeping and
    /// the orphan pass of [`sweep`] removes the entries.
    pub indexes: Vec<(String, bool)>,
}

impl ModelSpec {
    /// A `#[derive(RedisHash)]` model, in `ns` (else its own namespace).
    pub fn hash<M: crate::RedisHash>(ns: Option<&Namespace>) -> ModelSpec {
        let s = M::SCHEMA;
        ModelSpec {
            name: s.model.to_owned(),
            kind: ModelKind::Hash,
            shape: KeyShape::from_key_template(&s.key, ns).with_buckets(s.buckets),
            collection: (!s.indexes.is_empty()).then(|| s.collection.to_owned()),
            indexes: s
                .indexes
                .iter()
                .map(|ix| (s.fields[ix.field].name.to_owned(), ix.unique))
                .collect(),
        }
    }

    /// A `#[derive(Cached)]` type, in `ns` (else its own namespace).
    pub fn cached<T: crate::cache::Cached>(ns: Option<&Namespace>) -> ModelSpec {
        let s = T::SCHEMA;
        ModelSpec {
            name: s.model.to_owned(),
            kind: ModelKind::Cache,
            shape: KeyShape::from_key_template(&s.key, ns).with_buckets(s.buckets),
            collection: None,
            indexes: Vec::new(),
        }
    }

    /// A `#[derive(Leaderboard)]` board type, in `ns` (else its own
    /// namespace).
    pub fn leaderboard<B: crate::Leaderboard>(ns: Option<&Namespace>) -> ModelSpec {
        let s = B::SCHEMA;
        ModelSpec {
            name: s.model.to_owned(),
            kind: ModelKind::Leaderboard,
            shape: KeyShape::from_key_template(&s.key, ns),
            collection: None,
            indexes: Vec::new(),
        }
    }

    /// A model given by its key template as text (see [`KeyShape::parse`]);
    /// `collection` names a hash model's index collection (the snake_case
    /// type name unless the derive set `collection = "..."`).
    pub fn from_template(
        name: impl Into<String>,
        kind: ModelKind,
        template: &str,
        ns: Option<&Namespace>,
        collection: Option<&str>,
    ) -> Result<ModelSpec> {
        Ok(ModelSpec {
            name: name.into(),
            kind,
            shape: KeyShape::parse(template, ns)?,
            collection: collection.map(str::to_owned),
            indexes: Vec::new(),
        })
    }

    /// The same model in the bucketed layout with `buckets` buckets (see
    /// [`KeyShape::with_buckets`]); for a spec from text, give the
    /// derive's `buckets` (64 for an indexed model whose key has no hash
    /// tag, unless the derive set another).
    pub fn with_buckets(mut self, buckets: u16) -> ModelSpec {
        self.shape = self.shape.with_buckets(buckets);
        self
    }
}

/// The models of an application, registered once, for [`Catalog::stats`].
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    ns: Option<Namespace>,
    models: Vec<ModelSpec>,
}

impl Catalog {
    /// An empty catalog (models in their own namespaces).
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Models registered after this call live in `ns`.
    pub fn namespace(mut self, ns: &Namespace) -> Catalog {
        self.ns = Some(ns.clone());
        self
    }

    /// Registers a `#[derive(RedisHash)]` model.
    pub fn hash<M: crate::RedisHash>(mut self) -> Catalog {
        self.models.push(ModelSpec::hash::<M>(self.ns.as_ref()));
        self
    }

    /// Registers a `#[derive(Cached)]` type.
    pub fn cached<T: crate::cache::Cached>(mut self) -> Catalog {
        self.models.push(ModelSpec::cached::<T>(self.ns.as_ref()));
        self
    }

    /// Registers a `#[derive(Leaderboard)]` board type.
    pub fn leaderboard<B: crate::Leaderboard>(mut self) -> Catalog {
        self.models
            .push(ModelSpec::leaderboard::<B>(self.ns.as_ref()));
        self
    }

    /// Registers any spec.
    pub fn model(mut self, spec: ModelSpec) -> Catalog {
        self.models.push(spec);
        self
    }

    /// The registered models.
    pub fn models(&self) -> &[ModelSpec] {
        &self.models
    }

    /// Statistics of every registered model, in order (blocking).
    pub fn stats<C: SyncExecutor + ?Sized>(
        &self,
        con: &mut C,
        opts: &StatsOptions,
    ) -> Result<Vec<ModelStats>> {
        let mut io = Blocking::new(con);
        block_on(async {
            let mut out = Vec::with_capacity(self.models.len());
            for m in &self.models {
                out.push(gather(&mut io, m, opts).await?);
            }
            Ok(out)
        })
    }

    /// [`Catalog::stats`], awaiting.
    pub async fn stats_async<C: AsyncExecutor + ?Sized>(
        &self,
        con: &mut C,
        opts: &StatsOptions,
    ) -> Result<Vec<ModelStats>> {
        let mut io = Async::new(con);
        let mut out = Vec::with_capacity(self.models.len());
        for m in &self.models {
            out.push(gather(&mut io, m, opts).await?);
        }
        Ok(out)
    }
}

/// Reports how far long work has come: the model and the keys read so far.
pub type Progress = Arc<dyn Fn(&str, u64) + Send + Sync>;

/// Bounds and sampling of [`model_stats`].
#[derive(Clone)]
#[non_exhaustive]
pub struct StatsOptions {
    /// `SCAN ... COUNT` and the size of each pipeline (default 500).
    pub batch: usize,
    /// Keys read at most (default 1,000,000); past it the result is marked
    /// [`truncated`](ModelStats::truncated).
    pub max_keys: u64,
    /// Keys whose `MEMORY USAGE` is read (default 1,000).
    pub memory_samples: u64,
    /// Index entries checked at most per index (default 1,000,000).
    pub max_index_entries: u64,
    /// Called after each batch.
    pub progress: Option<Progress>,
}

impl Default for StatsOptions {
    fn default() -> Self {
        StatsOptions {
            batch: 500,
            max_keys: 1_000_000,
            memory_samples: 1_000,
            max_index_entries: 1_000_000,
            progress: None,
        }
    }
}

impl std::fmt::Debug for StatsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsOptions")
            .field("batch", &self.batch)
            .field("max_keys", &self.max_keys)
            .field("memory_samples", &self.memory_samples)
            .field("max_index_entries", &self.max_index_entries)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl StatsOptions {
    /// Sets [`StatsOptions::batch`] (at least 1).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }
    /// Sets [`StatsOptions::max_keys`].
    pub fn max_keys(mut self, n: u64) -> Self {
        self.max_keys = n;
        self
    }
    /// Sets [`StatsOptions::memory_samples`].
    pub fn memory_samples(mut self, n: u64) -> Self {
        self.memory_samples = n;
        self
    }
    /// Sets [`StatsOptions::progress`].
    pub fn progress(mut self, f: impl Fn(&str, u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }
}

/// The upper bounds of the TTL buckets, in seconds: under a minute, an hour,
/// a day, a week, then longer.
pub const TTL_BUCKETS_SECS: [u64; 4] = [60, 3_600, 86_400, 604_800];

/// How the keys' remaining lifetimes spread.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TtlStats {
    /// Keys without a TTL.
    pub persistent: u64,
    /// Keys with a TTL, per bucket of [`TTL_BUCKETS_SECS`]: `buckets[i]`
    /// counts TTLs under `TTL_BUCKETS_SECS[i]` (and not under the one
    /// before); the last counts the longer ones.
    pub buckets: [u64; 5],
    /// Keys gone between `SCAN` and `PTTL`.
    pub vanished: u64,
}

/// Memory of a model's keys, from `MEMORY USAGE` of a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Keys measured.
    pub sampled: u64,
    /// Their bytes, in all.
    pub sampled_bytes: u64,
    /// The estimate for every key: the sample's mean times the key count.
    pub estimated_bytes: u64,
}

/// One secondary index of a hash model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct IndexStats {
    /// The index key.
    pub key: String,
    /// The indexed field.
    pub field: String,
    /// A `unique` index (a hash value → id) rather than an `index` (a
    /// sorted set of `<len>:<value>:<id>`).
    pub unique: bool,
    /// Entries checked.
    pub entries: u64,
    /// Entries whose entity is gone or holds another value.
    pub orphans: u64,
    /// `MEMORY USAGE` of the index key.
    pub bytes: u64,
    /// The index keys read: 1, or in the bucketed layout the partitions
    /// found (one per bucket holding entries), whose figures are summed
    /// here; [`key`](Self::key) is then the pattern of every partition.
    pub partitions: u64,
}

/// Statistics of one model; see [`model_stats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ModelStats {
    /// The model's name.
    pub name: String,
    /// The `SCAN` pattern used.
    pub pattern: String,
    /// Entities (keys matching the pattern, companions excluded).
    pub keys: u64,
    /// Keys per node.
    pub keys_per_node: BTreeMap<String, u64>,
    /// True when [`StatsOptions::max_keys`] stopped the scan.
    pub truncated: bool,
    /// Memory.
    pub memory: MemoryStats,
    /// TTLs.
    pub ttl: TtlStats,
    /// Indexes (hash models with indexes).
    pub indexes: Vec<IndexStats>,
}

/// One `SCAN` round on every primary (or on the nodes that still have a
/// cursor).
struct ScanRound<'a> {
    pattern: &'a str,
    kind: Option<&'a str>,
    count: usize,
    cursors: Option<Vec<(Node, u64)>>,
}

type ScanOut = (Vec<(Node, u64)>, Vec<(Node, Vec<String>)>);

fn scan_reply(v: &Value) -> Option<(u64, Vec<String>)> {
    let Value::Array(items) = v else { return None };
    let cursor = match items.first()? {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok()?,
        Value::Int(i) => u64::try_from(*i).ok()?,
        _ => return None,
    };
    let Value::Array(keys) = items.get(1)? else {
        return None;
    };
    let keys = keys
        .iter()
        .filter_map(|k| match k {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect();
    Some((cursor, keys))
}

impl Operation for ScanRound<'_> {
    type Output = ScanOut;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match &self.cursors {
            None => {
                let cmd = plan
                    .every_primary("SCAN")
                    .arg(0)
                    .arg("MATCH")
                    .arg(self.pattern)
                    .arg("COUNT")
                    .arg(self.count);
                if let Some(kind) = self.kind {
                    cmd.arg("TYPE").arg(kind);
                }
            }
            Some(cursors) => {
                for (node, cursor) in cursors {
                    let cmd = plan
                        .on_node(node, "SCAN")
                        .arg(*cursor)
                        .arg("MATCH")
                        .arg(self.pattern)
                        .arg("COUNT")
                        .arg(self.count);
                    if let Some(kind) = self.kind {
                        cmd.arg("TYPE").arg(kind);
                    }
                }
            }
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<ScanOut>> {
        let per_node: Vec<(Node, Value)> = match &self.cursors {
            None => replies.next_per_node()?,
            Some(cursors) => cursors
                .iter()
                .map(|(n, _)| Ok((n.clone(), replies.next_value()?)))
                .collect::<Result<_>>()?,
        };
        let mut next = Vec::new();
        let mut keys = Vec::new();
        for (node, v) in per_node {
            let (cursor, found) = scan_reply(&v).ok_or_else(|| Error::unexpected("SCAN", &v))?;
            if cursor != 0 {
                next.push((node.clone(), cursor));
            }
            keys.push((node, found));
        }
        Ok(Step::Done((next, keys)))
    }
}

/// Scans `pattern` on every primary, `count` keys per call, and hands each
/// batch of keys found (with its node) to `each`, until every node's cursor
/// is done or `each` returns `false`. Keys may repeat (`SCAN`'s guarantee).
pub async fn scan_each<I: Io>(
    io: &mut I,
    pattern: &str,
    count: usize,
    each: impl AsyncFnMut(&mut I, Node, Vec<String>) -> Result<bool>,
) -> Result<()> {
    scan_each_of_type(io, pattern, None, count, each).await
}

/// [`scan_each`] of the keys of one type (`SCAN … TYPE kind`: `stream`,
/// `hash`, ...) when `kind` is given.
pub async fn scan_each_of_type<I: Io>(
    io: &mut I,
    pattern: &str,
    kind: Option<&str>,
    count: usize,
    mut each: impl AsyncFnMut(&mut I, Node, Vec<String>) -> Result<bool>,
) -> Result<()> {
    let mut cursors = None;
    loop {
        let (next, found) = io
            .run(ScanRound {
                pattern,
                kind,
                count: count.max(1),
                cursors: cursors.take(),
            })
            .await?;
        for (node, keys) in found {
            if !keys.is_empty() && !each(io, node, keys).await? {
                return Ok(());
            }
        }
        if next.is_empty() {
            return Ok(());
        }
        cursors = Some(next);
    }
}

/// Statistics of one model (blocking); see the [module docs](self).
pub fn model_stats<C: SyncExecutor + ?Sized>(
    con: &mut C,
    spec: &ModelSpec,
    opts: &StatsOptions,
) -> Result<ModelStats> {
    block_on(gather(&mut Blocking::new(con), spec, opts))
}

/// [`model_stats`], awaiting.
pub async fn model_stats_async<C: AsyncExecutor + ?Sized>(
    con: &mut C,
    spec: &ModelSpec,
    opts: &StatsOptions,
) -> Result<ModelStats> {
    gather(&mut Async::new(con), spec, opts).await
}

/// The procedure behind [`model_stats`], written once over [`Io`].
pub async fn gather<I: Io>(
    io: &mut I,
    spec: &ModelSpec,
    opts: &StatsOptions,
) -> Result<ModelStats> {
    let pattern = spec.shape.pattern();
    let mut st = ModelStats {
        name: spec.name.clone(),
        pattern: pattern.clone(),
        ..ModelStats::default()
    };
    let batch = opts.batch.max(1);
    scan_each(
        io,
        &pattern,
        batch,
        async |io: &mut I, node: Node, keys: Vec<String>| {
            let mut keys: Vec<String> = keys.into_iter().filter(|k| !k.contains('#')).collect();
            let room = opts.max_keys.saturating_sub(st.keys);
            if (keys.len() as u64) > room {
                keys.truncate(usize::try_from(room).unwrap_or(usize::MAX));
                st.truncated = true;
            }
            if keys.is_empty() {
                return Ok(!st.truncated);
            }
            let want_mem = opts.memory_samples.saturating_sub(st.memory.sampled);
            let n_mem = keys
                .len()
                .min(usize::try_from(want_mem).unwrap_or(usize::MAX));
            let (ttls, mems) = io
                .run(crate::batch((
                    many(keys.iter().map(|k| command::<i64>("PTTL", k))),
                    many(keys[..n_mem].iter().map(|k| MemoryUsage(Some(k.clone())))),
                )))
                .await?;
            for t in ttls {
                record_ttl(&mut st.ttl, t);
            }
            for m in mems.into_iter().flatten() {
                st.memory.sampled += 1;
                st.memory.sampled_bytes = st.memory.sampled_bytes.saturating_add(m);
            }
            st.keys += keys.len() as u64;
            *st.keys_per_node.entry(node.to_string()).or_default() += keys.len() as u64;
            if let Some(p) = &opts.progress {
                p(&spec.name, st.keys);
            }
            Ok(!st.truncated)
        },
    )
    .await?;
    if st.memory.sampled > 0 {
        let mean = st.memory.sampled_bytes as f64 / st.memory.sampled as f64;
        st.memory.estimated_bytes = (mean * st.keys as f64).round() as u64;
    }
    if let Some(collection) = &spec.collection {
        st.indexes = index_stats(io, spec, collection, opts, None).await?;
    }
    Ok(st)
}

fn record_ttl(ttl: &mut TtlStats, pttl_ms: i64) {
    match pttl_ms {
        -2 => ttl.vanished += 1,
        ms if ms < 0 => ttl.persistent += 1,
        ms => {
            let secs = u64::try_from(ms).unwrap_or(0) / 1000;
            let i = TTL_BUCKETS_SECS
                .iter()
                .position(|b| secs < *b)
                .unwrap_or(TTL_BUCKETS_SECS.len());
            ttl.buckets[i] += 1;
        }
    }
}

/// `MEMORY USAGE key SAMPLES 0`; `None` when the key is gone.
struct MemoryUsage(Option<String>);

impl Operation for MemoryUsage {
    type Output = Option<u64>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if let Some(k) = self.0.take() {
            plan.cmd_routed("MEMORY", &k)
                .arg("USAGE")
                .arg(&k)
                .arg("SAMPLES")
                .arg(0);
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Option<u64>>> {
        replies.next::<Option<u64>>("MEMORY USAGE").map(Step::Done)
    }
}

/// An index key's field and kind, from its name: `...:#<collection>:idx:<field>`
/// or `...:uniq:<field>`; `None` for the expiry bookkeeping keys.
fn index_of(key: &str, collection: &str) -> Option<(String, bool, String)> {
    let marker = format!(":#{collection}:");
    let at = key.rfind(&marker)?;
    let scope = &key[..at];
    let rest = &key[at + marker.len()..];
    if let Some(f) = rest.strip_prefix("idx:") {
        Some((f.to_owned(), false, scope.to_owned()))
    } else {
        rest.strip_prefix("uniq:")
            .map(|f| (f.to_owned(), true, scope.to_owned()))
    }
}

/// An index entry: the value and the joined id it names, and the raw
/// member (sorted-set member, or hash field) that holds it.
struct Entry {
    value: String,
    id: String,
    member: String,
}

/// `<len>:<value>:<id>` into its value and id.
fn split_member(m: &str) -> Option<(String, String)> {
    let (len, rest) = m.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let value = rest.get(..len)?;
    let id = rest.get(len..)?.strip_prefix(':')?;
    Some((value.to_owned(), id.to_owned()))
}

/// One `ZSCAN`/`HSCAN` call over an index key.
struct IndexPage<'a> {
    key: &'a str,
    unique: bool,
    cursor: u64,
    count: usize,
}

impl Operation for IndexPage<'_> {
    type Output = (u64, Vec<Entry>);
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let name = if self.unique { "HSCAN" } else { "ZSCAN" };
        plan.cmd(name, self.key)
            .arg(self.cursor)
            .arg("COUNT")
            .arg(self.count);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let v = replies.next_value()?;
        let (cursor, items) =
            scan_reply(&v).ok_or_else(|| Error::unexpected("an index scan", &v))?;
        let mut out = Vec::with_capacity(items.len() / 2);
        for pair in items.chunks(2) {
            let [a, b] = pair else { continue };
            if self.unique {
                out.push(Entry {
                    value: a.clone(),
                    id: b.clone(),
                    member: a.clone(),
                });
            } else if let Some((value, id)) = split_member(a) {
                out.push(Entry {
                    value,
                    id,
                    member: a.clone(),
                });
            } else {
                // Not of the library's shape: an orphan by definition.
                out.push(Entry {
                    value: String::new(),
                    id: String::new(),
                    member: a.clone(),
                });
            }
        }
        Ok(Step::Done((cursor, out)))
    }
}

static SWEEP: Script = Script::new(
    "redis_state.monitor.sweep",
    r#"
-- KEYS[1] index, KEYS[2] entity (the index itself for an entry naming an
-- id of another bucket, never checked); ARGV: unique, field, value, member, id
if ARGV[5] ~= '' and KEYS[2] ~= KEYS[1] and redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[3] then
  return 0
end
if ARGV[1] == '1' then
  if redis.call('HGET', KEYS[1], ARGV[4]) == ARGV[5] then
    return redis.call('HDEL', KEYS[1], ARGV[4])
  end
  return 0
end
return redis.call('ZREM', KEYS[1], ARGV[4])
"#,
);

/// Removes one orphan entry if it still is one.
struct SweepEntry {
    keys: [String; 2],
    args: [String; 5],
}

impl Operation for SweepEntry {
    type Output = bool;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let cmd = plan.script(&SWEEP, &self.keys)?;
        for a in &self.args {
            cmd.arg(a);
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        replies
            .next::<i64>("an index sweep")
            .map(|n| Step::Done(n > 0))
    }
}

/// Checks (and with `remove`, removes) the entries of every index of a
/// hash model.
async fn index_stats<I: Io>(
    io: &mut I,
    spec: &ModelSpec,
    collection: &str,
    opts: &StatsOptions,
    mut removed: Option<&mut u64>,
) -> Result<Vec<IndexStats>> {
    let Some(pattern) = spec.shape.companion_pattern(collection) else {
        return Ok(Vec::new());
    };
    let mut index_keys: Vec<String> = Vec::new();
    scan_each(
        io,
        &pattern,
        opts.batch,
        async |_io: &mut I, _node, keys: Vec<String>| {
            for k in keys {
                if index_of(&k, collection).is_some() && !index_keys.contains(&k) {
                    index_keys.push(k);
                }
            }
            Ok(index_keys.len() < 100_000)
        },
    )
    .await?;
    index_keys.sort();
    let mut out = Vec::with_capacity(index_keys.len());
    for key in index_keys {
        let Some((field, unique, scope)) = index_of(&key, collection) else {
            continue;
        };
        let mut stats = IndexStats {
            key: key.clone(),
            field: field.clone(),
            unique,
            partitions: 1,
            ..IndexStats::default()
        };
        stats.bytes = io.run(MemoryUsage(Some(key.clone()))).await?.unwrap_or(0);
        // A unique index of the bucketed layout holds reservations,
        // `<id>|<token>`, of the values whose bucket this is, for entities
        // of every bucket. An orphan one (its holder does not hold the
        // value) is counted, never removed here: removing it safely needs
        // its token revoked in the holder's bucket first, or a save of
        // that holder still pending could write the value after another
        // entity took it. The next saver of the value does both.
        let reserved = unique && spec.shape.buckets > 0;
        let mut cursor = 0;
        loop {
            let (next, mut entries) = io
                .run(IndexPage {
                    key: &key,
                    unique,
                    cursor,
                    count: opts.batch,
                })
                .await?;
            if reserved {
                for e in &mut entries {
                    e.id = match e.id.rsplit_once('|') {
                        Some((id, _)) => id.to_owned(),
                        None => String::new(),
                    };
                }
            }
            let entity_keys: Vec<String> = entries
                .iter()
                .map(|e| spec.shape.render_joined(&e.id))
                .collect();
            // In the bucketed layout, an entry naming an id of another
            // bucket (written by hand) is never returned by `find_by`: an
            // orphan, removed without looking at an entity in another slot.
            let misplaced: Vec<bool> = entries
                .iter()
                .map(|e| {
                    !reserved
                        && spec
                            .shape
                            .bucket_scope_of(&e.id)
                            .is_some_and(|s| s != scope)
                })
                .collect();
            let held: Vec<Option<String>> = io
                .run(many(
                    entity_keys
                        .iter()
                        .map(|k| command::<Option<String>>("HGET", k).arg(&field)),
                ))
                .await?;
            let mut orphans = Vec::new();
            for (((e, k), h), m) in entries.iter().zip(&entity_keys).zip(held).zip(&misplaced) {
                stats.entries += 1;
                if *m {
                    stats.orphans += 1;
                    orphans.push((e, &key));
                } else if e.id.is_empty() || h.as_deref() != Some(e.value.as_str()) {
                    stats.orphans += 1;
                    orphans.push((e, k));
                }
            }
            if reserved {
                orphans.clear();
            }
            if let Some(removed) = removed.as_deref_mut()
                && !orphans.is_empty()
            {
                let gone = io
                    .run(many(orphans.iter().map(|(e, k)| SweepEntry {
                        keys: [key.clone(), (*k).clone()],
                        args: [
                            if unique { "1" } else { "0" }.to_owned(),
                            field.clone(),
                            e.value.clone(),
                            e.member.clone(),
                            e.id.clone(),
                        ],
                    })))
                    .await?;
                *removed += gone.into_iter().filter(|g| *g).count() as u64;
            }
            if let Some(p) = &opts.progress {
                p(&key, stats.entries);
            }
            cursor = next;
            if cursor == 0 || stats.entries >= opts.max_index_entries {
                break;
            }
        }
        out.push(stats);
    }
    if spec.shape.buckets > 0 {
        out = sum_partitions(out, &pattern);
    }
    Ok(out)
}

/// One [`IndexStats`] per field from those of every bucket's partition,
/// named by the pattern of the partitions (`<lead>{*}:#<collection>:idx:<field>`).
fn sum_partitions(parts: Vec<IndexStats>, companions: &str) -> Vec<IndexStats> {
    let base = companions.strip_suffix('*').unwrap_or(companions);
    let mut out: Vec<IndexStats> = Vec::new();
    for p in parts {
        match out
            .iter_mut()
            .find(|o| o.field == p.field && o.unique == p.unique)
        {
            Some(o) => {
                o.entries += p.entries;
                o.orphans += p.orphans;
                o.bytes = o.bytes.saturating_add(p.bytes);
                o.partitions += 1;
            }
            None => {
                let kind = if p.unique { "uniq" } else { "idx" };
                out.push(IndexStats {
                    key: format!("{base}{kind}:{}", redis_state_keys::glob_escape(&p.field)),
                    ..p
                });
            }
        }
    }
    out
}

/// What [`sweep`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SweepReport {
    /// The indexes, as checked before removal.
    pub indexes: Vec<IndexStats>,
    /// Entries removed.
    pub removed: u64,
    /// Expired entities whose index entries and expiry bookkeeping were
    /// removed first (see [`sweep_expired`]).
    pub expired: u64,
}

/// Removes the orphan entries of a hash model's indexes (blocking): each
/// with a script that checks the entity again in the same step. Entries
/// are read in batches of [`StatsOptions::batch`].
pub fn sweep<C: SyncExecutor + ?Sized>(
    con: &mut C,
    spec: &ModelSpec,
    opts: &StatsOptions,
) -> Result<SweepReport> {
    block_on(sweep_with(&mut Blocking::new(con), spec, opts))
}

/// [`sweep`], awaiting.
pub async fn sweep_async<C: AsyncExecutor + ?Sized>(
    con: &mut C,
    spec: &ModelSpec,
    opts: &StatsOptions,
) -> Result<SweepReport> {
    sweep_with(&mut Async::new(con), spec, opts).await
}

/// The procedure behind [`sweep`], written once over [`Io`].
pub async fn sweep_with<I: Io>(
    io: &mut I,
    spec: &ModelSpec,
    opts: &StatsOptions,
) -> Result<SweepReport> {
    let Some(collection) = &spec.collection else {
        return Err(Error::InvalidArgument {
            operation: "sweep",
            reason: format!("{} has no index collection", spec.name),
        });
    };
    let mut expired = ExpirySweep::default();
    loop {
        let step =
            sweep_expired_in(io, spec, collection, opts.batch, opts.max_index_entries).await?;
        expired.scopes = step.scopes;
        expired.pruned += step.pruned;
        if !step.more || step.pruned == 0 {
            expired.more = step.more;
            break;
        }
    }
    let mut removed = 0;
    let indexes = index_stats(io, spec, collection, opts, Some(&mut removed)).await?;
    Ok(SweepReport {
        indexes,
        removed,
        expired: expired.pruned,
    })
}

/// What one [`sweep_expired`] call did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ExpirySweep {
    /// Scopes (hash-tag values) with expiry bookkeeping found.
    pub scopes: u64,
    /// Expired entities whose index entries and bookkeeping were removed.
    pub pruned: u64,
    /// Whether entities past their expiry are left because this call's
    /// budget ran out: call again.
    pub more: bool,
}

/// Forgets the index entries of entities that expired (more than a second
/// ago) in every scope of a hash model, without waiting for later writes to
/// prune them (blocking). Bounded: each script call handles at most
/// `batch` entities (one `ZRANGEBYSCORE … LIMIT` and the removals of their
/// entries), and one call prunes at most `budget` entities, then returns
/// with [`ExpirySweep::more`] set. Call it periodically (or until `more` is
/// false) to keep index memory at what live entities need.
pub fn sweep_expired<C: SyncExecutor + ?Sized>(
    con: &mut C,
    spec: &ModelSpec,
    batch: usize,
    budget: u64,
) -> Result<ExpirySweep> {
    block_on(sweep_expired_with(
        &mut Blocking::new(con),
        spec,
        batch,
        budget,
    ))
}

/// [`sweep_expired`], awaiting.
pub async fn sweep_expired_async<C: AsyncExecutor + ?Sized>(
    con: &mut C,
    spec: &ModelSpec,
    batch: usize,
    budget: u64,
) -> Result<ExpirySweep> {
    sweep_expired_with(&mut Async::new(con), spec, batch, budget).await
}

/// The procedure behind [`sweep_expired`], written once over [`Io`].
pub async fn sweep_expired_with<I: Io>(
    io: &mut I,
    spec: &ModelSpec,
    batch: usize,
    budget: u64,
) -> Result<ExpirySweep> {
    let Some(collection) = &spec.collection else {
        return Err(Error::InvalidArgument {
            operation: "sweep_expired",
            reason: format!("{} has no index collection", spec.name),
        });
    };
    sweep_expired_in(io, spec, collection, batch, budget).await
}

async fn sweep_expired_in<I: Io>(
    io: &mut I,
    spec: &ModelSpec,
    collection: &str,
    batch: usize,
    budget: u64,
) -> Result<ExpirySweep> {
    let mut out = ExpirySweep::default();
    let Some(pattern) = spec.shape.companion_pattern(collection) else {
        return Ok(out);
    };
    let suffix = format!(":#{collection}:exp");
    let mut scopes: Vec<String> = Vec::new();
    scan_each(
        io,
        &pattern,
        batch.max(1),
        async |_io: &mut I, _node, keys: Vec<String>| {
            for k in keys {
                if let Some(scope) = k.strip_suffix(&suffix)
                    && !scopes.iter().any(|s| s == scope)
                {
                    scopes.push(scope.to_owned());
                }
            }
            Ok(true)
        },
    )
    .await?;
    scopes.sort();
    out.scopes = scopes.len() as u64;
    let batch = batch.max(1);
    for scope in &scopes {
        let at = |rest: &str| format!("{scope}:#{collection}:{rest}");
        let indexes: Vec<(String, bool)> = spec
            .indexes
            .iter()
            .map(|(f, unique)| {
                (
                    at(&format!("{}:{f}", if *unique { "uniq" } else { "idx" })),
                    *unique,
                )
            })
            .collect();
        loop {
            let left = budget.saturating_sub(out.pruned);
            if left == 0 {
                // Past the budget: is anything still due here?
                let (_, due) = io
                    .run(crate::hash::PruneExpired {
                        indexes: indexes.clone(),
                        exp: at("exp"),
                        expv: at("expv"),
                        limit: 0,
                    })
                    .await?;
                out.more |= due > 0;
                break;
            }
            let limit = usize::try_from(left).unwrap_or(usize::MAX).min(batch);
            let (pruned, due) = io
                .run(crate::hash::PruneExpired {
                    indexes: indexes.clone(),
                    exp: at("exp"),
                    expv: at("expv"),
                    limit,
                })
                .await?;
            out.pruned += pruned;
            if due == 0 || pruned == 0 {
                break;
            }
        }
        if out.more {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_from_text() {
        let s = KeyShape::parse("{{user}}:{id}", None).unwrap();
        assert_eq!(s.pattern(), "{user}:*");
        assert_eq!(
            s.companion_pattern("user").as_deref(),
            Some("{user}:#user:*")
        );
        assert_eq!(s.render_joined("42"), "{user}:42");
        let ns = Namespace::new("app").unwrap();
        let s = KeyShape::parse("order:{{{customer}}}:{id}", Some(&ns)).unwrap();
        assert_eq!(s.pattern(), "app:order:{*}:*");
        assert_eq!(s.render_joined("acme:7"), "app:order:{acme}:7");
        assert!(KeyShape::parse("user:{id", None).is_err());
    }

    #[test]
    fn index_members_and_keys() {
        assert_eq!(
            split_member("3:a:b:id:1"),
            Some(("a:b".to_owned(), "id:1".to_owned()))
        );
        for bad in ["", "x", "9:ab:c", "2:abc", "-1::x"] {
            assert_eq!(split_member(bad), None, "{bad}");
        }
        assert_eq!(
            index_of("{user}:#user:idx:email", "user"),
            Some(("email".into(), false, "{user}".into()))
        );
        assert_eq!(
            index_of("{user}:#user:uniq:name", "user").map(|i| i.1),
            Some(true)
        );
        assert_eq!(index_of("{user}:#user:exp", "user"), None);
    }

    #[test]
    fn ttls_fall_in_buckets() {
        let mut t = TtlStats::default();
        for ms in [
            -2,
            -1,
            0,
            59_999,
            60_000,
            3_600_000,
            90_000_000,
            700_000_000,
        ] {
            record_ttl(&mut t, ms);
        }
        assert_eq!(t.vanished, 1);
        assert_eq!(t.persistent, 1);
        assert_eq!(t.buckets, [2, 1, 1, 1, 1]);
    }
}
