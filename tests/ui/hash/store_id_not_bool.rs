use redis_state::prelude::*;

#[derive(RedisHash)]
#[redis(key = "user:profile:{id}", store_id = "no")]
struct Profile {
    #[redis(id)]
    id: u64,
    username: String,
}

fn main() {}
