use redis_state::RedisHash;

#[derive(RedisHash)]
struct User {
    id: u64,
    name: String,
}

fn main() {}
