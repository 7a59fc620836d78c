use redis_state::RedisHash;

#[derive(RedisHash)]
struct User {
    #[redis(id)]
    id: u64,
    email: String,
    #[redis(rename = "email")]
    backup_email: String,
}

fn main() {}
