use redis_state::RedisHash;

#[derive(RedisHash)]
struct User {
    #[redis(id)]
    id: u64,
    #[redis(version)]
    version: u64,
    #[redis(version)]
    revision: u64,
}

fn main() {}
