//! `streams`, `queues`, `pending`, `dead` and `replay` end to end, against
//! real servers (standalone and Cluster): dead letters and dead jobs made by
//! the library's own consumers and queues, read and replayed by the tool.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "tests report by panicking and printing"
)]

use std::process::{Command, Output};
use std::time::Duration;

use redis_state::cache::shutdown;
use redis_state::exec::SyncExecutor;
use redis_state::prelude::*;
use redis_state::queue::{Queue, QueueOptions};
use redis_state::stream::{ConsumerOptions, Retention, Stream};
use redis_state::testing::{shared_cluster, shared_server, unique_prefix};
use serde_json::Value as Json;

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "bevent:{id}")]
struct BEvent {
    #[redis(id)]
    id: u64,
    note: String,
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_redis-state"))
}

fn standalone(args: &[&str]) -> Output {
    bin()
        .arg("--url")
        .arg(shared_server().url())
        .args(args)
        .output()
        .expect("run redis-state")
}

fn cluster(args: &[&str]) -> Output {
    let mut c = bin();
    c.arg("--cluster");
    for u in shared_cluster().urls() {
        c.arg("--url").arg(u);
    }
    c.args(args).output().expect("run redis-state")
}

/// Standard output of a run that succeeded and wrote nothing to standard
/// error (not a terminal: no progress drawing).
fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {stderr}");
    assert!(stderr.is_empty(), "{stderr:?}");
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

fn json(out: &Output) -> Json {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

fn xlen<C: SyncExecutor + ?Sized>(con: &mut C, key: &str) -> u64 {
    redis_state::op::command::<u64>("XLEN", key)
        .run(con)
        .unwrap()
}

fn streams_case<C: SyncExecutor + ?Sized>(run: fn(&[&str]) -> Output, con: &mut C) {
    let p = unique_prefix("blst");
    let key = format!("{{{p}}}:events");
    let s = Stream::<BEvent>::new(key.clone(), Retention::max_len(1000));
    for id in 1..=4 {
        s.add(&BEvent {
            id,
            note: format!("n{id}"),
        })
        .run(con)
        .unwrap();
    }
    // Group `billing` fails event 2 once: dead-lettered (one attempt).
    let mut o = ConsumerOptions::default();
    o.max_attempts = 1;
    o.block = Duration::from_millis(20);
    let consumer = s.group("billing").consumer("w").unwrap().options(o);
    let (trigger, sd) = shutdown();
    consumer
        .run(con, &sd, |d| {
            if d.event.id == 4 {
                trigger.fire();
            }
            if d.event.id == 2 {
                return Err("card declined".to_owned());
            }
            Ok(())
        })
        .unwrap();
    // Group `audit` reads two entries and acknowledges none.
    s.group("audit").create().run(con).unwrap();
    audit_read(con, &key);

    let pattern = format!("{{{p}}}*");
    let v = json(&run(&["streams", "--match", &pattern, "--json"]));
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    let st = &list[0];
    assert_eq!(st["key"], key.as_str());
    assert_eq!(st["length"], 4);
    assert_eq!(st["dead_letters"], 1);
    let groups = st["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["name"], "audit");
    assert_eq!(groups[0]["consumers"], 1);
    assert_eq!(groups[0]["pending"], 2);
    assert_eq!(groups[0]["lag"], 2);
    assert!(groups[0]["oldest_pending_idle_ms"].is_u64());
    assert_eq!(groups[1]["name"], "billing");
    assert_eq!(groups[1]["pending"], 0);
    assert_eq!(groups[1]["lag"], 0);
    assert!(groups[1]["oldest_pending_idle_ms"].is_null());
    let plain = ok(&run(&["streams", "--match", &pattern]));
    assert!(
        plain.contains(&key) && plain.contains("audit") && plain.contains("billing"),
        "{plain}"
    );

    let v = json(&run(&[
        "pending", "--stream", &key, "--group", "audit", "--json",
    ]));
    assert_eq!(v["consumers"][0]["name"], "c1");
    assert_eq!(v["consumers"][0]["pending"], 2);
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .all(|e| e["consumer"] == "c1" && e["deliveries"] == 1)
    );
    let plain = ok(&run(&["pending", "--stream", &key, "--group", "audit"]));
    assert!(
        plain.contains("c1") && plain.contains("deliveries"),
        "{plain}"
    );

    let v = json(&run(&["dead", "--stream", &key, "--json"]));
    let dead = v.as_array().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["error"], "card declined");
    assert_eq!(dead[0]["group"], "billing");
    assert_eq!(dead[0]["attempts"], 1);
    let fields = dead[0]["fields"].as_array().unwrap();
    assert!(fields.contains(&serde_json::json!(["id", "2"])), "{v}");
    let origin = dead[0]["origin"].as_str().unwrap().to_owned();
    let plain = ok(&run(&["dead", "--stream", &key]));
    assert!(
        plain.contains("card declined") && plain.contains(&origin),
        "{plain}"
    );

    // Dry run: listed, nothing moved.
    let v = json(&run(&["replay", "--stream", &key, "--dry-run", "--json"]));
    assert_eq!(
        (v["dry_run"].clone(), v["count"].clone()),
        (Json::Bool(true), 1.into())
    );
    assert_eq!(v["replayed"][0]["origin"], origin.as_str());
    assert!(v["replayed"][0]["new_id"].is_null());
    assert_eq!(xlen(con, &format!("{key}:dead")), 1);
    assert_eq!(xlen(con, &key), 4);
    // Replay: back in the stream with its own fields, gone from the dead letters.
    let v = json(&run(&["replay", "--stream", &key, "--json"]));
    assert_eq!(v["count"], 1);
    let new_id = v["replayed"][0]["new_id"].as_str().unwrap().to_owned();
    assert_eq!(xlen(con, &format!("{key}:dead")), 0);
    assert_eq!(xlen(con, &key), 5);
    let back = s.range(&new_id, &new_id, 1).run(con).unwrap();
    assert_eq!(
        back[0].event,
        BEvent {
            id: 2,
            note: "n2".into()
        }
    );
    let plain = ok(&run(&["replay", "--stream", &key]));
    assert!(plain.contains("replayed 0 dead letters"), "{plain}");
}

