use redis_state::RedisHash;

#[derive(RedisHash)]
struct User {
    #[redis(id)]
    id: u64,
    #[redis(ttl = "30m")]
    token: String,
}

fn main() {}
