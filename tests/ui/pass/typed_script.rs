// Every form of the declaration compiles: fixed and variadic keys and
// arguments, a decoder, a file-less inline source, private visibility.
use redis_state::Operation;

redis_state::script! {
    /// Documented.
    pub struct Plain {
        name: "pass.plain",
        keys: [a, b],
        args: [x: u64, y: &str, z: &[u8]],
        returns: Option<String>,
        lua: "return redis.call('GET', KEYS[1]) or KEYS[2] .. ARGV[1] .. ARGV[2] .. ARGV[3]",
    }
}

redis_state::script! {
    struct Variadic {
        name: "pass.variadic",
        keys: [first, ..rest],
        args: [n: usize, ..more],
        returns: Vec<i64> => decode,
        lua: "return {#KEYS, #ARGV}",
    }
}

redis_state::script! {
    pub(crate) struct NoKeys {
        name: "pass.nokeys",
        keys: [],
        args: [],
        returns: i64,
        lua: "return 1",
    }
}

fn decode(v: redis_state::redis::Value) -> redis_state::Result<Vec<i64>> {
    Ok(redis_state::redis::FromRedisValue::from_redis_value(v).unwrap_or_default())
}

fn assert_op<O: Operation + Send>(_: O) {}

fn main() {
    assert_op(Plain::new("a", b"b", 1, "y", b"z"));
    assert_op(Variadic::new("k", 2).rest("k2").rest(String::from("k3")).more(("a", 1)).more(vec![1, 2]));
    assert_op(NoKeys::new());
    assert_eq!(Plain::KEYS, ["a", "b"]);
    assert_eq!(Variadic::ARGS, ["n", "..more"]);
    let _ = Plain::script().sha();
}
