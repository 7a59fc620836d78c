//! The local (in-process) cache: served without a round trip, dropped by
//! any write through any connection (RESP3 client tracking), by FLUSHALL and
//! on reconnect; the race between a read and an invalidation never leaves a
//! stale copy.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_state::cache::{Cache, LocalCache, LocalCacheOptions};
use redis_state::prelude::*;
use redis_state::testing::{RedisServer, shared_cluster, shared_server, unique_prefix};
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "profile:{id}", ttl = "10m")]
struct Profile {
    id: u32,
    name: String,
}

fn profile(id: u32, name: &str) -> Profile {
    Profile {
        id,
        name: name.to_owned(),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn eventually(mut check: impl FnMut() -> bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    check()
}

async fn no_load() -> Result<Option<Profile>, String> {
    panic!("this read must be a hit")
}

async fn setup(url: &str, ns: &Namespace, opts: LocalCacheOptions) -> (Cache<Profile>, LocalCache) {
    let prefix = format!("{ns}:profile:");
    let local = LocalCache::connect_async(url, &[&prefix], opts)
        .await
        .unwrap();
    let cache = Cache::<Profile>::new()
        .namespace(ns)
        .with_local(local.clone());
    (cache, local)
}

#[test]
fn hits_are_local_and_any_write_drops_them() {
    let server = shared_server();
    let ns = Namespace::new(unique_prefix("local_hit")).unwrap();
    rt().block_on(async {
        let mut con = server.async_connection().await.unwrap();
        let mut other = server.async_connection().await.unwrap();
        let (cache, local) = setup(&server.url(), &ns, LocalCacheOptions::default()).await;
        assert!(local.is_connected());
        let key = cache.key(&1);

        let got = cache
            .get_or_load_async(&mut con, &1, || async {
                Ok::<_, String>(Some(profile(1, "ada")))
            })
            .await
            .unwrap();
        assert_eq!(got, Some(profile(1, "ada")));
        // The fill's own write is reported too (asynchronously), so a copy
        // is kept by a read after that report.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !local.contains(&key) && Instant::now() < deadline {
            let got = cache
                .get_or_load_async(&mut con, &1, no_load)
                .await
                .unwrap();
            assert_eq!(got, Some(profile(1, "ada")));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(local.contains(&key));
        let hits = local.stats().hits;
        for _ in 0..100 {
            assert_eq!(
                cache
                    .get_or_load_async(&mut con, &1, no_load)
                    .await
                    .unwrap(),
                Some(profile(1, "ada"))
            );
        }
        assert_eq!(local.stats().hits, hits + 100, "served locally");

        // A plain SET from another connection (any client would do).
        let _: () = other.set(&key, "garbage from elsewhere").await.unwrap();
        assert!(eventually(|| !local.contains(&key), Duration::from_secs(2)).await);
        // Now it reads Redis again, which holds foreign bytes: a miss.
        let got = cache
            .get_or_load_async(&mut con, &1, || async {
                Ok::<_, String>(Some(profile(1, "bob")))
            })
            .await
            .unwrap();
        assert_eq!(got, Some(profile(1, "bob")));

        // Invalidation through the cache API on another connection.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !local.contains(&key) && Instant::now() < deadline {
            let _ = cache
                .get_or_load_async(&mut con, &1, no_load)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(local.contains(&key));
        assert!(cache.invalidate(&1).run_async(&mut other).await.unwrap());
        assert!(eventually(|| !local.contains(&key), Duration::from_secs(2)).await);
        assert!(local.stats().invalidations >= 2);
    });
}

#[test]
fn keys_outside_the_tracked_prefixes_are_never_kept() {
    let server = shared_server();
    let ns = Namespace::new(unique_prefix("local_prefix")).unwrap();
    rt().block_on(async {
        let mut con = server.async_connection().await.unwrap();
        let local = LocalCache::connect_async(
            &server.url(),
            &["somewhere-else:"],
            LocalCacheOptions::default(),
        )
        .await
        .unwrap();
        let cache = Cache::<Profile>::new()
            .namespace(&ns)
            .with_local(local.clone());
        cache
            .set(&2, &profile(2, "x"))
            .run_async(&mut con)
            .await
            .unwrap();
        for _ in 0..3 {
            cache
                .get_or_load_async(&mut con, &2, no_load)
                .await
                .unwrap();
        }
        assert!(local.is_empty());
        assert_eq!(local.stats().hits, 0);
    });
}

#[test]
fn bounded_by_capacity_and_age() {
    let server = shared_server();
    let ns = Namespace::new(unique_prefix("local_bound")).unwrap();
    rt().block_on(async {
        let mut con = server.async_connection().await.unwrap();
        let opts = LocalCacheOptions::default()
            .capacity(10)
            .max_age(Duration::from_millis(300));
        let (cache, local) = setup(&server.url(), &ns, opts).await;
        for id in 0..50 {
            cache
                .set(&id, &profile(id, "n"))
                .run_async(&mut con)
                .await
                .unwrap();
        }
        // Let the invalidations of those writes arrive before reading.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for id in 0..50 {
            cache
                .get_or_load_async(&mut con, &id, no_load)
                .await
                .unwrap();
            assert!(local.len() <= 10);
        }
        assert_eq!(local.len(), 10);
        let key = cache.key(&49);
        assert!(local.contains(&key));
        assert!(local.get::<Profile>(&key).is_some());
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(local.get::<Profile>(&key).is_none(), "older than max_age");
    });
}

/// Eviction keeps what is read: a key read between every read of a scan
/// over five times the capacity stays local throughout (first-in-first-out,
/// the previous policy, dropped it after `capacity` other keys), while
/// keys read once are the ones evicted.
#[test]
fn popular_keys_survive_a_scan() {
    let server = shared_server();
    let ns = Namespace::new(unique_prefix("local_sieve")).unwrap();
    rt().block_on(async {
        let mut con = server.async_connection().await.unwrap();
        let opts = LocalCacheOptions::default().capacity(10);
        let (cache, local) = setup(&server.url(), &ns, opts).await;
        for id in 0..60 {
            cache
                .set(&id, &profile(id, "n"))
                .run_async(&mut con)
                .await
                .unwrap();
        }
        // Wait until the invalidations of those writes have arrived: a read
        // of a sentinel key registered before one more write is voided by
        // that write's invalidation, which the server sends after theirs.
        let sentinel = cache.key(&999);
        let ticket = local.begin(&sentinel).unwrap();
        cache
            .set(&999, &profile(999, "n"))
            .run_async(&mut con)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while local.pending_len() > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the sentinel's invalidation arrives");
        drop(ticket);
        let hot = cache.key(&0);
        cache
            .get_or_load_async(&mut con, &0, no_load)
            .await
            .unwrap();
        assert!(local.contains(&hot));
        for id in 10..60 {
            let before = local.stats().hits;
            cache
                .get_or_load_async(&mut con, &0, no_load)
                .await
                .unwrap();
            assert_eq!(
                local.stats().hits,
                before + 1,
                "the popular key was served locally"
            );
            cache
                .get_or_load_async(&mut con, &id, no_load)
                .await
                .unwrap();
            assert!(local.len() <= 10);
        }
        assert!(local.contains(&hot));
        assert_eq!(local.len(), 10);
        let scanned = (10..60).filter(|id| local.contains(&cache.key(id))).count();
        assert_eq!(scanned, 9, "the rest of the capacity holds scanned keys");
    });
}

/// Reads whose reply is not kept (a miss that goes to the loader, a loader
/// error, a future dropped mid-load) leave no pending registration behind,
/// and do not crowd out the copies: later hits are still kept.
#[test]
fn misses_leave_no_pending_reads_and_copies_are_still_kept() {
    let server = shared_server();
    let ns = Namespace::new(unique_prefix("local_pending")).unwrap();
    rt().block_on(async {
        let mut con = server.async_connection().await.unwrap();
        let opts = LocalCacheOptions::default().capacity(10);
        let (cache, local) = setup(&server.url(), &ns, opts).await;
        // Misses found nothing (no negative caching: nothing stored).
        for id in 0..100 {
            let got = cache
                .get_or_load_async(&mut con, &id, || async { Ok::<_, String>(None) })
                .await
                .unwrap();
            assert_eq!(got, None);
        }
        // Misses whose loader fails.
        for id in 100..130 {
            let err = cache
                .get_or_load_async(&mut con, &id, || async {
                    Err::<Option<Profile>, _>("source down")
                })
                .await;
            assert!(err.is_err());
        }
        // Misses dropped while their loader runs.
        for id in 130..140 {
            let read = cache.get_or_load_async(&mut con, &id, || async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, String>(Some(profile(id, "late")))
            });
            assert!(
                tokio::time::timeout(Duration::from_millis(20), read)
                    .await
                    .is_err()
            );
        }
        assert_eq!(local.pending_len(), 0, "every read ended");
        assert_eq!(local.len(), 0);

        // Values written, then read twice: the first read keeps a copy.
        for id in 500..505 {
            cache
                .set(&id, &profile(id, "kept"))
                .run_async(&mut con)
                .await
                .unwrap();
        }
        // Let the invalidations of those writes arrive before reading.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for id in 500..505 {
            let got = cache
                .get_or_load_async(&mut con, &id, no_load)
                .await
                .unwrap();
            assert_eq!(got, Some(profile(id, "kept")));
        }
        for id in 500..505 {
            assert!(local.contains(&cache.key(&id)), "copy of {id} kept");
        }
        assert_eq!(local.len(), 5);
        assert_eq!(local.pending_len(), 0);
    });
}

