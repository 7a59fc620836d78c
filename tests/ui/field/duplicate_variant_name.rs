use redis_state::RedisField;

#[derive(RedisField)]
#[redis(rename_all = "lowercase")]
enum Plan {
    Free,
    #[redis(rename = "free")]
    Trial,
}

fn main() {}
