//! `streams`, `queues`, `pending`, `dead` and `replay`: the backlogs of
//! streams (consumer groups, dead letters) and job queues.

use clap::Args;
use redis_state::monitor::backlog::{self, StreamInfo};
use redis_state::queue::Queue;
use serde_json::{Value as Json, json};

use crate::output::{print_json, table};
use crate::{Con, with_io};

/// Which backlog a command works on: a stream (and a group) or a queue.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub(crate) struct Target {
    /// A stream's key.
    #[arg(long)]
    stream: Option<String>,
    /// A job queue's name.
    #[arg(long)]
    queue: Option<String>,
}

fn err(e: redis_state::Error) -> String {
    e.to_string()
}

fn opt_ms(v: Option<std::time::Duration>) -> String {
    v.map_or_else(|| "-".to_owned(), |d| format!("{} ms", d.as_millis()))
}

/// Every stream (or those matching `pattern`) with its groups.
pub(crate) fn streams(
    con: &mut Con,
    pattern: &str,
    batch: usize,
    json: bool,
) -> Result<(), String> {
    let keys = with_io!(con, |io| backlog::stream_keys(io, pattern, batch)).map_err(err)?;
    let mut infos: Vec<StreamInfo> = Vec::with_capacity(keys.len());
    for k in &keys {
        infos.push(con.run(backlog::stream_info(k)).map_err(err)?);
    }
    if json {
        return print_json(&serde_json::to_value(&infos).map_err(|e| e.to_string())?);
    }
    let mut rows = Vec::new();
    for s in &infos {
        let head = |g: &str| {
            vec![
                s.key.clone(),
                s.length.to_string(),
                s.dead_letters.to_string(),
                g.to_owned(),
            ]
        };
        if s.groups.is_empty() {
            let mut r = head("-");
            r.extend(["-", "-", "-", "-"].map(String::from));
            rows.push(r);
        }
        for g in &s.groups {
            let mut r = head(&g.name);
            r.extend([
                g.consumers.to_string(),
                g.pending.to_string(),
                g.lag.map_or_else(|| "-".to_owned(), |l| l.to_string()),
                opt_ms(g.oldest_pending_idle),
            ]);
            rows.push(r);
        }
    }
    table(
        &[
            "stream",
            "length",
            "dead",
            "group",
            "consumers",
            "pending",
            "lag",
            "oldest pending idle",
        ],
        &rows,
    );
    Ok(())
}

/// Every job queue with its depth.
pub(crate) fn queues(con: &mut Con, batch: usize, json: bool) -> Result<(), String> {
    let qs = with_io!(con, |io| backlog::queues(io, batch)).map_err(err)?;
    if json {
        return print_json(&serde_json::to_value(&qs).map_err(|e| e.to_string())?);
    }
    let rows: Vec<Vec<String>> = qs
        .iter()
        .map(|q| {
            vec![
                q.name.clone(),
                q.depth.ready.to_string(),
                q.depth.delayed.to_string(),
                q.depth.active.to_string(),
                q.depth.dead.to_string(),
                format!("{} ms", q.depth.lag.as_millis()),
            ]
        })
        .collect();
    table(
        &["queue", "ready", "delayed", "active", "dead", "lag"],
        &rows,
    );
    Ok(())
}

/// What a group's consumers hold, or a queue's jobs under a lease.
pub(crate) fn pending(
    con: &mut Con,
    target: &Target,
    group: Option<&str>,
    count: usize,
    json: bool,
) -> Result<(), String> {
    if let Some(key) = &target.stream {
        let group = group.ok_or("pending --stream needs --group NAME")?;
        let p = con
            .run(backlog::stream_pending(key, group, count))
            .map_err(err)?;
        if json {
            return print_json(&serde_json::to_value(&p).map_err(|e| e.to_string())?);
        }
        let rows: Vec<Vec<String>> = p
            .consumers
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.pending.to_string(),
                    format!("{} ms", c.idle.as_millis()),
                ]
            })
            .collect();
        table(&["consumer", "pending", "idle"], &rows);
        println!();
        let rows: Vec<Vec<String>> = p
            .entries
            .iter()
            .map(|e| {
                vec![
                    e.id.clone(),
                    e.consumer.clone(),
                    format!("{} ms", e.idle.as_millis()),
                    e.deliveries.to_string(),
                ]
            })
            .collect();
        table(&["entry", "consumer", "idle", "deliveries"], &rows);
        return Ok(());
    }
    let name = target.queue.as_deref().unwrap_or_default();
    let jobs = con.run(backlog::queue_active(name, count)).map_err(err)?;
    if json {
        return print_json(&serde_json::to_value(&jobs).map_err(|e| e.to_string())?);
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.clone(),
                j.attempt.to_string(),
                format!("{} ms", j.lease_left_ms),
            ]
        })
        .collect();
    table(&["job", "attempt", "lease left"], &rows);
    Ok(())
}

