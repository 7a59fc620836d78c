//! Typed scripts declared with `script!`: typed keys, arguments and replies,
//! batching, namespaces, variadic tails, the slot check before sending, and
//! servers that have never seen (or have forgotten) the script.

mod common;

use common::Runner;
use redis_state::prelude::*;
use redis_state::testing::RedisServer;
use redis_state::{Error, Namespace};

redis_state::script! {
    /// Moves `amount` from one counter to another if the first has enough;
    /// returns the new balances, or nil.
    pub struct Move {
        name: "test.move",
        keys: [from, to],
        args: [amount: i64],
        returns: Option<(i64, i64)>,
        lua: r#"
            local have = tonumber(redis.call('GET', KEYS[1]) or '0')
            if have < tonumber(ARGV[1]) then return false end
            return {redis.call('DECRBY', KEYS[1], ARGV[1]), redis.call('INCRBY', KEYS[2], ARGV[1])}
        "#,
    }
}

#[derive(Debug, PartialEq)]
pub struct Stats {
    pub keys: usize,
    pub args: usize,
    pub first_arg: String,
}

fn stats(v: redis::Value) -> redis_state::Result<Stats> {
    let (keys, args, first_arg): (usize, usize, String) =
        redis::FromRedisValue::from_redis_value(v).map_err(|e| Error::user(e.to_string()))?;
    Ok(Stats {
        keys,
        args,
        first_arg,
    })
}

redis_state::script! {
    /// Counts its keys and arguments (variadic tails on both).
    pub struct Count {
        name: "test.count",
        keys: [first, ..more],
        args: [label: &str, ..rest],
        returns: Stats => stats,
        lua: "return {#KEYS, #ARGV, ARGV[1]}",
    }
}

redis_state::script! {
    /// Returns the key names it was given, to see the namespace applied.
    pub struct Names {
        name: "test.names",
        keys: [a, b],
        args: [],
        returns: Vec<String>,
        lua: "return {KEYS[1], KEYS[2]}",
    }
}

fn typed_keys_args_and_reply(r: &mut Runner, ns: &Namespace) {
    let (a, b) = (format!("{ns}:{{acct}}:a"), format!("{ns}:{{acct}}:b"));
    let () = r.cmd("SET", &a).arg(10).go();
    assert_eq!(r.run(Move::new(&a, &b, 4)).unwrap(), Some((6, 4)));
    assert_eq!(r.run(Move::new(&a, &b, 7)).unwrap(), None);
    assert_eq!(Move::KEYS, ["from", "to"]);
    assert_eq!(Move::ARGS, ["amount"]);
    assert_eq!(Move::script().name(), "test.move");
}

fn batched_with_other_operations(r: &mut Runner, ns: &Namespace) {
    let (a, b) = (format!("{ns}:{{x}}:a"), format!("{ns}:{{x}}:b"));
    let () = r.cmd("SET", &a).arg(5).go();
    let (first, second, plain) = r
        .run(batch((
            Move::new(&a, &b, 2),
            Move::new(&a, &b, 2),
            redis_state::op::command::<i64>("INCR", format!("{ns}:other")),
        )))
        .unwrap();
    assert_eq!(first, Some((3, 2)));
    assert_eq!(second, Some((1, 4)));
    assert_eq!(plain, 1);
}

fn variadic_tails_and_decoder(r: &mut Runner, ns: &Namespace) {
    let k = |s: &str| format!("{ns}:{{v}}:{s}");
    let got = r
        .run(
            Count::new(k("1"), "hello")
                .more(k("2"))
                .more(k("3"))
                .rest(42)
                .rest(("x", "y")),
        )
        .unwrap();
    assert_eq!(
        got,
        Stats {
            keys: 3,
            args: 4,
            first_arg: "hello".into()
        }
    );
}

fn namespace_prefixes_every_key(r: &mut Runner, ns: &Namespace) {
    let names = r.run(Names::new("{t}:a", "{t}:b").namespace(ns)).unwrap();
    assert_eq!(names, [format!("{ns}:{{t}}:a"), format!("{ns}:{{t}}:b")]);
}

/// Keys of one call must share a slot: refused before sending, on a
/// standalone server too (the code must run on a Cluster unchanged).
fn cross_slot_calls_are_refused_before_sending(r: &mut Runner, ns: &Namespace) {
    let (a, b) = (format!("{ns}:a"), format!("{ns}:b"));
    assert_ne!(
        redis_state::keys::key_slot(a.as_bytes()),
        redis_state::keys::key_slot(b.as_bytes())
    );
    let () = r.cmd("SET", &a).arg(10).go();
    match r.run(Move::new(&a, &b, 1)) {
        Err(Error::CrossSlot { unit, keys }) => {
            assert_eq!(unit, "test.move");
            assert_eq!(keys, [a.clone(), b.clone()]);
        }
        other => panic!("expected CrossSlot, got {other:?}"),
    }
    let v: i64 = r.cmd("GET", &a).go();
    assert_eq!(v, 10, "nothing ran");
}

matrix!(
    typed_keys_args_and_reply,
    batched_with_other_operations,
    variadic_tails_and_decoder,
    namespace_prefixes_every_key,
    cross_slot_calls_are_refused_before_sending,
);

/// A server that forgot its scripts (SCRIPT FLUSH, a restart, a failover)
/// answers EVALSHA with NOSCRIPT: a lone call and a pipeline both recover.
#[test]
fn scripts_survive_a_flushed_script_cache() {
    let server = RedisServer::start().unwrap();
    let mut con = server.connection().unwrap();
    let () = redis::cmd("SET")
        .arg("{s}:a")
        .arg(100)
        .query(&mut con)
        .unwrap();
    assert_eq!(
        Move::new("{s}:a", "{s}:b", 1).run(&mut con).unwrap(),
        Some((99, 1))
    );
    for _ in 0..2 {
        let () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
        let loaded: Vec<bool> = redis::cmd("SCRIPT")
            .arg("EXISTS")
            .arg(Move::script().sha())
            .query(&mut con)
            .unwrap();
        assert_eq!(loaded, [false]);
        assert!(
            Move::new("{s}:a", "{s}:b", 1)
                .run(&mut con)
                .unwrap()
                .is_some()
        );
        let () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
        let (x, y) = batch((
            Move::new("{s}:a", "{s}:b", 1),
            Move::new("{s}:a", "{s}:b", 1),
        ))
        .run(&mut con)
        .unwrap();
        assert!(x.is_some() && y.is_some());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut con = server.async_connection().await.unwrap();
        let () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(
            Move::new("{s}:a", "{s}:b", 1)
                .run_async(&mut con)
                .await
                .unwrap(),
            Some((92, 8))
        );
    });
}
