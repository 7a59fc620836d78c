use redis_state::RedisHash;

struct Address {
    city: String,
}

#[derive(RedisHash)]
struct User {
    #[redis(id)]
    id: u64,
    #[redis(json)]
    address: Address,
}

fn main() {}
