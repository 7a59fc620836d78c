// Placeholders must be whole key segments, in keys and in tags (review
// finding 1).
use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "stock:{warehouse}_{sku}", ttl = "10m", tag = "cat:{category}{shelf}")]
struct Stock {
    warehouse: String,
    sku: String,
    category: String,
    shelf: String,
}

fn main() {
    let _ = Stock::get(&("w1".to_owned(), "a".to_owned()));
}
