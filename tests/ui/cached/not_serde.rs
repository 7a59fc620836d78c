use redis_state::prelude::*;

#[derive(Cached)]
#[cache(key = "product:{id}", ttl = "10m")]
struct Product {
    id: u64,
}

fn main() {}
