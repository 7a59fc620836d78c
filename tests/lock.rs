//! Single-instance locks: ownership, fencing tokens, blocking acquire,
//! scoped forms, the watchdog; on a standalone server and a Cluster, through
//! the blocking and the async executor.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Runner;
use redis_state::lock::fence::{fence_key_for, fenced_set};
use redis_state::lock::{Lock, LostReason, Release};
use redis_state::prelude::*;
use redis_state::testing::{RedisServer, shared_server};
use redis_state::{Error, Namespace};

fn only_owner_releases(r: &mut Runner, ns: &Namespace) {
    let lock = Lock::new("orders:42").namespace(ns);
    let guard = r.run(lock.try_acquire()).unwrap().expect("free lock");
    assert!(
        guard.key().ends_with("lock:{orders%3A42}"),
        "{}",
        guard.key()
    );
    assert_eq!(guard.token().len(), 32);
    // Held: a second try fails, and does not draw a fencing token.
    assert!(r.run(lock.try_acquire()).unwrap().is_none());
    // A non-owner (another token) cannot release it.
    let forged = Release::new(guard.key(), "0123456789abcdef0123456789abcdef");
    assert!(!r.run(forged).unwrap());
    assert!(r.run(guard.is_held()).unwrap());
    // The owner can, once.
    assert!(r.run(guard.release()).unwrap());
    assert!(!r.run(guard.release()).unwrap());
    assert!(!r.run(guard.is_held()).unwrap());
    // Free again; the next holder gets the next fencing token.
    let next = r.run(lock.try_acquire()).unwrap().expect("released lock");
    assert_eq!(next.fence(), guard.fence() + 1);
    assert!(r.run(next.release()).unwrap());
}

fn fencing_tokens_strictly_increase(r: &mut Runner, ns: &Namespace) {
    let lock = Lock::new(7u64).namespace(ns);
    let mut last = 0;
    for _ in 0..20 {
        let guard = r.run(lock.try_acquire()).unwrap().unwrap();
        assert!(guard.fence() > last, "{} after {last}", guard.fence());
        last = guard.fence();
        assert!(r.run(guard.release()).unwrap());
    }
    assert_eq!(last, 20);
    // The counter survives the lock key and has no TTL.
    let ttl: i64 = r.cmd("PTTL", lock.fence_key()).go();
    assert_eq!(ttl, -1);
}

fn only_owner_extends(r: &mut Runner, ns: &Namespace) {
    let lock = Lock::new("ext")
        .namespace(ns)
        .ttl(Duration::from_millis(500));
    let guard = r.run(lock.try_acquire()).unwrap().unwrap();
    assert!(r.run(guard.extend(Duration::from_secs(60))).unwrap());
    let pttl: i64 = r.cmd("PTTL", guard.key()).go();
    assert!(pttl > 50_000, "{pttl}");
    assert!(r.run(guard.release()).unwrap());
    assert!(!r.run(guard.extend(Duration::from_secs(60))).unwrap());
    let exists: bool = r.cmd("EXISTS", guard.key()).go();
    assert!(!exists, "a failed extend must not create the key");
}

/// The Kleppmann scenario: a holder stalls past its TTL, another client
/// takes the lock and writes; the stalled holder's lock is gone and the
/// resource refuses its write.
fn paused_holder_loses_lock_and_fenced_write(r: &mut Runner, ns: &Namespace) {
    let lock = Lock::new("report")
        .namespace(ns)
        .ttl(Duration::from_millis(150));
    let resource = format!("{ns}:report:latest");
    let old = r.run(lock.try_acquire()).unwrap().unwrap();
    assert!(
        r.run(fenced_set(&resource, old.fence(), b"from old"))
            .unwrap()
    );
    std::thread::sleep(Duration::from_millis(300)); // the pause
    let new = r.run(lock.try_acquire()).unwrap().expect("TTL ran out");
    assert!(new.fence() > old.fence());
    assert!(
        r.run(fenced_set(&resource, new.fence(), b"from new"))
            .unwrap()
    );
    // The old holder wakes up: its lock is gone ...
    assert!(!r.run(old.is_held()).unwrap());
    assert!(!r.run(old.extend(Duration::from_secs(1))).unwrap());
    assert!(!r.run(old.release()).unwrap());
    // ... and its write is refused; the new holder's value stands.
    assert!(!r.run(fenced_set(&resource, old.fence(), b"stale")).unwrap());
    let v: String = r.cmd("GET", &resource).go();
    assert_eq!(v, "from new");
    let fence: u64 = r.cmd("GET", &fence_key_for(&resource)).go();
    assert_eq!(fence, new.fence());
    // The same token may write again (one holder, several writes).
    assert!(r.run(fenced_set(&resource, new.fence(), b"again")).unwrap());
    assert!(r.run(new.release()).unwrap());
}

