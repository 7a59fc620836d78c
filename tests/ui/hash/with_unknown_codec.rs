use redis_state::RedisHash;

#[derive(RedisHash)]
struct Event {
    #[redis(id)]
    id: u64,
    #[redis(with = EpochSecs)]
    at: chrono::DateTime<chrono::Utc>,
}

fn main() {}
