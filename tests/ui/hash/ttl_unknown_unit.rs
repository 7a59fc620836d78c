use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(ttl = "5x")]
struct Session {
    #[redis(id)]
    id: u64,
}

fn main() {}
