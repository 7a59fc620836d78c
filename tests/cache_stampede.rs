//! Stampede protection across tasks and processes: 1,000 concurrent misses
//! of one key, 500 in this process and 500 in a second OS process (this test
//! binary run again), make exactly one loader call. The loader counts its
//! calls in Redis, so both processes' calls are counted.
//!
//! Standalone and Cluster, blocking threads and async tasks; with the
//! default first read (get-or-lease), with `FirstRead::Get` in both
//! processes, and with one of each.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use redis::Commands;
use redis_state::cache::{Cache, CacheOptions, FirstRead};
use redis_state::prelude::*;
use redis_state::testing::{shared_cluster, shared_server, unique_prefix};
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "expensive:{id}", ttl = "10m")]
struct Expensive {
    id: u32,
    answer: u64,
}

const PER_PROCESS: usize = 500;
const LOAD_TIME: Duration = Duration::from_millis(400);

const ENV_URLS: &str = "REDIS_STATE_STAMPEDE_URLS";
const ENV_NS: &str = "REDIS_STATE_STAMPEDE_NS";
const ENV_MODE: &str = "REDIS_STATE_STAMPEDE_MODE";
const ENV_FIRST: &str = "REDIS_STATE_STAMPEDE_FIRST";

#[derive(Clone)]
struct Side {
    urls: Vec<String>,
    cluster: bool,
    asynchronous: bool,
    ns: Namespace,
    first_read: FirstRead,
}

