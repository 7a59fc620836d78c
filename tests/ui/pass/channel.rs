use redis_state::pubsub::Channel;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Event {
    kind: String,
}

#[derive(redis_state::Channel)]
#[channel(name = "org:{org}:user:{id}:events", message = Event)]
struct UserEvents {
    org: String,
    id: u64,
}

#[derive(redis_state::Channel)]
#[channel(name = "announcements", message = String, format = "plain", sharded)]
struct Announcements;

#[derive(redis_state::Channel)]
#[channel(name = "{room}:chat", message = String, format = "plain", crate = "redis_state")]
struct Room {
    room: u32,
}

fn main() {
    let c = UserEvents {
        org: "acme".into(),
        id: 7,
    };
    assert_eq!(c.name(), "org:acme:user:7:events");
    assert_eq!(Announcements.name(), "announcements");
    assert_eq!(Room { room: 3 }.name(), "3:chat");
    let _ = c.publish(&Event { kind: "x".into() });
    let _ = Announcements.publish(&"hi".to_owned());
}
