//! The executors: scripts on servers that have never seen them, pipelines
//! split per slot, cross-slot units refused before sending, dropped
//! connections reported as errors. Uses private servers, since it flushes
//! script caches.

use std::time::Duration;

use redis_state::prelude::*;
use redis_state::testing::{RedisCluster, RedisServer};
use redis_state::{Error, op};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "note:{id}", ttl = "1h")]
struct Note {
    #[redis(id)]
    id: u32,
    text: String,
}

fn notes(n: u32) -> Vec<Note> {
    (0..n)
        .map(|id| Note {
            id,
            text: format!("note {id}"),
        })
        .collect()
}

fn flush_scripts(server: &RedisServer) {
    let _: () = server.query(redis::cmd("SCRIPT").arg("FLUSH")).unwrap();
}

#[test]
fn scripts_run_on_a_server_that_has_not_seen_them() {
    let server = RedisServer::start().unwrap();
    let mut con = server.connection().unwrap();
    // A lone call: EVALSHA, NOSCRIPT, then EVAL.
    notes(1)[0].save().run(&mut con).unwrap();
    flush_scripts(&server);
    notes(1)[0].save().run(&mut con).unwrap();
    // A pipeline: the first call of the script carries its body, so the
    // pipeline runs in order; a load in the same pipeline sees the save.
    flush_scripts(&server);
    let n = Note {
        id: 9,
        text: "fresh".into(),
    };
    let (_, loaded) = batch((n.save(), Note::load(&9))).run(&mut con).unwrap();
    assert_eq!(loaded, Some(n));
    flush_scripts(&server);
    Note::save_many(&notes(100)).run(&mut con).unwrap();
    assert_eq!(
        Note::load_many(&(0..100).collect::<Vec<_>>())
            .run(&mut con)
            .unwrap()
            .iter()
            .flatten()
            .count(),
        100
    );
}

#[tokio::test]
async fn scripts_run_on_a_cluster_that_has_not_seen_them() {
    let cluster = RedisCluster::start(3).unwrap();
    let mut acon = cluster.async_connection().await.unwrap();
    let mut scon = cluster.connection().unwrap();
    for round in 0..2 {
        for node in cluster.nodes() {
            flush_scripts(node);
        }
        let batch_of = notes(60);
        if round == 0 {
            Note::save_many(&batch_of)
                .run_async(&mut acon)
                .await
                .unwrap();
        } else {
            Note::save_many(&batch_of).run(&mut scon).unwrap();
        }
        let ids: Vec<u32> = (0..60).collect();
        let back = Note::load_many(&ids).run_async(&mut acon).await.unwrap();
        assert_eq!(back.into_iter().flatten().collect::<Vec<_>>(), batch_of);
        for node in cluster.nodes() {
            flush_scripts(node);
        }
        Note {
            id: 1000,
            text: "lone".into(),
        }
        .save()
        .run(&mut scon)
        .unwrap();
        Note {
            id: 1001,
            text: "lone".into(),
        }
        .save()
        .run_async(&mut acon)
        .await
        .unwrap();
    }
}

#[test]
fn cross_slot_units_are_refused_before_sending() {
    let server = RedisServer::start().unwrap();
    let mut con = server.connection().unwrap();
    static PING: redis_state::script::Script =
        redis_state::script::Script::new("test.two_keys", "return 1");
    struct TwoKeys;
    impl Operation for TwoKeys {
        type Output = i64;
        fn prepare(&mut self, plan: &mut op::Plan) -> redis_state::Result<()> {
            plan.script(&PING, &["a", "b"])?;
            Ok(())
        }
        fn complete(&mut self, replies: &mut op::Replies) -> redis_state::Result<op::Step<i64>> {
            replies.next("test").map(op::Step::Done)
        }
    }
    let err = TwoKeys.run(&mut con).unwrap_err();
    assert!(matches!(err, Error::CrossSlot { .. }), "{err}");
    let commands: i64 = {
        let info: String = server
            .query(redis::cmd("INFO").arg("commandstats"))
            .unwrap();
        i64::from(info.contains("cmdstat_evalsha") || info.contains("cmdstat_eval:"))
    };
    assert_eq!(commands, 0, "nothing was sent");
}

