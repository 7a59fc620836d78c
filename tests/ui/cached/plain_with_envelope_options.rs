use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

// The plain format stores the JSON alone: a stale window and a negative
// TTL need the envelope's header.
#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "user:{id}", ttl = "1h", format = "plain", stale = "1m", negative_ttl = "30s")]
struct User {
    id: u64,
}

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "page:{id}", ttl = "1h", format = "json")]
struct Page {
    id: u64,
}

fn main() {}
