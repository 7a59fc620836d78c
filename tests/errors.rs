//! Errors as callers see them, against real servers: each message printed
//! once in a source chain, server errors (`WRONGTYPE`, `NOPERM`, errors
//! raised inside scripts) naming the operation and the key, a
//! classification to decide on retries, and a round trip that got no reply
//! saying that its writes may have been applied.

mod common;

use std::time::Duration;

use common::{Runner, Topology};
use redis_state::cache::{KeyPattern, invalidate_pattern, invalidate_pattern_async};
use redis_state::prelude::*;
use redis_state::testing::{RedisServer, shared_cluster, shared_server};
use redis_state::{Error, ErrorKind, Namespace};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{acct}}:{id}")]
struct Account {
    #[redis(id)]
    id: u64,
    name: String,
}

redis_state::script! {
    /// Fails inside the script when asked to.
    pub struct Explode {
        name: "test.explode",
        keys: [target],
        args: [message: &str],
        returns: i64,
        lua: "redis.call('SET', KEYS[1], 'touched') return redis.error_reply('BOOM ' .. ARGV[1])",
    }
}

/// The messages of an error and of every `source()` below it, as
/// `anyhow`'s `{:#}` prints them.
fn chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        out.push(e.to_string());
        next = e.source();
    }
    out
}

/// Each message of the chain appears once: no level repeats a level below.
fn assert_printed_once(err: &Error) -> String {
    let levels = chain(err);
    for (i, upper) in levels.iter().enumerate() {
        for lower in &levels[i + 1..] {
            assert!(
                !upper.contains(lower.as_str()),
                "`{lower}` is printed twice in the chain {levels:?}"
            );
        }
    }
    levels.join(": ")
}