/// Tokens compare as numbers (9 < 10), exactly, over the whole u64 range.
fn fence_compares_numbers_not_text(r: &mut Runner, ns: &Namespace) {
    let res = format!("{ns}:fenced");
    let mut write = |token: u64| r.run(fenced_set(&res, token, b"v")).unwrap();
    assert!(write(9));
    assert!(write(10));
    assert!(!write(9));
    assert!(write(100));
    assert!(!write(99));
    assert!(write(u64::MAX - 1));
    assert!(write(u64::MAX));
    assert!(!write(u64::MAX - 1), "no rounding through doubles");
}

fn batches_with_other_operations(r: &mut Runner, ns: &Namespace) {
    let a = Lock::new("a").namespace(ns);
    let b = Lock::new("b").namespace(ns);
    // Two locks on (likely) different slots in one round trip.
    let (ga, gb) = r.run(batch((a.try_acquire(), b.try_acquire()))).unwrap();
    let (ga, gb) = (ga.unwrap(), gb.unwrap());
    let (ra, rb) = r.run(batch((ga.release(), gb.release()))).unwrap();
    assert!(ra && rb);
}

/// The reviewer's reproduction, verbatim: `a` and `{a}` shared a fence
/// record; `a}b` had its fence key in another slot.
#[test]
fn fence_records_of_a_and_braced_a_are_distinct() {
    let server = RedisServer::start().unwrap();
    let mut con = server.connection().unwrap();
    assert_ne!(fence_key_for("a"), fence_key_for("{a}"));
    assert!(fenced_set("{a}", 100, b"x").run(&mut con).unwrap());
    assert!(
        fenced_set("a", 5, b"y").run(&mut con).unwrap(),
        "resource `a` never accepted a token, yet token 5 is refused"
    );
    assert!(fenced_set("a}b", 1, b"z").run(&mut con).unwrap());
}

/// An empty name is a lock like any other: `lock:{}` has no hash tag (an
/// empty one does not count), so its fence counter is placed in its slot
/// by other means, and nothing fails with CrossSlot, on a standalone
/// server or a Cluster.
fn an_empty_name_is_a_lock(r: &mut Runner, ns: &Namespace) {
    let lock = Lock::new("").namespace(ns);
    assert!(lock.key().ends_with("lock:{}"), "{}", lock.key());
    assert_eq!(
        redis_state::keys::key_slot(lock.fence_key().as_bytes()),
        redis_state::keys::key_slot(lock.key().as_bytes())
    );
    let guard = r.run(lock.try_acquire()).unwrap().expect("free");
    assert!(r.run(lock.try_acquire()).unwrap().is_none());
    assert!(r.run(guard.release()).unwrap());
    let next = r.run(lock.try_acquire()).unwrap().expect("free again");
    assert_eq!(next.fence(), guard.fence() + 1);
    assert!(r.run(next.release()).unwrap());
    // Not the lock of the name "{}" or of any other.
    let braces = r.run(Lock::new("{}").namespace(ns).try_acquire()).unwrap();
    assert!(braces.is_some());
}

