//! # Typed pub/sub
//!
//! A channel is declared once, as a type whose fields are the typed parts
//! of its name, with the type of what it carries:
//!
//! * **names from templates**: `#[channel(name = "user:{id}:events",
//!   message = UserEvent)]`; parts are escaped as in keys, so two ids never
//!   share a channel, and a pattern subscription (`user:*:events`) hands
//!   each message back with its parts parsed (the `id`);
//! * **messages as JSON or plain text**: `format = "plain"` sends a string
//!   or number as is, for `redis-cli` users and other clients;
//! * **publishing is an operation**: one `PUBLISH` whose output is the
//!   receiver count, pipelined with anything else;
//! * **subscribers that say what happened**: the server's confirmations
//!   with their counts, a bounded buffer with the overflow policy you choose
//!   (drop oldest, drop newest, fail) and a count of what was dropped, a
//!   `MayHaveMissed` event after every reconnect, a message that does not
//!   decode as an error item naming the channel (the stream goes on);
//! * **both ways to read**: an async stream, or a handler on a thread of
//!   its own with a clean stop; one core serves both;
//! * **sharded channels** (`sharded`): `SPUBLISH`/`SSUBSCRIBE` on a Cluster,
//!   re-subscribed at the new owner when the slot moves.
//!
//! Pub/sub delivers at most once: a message published while the
//! subscriber's connection is down is lost, and the subscriber is told.
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server`. Run it with `cargo run --example pubsub`.

use std::time::Duration;

use redis_state::prelude::*;
use redis_state::pubsub::{Channel, Event, Overflow, Subscriber, SubscriberOptions, Target};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserEvent {
    kind: String,
}

// ANCHOR: declare
/// `user:<id>:events`, carrying JSON.
#[derive(redis_state::Channel, Debug, Clone, PartialEq)]
#[channel(name = "{app}:user:{id}:events", message = UserEvent)]
struct UserEvents {
    app: String,
    id: u64,
}

/// A plain-text channel that `redis-cli PUBLISH` can write to.
#[derive(redis_state::Channel, Debug)]
#[channel(name = "{app}:alerts", message = String, format = "plain")]
struct Alerts {
    app: String,
}
// ANCHOR_END: declare

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, url) = connect()?;
    let mut con = redis::Client::open(url.as_str())?.get_connection()?;
    let app = format!("pubsub-{}", std::process::id());

    // ANCHOR: blocking
    // A blocking subscriber: its connection runs on a small thread of its own.
    let sub =
        Subscriber::<UserEvents>::connect(Target::standalone(&url), SubscriberOptions::new())?;
    sub.psubscribe(&UserEvents::pattern())?;
    let (tx, rx) = std::sync::mpsc::channel();
    let handler = sub.run(move |item| match item {
        Ok(Event::Message(m)) => {
            let _ = tx.send(format!("user {} did {}", m.channel.id, m.message.kind));
        }
        Ok(Event::Subscribed { name, count, .. }) => println!("subscribed to {name} ({count})"),
        Ok(Event::MayHaveMissed { reason }) => println!("may have missed messages: {reason:?}"),
        Ok(other) => println!("{other:?}"),
        Err(e) => println!("bad message: {e}"),
    })?;
    for id in [7, 8] {
        let ch = UserEvents {
            app: app.clone(),
            id,
        };
        let receivers = ch
            .publish(&UserEvent {
                kind: "login".into(),
            })
            .run(&mut con)?;
        println!("published on {} to {receivers} receiver(s)", ch.name());
    }
    for _ in 0..2 {
        println!("handler: {}", rx.recv_timeout(Duration::from_secs(5))?);
    }
    let sub = handler.stop().ok_or("the handler panicked")?;
    sub.unsubscribe_all()?;
    // ANCHOR_END: blocking

    // ANCHOR: async
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // A small buffer that keeps the newest messages when the reader lags.
        let opts = SubscriberOptions::new()
            .capacity(2)
            .overflow(Overflow::DropOldest);
        let mut alerts =
            Subscriber::<Alerts>::connect_async(Target::standalone(&url), opts).await?;
        let ch = Alerts { app: app.clone() };
        alerts.subscribe_async(&ch).await?;
        let mut pcon = redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        // Four publishes in one round trip, as redis-cli users would write them.
        let texts = ["disk 80%", "disk 90%", "disk 95%", "disk full"].map(str::to_owned);
        let counts = many(texts.iter().map(|t| ch.publish(t)))
            .run_async(&mut pcon)
            .await?;
        println!("receivers: {counts:?}");
        while alerts.received() < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        while let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_millis(100), alerts.next_async()).await
        {
            match item? {
                Event::Message(m) => println!("alert: {}", m.message),
                Event::Lagged { dropped } => println!("lagged: {dropped} dropped"),
                other => println!("{other:?}"),
            }
        }
        println!("dropped in all: {}", alerts.dropped());
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    // ANCHOR_END: async
    Ok(())
}

fn connect()
-> Result<(Option<redis_state::testing::RedisServer>, String), Box<dyn std::error::Error>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => Ok((None, url)),
        Err(_) => {
            let server = redis_state::testing::RedisServer::start()?;
            let url = server.url();
            Ok((Some(server), url))
        }
    }
}
