use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "product:{id}")]
struct Product {
    id: u64,
}

fn main() {
    let _ = Product::get(&1u64);
}
