use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(key = "order:{customer}:{id}", hash_tag = "tenant")]
struct Order {
    #[redis(id)]
    id: u64,
    #[redis(id)]
    customer: String,
}

fn main() {}
