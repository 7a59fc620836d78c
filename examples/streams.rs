//! # Streams with consumer groups
//!
//! A `Stream<T>` is a Redis stream of events of one Rust type, declared with
//! the retention it keeps (`Retention::max_len(n)` or `max_age(d)`, `~` by
//! default): every add trims, so the stream stays bounded.
//!
//! * **plain fields**: a `RedisHash` type's fields are the entry's fields,
//!   as plain strings that redis-cli and redis-py read (`Stream::json` keeps
//!   a serde type as JSON in one field, `data`);
//! * **typed add, range and read**: operations that batch like any other
//!   (`many` of adds is one pipeline); an entry that does not decode is an
//!   `Error::Decode` naming the stream, the entry id and the field;
//! * **consumer groups**: `group.consumer("billing")` names a consumer
//!   uniquely; it processes every entry at least once, acknowledges after
//!   the handler succeeds, retries with backoff, claims what dead consumers
//!   left (with the read itself, `XREADGROUP … CLAIM`, on Redis 8.4 and
//!   newer; `XAUTOCLAIM` before), sends entries that keep failing (or do not decode)
//!   to `<stream>:dead` with the error, and recreates its group after
//!   `NOGROUP`;
//! * **idempotent adds**: `add(&e).idempotent(producer, iid)` returns the
//!   first add's id on a repeat (a retry after a lost reply) and adds
//!   nothing: `XADD … IDMP` on a stream declared `with_features` of a
//!   Redis 8.6 server, a script that remembers the ids otherwise;
//! * **exactly once inside Redis**: a handler that returns an `Effect` has
//!   its commands applied with the acknowledgement in one script, only while
//!   the entry is still pending;
//! * **trimming that respects groups**: `Retention::respect_groups` never
//!   drops what a live group has not acknowledged, and a dead group cannot
//!   hold trimming back forever.
//!
//! The loop is written once: `run` blocks on a connection it owns,
//! `run_async` awaits (give it a `DedicatedConnection`).
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server`. Run it with `cargo run --example streams`.

use std::time::Duration;

use redis_state::cache::shutdown;
use redis_state::prelude::*;
use redis_state::stream::{ConsumerOptions, Effect, Retention, Stream, StreamFeatures};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "order:{id}")]
struct OrderPlaced {
    #[redis(id)]
    id: u64,
    total: i64,
    coupon: Option<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;
    let tag = format!("{{orders-{}}}", std::process::id());
    // What the server offers (one round trip, once): `XADD … IDMP` on 8.6.
    let features = StreamFeatures::detect().run(&mut con)?;
    let orders = Stream::<OrderPlaced>::new(format!("{tag}:events"), Retention::max_len(10_000))
        .with_features(features);

    // Typed adds, one pipeline.
    let ids = redis_state::many((1..=5).map(|id| {
        orders.add(&OrderPlaced {
            id,
            total: id as i64 * 250,
            coupon: (id == 3).then(|| "SPRING".to_owned()),
        })
    }))
    .run(&mut con)?;
    println!("added {} events, last {}", ids.len(), ids[4]);
    for e in orders.range("-", "+", 2).run(&mut con)? {
        println!("{} -> {:?}", e.id, e.event);
    }

    // An idempotent add: the checkout retries after a lost reply, and the
    // order is in the stream once.
    let sixth = OrderPlaced {
        id: 6,
        total: 990,
        coupon: None,
    };
    let first = orders
        .add(&sixth)
        .idempotent("checkout-1", "order-6")
        .run(&mut con)?;
    let retry = orders
        .add(&sixth)
        .idempotent("checkout-1", "order-6")
        .run(&mut con)?;
    assert_eq!(first, retry);
    println!("order 6 added once, as {first}");

    // A consumer group: the totals are summed with the acknowledgement, in
    // one script, so a redelivered entry is never counted twice.
    let totals = format!("{tag}:totals");
    let group = orders.group("billing");
    let mut options = ConsumerOptions::default();
    options.backoff = Duration::from_millis(5);
    options.max_attempts = 2;
    let consumer = group.consumer("billing")?.options(options);
    let (stop, shutdown) = shutdown();
    let stats = consumer.run(&mut con, &shutdown, |d| {
        if d.event.id == 6 {
            stop.fire(); // the last one: stop after it
        }
        if d.event.id == 4 {
            return Err(format!("order {} has no customer", d.event.id));
        }
        Ok(Effect::new().command("HINCRBY", &totals, ("sum", d.event.total)))
    })?;
    let sum: i64 = redis::cmd("HGET").arg(&totals).arg("sum").query(&mut con)?;
    println!(
        "consumer {}: {} done, {} dead, sum {sum}",
        consumer.name(),
        stats.done,
        stats.dead
    );
    let dead: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(orders.dead_letter_key())
        .arg("-")
        .arg("+")
        .query(&mut con)?;
    for (_, fields) in &dead {
        let error = fields.iter().find(|(k, _)| k == "error").map(|(_, v)| v);
        println!("dead letter: {error:?}");
    }

    let () = redis::cmd("DEL")
        .arg(orders.key())
        .arg(orders.dead_letter_key())
        .arg(&totals)
        .arg(format!("{tag}:events:idmp:checkout-1"))
        .arg(format!("{tag}:events:idmp:checkout-1:at"))
        .query(&mut con)?;
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