/// The race, forced step by step: a read registers, gets its reply, a write
/// lands and its invalidation is handled, then the reply would be kept. It
/// must not be. And the other order: kept, then invalidated.
#[test]
fn a_read_racing_an_invalidation_never_leaves_a_stale_copy() {
    let server = shared_server();
    let ns = Namespace::new(unique_prefix("local_race")).unwrap();
    rt().block_on(async {
        let mut con = server.async_connection().await.unwrap();
        let mut writer = server.async_connection().await.unwrap();
        let (cache, local) = setup(&server.url(), &ns, LocalCacheOptions::default()).await;
        let key = cache.key(&3);
        cache
            .set(&3, &profile(3, "v1"))
            .run_async(&mut con)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;

        // 1. invalidation between the reply and keeping it.
        let ticket = local.begin(&key).unwrap();
        let read = cache.get(&3).run_async(&mut con).await.unwrap().unwrap();
        assert_eq!(read.name, "v1");
        let before = local.stats().invalidations;
        cache
            .set(&3, &profile(3, "v2"))
            .run_async(&mut writer)
            .await
            .unwrap();
        assert!(
            eventually(
                || local.stats().invalidations > before,
                Duration::from_secs(2)
            )
            .await
        );
        assert!(
            !local.complete(ticket, read),
            "a reply older than an invalidation is dropped"
        );
        assert!(local.get::<Profile>(&key).is_none());

        // 2. invalidation after keeping it.
        let ticket = local.begin(&key).unwrap();
        let read = cache.get(&3).run_async(&mut con).await.unwrap().unwrap();
        assert_eq!(read.name, "v2");
        assert!(local.complete(ticket, read));
        assert_eq!(local.get::<Profile>(&key).unwrap().name, "v2");
        cache
            .set(&3, &profile(3, "v3"))
            .run_async(&mut writer)
            .await
            .unwrap();
        assert!(
            eventually(
                || local.get::<Profile>(&key).is_none(),
                Duration::from_secs(2)
            )
            .await
        );

        // 3. the same race, unforced: a writer and readers run freely; once
        //    the writer stops and its last invalidation arrived, every local
        //    copy equals Redis.
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        let mut reader_cons = Vec::new();
        for _ in 0..4 {
            reader_cons.push(server.async_connection().await.unwrap());
        }
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let written = std::sync::Arc::new(AtomicU32::new(0));
        let writer_task = {
            let cache = cache.clone();
            let stop = stop.clone();
            let written = written.clone();
            tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    written.store(n, Ordering::SeqCst);
                    cache
                        .set(&3, &profile(3, &format!("w{n}")))
                        .run_async(&mut writer)
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                }
                n
            })
        };
        let mut readers = Vec::new();
        for mut con in reader_cons {
            let cache = cache.clone();
            let stop = stop.clone();
            readers.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    // A local hit completes without awaiting: yield, as a
                    // real task would, so the writer and the connections run.
                    tokio::task::yield_now().await;
                    cache
                        .get_or_load_async(&mut con, &3, || async {
                            Ok::<_, String>(Some(profile(3, "loaded")))
                        })
                        .await
                        .unwrap();
                }
            }));
        }
        assert!(
            eventually(
                || written.load(Ordering::SeqCst) >= 300,
                Duration::from_secs(20)
            )
            .await,
            "the writer ran"
        );
        stop.store(true, Ordering::SeqCst);
        for r in readers {
            r.await.unwrap();
        }
        writer_task.await.unwrap();
        let stats = local.stats();
        assert!(stats.hits > 0 && stats.invalidations > 0, "{stats:?}");
        // A final PING round trip on the tracking side is not observable;
        // give the last push its delivery time.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let in_redis = cache.get(&3).run_async(&mut con).await.unwrap();
        if let Some(copy) = local.get::<Profile>(&key) {
            assert_eq!(Some(copy), in_redis, "a stale local copy survived");
        }
        // And one more read through the strategy agrees with Redis.
        let via_cache = cache
            .get_or_load_async(&mut con, &3, no_load)
            .await
            .unwrap();
        assert_eq!(via_cache, in_redis);
    });
}

