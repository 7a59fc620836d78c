use redis_state::RedisHash;
use redis_state::codec::EpochSeconds;

#[derive(RedisHash)]
struct Event {
    #[redis(id)]
    id: u64,
    #[redis(with = EpochSeconds)]
    at: String,
}

fn main() {}
