//! Concurrent writers: versioned saves have exactly one winner per round,
//! unique values have exactly one holder, increments lose nothing.

mod common;

use std::sync::{Arc, Barrier};

use redis_state::Error;
use redis_state::prelude::*;
use redis_state::testing::{shared_cluster, shared_server};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{wallet}}:{id}")]
struct Wallet {
    #[redis(id)]
    id: u32,
    owner: String,
    #[redis(unique)]
    handle: String,
    #[redis(counter)]
    balance: i64,
    #[redis(version)]
    version: u64,
}

const WRITERS: usize = 16;

#[test]
fn versioned_saves_have_one_winner_per_round() {
    let ns = common::namespace("versioned_race");
    let mut con = shared_server().connection().unwrap();
    Wallet {
        id: 1,
        owner: "start".into(),
        handle: "h".into(),
        balance: 0,
        version: 0,
    }
    .save()
    .namespace(&ns)
    .run(&mut con)
    .unwrap();
    for round in 0..10 {
        let barrier = Arc::new(Barrier::new(WRITERS));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let barrier = barrier.clone();
                let ns = ns.clone();
                std::thread::spawn(move || {
                    let mut con = shared_server().connection().unwrap();
                    let mut wallet = Wallet::load(&1)
                        .namespace(&ns)
                        .run(&mut con)
                        .unwrap()
                        .unwrap();
                    barrier.wait();
                    wallet.owner = format!("round {round} writer {w}");
                    wallet.save_versioned().namespace(&ns).run(&mut con)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        for r in results.iter().filter(|r| r.is_err()) {
            assert!(matches!(r, Err(Error::VersionConflict { .. })), "{r:?}");
        }
    }
    let w = Wallet::load(&1)
        .namespace(&ns)
        .run(&mut con)
        .unwrap()
        .unwrap();
    assert_eq!(w.version, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unique_values_have_one_holder_on_a_cluster() {
    let ns = common::namespace("unique_race");
    let con = shared_cluster().async_connection().await.unwrap();
    let tasks: Vec<_> = (0..WRITERS as u32)
        .map(|i| {
            let mut con = con.clone();
            let ns = ns.clone();
            tokio::spawn(async move {
                let w = Wallet {
                    id: i,
                    owner: "x".into(),
                    handle: "taken".into(),
                    balance: 0,
                    version: 0,
                };
                w.save().namespace(&ns).run_async(&mut con).await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::UniqueViolation { .. }) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(ok, 1);
    let mut con = con;
    let holder = Wallet::find_by_handle("taken")
        .namespace(&ns)
        .run_async(&mut con)
        .await
        .unwrap();
    assert!(holder.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn increments_lose_nothing() {
    let ns = common::namespace("incr_race");
    let mut con = shared_server().async_connection().await.unwrap();
    Wallet {
        id: 1,
        owner: "o".into(),
        handle: "i".into(),
        balance: 0,
        version: 0,
    }
    .save()
    .namespace(&ns)
    .run_async(&mut con)
    .await
    .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let mut con = con.clone();
            let ns = ns.clone();
            tokio::spawn(async move {
                for _ in 0..100 {
                    Wallet::increment_balance(&1, 3)
                        .namespace(&ns)
                        .run_async(&mut con)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let w = Wallet::load(&1)
        .namespace(&ns)
        .run_async(&mut con)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.balance, 20 * 100 * 3);
}
