//! # Feeds, time windows, tag sets and presence
//!
//! The seed documents keep four more kinds of state in Redis: activity
//! feeds (`LPUSH` + `LTRIM` + `EXPIRE`, paged with `LRANGE`), a sorted set
//! of what happened in the last day (`ZADD` by timestamp,
//! `ZREMRANGEBYSCORE` below a cutoff), tags (`SADD`, and an `SINTER` the
//! seed itself calls simplified) and online users (`SADD` and a heartbeat
//! key). `redis_state::collections` types each one:
//!
//! * **`Feed<T>`**: a capped list per owner, newest first, entries as JSON
//!   (or plain text). A push is one atomic script: push, trim to the cap,
//!   renew the TTL. Pages are `LRANGE`.
//! * **`TimeWindow<T>`**: a sorted set per owner scored by epoch seconds
//!   (redis-py's `time.time()`). An add trims below `now - span` and past
//!   the cap in the same call; reads (`recent`, `count`) filter by the
//!   cutoff, so they never see what a trim has not reached yet.
//! * **`TagSet<I, T>`**: each item's set of tags and each tag's set of
//!   items, changed together by one script, so "the items having all these
//!   tags" is a real `SINTER`, and a retag removes the item from the tags
//!   it lost.
//! * **`Presence<U>`**: a sorted set of users by last seen; heartbeat,
//!   count and list prune in the same call, so no sweeper runs and a
//!   crashed client goes offline by itself.
//!
//! Every operation is a value: one round trip, on blocking or async
//! connections, standalone or Cluster, batchable with any other. Owners,
//! items and tags placed in keys are escaped; an entry another client left
//! in a form the type cannot read is skipped and counted in a page
//! (`.strict()` makes it an error naming the key and the index).
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server`. Run it with `cargo run --example collections`.

use std::time::{Duration, SystemTime};

use redis_state::collections::{Feed, Presence, TagSet, TimeWindow};
use redis_state::prelude::*;
use redis_state::{Error, Namespace};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Activity {
    action: String,
    post: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;
    let ns = Namespace::new(format!("collections-{}", std::process::id()))?;

    // ANCHOR: feeds
    // The seed's add_to_feed: `feed:<user id>`, the latest 100, 7 days.
    let feed = Feed::<Activity>::new("feed", 100)
        .ttl(Duration::from_secs(7 * 86_400))
        .key_layout("feed:", "")
        .namespace(&ns);
    for post in 1..=3 {
        let like = Activity {
            action: "like".into(),
            post,
        };
        // LPUSH + LTRIM + PEXPIRE, atomically, one round trip.
        feed.push(42u64, &like).run(&mut con)?;
    }
    let page = feed.page(42u64, 0, 2).run(&mut con)?;
    println!("{}: newest first {:?}", feed.key(42u64), page.items);
    // ANCHOR_END: feeds

    // ANCHOR: bad_entries
    // Another client left text that is not an Activity: the page skips it
    // and says so; strict() names the key and the index instead.
    redis_state::op::command::<i64>("LPUSH", feed.key(42u64))
        .arg("not json")
        .run(&mut con)?;
    let page = feed.recent(42u64, 10).run(&mut con)?;
    println!("{} entries, {} skipped", page.items.len(), page.skipped);
    if let Err(Error::Decode(e)) = feed.recent(42u64, 10).strict().run(&mut con) {
        println!("{e}");
    }
    // ANCHOR_END: bad_entries

    // ANCHOR: windows
    // What a user did in the last 24 hours, as the seed's add_activity
    // keeps it (`user:<id>:activities`, scored by time.time()).
    let day = TimeWindow::<String>::new("activities", Duration::from_secs(86_400))
        .key_layout("user:", ":activities")
        .namespace(&ns);
    let now = SystemTime::now();
    day.add(42u64, &"signed in".to_owned())
        .at(now - Duration::from_secs(90_000)) // older than a day: trimmed at once
        .run(&mut con)?;
    day.add(42u64, &"posted".to_owned()).run(&mut con)?;
    day.add(42u64, &"commented".to_owned()).run(&mut con)?;
    for t in day.recent(42u64, 10).run(&mut con)? {
        println!("{:?} at {:?}", t.value, t.at);
    }
    println!("{} in the last day", day.count(42u64).run(&mut con)?);
    // ANCHOR_END: windows

    // ANCHOR: tags
    // One tag space: every key holds the hash tag `{articles}`.
    let tags = TagSet::<u64>::new("articles").namespace(&ns);
    tags.tag(&1, ["rust", "redis"]).run(&mut con)?;
    tags.tag(&2, ["rust"]).run(&mut con)?;
    tags.tag(&3, ["redis", "python"]).run(&mut con)?;
    let both = tags.items_with_all(["rust", "redis"]).run(&mut con)?;
    println!("rust and redis: {:?}", both.items);
    // A retag removes the item from the tags it lost, in the same script.
    tags.set_tags(&1, ["go"]).run(&mut con)?;
    let mut rust = tags.items_with_all(["rust"]).run(&mut con)?.items;
    rust.sort();
    println!("after the retag, rust: {rust:?}");
    // Hostile tags stay in their segment of the key.
    tags.tag(&4, ["c++", "a:b {x}"]).run(&mut con)?;
    println!("{}", tags.tag_key("a:b {x}"));
    // ANCHOR_END: tags

    // ANCHOR: presence
    let online = Presence::<String>::new("site", Duration::from_secs(60)).namespace(&ns);
    online
        .heartbeat("ada")
        .now(now - Duration::from_secs(120)) // two minutes ago: stale
        .run(&mut con)?;
    online.heartbeat("bob").run(&mut con)?;
    let n = online.heartbeat("cy").run(&mut con)?; // prunes ada
    let who: Vec<String> = online
        .online(0, 10)
        .run(&mut con)?
        .into_iter()
        .map(|t| t.value)
        .collect();
    println!("{n} online: {who:?}");
    // ANCHOR_END: presence

    // ANCHOR: batch
    // All four in one round trip.
    let (len, in_day, n_tags, count) = batch((
        feed.push(
            42u64,
            &Activity {
                action: "share".into(),
                post: 9,
            },
        ),
        day.add(42u64, &"shared".to_owned()),
        tags.tag(&5, ["rust"]),
        online.heartbeat("bob"),
    ))
    .run(&mut con)?;
    println!("one round trip: feed {len}, window {in_day}, tags {n_tags}, online {count}");
    // ANCHOR_END: batch

    let mut cleanup = vec![feed.key(42u64), day.key(42u64), online.key()];
    for item in 1..=5u64 {
        cleanup.push(tags.item_key(&item));
    }
    for tag in ["rust", "redis", "python", "go", "c++", "a:b {x}"] {
        cleanup.push(tags.tag_key(tag));
    }
    for key in cleanup {
        redis_state::op::command::<i64>("DEL", key).run(&mut con)?;
    }
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
