use redis_state::RedisField;

#[derive(RedisField)]
struct UserId(#[redis(rename = "user")] u64);

fn main() {}
