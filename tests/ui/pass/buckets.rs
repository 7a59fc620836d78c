use redis_state::RedisHash;

// An index on a key without hash tag: the bucketed layout, 64 buckets.
#[derive(RedisHash)]
#[redis(key = "user:{id}")]
struct User {
    #[redis(id)]
    id: u64,
    #[redis(index)]
    email: String,
}

// The number of buckets given.
#[derive(RedisHash)]
#[redis(key = "order:{customer}:{id}", buckets = 16384)]
struct Order {
    #[redis(id)]
    customer: String,
    #[redis(id)]
    id: u64,
    #[redis(index)]
    status: String,
}

// A unique field on a key without hash tag: bucketed too, the value
// reserved in its own bucket's slot.
#[derive(RedisHash)]
#[redis(key = "order:{customer}:{id}")]
struct Invoice {
    #[redis(id)]
    customer: String,
    #[redis(id)]
    id: u64,
    #[redis(unique)]
    reference: String,
}

fn main() {
    assert_eq!(<Invoice as RedisHash>::SCHEMA.buckets, 64);
    assert_eq!(<User as RedisHash>::SCHEMA.buckets, 64);
    assert_eq!(<Order as RedisHash>::SCHEMA.buckets, 16384);
}
