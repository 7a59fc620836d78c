//! `inspect KEY`: what a key holds, decoded by its type and by what
//! redis-state writes there.

use redis::Value;
use redis_state::op::command;
use redis_state::{Operation, batch};
use serde_json::{Map, Value as Json, json};

use crate::Con;

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Nil => "(nil)".into(),
        other => format!("{other:?}"),
    }
}

/// A cache entry: `rsc1 v<version> d<delta ms> x<fresh until ms> v|n`, a
/// newline, the JSON.
fn cache_entry(raw: &str) -> Option<Json> {
    let (header, body) = raw.split_once('\n')?;
    let mut parts = header.strip_prefix("rsc1 ")?.split(' ');
    let version: u64 = parts.next()?.strip_prefix('v')?.parse().ok()?;
    let delta: u64 = parts.next()?.strip_prefix('d')?.parse().ok()?;
    let fresh: u64 = parts.next()?.strip_prefix('x')?.parse().ok()?;
    let kind = parts.next()?;
    if parts.next().is_some() || !matches!(kind, "v" | "n") {
        return None;
    }
    Some(json!({
        "format_version": version,
        "load_time_ms": delta,
        "fresh_until_unix_ms": fresh,
        "negative": kind == "n",
        "value": serde_json::from_str::<Json>(body).unwrap_or(Json::String(body.to_owned())),
    }))
}

/// A reservation of a unique value in the bucketed layout:
/// `<id>|<server ms>.<random hex>` -> (id, token, ms).
fn reservation(v: &[u8]) -> Option<(String, String, u64)> {
    let s = std::str::from_utf8(v).ok()?;
    let (id, token) = s.rsplit_once('|')?;
    let (ms, random) = token.split_once('.')?;
    if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) || random.is_empty() {
        return None;
    }
    Some((id.to_owned(), token.to_owned(), ms.parse().ok()?))
}

/// What the key's name says it is, by redis-state's naming rules.
fn role(key: &str) -> &'static str {
    if key.ends_with("#fence") {
        "lock fencing counter"
    } else if key.ends_with(":#lease") {
        "cache fill lease"
    } else if key.contains(":idx:") && key.contains(":#") {
        "secondary index (sorted set of <len>:<value>:<id>)"
    } else if key.contains(":uniq:") && key.contains(":#") {
        "unique index (value -> id)"
    } else if key.contains(":#") && key.ends_with(":fence") {
        "unique-value fence (revoked reservation tokens, by the server ms of their revocation)"
    } else if key.contains(":#") {
        "redis-state companion key"
    } else if key.starts_with("lock:") {
        "lock"
    } else if key.starts_with("session:") {
        "session"
    } else {
        "entity"
    }
}

/// What the key's name holds: its slot, its hash tag (a bucketed entity's
/// `user:{<tag>}:42` names its bucket's tag), and for an index (or a
/// bucket's index partition) its scope, collection, kind and field.
fn name_parts(key: &str, out: &mut Map<String, Json>) {
    out.insert(
        "slot".into(),
        json!(redis_state::keys::key_slot(key.as_bytes())),
    );
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        out.insert("hash_tag".into(), json!(&key[open + 1..open + 1 + len]));
    }
    if let Some(at) = key.rfind(":#")
        && let Some((collection, rest)) = key[at + 2..].split_once(':')
        && let Some((kind, field)) = rest.split_once(':')
        && matches!(kind, "idx" | "uniq")
    {
        out.insert(
            "index".into(),
            json!({
                "scope": &key[..at],
                "collection": collection,
                "unique": kind == "uniq",
                "field": field,
            }),
        );
    }
}

