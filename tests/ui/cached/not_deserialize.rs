use redis_state::prelude::*;
use serde::Serialize;

#[derive(Cached, Serialize)]
#[cache(key = "product:{id}", ttl = "10m")]
struct Product {
    id: u64,
}

fn main() {}
