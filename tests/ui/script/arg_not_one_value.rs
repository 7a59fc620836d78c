// Each declared argument must be exactly one Redis argument: a list of
// strings would shift every ARGV after it. Lists go in the variadic tail.
redis_state::script! {
    pub struct Tag {
        name: "ui.tag",
        keys: [set],
        args: [tags: Vec<String>, ttl: u64],
        returns: i64,
        lua: "return redis.call('SADD', KEYS[1], ARGV[1])",
    }
}

fn main() {
    let _ = Tag::new("k", vec!["a".to_owned()], 1);
}
