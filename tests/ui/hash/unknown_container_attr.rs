use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(keys = "user:{id}")]
struct User {
    #[redis(id)]
    id: u64,
}

fn main() {}
