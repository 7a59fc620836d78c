use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "product:{id}", ttl = "10m")]
#[redis(ttl = "10m")]
struct Product {
    id: u64,
}

fn main() {}
