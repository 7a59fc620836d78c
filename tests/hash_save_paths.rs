//! The compact save script (`hash/lua/save.lua`, used by `save` of models
//! without a version field or unique index) leaves the same Redis state as
//! the general write script (`hash/lua/write.lua`) for the same saves: the
//! same saves run in two namespaces, one through each script, and every key
//! of both is compared byte for byte after each step. Standalone and
//! Cluster, blocking and async.

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::Runner;
use redis::Value;
use redis_state::prelude::*;

/// Two indexes (one on an `Option` field), an optional field and an expiry
/// field: the TTL of every save is given (`PEXPIREAT`, `PERSIST`), so the
/// expiry bookkeeping holds the same scores in both namespaces.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{card}}:{id}")]
struct Card {
    #[redis(id)]
    id: u64,
    name: String,
    #[redis(index)]
    city: Option<String>,
    #[redis(index)]
    tier: u8,
    note: Option<String>,
    #[redis(expires_at)]
    until: Option<DateTime<Utc>>,
}

/// A fixed TTL (`PEXPIRE`) and an index.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{tok}}:{id}", ttl = "30m")]
struct Tok {
    #[redis(id)]
    id: u64,
    #[redis(index)]
    kind: String,
    extra: Option<String>,
}

/// No index: a TTL and an optional field (the compact script without
/// index keys).
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{memo}}:{id}", ttl = "30m")]
struct Memo {
    #[redis(id)]
    id: u64,
    text: String,
    extra: Option<String>,
}

/// One index, on an `Option` field, and an expiry field: the compact
/// script's single-index path (scalars, no tables) through the same steps.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{spot}}:{id}")]
struct Spot {
    #[redis(id)]
    id: u64,
    name: String,
    #[redis(index)]
    city: Option<String>,
    note: Option<String>,
    #[redis(expires_at)]
    until: Option<DateTime<Utc>>,
}

fn spot(id: u64, city: Option<&str>, _tier: u8, note: Option<&str>, until: Option<i64>) -> Spot {
    Spot {
        id,
        name: format!("spot {id}"),
        city: city.map(str::to_owned),
        note: note.map(str::to_owned),
        until: until.map(|ms| Utc.timestamp_millis_opt(ms).unwrap()),
    }
}

fn card(id: u64, city: Option<&str>, tier: u8, note: Option<&str>, until: Option<i64>) -> Card {
    Card {
        id,
        name: format!("card {id}"),
        city: city.map(str::to_owned),
        tier,
        note: note.map(str::to_owned),
        until: until.map(|ms| Utc.timestamp_millis_opt(ms).unwrap()),
    }
}

/// The two namespaces: saves through the compact script, and through the
/// general one.
struct Pair {
    compact: Namespace,
    general: Namespace,
}

impl Pair {
    fn new(ns: &Namespace) -> Self {
        Pair {
            compact: Namespace::new(format!("{ns}:c")).unwrap(),
            general: Namespace::new(format!("{ns}:g")).unwrap(),
        }
    }

    /// Saves `m` in both namespaces, each through its script.
    fn save<M: RedisHash + Sync>(&self, r: &mut Runner, m: &M) {
        r.run(m.save().namespace(&self.compact)).unwrap();
        r.run(m.save().__general_script().namespace(&self.general))
            .unwrap();
    }

    /// `save_many` in the compact namespace, one general save each in the
    /// other.
    fn save_many<M: RedisHash + Sync>(&self, r: &mut Runner, ms: &[M]) {
        r.run(M::save_many(ms).namespace(&self.compact)).unwrap();
        for m in ms {
            r.run(m.save().__general_script().namespace(&self.general))
                .unwrap();
        }
    }

    /// Every key named by `keys` (relative to the namespace) reads the same
    /// in both; `exact` compares expiry times too, else only their sign
    /// (a relative TTL gives each namespace its own clock reading).
    fn same(&self, r: &mut Runner, keys: &[String], exact: bool, step: &str) -> Vec<String> {
        let a = dump(r, &self.compact, keys, exact);
        let b = dump(r, &self.general, keys, exact);
        assert_eq!(a, b, "{step}: compact (left) and general (right) differ");
        a
    }
}

