//! Invalidation by key pattern: the last resort (it `SCAN`s every primary),
//! for groups no tag was declared for.

use redis::{Cmd, Value};

use super::Cached;
use super::ops::{DEFAULT_HOLD, push_invalidate_if};
use crate::driver::{Async, Blocking, Io, block_on};
use crate::error::{Error, Result};
use crate::exec::{AsyncExecutor, SyncExecutor};
use crate::keys::{IdBuf, IdValue, KeyPart, Namespace, Seg, glob_escape};
use crate::op::{Node, Operation, Plan, Replies, Step};

/// A `SCAN MATCH` pattern whose user values are escaped: literal text is
/// glob-escaped, values are escaped like key parts (which escapes `*`, `?`,
/// `[`, `]` and `\` too), and only [`KeyPattern::any`] adds a wildcard.
///
/// ```
/// use redis_state::cache::KeyPattern;
/// let p = KeyPattern::new().lit("user:").value(&"4*2").lit(":").any();
/// assert_eq!(p.as_str(), "user:4%2A2:*");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPattern(String, PatternScope);

impl KeyPattern {
    /// An empty pattern.
    pub fn new() -> Self {
        KeyPattern(String::new(), PatternScope::CacheEntries)
    }

    /// Appends literal text (glob characters escaped).
    pub fn lit(mut self, literal: &str) -> Self {
        self.0.push_str(&glob_escape(literal));
        self
    }

    /// Appends a value, escaped as a key part.
    pub fn value<V: KeyPart + ?Sized>(mut self, value: &V) -> Self {
        let mut buf = IdBuf::new();
        value.write_key_part(&mut buf);
        self.0.push_str(&glob_escape(buf.joined()));
        self
    }

    /// Appends `*`.
    pub fn any(mut self) -> Self {
        self.0.push('*');
        self
    }

    /// Every entry of `T` in `ns` (or the type's namespace) whose id starts
    /// with `prefix` (a leading part of the id: one key part or a tuple;
    /// `&()` for all entries of the type). For a type in the bucketed
    /// layout (`#[cache(buckets = N)]`) the pattern matches every bucket's
    /// hash tag (`product:{*}:42`).
    ///
    /// The pattern knows `T`'s entry format: for a plain-format type
    /// ([`EntryFormat::Plain`](super::EntryFormat::Plain), entries with no
    /// header) [`invalidate_pattern`] deletes the strings under `T`'s key
    /// template as [`PatternScope::AnyString`] does.
    pub fn entries_of<T: Cached, P: IdValue + ?Sized>(ns: Option<&Namespace>, prefix: &P) -> Self {
        let mut parts = IdBuf::new();
        prefix.write_id(&mut parts);
        let key = &T::SCHEMA.key;
        let mut prefix = String::new();
        crate::keys::write_ns_prefix(ns, key.namespace, &mut prefix);
        let mut out = KeyPattern::new().lit(&prefix);
        // The bucketed layout: any bucket's hash tag after the leading text.
        let tag_at = match key.segs.first() {
            Some(Seg::Lit(_)) => 1,
            _ => 0,
        };
        for (at, seg) in key.segs.iter().enumerate() {
            if at == tag_at && T::SCHEMA.buckets > 0 {
                out.0.push_str("{*}:");
            }
            match *seg {
                Seg::Lit(s) => out = out.lit(s),
                Seg::Part(i) if (i as usize) < parts.len() => {
                    out.0.push_str(&glob_escape(parts.part(i as usize)));
                }
                Seg::Part(_) => out = out.any(),
            }
        }
        if tag_at == key.segs.len() && T::SCHEMA.buckets > 0 {
            out.0.push_str("{*}:");
        }
        if T::SCHEMA.format == super::EntryFormat::Plain {
            out.1 = PatternScope::AnyString;
        }
        out
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const SCAN_COUNT: usize = 512;

/// What a pattern invalidation deletes among the string keys its pattern
/// matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PatternScope {
    /// Cache entries only (the default): strings that start with the entry
    /// header `#[derive(Cached)]` writes. Anything else the pattern meets
    /// (sessions, a plain-format entry, other programs' strings, keys with
    /// stray braces) is left alone and not counted.
    #[default]
    CacheEntries,
    /// Every string key the pattern matches, as asked for: plain-format
    /// entries (`#[cache(format = "plain")]`, whose bytes are the JSON
    /// alone), sessions and other programs' strings too.
    AnyString,
}

/// Deletes every cache entry matching `pattern` on a blocking connection
/// (`SCAN … MATCH … TYPE string` on the server, or on every primary of a
/// Cluster), revoking fills in flight like [`Cached::invalidate`]. Returns
/// how many keys were deleted.
///
/// Only keys holding a cache entry are deleted ([`PatternScope::CacheEntries`]):
/// a broad pattern leaves the keys redis-state keeps for other purposes
/// alone (fill leases and lock fence counters, which are never deleted
/// whatever the scope; sessions; strings of other programs).
/// Plain-format entries carry no header: a pattern made by
/// [`KeyPattern::entries_of`] for a plain-format type deletes the strings
/// under that type's key template ([`PatternScope::AnyString`]); for a
/// hand-made pattern, say so with [`invalidate_pattern_scoped`].
///
/// Cost: one round trip per 512 keys scanned on the busiest primary: each
/// round holds every primary's next `SCAN` (sent to each node, one request
/// per node on a Cluster) and the `invalidate` scripts of the keys the round
/// before found (pipelined per slot). Prefer tags.
pub fn invalidate_pattern<C>(con: &mut C, pattern: &KeyPattern) -> Result<usize>
where
    C: SyncExecutor + ?Sized,
{
    invalidate_pattern_scoped(con, pattern, pattern.1)
}

/// [`invalidate_pattern`] on an async connection.
pub async fn invalidate_pattern_async<C>(con: &mut C, pattern: &KeyPattern) -> Result<usize>
where
    C: AsyncExecutor + ?Sized,
{
    invalidate_pattern_scoped_async(con, pattern, pattern.1).await
}

/// [`invalidate_pattern`], deleting what `scope` says (blocking). The keys
/// redis-state keeps beside others (`…:#lease`, `…:#fence`, `{…}#fence`;
/// user values cannot hold `#`: it is escaped) are never deleted.
pub fn invalidate_pattern_scoped<C>(
    con: &mut C,
    pattern: &KeyPattern,
    scope: PatternScope,
) -> Result<usize>
where
    C: SyncExecutor + ?Sized,
{
    block_on(invalidate(&mut Blocking::new(con), pattern, scope))
}

/// [`invalidate_pattern_scoped`] on an async connection.
pub async fn invalidate_pattern_scoped_async<C>(
    con: &mut C,
    pattern: &KeyPattern,
    scope: PatternScope,
) -> Result<usize>
where
    C: AsyncExecutor + ?Sized,
{
    invalidate(&mut Async::new(con), pattern, scope).await
}

/// Walks every primary's `SCAN` to its end, deleting what each round found
/// in the next one.
async fn invalidate<I: Io>(io: &mut I, pattern: &KeyPattern, scope: PatternScope) -> Result<usize> {
    let mut round = ScanRound {
        pattern: pattern.as_str().to_owned(),
        scope,
        cursors: None,
        delete: Vec::new(),
    };
    let mut deleted = 0;
    loop {
        let next = io.run(round).await?;
        deleted += next.deleted;
        if next.cursors.is_empty() && next.found.is_empty() {
            return Ok(deleted);
        }
        round = ScanRound {
            pattern: pattern.as_str().to_owned(),
            scope,
            cursors: Some(next.cursors),
            delete: next.found,
        };
    }
}

/// One round of a pattern invalidation: the `invalidate` scripts of the
/// keys found last round, and the next `SCAN` of every primary not done
/// yet (the first round: `SCAN 0` to every primary).
struct ScanRound {
    pattern: String,
    scope: PatternScope,
    /// `None` on the first round; then the nodes still scanning.
    cursors: Option<Vec<(Node, u64)>>,
    delete: Vec<String>,
}

/// What a round did and what is left.
struct Scanned {
    deleted: usize,
    /// The nodes whose scan goes on, with their cursors.
    cursors: Vec<(Node, u64)>,
    /// The keys this round's scans found.
    found: Vec<String>,
}

impl ScanRound {
    fn scan_args<'c>(&self, cmd: &'c mut Cmd, cursor: u64) -> &'c mut Cmd {
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(&self.pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .arg("TYPE")
            .arg("string")
    }
}

