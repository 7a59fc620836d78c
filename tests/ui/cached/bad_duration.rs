use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "product:{id}", ttl = "10 minutes", stale = "5x")]
struct Product {
    id: u64,
}

fn main() {}
