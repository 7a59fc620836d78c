//! Write-behind in the bucketed layout (`#[cache(buckets = N)]`): each
//! entry key carries its bucket's hash tag and each bucket has its own
//! queue in that tag. Keys and queues on every executor; tags, key and
//! pattern invalidation on bucketed keys; entries spread over a Cluster's
//! primaries; workers drain every bucket's queue; killing a worker
//! mid-batch loses no entry. (The one round trip and the refused append
//! on a Cluster are counted in `tests/cache_round_trips.rs`.)

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Runner;
use redis::AsyncCommands;
use redis_state::cache::behind::{bucket_stream_key, stream_keys};
use redis_state::cache::{
    Cache, KeyPattern, Tag, WriteBehindWorker, invalidate_pattern, invalidate_pattern_async,
    shutdown,
};
use redis_state::keys::{IdBuf, IdValue};
use redis_state::prelude::*;
use redis_state::testing::{shared_cluster, shared_server, unique_prefix};
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "wbb_account:{id}", ttl = "10m", buckets = 16)]
struct Account {
    id: u32,
    balance: i64,
}

/// A tagged type in the bucketed layout: its write-behind keeps two rounds
/// (the tag sets live in other slots), its tags work as on any key.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(
    key = "wbb_ledger:{id}",
    ttl = "10m",
    buckets = 8,
    tag = "owner:{owner}"
)]
struct Ledger {
    id: u32,
    owner: String,
}

/// The source of truth of `Account`: its saves and deletes drop the
/// account's bucketed entry.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "wbb_account_row:{id}", invalidates(Account = "id"))]
struct AccountRow {
    #[redis(id)]
    id: u32,
    balance: i64,
}

/// The default number of buckets of `RedisHash` models, for the spread.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "wbb_spread:{id}", ttl = "10m", buckets = 64)]
struct Spread {
    id: u32,
}

fn id_buf(id: u32) -> IdBuf {
    let mut buf = IdBuf::new();
    id.write_id(&mut buf);
    buf
}

fn account(id: u32) -> Account {
    Account {
        id,
        balance: i64::from(id) * 10,
    }
}

// ---------------------------------------------------------------------------
// Keys and queues, on the four executors

/// Each entry key carries its bucket's hash tag after the template's
/// leading text, each write lands in its own bucket's queue, and the depth
/// is the sum over the buckets.
fn keys_and_queues_per_bucket(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Account>::new().namespace(ns);
    let mut per_bucket: HashMap<u16, u64> = HashMap::new();
    for id in 0..64 {
        r.run(cache.write_behind(&id, &account(id))).unwrap();
        assert_eq!(r.run(cache.get(&id)).unwrap(), Some(account(id)));
        let bucket = Account::SCHEMA.bucket_of(&id_buf(id));
        *per_bucket.entry(bucket).or_default() += 1;
        let key = Account::SCHEMA.key(Some(ns), &id_buf(id));
        let scope = Account::SCHEMA.bucket_scope(Some(ns), bucket);
        assert_eq!(key, format!("{scope}:{id}"));
        assert!(
            scope.starts_with(&format!("{ns}:wbb_account:{{")),
            "{scope}"
        );
        let stored: Option<String> = r.cmd("GET", &key).go();
        assert!(stored.is_some(), "the entry is under {key}");
    }
    assert!(
        per_bucket.len() > 8,
        "64 ids over 16 buckets: {per_bucket:?}"
    );
    let streams = stream_keys::<Account>(Some(ns));
    assert_eq!(streams.len(), 16);
    for (b, stream) in streams.iter().enumerate() {
        assert_eq!(*stream, bucket_stream_key::<Account>(Some(ns), b as u16));
        assert!(stream.ends_with(":#wb:account"), "{stream}");
        let len: u64 = r.cmd("XLEN", stream).go();
        assert_eq!(len, per_bucket.get(&(b as u16)).copied().unwrap_or(0));
    }
    let worker = WriteBehindWorker::new(&cache, "w");
    assert_eq!(worker.streams(), &streams[..]);
    assert_eq!(r.run(worker.depth()).unwrap(), 64);
}