/// A key of another type: the server's `WRONGTYPE`, naming the key and the
/// script that met it.
fn wrongtype_names_key_and_operation(r: &mut Runner, ns: &Namespace) {
    let key = format!("{ns}:{{acct}}:7");
    let () = r.cmd("SET", &key).arg("a string").go();
    let err = r.run(Account::load(&7).namespace(ns)).unwrap_err();
    let shown = assert_printed_once(&err);
    assert_eq!(err.kind(), ErrorKind::Server, "{shown}");
    assert_eq!(err.server_code(), Some("WRONGTYPE"), "{shown}");
    assert!(shown.contains(&key), "the key is named: {shown}");
    assert!(!err.is_retryable(), "{shown}");
    match &err {
        Error::Server {
            operation, keys, ..
        } => {
            assert!(!operation.is_empty(), "{shown}");
            assert!(shown.contains(operation.as_str()), "{shown}");
            assert_eq!(keys, std::slice::from_ref(&key));
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    // A plain command names itself.
    let err = r
        .run(redis_state::op::command::<i64>("INCR", &key))
        .unwrap_err();
    let shown = assert_printed_once(&err);
    assert!(
        shown.starts_with(&format!("INCR on `{key}` failed: ")),
        "{shown}"
    );
}

/// An error raised inside a script: the script's name and its key.
fn script_error_names_script_and_key(r: &mut Runner, ns: &Namespace) {
    let key = format!("{ns}:target");
    let err = r.run(Explode::new(&key, "now")).unwrap_err();
    let shown = assert_printed_once(&err);
    eprintln!("{shown}");
    assert_eq!(err.kind(), ErrorKind::Server, "{shown}");
    assert!(shown.contains("test.explode"), "{shown}");
    assert!(shown.contains(&key), "{shown}");
    assert!(shown.contains("BOOM now"), "{shown}");
    assert_eq!(err.keys(), [key.as_str()]);
}

/// In a batch, the error names the command that failed, not its neighbours.
fn batch_error_names_the_failing_command(r: &mut Runner, ns: &Namespace) {
    let good = format!("{ns}:{{b}}:good");
    let bad = format!("{ns}:{{b}}:bad");
    let () = r.cmd("RPUSH", &bad).arg("x").go();
    let result = r.run(redis_state::batch((
        redis_state::op::command::<i64>("INCR", &good).settled(),
        redis_state::op::command::<i64>("INCR", &bad).settled(),
    )));
    let err = match result {
        Ok((first, second)) => {
            assert_eq!(first.unwrap(), 1);
            second.unwrap_err()
        }
        // The blocking Cluster client of redis-rs fails a pipeline as a
        // whole (see the exec module); the error still names the command.
        Err(e) if matches!(r, Runner::SyncCluster(_)) => e,
        Err(e) => panic!("{e}"),
    };
    eprintln!("{}", assert_printed_once(&err));
    let shown = assert_printed_once(&err);
    assert_eq!(err.keys(), [bad.as_str()], "{shown}");
    assert!(!shown.contains(&good), "{shown}");
}

matrix!(
    wrongtype_names_key_and_operation,
    script_error_names_script_and_key,
    batch_error_names_the_failing_command,
);

/// A user's own error inside an operation prints once.
#[test]
fn user_errors_print_once() {
    #[derive(Debug)]
    struct Closed(std::io::Error);
    impl std::fmt::Display for Closed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the ledger is closed")
        }
    }
    impl std::error::Error for Closed {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let err = Error::user(Closed(std::io::Error::other("disk gone")));
    let shown = assert_printed_once(&err);
    assert_eq!(shown, "the ledger is closed: disk gone");
    assert_eq!(err.kind(), ErrorKind::User);
    assert!(!err.is_retryable());
}

/// Creates (on every node) a user allowed everything but `SCAN`.
fn user_without_scan(servers: &[&RedisServer]) -> (&'static str, &'static str) {
    let (user, pass) = ("noscan", "noscan-pass");
    for s in servers {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER")
            .arg(user)
            .arg("reset")
            .arg("on")
            .arg(format!(">{pass}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .arg("-scan");
        let () = s.query(&cmd).expect("ACL SETUSER");
    }
    (user, pass)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The runner of a user without `SCAN` on `topology`.
fn runner_without_scan(topology: Topology, asynchronous: bool) -> Runner {
    match topology {
        Topology::Standalone => {
            let server = shared_server();
            let (user, pass) = user_without_scan(&[server]);
            let client = redis::Client::open(format!(
                "redis://{user}:{pass}@{}:{}/",
                server.host(),
                server.port()
            ))
            .unwrap();
            if asynchronous {
                let rt = runtime();
                let con = rt
                    .block_on(client.get_multiplexed_async_connection())
                    .unwrap();
                Runner::Async(rt, con)
            } else {
                Runner::Sync(client.get_connection().unwrap())
            }
        }
        Topology::Cluster => {
            let cluster = shared_cluster();
            let nodes: Vec<&RedisServer> = cluster.nodes().iter().collect();
            let (user, pass) = user_without_scan(&nodes);
            let client = redis::cluster::ClusterClientBuilder::new(
                cluster.primaries().iter().map(|s| s.url()),
            )
            .username(user)
            .password(pass)
            .build()
            .unwrap();
            if asynchronous {
                let rt = runtime();
                let con = rt.block_on(client.get_async_connection()).unwrap();
                Runner::AsyncCluster(rt, con)
            } else {
                Runner::SyncCluster(client.get_connection().unwrap())
            }
        }
    }
}

/// A user without `SCAN` permission gets the server's `NOPERM`, naming
/// `SCAN`, not a reply the library failed to understand.
fn scan_refused(topology: Topology, asynchronous: bool) {
    let ns = common::namespace("noperm");
    let mut r = runner_without_scan(topology, asynchronous);
    let pattern = KeyPattern::new().lit(ns.as_str()).lit(":").any();
    let err = match &mut r {
        Runner::Sync(con) => invalidate_pattern(con, &pattern),
        Runner::SyncCluster(con) => invalidate_pattern(con, &pattern),
        Runner::Async(rt, con) => rt.block_on(invalidate_pattern_async(con, &pattern)),
        Runner::AsyncCluster(rt, con) => rt.block_on(invalidate_pattern_async(con, &pattern)),
    }
    .unwrap_err();
    let shown = assert_printed_once(&err);
    eprintln!("{shown}");
    assert_eq!(err.kind(), ErrorKind::Server, "{shown} ({err:?})");
    assert_eq!(err.server_code(), Some("NOPERM"), "{shown}");
    assert!(shown.contains("SCAN"), "{shown}");
    assert!(!err.is_retryable(), "{shown}");
}

#[test]
fn scan_refused_standalone_sync() {
    scan_refused(Topology::Standalone, false);
}

#[test]
fn scan_refused_standalone_async() {
    scan_refused(Topology::Standalone, true);
}

#[test]
fn scan_refused_cluster_sync() {
    scan_refused(Topology::Cluster, false);
}

#[test]
fn scan_refused_cluster_async() {
    scan_refused(Topology::Cluster, true);
}

/// An async `save_many` whose reply does not come within the response
/// timeout (writes paused on the server) fails with `NoReply`, which says
/// that the writes may have been applied; and they are, once the pause
/// ends.
#[test]
fn a_save_without_reply_may_have_been_applied() {
    let server = RedisServer::start().expect("redis-server");
    let ns = common::namespace("no_reply");
    let rt = runtime();
    rt.block_on(async {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_millis(200)));
        let mut con = server
            .client()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap();
        let accounts: Vec<Account> = (1..=3)
            .map(|id| Account {
                id,
                name: format!("a{id}"),
            })
            .collect();
        // Writes wait on the server for 2 s; the client waits 200 ms.
        let () = server
            .query(redis::cmd("CLIENT").arg("PAUSE").arg(2000).arg("WRITE"))
            .unwrap();
        let err = Account::save_many(&accounts)
            .namespace(&ns)
            .run_async(&mut con)
            .await
            .unwrap_err();
        let shown = assert_printed_once(&err);
        eprintln!("{shown}");
        assert!(err.may_have_applied(), "{shown}");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{shown}");
        assert!(!err.is_retryable(), "{shown}");
        assert!(shown.contains("may have been"), "{shown}");
        let () = server.query(redis::cmd("CLIENT").arg("UNPAUSE")).unwrap();
        // They were applied anyway.
        let mut fresh = server.async_connection().await.unwrap();
        let loaded = Account::load_many([1, 2, 3].iter())
            .namespace(&ns)
            .run_async(&mut fresh)
            .await
            .unwrap();
        assert_eq!(loaded.into_iter().flatten().count(), 3);
    });
}
