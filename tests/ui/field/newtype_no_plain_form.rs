use redis_state::RedisField;

struct Address {
    city: String,
}

#[derive(RedisField)]
struct Home(Address);

fn main() {}