impl Operation for ScanRound {
    type Output = Scanned;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        for k in &self.delete {
            push_invalidate_if(
                plan,
                k,
                DEFAULT_HOLD,
                self.scope == PatternScope::CacheEntries,
            )?;
        }
        match &self.cursors {
            None => {
                let cmd = plan.every_primary("SCAN");
                self.scan_args(cmd, 0);
            }
            Some(cursors) => {
                for (node, cursor) in cursors {
                    let cmd = plan.on_node(node, "SCAN");
                    self.scan_args(cmd, *cursor);
                }
            }
        }
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Scanned>> {
        let mut deleted = 0;
        for _ in &self.delete {
            if replies.next::<i64>("the invalidate script")? > 0 {
                deleted += 1;
            }
        }
        let replies: Vec<(Node, Value)> = match &self.cursors {
            None => replies.next_per_node()?,
            Some(cursors) => cursors
                .iter()
                .map(|(node, _)| Ok((node.clone(), replies.next_value()?)))
                .collect::<Result<_>>()?,
        };
        let mut out = Scanned {
            deleted,
            cursors: Vec::new(),
            found: Vec::new(),
        };
        for (node, reply) in replies {
            let (next, keys) = parse_scan(&reply)?;
            if next != 0 {
                out.cursors.push((node, next));
            }
            out.found.extend(keys);
        }
        Ok(Step::Done(out))
    }
}

/// A key redis-state keeps beside another (`…:#lease`, `…:#fence`,
/// `{…}#fence`): user values cannot hold `#` (it is escaped in key parts).
fn is_companion(key: &str) -> bool {
    key.contains(":#") || key.contains("}#")
}

fn parse_scan(v: &Value) -> Result<(u64, Vec<String>)> {
    let bad = || Error::unexpected("SCAN", v);
    let Value::Array(parts) = v else {
        return Err(bad());
    };
    let cursor = match parts.first() {
        Some(Value::BulkString(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?,
        Some(Value::Int(n)) => u64::try_from(*n).map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    let keys = match parts.get(1) {
        Some(Value::Array(keys)) => keys
            .iter()
            .filter_map(|k| match k {
                Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
                _ => None,
            })
            // Fill leases are strings too (`<key>:#lease` when the key has a
            // hash tag); deleting one would lift an invalidation's hold. They,
            // fence counters (`…#fence`) and every other companion key hold a
            // `#`, which user values cannot (it is escaped in key parts).
            .filter(|k: &String| !is_companion(k))
            .collect(),
        _ => return Err(bad()),
    };
    Ok((cursor, keys))
}
