//! A composite id whose first part is the hash tag: indexes are scoped per
//! customer, and the id is a tuple in template order.

use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(key = "order:{{{customer}}}:{id}")]
struct Order {
    #[redis(id)]
    id: u64,
    #[redis(id)]
    customer: String,
    #[redis(index)]
    status: String,
}

fn main() {
    let id: <Order as RedisHash>::Id = ("acme".to_owned(), 42);
    assert_eq!(Order::key_of(&id), "order:{acme}:42");
    let _ = Order::find_by_status(&"acme".to_owned(), &"open".to_owned());
    let _ = Order::find_by_in(&"acme", Order::STATUS, &"open".to_owned());
}
