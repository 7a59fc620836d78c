use redis_state::RedisField;

#[derive(RedisField)]
struct Point {
    x: i32,
    y: i32,
}

fn main() {}
