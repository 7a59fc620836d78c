use redis_state::RedisHash;

struct Connection;

#[derive(RedisHash)]
struct User {
    #[redis(id)]
    id: u64,
    #[redis(skip)]
    connection: Connection,
}

fn main() {}
