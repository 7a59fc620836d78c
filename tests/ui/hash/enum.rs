use redis_state::RedisHash;

#[derive(RedisHash)]
enum User {
    Guest,
    Member { id: u64 },
}

fn main() {}