#[test]
fn flushall_and_reconnects_drop_everything() {
    let server = RedisServer::start().unwrap();
    let ns = Namespace::new(unique_prefix("local_flush")).unwrap();
    rt().block_on(async {
        let mut con = server.async_connection().await.unwrap();
        let opts = LocalCacheOptions::default().ping_interval(Duration::from_millis(100));
        let (cache, local) = setup(&server.url(), &ns, opts).await;
        let warm = async |cache: &Cache<Profile>, con: &mut redis::aio::MultiplexedConnection| {
            for id in 0..5 {
                cache
                    .set(&id, &profile(id, "x"))
                    .run_async(con)
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
            for id in 0..5 {
                cache.get_or_load_async(con, &id, no_load).await.unwrap();
            }
        };
        warm(&cache, &mut con).await;
        assert_eq!(local.len(), 5);

        let _: () = redis::cmd("FLUSHALL").query_async(&mut con).await.unwrap();
        assert!(
            eventually(|| local.is_empty(), Duration::from_secs(2)).await,
            "FLUSHALL"
        );

        warm(&cache, &mut con).await;
        assert_eq!(local.len(), 5);
        let flushes = local.stats().flushes;
        // Kill every other client: the tracking connection drops.
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("SKIPME")
            .arg("yes")
            .query_async(&mut con)
            .await
            .unwrap_or(0);
        assert!(
            eventually(|| local.is_empty(), Duration::from_secs(2)).await,
            "disconnect"
        );
        // A write while tracking is down must not leave a stale copy: the
        // reconnect drops everything again once tracking is back.
        let mut fresh = server.async_connection().await.unwrap();
        cache
            .set(&0, &profile(0, "while down"))
            .run_async(&mut fresh)
            .await
            .unwrap();
        assert!(
            eventually(|| local.is_connected(), Duration::from_secs(5)).await,
            "reconnected"
        );
        assert!(local.stats().flushes > flushes);
        let got = cache
            .get_or_load_async(&mut fresh, &0, no_load)
            .await
            .unwrap();
        assert_eq!(got.unwrap().name, "while down");
        // Caching works again.
        let _ = cache
            .get_or_load_async(&mut fresh, &0, no_load)
            .await
            .unwrap();
        assert!(local.contains(&cache.key(&0)));
        let _: () = fresh.set(cache.key(&0), "x").await.unwrap();
        assert!(eventually(|| !local.contains(&cache.key(&0)), Duration::from_secs(2)).await);
    });
}

#[test]
fn cluster_writes_on_any_primary_drop_local_copies() {
    let cluster = shared_cluster();
    let ns = Namespace::new(unique_prefix("local_cluster")).unwrap();
    rt().block_on(async {
        let mut con = cluster.async_connection().await.unwrap();
        let mut other = cluster.async_connection().await.unwrap();
        let urls: Vec<String> = cluster.primaries().iter().map(|p| p.url()).collect();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        let prefix = format!("{ns}:profile:");
        let local =
            LocalCache::connect_nodes_async(&urls, &[&prefix], LocalCacheOptions::default())
                .await
                .unwrap();
        let cache = Cache::<Profile>::new()
            .namespace(&ns)
            .with_local(local.clone());
        for id in 0..30 {
            cache
                .set(&id, &profile(id, "a"))
                .run_async(&mut con)
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        for id in 0..30 {
            cache
                .get_or_load_async(&mut con, &id, no_load)
                .await
                .unwrap();
        }
        assert_eq!(local.len(), 30);
        // Keys spread over the primaries; each write reaches us from its node.
        for id in 0..30 {
            let _: () = other.set(cache.key(&id), "x").await.unwrap();
        }
        assert!(eventually(|| local.is_empty(), Duration::from_secs(2)).await);
    });
}

/// A URL with a fragment (or a query) connects as redis-rs parses it: the
/// RESP3 setting is not appended after the `#` where it would be lost, and
/// tracking works (a write elsewhere drops the copy).
#[test]
fn a_url_with_a_fragment_connects_with_tracking() {
    let server = shared_server();
    let ns = Namespace::new(unique_prefix("local_fragment")).unwrap();
    rt().block_on(async {
        let mut con = server.async_connection().await.unwrap();
        let mut other = server.async_connection().await.unwrap();
        for url in [
            format!("{}/#x", server.url()),
            format!("{}/?db=0#frag?protocol=resp2", server.url()),
        ] {
            let (cache, local) = setup(&url, &ns, LocalCacheOptions::default()).await;
            assert!(local.is_connected(), "{url}");
            let key = cache.key(&7);
            let _ = cache
                .get_or_load_async(&mut con, &7, || async {
                    Ok::<_, String>(Some(profile(7, "ada")))
                })
                .await
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !local.contains(&key) && Instant::now() < deadline {
                let got = cache
                    .get_or_load_async(&mut con, &7, no_load)
                    .await
                    .unwrap();
                assert_eq!(got, Some(profile(7, "ada")));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert!(local.contains(&key), "{url}: a copy is kept");
            let _: () = other.del(&key).await.unwrap();
            assert!(
                eventually(|| !local.contains(&key), Duration::from_secs(5)).await,
                "{url}: the server's tracking message dropped the copy"
            );
        }
    });
}
