use redis_state::prelude::*;

// The plain form cannot know the namespace of the tag sets: the cached type
// that carries the tag must be named.
#[derive(RedisHash)]
#[redis(key = "row:{id}", invalidates_tag = "category:{category}")]
struct Row {
    #[redis(id)]
    id: u64,
    category: String,
}

fn main() {
    let _ = Row::load(&1u64);
}