fn audit_read<C: SyncExecutor + ?Sized>(con: &mut C, key: &str) {
    struct ReadGroup<'a>(&'a str);
    impl redis_state::op::Operation for ReadGroup<'_> {
        type Output = ();
        fn prepare(&mut self, plan: &mut redis_state::op::Plan) -> redis_state::Result<()> {
            plan.cmd_routed("XREADGROUP", self.0)
                .arg("GROUP")
                .arg("audit")
                .arg("c1")
                .arg("COUNT")
                .arg(2)
                .arg("STREAMS")
                .arg(self.0)
                .arg(">");
            Ok(())
        }
        fn complete(
            &mut self,
            replies: &mut redis_state::op::Replies,
        ) -> redis_state::Result<redis_state::op::Step<()>> {
            replies.next_value()?;
            Ok(redis_state::op::Step::Done(()))
        }
    }
    ReadGroup(key).run(con).unwrap();
}

fn queues_case<C: SyncExecutor + ?Sized>(run: fn(&[&str]) -> Output, con: &mut C) {
    let name = unique_prefix("blq");
    let mut o = QueueOptions::default();
    o.max_attempts = 1;
    let q = Queue::<String>::new(name.clone()).options(o);
    for job in ["a", "b", "c"] {
        q.push(&job.to_owned()).run(con).unwrap();
    }
    let first = q.take().run(con).unwrap().unwrap();
    q.fail(&first, "smtp refused").run(con).unwrap();
    let _held = q.take().run(con).unwrap().unwrap();

    let v = json(&run(&["queues", "--json"]));
    let mine = v
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not in {v}"));
    assert_eq!(
        [
            &mine["ready"],
            &mine["delayed"],
            &mine["active"],
            &mine["dead"]
        ],
        [
            &Json::from(1),
            &Json::from(0),
            &Json::from(1),
            &Json::from(1)
        ]
    );
    assert!(mine["lag_ms"].is_u64());
    let plain = ok(&run(&["queues"]));
    assert!(plain.contains(&name), "{plain}");

    let v = json(&run(&["pending", "--queue", &name, "--json"]));
    let jobs = v.as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["attempt"], 1);
    assert!(jobs[0]["lease_left_ms"].as_i64().unwrap() > 0);

    let v = json(&run(&["dead", "--queue", &name, "--json"]));
    assert_eq!(v[0]["id"], first.id.as_str());
    assert_eq!(v[0]["error"], "smtp refused");
    assert_eq!(v[0]["data"], "a");
    let plain = ok(&run(&["dead", "--queue", &name]));
    assert!(plain.contains("smtp refused"), "{plain}");

    let v = json(&run(&["replay", "--queue", &name, "--dry-run", "--json"]));
    assert_eq!(v["count"], 1);
    assert_eq!(v["replayed"][0]["id"], first.id.as_str());
    assert_eq!(q.depth().run(con).unwrap().dead, 1);
    let v = json(&run(&["replay", "--queue", &name, "--json"]));
    assert_eq!(v["count"], 1);
    let d = q.depth().run(con).unwrap();
    assert_eq!((d.ready, d.active, d.dead), (2, 1, 0));
    // Replayed with fresh attempts: taken again as a first attempt.
    let mut taken: Vec<(String, u32)> = Vec::new();
    while let Some(j) = q.take().run(con).unwrap() {
        taken.push((j.data, j.attempt));
    }
    taken.sort();
    assert_eq!(taken, [("a".to_owned(), 1), ("c".to_owned(), 1)]);
}

