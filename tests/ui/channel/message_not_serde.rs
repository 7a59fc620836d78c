#![allow(dead_code)]
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Event {
    kind: String,
}

struct Opaque;

#[derive(redis_state::Channel)]
#[channel(name = "user:{id}:events", message = Opaque)]
struct UserEvents {
    id: u64,
}

fn main() {}
