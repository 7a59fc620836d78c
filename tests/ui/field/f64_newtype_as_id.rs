use redis_state::{RedisField, RedisHash};

#[derive(RedisField)]
struct Celsius(f64);

#[derive(RedisHash)]
struct Reading {
    #[redis(id)]
    temperature: Celsius,
}

fn main() {}
