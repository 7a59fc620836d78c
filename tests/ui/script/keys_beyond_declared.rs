// The Lua source reads KEYS[3], but only two keys are declared.
redis_state::script! {
    pub struct Swap {
        name: "ui.swap",
        keys: [a, b],
        args: [],
        returns: i64,
        lua: "return redis.call('RENAME', KEYS[1], KEYS[3])",
    }
}

fn main() {}
