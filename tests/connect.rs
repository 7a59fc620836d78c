//! Configured connections (`redis_state::connect`): every operation runs on
//! them, they recover from `CLIENT KILL`, time out with a typed error that
//! says whether a write may have been applied, open their circuit breaker,
//! follow Sentinel failovers, read from replicas and wait for replicas.

use std::time::Duration;

use redis_state::connect::{ConnectionOptions, ReadFrom, durable};
use redis_state::prelude::*;
use redis_state::testing::{RedisCluster, RedisSentinel, RedisServer, ReplicaSet, unique_prefix};
use redis_state::{Error, op};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{conn-item}}:{id}")]
struct Item {
    #[redis(id)]
    id: String,
    #[redis(index)]
    colour: String,
    n: i64,
}

fn item(id: &str, n: i64) -> Item {
    Item {
        id: id.to_owned(),
        colour: "red".to_owned(),
        n,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn fast() -> ConnectionOptions {
    ConnectionOptions::new()
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
}

#[test]
fn library_operations_run_on_every_configured_connection() {
    let server = RedisServer::start().unwrap();
    let cluster = RedisCluster::start(3).unwrap();
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let opts = ConnectionOptions::new();

    // Blocking, standalone and Cluster.
    for mut con in [
        opts.connect(server.url().as_str()).unwrap(),
        opts.connect_cluster(&urls).unwrap(),
    ] {
        let id = unique_prefix("sync");
        item(&id, 1).save().run(&mut con).unwrap();
        assert_eq!(Item::load(&id).run(&mut con).unwrap(), Some(item(&id, 1)));
        let found = Item::find_by_colour("red").run(&mut con).unwrap();
        assert!(found.iter().any(|i| i.id == id));
    }
    // Async, standalone and Cluster, shared by tasks.
    runtime().block_on(async {
        for con in [
            opts.connect_async(server.url().as_str()).await.unwrap(),
            opts.connect_cluster_async(&urls).await.unwrap(),
        ] {
            let tasks: Vec<_> = (0..8)
                .map(|t| {
                    let mut con = con.clone();
                    tokio::spawn(async move {
                        let id = unique_prefix(&format!("async{t}"));
                        item(&id, t).save().run_async(&mut con).await.unwrap();
                        Item::load(&id).run_async(&mut con).await.unwrap()
                    })
                })
                .collect();
            for (t, task) in tasks.into_iter().enumerate() {
                assert_eq!(task.await.unwrap().map(|i| i.n), Some(t as i64));
            }
        }
    });
}

#[test]
fn a_configured_connection_recovers_after_client_kill() {
    let server = RedisServer::start().unwrap();
    runtime().block_on(async {
        let mut con = fast().connect_async(server.url().as_str()).await.unwrap();
        con.health_check_async().await.unwrap();
        let key = unique_prefix("kill");
        op::command::<i64>("INCR", &key)
            .run_async(&mut con)
            .await
            .unwrap();
        server
            .query::<i64>(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"))
            .unwrap();
        // The kill may fail the next write (it may have been applied); the
        // connection reconnects and the following ones succeed.
        let mut ok = 0;
        for _ in 0..20 {
            match op::command::<i64>("INCR", &key).run_async(&mut con).await {
                Ok(_) => ok += 1,
                Err(Error::Timeout { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert!(ok >= 19, "{ok} of 20 writes after CLIENT KILL");
    });
}

#[test]
fn a_timeout_says_whether_the_write_may_have_been_applied() {
    let server = RedisServer::builder()
        .config("enable-debug-command", "yes")
        .start()
        .unwrap();
    let opts = fast().retries(1).no_circuit_breaker();
    let key = unique_prefix("slow");
    let sleep = |secs: f64| {
        let client = server.client();
        std::thread::spawn(move || {
            let mut c = client.get_connection().unwrap();
            redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(secs)
                .query::<()>(&mut c)
                .unwrap();
        })
    };
    runtime().block_on(async {
        let mut con = opts.connect_async(server.url().as_str()).await.unwrap();
        let sleeper = sleep(2.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let write = op::command::<i64>("INCR", &key).run_async(&mut con).await;
        assert!(
            matches!(
                write,
                Err(Error::Timeout {
                    may_have_applied: true,
                    ..
                })
            ),
            "{write:?}"
        );
        let read = op::command::<Option<i64>>("GET", &key)
            .run_async(&mut con)
            .await;
        assert!(
            matches!(
                read,
                Err(Error::Timeout {
                    may_have_applied: false,
                    ..
                })
            ),
            "{read:?}"
        );
        sleeper.join().unwrap();
        // The write was applied after all, once the server woke up.
        let n = op::command::<Option<i64>>("GET", &key)
            .run_async(&mut con)
            .await
            .unwrap();
        assert_eq!(n, Some(1));
    });
    // Blocking: the same error.
    let mut con = opts.connect(server.url().as_str()).unwrap();
    let sleeper = sleep(2.0);
    std::thread::sleep(Duration::from_millis(100));
    let write = op::command::<i64>("INCR", &key).run(&mut con);
    assert!(
        matches!(
            write,
            Err(Error::Timeout {
                may_have_applied: true,
                ..
            })
        ),
        "{write:?}"
    );
    sleeper.join().unwrap();
    assert_eq!(op::command::<i64>("INCR", &key).run(&mut con).unwrap(), 3);
}

#[test]
fn the_circuit_breaker_opens_and_a_probe_closes_it() {
    let mut server = RedisServer::start().unwrap();
    let opts = fast()
        .retries(0)
        .circuit_breaker(3, Duration::from_millis(300));
    let key = unique_prefix("breaker");
    let mut con = opts.connect(server.url().as_str()).unwrap();
    op::command::<i64>("INCR", &key).run(&mut con).unwrap();
    server.stop();
    for _ in 0..3 {
        let e = op::command::<i64>("INCR", &key).run(&mut con).unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
    }
    let e = op::command::<i64>("INCR", &key).run(&mut con).unwrap_err();
    assert!(matches!(e, Error::CircuitOpen { failures: 3, .. }), "{e}");
    let e = con.health_check().unwrap_err();
    assert!(matches!(e, Error::CircuitOpen { .. }), "{e}");
    server.restart().unwrap();
    std::thread::sleep(Duration::from_millis(350));
    // The probe (a health check) goes through and closes the breaker.
    con.health_check().unwrap();
    assert_eq!(op::command::<i64>("INCR", &key).run(&mut con).unwrap(), 1);
    assert_eq!(op::command::<i64>("INCR", &key).run(&mut con).unwrap(), 2);
}

#[test]
fn durable_writes_report_acknowledgements_and_shortfalls() {
    let set = ReplicaSet::start(2).unwrap();
    let url = set.nodes()[0].url();
    runtime().block_on(async {
        let mut con = ConnectionOptions::new()
            .connect_async(url.as_str())
            .await
            .unwrap();
        let id = unique_prefix("durable");
        let (_, acked) = durable(item(&id, 1).save(), 2, Duration::from_secs(2))
            .run_async(&mut con)
            .await
            .unwrap();
        assert_eq!(acked, 2);
        let e = durable(item(&id, 2).save(), 3, Duration::from_millis(100))
            .run_async(&mut con)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::DurabilityShortfall {
                    wanted: 3,
                    acked: 2,
                    ..
                }
            ),
            "{e}"
        );
        // The write itself was applied.
        assert_eq!(
            Item::load(&id)
                .run_async(&mut con)
                .await
                .unwrap()
                .map(|i| i.n),
            Some(2)
        );
    });
}

fn get_calls(server: &RedisServer) -> u64 {
    let info: String = server
        .query(redis::cmd("INFO").arg("commandstats"))
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_hmget:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn sentinel_connection_follows_failover_and_reads_from_replicas() {
    let sentinel = RedisSentinel::start().unwrap();
    let urls = sentinel.sentinel_urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let opts = fast()
        .retries(4)
        .backoff(Duration::from_millis(100), Duration::from_millis(500));
    runtime().block_on(async {
        let mut con = opts
            .connect_sentinel_async(&urls, sentinel.service_name())
            .await
            .unwrap();
        let id = unique_prefix("sentinel");
        durable(item(&id, 1).save(), 2, Duration::from_secs(2))
            .run_async(&mut con)
            .await
            .unwrap();

        // Reads on replicas, per handle.
        let before: u64 = sentinel
            .data()
            .replicas()
            .iter()
            .map(|r| get_calls(r))
            .sum();
        let mut reader = con.with_read_from(ReadFrom::Replica);
        for _ in 0..4 {
            let got = Item::load(&id).run_async(&mut reader).await.unwrap();
            assert_eq!(got.map(|i| i.n), Some(1));
        }
        let after: u64 = sentinel
            .data()
            .replicas()
            .iter()
            .map(|r| get_calls(r))
            .sum();
        assert_eq!(after - before, 4, "the 4 loads went to replicas");

        // Read-your-writes: a connection that wrote within the window reads
        // from the primary.
        let replica_calls =
            || -> u64 { sentinel.data().replicas().into_iter().map(get_calls).sum() };
        let mut own = con.with_read_from(ReadFrom::ReplicaAfterWrites {
            window: Duration::from_secs(3600),
        });
        Item::load(&id).run_async(&mut own).await.unwrap();
        assert_eq!(
            replica_calls(),
            after,
            "the load after a write went to the primary"
        );
        let mut later = con.with_read_from(ReadFrom::ReplicaAfterWrites {
            window: Duration::ZERO,
        });
        Item::load(&id).run_async(&mut later).await.unwrap();
        assert_eq!(
            replica_calls(),
            after + 1,
            "past the window, reads go to replicas"
        );

        // A failover: the connection follows it.
        let old = sentinel.failover().unwrap();
        let new = tokio::task::block_in_place(|| {
            sentinel
                .wait_for_promotion(old, Duration::from_secs(30))
                .unwrap()
        });
        // A demoted primary accepts writes until Sentinel reconfigures it,
        // and loses them then: a durable write notices (its replicas left,
        // so its WAIT falls short) and is sent again.
        let mut saved = false;
        for _ in 0..50 {
            match durable(item(&id, 2).save(), 1, Duration::from_millis(500))
                .run_async(&mut con)
                .await
            {
                Ok(_) => {
                    saved = true;
                    break;
                }
                Err(e) => {
                    assert!(
                        e.is_connection_error() || matches!(e, Error::DurabilityShortfall { .. }),
                        "{e}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        assert!(saved);
        let primary = sentinel
            .data()
            .nodes()
            .iter()
            .find(|n| n.port() == new)
            .unwrap();
        let n: Option<String> = primary
            .query(
                redis::cmd("HGET")
                    .arg(format!("{{conn-item}}:{id}"))
                    .arg("n"),
            )
            .unwrap();
        assert_eq!(n.as_deref(), Some("2"));
    });

    // The blocking Sentinel connection: the same loop, on a runtime of its own.
    let mut blocking = opts
        .connect_sentinel(&urls, sentinel.service_name())
        .unwrap();
    let id = unique_prefix("sentinel-blocking");
    let (_, acked) = durable(item(&id, 3).save(), 1, Duration::from_millis(200))
        .run(&mut blocking)
        .unwrap();
    assert!(acked >= 1);
    assert_eq!(
        Item::load(&id).run(&mut blocking).unwrap().map(|i| i.n),
        Some(3)
    );
    // Refused inside a runtime, with an error rather than a panic.
    let e = runtime().block_on(async { Item::load(&id).run(&mut blocking) });
    assert!(matches!(e, Err(Error::InvalidConfig { .. })), "{e:?}");
}

#[test]
fn no_secret_in_errors_or_debug_output() {
    let mut server = RedisServer::start().unwrap();
    server
        .query::<()>(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("requirepass")
                .arg("s3cret-pass-4711"),
        )
        .unwrap();
    let port = server.port();
    let good = format!("redis://:s3cret-pass-4711@127.0.0.1:{port}/");
    let bad = format!("redis://:wr0ng-pass-0815@127.0.0.1:{port}/");
    let secrets = ["s3cret-pass-4711", "wr0ng-pass-0815"];
    let mut rendered: Vec<String> = Vec::new();
    let opts = fast()
        .retries(0)
        .circuit_breaker(1, Duration::from_secs(60));
    runtime().block_on(async {
        let e = opts.connect_async(bad.as_str()).await.unwrap_err();
        rendered.extend([e.to_string(), format!("{e:?}")]);
        let e = opts.connect(bad.as_str()).unwrap_err();
        rendered.extend([e.to_string(), format!("{e:?}")]);
        let e = opts
            .connect_sentinel_async(&[bad.as_str()], "mymaster")
            .await
            .unwrap_err();
        rendered.extend([e.to_string(), format!("{e:?}")]);

        let mut con = opts.connect_async(good.as_str()).await.unwrap();
        let mut blocking = opts.connect(good.as_str()).unwrap();
        rendered.extend([
            format!("{con:?}"),
            format!("{blocking:?}"),
            format!("{opts:?}"),
        ]);
        server.stop();
        for e in [
            op::command::<i64>("INCR", "k")
                .run_async(&mut con)
                .await
                .unwrap_err(),
            op::command::<i64>("INCR", "k")
                .run_async(&mut con)
                .await
                .unwrap_err(),
            op::command::<i64>("INCR", "k")
                .run(&mut blocking)
                .unwrap_err(),
            op::command::<i64>("INCR", "k")
                .run(&mut blocking)
                .unwrap_err(),
        ] {
            rendered.extend([e.to_string(), format!("{e:?}")]);
        }
    });
    assert!(rendered.len() >= 17);
    for text in &rendered {
        for secret in secrets {
            assert!(!text.contains(secret), "a secret in: {text}");
        }
    }
}

/// The ACL categories docs/design.md lists for the library's data
/// operations: a user holding only these runs hash models (with an index),
/// locks, values, counters and durable writes through a configured
/// connection; `@dangerous` stays forbidden.
const APP_ACL: &[&str] = &[
    "on",
    ">app-pass-1234",
    "~*",
    "&*",
    "+@read",
    "+@write",
    "+@scripting",
    "+@connection",
    "+@transaction",
    "+@pubsub",
    "+time",
    "-@dangerous",
];

#[test]
fn a_user_with_the_documented_acl_categories_runs_the_operations() {
    use redis_state::lock::Lock;
    use redis_state::value::{Counter, StringValue};

    let server = RedisServer::start().unwrap();
    let mut setuser = redis::cmd("ACL");
    setuser.arg("SETUSER").arg("app").arg(APP_ACL);
    server.query::<()>(&setuser).unwrap();
    let url = format!("redis://app:app-pass-1234@127.0.0.1:{}/", server.port());
    let opts = ConnectionOptions::new();
    let mut con = opts.connect(url.as_str()).unwrap();
    let id = unique_prefix("acl");
    item(&id, 1).save().run(&mut con).unwrap();
    assert_eq!(Item::load(&id).run(&mut con).unwrap(), Some(item(&id, 1)));
    assert!(
        !Item::find_by_colour("red")
            .run(&mut con)
            .unwrap()
            .is_empty()
    );
    let lock = Lock::new(id.as_str());
    let guard = lock.try_acquire().run(&mut con).unwrap().unwrap();
    assert!(guard.release().run(&mut con).unwrap());
    let v = StringValue::<String>::new(format!("{id}:v"));
    v.set(&"x".to_owned()).run(&mut con).unwrap();
    assert_eq!(v.get().run(&mut con).unwrap().as_deref(), Some("x"));
    assert_eq!(
        Counter::<i64>::new(format!("{id}:c"))
            .incr(2)
            .run(&mut con)
            .unwrap(),
        2
    );
    let (_, acked) = durable(item(&id, 2).save(), 0, Duration::from_millis(10))
        .run(&mut con)
        .unwrap();
    assert_eq!(acked, 0);
    Item::delete(&id).run(&mut con).unwrap();
    // What the user may not do.
    let e = op::command::<String>("CONFIG", "GET")
        .arg("maxmemory")
        .run(&mut con);
    assert!(e.is_err(), "{e:?}");
}

#[test]
fn tls_connections_run_the_operations() {
    let server = RedisServer::builder().tls().start().unwrap();
    let url = server.tls_url().unwrap();
    let opts = fast().tls_root_cert(server.ca_cert().unwrap());
    let id = unique_prefix("tls");
    let mut con = opts.connect(url.as_str()).unwrap();
    item(&id, 1).save().run(&mut con).unwrap();
    assert_eq!(Item::load(&id).run(&mut con).unwrap(), Some(item(&id, 1)));
    assert!(!format!("{opts:?}").contains("BEGIN CERTIFICATE"));
    runtime().block_on(async {
        let mut con = opts.connect_async(url.as_str()).await.unwrap();
        item(&id, 2).save().run_async(&mut con).await.unwrap();
        let got = Item::load(&id).run_async(&mut con).await.unwrap();
        assert_eq!(got.map(|i| i.n), Some(2));
        // Without the test CA, the server's certificate is not trusted.
        assert!(fast().connect_async(url.as_str()).await.is_err());
    });
}
