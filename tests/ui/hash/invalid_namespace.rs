use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(namespace = "app:{v1}")]
struct User {
    #[redis(id)]
    id: u64,
}

fn main() {}
