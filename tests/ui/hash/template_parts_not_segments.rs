// Placeholders must be whole key segments: with `-` or nothing between two
// id parts, different ids would render one key (review finding 1). Each error
// sits at the template and suggests the corrected one; the uses below add
// nothing (the stand-in impl has the id type the user meant).
use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(key = "order:{customer}-{id}")]
struct Order {
    #[redis(id)]
    customer: String,
    #[redis(id)]
    id: String,
    total: i64,
}

#[derive(RedisHash)]
#[redis(key = "item:{a}{b}")]
struct Item {
    #[redis(id)]
    a: String,
    #[redis(id)]
    b: String,
}

// Joined to literal text, and another mistake in the same template: both
// are reported.
#[derive(RedisHash)]
#[redis(key = "user{id}:{nmae}")]
struct User {
    #[redis(id)]
    id: u64,
    name: String,
}

fn main() {
    let _ = Order::key_of(&("acme".to_owned(), "7".to_owned()));
    let _ = Item::load(&("1".to_owned(), "23".to_owned()));
    let _ = User::key_of(&7u64);
}
