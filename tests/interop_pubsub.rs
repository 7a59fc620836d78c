//! Interop with redis-py on pub/sub: the seed's `publish_event` (JSON of a
//! dict on a plain channel name) received by a typed subscriber, and typed
//! publishes received by the seed's subscriber, by channel and by pattern
//! (`tests/interop/seeds_pubsub.py`); on every executor and topology.

mod common;

use std::time::Duration;

use common::Runner;
use common::interop::python_for;
use redis_state::Namespace;
use redis_state::pubsub::{Channel, Event, Subscriber, SubscriberOptions, Target};
use redis_state::testing::{shared_cluster, shared_server};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The seed's notification event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Notification {
    #[serde(rename = "type")]
    kind: String,
    user_id: u64,
    timestamp: String,
}

#[derive(redis_state::Channel, Debug, Clone, PartialEq)]
#[channel(name = "notifications:{run}:{user}", message = Notification)]
struct Notifications {
    run: String,
    user: u64,
}

fn target(runner: &Runner) -> Target {
    if runner.is_cluster() {
        Target::cluster(shared_cluster().urls())
    } else {
        Target::standalone(shared_server().url())
    }
}

fn seed_publisher_to_typed_subscriber(runner: &mut Runner, ns: &Namespace) {
    let mut py = python_for(runner);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut sub: Subscriber<Notifications> = rt
        .block_on(Subscriber::connect_async(
            target(runner),
            SubscriberOptions::new(),
        ))
        .unwrap();
    let ch = Notifications {
        run: ns.as_str().to_owned(),
        user: 12345,
    };
    rt.block_on(sub.subscribe_async(&ch)).unwrap();
    let event =
        json!({"type": "user_signup", "user_id": 12345, "timestamp": "2024-01-01T00:00:00"});
    let receivers: i64 = py.call(
        "seeds_pubsub.publish_event",
        json!({"channel": ch.name(), "message": event}),
    );
    if !runner.is_cluster() {
        assert_eq!(receivers, 1);
    }
    let m = rt.block_on(async {
        loop {
            let item = tokio::time::timeout(Duration::from_secs(10), sub.next_async())
                .await
                .expect("a message within 10 s")
                .expect("the subscriber runs")
                .unwrap();
            if let Event::Message(m) = item {
                return m;
            }
        }
    });
    assert_eq!(m.channel, ch);
    assert_eq!(
        m.message,
        Notification {
            kind: "user_signup".into(),
            user_id: 12345,
            timestamp: "2024-01-01T00:00:00".into(),
        }
    );
}

fn typed_publisher_to_seed_subscriber(runner: &mut Runner, ns: &Namespace) {
    let mut py = python_for(runner);
    let run = ns.as_str().to_owned();
    let ch = Notifications {
        run: run.clone(),
        user: 7,
    };
    let name = format!("sub-{run}");
    let confirmed: i64 = py.call(
        "seeds_pubsub.subscribe_start",
        json!({"name": name, "channels": [ch.name()], "patterns": [format!("notifications:{run}:*")]}),
    );
    assert_eq!(confirmed, 2);
    let n = Notification {
        kind: "user_signup".into(),
        user_id: 7,
        timestamp: "2024-01-01T00:00:00".into(),
    };
    runner.run(ch.publish(&n)).unwrap();
    let got: Vec<Value> = py.call(
        "seeds_pubsub.subscribe_collect",
        json!({"name": name, "count": 2}),
    );
    let data = serde_json::to_value(&n).unwrap();
    let mut kinds: Vec<&str> = got.iter().map(|m| m["type"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, vec!["message", "pmessage"], "{got:?}");
    for m in &got {
        assert_eq!(m["channel"], json!(ch.name()));
        assert_eq!(m["data"], data, "the seed's json.loads reads the message");
        if m["type"] == "pmessage" {
            assert_eq!(m["pattern"], json!(format!("notifications:{run}:*")));
        }
    }
}

matrix!(
    seed_publisher_to_typed_subscriber,
    typed_publisher_to_seed_subscriber
);
