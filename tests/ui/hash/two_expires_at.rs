use chrono::{DateTime, Utc};
use redis_state::RedisHash;

#[derive(RedisHash)]
struct Session {
    #[redis(id)]
    id: u64,
    #[redis(expires_at)]
    expires_at: DateTime<Utc>,
    #[redis(expires_at)]
    valid_until: Option<DateTime<Utc>>,
}

fn main() {}
