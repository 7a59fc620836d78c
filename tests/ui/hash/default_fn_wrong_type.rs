use redis_state::RedisHash;

fn zero() -> u32 {
    0
}

#[derive(RedisHash)]
struct User {
    #[redis(id)]
    id: u64,
    #[redis(default = "zero")]
    name: String,
}

fn main() {}
