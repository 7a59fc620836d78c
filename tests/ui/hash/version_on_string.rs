use redis_state::RedisHash;

#[derive(RedisHash)]
struct Page {
    #[redis(id)]
    id: u64,
    #[redis(version)]
    version: String,
}

fn main() {}
