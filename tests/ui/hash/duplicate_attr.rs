use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(ttl = "30m")]
#[redis(ttl = "1h")]
struct User {
    #[redis(id)]
    id: u64,
    #[redis(rename = "mail", rename = "email_address")]
    email: String,
}

fn main() {}
