use redis_state::Cached;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "{{shop}}:product:{id}", ttl = "10m", buckets = 16)]
struct Product {
    id: u64,
}

fn main() {}
