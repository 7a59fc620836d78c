use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "product:{sku}", ttl = "10m")]
struct Product {
    id: u64,
    name: String,
}

fn main() {
    let _ = Product::get(&1u64);
}
