//! The library as a blocking-only, standalone-only user builds it: CI runs
//! this file with `cargo test -p redis-state --no-default-features
//! --features test-support --test sync_only`. Every derive expands and runs
//! here with neither `async` nor `cluster`; the last test drives a
//! procedure of the driver through an async executor of the caller's own,
//! which pauses without a tokio timer. The file runs with every feature too.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};

use redis_state::cache::Cache;
use redis_state::lock::Lock;
use redis_state::prelude::*;
use redis_state::testing::RedisServer;
use serde::{Deserialize, Serialize};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{player}}:{id}")]
struct Player {
    #[redis(id)]
    id: u32,
    #[redis(unique)]
    nick: String,
    #[redis(index)]
    guild: Option<String>,
    #[redis(counter)]
    gold: i64,
    #[redis(version)]
    version: u64,
}

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "scoreboard:{period}", ttl = "5m", tag = "season:{season}")]
struct Scoreboard {
    period: String,
    season: u32,
    top: Vec<u32>,
}

#[derive(Leaderboard, Debug, Clone)]
#[leaderboard(
    key = "{{laps:{track}}}",
    order = "low_first",
    update = "keep_best",
    windows(daily = "2d")
)]
struct Lap {
    track: String,
    #[leaderboard(member)]
    driver: String,
    #[leaderboard(score)]
    millis: u32,
}

#[derive(Channel, Debug)]
#[channel(name = "{app}:order:{id}:events", message = String, format = "plain")]
struct OrderEvents {
    app: String,
    id: u64,
}

fn setup() -> (RedisServer, redis::Connection, Namespace) {
    let server = RedisServer::start().expect("redis-server");
    let con = server.connection().expect("connection");
    let ns = Namespace::new(format!("sync-only-{}", std::process::id())).unwrap();
    (server, con, ns)
}

#[test]
fn hash_models_save_index_count_and_load() {
    let (_server, mut con, ns) = setup();
    let p = Player {
        id: 1,
        nick: "ferris".into(),
        guild: Some("crabs".into()),
        gold: 10,
        version: 0,
    };
    p.save().namespace(&ns).run(&mut con).unwrap();
    Player::increment_gold(&1, 5)
        .namespace(&ns)
        .run(&mut con)
        .unwrap();
    let back = Player::load(&1).namespace(&ns).run(&mut con).unwrap();
    assert_eq!(back.map(|p| (p.nick, p.gold)), Some(("ferris".into(), 15)));
    let found = Player::find_by_nick("ferris")
        .namespace(&ns)
        .run(&mut con)
        .unwrap();
    assert_eq!(found.map(|p| p.id), Some(1));
}

#[test]
fn cache_aside_loads_once() {
    let (_server, mut con, ns) = setup();
    let boards = Cache::<Scoreboard>::new().namespace(&ns);
    let loads = AtomicUsize::new(0);
    let load = || {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(Some(Scoreboard {
            period: "daily".into(),
            season: 1,
            top: vec![1, 2],
        }))
    };
    for _ in 0..3 {
        let got = boards
            .get_or_load(&mut con, &"daily".to_owned(), load)
            .unwrap();
        assert_eq!(got.map(|b| b.top), Some(vec![1, 2]));
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[test]
fn leaderboard_keeps_the_best_lap() {
    let (_server, mut con, ns) = setup();
    for (driver, millis) in [("ann", 81_250), ("ben", 80_900), ("ann", 80_100)] {
        let lap = Lap {
            track: "monza".into(),
            driver: driver.into(),
            millis,
        };
        lap.submit().namespace(&ns).run(&mut con).unwrap();
    }
    let top = Lap::board("monza")
        .namespace(&ns)
        .top(2)
        .run(&mut con)
        .unwrap();
    let top: Vec<(String, u32)> = top.into_iter().map(|e| (e.member, e.score)).collect();
    assert_eq!(top, vec![("ann".into(), 80_100), ("ben".into(), 80_900)]);
}

#[test]
fn channels_publish_without_a_subscriber_runtime() {
    let (_server, mut con, ns) = setup();
    let receivers = OrderEvents {
        app: ns.as_str().to_owned(),
        id: 42,
    }
    .publish(&"shipped".to_owned())
    .run(&mut con)
    .unwrap();
    assert_eq!(receivers, 0);
}

#[test]
fn locks_wait_with_backoff_on_a_blocking_connection() {
    let (server, mut con, ns) = setup();
    let lock = Lock::new("job")
        .namespace(&ns)
        .ttl(std::time::Duration::from_millis(150))
        .wait(std::time::Duration::from_secs(5));
    let first = lock.acquire(&mut con).unwrap();
    // The second holder waits (pausing between tries) until the first
    // one's TTL runs out.
    let mut other = server.connection().unwrap();
    let second = lock.acquire(&mut other).unwrap();
    assert!(second.fence() > first.fence());
}

/// An async executor of the caller's own over a blocking connection: what
/// a sync-only build can still hand to the `_async` forms. Lock waits pause
/// through the driver, which has no tokio timer in this build.
#[cfg(not(feature = "async"))]
mod own_executor {
    use std::future::Future;

    use redis::Value;
    use redis_state::exec::{AsyncExecutor, SyncExecutor};
    use redis_state::op::Plan;

    pub(crate) struct Blocking(pub(crate) redis::Connection);

    impl AsyncExecutor for Blocking {
        fn execute_async(
            &mut self,
            plan: Plan,
        ) -> impl Future<Output = redis_state::Result<Vec<Value>>> + Send {
            std::future::ready(self.0.execute(plan))
        }
    }
}

#[cfg(not(feature = "async"))]
#[test]
fn async_forms_pause_without_a_runtime() {
    let (server, mut con, ns) = setup();
    let lock = Lock::new("paused")
        .namespace(&ns)
        .ttl(std::time::Duration::from_millis(150))
        .wait(std::time::Duration::from_secs(5));
    let first = lock.acquire(&mut con).unwrap();
    let mut own = own_executor::Blocking(server.connection().unwrap());
    // Busy at first: the procedure pauses (a helper thread wakes it) and
    // tries again until the first holder's TTL runs out.
    let second = redis_state::driver::block_on(lock.acquire_async(&mut own)).unwrap();
    assert!(second.fence() > first.fence());
}
