//! Every duration setting of the crate takes any `Duration`, from zero to
//! `Duration::MAX`: settings saturate (a bound too large for the clock means
//! "no bound", a TTL too large for Redis is sent as the largest it takes),
//! and operations built with them run against a real server and end with a
//! value or a typed error, never a panic or an overflow. Property-tested
//! over the whole range, with its edges always among the cases.
//!
//! Each case must finish promptly, so waits are given something to wait
//! for that ends (a holder with a short TTL), and the settings that only
//! pace a loop (retry delays) run where the loop ends on its own.

mod common;

use std::time::Duration;

use proptest::prelude::*;
use redis_state::Error;
use redis_state::cache::{Cache, CacheOptions};
use redis_state::driver::Deadline;
use redis_state::lock::Lock;
use redis_state::prelude::*;
use redis_state::ratelimit::{FixedWindow, Gcra, SlidingWindow};
use redis_state::redlock::Redlock;
use redis_state::session::{HashSessions, JsonSessions};
use redis_state::testing::{RedisServer, shared_server};
use redis_state::tx::{Decision, Transaction};
use redis_state::value::{Counter, StringValue};
use serde::{Deserialize, Serialize};

/// Any duration: the edges (zero, one nanosecond, the largest TTL Redis
/// takes and just past it, the largest whole milliseconds and seconds,
/// `Duration::MAX`), small ones, and draws from the whole range.
fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => prop_oneof![
            Just(Duration::ZERO),
            Just(Duration::from_nanos(1)),
            Just(Duration::from_millis(1)),
            Just(Duration::from_millis((1 << 53) - 1)),
            Just(Duration::from_millis(1 << 53)),
            Just(Duration::from_millis(u64::MAX)),
            Just(Duration::from_secs(u64::MAX)),
            Just(Duration::MAX - Duration::from_nanos(1)),
            Just(Duration::MAX),
        ],
        2 => (0u64..5_000).prop_map(Duration::from_millis),
        2 => any::<u64>().prop_map(Duration::from_nanos),
        2 => (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A result that is a value or a typed error the crate documents for bad
/// input or a busy resource, not a protocol or server failure.
fn ok_or_expected<T: std::fmt::Debug>(what: &str, r: redis_state::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(Error::LockTimeout { .. } | Error::InvalidConfig { .. }) => None,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

proptest! {
    #![proptest_config(config())]

    /// Lock settings, a try, an extend, a release; and a blocking acquire
    /// with any backoff against a holder that runs out within 30 ms.
    #[test]
    fn lock_settings(ttl in any_duration(), wait in any_duration(), min in any_duration(),
                     max in any_duration(), extend in any_duration()) {
        let ns = common::namespace("dur_lock");
        let mut con = shared_server().connection().unwrap();
        let lock = Lock::new("l").namespace(&ns).ttl(ttl).wait(wait).retry_delay(min, max)
            .renew_every(ttl).max_hold(Some(wait));
        let guard = lock.try_acquire().run(&mut con).unwrap().expect("free");
        prop_assert!(guard.ttl() >= Duration::from_millis(1));
        guard.extend(extend).run(&mut con).unwrap();
        guard.release().run(&mut con).unwrap();
        let holder = Lock::new("l").namespace(&ns).ttl(Duration::from_millis(30));
        let _held = holder.try_acquire().run(&mut con).unwrap().expect("free");
        let bounded = lock.clone().wait(wait.min(Duration::from_millis(200)));
        if let Some(g) = ok_or_expected("acquire", bounded.acquire(&mut con)) {
            g.release().run(&mut con).unwrap();
        }
        let _ = Deadline::after(wait).cap(ttl);
    }

    /// The watchdog with any renewal interval and cap: acquired, released,
    /// its loss signal asked with any timeout once it ended.
    #[test]
    fn watchdog_settings(every in any_duration(), cap in any_duration(), timeout in any_duration()) {
        let ns = common::namespace("dur_watch");
        runtime().block_on(async {
            let con = shared_server().async_connection().await.unwrap();
            let lock = Lock::new("w").namespace(&ns).ttl(Duration::from_millis(200))
                .renew_every(every).max_hold(Some(cap));
            let watched = lock.acquire_watched_async(&con).await.unwrap();
            let released = tokio::time::timeout(Duration::from_secs(5), watched.release_async())
                .await
                .expect("a release answers");
            released.unwrap();
            let lock2 = Lock::new("w2").namespace(&ns).ttl(Duration::from_millis(50))
                .renew_every(Duration::MAX);
            let lost = lock2.acquire_watched_async(&con).await.unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(5), lost.loss().lost_async()).await;
            if lost.loss().reason().is_some() {
                assert!(lost.loss().wait_timeout(timeout).is_some());
            }
        });
    }

    /// Rate limiters of any window or period: a decision or a typed
    /// refusal (a GCRA period under 1 µs).
    #[test]
    fn rate_limit_settings(window in any_duration()) {
        let ns = common::namespace("dur_rl");
        let mut con = shared_server().connection().unwrap();
        let d = FixedWindow::new("f", 5, window).namespace(&ns).check("s").run(&mut con).unwrap();
        prop_assert!(d.allowed);
        let d = FixedWindow::new("a", 5, window).count_all_requests().namespace(&ns)
            .check("s").run(&mut con).unwrap();
        prop_assert!(d.allowed);
        let d = SlidingWindow::new("s", 5, window).namespace(&ns).check("s").run(&mut con).unwrap();
        prop_assert!(d.allowed);
        if let Some(d) = ok_or_expected("gcra", Gcra::new("g", 5, window).namespace(&ns).check("s").run(&mut con)) {
            prop_assert!(d.allowed);
        }
    }

    /// Sessions with any idle TTL and maximum lifetime.
    #[test]
    fn session_settings(idle in any_duration(), life in any_duration()) {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        struct Data { n: u32 }
        let ns = common::namespace("dur_sess");
        let mut con = shared_server().connection().unwrap();
        let json = JsonSessions::<Data>::new(idle).max_lifetime(life).namespace(&ns);
        let s = json.create(1, Data { n: 1 }).run(&mut con).unwrap();
        let _ = json.get(s.id.as_str()).run(&mut con).unwrap();
        let _ = json.touch(s.id.as_str()).run(&mut con).unwrap();
        let _ = json.list_for_user(&1).run(&mut con).unwrap();
        let hash = HashSessions::<Data>::new(idle).max_lifetime(life).namespace(&ns);
        let s = hash.create(1, Data { n: 2 }).run(&mut con).unwrap();
        let _ = hash.get(s.id.as_str()).run(&mut con).unwrap();
        let _ = hash.set_field(s.id.as_str(), "n", &3u32).run(&mut con).unwrap();
    }

    /// Plain values and counters with any TTL per call.
    #[test]
    fn value_settings(ttl in any_duration()) {
        let ns = common::namespace("dur_val");
        let mut con = shared_server().connection().unwrap();
        let v = StringValue::<String>::new("v").namespace(&ns);
        v.set(&"x".to_owned()).ttl(ttl).run(&mut con).unwrap();
        let _ = v.get_or_set(&"y".to_owned()).ttl(ttl).run(&mut con).unwrap();
        let c = Counter::<i64>::new("c").namespace(&ns);
        prop_assert_eq!(c.incr(1).ttl(ttl).run(&mut con).unwrap(), 1);
        c.set(5).ttl(ttl).run(&mut con).unwrap();
    }

    /// A transaction that meets conflicts, with any pause bound.
    #[test]
    fn transaction_settings(max in any_duration()) {
        let ns = common::namespace("dur_tx");
        let mut con = shared_server().connection().unwrap();
        let mut other = shared_server().connection().unwrap();
        let key = format!("{ns}:k");
        let conflicts = std::cell::Cell::new(0);
        // Three conflicts: the pauses after them are at most 1, 2 and 4 ms,
        // whatever the bound.
        let done: u32 = Transaction::new(&[&key]).retry_delay(max).perform(
            &mut con,
            || redis_state::op::command::<Option<u32>>("GET", &key),
            |_| {
                if conflicts.get() < 3 {
                    conflicts.set(conflicts.get() + 1);
                    let _: () = redis::cmd("SET").arg(&key).arg(conflicts.get()).query(&mut other).unwrap();
                }
                Ok(Decision::Commit(redis_state::op::command::<()>("SET", &key).arg(9), conflicts.get()))
            },
        ).unwrap();
        prop_assert_eq!(done, 3);
    }
}

// ---------------------------------------------------------------------------
// Settings that start servers or loaders: fewer cases.

fn few() -> ProptestConfig {
    ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "dur:{id}", ttl = "10m", tag = "t:{group}")]
