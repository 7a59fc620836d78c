use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(ttl = "30 minutes")]
struct Session {
    #[redis(id)]
    id: u64,
}

fn main() {}
