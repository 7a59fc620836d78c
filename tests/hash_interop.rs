//! Interoperability: what a model stores reads naturally with `redis-cli`
//! (plain strings, field names as in Rust unless renamed), and a hash written
//! by another client in that form loads.

mod common;

use std::process::Command;

use chrono::{TimeZone, Utc};
use redis_state::prelude::*;
use redis_state::testing::shared_server;

#[derive(RedisField, Debug, Clone, Copy, PartialEq)]
#[redis(rename_all = "lowercase")]
enum Role {
    Admin,
    Member,
}

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "profile:{id}")]
struct Profile {
    #[redis(id)]
    id: u64,
    name: String,
    #[redis(rename = "e-mail")]
    email: String,
    age: u16,
    verified: bool,
    balance: f64,
    role: Role,
    joined: chrono::DateTime<Utc>,
    bio: Option<String>,
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli is installed with redis-server");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn redis_cli_reads_plain_fields() {
    let server = shared_server();
    let mut con = server.connection().unwrap();
    let ns = common::namespace("interop_read");
    let p = Profile {
        id: 42,
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        age: 36,
        verified: true,
        balance: 12.5,
        role: Role::Admin,
        joined: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
        bio: None,
    };
    p.save().namespace(&ns).run(&mut con).unwrap();
    let key = format!("{ns}:profile:42");
    let out = redis_cli(server.port(), &["--no-raw", "HGETALL", &key]);
    let lines: Vec<&str> = out
        .lines()
        .map(|l| l.split_once(") ").map_or(l, |(_, v)| v))
        .collect();
    let pairs: Vec<(&str, &str)> = lines.chunks(2).map(|c| (c[0], c[1])).collect();
    let expect = [
        ("\"id\"", "\"42\""),
        ("\"name\"", "\"Ada Lovelace\""),
        ("\"e-mail\"", "\"ada@example.com\""),
        ("\"age\"", "\"36\""),
        ("\"verified\"", "\"true\""),
        ("\"balance\"", "\"12.5\""),
        ("\"role\"", "\"admin\""),
        ("\"joined\"", "\"2024-05-01T12:00:00Z\""),
    ];
    for pair in expect {
        assert!(pairs.contains(&pair), "{pair:?} missing from {pairs:?}");
    }
    assert_eq!(pairs.len(), expect.len(), "bio is None: no field");
}

#[test]
fn a_hash_written_by_another_client_loads() {
    let server = shared_server();
    let mut con = server.connection().unwrap();
    let ns = common::namespace("interop_write");
    let key = format!("{ns}:profile:7");
    redis_cli(
        server.port(),
        &[
            "HSET",
            &key,
            "id",
            "7",
            "name",
            "Grace",
            "e-mail",
            "grace@example.com",
            "age",
            "85",
            "verified",
            "1",
            "balance",
            "-0.25",
            "role",
            "member",
            "joined",
            "1906-12-09T00:00:00+01:00",
            "bio",
            "Admiral",
            "unknown_field",
            "ignored",
        ],
    );
    let p = Profile::load(&7)
        .namespace(&ns)
        .run(&mut con)
        .unwrap()
        .unwrap();
    assert_eq!(p.name, "Grace");
    assert!(p.verified);
    assert_eq!(p.balance, -0.25);
    assert_eq!(p.role, Role::Member);
    assert_eq!(
        p.joined,
        Utc.with_ymd_and_hms(1906, 12, 8, 23, 0, 0).unwrap()
    );
    assert_eq!(p.bio.as_deref(), Some("Admiral"));
    // Saving it back keeps fields other clients added.
    p.save().namespace(&ns).run(&mut con).unwrap();
    let extra = redis_cli(server.port(), &["HGET", &key, "unknown_field"]);
    assert_eq!(extra.trim(), "ignored");
}
