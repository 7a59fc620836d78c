//! The `redis-state` binary end to end, against real servers started by
//! `redis_state::testing`: every command, plain and JSON, standalone and
//! Cluster.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "tests report by panicking and printing"
)]

use std::process::{Command, Output};

use redis_state::lock::Lock;
use redis_state::prelude::*;
use redis_state::testing::{shared_cluster, shared_server, unique_prefix};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{cuser}}:{id}", ttl = "2h")]
struct CUser {
    #[redis(id)]
    id: u64,
    name: String,
    #[redis(index)]
    city: String,
}

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "cprod:{id}", ttl = "10m")]
struct CProd {
    id: u64,
    name: String,
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{cboard:{game}}}")]
struct CBoard {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i64,
}

const USERS: &str = "{{cuser}}:{id}#c_user";

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

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {stderr}");
    // Not a terminal: no progress bar escapes.
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

fn json(out: &Output) -> Json {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

fn fill(con: &mut impl redis_state::exec::SyncExecutor, ns: &Namespace) {
    for id in 1..=12 {
        let u = CUser {
            id,
            name: format!("user {id}"),
            city: if id <= 6 { "oslo" } else { "rome" }.to_owned(),
        };
        u.save().namespace(ns).run(con).unwrap();
    }
    for id in 1..=4 {
        let p = CProd {
            id,
            name: format!("p{id}"),
        };
        CProd::set(&id, &p).namespace(ns).run(con).unwrap();
    }
    for i in 0..3 {
        let b = CBoard {
            game: "g".into(),
            player: format!("p{i}"),
            points: 10 * i,
        };
        b.submit().namespace(ns).run(con).unwrap();
    }
}

#[test]
fn info_on_a_server_and_a_cluster() {
    let v = json(&standalone(&["info", "--json"]));
    let nodes = v.as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["node"], "server");
    assert!(nodes[0]["info"]["server"]["redis_version"].is_string());
    assert!(nodes[0]["info"]["memory"]["used_memory"].as_u64().unwrap() > 0);

    let v = json(&cluster(&["info", "--json"]));
    assert_eq!(
        v.as_array().unwrap().len(),
        shared_cluster().primaries().len()
    );
    for n in v.as_array().unwrap() {
        assert_eq!(n["info"]["server"]["redis_mode"], "cluster");
    }

    let table = ok(&standalone(&["info"]));
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("node"), "{table}");
    assert!(lines.next().unwrap().starts_with("server"), "{table}");
}

#[test]
fn slowlog_and_latency_print_per_node() {
    let v = json(&cluster(&["slowlog", "--count", "5", "--json"]));
    assert_eq!(
        v.as_array().unwrap().len(),
        shared_cluster().primaries().len()
    );
    let v = json(&standalone(&["latency", "--json"]));
    assert!(v[0]["entries"].is_array());
    ok(&standalone(&["slowlog"]));
}

fn stats_case(run: fn(&[&str]) -> Output, con: &mut impl redis_state::exec::SyncExecutor) {
    let ns = Namespace::new(unique_prefix("cli-stats")).unwrap();
    fill(con, &ns);
    let v = json(&run(&[
        "stats",
        "--json",
        "-n",
        ns.as_str(),
        "--hash",
        USERS,
        "--cache",
        "cprod:{id}",
        "--board",
        "{{cboard:{game}}}",
        "--batch",
        "5",
    ]));
    let keys: Vec<u64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["keys"].as_u64().unwrap())
        .collect();
    assert_eq!(keys, [12, 4, 1], "{v:#}");
    let city = &v[0]["indexes"][0];
    assert_eq!(city["field"], "city");
    assert_eq!(city["entries"], 12);
    assert_eq!(city["orphans"], 0);
    assert_eq!(v[0]["ttl"]["buckets"][2], 12);

    let table = ok(&run(&["stats", "-n", ns.as_str(), "--hash", USERS]));
    assert!(table.contains("index orphans/entries"), "{table}");
    assert!(table.contains("city:0/12"), "{table}");
}

#[test]
fn stats_on_a_server() {
    stats_case(standalone, &mut shared_server().connection().unwrap());
}

#[test]
fn stats_on_a_cluster() {
    stats_case(cluster, &mut shared_cluster().connection().unwrap());
}

