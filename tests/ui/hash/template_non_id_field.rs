use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(key = "user:{email}:{id}")]
struct User {
    #[redis(id)]
    id: u64,
    email: String,
}

fn main() {}
