use redis_state::Cached;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(ttl = "10m", buckets = 16, buckets = 32)]
struct Product {
    id: u64,
}

fn main() {}
