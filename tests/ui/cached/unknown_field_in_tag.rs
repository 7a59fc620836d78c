use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "product:{id}", ttl = "10m", tag = "category:{cat}")]
struct Product {
    id: u64,
    category: String,
}

fn main() {}