/// One line per key: its type and contents, sorted, with the expiry time
/// of the key (and the scores of the expiry ZSET) exact or as their sign.
fn dump(r: &mut Runner, ns: &Namespace, keys: &[String], exact: bool) -> Vec<String> {
    let time = |t: i64| {
        if exact || t <= 0 {
            t.to_string()
        } else {
            "later".to_owned()
        }
    };
    let mut out = Vec::new();
    for k in keys {
        let full = format!("{ns}:{k}");
        let kind: String = r.cmd("TYPE", &full).go();
        let body = match kind.as_str() {
            "hash" => {
                let mut pairs: Vec<(String, String)> = r.cmd("HGETALL", &full).go();
                pairs.sort();
                format!("{pairs:?}")
            }
            "zset" => {
                let entries: Vec<(String, i64)> =
                    r.cmd("ZRANGE", &full).arg(0).arg(-1).arg("WITHSCORES").go();
                let entries: Vec<(String, String)> = if k.ends_with(":exp") {
                    entries.into_iter().map(|(m, s)| (m, time(s))).collect()
                } else {
                    entries
                        .into_iter()
                        .map(|(m, s)| (m, s.to_string()))
                        .collect()
                };
                format!("{entries:?}")
            }
            "none" => String::new(),
            other => panic!("{full}: unexpected type {other}"),
        };
        let expiry: i64 = r.cmd("PEXPIRETIME", &full).go();
        out.push(format!("{k} {kind} ttl={} {body}", time(expiry)));
    }
    out
}

/// The entities and the index and bookkeeping keys of a model named
/// `name` with the given indexes.
fn model_keys(name: &str, indexes: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = (1..=6).map(|id| format!("{{{name}}}:{id}")).collect();
    for k in indexes
        .iter()
        .map(|i| format!("idx:{i}"))
        .chain(["exp".into(), "expv".into()])
    {
        keys.push(format!("{{{name}}}:#{name}:{k}"));
    }
    keys
}

/// Builds an entity of the steps' model: id, city, tier (ignored by a
/// model without it), note, expiry (epoch ms).
type Make<M> = fn(u64, Option<&str>, u8, Option<&str>, Option<i64>) -> M;

/// `None` fields, TTL changes (none, an expiry, none again, one in the
/// past), index moves and removals, an entity that expires, the prune of
/// its entries by a later new entity, and its re-creation.
fn same_state_with_expiry_field(r: &mut Runner, ns: &Namespace) {
    expiry_steps(r, ns, &model_keys("card", &["city", "tier"]), card);
}

/// The same steps with one index: the compact script's single-index path.
fn same_state_with_one_index(r: &mut Runner, ns: &Namespace) {
    expiry_steps(r, ns, &model_keys("spot", &["city"]), spot);
}

fn expiry_steps<M: RedisHash + Sync>(
    r: &mut Runner,
    ns: &Namespace,
    keys: &[String],
    make: Make<M>,
) {
    let p = Pair::new(ns);
    let now = Utc::now().timestamp_millis();
    let hour = now + 3_600_000;

    p.save(r, &make(1, Some("Paris"), 1, None, None));
    p.save(r, &make(2, None, 2, Some("n"), Some(hour)));
    let s = p.same(r, keys, true, "new entities");
    assert!(s.iter().any(|l| l.contains("5:Paris:1")), "{s:?}");

    // an index move, and an expiry where there was none
    p.save(r, &make(1, Some("Lyon"), 1, Some("x"), Some(hour)));
    // an index value where there was none, and no expiry any more
    p.save(r, &make(2, Some("Rome"), 3, None, None));
    let s = p.same(r, keys, true, "index moves, TTL changes");
    assert!(s.iter().any(|l| l.contains("4:Lyon:1")), "{s:?}");

    // an expiry in the past: the entity is gone at once, with its entries
    p.save(r, &make(4, Some("Oslo"), 4, None, Some(now - 5_000)));
    // an indexed value removed
    p.save(r, &make(1, None, 1, None, Some(hour)));
    let s = p.same(r, keys, true, "removed value, past expiry");
    assert!(!s.iter().any(|l| l.contains(":Oslo:")), "{s:?}");

    // an entity that expires: its entries stay until a write prunes them
    // (2 s ahead, so that both saves take it alive even on a slow machine)
    let soon = Utc::now().timestamp_millis() + 2_000;
    p.save(r, &make(3, Some("Nice"), 5, None, Some(soon)));
    let wait = soon + 1_300 - Utc::now().timestamp_millis();
    std::thread::sleep(Duration::from_millis(wait.max(0) as u64));
    let s = p.same(r, keys, true, "expired, not yet pruned");
    assert!(s.iter().any(|l| l.contains("4:Nice:3")), "{s:?}");

    // a new entity prunes them
    p.save(r, &make(5, Some("Bern"), 1, None, Some(hour)));
    let s = p.same(r, keys, true, "pruned by a new entity");
    assert!(!s.iter().any(|l| l.contains(":Nice:")), "{s:?}");

    // the expired entity comes back; a batch of saves
    p.save(r, &make(3, Some("Nice"), 5, Some("back"), None));
    p.save_many(
        r,
        &[
            make(5, Some("Bern"), 2, None, None),
            make(6, None, 6, Some("six"), Some(hour)),
            make(2, Some("Rome"), 3, Some("r"), Some(hour)),
        ],
    );
    p.same(r, keys, true, "re-created, save_many");
}

