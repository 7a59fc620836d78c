// The return type must convert from a Redis reply (or name a decoder).
struct Opaque;

redis_state::script! {
    pub struct Get {
        name: "ui.get",
        keys: [key],
        args: [],
        returns: Opaque,
        lua: "return redis.call('GET', KEYS[1])",
    }
}

fn main() {}
