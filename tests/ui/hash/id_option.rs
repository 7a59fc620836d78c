use redis_state::RedisHash;

#[derive(RedisHash)]
struct User {
    #[redis(id)]
    id: Option<u64>,
    name: String,
}

fn main() {}
