use redis_state::RedisField;

#[derive(RedisField)]
enum Never {}

fn main() {}
