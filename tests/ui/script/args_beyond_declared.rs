// The Lua source reads ARGV[2], but only one argument is declared.
redis_state::script! {
    pub struct SetTwice {
        name: "ui.set_twice",
        keys: [key],
        args: [value: &str],
        returns: (),
        lua: "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('APPEND', KEYS[1], ARGV[2])",
    }
}

fn main() {}
