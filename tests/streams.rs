//! Typed streams against real servers: add, range and read with plain
//! fields or JSON; consumer groups with acknowledgements, retries,
//! dead letters, claims of a dead consumer's entries, effects applied once
//! with the acknowledgement, the group recreated after NOGROUP, and
//! trimming that respects live groups but not dead ones; idempotent adds,
//! and which commands a consumer used (the newer servers' `CLAIM` reads and
//! `XACKDEL`, or Redis 7.0's `XAUTOCLAIM`, `XACK` and `XDEL`), asserted for
//! the server the tests run on.

mod common;

use std::time::Duration;

use common::Runner;
use redis_state::cache::{Shutdown, shutdown};
use redis_state::prelude::*;
use redis_state::stream::{
    Ack, Consumer, ConsumerOptions, ConsumerStats, Delivery, Effect, EventCodec, Retention, Stream,
    StreamFeatures,
};
use redis_state::testing::{RedisServer, shared_cluster, shared_server};
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
/// which reports 7.2 as its Redis version), the fallback the library uses;
/// on Redis 8.6 all but `XNACK`.
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
    let minor: u32 = version.split('.').nth(1).unwrap().parse().unwrap();
    if major < 8 {
        assert!(found.is_baseline(), "{version}: {found:?}");
    }
    // Redis 8.2: XACKDEL and the trimming policies; 8.4: CLAIM; 8.6: IDMP.
    let at_least = |a: u32, b: u32| (major, minor) >= (a, b);
    if at_least(8, 2) {
        assert!(found.xackdel && found.trim_policies, "{version}: {found:?}");
    }
    assert_eq!(
        found.xreadgroup_claim,
        at_least(8, 4),
        "{version}: {found:?}"
    );
    assert_eq!(found.xadd_idmp, at_least(8, 6), "{version}: {found:?}");
    // XNACK is a command: COMMAND INFO says whether it exists.
    let xnack: Vec<redis::Value> = shared_server()
        .query(redis::cmd("COMMAND").arg("INFO").arg("XNACK"))
        .unwrap();
    assert_eq!(
        found.xnack,
        !matches!(xnack.as_slice(), [redis::Value::Nil])
    );
}

/// The newer commands this server describes, asked on the test support's
/// own connection.
fn features_of(r: &mut Runner) -> StreamFeatures {
    r.run(StreamFeatures::detect()).unwrap()
}

/// `XINFO STREAM` as field name → value.
fn stream_info(r: &mut Runner, key: &str) -> std::collections::HashMap<String, redis::Value> {
    r.cmd("XINFO", "STREAM").arg(key).go()
}

fn info_int(info: &std::collections::HashMap<String, redis::Value>, field: &str) -> i64 {
    match info.get(field) {
        Some(redis::Value::Int(n)) => *n,
        other => panic!("XINFO STREAM {field}: {other:?}"),
    }
}

