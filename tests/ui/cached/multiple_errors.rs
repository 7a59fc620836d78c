use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(
    key = "product:{sku}",
    ttl = "0s",
    beta = -1,
    tag = "category:{cat}",
    tag = "category:{cat}",
    version = "two"
)]
struct Product {
    id: u64,
    category: String,
}

fn main() {
    let _ = Product::get(&"x".to_owned());
}
