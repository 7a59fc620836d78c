use redis_state::RedisHash;

#[derive(RedisHash)]
struct Settings;

fn main() {}