#[test]
fn inspect_decodes_what_the_library_wrote() {
    let ns = Namespace::new(unique_prefix("cli-inspect")).unwrap();
    let mut con = shared_server().connection().unwrap();
    fill(&mut con, &ns);
    let v = json(&standalone(&[
        "inspect",
        "--json",
        &format!("{ns}:{{cuser}}:3"),
    ]));
    assert_eq!(v["type"], "hash");
    assert_eq!(v["fields"]["name"], "user 3");
    assert_eq!(v["role"], "entity");
    assert!(v["ttl_ms"].as_i64().unwrap() > 0);

    let v = json(&standalone(&[
        "inspect",
        "--json",
        &format!("{ns}:cprod:2"),
    ]));
    assert_eq!(v["role"], "cache entry", "{v:#}");
    assert_eq!(v["decoded"]["value"]["name"], "p2");
    assert_eq!(v["decoded"]["negative"], false);

    let v = json(&standalone(&[
        "inspect",
        "--json",
        &format!("{ns}:{{cboard:g}}"),
    ]));
    assert_eq!(v["type"], "zset");
    assert_eq!(v["length"], 3);
    assert_eq!(v["top"][0]["member"], "p2");

    let v = json(&standalone(&[
        "inspect",
        "--json",
        &format!("{ns}:{{cuser}}:#c_user:idx:city"),
    ]));
    assert!(
        v["role"].as_str().unwrap().starts_with("secondary index"),
        "{v:#}"
    );

    let lock = Lock::new(format!("{ns}-res"));
    let guard = lock.acquire(&mut con).unwrap();
    let v = json(&standalone(&[
        "inspect",
        "--json",
        &format!("lock:{{{ns}-res}}"),
    ]));
    assert_eq!(v["role"], "lock", "{v:#}");
    assert_eq!(v["type"], "string");
    let v = json(&standalone(&[
        "inspect",
        "--json",
        &format!("lock:{{{ns}-res}}:#fence"),
    ]));
    assert_eq!(v["role"], "lock fencing counter", "{v:#}");
    guard.release().run(&mut con).unwrap();

    let v = json(&standalone(&[
        "inspect",
        "--json",
        &format!("{ns}:missing"),
    ]));
    assert_eq!(v["exists"], false);

    let plain = ok(&standalone(&["inspect", &format!("{ns}:{{cuser}}:3")]));
    assert!(plain.contains("name: user 3"), "{plain}");
}

