//! A generic model: the user bounds the parameter by what its field needs.

use redis_state::RedisHash;
use redis_state::codec::FieldValue;

#[derive(RedisHash)]
#[redis(key = "setting:{id}")]
struct Setting<T: FieldValue> {
    #[redis(id)]
    id: String,
    value: T,
    previous: Option<T>,
}

fn main() {
    assert_eq!(Setting::<u64>::key_of("a"), "setting:a");
    assert_eq!(<Setting<bool> as RedisHash>::SCHEMA.fields.len(), 3);
    let _ = Setting::<f64>::update("a").set(Setting::<f64>::VALUE, 1.5);
}