/// Tags, invalidation by key and by pattern work on bucketed keys.
fn invalidation_on_bucketed_keys(r: &mut Runner, ns: &Namespace) {
    let ledgers = Cache::<Ledger>::new().namespace(ns);
    for id in 0..6 {
        let l = Ledger {
            id,
            owner: if id % 2 == 0 { "ada" } else { "bob" }.to_owned(),
        };
        r.run(ledgers.write_behind(&id, &l)).unwrap();
        assert_eq!(r.run(ledgers.get(&id)).unwrap(), Some(l));
    }
    let dropped = r
        .run(ledgers.invalidate_tag(&Tag::new("owner:").value(&"ada")))
        .unwrap();
    assert_eq!(dropped, 3);
    for id in 0..6 {
        assert_eq!(r.run(ledgers.get(&id)).unwrap().is_some(), id % 2 == 1);
    }

    let accounts = Cache::<Account>::new().namespace(ns);
    for id in 0..10 {
        r.run(accounts.set(&id, &account(id))).unwrap();
    }
    r.run(accounts.invalidate(&3)).unwrap();
    assert_eq!(r.run(accounts.get(&3)).unwrap(), None);
    assert_eq!(r.run(accounts.get(&4)).unwrap(), Some(account(4)));

    let pattern = KeyPattern::entries_of::<Account, _>(Some(ns), &());
    assert_eq!(
        pattern.as_str(),
        format!("{ns}:wbb_account:{{*}}:*"),
        "any bucket's tag"
    );
    let deleted = match r {
        Runner::Sync(con) => invalidate_pattern(con, &pattern).unwrap(),
        Runner::SyncCluster(con) => invalidate_pattern(con, &pattern).unwrap(),
        Runner::Async(rt, con) => rt
            .block_on(invalidate_pattern_async(con, &pattern))
            .unwrap(),
        Runner::AsyncCluster(rt, con) => rt
            .block_on(invalidate_pattern_async(con, &pattern))
            .unwrap(),
    };
    assert_eq!(deleted, 9);
    for id in 0..10 {
        assert_eq!(r.run(accounts.get(&id)).unwrap(), None);
    }
    // The other type's entries are not the pattern's.
    assert!(r.run(ledgers.get(&1)).unwrap().is_some());
}

/// A `RedisHash` model's `invalidates(Account = "id")` reaches the
/// bucketed entry on save and on delete.
fn entity_events_reach_bucketed_keys(r: &mut Runner, ns: &Namespace) {
    let accounts = Cache::<Account>::new().namespace(ns);
    for id in [1, 2] {
        r.run(accounts.write_behind(&id, &account(id))).unwrap();
    }
    r.run(AccountRow { id: 1, balance: 5 }.save().namespace(ns))
        .unwrap();
    assert_eq!(
        r.run(accounts.get(&1)).unwrap(),
        None,
        "the save dropped it"
    );
    assert_eq!(r.run(accounts.get(&2)).unwrap(), Some(account(2)));
    r.run(AccountRow { id: 2, balance: 5 }.save().namespace(ns))
        .unwrap();
    r.run(accounts.set(&2, &account(2))).unwrap();
    r.run(AccountRow::delete(&2).namespace(ns)).unwrap();
    assert_eq!(
        r.run(accounts.get(&2)).unwrap(),
        None,
        "the delete dropped it"
    );
}

matrix!(
    keys_and_queues_per_bucket,
    invalidation_on_bucketed_keys,
    entity_events_reach_bucketed_keys
);

// ---------------------------------------------------------------------------
// The spread over a Cluster's primaries