#[test]
fn export_then_import_restores_entities_with_their_ttls() {
    let ns = Namespace::new(unique_prefix("cli-export")).unwrap();
    let to = Namespace::new(unique_prefix("cli-import")).unwrap();
    let mut con = shared_cluster().connection().unwrap();
    fill(&mut con, &ns);
    let dir = std::env::temp_dir().join(unique_prefix("cli-export"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users.jsonl");
    ok(&cluster(&[
        "export",
        "--hash",
        USERS,
        "-n",
        ns.as_str(),
        "-o",
        file.to_str().unwrap(),
        "--batch",
        "4",
    ]));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 12, "{text}");
    for line in text.lines() {
        let v: Json = serde_json::from_str(line).unwrap();
        assert!(v["ttl_ms"].as_i64().unwrap() > 0);
        assert!(!v["key"].as_str().unwrap().contains('#'));
    }
    ok(&cluster(&[
        "import",
        "-i",
        file.to_str().unwrap(),
        "--rename-prefix",
        &format!("{ns}:={to}:"),
        "--batch",
        "5",
    ]));
    for id in 1..=12u64 {
        let got = CUser::load(&id)
            .namespace(&to)
            .run(&mut con)
            .unwrap()
            .unwrap();
        assert_eq!(got.name, format!("user {id}"));
        let ttl: i64 = redis_state::op::command("PTTL", format!("{to}:{{cuser}}:{id}"))
            .run(&mut con)
            .unwrap();
        assert!(ttl > 0, "TTL kept");
    }
    // Standard input and output work too.
    let out = standalone(&["export", "--hash", USERS, "-n", ns.as_str()]);
    assert!(ok(&out).is_empty(), "these users live on the cluster");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sweep_removes_hand_made_orphans() {
    let ns = Namespace::new(unique_prefix("cli-sweep")).unwrap();
    let mut con = shared_server().connection().unwrap();
    fill(&mut con, &ns);
    let _: i64 = redis_state::op::command("DEL", format!("{ns}:{{cuser}}:4"))
        .run(&mut con)
        .unwrap();
    let v = json(&standalone(&[
        "sweep",
        "--json",
        "--dry-run",
        "-n",
        ns.as_str(),
        "--hash",
        USERS,
    ]));
    assert_eq!(v[0]["indexes"][0]["orphans"], 1, "{v:#}");
    assert_eq!(v[0]["removed"], 0);
    let v = json(&standalone(&[
        "sweep",
        "--json",
        "-n",
        ns.as_str(),
        "--hash",
        USERS,
    ]));
    assert_eq!(v[0]["removed"], 1, "{v:#}");
    let v = json(&standalone(&[
        "stats",
        "--json",
        "-n",
        ns.as_str(),
        "--hash",
        USERS,
    ]));
    assert_eq!(v[0]["indexes"][0]["orphans"], 0);
    assert_eq!(v[0]["indexes"][0]["entries"], 11);
}

#[test]
fn bad_input_is_a_clear_error() {
    let out = standalone(&["stats"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--hash"));
    let out = standalone(&["stats", "--hash", "user:{id"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("key template"));
    let out = bin()
        .args([
            "--url",
            "redis://127.0.0.1:1",
            "--timeout-ms",
            "300",
            "info",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("redis-state: "));
    let out = standalone(&["sweep", "--hash", "cprod:{id}"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("collection"));
}

/// An indexed model without hash tag: bucketed, 4 buckets.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "cbuser:{id}", buckets = 4, ttl = "2h")]
struct CbUser {
    #[redis(id)]
    id: u32,
    name: String,
    #[redis(index)]
    city: String,
}

const BUCKETED: &str = "cbuser:{id}#cb_user@4";

fn cb_key(ns: &Namespace, id: u32) -> String {
    let mut buf = redis_state::keys::IdBuf::new();
    redis_state::keys::IdValue::write_id(&id, &mut buf);
    CbUser::SCHEMA.key(Some(ns), &buf)
}

fn cb_bucket(id: u32) -> u16 {
    let mut buf = redis_state::keys::IdBuf::new();
    redis_state::keys::IdValue::write_id(&id, &mut buf);
    CbUser::SCHEMA.bucket_of(&buf)
}

/// `stats`, `sweep`, `inspect`, `export` and `import` of a bucketed model
/// on a Cluster: every partition on every primary.
#[test]
fn a_bucketed_model_on_a_cluster() {
    let ns = Namespace::new(unique_prefix("cli-bucketed")).unwrap();
    let to = Namespace::new(unique_prefix("cli-bucketed-to")).unwrap();
    let mut con = shared_cluster().connection().unwrap();
    for id in 1..=20u32 {
        let u = CbUser {
            id,
            name: format!("user {id}"),
            city: if id <= 10 { "oslo" } else { "rome" }.to_owned(),
        };
        u.save().namespace(&ns).run(&mut con).unwrap();
    }
    let stats = |ns: &Namespace| {
        json(&cluster(&[
            "stats",
            "--json",
            "-n",
            ns.as_str(),
            "--hash",
            BUCKETED,
            "--batch",
            "3",
        ]))
    };
    let v = stats(&ns);
    assert_eq!(v[0]["keys"], 20, "{v:#}");
    let city = &v[0]["indexes"][0];
    assert_eq!(
        (city["entries"].as_u64(), city["orphans"].as_u64()),
        (Some(20), Some(0)),
        "{v:#}"
    );
    let used: std::collections::BTreeSet<u16> = (1..=20).map(cb_bucket).collect();
    assert_eq!(city["partitions"], used.len() as u64, "{v:#}");

    // Orphans in two partitions: a deleted entity, an edited one.
    let a = 1;
    let b = (2..=20).find(|i| cb_bucket(*i) != cb_bucket(a)).unwrap();
    let _: i64 = redis_state::op::command("DEL", cb_key(&ns, a))
        .run(&mut con)
        .unwrap();
    let _: i64 = redis_state::op::command("HSET", cb_key(&ns, b))
        .arg("city")
        .arg("lima")
        .run(&mut con)
        .unwrap();
    let v = json(&cluster(&[
        "sweep",
        "--json",
        "-n",
        ns.as_str(),
        "--hash",
        BUCKETED,
    ]));
    assert_eq!(v[0]["indexes"][0]["orphans"], 2, "{v:#}");
    assert_eq!(v[0]["removed"], 2, "{v:#}");
    let v = stats(&ns);
    assert_eq!(v[0]["indexes"][0]["entries"], 18, "{v:#}");
    assert_eq!(v[0]["indexes"][0]["orphans"], 0, "{v:#}");

    // `inspect` names a bucketed entity's tag and a partition's field.
    let key = cb_key(&ns, 3);
    let v = json(&cluster(&["inspect", "--json", &key]));
    assert_eq!(v["role"], "entity", "{v:#}");
    assert_eq!(v["fields"]["name"], "user 3");
    assert_eq!(v["slot"], CbUser::SCHEMA.bucket_slot(cb_bucket(3)), "{v:#}");
    let scope = CbUser::SCHEMA.bucket_scope(Some(&ns), cb_bucket(3));
    let partition = format!("{scope}:#cb_user:idx:city");
    let v = json(&cluster(&["inspect", "--json", &partition]));
    assert!(
        v["role"].as_str().unwrap().starts_with("secondary index"),
        "{v:#}"
    );
    assert_eq!(v["index"]["scope"], scope.as_str(), "{v:#}");
    assert_eq!(v["index"]["field"], "city");
    assert_eq!(v["index"]["collection"], "cb_user");

    // Export, import under another namespace: the same keys, so each entity
    // lands in its bucket's slot and loads.
    let dir = std::env::temp_dir().join(unique_prefix("cli-bucketed"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users.jsonl");
    ok(&cluster(&[
        "export",
        "--hash",
        BUCKETED,
        "-n",
        ns.as_str(),
        "-o",
        file.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 19, "{text}");
    ok(&cluster(&[
        "import",
        "-i",
        file.to_str().unwrap(),
        "--rename-prefix",
        &format!("{ns}:={to}:"),
    ]));
    for id in 2..=20u32 {
        let got = CbUser::load(&id).namespace(&to).run(&mut con).unwrap();
        assert_eq!(got.map(|u| u.name), Some(format!("user {id}")), "{id}");
    }
    let v = stats(&to);
    assert_eq!(v[0]["keys"], 19, "{v:#}");
    std::fs::remove_dir_all(&dir).unwrap();

    // A bucket count out of range is a clear error.
    let out = cluster(&[
        "stats",
        "-n",
        ns.as_str(),
        "--hash",
        "cbuser:{id}#cb_user@0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bucket count"));
}

/// A bucketed model with a unique field: its values are reserved in their
/// own buckets' slots.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "cbmember:{id}", buckets = 4)]
struct CbMember {
    #[redis(id)]
    id: u32,
    #[redis(unique)]
    email: String,
}

/// `inspect` of a bucketed unique index says it holds reservations
/// (value -> `<id>|<token>`) and decodes them.
#[test]
fn inspect_decodes_unique_value_reservations() {
    let ns = Namespace::new(unique_prefix("cli-reserved")).unwrap();
    let mut con = shared_cluster().connection().unwrap();
    let member = CbMember {
        id: 7,
        email: "ann@example.com".to_owned(),
    };
    member.save().namespace(&ns).run(&mut con).unwrap();
    let key = CbMember::SCHEMA.reservation_key(
        Some(&ns),
        &CbMember::SCHEMA.indexes[0],
        member.email.as_bytes(),
    );
    let v = json(&cluster(&["inspect", "--json", &key]));
    assert_eq!(
        v["role"], "unique value reservations (value -> <id>|<token>)",
        "{v:#}"
    );
    let held = &v["reservations"]["ann@example.com"];
    assert_eq!(held["holder"], "7", "{v:#}");
    let token = held["token"].as_str().unwrap();
    let stored = v["fields"]["ann@example.com"].as_str().unwrap();
    assert_eq!(stored, format!("7|{token}"), "{v:#}");
    assert!(held["reserved_at_unix_ms"].as_u64().unwrap() > 0, "{v:#}");
    assert_eq!(v["index"]["unique"], true, "{v:#}");
    assert_eq!(v["index"]["field"], "email", "{v:#}");
}
