// Three independent mistakes, all reported at once, and nothing else.
use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(ttl = "5x")]
struct User {
    #[redis(id)]
    id: u64,
    #[redis(indexed)]
    email: String,
    #[redis(counter)]
    logins: Option<i64>,
}

fn main() {}
