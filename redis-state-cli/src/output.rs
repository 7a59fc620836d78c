//! Tables and JSON.

use std::fmt::Write as _;

use redis_state::monitor::stats::{ModelStats, TTL_BUCKETS_SECS};
use redis_state::monitor::{LatencyEvent, ServerInfo, SlowlogEntry};
use redis_state::op::Node;
use serde_json::{Value as Json, json};

pub(crate) fn print_json(v: &Json) -> Result<(), String> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    println!("{s}");
    Ok(())
}

/// `1.5 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Prints rows as a table with aligned columns.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let _ = write!(s, "{c:<w$}  ");
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn node_name(n: &Node) -> String {
    match n.address() {
        Some((h, p)) => format!("{h}:{p}"),
        None => "server".to_owned(),
    }
}

pub(crate) fn info(infos: &[(Node, ServerInfo)], json: bool) -> Result<(), String> {
    if json {
        return print_json(&Json::Array(
            infos
                .iter()
                .map(|(n, i)| json!({"node": node_name(n), "info": i}))
                .collect(),
        ));
    }
    let rows: Vec<Vec<String>> = infos
        .iter()
        .map(|(n, i)| {
            vec![
                node_name(n),
                opt(i.server.redis_version.clone()),
                opt(i.server.redis_mode.clone()),
                opt(i.replication.role.clone()),
                opt(i.clients.connected_clients),
                opt(i.memory.used_memory.map(bytes)),
                opt(i.memory.used_memory_peak.map(bytes)),
                opt(i.memory.mem_fragmentation_ratio),
                opt(i.stats.instantaneous_ops_per_sec),
                opt(i.stats.total_commands_processed),
                i.total_keys().to_string(),
                opt(i.hit_ratio().map(|r| format!("{:.1}%", r * 100.0))),
            ]
        })
        .collect();
    table(
        &[
            "node", "version", "mode", "role", "clients", "used", "peak", "frag", "ops/s",
            "commands", "keys", "hits",
        ],
        &rows,
    );
    Ok(())
}

pub(crate) fn slowlog_rows(n: &Node, entries: &[SlowlogEntry]) -> Vec<Vec<String>> {
    entries
        .iter()
        .map(|e| {
            vec![
                node_name(n),
                e.id.to_string(),
                e.at_unix_secs.to_string(),
                e.duration_us.to_string(),
                e.args.join(" ").chars().take(80).collect(),
                opt(e.client_addr.clone()),
            ]
        })
        .collect()
}

pub(crate) fn latency_rows(n: &Node, events: &[LatencyEvent]) -> Vec<Vec<String>> {
    events
        .iter()
        .map(|e| {
            vec![
                node_name(n),
                e.event.clone(),
                e.at_unix_secs.to_string(),
                e.latest_ms.to_string(),
                e.max_ms.to_string(),
            ]
        })
        .collect()
}

/// Slow log or latency events, one row per entry.
pub(crate) fn per_node<T: serde::Serialize>(
    items: &[(Node, Vec<T>)],
    json: bool,
    rows: fn(&Node, &[T]) -> Vec<Vec<String>>,
) -> Result<(), String> {
    if json {
        return print_json(&Json::Array(
            items
                .iter()
                .map(|(n, v)| json!({"node": node_name(n), "entries": v}))
                .collect(),
        ));
    }
    let all: Vec<Vec<String>> = items.iter().flat_map(|(n, v)| rows(n, v)).collect();
    let header: &[&str] = if all.first().is_some_and(|r| r.len() == 5) {
        &["node", "event", "at", "latest ms", "max ms"]
    } else {
        &["node", "id", "at", "us", "command", "client"]
    };
    if all.is_empty() {
        println!("(none)");
    } else {
        table(header, &all);
    }
    Ok(())
}

fn ttl_label(i: usize) -> String {
    let name = |s: u64| match s {
        60 => "1m",
        3_600 => "1h",
        86_400 => "1d",
        604_800 => "7d",
        _ => "?",
    };
    match TTL_BUCKETS_SECS.get(i) {
        Some(b) => format!("<{}", name(*b)),
        None => format!(">={}", name(TTL_BUCKETS_SECS[TTL_BUCKETS_SECS.len() - 1])),
    }
}

pub(crate) fn stats(stats: &[ModelStats], json: bool) -> Result<(), String> {
    if json {
        return print_json(&serde_json::to_value(stats).map_err(|e| e.to_string())?);
    }
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|s| {
            let ttl: Vec<String> = std::iter::once(format!("none:{}", s.ttl.persistent))
                .chain(
                    s.ttl
                        .buckets
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| **n > 0)
                        .map(|(i, n)| format!("{}:{n}", ttl_label(i))),
                )
                .collect();
            vec![
                s.name.clone(),
                format!("{}{}", s.keys, if s.truncated { "+" } else { "" }),
                bytes(s.memory.estimated_bytes),
                s.memory.sampled.to_string(),
                ttl.join(" "),
                s.indexes
                    .iter()
                    .map(|i| format!("{}:{}/{}", i.field, i.orphans, i.entries))
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    table(
        &[
            "model",
            "keys",
            "memory (est.)",
            "sampled",
            "ttl",
            "index orphans/entries",
        ],
        &rows,
    );
    Ok(())
}

pub(crate) fn sweep(reports: &[Json], json: bool) -> Result<(), String> {
    if json {
        return print_json(&Json::Array(reports.to_vec()));
    }
    for r in reports {
        println!(
            "{}: removed {}, expired entities forgotten {}{}",
            r["model"].as_str().unwrap_or("?"),
            r["removed"],
            r["expired"],
            if r["dry_run"] == json!(true) {
                " (dry run)"
            } else {
                ""
            }
        );
        if let Some(ix) = r["indexes"].as_array() {
            for i in ix {
                println!(
                    "  {}: {} entries, {} orphans",
                    i["key"].as_str().unwrap_or("?"),
                    i["entries"],
                    i["orphans"]
                );
            }
        }
    }
    Ok(())
}

fn plain(v: &Json, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Json::Object(m) => {
            for (k, v) in m {
                if v.is_object() || v.is_array() {
                    let _ = writeln!(out, "{pad}{k}:");
                    plain(v, indent + 2, out);
                } else {
                    let _ = writeln!(out, "{pad}{k}: {}", scalar(v));
                }
            }
        }
        Json::Array(a) => {
            for v in a {
                if v.is_object() || v.is_array() {
                    let _ = writeln!(out, "{pad}-");
                    plain(v, indent + 2, out);
                } else {
                    let _ = writeln!(out, "{pad}- {}", scalar(v));
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", scalar(other));
        }
    }
}

fn scalar(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn inspect(v: &Json, json: bool) -> Result<(), String> {
    if json {
        return print_json(v);
    }
    let mut s = String::new();
    plain(v, 0, &mut s);
    print!("{s}");
    Ok(())
}

pub(crate) fn count(what: &str, n: u64, json: bool) -> Result<(), String> {
    if json {
        eprintln!("{}", json!({ what: n }));
    } else {
        eprintln!("{what} {n} entities");
    }
    Ok(())
}
