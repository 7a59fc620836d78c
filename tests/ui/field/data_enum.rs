use redis_state::{RedisField, RedisHash};

#[derive(RedisField)]
enum Status {
    Active,
    Suspended { reason: String },
}

// The fallback impls keep a model that uses `Status` free of follow-on errors.
#[derive(RedisHash)]
struct Account {
    #[redis(id)]
    id: u64,
    status: Status,
}

fn main() {}