/// An idempotent add returns the first id on a repeat and adds once: with
/// `XADD … IDMP` where the server has it (the stream's own IDMP counters
/// move, no key of the fallback exists), with the script otherwise (its
/// keys hold the id). A stream declared as having `IDMP` on a server
/// without it falls back; a capped stream always uses the script.
fn idempotent_add_adds_once(r: &mut Runner, ns: &Namespace) {
    let found = features_of(r);
    let s =
        Stream::<OrderPlaced>::new(key(ns, "idem"), Retention::max_len(1000)).with_features(found);
    let first = r.run(s.add(&order(1)).idempotent("p1", "order-1")).unwrap();
    // A retry after a lost reply, even with other fields: the same id.
    let again = r.run(s.add(&order(2)).idempotent("p1", "order-1")).unwrap();
    assert_eq!(again, first);
    // Another iid, or the same iid of another producer: new entries.
    let other = r.run(s.add(&order(3)).idempotent("p1", "order-3")).unwrap();
    let other_producer = r.run(s.add(&order(4)).idempotent("p2", "order-1")).unwrap();
    assert_ne!(other, first);
    assert_ne!(other_producer, first);
    assert_eq!(r.run(s.len()).unwrap(), 3);
    let all = r.run(s.range("-", "+", 10)).unwrap();
    assert_eq!(all[0].event, order(1));
    let seen_key = format!("{}:idmp:p1", s.key());
    let seen: Vec<(String, String)> = r.cmd("HGETALL", &seen_key).go();
    let info = stream_info(r, s.key());
    if found.xadd_idmp {
        // The server's IDMP: 3 ids recorded, 1 duplicate answered.
        assert_eq!(info_int(&info, "iids-added"), 3, "{info:?}");
        assert_eq!(info_int(&info, "iids-duplicates"), 1, "{info:?}");
        assert!(seen.is_empty(), "{seen:?}");
    } else {
        assert!(!info.contains_key("iids-added"), "{info:?}");
        let mut seen = seen;
        seen.sort();
        assert_eq!(
            seen,
            vec![
                ("order-1".to_owned(), first.clone()),
                ("order-3".to_owned(), other)
            ]
        );
        let ttl: i64 = r.cmd("PTTL", &seen_key).go();
        assert!(ttl > 0 && ttl <= 100_000, "{ttl}");
    }
    // Declared as having IDMP: on a server without it, the script answers
    // in a second round, with the same contract.
    let mut claimed = found;
    claimed.xadd_idmp = true;
    let declared = Stream::<OrderPlaced>::new(key(ns, "declared"), Retention::max_len(1000))
        .with_features(claimed);
    let a = r.run(declared.add(&order(1)).idempotent("p", "x")).unwrap();
    let b = r.run(declared.add(&order(1)).idempotent("p", "x")).unwrap();
    assert_eq!(a, b);
    assert_eq!(r.run(declared.len()).unwrap(), 1);
    let fallback: u64 = r.cmd("HLEN", &format!("{}:idmp:p", declared.key())).go();
    assert_eq!(fallback, u64::from(!found.xadd_idmp));
    // A capped stream: the script on every server; a repeat is answered
    // before the cap is checked.
    let capped = Stream::<OrderPlaced>::new(
        key(ns, "capped"),
        Retention::max_len(10).respect_groups(Duration::from_secs(60), 1),
    )
    .with_features(found);
    let c1 = r.run(capped.add(&order(1)).idempotent("p", "c1")).unwrap();
    assert_eq!(
        r.run(capped.add(&order(1)).idempotent("p", "c1")).unwrap(),
        c1
    );
    assert!(matches!(
        r.run(capped.add(&order(2)).idempotent("p", "c2")),
        Err(redis_state::Error::StreamFull { len: 1, .. })
    ));
    let kept: u64 = r.cmd("HLEN", &format!("{}:idmp:p", capped.key())).go();
    assert_eq!(kept, 1);
    // Empty ids are refused before anything is sent.
    assert!(matches!(
        r.run(s.add(&order(5)).idempotent("", "x")),
        Err(redis_state::Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        r.run(s.add(&order(5)).idempotent("p", "")),
        Err(redis_state::Error::InvalidArgument { .. })
    ));
}

/// The fallback remembers at most 100 ids per producer: the oldest is
/// forgotten first (a repeat of it adds again), the newer ones are kept.
fn idempotent_fallback_is_bounded(r: &mut Runner, ns: &Namespace) {
    let s = Stream::<OrderPlaced>::new(key(ns, "bounded"), Retention::max_len(1000));
    let first = r.run(s.add(&order(0)).idempotent("p", "0")).unwrap();
    r.run(redis_state::many(
        (1..=100).map(|i| s.add(&order(i)).idempotent("p", i.to_string())),
    ))
    .unwrap();
    let seen = format!("{}:idmp:p", s.key());
    assert_eq!(r.cmd::<u64>("HLEN", &seen).go(), 100);
    assert_eq!(r.cmd::<u64>("ZCARD", &(seen.clone() + ":at")).go(), 100);
    let again = r.run(s.add(&order(0)).idempotent("p", "0")).unwrap();
    assert_ne!(again, first);
    assert_eq!(r.run(s.len()).unwrap(), 102);
    let kept = r.run(s.add(&order(100)).idempotent("p", "100")).unwrap();
    assert_eq!(r.run(s.len()).unwrap(), 102);
    assert!(!kept.is_empty());
}

matrix!(
    idempotent_add_adds_once,
    idempotent_fallback_is_bounded,
    newer_commands_detected,
    add_range_read,
    json_and_corrupt_entries,
    consume_ack_retry_dead_letter,
    claims_what_a_dead_consumer_left,
    effects_apply_once_with_the_ack,
    group_recreated_after_nogroup,
    trimming_respects_live_groups_only,
);

// ---------------------------------------------------------------------------
// Which commands the consumer used: a private server, so that its command
// statistics count this test's commands only.

/// Calls of `cmd` in the server's `INFO commandstats`.
fn calls_of(server: &RedisServer, cmd: &str) -> u64 {
    let info: String = server
        .query(redis::cmd("INFO").arg("commandstats"))
        .unwrap();
    let prefix = format!("cmdstat_{cmd}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// Calls of each command the consumer may use, before and after `f`.
fn counting(
    server: &RedisServer,
    f: impl FnOnce(),
) -> std::collections::HashMap<&'static str, u64> {
    const CMDS: [&str; 5] = ["xautoclaim", "xreadgroup", "xack", "xdel", "xackdel"];
    let before: Vec<u64> = CMDS.iter().map(|c| calls_of(server, c)).collect();
    f();
    CMDS.iter()
        .zip(before)
        .map(|(c, b)| (*c, calls_of(server, c) - b))
        .collect()
}

/// A dead consumer left three entries pending, one of which was deleted
/// since; a live consumer that deletes what it settles claims and handles
/// the other two and the new ones, with the same delivery counts on both
/// paths, and the deleted one leaves the pending list. On a server with
/// `XREADGROUP … CLAIM` and `XACKDEL` the consumer claims with its reads
/// (no `XAUTOCLAIM` until its sweep) and settles with `XACKDEL`; told to
/// use the Redis 7.0 commands, or on an older server, it claims with
/// `XAUTOCLAIM` and settles with `XACK` and `XDEL`.
fn claim_and_settle_paths(baseline: bool) {
    let server = RedisServer::start().unwrap();
    let mut con = server.connection().unwrap();
    let found = StreamFeatures::detect().run(&mut con).unwrap();
    let s = Stream::<OrderPlaced>::new("orders", Retention::max_len(1000));
    let group = s.group("g");
    group.create().run(&mut con).unwrap();
    let ids = redis_state::many((1..=6).map(|i| s.add(&order(i))))
        .run(&mut con)
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("ghost")
        .arg("COUNT")
        .arg(4)
        .arg("STREAMS")
        .arg(s.key())
        .arg(">")
        .query(&mut con)
        .unwrap();
    // Entry 4 is deleted while pending.
    let _: u64 = redis::cmd("XDEL")
        .arg(s.key())
        .arg(&ids[3])
        .query(&mut con)
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let mut o = fast();
    o.claim_idle = Duration::from_millis(1);
    o.delete_acked = true;
    if baseline {
        o.features = Some(StreamFeatures::BASELINE);
    }
    let used = o.features.unwrap_or(found);
    let c = group.consumer("w").unwrap().options(o.clone());
    let (trigger, sd) = shutdown();
    let mut seen = Vec::new();
    let mut stats = ConsumerStats::default();
    let calls = counting(&server, || {
        stats = c
            .run(&mut con, &sd, |d| {
                seen.push((d.event.id, d.deliveries));
                if seen.len() == 5 {
                    trigger.fire();
                }
                Ok::<_, String>(())
            })
            .unwrap();
    });
    seen.sort();
    assert_eq!(seen, vec![(1, 2), (2, 2), (3, 2), (5, 1), (6, 1)]);
    assert_eq!(stats.claimed, 3);
    assert_eq!(stats.done, 5);
    assert_eq!(s.len().run(&mut con).unwrap(), 0);
    println!("{used:?} (server {found:?}): {calls:?}");
    if used.xreadgroup_claim {
        assert_eq!(calls["xautoclaim"], 0, "{calls:?}");
        // The deleted entry is still referenced: CLAIM reads skip it.
        assert_eq!(group.pending().run(&mut con).unwrap(), 1);
    } else {
        assert!(calls["xautoclaim"] >= 1, "{calls:?}");
        assert_eq!(group.pending().run(&mut con).unwrap(), 0);
    }
    if used.xackdel {
        assert_eq!(calls["xackdel"], 5, "{calls:?}");
        assert_eq!((calls["xack"], calls["xdel"]), (0, 0), "{calls:?}");
    } else {
        assert_eq!((calls["xack"], calls["xdel"]), (5, 5), "{calls:?}");
        assert_eq!(calls["xackdel"], 0, "{calls:?}");
    }
    if !used.xreadgroup_claim {
        return;
    }
    // With CLAIM reads, the sweep (`XAUTOCLAIM` every `sweep_every`) drops
    // the reference to the deleted entry, as the claim round does above.
    o.sweep_every = Duration::ZERO;
    let c = group.consumer("sweeper").unwrap().options(o);
    let (trigger, sd) = shutdown();
    let watcher = {
        let mut other = server.connection().unwrap();
        let group = group.clone();
        std::thread::spawn(move || {
            // A bound that only turns a hang into a failure.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let mut pending = group.pending().run(&mut other).unwrap();
            while pending > 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
                pending = group.pending().run(&mut other).unwrap();
            }
            trigger.fire();
            pending
        })
    };
    let calls = counting(&server, || {
        c.run(&mut con, &sd, |_| Ok::<_, String>(())).unwrap();
    });
    assert_eq!(watcher.join().unwrap(), 0);
    assert!(calls["xautoclaim"] >= 1, "{calls:?}");
}

#[test]
fn consumer_uses_the_newer_commands_the_server_has() {
    claim_and_settle_paths(false);
}

#[test]
fn consumer_told_to_use_the_redis_7_0_commands() {
    claim_and_settle_paths(true);
}