/// A fixed TTL: the same keys, entries and bookkeeping (expiry times
/// compared by sign).
fn same_state_with_fixed_ttl(r: &mut Runner, ns: &Namespace) {
    let p = Pair::new(ns);
    let mut keys: Vec<String> = (1..=3).map(|id| format!("{{tok}}:{id}")).collect();
    for k in ["idx:kind", "exp", "expv"] {
        keys.push(format!("{{tok}}:#tok:{k}"));
    }
    let tok = |id: u64, kind: &str, extra: Option<&str>| Tok {
        id,
        kind: kind.to_owned(),
        extra: extra.map(str::to_owned),
    };
    p.save(r, &tok(1, "a", Some("x")));
    p.save(r, &tok(2, "b", None));
    let s = p.same(r, &keys, false, "new entities");
    assert!(s.iter().any(|l| l.contains("1:a:1")), "{s:?}");
    p.save(r, &tok(1, "c", None));
    p.save_many(r, &[tok(2, "a", Some("y")), tok(3, "c", None)]);
    let s = p.same(r, &keys, false, "moves, None fields, save_many");
    assert!(s.iter().any(|l| l.contains("\"1:c:3\"")), "{s:?}");

    // memos: no index keys at all
    let memo = |id: u64, extra: Option<&str>| Memo {
        id,
        text: format!("memo {id}"),
        extra: extra.map(str::to_owned),
    };
    let memo_keys: Vec<String> = (1..=2).map(|id| format!("{{memo}}:{id}")).collect();
    p.save(r, &memo(1, Some("e")));
    p.save(r, &memo(1, None));
    p.save_many(r, &[memo(2, Some("f"))]);
    let s = p.same(r, &memo_keys, false, "unindexed model");
    assert!(
        s[0].contains("memo 1") && !s[0].contains("\"extra\""),
        "{s:?}"
    );
}

/// The compact script reads its arguments by position: a save of a model
/// whose index is on a field after an absent one loads back and is found.
fn compact_saves_load_and_find(r: &mut Runner, ns: &Namespace) {
    let c = card(1, Some("Paris"), 7, None, None);
    r.run(c.save().namespace(ns)).unwrap();
    assert_eq!(r.run(Card::load(&1).namespace(ns)).unwrap(), Some(c));
    let found = r.run(Card::find_by_tier(&7).namespace(ns)).unwrap();
    assert_eq!(found.len(), 1);
    let none = card(2, None, 8, Some("n"), None);
    r.run(none.save().namespace(ns)).unwrap();
    assert_eq!(r.run(Card::load(&2).namespace(ns)).unwrap(), Some(none));
    assert_eq!(
        r.run(Card::find_by_city("Paris").namespace(ns))
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [1]
    );
    let raw: Value = r.cmd("HGET", &format!("{ns}:{{card}}:2")).arg("city").go();
    assert_eq!(raw, Value::Nil);
}

matrix!(
    same_state_with_expiry_field,
    same_state_with_one_index,
    same_state_with_fixed_ttl,
    compact_saves_load_and_find,
);
