//! # Plain values and counters
//!
//! Not everything is a model. A feature flag, a message of the day, a page
//! counter, a daily quota: one Redis string at a key the application
//! chooses, holding exactly the text other clients read and write
//! (`GET`/`SET`, `INCR`). `StringValue<T>` types such a value and
//! `Counter<T>` such a number:
//!
//! * **typed, plain text**: integers in decimal, floats as Python's `repr`
//!   writes them, booleans, dates in RFC 3339, strings as they are; JSON with
//!   `StringValue<T, Json>`; what other clients write in the wider forms
//!   (`True`, `42.0`) reads too;
//! * **TTLs per call, never lost by accident**: `set` keeps the TTL the key
//!   has (`SET … KEEPTTL`), `.ttl(d)` gives a new one, `.persist()` removes
//!   it; `INCRBY` keeps a counter's TTL, and `incr(n).ttl(d)` gives a new
//!   counter one atomically (the window of a daily quota starts with its
//!   first increment);
//! * **get-or-set in one command** (`SET … NX GET`): the first writer's
//!   value wins, everyone else reads it;
//! * bad data is an `Error::Decode` naming the key; every operation is a
//!   value that batches with any other.
//!
//! Each call is one round trip; the keys are used as given (with the
//! namespace in front when one is set).
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server`. Run it with `cargo run --example values`.

use std::time::Duration;

use redis_state::codec::Json;
use redis_state::prelude::*;
use redis_state::value::{Counter, StringValue};
use redis_state::{Error, Namespace, Ttl};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Banner {
    text: String,
    level: u8,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;
    let ns = Namespace::new(format!("values-{}", std::process::id()))?;

    // ANCHOR: strings
    let motd = StringValue::<String>::new("config:motd").namespace(&ns);
    motd.set(&"maintenance at noon".to_owned())
        .ttl(Duration::from_secs(3600)) // this call's TTL
        .run(&mut con)?;
    // A later write keeps the TTL (KEEPTTL) unless told otherwise.
    motd.set(&"maintenance at one".to_owned()).run(&mut con)?;
    println!(
        "{:?}, {:?}",
        motd.get().run(&mut con)?,
        motd.ttl().run(&mut con)?
    );
    motd.set(&"no maintenance".to_owned())
        .persist()
        .run(&mut con)?;
    assert_eq!(motd.ttl().run(&mut con)?, Ttl::Persistent);

    // Typed values are their plain text: `42`, `true`, `0.1`.
    let limit = StringValue::<u32>::new("config:upload_limit").namespace(&ns);
    limit.set(&42).run(&mut con)?;
    let raw: String = redis_state::op::command("GET", limit.key()).run(&mut con)?;
    println!("stored {raw:?}, read {:?}", limit.get().run(&mut con)?);
    // JSON where asked.
    let banner = StringValue::<Banner, Json>::new("config:banner").namespace(&ns);
    banner
        .set(&Banner {
            text: "hello".into(),
            level: 2,
        })
        .run(&mut con)?;
    println!("banner: {:?}", banner.get().run(&mut con)?);
    // ANCHOR_END: strings

    // ANCHOR: get_or_set
    // The first writer wins; the rest read its value. One `SET … NX GET`.
    let report = StringValue::<String>::new("report:today").namespace(&ns);
    let mine = report
        .get_or_set(&"built by worker 1".to_owned())
        .ttl(Duration::from_secs(600))
        .run(&mut con)?;
    let theirs = report
        .get_or_set(&"built by worker 2".to_owned())
        .ttl(Duration::from_secs(600))
        .run(&mut con)?;
    println!(
        "worker 1 stored it: {}; worker 2 found {theirs:?}",
        mine.is_none()
    );
    // ANCHOR_END: get_or_set

    // ANCHOR: counters
    let views = Counter::<i64>::new("counter:views").namespace(&ns);
    views.incr(1).run(&mut con)?;
    let n = views.incr(10).run(&mut con)?;
    println!("views: {n}");
    // A daily quota: the first increment gives the counter its TTL, later
    // ones keep it (the window does not move).
    let quota = Counter::<i64>::new("quota:ada:today").namespace(&ns);
    for _ in 0..3 {
        quota
            .incr(1)
            .ttl(Duration::from_secs(24 * 3600))
            .run(&mut con)?;
    }
    println!(
        "quota used {} of the day, {:?}",
        quota.get().run(&mut con)?,
        quota.ttl().run(&mut con)?
    );
    // Floats count with INCRBYFLOAT.
    let spent = Counter::<f64>::new("spent:ada").namespace(&ns);
    spent.incr(2.5).run(&mut con)?;
    println!("spent {}", spent.incr(0.25).run(&mut con)?);
    // ANCHOR_END: counters

    // ANCHOR: errors
    // Text that is not a `T` is an error naming the key.
    redis_state::op::command::<()>("SET", limit.key())
        .arg("lots")
        .run(&mut con)?;
    if let Err(Error::Decode(e)) = limit.get().run(&mut con) {
        println!("{e}");
    }
    // ANCHOR_END: errors

    // ANCHOR: batch
    // Several values in one round trip.
    let (motd_now, views_now) = batch((motd.get(), views.get())).run(&mut con)?;
    println!("one round trip: {motd_now:?}, {views_now}");
    // ANCHOR_END: batch

    for key in [
        motd.key(),
        limit.key(),
        banner.key(),
        report.key(),
        views.key(),
        quota.key(),
        spent.key(),
    ] {
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
