//! Every connection and pool a user may already have, used as is (no
//! `&mut *conn`), against a real server and a real local Cluster: redis-rs'
//! `Connection`, `MultiplexedConnection`, `ConnectionManager`, both Cluster
//! clients, deadpool-redis (single server and Cluster), bb8-redis and r2d2
//! (single server and Cluster). Each runs a `save_many`, a `load`, a cache
//! `get_or_load`, a lock acquire and release, a board submit and page, and
//! (async) a watched lock. The matrix is printed with its results.

use std::time::Duration;

use redis_state::exec::{Shared, SyncExecutor};
use redis_state::lock::Lock;
use redis_state::prelude::*;
use redis_state::testing::{shared_cluster, shared_server, unique_prefix};
use serde::{Deserialize, Serialize};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "acct:{id}")]
struct Account {
    #[redis(id)]
    id: u64,
    name: String,
}

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "profile:{id}", ttl = "1m")]
struct Profile {
    id: u64,
    bio: String,
}

#[derive(Leaderboard, Debug, Clone)]
#[leaderboard(key = "{{arena:{game}}}")]
struct Score {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i64,
}

/// One row of the matrix: the connection and each check's outcome.
struct Row {
    connection: &'static str,
    checks: Vec<(&'static str, Result<(), String>)>,
}

fn accounts() -> Vec<Account> {
    // Ids spread over many Cluster slots: a pipeline sent to one node
    // would be refused with CROSSSLOT.
    (1..=20)
        .map(|id| Account {
            id,
            name: format!("n{id}"),
        })
        .collect()
}

fn scores() -> Vec<Score> {
    (1..=5)
        .map(|i| Score {
            game: "g".into(),
            player: format!("p{i}"),
            points: i * 10,
        })
        .collect()
}

fn check<T>(r: redis_state::Result<T>, ok: impl FnOnce(&T) -> bool) -> Result<(), String> {
    match r {
        Ok(v) if ok(&v) => Ok(()),
        Ok(_) => Err("wrong result".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn exercise_sync<C: SyncExecutor + Send + ?Sized>(connection: &'static str, con: &mut C) -> Row {
    let ns = Namespace::new(unique_prefix("matrix")).unwrap();
    let all = accounts();
    let mut checks = Vec::new();
    checks.push((
        "save_many",
        check(Account::save_many(&all).namespace(&ns).run(con), |_| true),
    ));
    checks.push((
        "load",
        check(Account::load(&7).namespace(&ns).run(con), |a| {
            a.as_ref().is_some_and(|a| a.name == "n7")
        }),
    ));
    let cache = Cache::<Profile>::new().namespace(&ns);
    checks.push((
        "cache get_or_load",
        check(
            cache.get_or_load(con, &3, || {
                Ok::<_, std::convert::Infallible>(Some(Profile {
                    id: 3,
                    bio: "hi".into(),
                }))
            }),
            |p| p.as_ref().is_some_and(|p| p.bio == "hi"),
        ),
    ));
    let lock = Lock::new("job").namespace(&ns).ttl(Duration::from_secs(5));
    checks.push((
        "lock acquire/release",
        match lock.acquire(con) {
            Ok(guard) => check(guard.release().run(con), |released| *released),
            Err(e) => Err(e.to_string()),
        },
    ));
    let board = Score::board("g").namespace(&ns);
    let submitted = scores()
        .iter()
        .map(|s| s.submit().namespace(&ns).run(con).map(|_| ()))
        .collect::<redis_state::Result<Vec<()>>>();
    checks.push((
        "board submit/page",
        match submitted {
            Ok(_) => check(board.page(1, 3).run(con), |page| page.len() == 3),
            Err(e) => Err(e.to_string()),
        },
    ));
    checks.push((
        "acquire_watched",
        Err("n/a: the blocking watched lock connects its own client".to_owned()),
    ));
    Row { connection, checks }
}

async fn exercise_async<C: Shared + Sync + ?Sized>(connection: &'static str, con: &mut C) -> Row {
    let ns = Namespace::new(unique_prefix("matrix")).unwrap();
    let all = accounts();
    let mut checks = Vec::new();
    checks.push((
        "save_many",
        check(
            Account::save_many(&all).namespace(&ns).run_async(con).await,
            |_| true,
        ),
    ));
    checks.push((
        "load",
        check(Account::load(&7).namespace(&ns).run_async(con).await, |a| {
            a.as_ref().is_some_and(|a| a.name == "n7")
        }),
    ));
    let cache = Cache::<Profile>::new().namespace(&ns);
    checks.push((
        "cache get_or_load",
        check(
            cache
                .get_or_load_async(con, &3, || async {
                    Ok::<_, std::convert::Infallible>(Some(Profile {
                        id: 3,
                        bio: "hi".into(),
                    }))
                })
                .await,
            |p| p.as_ref().is_some_and(|p| p.bio == "hi"),
        ),
    ));
    let lock = Lock::new("job").namespace(&ns).ttl(Duration::from_secs(5));
    let acquired = lock.acquire_async(con).await;
    checks.push((
        "lock acquire/release",
        match acquired {
            Ok(guard) => check(guard.release().run_async(con).await, |released| *released),
            Err(e) => Err(e.to_string()),
        },
    ));
    let board = Score::board("g").namespace(&ns);
    let mut submitted = Ok(());
    for s in scores() {
        if let Err(e) = s.submit().namespace(&ns).run_async(con).await {
            submitted = Err(e.to_string());
        }
    }
    checks.push((
        "board submit/page",
        match submitted {
            Ok(()) => check(board.page(1, 3).run_async(con).await, |page| {
                page.len() == 3
            }),
            Err(e) => Err(e),
        },
    ));
    let watched = Lock::new("watched")
        .namespace(&ns)
        .ttl(Duration::from_secs(5));
    let held = watched.acquire_watched_async(&*con).await;
    checks.push((
        "acquire_watched",
        match held {
            Ok(guard) => check(guard.release_async().await, |_| true),
            Err(e) => Err(e.to_string()),
        },
    ));
    Row { connection, checks }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn print(rows: &[Row]) {
    let names: Vec<&str> = rows[0].checks.iter().map(|(n, _)| *n).collect();
    println!();
    println!("| connection | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(names.len()));
    for row in rows {
        let cells: Vec<&str> = row
            .checks
            .iter()
            .map(|(n, r)| match r {
                Ok(()) => "ok",
                Err(_) if *n == "acquire_watched" && row.connection.contains("blocking") => "n/a",
                Err(_) => "FAILED",
            })
            .collect();
        println!("| {} | {} |", row.connection, cells.join(" | "));
    }
    println!();
}

#[test]
fn every_connection_and_pool_as_is() {
    let server = shared_server();
    let cluster = shared_cluster();
    let mut rows = Vec::new();

    // Blocking.
    let mut con = server.connection().unwrap();
    rows.push(exercise_sync("redis::Connection (blocking)", &mut con));
    let mut con = cluster.connection().unwrap();
    rows.push(exercise_sync(
        "cluster::ClusterConnection (blocking)",
        &mut con,
    ));
    let pool = r2d2::Pool::builder()
        .max_size(2)
        .build(server.client())
        .unwrap();
    let mut con = pool.get().unwrap();
    rows.push(exercise_sync("r2d2 Pool<Client> (blocking)", &mut con));
    let pool = r2d2::Pool::builder()
        .max_size(2)
        .build(cluster.client())
        .unwrap();
    let mut con = pool.get().unwrap();
    rows.push(exercise_sync(
        "r2d2 Pool<ClusterClient> (blocking)",
        &mut con,
    ));

    // Async.
    let rt = runtime();
    rt.block_on(async {
        let mut con = server.async_connection().await.unwrap();
        rows.push(exercise_async("aio::MultiplexedConnection", &mut con).await);
        let mut con = redis::aio::ConnectionManager::new(server.client())
            .await
            .unwrap();
        rows.push(exercise_async("aio::ConnectionManager", &mut con).await);
        let mut con = cluster.async_connection().await.unwrap();
        rows.push(exercise_async("cluster_async::ClusterConnection", &mut con).await);

        let pool = deadpool_redis::Config::from_url(server.url())
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .unwrap();
        let mut con = pool.get().await.unwrap();
        rows.push(exercise_async("deadpool-redis Pool", &mut con).await);
        let pool = deadpool_redis::cluster::Config::from_urls(cluster.urls())
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .unwrap();
        let mut con = pool.get().await.unwrap();
        rows.push(exercise_async("deadpool-redis cluster::Pool", &mut con).await);

        let manager = bb8_redis::RedisConnectionManager::new(server.url()).unwrap();
        let pool = bb8_redis::bb8::Pool::builder()
            .max_size(2)
            .build(manager)
            .await
            .unwrap();
        let mut con = pool.get().await.unwrap();
        rows.push(exercise_async("bb8-redis Pool", &mut con).await);
    });

    print(&rows);
    for row in &rows {
        for (name, result) in &row.checks {
            if *name == "acquire_watched" && row.connection.contains("blocking") {
                continue;
            }
            if let Err(e) = result {
                panic!("{} / {name}: {e}", row.connection);
            }
        }
    }
}

/// After `CLIENT KILL`, a `MultiplexedConnection` stays broken (redis-rs
/// does not reconnect it) while a `ConnectionManager` reconnects: the
/// guide leads users to the manager.
#[test]
fn after_client_kill_the_manager_recovers_and_multiplexed_does_not() {
    let server = redis_state::testing::RedisServer::start().expect("redis-server");
    let ns = Namespace::new(unique_prefix("kill")).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let mut multiplexed = server.async_connection().await.unwrap();
        let mut manager = redis::aio::ConnectionManager::new(server.client())
            .await
            .unwrap();
        let a = Account {
            id: 1,
            name: "a".into(),
        };
        a.save()
            .namespace(&ns)
            .run_async(&mut multiplexed)
            .await
            .unwrap();
        a.save()
            .namespace(&ns)
            .run_async(&mut manager)
            .await
            .unwrap();
        let () = server
            .query(
                redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("normal")
                    .arg("SKIPME")
                    .arg("yes"),
            )
            .unwrap();
        let (mut manager_ok, mut multiplexed_ok) = (false, false);
        let mut multiplexed_error = None;
        for _ in 0..20 {
            manager_ok |= Account::load(&1)
                .namespace(&ns)
                .run_async(&mut manager)
                .await
                .is_ok();
            match Account::load(&1)
                .namespace(&ns)
                .run_async(&mut multiplexed)
                .await
            {
                Ok(_) => multiplexed_ok = true,
                Err(e) => multiplexed_error = Some(e),
            }
            if manager_ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(manager_ok, "the ConnectionManager reconnects");
        assert!(!multiplexed_ok, "the MultiplexedConnection stays broken");
        let e = multiplexed_error.expect("an error");
        assert!(
            matches!(
                e.kind(),
                redis_state::ErrorKind::Connection | redis_state::ErrorKind::Timeout
            ),
            "{e}"
        );
        println!("MultiplexedConnection after CLIENT KILL: {e}");
    });
}
