#![allow(dead_code)]
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Event {
    kind: String,
}

#[derive(redis_state::Channel)]
#[channel(name = "user:{user_id}:events", message = Event)]
struct UserEvents {
    id: u64,
}

fn main() {}
