//! # Caching: write-through
//!
//! The seed's `update_user` writes the database, then `SETEX`es the cache.
//! [`Cache::write_through_async`] does both in one call: the source of truth
//! first; only when it succeeds is the entry stored (with the type's TTL,
//! jitter and tags). A failing source write leaves the cache alone. The
//! store also revokes any fill in flight, so a reader that loaded the old
//! row a moment earlier cannot overwrite the new value with it.
//!
//! This one is async: the same operations run on a `MultiplexedConnection`,
//! a `ConnectionManager` or a Cluster connection.
//!
//! Without `REDIS_URL` this program starts a private server.
//! Run it with `cargo run --example cache_write_through`.

use std::collections::HashMap;
use std::sync::Mutex;

use redis_state::cache::{Cache, Tag};
use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

// ANCHOR: model
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "user:{id}", ttl = "1h", tag = "team:{team}")]
struct User {
    id: u64,
    name: String,
    team: String,
}
// ANCHOR_END: model

/// The "database" of this example.
#[derive(Default)]
struct Database {
    rows: Mutex<HashMap<u64, User>>,
}

impl Database {
    async fn update_user(&self, user: &User) -> Result<(), String> {
        if user.name.is_empty() {
            return Err("name must not be empty".to_owned());
        }
        self.rows.lock().unwrap().insert(user.id, user.clone());
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let ns = Namespace::new(redis_state::testing::unique_prefix("write-through"))?;
    let users = Cache::<User>::new().namespace(&ns);
    let db = Database::default();

    // ANCHOR: through
    let ada = User {
        id: 1,
        name: "Ada".into(),
        team: "core".into(),
    };
    users
        .write_through_async(&mut con, &ada, |u| db.update_user(u))
        .await?;
    println!("database: {:?}", db.rows.lock().unwrap().get(&1));
    println!("cache:    {:?}", users.get(&1).run_async(&mut con).await?);

    // The source refuses: the error comes back and the cache keeps Ada.
    let bad = User {
        name: String::new(),
        ..ada.clone()
    };
    let err = users
        .write_through_async(&mut con, &bad, |u| db.update_user(u))
        .await
        .unwrap_err();
    println!("refused: {err}");
    assert_eq!(users.get(&1).run_async(&mut con).await?, Some(ada.clone()));
    // ANCHOR_END: through

    // ANCHOR: tags
    // Tags group entries: dropping `team:core` drops every user of the team,
    // without SCAN.
    let bob = User {
        id: 2,
        name: "Bob".into(),
        team: "core".into(),
    };
    users
        .write_through_async(&mut con, &bob, |u| db.update_user(u))
        .await?;
    let dropped = users
        .invalidate_tag(&Tag::new("team:").value("core"))
        .run_async(&mut con)
        .await?;
    println!("invalidated {dropped} entries tagged team:core");
    assert_eq!(users.get(&2).run_async(&mut con).await?, None);
    // ANCHOR_END: tags
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