impl Side {
    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.ns)
    }

    fn counter(&self) -> u64 {
        if self.cluster {
            let mut con = redis::cluster::ClusterClient::new(self.urls.clone())
                .unwrap()
                .get_connection()
                .unwrap();
            con.get::<_, Option<u64>>(self.key("loads"))
                .unwrap()
                .unwrap_or(0)
        } else {
            let mut con = redis::Client::open(self.urls[0].as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            con.get::<_, Option<u64>>(self.key("loads"))
                .unwrap()
                .unwrap_or(0)
        }
    }

    /// A blocking command on a fresh connection (the loader's "database").
    fn incr(&self, name: &str, by: usize) {
        if self.cluster {
            let mut con = redis::cluster::ClusterClient::new(self.urls.clone())
                .unwrap()
                .get_connection()
                .unwrap();
            let _: i64 = con.incr(self.key(name), by).unwrap();
        } else {
            let mut con = redis::Client::open(self.urls[0].as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let _: i64 = con.incr(self.key(name), by).unwrap();
        }
    }

    /// Signals between the processes: `RPUSH` / `BLPOP` on a list.
    fn push(&self, list: &str) {
        self.incr(&format!("{list}:n"), 1);
        if self.cluster {
            let mut con = redis::cluster::ClusterClient::new(self.urls.clone())
                .unwrap()
                .get_connection()
                .unwrap();
            let _: i64 = con.rpush(self.key(list), 1).unwrap();
        } else {
            let mut con = redis::Client::open(self.urls[0].as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let _: i64 = con.rpush(self.key(list), 1).unwrap();
        }
    }

    fn pop(&self, list: &str) {
        let got: Option<(String, String)> = if self.cluster {
            let mut con = redis::cluster::ClusterClient::new(self.urls.clone())
                .unwrap()
                .get_connection()
                .unwrap();
            con.blpop(self.key(list), 30.0).unwrap()
        } else {
            let mut con = redis::Client::open(self.urls[0].as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            con.blpop(self.key(list), 30.0).unwrap()
        };
        assert!(got.is_some(), "no `{list}` signal within 30 s");
    }

    fn loader(&self) -> Result<Option<Expensive>, String> {
        self.incr("loads", 1);
        std::thread::sleep(LOAD_TIME);
        Ok(Some(Expensive { id: 1, answer: 42 }))
    }

    /// Starts `PER_PROCESS` callers that wait for `release`, then all miss
    /// key 1 at once. Returns how many got the right value.
    fn run(&self, release: impl FnOnce()) -> usize {
        let cache = Cache::<Expensive>::new().namespace(&self.ns).options(
            CacheOptions::default()
                .wait(Duration::from_secs(20))
                .first_read(self.first_read),
        );
        let ok = Arc::new(AtomicUsize::new(0));
        let expected = Some(Expensive { id: 1, answer: 42 });
        if self.asynchronous {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (tx, rx) = tokio::sync::watch::channel(false);
                let mut tasks = Vec::new();
                enum Con {
                    One(redis::aio::MultiplexedConnection),
                    Cluster(redis::cluster_async::ClusterConnection),
                }
                let con = if self.cluster {
                    Con::Cluster(
                        redis::cluster::ClusterClient::new(self.urls.clone())
                            .unwrap()
                            .get_async_connection()
                            .await
                            .unwrap(),
                    )
                } else {
                    Con::One(
                        redis::Client::open(self.urls[0].as_str())
                            .unwrap()
                            .get_multiplexed_async_connection()
                            .await
                            .unwrap(),
                    )
                };
                for _ in 0..PER_PROCESS {
                    let mut rx = rx.clone();
                    let cache = cache.clone();
                    let side = self.clone();
                    let ok = ok.clone();
                    let expected = expected.clone();
                    let mut con = match &con {
                        Con::One(c) => Con::One(c.clone()),
                        Con::Cluster(c) => Con::Cluster(c.clone()),
                    };
                    tasks.push(tokio::spawn(async move {
                        rx.wait_for(|go| *go).await.unwrap();
                        let load = || async move {
                            tokio::task::spawn_blocking(move || side.loader())
                                .await
                                .unwrap()
                        };
                        let got = match &mut con {
                            Con::One(c) => cache.get_or_load_async(c, &1, load).await,
                            Con::Cluster(c) => cache.get_or_load_async(c, &1, load).await,
                        };
                        if got.unwrap() == expected {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                    }));
                }
                tokio::task::block_in_place(release);
                tx.send(true).unwrap();
                for t in tasks {
                    t.await.unwrap();
                }
            });
        } else {
            let barrier = Arc::new(Barrier::new(PER_PROCESS + 1));
            let threads: Vec<_> = (0..PER_PROCESS)
                .map(|_| {
                    let barrier = barrier.clone();
                    let cache = cache.clone();
                    let side = self.clone();
                    let ok = ok.clone();
                    let expected = expected.clone();
                    std::thread::spawn(move || {
                        let got = if side.cluster {
                            let mut con = redis::cluster::ClusterClient::new(side.urls.clone())
                                .unwrap()
                                .get_connection()
                                .unwrap();
                            barrier.wait();
                            cache.get_or_load(&mut con, &1, || side.loader())
                        } else {
                            let mut con = redis::Client::open(side.urls[0].as_str())
                                .unwrap()
                                .get_connection()
                                .unwrap();
                            barrier.wait();
                            cache.get_or_load(&mut con, &1, || side.loader())
                        };
                        if got.unwrap() == expected {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            release();
            barrier.wait();
            for t in threads {
                t.join().unwrap();
            }
        }
        ok.load(Ordering::SeqCst)
    }
}

/// The second process: run by the tests below through `current_exe`.
#[test]
#[ignore = "helper: the stampede tests run it in a child process"]
fn stampede_child() {
    let (Ok(urls), Ok(ns), Ok(mode), Ok(first)) = (
        std::env::var(ENV_URLS),
        std::env::var(ENV_NS),
        std::env::var(ENV_MODE),
        std::env::var(ENV_FIRST),
    ) else {
        return;
    };
    let urls: Vec<String> = urls.split(',').map(str::to_owned).collect();
    let side = Side {
        cluster: urls.len() > 1,
        urls,
        asynchronous: mode == "async",
        ns: Namespace::new(ns).unwrap(),
        first_read: if first == "get" {
            FirstRead::Get
        } else {
            FirstRead::Lease
        },
    };
    let ok = side.run(|| {
        side.push("ready");
        side.pop("go");
    });
    side.incr("ok", ok);
}

/// The stampede with the first read `here` in this process and `there` in
/// the child.
fn stampede(cluster: bool, asynchronous: bool) {
    stampede_with(cluster, asynchronous, FirstRead::Lease, FirstRead::Lease);
}

fn stampede_with(cluster: bool, asynchronous: bool, here: FirstRead, there: FirstRead) {
    let urls = if cluster {
        shared_cluster().urls()
    } else {
        vec![shared_server().url()]
    };
    let side = Side {
        urls: urls.clone(),
        cluster,
        asynchronous,
        ns: Namespace::new(unique_prefix("stampede")).unwrap(),
        first_read: here,
    };
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["stampede_child", "--exact", "--ignored", "--test-threads=1"])
        .env(ENV_URLS, urls.join(","))
        .env(ENV_NS, side.ns.as_str())
        .env(ENV_MODE, if asynchronous { "async" } else { "sync" })
        .env(
            ENV_FIRST,
            if there == FirstRead::Get {
                "get"
            } else {
                "lease"
            },
        )
        .spawn()
        .unwrap();
    let ok_here = side.run(|| {
        // Both processes have their callers parked: release them together.
        side.pop("ready");
        side.push("go");
    });
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the child process failed");
    let ok_there = if cluster {
        let mut con = redis::cluster::ClusterClient::new(urls)
            .unwrap()
            .get_connection()
            .unwrap();
        con.get::<_, Option<usize>>(side.key("ok"))
            .unwrap()
            .unwrap_or(0)
    } else {
        let mut con = redis::Client::open(urls[0].as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        con.get::<_, Option<usize>>(side.key("ok"))
            .unwrap()
            .unwrap_or(0)
    };
    assert_eq!(ok_here, PER_PROCESS, "callers of this process");
    assert_eq!(ok_there, PER_PROCESS, "callers of the child process");
    assert_eq!(
        side.counter(),
        1,
        "1,000 concurrent misses in 2 processes must make one loader call"
    );
}

#[test]
fn stampede_standalone_sync() {
    stampede(false, false);
}

#[test]
fn stampede_standalone_async() {
    stampede(false, true);
}

#[test]
fn stampede_cluster_sync() {
    stampede(true, false);
}

#[test]
fn stampede_cluster_async() {
    stampede(true, true);
}

#[test]
fn stampede_standalone_sync_get_first() {
    stampede_with(false, false, FirstRead::Get, FirstRead::Get);
}

#[test]
fn stampede_cluster_async_get_first() {
    stampede_with(true, true, FirstRead::Get, FirstRead::Get);
}

/// One process reads with a plain `GET` first, the other with
/// get-or-lease: they share the lease, so still one load.
#[test]
fn stampede_standalone_async_mixed_first_reads() {
    stampede_with(false, true, FirstRead::Lease, FirstRead::Get);
}

/// A fill nobody waited for writes no wake-up stream (and publishes
/// nothing); a caller that finds the lease busy marks it, and then the fill
/// hands it the value through the stream: the waiter does not load, and the
/// stream holds the value.
#[test]
fn only_a_waited_fill_writes_the_wake_up_stream() {
    let server = shared_server();
    let client = redis::Client::open(server.url()).unwrap();
    let ns = Namespace::new(unique_prefix("waited")).unwrap();
    let cache = Cache::<Expensive>::new().namespace(&ns);
    let done = |id: u32| format!("{{{}}}:#done", cache.key(&id));
    let lease = |id: u32| format!("{{{}}}:#lease", cache.key(&id));
    let mut con = client.get_connection().unwrap();

    // A miss nobody waits for: the fill stores the entry, no stream.
    let v = cache
        .get_or_load(&mut con, &1, || {
            Ok::<_, String>(Some(Expensive { id: 1, answer: 1 }))
        })
        .unwrap();
    assert_eq!(v.map(|e| e.answer), Some(1));
    assert!(con.exists::<_, bool>(cache.key(&1)).unwrap());
    assert!(
        !con.exists::<_, bool>(done(1)).unwrap(),
        "no wake-up stream"
    );
    assert!(
        !con.exists::<_, bool>(lease(1)).unwrap(),
        "the lease is gone"
    );

    // A loader holds the lease (a second cache: another process's flights)
    // while a caller of this cache misses: it finds the lease busy, marks
    // it and waits.
    let other = Cache::<Expensive>::new().namespace(&ns);
    let (loading_tx, loading_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let mut con2 = client.get_connection().unwrap();
    let loader = std::thread::spawn(move || {
        other.get_or_load(&mut con2, &2, move || {
            loading_tx.send(()).unwrap();
            go_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            Ok::<_, String>(Some(Expensive { id: 2, answer: 42 }))
        })
    });
    loading_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let holder: String = con.get(lease(2)).unwrap();
    assert!(!holder.ends_with("~w"), "not waited for yet: {holder}");
    let waiter = {
        let cache = cache.clone();
        let mut con3 = client.get_connection().unwrap();
        std::thread::spawn(move || {
            cache.get_or_load(&mut con3, &2, || {
                Err::<Option<Expensive>, _>("the waiter must not load".to_owned())
            })
        })
    };
    // The waiter marks the lease when it finds it busy.
    let mut marked = false;
    for _ in 0..500 {
        let holder: Option<String> = con.get(lease(2)).unwrap();
        if holder.as_deref().is_some_and(|h| h.ends_with("~w")) {
            marked = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(marked, "the waiter marks the lease it waits for");
    go_tx.send(()).unwrap();
    let filled = loader.join().unwrap().unwrap();
    assert_eq!(filled.map(|e| e.answer), Some(42));
    let waited = waiter.join().unwrap().unwrap();
    assert_eq!(
        waited.map(|e| e.answer),
        Some(42),
        "the waiter got the fill"
    );
    let len: usize = con.xlen(done(2)).unwrap();
    assert_eq!(len, 1, "a waited fill writes the wake-up stream");
}