/// A fence counter that is not a non-negative integer (written by hand, by
/// another program, or decremented) refuses the lock with a decode error
/// naming the counter, and leaves the lock free: tokens drawn from it would
/// not grow (a negative one read as 0, again and again).
fn a_corrupt_fence_counter_refuses_the_lock(r: &mut Runner, ns: &Namespace) {
    let lock = Lock::new("fenced").namespace(ns);
    for bad in ["-5", "-1", "abc", "1.5", "007", "", "99999999999999999999"] {
        let _: () = r.cmd("SET", lock.fence_key()).arg(bad).go();
        match r.run(lock.try_acquire()) {
            Err(Error::Decode(e)) => {
                assert_eq!(e.key, lock.fence_key(), "{bad:?}");
                assert!(e.to_string().contains("fence counter"), "{e}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
        let held: bool = r.cmd("EXISTS", lock.key()).go();
        assert!(!held, "{bad:?}: the lock was taken");
        let still: String = r.cmd("GET", lock.fence_key()).go();
        assert_eq!(still, bad, "the counter is left as it was");
    }
    let _: i64 = r.cmd("DEL", lock.fence_key()).go();
    let _: i64 = r.cmd("RPUSH", lock.fence_key()).arg("x").go();
    assert!(matches!(r.run(lock.try_acquire()), Err(Error::Decode(_))));
    // Repaired by hand to the last token handed out: tokens go on from it.
    let _: i64 = r.cmd("DEL", lock.fence_key()).go();
    let _: () = r.cmd("SET", lock.fence_key()).arg("41").go();
    let guard = r.run(lock.try_acquire()).unwrap().expect("free");
    assert_eq!(guard.fence(), 42);
    assert!(r.run(guard.release()).unwrap());
    let _: () = r.cmd("SET", lock.fence_key()).arg("0").go();
    let guard = r.run(lock.try_acquire()).unwrap().expect("free");
    assert_eq!(guard.fence(), 1);
    assert!(r.run(guard.release()).unwrap());
}

/// Verbatim keys: the name as given after a prefix, the fence counter in
/// the same slot, fencing tokens as with the default layout.
fn verbatim_keys_take_the_name_as_given(r: &mut Runner, ns: &Namespace) {
    let lock = Lock::new("resource:123")
        .verbatim_keys("lock:")
        .namespace(ns);
    assert_eq!(lock.key(), format!("{ns}:lock:resource:123"));
    assert_eq!(
        lock.fence_key(),
        format!("{{{ns}:lock:resource:123}}#fence")
    );
    let whole = Lock::new("jobs/nightly").verbatim_keys("").namespace(ns);
    assert_eq!(whole.key(), format!("{ns}:jobs/nightly"));
    // Names other layouts escape are kept: braces make a hash tag.
    let tagged = Lock::new("{tenant}:report").verbatim_keys("lock:");
    assert_eq!(tagged.key(), "lock:{tenant}:report");
    assert_eq!(tagged.fence_key(), "lock:{tenant}:report:#fence");
    for l in [&lock, &whole] {
        let a = r.run(l.try_acquire()).unwrap().expect("free");
        assert!(r.run(l.try_acquire()).unwrap().is_none());
        let stored: String = r.cmd("GET", l.key()).go();
        assert_eq!(stored, a.token());
        assert!(r.run(a.release()).unwrap());
        let b = r.run(l.try_acquire()).unwrap().expect("free");
        assert_eq!(b.fence(), a.fence() + 1);
        assert!(r.run(b.release()).unwrap());
    }
    // The default layout of the same name is another lock.
    let tagged_default = Lock::new("resource:123").namespace(ns);
    let held = r.run(lock.try_acquire()).unwrap().expect("free");
    let other = r
        .run(tagged_default.try_acquire())
        .unwrap()
        .expect("another key");
    assert!(r.run(held.release()).unwrap());
    assert!(r.run(other.release()).unwrap());
}

matrix!(
    an_empty_name_is_a_lock,
    a_corrupt_fence_counter_refuses_the_lock,
    verbatim_keys_take_the_name_as_given,
    only_owner_releases,
    fencing_tokens_strictly_increase,
    only_owner_extends,
    paused_holder_loses_lock_and_fenced_write,
    fence_compares_numbers_not_text,
    batches_with_other_operations,
    fence_keys_are_distinct_and_in_the_resource_slot,
);

// ---------------------------------------------------------------------------
// Contention

/// 50 contenders (threads, each with its own connection) × 1,000
/// acquisitions each, each incrementing a counter with a GET and a separate
/// SET (a lost update whenever two critical sections overlap). The count is
/// exact only if no two ever overlapped; ordered by the counter value each
/// holder read, the fencing tokens strictly increase.
#[test]
fn contenders_never_overlap() {
    const CONTENDERS: usize = 50;
    const ROUNDS: usize = 1_000;
    let ns = common::namespace("contention");
    let counter = format!("{ns}:counter");
    let lock = Lock::new("counter")
        .namespace(&ns)
        .ttl(Duration::from_secs(10))
        .wait(Duration::from_secs(300));
    let started = Instant::now();
    let threads: Vec<_> = (0..CONTENDERS)
        .map(|_| {
            let mut con = shared_server().connection().unwrap();
            let (lock, counter) = (lock.clone(), counter.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::with_capacity(ROUNDS);
                for _ in 0..ROUNDS {
                    let guard = lock.acquire(&mut con).unwrap();
                    let n: Option<u64> = redis::cmd("GET").arg(&counter).query(&mut con).unwrap();
                    let n = n.unwrap_or(0);
                    let () = redis::cmd("SET")
                        .arg(&counter)
                        .arg(n + 1)
                        .query(&mut con)
                        .unwrap();
                    seen.push((n, guard.fence()));
                    assert!(guard.release().run(&mut con).unwrap());
                }
                seen
            })
        })
        .collect();
    let mut seen: Vec<(u64, u64)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    eprintln!(
        "{} acquisitions by {CONTENDERS} contenders in {:?}",
        CONTENDERS * ROUNDS,
        started.elapsed()
    );
    let mut con = shared_server().connection().unwrap();
    let n: u64 = redis::cmd("GET").arg(&counter).query(&mut con).unwrap();
    assert_eq!(n, (CONTENDERS * ROUNDS) as u64);
    seen.sort();
    assert_eq!(seen.len(), CONTENDERS * ROUNDS);
    for (i, w) in seen.windows(2).enumerate() {
        assert_eq!(
            w[0].0 + 1,
            w[1].0,
            "two holders read the same value at {i}: {w:?}"
        );
        assert!(w[0].1 < w[1].1, "fencing tokens out of order at {i}: {w:?}");
    }
}

/// The same through the async executor: tasks sharing one multi-threaded
/// runtime, each with its own multiplexed connection.
#[test]
fn async_contenders_never_overlap() {
    const CONTENDERS: usize = 20;
    const ROUNDS: usize = 100;
    let ns = common::namespace("async_contention");
    let counter = format!("{ns}:counter");
    let lock = Lock::new("counter")
        .namespace(&ns)
        .wait(Duration::from_secs(300));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..CONTENDERS {
            let mut con = shared_server().async_connection().await.unwrap();
            let (lock, counter) = (lock.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let guard = lock.acquire_async(&mut con).await.unwrap();
                    let n: Option<u64> = redis::cmd("GET")
                        .arg(&counter)
                        .query_async(&mut con)
                        .await
                        .unwrap();
                    let () = redis::cmd("SET")
                        .arg(&counter)
                        .arg(n.unwrap_or(0) + 1)
                        .query_async(&mut con)
                        .await
                        .unwrap();
                    assert!(guard.release().run_async(&mut con).await.unwrap());
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut con = shared_server().async_connection().await.unwrap();
        let n: u64 = redis::cmd("GET")
            .arg(&counter)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(n, (CONTENDERS * ROUNDS) as u64);
    });
}

#[test]
fn blocking_acquire_times_out_then_succeeds() {
    let ns = common::namespace("blocking");
    let mut con = shared_server().connection().unwrap();
    let lock = Lock::new("busy")
        .namespace(&ns)
        .ttl(Duration::from_millis(400))
        .wait(Duration::from_millis(100));
    let held = lock.acquire(&mut con).unwrap();
    let started = Instant::now();
    match lock.acquire(&mut con) {
        Err(Error::LockTimeout { key, waited }) => {
            assert_eq!(key, lock.key());
            assert!(waited >= Duration::from_millis(100), "{waited:?}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(350));
    // A longer wait outlasts the holder's TTL.
    let guard = lock
        .clone()
        .wait(Duration::from_secs(2))
        .acquire(&mut con)
        .unwrap();
    assert!(guard.fence() > held.fence());
    assert!(guard.release().run(&mut con).unwrap());
}

#[test]
fn scoped_run_releases_on_panic_and_reports_loss() {
    let ns = common::namespace("scoped");
    let mut con = shared_server().connection().unwrap();
    let lock = Lock::new("scoped").namespace(&ns);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = lock.scope(&mut con, |_| panic!("boom"));
    }));
    assert!(caught.is_err());
    let exists: bool = redis::cmd("EXISTS")
        .arg(lock.key())
        .query(&mut con)
        .unwrap();
    assert!(!exists, "released after the panic");
    // A body outliving the TTL: the release finds the lock gone.
    let short = lock.clone().ttl(Duration::from_millis(50));
    let err = short
        .scope(&mut con, |_| std::thread::sleep(Duration::from_millis(150)))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::LockLost {
                reason: LostReason::Expired,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(lock.scope(&mut con, |g| g.fence()).unwrap(), 3);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn watchdog_keeps_the_lock_past_its_ttl() {
    let ns = common::namespace("watch_keep");
    runtime().block_on(async {
        let con = shared_server().async_connection().await.unwrap();
        let lock = Lock::new("job")
            .namespace(&ns)
            .ttl(Duration::from_millis(300));
        let held = lock.acquire_watched_async(&con).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert!(!held.loss().is_lost());
        let mut other = con.clone();
        assert!(
            lock.try_acquire()
                .run_async(&mut other)
                .await
                .unwrap()
                .is_none()
        );
        assert!(held.release_async().await.unwrap());
        assert!(
            lock.try_acquire()
                .run_async(&mut other)
                .await
                .unwrap()
                .is_some()
        );
    });
}

#[test]
fn watchdog_reports_a_taken_lock_at_once() {
    let ns = common::namespace("watch_taken");
    runtime().block_on(async {
        let con = shared_server().async_connection().await.unwrap();
        let lock = Lock::new("job")
            .namespace(&ns)
            .ttl(Duration::from_millis(600));
        let held = lock.acquire_watched_async(&con).await.unwrap();
        // Someone deletes the key behind the holder's back.
        let mut raw = con.clone();
        let () = redis::cmd("DEL")
            .arg(lock.key())
            .query_async(&mut raw)
            .await
            .unwrap();
        let reason = tokio::time::timeout(Duration::from_millis(400), held.loss().lost_async())
            .await
            .expect("reported within one renewal interval");
        assert_eq!(reason, LostReason::Expired);
        assert!(!held.release_async().await.unwrap());
    });
}

#[test]
fn watchdog_reports_a_dead_server_as_lost() {
    let ns = common::namespace("watch_dead");
    let mut server = RedisServer::start().unwrap();
    runtime().block_on(async {
        let client = server.client();
        let con = client.get_multiplexed_async_connection().await.unwrap();
        let lock = Lock::new("job")
            .namespace(&ns)
            .ttl(Duration::from_millis(500));
        let held = lock.acquire_watched_async(&con).await.unwrap();
        let signal = held.loss().clone();
        let killed = Instant::now();
        server.stop();
        let reason = tokio::time::timeout(Duration::from_secs(3), signal.lost_async())
            .await
            .expect("the loss is reported");
        // Not before the lock could have run out, not much after.
        let after = killed.elapsed();
        assert!(after < Duration::from_millis(700), "{after:?}");
        assert!(
            matches!(reason, LostReason::Unconfirmed { .. }),
            "{reason:?}"
        );
        assert!(held.release_async().await.is_err());
    });
}

#[test]
fn watchdog_stops_at_max_hold() {
    let ns = common::namespace("watch_cap");
    runtime().block_on(async {
        let con = shared_server().async_connection().await.unwrap();
        let lock = Lock::new("job")
            .namespace(&ns)
            .ttl(Duration::from_millis(200))
            .max_hold(Some(Duration::from_millis(300)));
        let started = Instant::now();
        let held = lock.acquire_watched_async(&con).await.unwrap();
        let reason = tokio::time::timeout(Duration::from_secs(2), held.loss().lost_async())
            .await
            .unwrap();
        assert_eq!(reason, LostReason::MaxHoldReached);
        assert!(started.elapsed() >= Duration::from_millis(300));
        // The signal comes at the conservative end of validity (TTL minus
        // drift); the key itself runs out moments later.
        let mut other = con.clone();
        let next = lock
            .clone()
            .wait(Duration::from_millis(100))
            .acquire_async(&mut other)
            .await;
        assert!(next.is_ok(), "{next:?}");
    });
}

#[test]
fn scope_watched_stops_the_body_when_the_lock_is_lost() {
    let ns = common::namespace("watch_scoped");
    runtime().block_on(async {
        let con = shared_server().async_connection().await.unwrap();
        let lock = Lock::new("job")
            .namespace(&ns)
            .ttl(Duration::from_millis(300));
        let key = lock.key().to_owned();
        let steps = Arc::new(AtomicUsize::new(0));
        let seen = steps.clone();
        let mut raw = con.clone();
        let err = lock
            .scope_watched_async(&con, |_guard, _loss| async move {
                for _ in 0..100 {
                    seen.fetch_add(1, Ordering::SeqCst);
                    if seen.load(Ordering::SeqCst) == 3 {
                        let () = redis::cmd("DEL")
                            .arg(&key)
                            .query_async(&mut raw)
                            .await
                            .unwrap();
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::LockLost {
                    reason: LostReason::Expired,
                    ..
                }
            ),
            "{err}"
        );
        assert!(steps.load(Ordering::SeqCst) < 20, "the body was stopped");
        // A body that finishes in time returns its value, and the lock is free.
        let v = lock
            .scope_watched_async(&con, |g, _| async move { g.fence() })
            .await
            .unwrap();
        assert_eq!(v, 2);
        let mut c = con.clone();
        assert!(
            lock.try_acquire()
                .run_async(&mut c)
                .await
                .unwrap()
                .is_some()
        );
    });
}

#[test]
fn dropping_a_watched_guard_releases_it() {
    let ns = common::namespace("watch_drop");
    runtime().block_on(async {
        let con = shared_server().async_connection().await.unwrap();
        let lock = Lock::new("job").namespace(&ns).ttl(Duration::from_secs(30));
        drop(lock.acquire_watched_async(&con).await.unwrap());
        let mut c = con.clone();
        let again = lock
            .clone()
            .wait(Duration::from_secs(2))
            .acquire_async(&mut c)
            .await;
        assert!(
            again.is_ok(),
            "released in the background, long before the TTL"
        );
    });
}

/// The watchdog through the async Cluster client, and the blocking facade
/// connecting with a `ClusterClient`.
#[test]
fn watchdog_on_a_cluster() {
    let ns = common::namespace("watch_cluster");
    let cluster = redis_state::testing::shared_cluster();
    runtime().block_on(async {
        let con = cluster.async_connection().await.unwrap();
        let lock = Lock::new("job")
            .namespace(&ns)
            .ttl(Duration::from_millis(300));
        let held = lock.acquire_watched_async(&con).await.unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(!held.loss().is_lost());
        let mut other = con.clone();
        assert!(
            lock.try_acquire()
                .run_async(&mut other)
                .await
                .unwrap()
                .is_none()
        );
        let () = redis::cmd("DEL")
            .arg(lock.key())
            .query_async(&mut other)
            .await
            .unwrap();
        let reason = tokio::time::timeout(Duration::from_millis(400), held.loss().lost_async())
            .await
            .unwrap();
        assert_eq!(reason, LostReason::Expired);
    });
    let lock = Lock::new("blocking")
        .namespace(&ns)
        .ttl(Duration::from_millis(300));
    let held = lock.acquire_watched(&cluster.client()).unwrap();
    assert_eq!(held.loss().wait_timeout(Duration::from_millis(800)), None);
    assert!(held.release().unwrap());
}

#[test]
fn blocking_watchdog() {
    let ns = common::namespace("watch_blocking");
    let lock = Lock::new("job")
        .namespace(&ns)
        .ttl(Duration::from_millis(300));
    let held = lock.acquire_watched(&shared_server().client()).unwrap();
    assert_eq!(held.loss().wait_timeout(Duration::from_millis(900)), None);
    let mut con = shared_server().connection().unwrap();
    assert!(lock.try_acquire().run(&mut con).unwrap().is_none());
    assert!(held.release().unwrap());
    assert!(lock.try_acquire().run(&mut con).unwrap().is_some());
}

// ---------------------------------------------------------------------------
// Huge durations, a dying watchdog, lost acquire replies

/// `max_hold(Some(Duration::MAX))` is a natural way to say "no cap": the
/// watchdog must renew (not die of an `Instant` overflow in its task), and
/// `release` must answer.
#[test]
fn watchdog_with_duration_max_as_no_cap() {
    let ns = common::namespace("watch_nocap");
    runtime().block_on(async {
        let con = shared_server().async_connection().await.unwrap();
        let lock = Lock::new("job")
            .namespace(&ns)
            .ttl(Duration::from_millis(300))
            .max_hold(Some(Duration::MAX));
        let watched = lock.acquire_watched_async(&con).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let mut other = con.clone();
        let stolen = lock.try_acquire().run_async(&mut other).await.unwrap();
        assert!(stolen.is_none(), "the lock ran out: nothing renewed it");
        assert_eq!(watched.loss().reason(), None);
        let released = tokio::time::timeout(Duration::from_secs(3), watched.release_async())
            .await
            .expect("release answers");
        assert!(released.unwrap());
    });
}

/// Durations at the end of the range are clamped, never a panic.
#[test]
fn huge_durations_never_panic() {
    let ns = common::namespace("huge_durations");
    let mut con = shared_server().connection().unwrap();
    let held = Lock::new("huge")
        .namespace(&ns)
        .ttl(Duration::from_millis(200));
    let _held = held.acquire(&mut con).unwrap();
    // Waits out the holder, backing off with delays capped by its TTL.
    let lock = Lock::new("huge")
        .namespace(&ns)
        .ttl(Duration::MAX)
        .wait(Duration::MAX)
        .retry_delay(Duration::MAX, Duration::MAX);
    let guard = lock.acquire(&mut con).unwrap();
    assert!(guard.valid_until() > Instant::now());
    assert!(guard.extend(Duration::MAX).run(&mut con).unwrap());
    assert!(guard.release().run(&mut con).unwrap());
    runtime().block_on(async {
        let con = shared_server().async_connection().await.unwrap();
        let lock = Lock::new("huge_watched")
            .namespace(&ns)
            .ttl(Duration::from_millis(300))
            .renew_every(Duration::MAX)
            .max_hold(Some(Duration::MAX));
        let watched = lock.acquire_watched_async(&con).await.unwrap();
        // Renewing "never" lets the lock run out: reported, not a panic.
        let lost = tokio::time::timeout(Duration::from_secs(2), watched.loss().lost_async())
            .await
            .expect("the loss is reported");
        assert!(matches!(lost, LostReason::Unconfirmed { .. }), "{lost:?}");
        assert!(watched.loss().wait_timeout(Duration::MAX).is_some());
        // The loss is reported at the conservative end of validity (TTL
        // minus drift); the key itself runs out moments later.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!watched.release_async().await.unwrap());
    });
}

/// A connection type redis-state does not know (so it cannot clone it
/// behind the caller's back), which panics on every request once armed.
#[derive(Clone)]
struct Opaque {
    inner: redis::aio::MultiplexedConnection,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl Opaque {
    fn check(&self) {
        if self.armed.load(Ordering::SeqCst) {
            panic!("injected failure in the connection");
        }
    }
}

impl redis::aio::ConnectionLike for Opaque {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        self.check();
        self.inner.req_packed_command(cmd)
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        pipe: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        self.check();
        self.inner.req_packed_commands(pipe, offset, count)
    }
    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

/// The watchdog task panics at its first renewal: the holder hears of it at
/// once, and `release` answers instead of waiting forever.
#[test]
fn a_watchdog_that_panics_reports_the_loss() {
    let ns = common::namespace("watch_panics");
    runtime().block_on(async {
        let con = redis_state::exec::OneServer(Opaque {
            inner: shared_server().async_connection().await.unwrap(),
            armed: Default::default(),
        });
        let lock = Lock::new("job").namespace(&ns).ttl(Duration::from_secs(3));
        let watched = lock.acquire_watched_async(&con).await.unwrap();
        con.0.armed.store(true, Ordering::SeqCst);
        let reason = tokio::time::timeout(Duration::from_secs(2), watched.loss().lost_async())
            .await
            .expect("the loss is reported at the first renewal (1 s)");
        assert_eq!(reason, LostReason::WatchdogStopped);
        let released = tokio::time::timeout(Duration::from_secs(1), watched.release_async())
            .await
            .expect("release answers");
        assert!(
            matches!(
                released,
                Err(Error::LockLost {
                    reason: LostReason::WatchdogStopped,
                    ..
                })
            ),
            "{released:?}"
        );
    });
}

/// The runtime that runs the watchdog shuts down (its task is dropped): the
/// loss signal fires and both release forms answer at once.
#[test]
fn a_watchdog_whose_runtime_shuts_down_reports_the_loss() {
    let ns = common::namespace("watch_shutdown");
    let lock = Lock::new("job").namespace(&ns).ttl(Duration::from_secs(30));
    let acquire = |lock: &Lock| {
        let side = runtime();
        let watched = side.block_on(async {
            let con = shared_server().async_connection().await.unwrap();
            lock.acquire_watched_async(&con).await.unwrap()
        });
        (side, watched)
    };
    let (side, watched) = acquire(&lock);
    assert_eq!(watched.loss().reason(), None);
    drop(side);
    assert_eq!(
        watched.loss().wait_timeout(Duration::from_secs(1)),
        Some(LostReason::WatchdogStopped)
    );
    let released = runtime()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(1), watched.release_async()).await
        })
        .expect("release answers");
    assert!(released.is_err(), "{released:?}");

    // The same with the blocking release, on a second lock.
    let lock = Lock::new("job2")
        .namespace(&ns)
        .ttl(Duration::from_secs(30));
    let (side, watched) = acquire(&lock);
    let signal = watched.loss().clone();
    side.shutdown_background();
    assert_eq!(
        signal.wait_timeout(Duration::from_secs(1)),
        Some(LostReason::WatchdogStopped)
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(watched.release()));
    let released = rx
        .recv_timeout(Duration::from_secs(1))
        .expect("the blocking release answers");
    assert!(released.is_err(), "{released:?}");
}

/// An acquire whose reply is lost (the server stalls past the client's
/// response timeout) may still take the lock on the server. The acquire
/// releases that attempt's token, so the lock is not held by nobody for the
/// whole TTL.
#[test]
fn an_acquire_that_times_out_does_not_orphan_the_lock() {
    let server = RedisServer::start().unwrap();
    let mut admin = server.connection().unwrap();
    let lock = Lock::new("nightly")
        .ttl(Duration::from_secs(30))
        .wait(Duration::ZERO);
    runtime().block_on(async {
        // A 500 ms response timeout (redis-rs' default; the test support's
        // connections wait longer).
        let mut con = server.async_connection().await.unwrap();
        con.set_response_timeout(Duration::from_millis(500));
        let g = lock.acquire_async(&mut con).await.unwrap();
        assert!(g.release().run_async(&mut con).await.unwrap());
        let () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(700)
            .arg("WRITE")
            .query(&mut admin)
            .unwrap();
        let first = lock.acquire_async(&mut con).await;
        assert!(
            first.is_err(),
            "the stall must time the acquire out: {first:?}"
        );
        tokio::time::sleep(Duration::from_millis(800)).await;
        let second = lock
            .clone()
            .wait(Duration::from_secs(2))
            .acquire_async(&mut con)
            .await;
        assert!(second.is_ok(), "{second:?}");
    });
    // The blocking executor, with a read timeout.
    let lock = Lock::new("blocking").ttl(Duration::from_secs(30));
    let mut con = server.connection().unwrap();
    con.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(500)
        .arg("WRITE")
        .query(&mut admin)
        .unwrap();
    let first = lock.clone().wait(Duration::ZERO).acquire(&mut con);
    assert!(first.is_err(), "{first:?}");
    std::thread::sleep(Duration::from_millis(600));
    let exists: bool = redis::cmd("EXISTS")
        .arg(lock.key())
        .query(&mut admin)
        .unwrap();
    assert!(!exists, "the timed-out attempt's token was released");
}

/// An acquire future dropped while its attempt is on the wire (a timeout
/// around it, a `select!`) releases the attempt's token in the background.
#[test]
fn a_cancelled_acquire_does_not_orphan_the_lock() {
    let server = RedisServer::start().unwrap();
    let mut admin = server.connection().unwrap();
    let lock = Lock::new("cancelled").ttl(Duration::from_secs(30));
    runtime().block_on(async {
        let mut con = server.async_connection().await.unwrap();
        let g = lock.acquire_async(&mut con).await.unwrap();
        assert!(g.release().run_async(&mut con).await.unwrap());
        let () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(500)
            .arg("WRITE")
            .query(&mut admin)
            .unwrap();
        let cancelled =
            tokio::time::timeout(Duration::from_millis(100), lock.acquire_async(&mut con)).await;
        assert!(
            cancelled.is_err(),
            "the acquire was cancelled: {cancelled:?}"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        let exists: bool = redis::cmd("EXISTS")
            .arg(lock.key())
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(!exists, "the cancelled attempt's token was released");
        // The same through acquire_watched, which owns a clone of any
        // cloneable connection, even one of a type it does not know.
        let opaque = redis_state::exec::OneServer(Opaque {
            inner: con.clone(),
            armed: Default::default(),
        });
        let () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(500)
            .arg("WRITE")
            .query(&mut admin)
            .unwrap();
        let cancelled = tokio::time::timeout(
            Duration::from_millis(100),
            lock.acquire_watched_async(&opaque),
        )
        .await;
        assert!(cancelled.is_err());
        tokio::time::sleep(Duration::from_millis(600)).await;
        let exists: bool = redis::cmd("EXISTS")
            .arg(lock.key())
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(
            !exists,
            "the cancelled watched attempt's token was released"
        );
    });
}

/// The connections through which a cancelled acquire releases its try:
/// redis-rs' handles (clones share the connection); not a connection type
/// the library does not know.
#[test]
fn cancelled_acquires_release_through_redis_rs_handles() {
    use redis_state::exec::AsyncExecutor;
    runtime().block_on(async {
        let multiplexed = shared_server().async_connection().await.unwrap();
        assert!(multiplexed.detached().is_some());
        let manager = redis::aio::ConnectionManager::new(shared_server().client())
            .await
            .unwrap();
        assert!(manager.detached().is_some());
        let cluster = redis_state::testing::shared_cluster()
            .async_connection()
            .await
            .unwrap();
        let mut detached = cluster.detached().expect("the async Cluster client");
        // It sends like the original (here: routed by slot).
        let ns = common::namespace("detached");
        let lock = Lock::new("x").namespace(&ns);
        let guard = lock.try_acquire().run_async(&mut detached).await.unwrap();
        assert!(
            guard
                .unwrap()
                .release()
                .run_async(&mut detached)
                .await
                .unwrap()
        );
        let opaque = redis_state::exec::OneServer(Opaque {
            inner: multiplexed,
            armed: Default::default(),
        });
        assert!(opaque.detached().is_none());
    });
}

// ---------------------------------------------------------------------------
// Fence keys

/// Distinct resources get distinct fence records, and every resource name
/// (stray braces included) has its fence record in its own slot.
fn fence_keys_are_distinct_and_in_the_resource_slot(r: &mut Runner, ns: &Namespace) {
    let names = [
        "a",
        "{a}",
        "a}b",
        "}",
        "{",
        "{}",
        "{}a",
        "a{",
        "{a",
        "x{a}y",
        "x{a}y:#fence",
        "",
        "{a}#fence",
        "a:#fence",
        "#fence",
        "%7Ba%7D",
    ];
    let mut resources: Vec<String> = names.iter().map(|n| format!("{ns}:{n}")).collect();
    // `<ns>:a` without a hash tag, and the same text as a hash tag.
    resources.push(format!("{{{ns}:a}}"));
    let mut all: Vec<String> = resources.clone();
    all.extend(names.iter().map(|n| (*n).to_owned()));
    let mut seen = std::collections::HashMap::new();
    for res in &all {
        let fence = fence_key_for(res);
        assert_eq!(
            redis_state::keys::key_slot(fence.as_bytes()),
            redis_state::keys::key_slot(res.as_bytes()),
            "{res:?} -> {fence:?}"
        );
        if let Some(other) = seen.insert(fence.clone(), res.clone()) {
            panic!("{other:?} and {res:?} share the fence key {fence:?}");
        }
    }
    // Every resource works, and tokens on one do not fence another: each
    // first write carries a smaller token than every write before it.
    for (i, res) in resources.iter().enumerate() {
        let token = 100 - i as u64;
        assert!(r.run(fenced_set(res, token, b"v")).unwrap(), "{res:?}");
    }
    for (i, res) in resources.iter().enumerate() {
        let token = 100 - i as u64;
        assert!(r.run(fenced_set(res, token, b"w")).unwrap(), "{res:?}");
        assert!(!r.run(fenced_set(res, token - 1, b"x")).unwrap(), "{res:?}");
        let v: String = r.cmd("GET", res).go();
        assert_eq!(v, "w");
        let seen: u64 = r.cmd("GET", &fence_key_for(res)).go();
        assert_eq!(seen, token);
    }
}
