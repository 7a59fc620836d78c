use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(index)]
struct User {
    #[redis(id)]
    id: u64,
    email: String,
}

fn main() {}
