//! # Hash models, blocking API
//!
//! `#[derive(RedisHash)]` maps a struct onto one Redis hash. The derive checks
//! the attributes at compile time and writes the schema; every operation is a
//! value that runs with `.run(&mut con)` on a blocking connection (or
//! `.run_async(&mut con).await`, see the next chapter).
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server` for the duration of the run.
//!
//! Run it with `cargo run --example hash_sync`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis_state::prelude::*;
use redis_state::{Error, Ttl};

// ANCHOR: model
/// A user account. Keys look like `{user}:42`: the braces are a Redis Cluster
/// hash tag, which keeps every user and the user indexes in one slot so that
/// index upkeep is atomic everywhere.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{user}}:{id}")]
struct User {
    #[redis(id)]
    id: u64,
    name: String,
    /// At most one user per email; `User::find_by_email` looks it up.
    #[redis(unique)]
    email: String,
    /// Exact-match secondary index: `User::find_by_city`.
    #[redis(index)]
    city: Option<String>,
    /// Atomic increments with `User::increment_logins`.
    #[redis(counter)]
    logins: i64,
    /// Optimistic locking with `save_versioned`.
    #[redis(version)]
    version: u64,
    /// Stored as RFC 3339 text, e.g. `2024-05-01T12:00:00Z`.
    created: DateTime<Utc>,
}
// ANCHOR_END: model

// ANCHOR: session
/// A session that expires 30 minutes after its last save.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "session:{token}", ttl = "30m")]
struct Session {
    #[redis(id)]
    token: String,
    user_id: u64,
    /// `None` is an absent hash field.
    ip: Option<String>,
}
// ANCHOR_END: session

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;

    // ANCHOR: save_load
    let ada = User {
        id: 1,
        name: "Ada".into(),
        email: "ada@example.com".into(),
        city: Some("London".into()),
        logins: 0,
        version: 0,
        created: Utc::now(),
    };
    // One round trip: a script writes the hash and its index entries atomically.
    let version = ada.save().run(&mut con)?;
    println!(
        "saved {} as version {version} at key {}",
        ada.name,
        ada.key()
    );

    let loaded = User::load(&1).run(&mut con)?.expect("just saved");
    assert_eq!(loaded.email, ada.email);
    assert!(User::load(&2).run(&mut con)?.is_none());
    // ANCHOR_END: save_load

    // ANCHOR: update
    // Only the given fields change; the TTL (if any) and the other fields stay.
    User::update(&1)
        .set(User::CITY, Some("Paris".to_owned()))
        .run(&mut con)?;
    let logins = User::increment_logins(&1, 1).run(&mut con)?;
    println!("moved to Paris, {logins} login(s)");
    // ANCHOR_END: update

    // ANCHOR: find
    let in_paris = User::find_by_city("Paris").run(&mut con)?;
    println!(
        "in Paris: {:?}",
        in_paris.iter().map(|u| &u.name).collect::<Vec<_>>()
    );
    let by_email = User::find_by_email("ada@example.com").run(&mut con)?;
    assert_eq!(by_email.map(|u| u.id), Some(1));

    // A unique value cannot be taken twice.
    let copycat = User {
        id: 2,
        ..ada.clone()
    };
    match copycat.save().run(&mut con) {
        Err(Error::UniqueViolation { field, holder, .. }) => {
            println!("refused: {field} already held by user {holder}")
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    // ANCHOR_END: find

    // ANCHOR: versioned
    // Two writers read version N; the first versioned save wins.
    let mut mine = User::load(&1).run(&mut con)?.expect("exists");
    let theirs = mine.clone();
    mine.name = "Ada Lovelace".into();
    mine.version = mine.save_versioned().run(&mut con)?;
    match theirs.save_versioned().run(&mut con) {
        Err(Error::VersionConflict {
            expected, actual, ..
        }) => {
            println!("stale write refused: expected v{expected}, found v{actual}")
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    // ANCHOR_END: versioned

    // ANCHOR: ttl
    let s = Session {
        token: "tok-1".into(),
        user_id: 1,
        ip: None,
    };
    s.save().run(&mut con)?;
    if let Ttl::Expires(left) = Session::ttl("tok-1").run(&mut con)? {
        println!("session expires in {}s", left.as_secs());
    }
    // Writes keep the TTL: update and increment never reset or remove it.
    Session::update("tok-1")
        .set(Session::IP, Some("10.0.0.7".to_owned()))
        .run(&mut con)?;
    Session::expire("tok-1", Duration::from_secs(60)).run(&mut con)?;
    // ANCHOR_END: ttl

    // ANCHOR: batch
    // Operations of any models in one round trip.
    let (user, session, missing) = batch((
        User::load(&1),
        Session::load("tok-1"),
        Session::load("nope"),
    ))
    .run(&mut con)?;
    println!(
        "batch: {} / {:?} / {:?}",
        user.map(|u| u.name).unwrap_or_default(),
        session.and_then(|s| s.ip),
        missing
    );
    // Many entities: one pipeline.
    let sessions: Vec<Session> = (0..100)
        .map(|i| Session {
            token: format!("bulk-{i}"),
            user_id: i,
            ip: None,
        })
        .collect();
    Session::save_many(&sessions).run(&mut con)?;
    let tokens: Vec<String> = (0..100).map(|i| format!("bulk-{i}")).collect();
    let loaded = Session::load_many(&tokens).run(&mut con)?;
    println!(
        "bulk: {} sessions loaded in one round trip",
        loaded.iter().flatten().count()
    );
    let deleted = Session::delete_many(&tokens).run(&mut con)?;
    println!("bulk: {deleted} deleted");
    // ANCHOR_END: batch

    // ANCHOR: namespace
    // A runtime namespace prefixes every key: tenants and tests stay apart.
    let tenant = Namespace::new("tenant-7")?;
    ada.save().namespace(&tenant).run(&mut con)?;
    println!("in tenant-7 the key is tenant-7:{}", ada.key());
    // ANCHOR_END: namespace

    User::delete(&1).run(&mut con)?;
    User::delete(&1).namespace(&tenant).run(&mut con)?;
    Session::delete("tok-1").run(&mut con)?;
    Ok(())
}

/// Connects to `REDIS_URL`, or starts a private server for this run.
fn connect()
-> Result<(Option<redis_state::testing::RedisServer>, redis::Client), Box<dyn std::error::Error>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => Ok((None, redis::Client::open(url)?)),
        Err(_) => {
            let server = redis_state::testing::RedisServer::start()?;
            let client = server.client();
            Ok((Some(server), client))
        }
    }
}