/// Dead letters of a stream, or dead jobs of a queue, with their errors.
pub(crate) fn dead(con: &mut Con, target: &Target, count: usize, json: bool) -> Result<(), String> {
    if let Some(key) = &target.stream {
        let letters = con.run(backlog::stream_dead(key, count)).map_err(err)?;
        if json {
            return print_json(&serde_json::to_value(&letters).map_err(|e| e.to_string())?);
        }
        let rows: Vec<Vec<String>> = letters
            .iter()
            .map(|d| {
                vec![
                    d.id.clone(),
                    d.origin.clone(),
                    d.group.clone(),
                    d.attempts.to_string(),
                    d.deliveries.to_string(),
                    d.error.clone(),
                ]
            })
            .collect();
        table(
            &[
                "dead id",
                "origin",
                "group",
                "attempts",
                "deliveries",
                "error",
            ],
            &rows,
        );
        return Ok(());
    }
    let name = target.queue.as_deref().unwrap_or_default();
    let jobs = con.run(Queue::<Json>::new(name).dead(count)).map_err(err)?;
    let items: Vec<Json> = jobs
        .iter()
        .map(|j| {
            json!({
                "id": j.id,
                "attempts": j.attempts,
                "error": j.error,
                "data": match &j.data {
                    Ok(v) => v.clone(),
                    Err(e) => json!({"undecodable": e.to_string()}),
                },
            })
        })
        .collect();
    if json {
        return print_json(&Json::Array(items));
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|j| {
            vec![
                j["id"].as_str().unwrap_or_default().to_owned(),
                j["attempts"].to_string(),
                j["error"].as_str().unwrap_or_default().to_owned(),
                j["data"].to_string(),
            ]
        })
        .collect();
    table(&["job", "attempts", "error", "data"], &rows);
    Ok(())
}

/// Moves dead letters (or dead jobs) back to be processed again.
pub(crate) fn replay(
    con: &mut Con,
    target: &Target,
    count: usize,
    dry_run: bool,
    json: bool,
) -> Result<(), String> {
    let (what, ids): (&str, Vec<Json>) = if let Some(key) = &target.stream {
        let moved =
            with_io!(con, |io| backlog::stream_replay(io, key, count, dry_run)).map_err(err)?;
        let ids = moved
            .iter()
            .map(|r| json!({"dead_id": r.dead_id, "origin": r.origin, "new_id": r.new_id}))
            .collect();
        ("dead letters", ids)
    } else {
        let name = target.queue.as_deref().unwrap_or_default();
        let ids: Vec<String> = if dry_run {
            // The oldest first, as the replay takes them.
            con.run(
                redis_state::op::command::<Vec<String>>("ZRANGE", format!("queue:{{{name}}}:dead"))
                    .arg(0)
                    .arg(count.max(1) - 1),
            )
            .map_err(err)?
        } else {
            con.run(backlog::queue_replay(name, count)).map_err(err)?
        };
        (
            "dead jobs",
            ids.into_iter().map(|id| json!({ "id": id })).collect(),
        )
    };
    if json {
        return print_json(&json!({
            "dry_run": dry_run,
            "count": ids.len(),
            "replayed": ids,
        }));
    }
    let verb = if dry_run { "would replay" } else { "replayed" };
    println!("{verb} {} {what}", ids.len());
    for i in &ids {
        let line: Vec<String> = i
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                format!(
                    "{k} {}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect();
        println!("  {}", line.join(", "));
    }
    Ok(())
}
