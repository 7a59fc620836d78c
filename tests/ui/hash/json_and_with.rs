use redis_state::RedisHash;
use redis_state::codec::EpochSeconds;

#[derive(RedisHash)]
struct Event {
    #[redis(id)]
    id: u64,
    #[redis(json, with = EpochSeconds)]
    at: chrono::DateTime<chrono::Utc>,
}

fn main() {}
