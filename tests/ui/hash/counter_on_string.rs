use redis_state::RedisHash;

#[derive(RedisHash)]
struct Page {
    #[redis(id)]
    id: u64,
    #[redis(counter)]
    views: String,
}

fn main() {}
