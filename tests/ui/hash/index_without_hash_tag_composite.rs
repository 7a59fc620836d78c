use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(key = "order:{customer}:{id}")]
struct Order {
    #[redis(id)]
    customer: String,
    #[redis(id)]
    id: u64,
    #[redis(unique)]
    reference: String,
}

fn main() {}
