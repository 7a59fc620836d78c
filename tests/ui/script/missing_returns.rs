// Every part of the declaration is required, in order.
redis_state::script! {
    pub struct Get {
        name: "ui.get",
        keys: [key],
        args: [],
        lua: "return redis.call('GET', KEYS[1])",
    }
}

fn main() {}
