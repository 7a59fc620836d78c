use redis_state::RedisHash;

#[derive(RedisHash)]
struct User(#[redis(id)] u64, String);

fn main() {}
