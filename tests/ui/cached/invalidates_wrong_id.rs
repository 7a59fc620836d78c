use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "view:{id}", ttl = "10m")]
struct View {
    id: u64,
}

#[derive(RedisHash)]
#[redis(key = "row:{id}", invalidates(View = "name"))]
struct Row {
    #[redis(id)]
    id: u64,
    name: String,
}

fn main() {}
