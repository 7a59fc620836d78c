use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(key = "user:{id}", buckets = 8)]
struct User {
    #[redis(id)]
    id: u64,
    
    email: String,
}

fn main() {}
