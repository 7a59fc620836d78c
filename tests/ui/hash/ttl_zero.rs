use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(ttl = 0)]
struct Session {
    #[redis(id)]
    id: u64,
}

fn main() {}
