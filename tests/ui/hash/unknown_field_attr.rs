use redis_state::RedisHash;

#[derive(RedisHash)]
struct User {
    #[redis(id)]
    id: u64,
    #[redis(indexed)]
    email: String,
}

fn main() {}
