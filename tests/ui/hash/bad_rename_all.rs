use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(rename_all = "camel_case")]
struct User {
    #[redis(id)]
    id: u64,
}

fn main() {}
