//! # Sessions
//!
//! A session store for any serde type, in the layout other clients already
//! use: `session:<id>` holding the JSON document
//! `{"user_id": ..., "created_at": ..., "data": {...}}`, written byte for
//! byte as Python's `json.dumps` writes it (the `SessionManager` pattern),
//! so a Python service and a Rust service share sessions. Or, with
//! `HashSessions`, one hash per session whose fields can be read and written
//! one at a time.
//!
//! * **Ids** are 128 bits from the operating system's random generator (32
//!   hex digits). Ids that come back in cookies are untrusted: they are
//!   escaped into the key, so no id reaches another key or acts as a
//!   pattern.
//! * **Sliding expiry**: `get` (one `GETEX`), `update` and `touch` restart
//!   the idle TTL; a maximum lifetime (default 7 days) ends a session
//!   however often it is used.
//! * **Log out everywhere**: every `create` adds the id to the user's index
//!   (`session:#user:<id>`) in the same round trip; `delete_all_for_user`
//!   removes them all. The index cannot go stale: reads drop entries whose
//!   session is gone, and it expires after the last session it lists can
//!   no longer be used.
//! * Data that does not decode is an `Error::Decode` naming the key (and
//!   the field), never a panic or a silent default.
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server`. Run it with `cargo run --example sessions`.

use std::time::Duration;

use redis_state::prelude::*;
use redis_state::session::{HashSessions, JsonSessions};
use redis_state::{Error, Namespace};
use serde::{Deserialize, Serialize};

// ANCHOR: data
/// What the application keeps in a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cart {
    items: Vec<u32>,
    coupon: Option<String>,
    theme: String,
}
// ANCHOR_END: data

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;
    let ns = Namespace::new(format!("sessions-{}", std::process::id()))?;

    // ANCHOR: json
    // Sessions of users with integer ids, 30 minutes idle TTL.
    let sessions = JsonSessions::<Cart, u64>::new(Duration::from_secs(30 * 60)).namespace(&ns);
    let cart = Cart {
        items: vec![7, 9],
        coupon: None,
        theme: "dark".into(),
    };
    let mut session = sessions.create(42, cart).run(&mut con)?;
    println!("new session id {} for user {}", session.id, session.user_id);
    let raw: String = redis_state::op::command("GET", sessions.key(session.id.as_str()).unwrap())
        .run(&mut con)?;
    println!("stored as: {raw}");

    // The cookie comes back: read (and slide the expiry), change, write.
    let id = session.id.as_str().to_owned();
    if let Some(found) = sessions.get(&id).run(&mut con)? {
        session = found;
    }
    session.data.coupon = Some("SPRING".into());
    sessions.update(&session).run(&mut con)?;
    println!(
        "after update: {:?}",
        sessions.get(&id).run(&mut con)?.map(|s| s.data)
    );
    // ANCHOR_END: json

    // ANCHOR: python
    // A session a Python service created (uuid4 id, naive UTC created_at):
    let python_id = "2f1c9b8e-4d3a-4c1e-9f7a-0b6e5d4c3b2a";
    let now = chrono::Utc::now()
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.6f");
    redis_state::op::command::<()>("SETEX", sessions.key(python_id).unwrap())
        .arg(1800)
        .arg(format!(
            r#"{{"user_id": 42, "created_at": "{now}", "data": {{"items": [1], "coupon": null, "theme": "light"}}}}"#
        ))
        .run(&mut con)?;
    let theirs = sessions.get(python_id).run(&mut con)?.expect("readable");
    println!(
        "python session: user {} theme {}",
        theirs.user_id, theirs.data.theme
    );
    // ANCHOR_END: python

    // ANCHOR: hostile
    // Untrusted ids never reach other keys.
    for cookie in ["*", "../admin", "a:b", "", &"x".repeat(10_000)] {
        assert!(sessions.get(cookie).run(&mut con)?.is_none());
    }
    // Corrupt data is a typed error.
    redis_state::op::command::<()>("SET", sessions.key("broken").unwrap())
        .arg("{not json")
        .run(&mut con)?;
    if let Err(Error::Decode(e)) = sessions.get("broken").run(&mut con) {
        println!("corrupt session: {e}");
    }
    // ANCHOR_END: hostile

    // ANCHOR: hash
    // The hash layout: fields read and written one at a time.
    let hashes = HashSessions::<Cart, String>::new(Duration::from_secs(30 * 60)).namespace(&ns);
    let h = hashes
        .create(
            "ada".into(),
            Cart {
                items: vec![1, 2, 3],
                coupon: None,
                theme: "light".into(),
            },
        )
        .run(&mut con)?;
    hashes
        .set_field(h.id.as_str(), "theme", "dark")
        .run(&mut con)?;
    let theme: Option<String> = hashes.get_field(h.id.as_str(), "theme").run(&mut con)?;
    let items: Option<Vec<u32>> = hashes.get_field(h.id.as_str(), "items").run(&mut con)?;
    println!("hash session fields: theme {theme:?}, items {items:?}");
    // ANCHOR_END: hash

    // ANCHOR: logout
    // Log out everywhere: every session of user 42 created here.
    let second = sessions
        .create(
            42,
            Cart {
                items: vec![],
                coupon: None,
                theme: "dark".into(),
            },
        )
        .run(&mut con)?;
    println!(
        "user 42 has {} sessions",
        sessions.list_for_user(&42).run(&mut con)?.len()
    );
    let removed = sessions.delete_all_for_user(&42).run(&mut con)?;
    println!("logged out everywhere: {removed} sessions removed");
    assert!(sessions.get(second.id.as_str()).run(&mut con)?.is_none());
    // The Python-created session is not in the index (other clients do not
    // maintain it); delete it by id.
    sessions.delete(python_id).run(&mut con)?;
    // ANCHOR_END: logout

    // ANCHOR: async
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut con = client.get_multiplexed_async_connection().await?;
        let s = hashes.get(h.id.as_str()).run_async(&mut con).await?;
        println!("async read: {:?}", s.map(|s| s.data.theme));
        hashes.delete(h.id.as_str()).run_async(&mut con).await?;
        Ok::<_, redis_state::Error>(())
    })?;
    // ANCHOR_END: async
    sessions.delete("broken").run(&mut con)?;
    redis_state::op::command::<i64>("DEL", hashes.index_key(&"ada".to_owned())).run(&mut con)?;
    Ok(())
}

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
