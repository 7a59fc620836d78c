use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "page:{category}", ttl = "10m", tag = "category:{category}")]
struct Page {
    category: String,
}

// A type without its tag.
#[derive(RedisHash)]
#[redis(key = "row1:{id}", invalidates_tag(Page))]
struct Row1 {
    #[redis(id)]
    id: u64,
    category: String,
}

// A tag that is not a string.
#[derive(RedisHash)]
#[redis(key = "row2:{id}", invalidates_tag(Page = category))]
struct Row2 {
    #[redis(id)]
    id: u64,
    category: String,
}

// No pair at all.
#[derive(RedisHash)]
#[redis(key = "row3:{id}", invalidates_tag())]
struct Row3 {
    #[redis(id)]
    id: u64,
    category: String,
}

// Neither the plain form nor a list.
#[derive(RedisHash)]
#[redis(key = "row4:{id}", invalidates_tag)]
struct Row4 {
    #[redis(id)]
    id: u64,
    category: String,
}

fn main() {}
