//! Pools configured from `ConnectionOptions` (deadpool-redis, bb8-redis,
//! r2d2, one server and Cluster): every operation runs on them, a
//! connection broken by `CLIENT KILL` or a restart is replaced at checkout,
//! a stopped server gives a bounded typed error and opens the circuit
//! breaker, an exhausted pool times out instead of hanging, and TLS goes
//! through.

use std::time::{Duration, Instant};

use redis_state::connect::ConnectionOptions;
use redis_state::exec::{AsyncExecutor, SyncExecutor};
use redis_state::lock::Lock;
use redis_state::prelude::*;
use redis_state::testing::{RedisCluster, RedisServer, unique_prefix};
use redis_state::value::Counter;
use redis_state::{Error, op};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{pool-item}}:{id}")]
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
        colour: "green".to_owned(),
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
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .retries(2)
        .backoff(Duration::from_millis(20), Duration::from_millis(100))
}

fn run_operations<C: SyncExecutor>(con: &mut C, label: &str) {
    let id = unique_prefix(label);
    item(&id, 1).save().run(con).unwrap();
    assert_eq!(Item::load(&id).run(con).unwrap(), Some(item(&id, 1)));
    let found = Item::find_by_colour("green").run(con).unwrap();
    assert!(found.iter().any(|i| i.id == id));
    let guard = Lock::new(format!("{id}:lock"))
        .try_acquire()
        .run(con)
        .unwrap()
        .unwrap();
    assert!(guard.release().run(con).unwrap());
    let counter = Counter::<i64>::new(format!("{id}:count"));
    assert_eq!(counter.incr(2).run(con).unwrap(), 2);
}

async fn run_operations_async<C: AsyncExecutor>(con: &mut C, label: &str) {
    let id = unique_prefix(label);
    item(&id, 1).save().run_async(con).await.unwrap();
    assert_eq!(
        Item::load(&id).run_async(con).await.unwrap(),
        Some(item(&id, 1))
    );
    let found = Item::find_by_colour("green").run_async(con).await.unwrap();
    assert!(found.iter().any(|i| i.id == id));
    let guard = Lock::new(format!("{id}:lock"))
        .try_acquire()
        .run_async(con)
        .await
        .unwrap()
        .unwrap();
    assert!(guard.release().run_async(con).await.unwrap());
    let counter = Counter::<i64>::new(format!("{id}:count"));
    assert_eq!(counter.incr(2).run_async(con).await.unwrap(), 2);
}

/// `CLIENT KILL` of every other normal client of `server`.
fn kill_clients(server: &RedisServer) -> i64 {
    server
        .query(
            redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .arg("SKIPME")
                .arg("yes"),
        )
        .unwrap()
}

