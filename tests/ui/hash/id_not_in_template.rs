use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(key = "order:{id}")]
struct Order {
    #[redis(id)]
    id: u64,
    #[redis(id)]
    customer: String,
}

fn main() {}