pub(crate) fn inspect(con: &mut Con, key: &str, limit: usize) -> redis_state::Result<Json> {
    let (kind, pttl, bytes) = con.run(batch((
        command::<String>("TYPE", key),
        command::<i64>("PTTL", key),
        MemoryUsage(Some(key.to_owned())).settled(),
    )))?;
    let bytes = bytes.ok().flatten();
    let mut out = Map::new();
    out.insert("key".into(), json!(key));
    out.insert("type".into(), json!(kind));
    out.insert(
        "ttl_ms".into(),
        match pttl {
            -2 => Json::Null,
            -1 => json!("none"),
            ms => json!(ms),
        },
    );
    out.insert("memory_bytes".into(), json!(bytes));
    out.insert("role".into(), json!(role(key)));
    name_parts(key, &mut out);
    let limit = limit.max(1);
    match kind.as_str() {
        "none" => {
            out.insert("exists".into(), json!(false));
        }
        "string" => {
            let raw: Vec<u8> = con.run(command::<Vec<u8>>("GET", key))?;
            let s = String::from_utf8_lossy(&raw).into_owned();
            if let Some(entry) = cache_entry(&s) {
                out.insert("role".into(), json!("cache entry"));
                out.insert("decoded".into(), entry);
            } else if let Ok(j) = serde_json::from_str::<Json>(&s) {
                if role(key) == "entity" && j.is_object() {
                    out.insert("role".into(), json!("JSON document (session or value)"));
                }
                out.insert("decoded".into(), j);
            } else {
                let preview: String = s.chars().take(512).collect();
                out.insert("value".into(), json!(preview));
                out.insert("length".into(), json!(raw.len()));
            }
        }
        "hash" => {
            // One page of HSCAN: bounded however large the hash.
            let (len, (_cursor, flat)): (u64, (u64, Vec<Vec<u8>>)) = con.run(batch((
                command::<u64>("HLEN", key),
                command::<(u64, Vec<Vec<u8>>)>("HSCAN", key)
                    .arg(0)
                    .arg("COUNT")
                    .arg(limit),
            )))?;
            let fields: Vec<(&Vec<u8>, &Vec<u8>)> = flat
                .chunks(2)
                .filter_map(|p| Some((p.first()?, p.get(1)?)))
                .collect();
            let mut m = Map::new();
            for (f, v) in fields.iter().take(limit) {
                m.insert(
                    String::from_utf8_lossy(f).into_owned(),
                    json!(String::from_utf8_lossy(v)),
                );
            }
            // A unique index of the bucketed layout holds reservations,
            // value -> `<id>|<token>`, not value -> id: told apart by what
            // the page shows.
            if role(key).starts_with("unique index")
                && !fields.is_empty()
                && fields.iter().all(|(_, v)| reservation(v).is_some())
            {
                out.insert(
                    "role".into(),
                    json!("unique value reservations (value -> <id>|<token>)"),
                );
                let mut held = Map::new();
                for (f, v) in fields.iter().take(limit) {
                    if let Some((id, token, at)) = reservation(v) {
                        held.insert(
                            String::from_utf8_lossy(f).into_owned(),
                            json!({"holder": id, "token": token, "reserved_at_unix_ms": at}),
                        );
                    }
                }
                out.insert("reservations".into(), Json::Object(held));
            }
            out.insert("fields".into(), Json::Object(m));
            out.insert("length".into(), json!(len));
        }
        "zset" => {
            let (len, top): (u64, Vec<(String, f64)>) = con.run(batch((
                command::<u64>("ZCARD", key),
                command::<Vec<(String, f64)>>("ZREVRANGE", key)
                    .arg(0)
                    .arg(limit.saturating_sub(1))
                    .arg("WITHSCORES"),
            )))?;
            if role(key) == "entity" {
                out.insert("role".into(), json!("leaderboard or sorted set"));
            }
            out.insert("length".into(), json!(len));
            out.insert(
                "top".into(),
                Json::Array(
                    top.into_iter()
                        .map(|(m, s)| json!({"member": m, "score": s}))
                        .collect(),
                ),
            );
        }
        "list" | "set" | "stream" => {
            let (len_cmd, items_cmd) = match kind.as_str() {
                "list" => ("LLEN", "LRANGE"),
                "set" => ("SCARD", "SRANDMEMBER"),
                _ => ("XLEN", "XRANGE"),
            };
            let len: u64 = con.run(command::<u64>(len_cmd, key))?;
            let items: Value = match kind.as_str() {
                "list" => con.run(command::<Value>(items_cmd, key).arg(0).arg(limit - 1))?,
                "set" => con.run(command::<Value>(items_cmd, key).arg(limit))?,
                _ => con.run(
                    command::<Value>(items_cmd, key)
                        .arg("-")
                        .arg("+")
                        .arg("COUNT")
                        .arg(limit),
                )?,
            };
            out.insert("length".into(), json!(len));
            out.insert("items".into(), value_json(&items));
        }
        _ => {}
    }
    Ok(Json::Object(out))
}

fn value_json(v: &Value) -> Json {
    match v {
        Value::Array(items) | Value::Set(items) => {
            Json::Array(items.iter().map(value_json).collect())
        }
        Value::Map(pairs) => Json::Array(
            pairs
                .iter()
                .map(|(k, v)| json!([value_json(k), value_json(v)]))
                .collect(),
        ),
        other => json!(text(other)),
    }
}

/// `MEMORY USAGE key SAMPLES 0`.
struct MemoryUsage(Option<String>);

impl Operation for MemoryUsage {
    type Output = Option<u64>;
    fn prepare(&mut self, plan: &mut redis_state::op::Plan) -> redis_state::Result<()> {
        if let Some(k) = self.0.take() {
            // The key is the second argument: routed by it explicitly.
            plan.cmd_routed("MEMORY", &k)
                .arg("USAGE")
                .arg(&k)
                .arg("SAMPLES")
                .arg(0);
        }
        Ok(())
    }
    fn complete(
        &mut self,
        replies: &mut redis_state::op::Replies,
    ) -> redis_state::Result<redis_state::op::Step<Option<u64>>> {
        replies
            .next::<Option<u64>>("MEMORY USAGE")
            .map(redis_state::op::Step::Done)
    }
}