#[test]
fn every_pool_runs_the_operations() {
    let server = RedisServer::start().unwrap();
    let cluster = RedisCluster::start(3).unwrap();
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let opts = fast();

    // Blocking: r2d2 over one server and over the Cluster, shared by threads.
    let single = opts.r2d2(server.url().as_str(), 4).unwrap();
    let clustered = opts.r2d2_cluster(&urls, 4).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let mut single = single.clone();
            let mut clustered = clustered.clone();
            s.spawn(move || {
                run_operations(&mut single, &format!("r2d2-{t}"));
                run_operations(&mut clustered, &format!("r2d2-cluster-{t}"));
            });
        }
    });
    assert!(single.pool().state().connections <= 4);
    let mut single = single;
    assert!(single.health_check().unwrap() < Duration::from_secs(1));

    // Async: deadpool and bb8, shared by tasks.
    runtime().block_on(async {
        let deadpool = opts.deadpool(server.url().as_str(), 4).unwrap();
        let bb8 = opts.bb8(server.url().as_str(), 4).unwrap();
        let mut tasks = Vec::new();
        for t in 0..4 {
            let mut deadpool = deadpool.clone();
            let mut bb8 = bb8.clone();
            tasks.push(tokio::spawn(async move {
                run_operations_async(&mut deadpool, &format!("deadpool-{t}")).await;
                run_operations_async(&mut bb8, &format!("bb8-{t}")).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert!(deadpool.pool().status().size <= 4);
        let mut deadpool = deadpool;
        deadpool.health_check_async().await.unwrap();
    });
    // A size of 0 is refused with a typed error.
    assert!(matches!(
        opts.r2d2(server.url().as_str(), 0),
        Err(Error::InvalidConfig { .. })
    ));
}

#[test]
fn a_broken_pooled_connection_is_replaced_at_checkout() {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    // No retries: the health check on checkout alone must save the
    // operation.
    let opts = fast().retries(0);
    let mut r2d2 = opts.r2d2(url.as_str(), 2).unwrap();
    run_operations(&mut r2d2, "r2d2-kill");
    runtime().block_on(async {
        let mut deadpool = opts.deadpool(url.as_str(), 2).unwrap();
        let mut bb8 = opts.bb8(url.as_str(), 2).unwrap();
        run_operations_async(&mut deadpool, "deadpool-kill").await;
        run_operations_async(&mut bb8, "bb8-kill").await;
        assert!(kill_clients(&server) >= 3);
        run_operations_async(&mut deadpool, "deadpool-killed").await;
        run_operations_async(&mut bb8, "bb8-killed").await;
        run_operations(&mut r2d2, "r2d2-killed");

        // A restart: every pooled connection is broken.
        server.restart().unwrap();
        run_operations_async(&mut deadpool, "deadpool-restarted").await;
        run_operations_async(&mut bb8, "bb8-restarted").await;
    });
    run_operations(&mut r2d2, "r2d2-restarted");
}

#[test]
fn a_stopped_server_gives_bounded_errors_and_opens_the_breaker() {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    let open_for = Duration::from_secs(2);
    let opts = fast().circuit_breaker(2, open_for);
    let bound = opts.worst_case() + Duration::from_secs(2);
    let mut r2d2 = opts.r2d2(url.as_str(), 2).unwrap();
    run_operations(&mut r2d2, "r2d2-stop");
    let rt = runtime();
    let (mut deadpool, mut bb8) = rt.block_on(async {
        let mut deadpool = opts.deadpool(url.as_str(), 2).unwrap();
        let mut bb8 = opts.bb8(url.as_str(), 2).unwrap();
        run_operations_async(&mut deadpool, "deadpool-stop").await;
        run_operations_async(&mut bb8, "bb8-stop").await;
        (deadpool, bb8)
    });
    server.stop();

    let incr = || op::command::<i64>("INCR", "{pool}n");
    // Two failed operations in a row open each pool's breaker: the next
    // one fails at once without touching the network.
    for _ in 0..2 {
        let started = Instant::now();
        let e = incr().run(&mut r2d2).unwrap_err();
        assert!(started.elapsed() < bound, "{:?}", started.elapsed());
        assert!(e.is_connection_error(), "{e}");
    }
    assert!(matches!(
        incr().run(&mut r2d2),
        Err(Error::CircuitOpen { .. })
    ));
    rt.block_on(async {
        for _ in 0..2 {
            let started = Instant::now();
            let e = incr().run_async(&mut deadpool).await.unwrap_err();
            assert!(started.elapsed() < bound, "{:?}", started.elapsed());
            assert!(e.is_connection_error(), "{e}");
        }
        assert!(matches!(
            incr().run_async(&mut deadpool).await,
            Err(Error::CircuitOpen { .. })
        ));
        for _ in 0..2 {
            let started = Instant::now();
            let e = incr().run_async(&mut bb8).await.unwrap_err();
            assert!(started.elapsed() < bound, "{:?}", started.elapsed());
            assert!(e.is_connection_error(), "{e}");
        }
        assert!(matches!(
            incr().run_async(&mut bb8).await,
            Err(Error::CircuitOpen { .. })
        ));
    });

    // The server is back; after `open_for` a probe goes through and closes
    // the breaker.
    server.restart().unwrap();
    std::thread::sleep(open_for + Duration::from_millis(50));
    assert_eq!(incr().run(&mut r2d2).unwrap(), 1);
    rt.block_on(async {
        assert_eq!(incr().run_async(&mut deadpool).await.unwrap(), 2);
        assert_eq!(incr().run_async(&mut bb8).await.unwrap(), 3);
    });
    run_operations(&mut r2d2, "r2d2-back");
}

#[test]
fn an_exhausted_pool_times_out_instead_of_hanging() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let opts = fast().retries(1).no_circuit_breaker();
    let bound = opts.worst_case() + Duration::from_secs(2);

    let mut r2d2 = opts.r2d2(url.as_str(), 1).unwrap();
    let held = r2d2.pool().get().unwrap();
    let started = Instant::now();
    let e = op::command::<i64>("INCR", "{pool}x")
        .run(&mut r2d2)
        .unwrap_err();
    assert!(started.elapsed() < bound);
    assert!(
        matches!(
            e,
            Error::Timeout {
                may_have_applied: false,
                ..
            }
        ),
        "{e:?}"
    );
    drop(held);
    assert_eq!(
        op::command::<i64>("INCR", "{pool}x")
            .run(&mut r2d2)
            .unwrap(),
        1
    );

    runtime().block_on(async {
        let mut deadpool = opts.deadpool(url.as_str(), 1).unwrap();
        let held = deadpool.pool().get().await.unwrap();
        let started = Instant::now();
        let e = op::command::<i64>("INCR", "{pool}x")
            .run_async(&mut deadpool)
            .await
            .unwrap_err();
        assert!(started.elapsed() < bound);
        assert!(
            matches!(
                e,
                Error::Timeout {
                    may_have_applied: false,
                    ..
                }
            ),
            "{e:?}"
        );
        drop(held);
        assert_eq!(
            op::command::<i64>("INCR", "{pool}x")
                .run_async(&mut deadpool)
                .await
                .unwrap(),
            2
        );

        let mut bb8 = opts.bb8(url.as_str(), 1).unwrap();
        let pool = bb8.pool().clone();
        let held = pool.get().await.unwrap();
        let e = op::command::<i64>("INCR", "{pool}x")
            .run_async(&mut bb8)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Timeout {
                    may_have_applied: false,
                    ..
                }
            ),
            "{e:?}"
        );
        drop(held);
        assert_eq!(
            op::command::<i64>("INCR", "{pool}x")
                .run_async(&mut bb8)
                .await
                .unwrap(),
            3
        );
    });
}