#[test]
fn empty_batches_send_nothing() {
    let server = RedisServer::start().unwrap();
    let mut con = server.connection().unwrap();
    let none: Vec<Option<Note>> = Note::load_many::<u32, _>(&[]).run(&mut con).unwrap();
    assert!(none.is_empty());
    assert_eq!(Note::delete_many::<u32, _>(&[]).run(&mut con).unwrap(), 0);
}

#[test]
fn a_dead_server_is_a_connection_error() {
    let mut server = RedisServer::start().unwrap();
    let mut con = server.connection().unwrap();
    notes(1)[0].save().run(&mut con).unwrap();
    server.stop();
    let err = Note::load(&0).run(&mut con).unwrap_err();
    assert!(err.is_connection_error(), "{err:?}");
    // After a restart a new connection works again (no persistence: empty).
    server.restart().unwrap();
    let mut con = server.connection().unwrap();
    assert_eq!(Note::load(&0).run(&mut con).unwrap(), None);
}

#[tokio::test]
async fn a_dead_server_is_a_connection_error_async() {
    let mut server = RedisServer::start().unwrap();
    let mut con = server.async_connection().await.unwrap();
    notes(1)[0].save().run_async(&mut con).await.unwrap();
    server.stop();
    let res =
        tokio::time::timeout(Duration::from_secs(10), Note::load(&0).run_async(&mut con)).await;
    let err = res.expect("no hang").unwrap_err();
    assert!(err.is_connection_error(), "{err:?}");
}

#[test]
fn plain_commands_join_a_batch() {
    let server = RedisServer::start().unwrap();
    let mut con = server.connection().unwrap();
    let n = Note {
        id: 1,
        text: "t".into(),
    };
    let (_, visits, loaded) = batch((
        n.save(),
        op::command::<i64>("INCR", "visits"),
        Note::load(&1),
    ))
    .run(&mut con)
    .unwrap();
    assert_eq!(visits, 1);
    assert_eq!(loaded, Some(n));
}

/// Two scripts declared with one name but different bodies: the first call
/// of *each body* in a pipeline carries it, so a server that has seen neither
/// runs the pipeline in order (a read after the second script sees its write).
fn same_name_scripts_case() -> impl Operation<Output = ((), (), Option<String>)> + Send {
    static FIRST: redis_state::script::Script = redis_state::script::Script::new(
        "test.same_name",
        "redis.call('SET', KEYS[1], 'first') return 1",
    );
    static SECOND: redis_state::script::Script = redis_state::script::Script::new(
        "test.same_name",
        "redis.call('SET', KEYS[1], 'second') return 2",
    );
    struct Call(&'static redis_state::script::Script, &'static str);
    impl Operation for Call {
        type Output = ();
        fn prepare(&mut self, plan: &mut op::Plan) -> redis_state::Result<()> {
            plan.script(self.0, &[self.1])?;
            Ok(())
        }
        fn complete(&mut self, replies: &mut op::Replies) -> redis_state::Result<op::Step<()>> {
            replies.next::<i64>("test").map(|_| op::Step::Done(()))
        }
    }
    batch((
        Call(&FIRST, "{same}:a"),
        Call(&SECOND, "{same}:b"),
        op::command::<Option<String>>("GET", "{same}:b"),
    ))
}

#[test]
fn scripts_sharing_a_name_each_carry_their_body() {
    let server = RedisServer::start().unwrap();
    let mut con = server.connection().unwrap();
    let (_, _, b) = same_name_scripts_case().run(&mut con).unwrap();
    assert_eq!(
        b.as_deref(),
        Some("second"),
        "the read ran before the script"
    );
    flush_scripts(&server);
    let _: () = server.query(redis::cmd("DEL").arg("{same}:b")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_, _, b) = rt
        .block_on(async {
            let mut con = server.async_connection().await.unwrap();
            same_name_scripts_case().run_async(&mut con).await
        })
        .unwrap();
    assert_eq!(
        b.as_deref(),
        Some("second"),
        "the read ran before the script"
    );
}

