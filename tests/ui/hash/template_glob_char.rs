use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(key = "user*:{id}")]
struct User {
    #[redis(id)]
    id: u64,
}

fn main() {}
