use redis_state::RedisField;

#[derive(RedisField)]
#[redis(rename_all = "snake_case")]
struct UserId(u64);

fn main() {}
