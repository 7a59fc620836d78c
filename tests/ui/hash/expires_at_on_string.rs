use redis_state::RedisHash;

#[derive(RedisHash)]
struct Session {
    #[redis(id)]
    id: u64,
    #[redis(expires_at)]
    expires_at: String,
}

fn main() {}