struct Item {
    id: u32,
    group: String,
}

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "durh:{id}")]
struct Plain {
    #[redis(id)]
    id: u32,
    n: u32,
}

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{duri}}:{id}")]
struct Indexed {
    #[redis(id)]
    id: u32,
    #[redis(index)]
    kind: String,
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{durb}}:{region}")]
struct Board {
    region: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i64,
}

proptest! {
    #![proptest_config(few())]

    /// Redlock with any TTL, instance timeout and retry delay; the retry
    /// path under contention (async, stopped after 50 ms when it is still
    /// pausing).
    #[test]
    fn redlock_settings(ttl in any_duration(), timeout in any_duration(), delay in any_duration()) {
        static SERVERS: std::sync::OnceLock<Vec<RedisServer>> = std::sync::OnceLock::new();
        let servers = SERVERS.get_or_init(|| (0..3).map(|_| RedisServer::start().unwrap()).collect());
        let ns = common::namespace("dur_redlock");
        let make = |retries| Redlock::new(servers.iter().map(RedisServer::client)).unwrap()
            .namespace(&ns).ttl(ttl).instance_timeout(timeout).retry(retries, delay);
        // Blocking, without a retry (its pause would block the test).
        let once = make(0);
        if let Some(g) = once.lock("r").unwrap() {
            let _ = once.extend(&g).unwrap();
            once.unlock(&g).unwrap();
        }
        let rl = make(1);
        let holder = Redlock::new(servers.iter().map(RedisServer::client)).unwrap()
            .namespace(&ns).ttl(Duration::from_secs(5)).retry(0, Duration::ZERO);
        let held = holder.lock("busy").unwrap().expect("free");
        runtime().block_on(async {
            let _ = tokio::time::timeout(Duration::from_millis(50), rl.lock_async("busy")).await;
        });
        holder.unlock(&held).unwrap();
    }

    /// Cache options of any length: a fill, a hit, invalidations holding
    /// fills off for any time.
    #[test]
    fn cache_settings(lease in any_duration(), wait in any_duration(), hold in any_duration()) {
        let ns = common::namespace("dur_cache");
        let mut con = shared_server().connection().unwrap();
        let cache = Cache::<Item>::new().namespace(&ns)
            .options(CacheOptions::default().lease(lease).wait(wait).hold(hold));
        let item = Item { id: 1, group: "g".into() };
        let got = cache.get_or_load(&mut con, &1, || Ok::<_, String>(Some(item.clone()))).unwrap();
        prop_assert_eq!(got, Some(item.clone()));
        cache.invalidate(&1).hold(hold).run(&mut con).unwrap();
        cache.invalidate_tag(&redis_state::cache::Tag::new("t:").lit("g")).hold(hold)
            .run(&mut con).unwrap();
    }

    /// Hash model expiry and leaderboard merge TTLs of any length.
    #[test]
    fn model_settings(ttl in any_duration()) {
        let ns = common::namespace("dur_model");
        let mut con = shared_server().connection().unwrap();
        Plain { id: 1, n: 1 }.save().namespace(&ns).run(&mut con).unwrap();
        prop_assert!(Plain::expire(&1, ttl).namespace(&ns).run(&mut con).unwrap());
        Indexed { id: 1, kind: "a".into() }.save().namespace(&ns).run(&mut con).unwrap();
        prop_assert!(Indexed::expire(&1, ttl).namespace(&ns).run(&mut con).unwrap());
        Board { region: "eu".into(), player: "a".into(), points: 1 }.submit().namespace(&ns)
            .run(&mut con).unwrap();
        let eu = Board::board("eu").namespace(&ns);
        let all = Board::board("all").namespace(&ns);
        // A TTL of zero expires the result at once.
        let n = Board::union(&[&eu], &all).ttl(ttl).run(&mut con).unwrap();
        prop_assert!(n <= 1);
    }

    /// A local cache with any maximum age and ping interval: a fill, a read
    /// through the local copy.
    #[test]
    fn local_cache_settings(age in any_duration(), ping in any_duration()) {
        use redis_state::cache::{LocalCache, LocalCacheOptions};
        let ns = common::namespace("dur_local");
        runtime().block_on(async {
            let server = shared_server();
            let prefix = format!("{ns}:dur:");
            let local = LocalCache::connect_async(
                &server.url(),
                &[prefix.as_str()],
                LocalCacheOptions::default().max_age(age).ping_interval(ping),
            )
            .await
            .unwrap();
            let cache = Cache::<Item>::new().namespace(&ns).with_local(local);
            let mut con = server.async_connection().await.unwrap();
            let item = Item { id: 2, group: "g".into() };
            for _ in 0..2 {
                let got = cache
                    .get_or_load_async(&mut con, &2, || async { Ok::<_, String>(Some(item.clone())) })
                    .await
                    .unwrap();
                assert_eq!(got, Some(item.clone()));
            }
        });
    }

    /// A write-behind worker with any backoff, claim idle time and block
    /// time handles a queued write (and retries it once, when the first
    /// delay is short enough for a test to wait).
    #[test]
    fn write_behind_settings(first in any_duration(), max in any_duration(),
                             idle in any_duration(), block in any_duration()) {
        use redis_state::cache::{WriteBehindWorker, shutdown};
        let ns = common::namespace("dur_wb");
        runtime().block_on(async {
            let mut con = shared_server().async_connection().await.unwrap();
            let cache = Cache::<Item>::new().namespace(&ns);
            let item = Item { id: 3, group: "g".into() };
            cache.write_behind(&3, &item).run_async(&mut con).await.unwrap();
            let worker = WriteBehindWorker::new(&cache, "w")
                .backoff(first, max)
                .claim_idle(idle)
                .block(block);
            let (trigger, sd) = shutdown();
            let fail_once = first <= Duration::from_millis(50);
            let handled = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
            let seen = handled.clone();
            let run = worker.process_async(&mut con, sd, move |w| {
                let attempt = w.attempt;
                let seen = seen.clone();
                let trigger = trigger.clone();
                async move {
                    if fail_once && attempt == 1 {
                        return Err("once");
                    }
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    trigger.fire();
                    Ok(())
                }
            });
            let stats = tokio::time::timeout(Duration::from_secs(20), run)
                .await
                .expect("the worker handles the write")
                .unwrap();
            assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 1, "{stats:?}");
        });
    }
}
