use redis_state::prelude::*;

/// Not a cached type.
struct Plain;

#[derive(RedisHash)]
#[redis(key = "row:{id}", invalidates_tag(Plain = "category:{category}"))]
struct Row {
    #[redis(id)]
    id: u64,
    category: String,
}

#[derive(RedisHash)]
#[redis(key = "row2:{id}", invalidates_tag(Missing = "category:{category}"))]
struct Row2 {
    #[redis(id)]
    id: u64,
    category: String,
}

fn main() {}