#[tokio::test]
async fn scripts_sharing_a_name_each_carry_their_body_on_a_cluster() {
    let cluster = RedisCluster::start(3).unwrap();
    let mut scon = cluster.connection().unwrap();
    let (_, _, b) = same_name_scripts_case().run(&mut scon).unwrap();
    assert_eq!(
        b.as_deref(),
        Some("second"),
        "the read ran before the script"
    );
    for node in cluster.nodes() {
        flush_scripts(node);
    }
    let mut acon = cluster.async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg("{same}:b")
        .query_async(&mut acon)
        .await
        .unwrap();
    let (_, _, b) = same_name_scripts_case().run_async(&mut acon).await.unwrap();
    assert_eq!(
        b.as_deref(),
        Some("second"),
        "the read ran before the script"
    );
}

/// The calls of `cmd` in `INFO commandstats` (`cmdstat_<cmd>:calls=N`).
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

/// A pipeline whose last command is the first call of a script: it reads
/// what the command before it wrote.
fn copy_after_set(value: &str) -> impl Operation<Output = ((), String)> + Send {
    static COPY: redis_state::script::Script = redis_state::script::Script::new(
        "test.copy_last",
        "local v = redis.call('GET', KEYS[2]) or 'none' redis.call('SET', KEYS[1], v) return v",
    );
    struct Copy;
    impl Operation for Copy {
        type Output = String;
        fn prepare(&mut self, plan: &mut op::Plan) -> redis_state::Result<()> {
            plan.script(&COPY, &["{last}:dst", "{last}:src"])?;
            Ok(())
        }
        fn complete(&mut self, replies: &mut op::Replies) -> redis_state::Result<op::Step<String>> {
            replies.next("test").map(op::Step::Done)
        }
    }
    batch((
        op::command::<()>("SET", "{last}:src").arg(value.to_owned()),
        Copy,
    ))
}

/// The last command of a pipeline goes out as `EVALSHA` even when it is the
/// script's first call (nothing of the pipeline runs after it): no body
/// sent on a server that has the script, and on one that has not, the call
/// re-sent as `EVAL` still runs after the command before it.
#[test]
fn a_script_call_ending_a_pipeline_goes_as_evalsha() {
    let server = RedisServer::start().unwrap();
    let mut con = server.connection().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut acon = rt.block_on(server.async_connection()).unwrap();
    for (round, value) in ["one", "two", "three", "four"].into_iter().enumerate() {
        let blocking = round % 2 == 0;
        let run = |con: &mut redis::Connection, acon: &mut redis::aio::MultiplexedConnection| {
            if blocking {
                copy_after_set(value).run(con).unwrap()
            } else {
                rt.block_on(copy_after_set(value).run_async(acon)).unwrap()
            }
        };
        // A server without the script: NOSCRIPT, then EVAL, in order.
        flush_scripts(&server);
        let _: () = server.query(redis::cmd("CONFIG").arg("RESETSTAT")).unwrap();
        let ((), copied) = run(&mut con, &mut acon);
        assert_eq!(copied, value, "the script ran before the SET");
        assert_eq!(calls_of(&server, "evalsha"), 1);
        assert_eq!(calls_of(&server, "eval"), 1, "re-sent with its body");
        // A server that has it: one EVALSHA, no body.
        let _: () = server.query(redis::cmd("CONFIG").arg("RESETSTAT")).unwrap();
        let ((), copied) = run(&mut con, &mut acon);
        assert_eq!(copied, value);
        assert_eq!(calls_of(&server, "evalsha"), 1);
        assert_eq!(calls_of(&server, "eval"), 0, "no body sent");
    }
}
