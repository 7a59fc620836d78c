use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "product:{id}", ttl = "1m", ttl = "2m")]
struct Product {
    id: u64,
}

fn main() {}
