//! Typed streams against real servers: add, range and read with plain
//! fields or JSON; consumer groups with acknowledgements, retries,
//! dead letters, claims of a dead consumer's entries, effects applied once
//! with the acknowledgement, the group recreated after NOGROUP, and
//! trimming that respects live groups but not dead ones.

mod common;

use std::time::Duration;

use common::Runner;
use redis_state::cache::{Shutdown, shutdown};
use redis_state::prelude::*;
use redis_state::stream::{
    Ack, Consumer, ConsumerOptions, ConsumerStats, Delivery, Effect, EventCodec, Retention, Stream,
    StreamFeatures,
};
use redis_state::testing::{shared_cluster, shared_server};
use serde::{Deserialize, Serialize};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "order:{id}")]
struct OrderPlaced {
    #[redis(id)]
    id: u64,
    total: i64,
    note: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Audit {
    who: String,
    tags: Vec<String>,
}

fn order(id: u64) -> OrderPlaced {
    OrderPlaced {
        id,
        total: id as i64 * 100,
        note: id.is_multiple_of(2).then(|| format!("n{id}")),
    }
}

/// A stream key with a hash tag, so effect keys can share its slot.
fn key(ns: &Namespace, name: &str) -> String {
    format!("{}:{{{name}}}", ns.as_str())
}

/// A second connection, for what another client does meanwhile.
fn side(r: &Runner) -> Box<dyn redis::ConnectionLike> {
    if r.is_cluster() {
        Box::new(shared_cluster().connection().unwrap())
    } else {
        Box::new(shared_server().connection().unwrap())
    }
}

/// Runs `consumer` on the runner's connection until `sd` fires.
fn consume<T: Send, C: EventCodec<T>, R: Into<Ack>>(
    r: &mut Runner,
    consumer: &Consumer<T, C>,
    sd: &Shutdown,
    mut handler: impl FnMut(Delivery<T>) -> Result<R, String>,
) -> ConsumerStats {
    match r {
        Runner::Sync(con) => consumer.run(con, sd, handler),
        Runner::SyncCluster(con) => consumer.run(con, sd, handler),
        Runner::Async(rt, con) => {
            rt.block_on(consumer.run_async(con, sd, |d| std::future::ready(handler(d))))
        }
        Runner::AsyncCluster(rt, con) => {
            rt.block_on(consumer.run_async(con, sd, |d| std::future::ready(handler(d))))
        }
    }
    .unwrap()
}

fn fast() -> ConsumerOptions {
    let mut o = ConsumerOptions::default();
    o.backoff = Duration::from_millis(1);
    o.max_backoff = Duration::from_millis(2);
    o.block = Duration::from_millis(20);
    o
}

fn add_range_read(r: &mut Runner, ns: &Namespace) {
    let s = Stream::<OrderPlaced>::new(key(ns, "orders"), Retention::max_len(1000));
    let ids = r
        .run(redis_state::many((1..=3).map(|i| s.add(&order(i)))))
        .unwrap();
    assert_eq!(ids.len(), 3);
    let all = r.run(s.range("-", "+", 10)).unwrap();
    assert_eq!(
        all.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        vec![order(1), order(2), order(3)]
    );
    assert_eq!(all[0].id, ids[0]);
    let rev = r.run(s.rev_range("+", "-", 2)).unwrap();
    assert_eq!(rev[0].event, order(3));
    assert_eq!(rev.len(), 2);
    let after = r.run(s.read(&ids[0], 10)).unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(r.run(s.len()).unwrap(), 3);
    // Plain string fields, as redis-cli shows them; a `None` is absent.
    let raw: Vec<(String, Vec<(String, String)>)> = r.cmd("XRANGE", s.key()).arg("-").arg("+").go();
    assert_eq!(
        raw[0].1,
        vec![
            ("id".to_owned(), "1".to_owned()),
            ("total".to_owned(), "100".to_owned())
        ]
    );
    assert!(raw[1].1.contains(&("note".to_owned(), "n2".to_owned())));
    // Waiting reads: what is there comes at once; nothing waits the bound.
    let got = match r {
        Runner::Sync(con) => s.read_wait(con, "0", 10, Duration::from_millis(50)),
        Runner::SyncCluster(con) => s.read_wait(con, "0", 10, Duration::from_millis(50)),
        Runner::Async(rt, con) => {
            rt.block_on(s.read_wait_async(con, &ids[2], 10, Duration::from_millis(50)))
        }
        Runner::AsyncCluster(rt, con) => {
            rt.block_on(s.read_wait_async(con, &ids[2], 10, Duration::from_millis(50)))
        }
    }
    .unwrap();
    assert!(got.len() == 3 || got.is_empty());
}

fn json_and_corrupt_entries(r: &mut Runner, ns: &Namespace) {
    let s = Stream::<Audit, _>::json(
        key(ns, "audit"),
        Retention::max_age(Duration::from_secs(3600)),
    );
    let a = Audit {
        who: "ann".into(),
        tags: vec!["x".into()],
    };
    r.run(s.add(&a)).unwrap();
    let raw: Vec<(String, Vec<(String, String)>)> = r.cmd("XRANGE", s.key()).arg("-").arg("+").go();
    assert_eq!(raw[0].1[0].0, "data");
    assert_eq!(r.run(s.range("-", "+", 10)).unwrap()[0].event, a);
    // Hostile entries written by another client: typed errors naming them.
    let bad: String = r
        .cmd("XADD", s.key())
        .arg("*")
        .arg("data")
        .arg("{not json")
        .go();
    match r.run(s.range(&bad, &bad, 1)) {
        Err(redis_state::Error::Decode(d)) => {
            assert_eq!(d.key, format!("{}@{bad}", s.key()));
            assert_eq!(d.field.as_deref(), Some("data"));
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    let orders = Stream::<OrderPlaced>::new(key(ns, "orders"), Retention::max_len(10));
    let bad: String = r
        .cmd("XADD", orders.key())
        .arg("*")
        .arg("id")
        .arg("7")
        .arg("total")
        .arg("lots")
        .go();
    match r.run(orders.range("-", "+", 10)) {
        Err(redis_state::Error::Decode(d)) => {
            assert_eq!(d.key, format!("{}@{bad}", orders.key()));
            assert_eq!(d.field.as_deref(), Some("total"));
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    // A key of another type is the server's error, not a panic.
    let _: () = r.cmd("SET", &key(ns, "str")).arg("x").go();
    let wrong = Stream::<OrderPlaced>::new(key(ns, "str"), Retention::max_len(10));
    let e = r.run(wrong.range("-", "+", 1)).unwrap_err();
    assert_eq!(e.server_code(), Some("WRONGTYPE"), "{e:?}");
}

fn consume_ack_retry_dead_letter(r: &mut Runner, ns: &Namespace) {
    let s = Stream::<OrderPlaced>::new(key(ns, "orders"), Retention::max_len(1000));
    // The poison entry first, a corrupt one, then good ones; the last stops the run.
    r.run(s.add(&order(13))).unwrap();
    let corrupt: String = r.cmd("XADD", s.key()).arg("*").arg("id").arg("x").go();
    r.run(redis_state::many((1..=10).map(|i| s.add(&order(i)))))
        .unwrap();
    let group = s.group("billing");
    let mut o = fast();
    o.max_attempts = 3;
    let c = group.consumer("worker").unwrap().options(o);
    assert!(c.name().starts_with("worker-"));
    let (trigger, sd) = shutdown();
    let mut seen = Vec::new();
    let mut flaky_failed = false;
    let stats = consume(r, &c, &sd, |d| {
        if d.event.id == 13 {
            return Err("poison".to_owned());
        }
        if d.event.id == 4 && !flaky_failed {
            flaky_failed = true;
            return Err("flaky".to_owned());
        }
        seen.push(d.event.id);
        if d.event.id == 10 {
            trigger.fire();
        }
        Ok(())
    });
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    assert_eq!(stats.done, 10);
    assert_eq!(stats.dead, 2);
    assert_eq!(stats.retries, 3);
    assert_eq!(r.run(group.pending()).unwrap(), 0);
    let dead: Vec<(String, Vec<(String, String)>)> =
        r.cmd("XRANGE", &s.dead_letter_key()).arg("-").arg("+").go();
    assert_eq!(dead.len(), 2);
    let field =
        |e: &Vec<(String, String)>, f: &str| e.iter().find(|(k, _)| k == f).map(|(_, v)| v.clone());
    assert_eq!(field(&dead[0].1, "error").as_deref(), Some("poison"));
    assert_eq!(field(&dead[0].1, "attempts").as_deref(), Some("3"));
    assert_eq!(field(&dead[0].1, "id").as_deref(), Some("13"));
    assert_eq!(field(&dead[1].1, "origin"), Some(corrupt));
    assert!(field(&dead[1].1, "error").unwrap().contains("id"));
}

fn claims_what_a_dead_consumer_left(r: &mut Runner, ns: &Namespace) {
    let s = Stream::<OrderPlaced>::new(key(ns, "orders"), Retention::max_len(1000));
    let group = s.group("g");
    r.run(group.create()).unwrap();
    r.run(redis_state::many((1..=5).map(|i| s.add(&order(i)))))
        .unwrap();
    // A consumer reads three entries and dies without acknowledging.
    let _: redis::Value = r
        .cmd("XREADGROUP", "GROUP")
        .arg("g")
        .arg("ghost")
        .arg("COUNT")
        .arg(3)
        .arg("STREAMS")
        .arg(s.key())
        .arg(">")
        .go();
    std::thread::sleep(Duration::from_millis(5));
    let mut o = fast();
    o.claim_idle = Duration::from_millis(1);
    let c = group.consumer("w").unwrap().options(o);
    let (trigger, sd) = shutdown();
    let mut seen = Vec::new();
    let stats = consume(r, &c, &sd, |d| {
        seen.push((d.event.id, d.deliveries));
        if seen.len() == 5 {
            trigger.fire();
        }
        Ok(())
    });
    seen.sort();
    assert_eq!(seen, vec![(1, 2), (2, 2), (3, 2), (4, 1), (5, 1)]);
    assert_eq!(stats.claimed, 3);
    assert_eq!(r.run(group.pending()).unwrap(), 0);
}

fn effects_apply_once_with_the_ack(r: &mut Runner, ns: &Namespace) {
    let s = Stream::<OrderPlaced>::new(key(ns, "orders"), Retention::max_len(1000));
    let totals = key(ns, "orders") + ":totals";
    r.run(redis_state::many((1..=4).map(|i| s.add(&order(i)))))
        .unwrap();
    let group = s.group("sum");
    let c = group.consumer("w").unwrap().options(fast());
    let mut other = side(r);
    let (trigger, sd) = shutdown();
    let stats = consume(r, &c, &sd, |d| {
        if d.event.id == 2 {
            // Another consumer acknowledged it meanwhile (it claimed it
            // and finished): this one's effect must not apply.
            let _: i64 = redis::cmd("XACK")
                .arg(s.key())
                .arg("sum")
                .arg(&d.id)
                .query(&mut *other)
                .unwrap();
        }
        if d.event.id == 4 {
            trigger.fire();
        }
        Ok::<_, String>(Effect::new().command("HINCRBY", &totals, ("sum", d.event.total)))
    });
    assert_eq!(stats.done, 3);
    assert_eq!(stats.already_acked, 1);
    let sum: i64 = r.cmd("HGET", &totals).arg("sum").go();
    assert_eq!(sum, 100 + 300 + 400);
    // An effect key of another slot is refused before anything is sent.
    if r.is_cluster() {
        r.run(s.add(&order(9))).unwrap();
        let (_t, sd) = shutdown();
        let err = match r {
            Runner::SyncCluster(con) => c.run(con, &sd, |_| {
                Ok::<_, String>(Effect::new().command("INCRBY", "elsewhere", 1))
            }),
            Runner::AsyncCluster(rt, con) => rt.block_on(c.run_async(con, &sd, |_| {
                std::future::ready(Ok::<_, String>(Effect::new().command(
                    "INCRBY",
                    "elsewhere",
                    1,
                )))
            })),
            _ => unreachable!(),
        };
        assert!(matches!(err, Err(redis_state::Error::CrossSlot { .. })));
    }
}

fn group_recreated_after_nogroup(r: &mut Runner, ns: &Namespace) {
    let s = Stream::<OrderPlaced>::new(key(ns, "orders"), Retention::max_len(1000));
    r.run(s.add(&order(1))).unwrap();
    let c = s.group("g").consumer("w").unwrap().options(fast());
    let mut other = side(r);
    let (trigger, sd) = shutdown();
    let mut seen = Vec::new();
    consume(r, &c, &sd, |d| {
        seen.push(d.event.id);
        if d.event.id == 1 {
            // The stream is deleted and written again without the group.
            let _: () = redis::cmd("DEL").arg(s.key()).query(&mut *other).unwrap();
            let _: String = redis::cmd("XADD")
                .arg(s.key())
                .arg("*")
                .arg("id")
                .arg(2)
                .arg("total")
                .arg(5)
                .query(&mut *other)
                .unwrap();
        } else {
            trigger.fire();
        }
        Ok(())
    });
    assert_eq!(seen, vec![1, 2]);
}

fn trimming_respects_live_groups_only(r: &mut Runner, ns: &Namespace) {
    let live = Stream::<OrderPlaced>::new(
        key(ns, "t"),
        Retention::max_len(2)
            .exact()
            .respect_groups(Duration::from_secs(3600), 100),
    );
    r.run(live.group("slow").create()).unwrap();
    let ids = r
        .run(redis_state::many((1..=10).map(|i| live.add(&order(i)))))
        .unwrap();
    // `slow` holds entries 1..3 pending: nothing may go.
    let _: redis::Value = r
        .cmd("XREADGROUP", "GROUP")
        .arg("slow")
        .arg("c1")
        .arg("COUNT")
        .arg(3)
        .arg("STREAMS")
        .arg(live.key())
        .arg(">")
        .go();
    assert_eq!(r.run(live.trim()).unwrap(), 0);
    assert_eq!(r.run(live.len()).unwrap(), 10);
    // Acknowledged up to entry 3 (nothing pending): what is before the
    // last delivered entry may go, not what the group has not read.
    for id in &ids[..3] {
        r.run(live.group("slow").ack(id)).unwrap();
    }
    r.run(live.trim()).unwrap();
    assert_eq!(r.run(live.len()).unwrap(), 8);
    assert_eq!(r.run(live.range("-", "+", 1)).unwrap()[0].id, ids[2]);
    // The same group seen as dead (its consumer idle past `dead_after`):
    // it no longer holds trimming back.
    let dead = Stream::<OrderPlaced>::new(
        key(ns, "t"),
        Retention::max_len(2)
            .exact()
            .respect_groups(Duration::from_millis(1), 100),
    );
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(r.run(dead.trim()).unwrap(), 6);
    assert_eq!(r.run(dead.len()).unwrap(), 2);
    // The hard cap: adds are refused, never trimmed past a group.
    let capped = Stream::<OrderPlaced>::new(
        key(ns, "cap"),
        Retention::max_len(2).respect_groups(Duration::from_secs(60), 3),
    );
    for i in 0..3 {
        r.run(capped.add(&order(i))).unwrap();
    }
    match r.run(capped.add(&order(9))) {
        Err(redis_state::Error::StreamFull { key, len }) => {
            assert_eq!(key, capped.key());
            assert_eq!(len, 3);
        }
        other => panic!("expected StreamFull, got {other:?}"),
    }
}

/// The newer stream commands are detected from the server's own command
/// docs: none on a server older than Redis 8 (Redis 7.0, and Valkey 8,
/// which reports 7.2 as its Redis version), the fallback the library uses.
fn newer_commands_detected(r: &mut Runner, _ns: &Namespace) {
    let found = r.run(StreamFeatures::detect()).unwrap();
    let info: String = shared_server()
        .query(redis::cmd("INFO").arg("server"))
        .unwrap();
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap()
        .trim()
        .to_owned();
    let major: u32 = version.split('.').next().unwrap().parse().unwrap();
    println!("server {version}: {found:?}");
    if major < 8 {
        assert!(found.is_baseline(), "{version}: {found:?}");
    }
    // XNACK is a command: COMMAND INFO says whether it exists.
    let xnack: Vec<redis::Value> = shared_server()
        .query(redis::cmd("COMMAND").arg("INFO").arg("XNACK"))
        .unwrap();
    assert_eq!(
        found.xnack,
        !matches!(xnack.as_slice(), [redis::Value::Nil])
    );
}

matrix!(
    newer_commands_detected,
    add_range_read,
    json_and_corrupt_entries,
    consume_ack_retry_dead_letter,
    claims_what_a_dead_consumer_left,
    effects_apply_once_with_the_ack,
    group_recreated_after_nogroup,
    trimming_respects_live_groups_only,
);
