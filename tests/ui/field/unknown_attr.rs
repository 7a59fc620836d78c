use redis_state::RedisField;

#[derive(RedisField)]
#[redis(rename_all = "snake_case", transparent)]
enum Status {
    Active,
    #[redis(alias = "off")]
    Inactive,
}

fn main() {}