#[test]
fn streams_on_a_server() {
    let mut con = shared_server().client().get_connection().unwrap();
    streams_case(standalone, &mut con);
}

#[test]
fn streams_on_a_cluster() {
    let mut con = shared_cluster().client().get_connection().unwrap();
    streams_case(cluster, &mut con);
}

#[test]
fn queues_on_a_server() {
    let mut con = shared_server().client().get_connection().unwrap();
    queues_case(standalone, &mut con);
}

#[test]
fn queues_on_a_cluster() {
    let mut con = shared_cluster().client().get_connection().unwrap();
    queues_case(cluster, &mut con);
}

#[test]
fn bad_targets_are_clear_errors() {
    let out = standalone(&["replay", "--stream", "a", "--queue", "b"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
    let out = standalone(&["pending", "--stream", "a"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--group"));
    let out = standalone(&["dead", "--queue", "bad{name}"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("queue name"));
}

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{bluser}}:{id}", ttl = "1h")]
struct BUser {
    #[redis(id)]
    id: u64,
    #[redis(index)]
    city: String,
}

/// The long commands (stats, sweep, export, import) draw their progress on
/// standard error only when it is a terminal: run with it piped, standard
/// error holds their result line and nothing else.
#[test]
fn long_work_draws_nothing_when_not_a_terminal() {
    let ns = Namespace::new(unique_prefix("blprog")).unwrap();
    let mut con = shared_server().client().get_connection().unwrap();
    for id in 1..=30 {
        BUser {
            id,
            city: "oslo".into(),
        }
        .save()
        .namespace(&ns)
        .run(&mut con)
        .unwrap();
    }
    let model = "{{bluser}}:{id}#b_user";
    let stderr = |out: &Output| {
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stderr.clone()).unwrap()
    };
    let small = ["--batch", "4"];
    let mut args = vec!["stats", "--hash", model, "-n", ns.as_str()];
    args.extend(small);
    assert_eq!(stderr(&standalone(&args)), "");
    args.push("--json");
    assert_eq!(stderr(&standalone(&args)), "");
    let mut args = vec!["sweep", "--hash", model, "-n", ns.as_str()];
    args.extend(small);
    assert_eq!(stderr(&standalone(&args)), "");

    let dir = std::env::temp_dir().join(unique_prefix("blprog"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users.jsonl");
    let path = file.to_str().unwrap();
    let mut args = vec!["export", "--hash", model, "-n", ns.as_str(), "-o", path];
    args.extend(small);
    assert_eq!(stderr(&standalone(&args)), "exported 30 entities\n");
    args.push("--json");
    assert_eq!(stderr(&standalone(&args)), "{\"exported\":30}\n");
    let out = standalone(&["import", "-i", path, "--batch", "4"]);
    assert_eq!(stderr(&out), "imported 30 entities\n");
    std::fs::remove_dir_all(&dir).unwrap();
}
