use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "product:{id}", ttl = "1m", jitter = "5m")]
struct Product {
    id: u64,
}

fn main() {}