#[test]
fn pools_connect_over_tls_and_show_no_secret() {
    let server = RedisServer::builder().tls().start().unwrap();
    server
        .query::<()>(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("requirepass")
                .arg("pool-s3cret-77"),
        )
        .unwrap();
    let url = format!(
        "rediss://:pool-s3cret-77@127.0.0.1:{}/",
        server.tls_port().unwrap()
    );
    let opts = fast().tls_root_cert(server.ca_cert().unwrap());
    let mut r2d2 = opts.r2d2(url.as_str(), 2).unwrap();
    run_operations(&mut r2d2, "r2d2-tls");
    let mut rendered = vec![format!("{r2d2:?}"), format!("{:?}", r2d2.pool())];
    runtime().block_on(async {
        let mut deadpool = opts.deadpool(url.as_str(), 2).unwrap();
        let mut bb8 = opts.bb8(url.as_str(), 2).unwrap();
        run_operations_async(&mut deadpool, "deadpool-tls").await;
        run_operations_async(&mut bb8, "bb8-tls").await;
        rendered.extend([format!("{deadpool:?}"), format!("{bb8:?}")]);
        // A wrong password: a typed error without it.
        let bad = url.replace("pool-s3cret-77", "pool-wr0ng-88");
        let mut wrong = opts.deadpool(bad.as_str(), 1).unwrap();
        let e = op::command::<i64>("INCR", "{pool}t")
            .run_async(&mut wrong)
            .await
            .unwrap_err();
        rendered.extend([e.to_string(), format!("{e:?}"), format!("{wrong:?}")]);
    });
    let bad = url.replace("pool-s3cret-77", "pool-wr0ng-88");
    let mut wrong = opts.r2d2(bad.as_str(), 1).unwrap();
    let e = op::command::<i64>("INCR", "{pool}t")
        .run(&mut wrong)
        .unwrap_err();
    rendered.extend([e.to_string(), format!("{e:?}")]);
    for text in &rendered {
        for secret in ["pool-s3cret-77", "pool-wr0ng-88", "BEGIN CERTIFICATE"] {
            assert!(!text.contains(secret), "a secret in: {text}");
        }
    }
}
