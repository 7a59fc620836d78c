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
//!   re-subscribed at the new owner when the slot moves or a replica takes
//!   over from a failed primary;
//! * **reliable topics** (`Topic`): each message is also appended to a
//!   stream with a required cap, numbered 1, 2, 3, ...; a `TopicSubscriber`
//!   sees a gap (a reconnect, a full buffer), fills it from the stream,
//!   drops what comes twice, and reports what the cap already trimmed as
//!   `Lost` with the count;
//! * **entity events** (`EntityEvents`): saves, deletes and expiries of a
//!   `RedisHash` model from keyspace notifications, typed, with the id
//!   read back from the key. Best effort: lost across reconnects and
//!   node-local on a Cluster (every primary is subscribed). Turning
//!   `notify-keyspace-events` on is the operator's job; connecting checks
//!   it and names what to set when it is off.
//!
//! Pub/sub delivers at most once: a message published while the
//! subscriber's connection is down is lost, and the subscriber is told.
//! A reliable topic delivers each message once, in order, as long as the
//! stream still holds it.
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server` with keyspace notifications on. Run it with
//! `cargo run --example pubsub`.

use std::time::Duration;

use redis_state::prelude::*;
use redis_state::pubsub::{
    Channel, EntityEvents, EntityItem, Event, Overflow, Subscriber, SubscriberOptions, Target,
    Topic, TopicEvent, TopicSubscriber,
};
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

// ANCHOR: model
/// A model whose saves, deletes and expiries are watched.
#[derive(redis_state::RedisHash, Debug)]
#[redis(key = "account:{id}")]
struct Account {
    #[redis(id)]
    id: u64,
    name: String,
}
// ANCHOR_END: model

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

    // ANCHOR: topic
    // A reliable topic: every message also goes to a stream capped at about
    // 1,000 entries, numbered, so a reader can fill any gap from it.
    let orders = Topic::new(
        Alerts {
            app: format!("{app}-orders"),
        },
        1_000,
    )?;
    for text in ["order 1", "order 2", "order 3"] {
        let p = orders.publish(&text.to_owned()).run(&mut con)?;
        println!("{text} is #{} ({} receivers)", p.seq, p.receivers);
    }
    // A reader resuming after #1 gets #2 and #3 from the stream, then the
    // live ones, each once and in order.
    let mut reader =
        TopicSubscriber::<Alerts>::connect(Target::standalone(&url), SubscriberOptions::new())?;
    reader.subscribe_from(&orders, 1)?;
    orders.publish(&"order 4".to_owned()).run(&mut con)?;
    let mut seen = 0;
    while seen < 3 {
        match reader.recv(Duration::from_secs(5)).ok_or("no message")?? {
            TopicEvent::Message(m) => {
                seen += 1;
                let from = if m.backfilled {
                    "the stream"
                } else {
                    "pub/sub"
                };
                println!("#{} {} (from {from})", m.seq, m.message);
            }
            TopicEvent::Lost { first, count, .. } => println!("lost {count} from #{first}"),
            _ => {}
        }
    }
    println!("{:?}", reader.stats());
    // ANCHOR_END: topic

    // ANCHOR: entity
    let ns = Namespace::new(&app)?;
    match EntityEvents::<Account>::connect(
        Target::standalone(&url),
        Some(&ns),
        SubscriberOptions::new(),
    ) {
        // The server's notify-keyspace-events lacks K, g, h or x: the error
        // names the node, its setting and what to set.
        Err(e @ redis_state::Error::KeyspaceEventsOff { .. }) => println!("{e}"),
        Err(e) => return Err(e.into()),
        Ok(mut events) => {
            let ada = Account {
                id: 1,
                name: "Ada".into(),
            };
            ada.save().namespace(&ns).run(&mut con)?;
            Account::delete(&1).namespace(&ns).run(&mut con)?;
            loop {
                match events.recv(Duration::from_secs(5)).ok_or("no event")?? {
                    EntityItem::Entity(e) => {
                        println!("account {:?}: {:?}", e.id, e.change);
                        if e.change == redis_state::pubsub::Change::Deleted {
                            break;
                        }
                    }
                    EntityItem::Notice(n) => println!("{n:?}"),
                    _ => {}
                }
            }
        }
    }
    // ANCHOR_END: entity
    Ok(())
}

fn connect()
-> Result<(Option<redis_state::testing::RedisServer>, String), Box<dyn std::error::Error>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => Ok((None, url)),
        Err(_) => {
            // What an operator sets for entity events.
            let server = redis_state::testing::RedisServer::builder()
                .config("notify-keyspace-events", "Kghx")
                .start()?;
            let url = server.url();
            Ok((Some(server), url))
        }
    }
}