/// Entries and queues of a bucketed type spread over every primary, as the
/// buckets' slots do (evenly spaced over the 16,384 slots).
#[test]
fn entries_spread_over_the_primaries() {
    let cluster = shared_cluster();
    let ns = Namespace::new(unique_prefix("wbb_spread")).unwrap();
    let cache = Cache::<Spread>::new().namespace(&ns);
    let mut con = cluster.connection().unwrap();
    const N: u32 = 3000;
    for id in 0..N {
        cache
            .write_behind(&id, &Spread { id })
            .run(&mut con)
            .unwrap();
    }
    let mut entries = Vec::new();
    let mut queues = Vec::new();
    for p in cluster.primaries() {
        let mut found = (0u64, 0u64);
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = p
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{ns}:*"))
                        .arg("COUNT")
                        .arg(1000),
                )
                .unwrap();
            for k in keys {
                if k.ends_with(":#wb:spread") {
                    found.1 += 1;
                } else {
                    found.0 += 1;
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        entries.push(found.0);
        queues.push(found.1);
    }
    assert_eq!(entries.iter().sum::<u64>(), u64::from(N), "{entries:?}");
    assert_eq!(queues.iter().sum::<u64>(), 64, "{queues:?}");
    let mean = f64::from(N) / entries.len() as f64;
    for (e, q) in entries.iter().zip(&queues) {
        assert!(
            (*e as f64) < mean * 1.25 && (*e as f64) > mean * 0.75,
            "entries per primary {entries:?}"
        );
        assert!(
            *q >= 64 / queues.len() as u64,
            "queues per primary {queues:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Workers

enum Con {
    One(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Con {
    async fn open(urls: &[String]) -> Con {
        if urls.len() > 1 {
            Con::Cluster(
                redis::cluster::ClusterClient::new(urls.to_vec())
                    .unwrap()
                    .get_async_connection()
                    .await
                    .unwrap(),
            )
        } else {
            Con::One(
                redis::Client::open(urls[0].as_str())
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap(),
            )
        }
    }

    async fn run<O: Operation + Send>(&mut self, op: O) -> redis_state::Result<O::Output>
    where
        O::Output: Send,
    {
        match self {
            Con::One(c) => op.run_async(c).await,
            Con::Cluster(c) => op.run_async(c).await,
        }
    }

    async fn hlen(&mut self, key: &str) -> usize {
        match self {
            Con::One(c) => c.hlen(key).await.unwrap(),
            Con::Cluster(c) => c.hlen(key).await.unwrap(),
        }
    }

    async fn hset(&mut self, key: &str, field: &str, value: i64) {
        let _: i64 = match self {
            Con::One(c) => c.hset(key, field, value).await.unwrap(),
            Con::Cluster(c) => c.hset(key, field, value).await.unwrap(),
        };
    }

    async fn hgetall(&mut self, key: &str) -> HashMap<String, i64> {
        match self {
            Con::One(c) => c.hgetall(key).await.unwrap(),
            Con::Cluster(c) => c.hgetall(key).await.unwrap(),
        }
    }

    /// Queued writes over every bucket's stream.
    async fn queued(&mut self, streams: &[String]) -> usize {
        let mut n = 0;
        for s in streams {
            let len: usize = match self {
                Con::One(c) => c.xlen(s).await.unwrap(),
                Con::Cluster(c) => c.xlen(s).await.unwrap(),
            };
            n += len;
        }
        n
    }

    /// Pending entries of the group over every bucket's stream.
    async fn pending(&mut self, streams: &[String]) -> usize {
        let mut n = 0;
        for s in streams {
            let mut cmd = redis::cmd("XPENDING");
            cmd.arg(s).arg("redis-state");
            let v: redis::Value = match self {
                Con::One(c) => cmd.query_async(c).await,
                Con::Cluster(c) => cmd.query_async(c).await,
            }
            .unwrap_or(redis::Value::Nil); // NOGROUP: nothing pending
            if let redis::Value::Array(items) = v
                && let Some(redis::Value::Int(p)) = items.first()
            {
                n += *p as usize;
            }
        }
        n
    }

    fn worker_con(&self) -> Con {
        match self {
            Con::One(c) => Con::One(c.clone()),
            Con::Cluster(c) => Con::Cluster(c.clone()),
        }
    }
}

fn urls(cluster: bool) -> Vec<String> {
    if cluster {
        shared_cluster().urls()
    } else {
        vec![shared_server().url()]
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs a worker whose handler writes `id -> balance` into the hash `db`
/// (the "source of truth"), `delay` per write.
async fn run_worker(
    con: Con,
    worker: WriteBehindWorker<Account>,
    sd: redis_state::cache::Shutdown,
    db: String,
    urls: Vec<String>,
    delay: Duration,
) -> redis_state::cache::WorkerStats {
    let db_con = Arc::new(tokio::sync::Mutex::new(Con::open(&urls).await));
    let handler = move |w: redis_state::cache::QueuedWrite<Account>| {
        let db_con = db_con.clone();
        let db = db.clone();
        async move {
            tokio::time::sleep(delay).await;
            db_con.lock().await.hset(&db, &w.id, w.value.balance).await;
            Ok::<(), String>(())
        }
    };
    match con {
        Con::One(mut c) => worker.process_async(&mut c, sd, handler).await.unwrap(),
        Con::Cluster(mut c) => worker.process_async(&mut c, sd, handler).await.unwrap(),
    }
}

async fn wait_for(mut check: impl AsyncFnMut() -> bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Two workers drain every bucket's queue: every write reaches the source
/// once, every stream ends empty with nothing pending, and both stop on
/// shutdown.
fn workers_drain_every_bucket(cluster: bool) {
    const N: u32 = 200;
    let urls = urls(cluster);
    let ns = Namespace::new(unique_prefix("wbb_drain")).unwrap();
    let db = format!("{ns}:db");
    rt().block_on(async {
        let mut con = Con::open(&urls).await;
        let cache = Cache::<Account>::new().namespace(&ns);
        for id in 0..N {
            con.run(cache.write_behind(&id, &account(id)))
                .await
                .unwrap();
        }
        let streams = stream_keys::<Account>(Some(&ns));
        for s in &streams {
            assert!(
                con.queued(std::slice::from_ref(s)).await > 0,
                "{s} holds writes"
            );
        }
        let (trigger, sd) = shutdown();
        let mut tasks = Vec::new();
        for name in ["w1", "w2"] {
            let worker = WriteBehindWorker::new(&cache, name).block(Duration::from_millis(50));
            tasks.push(tokio::spawn(run_worker(
                con.worker_con(),
                worker,
                sd.clone(),
                db.clone(),
                urls.clone(),
                Duration::ZERO,
            )));
        }
        assert!(
            wait_for(
                async || con.hlen(&db).await == N as usize,
                Duration::from_secs(20)
            )
            .await,
            "every write reached the source"
        );
        trigger.fire();
        let mut done = 0;
        for t in tasks {
            let stats = tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("graceful shutdown")
                .unwrap();
            assert_eq!(stats.dead, 0);
            done += stats.done;
        }
        assert_eq!(done, u64::from(N), "each write handled once");
        let rows = con.hgetall(&db).await;
        for id in 0..N {
            assert_eq!(rows.get(&id.to_string()), Some(&(i64::from(id) * 10)));
        }
        assert_eq!(con.queued(&streams).await, 0, "settled entries are deleted");
        assert_eq!(con.pending(&streams).await, 0);
        let worker = WriteBehindWorker::new(&cache, "w1");
        assert_eq!(con.run(worker.depth()).await.unwrap(), 0);
    });
}

#[test]
fn standalone_workers_drain_every_bucket() {
    workers_drain_every_bucket(false);
}

#[test]
fn cluster_workers_drain_every_bucket() {
    workers_drain_every_bucket(true);
}

/// A worker restarted under its name first re-reads what it held in every
/// bucket's queue: nothing is claimed (the entries never go idle long
/// enough), everything is written.
fn a_restarted_worker_rereads_its_own_entries(cluster: bool) {
    const N: u32 = 40;
    let urls = urls(cluster);
    let ns = Namespace::new(unique_prefix("wbb_restart")).unwrap();
    let db = format!("{ns}:db");
    rt().block_on(async {
        let mut con = Con::open(&urls).await;
        let cache = Cache::<Account>::new().namespace(&ns);
        for id in 0..N {
            con.run(cache.write_behind(&id, &account(id)))
                .await
                .unwrap();
        }
        let streams = stream_keys::<Account>(Some(&ns));
        // The first run reads every queue, fails its first entry and waits
        // out a long backoff: shut down, it leaves all it read pending.
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = calls.clone();
        let worker = WriteBehindWorker::new(&cache, "w1")
            .backoff(Duration::from_secs(30), Duration::from_secs(30))
            .block(Duration::from_millis(50));
        let (trigger, sd) = shutdown();
        let mut wc = con.worker_con();
        let task = tokio::spawn(async move {
            let handler = move |_: redis_state::cache::QueuedWrite<Account>| {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { Err::<(), String>("the source is down".to_owned()) }
            };
            match &mut wc {
                Con::One(c) => worker.process_async(c, sd, handler).await.unwrap(),
                Con::Cluster(c) => worker.process_async(c, sd, handler).await.unwrap(),
            }
        });
        assert!(
            wait_for(
                async || calls.load(std::sync::atomic::Ordering::SeqCst) == 1,
                Duration::from_secs(10)
            )
            .await
        );
        trigger.fire();
        let stats = task.await.unwrap();
        assert_eq!(stats.done, 0);
        assert_eq!(
            con.pending(&streams).await,
            N as usize,
            "all read, none settled"
        );

        // The same name again: its own entries first, from every bucket.
        let worker = WriteBehindWorker::new(&cache, "w1").block(Duration::from_millis(50));
        let (trigger, sd) = shutdown();
        let task = tokio::spawn(run_worker(
            con.worker_con(),
            worker,
            sd,
            db.clone(),
            urls.clone(),
            Duration::ZERO,
        ));
        assert!(
            wait_for(
                async || con.hlen(&db).await == N as usize,
                Duration::from_secs(20)
            )
            .await,
            "every write reached the source"
        );
        trigger.fire();
        let stats = task.await.unwrap();
        assert_eq!(stats.claimed, 0, "nothing went idle for 30 s");
        assert_eq!(stats.done, u64::from(N));
        assert_eq!(con.pending(&streams).await, 0);
        assert_eq!(con.queued(&streams).await, 0);
    });
}

#[test]
fn standalone_a_restarted_worker_rereads_its_own_entries() {
    a_restarted_worker_rereads_its_own_entries(false);
}

#[test]
fn cluster_a_restarted_worker_rereads_its_own_entries() {
    a_restarted_worker_rereads_its_own_entries(true);
}

const ENV_URLS: &str = "REDIS_STATE_WBB_URLS";
const ENV_NS: &str = "REDIS_STATE_WBB_NS";

/// The worker that gets killed: run by `killed_worker_loses_nothing` in a
/// child process.
#[test]
#[ignore = "helper: run in a child process and killed"]
fn bucketed_write_behind_child() {
    let (Ok(urls), Ok(ns)) = (std::env::var(ENV_URLS), std::env::var(ENV_NS)) else {
        return;
    };
    let urls: Vec<String> = urls.split(',').map(str::to_owned).collect();
    let ns = Namespace::new(ns).unwrap();
    rt().block_on(async {
        let con = Con::open(&urls).await;
        let cache = Cache::<Account>::new().namespace(&ns);
        let worker = WriteBehindWorker::new(&cache, "doomed")
            .batch(25)
            .block(Duration::from_millis(50));
        let (_trigger, sd) = shutdown();
        run_worker(
            con.worker_con(),
            worker,
            sd,
            format!("{ns}:db"),
            urls.clone(),
            Duration::from_millis(40),
        )
        .await;
    });
}

/// A worker killed mid-batch leaves its entries pending in their buckets'
/// streams; another claims them and reads the rest: nothing is lost.
fn killed_worker_loses_nothing(cluster: bool) {
    const N: u32 = 60;
    let urls = urls(cluster);
    let ns = Namespace::new(unique_prefix("wbb_kill")).unwrap();
    let db = format!("{ns}:db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "bucketed_write_behind_child",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(ENV_URLS, urls.join(","))
        .env(ENV_NS, ns.as_str())
        .spawn()
        .unwrap();
    rt().block_on(async {
        let mut con = Con::open(&urls).await;
        let cache = Cache::<Account>::new().namespace(&ns);
        for id in 0..N {
            con.run(cache.write_behind(&id, &account(id)))
                .await
                .unwrap();
        }
        let streams = stream_keys::<Account>(Some(&ns));
        assert!(
            wait_for(async || con.hlen(&db).await >= 8, Duration::from_secs(20)).await,
            "the child worker never started"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let written = con.hlen(&db).await;
        let pending = con.pending(&streams).await;
        assert!(written < N as usize, "killed mid-batch: {written} written");
        assert!(pending > 0, "the killed worker left entries pending");

        let worker = WriteBehindWorker::new(&cache, "rescuer")
            .claim_idle(Duration::from_millis(300))
            .block(Duration::from_millis(50));
        let (trigger, sd) = shutdown();
        let task = tokio::spawn(run_worker(
            con.worker_con(),
            worker,
            sd,
            db.clone(),
            urls.clone(),
            Duration::ZERO,
        ));
        assert!(
            wait_for(
                async || con.hlen(&db).await == N as usize && con.pending(&streams).await == 0,
                Duration::from_secs(20)
            )
            .await,
            "not every write reached the source"
        );
        trigger.fire();
        let stats = task.await.unwrap();
        assert!(
            stats.claimed > 0,
            "the rescuer claimed the dead worker's entries"
        );
        let rows = con.hgetall(&db).await;
        let ids: BTreeSet<u32> = rows.keys().map(|k| k.parse().unwrap()).collect();
        assert_eq!(ids, (0..N).collect(), "no entry lost");
        for (k, v) in rows {
            assert_eq!(v, k.parse::<i64>().unwrap() * 10);
        }
        assert_eq!(con.queued(&streams).await, 0);
    });
}

#[test]
fn standalone_killed_worker_loses_nothing() {
    killed_worker_loses_nothing(false);
}

#[test]
fn cluster_killed_worker_loses_nothing() {
    killed_worker_loses_nothing(true);
}

// ---------------------------------------------------------------------------
// The local cache on bucketed keys

/// A local copy of a bucketed entry is kept under the type's key prefix
/// (the bucket's tag comes after it) and dropped by a write-behind from
/// another connection.
#[test]
fn local_copies_of_bucketed_entries_are_kept_and_dropped() {
    use redis_state::cache::{LocalCache, LocalCacheOptions};
    let server = shared_server();
    let ns = Namespace::new(unique_prefix("wbb_local")).unwrap();
    rt().block_on(async {
        let mut con = server.async_connection().await.unwrap();
        let mut other = server.async_connection().await.unwrap();
        let prefix = format!("{ns}:wbb_account:");
        let local =
            LocalCache::connect_async(&server.url(), &[&prefix], LocalCacheOptions::default())
                .await
                .unwrap();
        let cache = Cache::<Account>::new()
            .namespace(&ns)
            .with_local(local.clone());
        let key = cache.key(&1);
        assert!(key.starts_with(&format!("{prefix}{{")), "{key}");
        cache
            .write_behind(&1, &account(1))
            .run_async(&mut con)
            .await
            .unwrap();
        let read = async |con: &mut redis::aio::MultiplexedConnection| {
            cache
                .get_or_load_async(con, &1, || async {
                    Err::<Option<Account>, String>("the entry is cached".to_owned())
                })
                .await
                .unwrap()
        };
        let kept = wait_for(
            async || {
                assert_eq!(read(&mut con).await, Some(account(1)));
                local.contains(&key)
            },
            Duration::from_secs(5),
        )
        .await;
        assert!(kept, "a local copy of {key}");
        let hits = local.stats().hits;
        assert_eq!(read(&mut con).await, Some(account(1)));
        assert_eq!(local.stats().hits, hits + 1, "served locally");

        let newer = Account { id: 1, balance: 7 };
        cache
            .write_behind(&1, &newer)
            .run_async(&mut other)
            .await
            .unwrap();
        assert!(
            wait_for(async || !local.contains(&key), Duration::from_secs(5)).await,
            "the write dropped the local copy"
        );
        assert_eq!(read(&mut con).await, Some(newer));
    });
}
