//! Write-behind: the queue is a Redis stream with a consumer group; workers
//! drain it with retries and backoff, dead-letter what keeps failing, claim
//! what a dead worker left, and shut down gracefully. Killing a worker
//! mid-batch loses no entry.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Runner;
use redis::AsyncCommands;
use redis_state::cache::{Cache, WriteBehindWorker, shutdown};
use redis_state::prelude::*;
use redis_state::testing::{shared_cluster, shared_server, unique_prefix};
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "account:{id}", ttl = "10m")]
struct Account {
    id: u32,
    balance: i64,
}

/// A tagged type, to see that a refused queue write records no tag either.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "ledger:{id}", ttl = "10m", tag = "owner:{owner}")]
struct Ledger {
    id: u32,
    owner: String,
}

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

    async fn hgetall(&mut self, key: &str) -> std::collections::HashMap<String, i64> {
        match self {
            Con::One(c) => c.hgetall(key).await.unwrap(),
            Con::Cluster(c) => c.hgetall(key).await.unwrap(),
        }
    }

    async fn xlen(&mut self, key: &str) -> usize {
        match self {
            Con::One(c) => c.xlen(key).await.unwrap(),
            Con::Cluster(c) => c.xlen(key).await.unwrap(),
        }
    }

    async fn pending(&mut self, stream: &str) -> usize {
        let v: redis::Value = match self {
            Con::One(c) => redis::cmd("XPENDING")
                .arg(stream)
                .arg("redis-state")
                .query_async(c)
                .await
                .unwrap(),
            Con::Cluster(c) => redis::cmd("XPENDING")
                .arg(stream)
                .arg("redis-state")
                .query_async(c)
                .await
                .unwrap(),
        };
        match v {
            redis::Value::Array(items) => match items.first() {
                Some(redis::Value::Int(n)) => *n as usize,
                _ => 0,
            },
            _ => 0,
        }
    }

    fn worker_con(&self) -> WorkerCon {
        match self {
            Con::One(c) => WorkerCon::One(c.clone()),
            Con::Cluster(c) => WorkerCon::Cluster(c.clone()),
        }
    }
}

enum WorkerCon {
    One(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
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

/// When the source refuses a write: `(value, attempt) -> refuse?`.
type Fail = Arc<dyn Fn(&Account, u32) -> bool + Send + Sync>;

/// Runs a worker whose handler writes `id -> balance` into the hash `db`
/// (the "source of truth"), failing as `fail` says.
async fn run_worker(
    con: WorkerCon,
    worker: WriteBehindWorker<Account>,
    sd: redis_state::cache::Shutdown,
    db: String,
    urls: Vec<String>,
    fail: Fail,
    delay: Duration,
) -> redis_state::cache::WorkerStats {
    let mut db_con = Con::open(&urls).await;
    let db_con = Arc::new(tokio::sync::Mutex::new(std::mem::replace(
        &mut db_con,
        Con::open(&urls).await,
    )));
    let handler = move |w: redis_state::cache::QueuedWrite<Account>| {
        let db_con = db_con.clone();
        let db = db.clone();
        let fail = fail.clone();
        async move {
            if fail(&w.value, w.attempt) {
                return Err(format!("source refused {}", w.id));
            }
            tokio::time::sleep(delay).await;
            db_con.lock().await.hset(&db, &w.id, w.value.balance).await;
            Ok(())
        }
    };
    match con {
        WorkerCon::One(mut c) => worker.process_async(&mut c, sd, handler).await.unwrap(),
        WorkerCon::Cluster(mut c) => worker.process_async(&mut c, sd, handler).await.unwrap(),
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

fn drains_the_queue(cluster: bool) {
    let urls = urls(cluster);
    let ns = Namespace::new(unique_prefix("wb_drain")).unwrap();
    let db = format!("{ns}:db");
    rt().block_on(async {
        let mut con = Con::open(&urls).await;
        let cache = Cache::<Account>::new().namespace(&ns);
        for id in 0..20 {
            let a = Account {
                id,
                balance: 100 + i64::from(id),
            };
            let entry = con.run(cache.write_behind(&id, &a)).await.unwrap();
            assert!(entry.contains('-'), "a stream id: {entry}");
            // The cache is written at once.
            assert_eq!(con.run(cache.get(&id)).await.unwrap(), Some(a));
        }
        let worker = WriteBehindWorker::new(&cache, "w1").block(Duration::from_millis(50));
        let stream = worker.stream().to_owned();
        assert_eq!(stream, format!("{ns}:#wb:{{account}}"));
        assert_eq!(con.xlen(&stream).await, 20);
        let (trigger, sd) = shutdown();
        let task = tokio::spawn(run_worker(
            con.worker_con(),
            worker,
            sd,
            db.clone(),
            urls.clone(),
            Arc::new(|_, _| false),
            Duration::ZERO,
        ));
        assert!(wait_for(async || con.hlen(&db).await == 20, Duration::from_secs(10)).await);
        trigger.fire();
        let stats = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("graceful shutdown")
            .unwrap();
        assert_eq!(stats.done, 20);
        assert_eq!(stats.dead, 0);
        let rows = con.hgetall(&db).await;
        for id in 0..20u32 {
            assert_eq!(rows.get(&id.to_string()), Some(&(100 + i64::from(id))));
        }
        assert_eq!(con.xlen(&stream).await, 0, "settled entries are deleted");
        assert_eq!(con.pending(&stream).await, 0);
    });
}

fn retries_then_dead_letters(cluster: bool) {
    let urls = urls(cluster);
    let ns = Namespace::new(unique_prefix("wb_dead")).unwrap();
    let db = format!("{ns}:db");
    rt().block_on(async {
        let mut con = Con::open(&urls).await;
        let cache = Cache::<Account>::new().namespace(&ns);
        for id in 1..=4 {
            con.run(cache.write_behind(&id, &Account { id, balance: 1 }))
                .await
                .unwrap();
        }
        // A queued value this type cannot read (another program, an old shape).
        let stream = format!("{ns}:#wb:{{account}}");
        let _: String = match &mut con {
            Con::One(c) => c
                .xadd(
                    &stream,
                    "*",
                    &[("id", "9"), ("key", "x"), ("v", "{\"nope\":1}")],
                )
                .await
                .unwrap(),
            Con::Cluster(c) => c
                .xadd(
                    &stream,
                    "*",
                    &[("id", "9"), ("key", "x"), ("v", "{\"nope\":1}")],
                )
                .await
                .unwrap(),
        };
        let tries = Arc::new(Mutex::new(Vec::new()));
        let t = tries.clone();
        // Account 3 always fails; account 4 fails twice, then succeeds.
        let fail = Arc::new(move |a: &Account, attempt: u32| {
            t.lock().unwrap().push((a.id, attempt));
            a.id == 3 || (a.id == 4 && attempt <= 2)
        });
        let worker = WriteBehindWorker::new(&cache, "w1")
            .max_attempts(3)
            .backoff(Duration::from_millis(5), Duration::from_millis(20))
            .block(Duration::from_millis(50));
        let dead = worker.dead_letter_stream().to_owned();
        let (trigger, sd) = shutdown();
        let task = tokio::spawn(run_worker(
            con.worker_con(),
            worker,
            sd,
            db.clone(),
            urls.clone(),
            fail,
            Duration::ZERO,
        ));
        assert!(
            wait_for(
                async || con.xlen(&dead).await == 2 && con.hlen(&db).await == 3,
                Duration::from_secs(10)
            )
            .await,
            "dead letters and writes"
        );
        trigger.fire();
        let stats = task.await.unwrap();
        assert_eq!(stats.done, 3);
        assert_eq!(stats.dead, 2);
        assert_eq!(stats.retries, 2 + 2, "two for account 3, two for account 4");
        let tries = tries.lock().unwrap().clone();
        assert_eq!(tries.iter().filter(|(id, _)| *id == 3).count(), 3);
        assert_eq!(tries.iter().filter(|(id, _)| *id == 4).count(), 3);
        // The dead letters keep the entry and say why.
        let v: redis::Value = match &mut con {
            Con::One(c) => redis::cmd("XRANGE")
                .arg(&dead)
                .arg("-")
                .arg("+")
                .query_async(c)
                .await
                .unwrap(),
            Con::Cluster(c) => redis::cmd("XRANGE")
                .arg(&dead)
                .arg("-")
                .arg("+")
                .query_async(c)
                .await
                .unwrap(),
        };
        let text = format!("{v:?}");
        assert!(text.contains("source refused 3"), "{text}");
        assert!(text.contains("does not decode"), "{text}");
        assert_eq!(con.xlen(&stream).await, 0);
        assert_eq!(con.pending(&stream).await, 0);
    });
}

fn shutdown_leaves_a_retrying_entry_pending(cluster: bool) {
    let urls = urls(cluster);
    let ns = Namespace::new(unique_prefix("wb_sd")).unwrap();
    rt().block_on(async {
        let mut con = Con::open(&urls).await;
        let cache = Cache::<Account>::new().namespace(&ns);
        con.run(cache.write_behind(&1, &Account { id: 1, balance: 1 }))
            .await
            .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let worker = WriteBehindWorker::new(&cache, "w1")
            .backoff(Duration::from_secs(30), Duration::from_secs(30))
            .block(Duration::from_millis(50));
        let stream = worker.stream().to_owned();
        let (trigger, sd) = shutdown();
        let task = tokio::spawn(run_worker(
            con.worker_con(),
            worker,
            sd,
            format!("{ns}:db"),
            urls.clone(),
            Arc::new(move |_, _| {
                c.fetch_add(1, Ordering::SeqCst);
                true
            }),
            Duration::ZERO,
        ));
        assert!(
            wait_for(
                async || calls.load(Ordering::SeqCst) == 1,
                Duration::from_secs(5)
            )
            .await
        );
        let started = Instant::now();
        trigger.fire();
        let stats = task.await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "did not wait out the 30 s backoff"
        );
        assert_eq!(stats.done, 0);
        assert_eq!(
            con.pending(&stream).await,
            1,
            "the entry stays pending for the next worker"
        );
    });
}

// ---------------------------------------------------------------------------
// Killing a worker mid-batch

const ENV_URLS: &str = "REDIS_STATE_WB_URLS";
const ENV_NS: &str = "REDIS_STATE_WB_NS";

/// The worker that gets killed: run by `killed_worker_loses_nothing` in a
/// child process.
#[test]
#[ignore = "helper: run in a child process and killed"]
fn write_behind_child() {
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
            Arc::new(|_, _| false),
            Duration::from_millis(40),
        )
        .await;
    });
}

fn killed_worker_loses_nothing(cluster: bool) {
    const N: u32 = 60;
    let urls = urls(cluster);
    let ns = Namespace::new(unique_prefix("wb_kill")).unwrap();
    let db = format!("{ns}:db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "write_behind_child",
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
            con.run(cache.write_behind(
                &id,
                &Account {
                    id,
                    balance: i64::from(id) * 10,
                },
            ))
            .await
            .unwrap();
        }
        // Let the doomed worker get into its first batch of 25, then kill it.
        assert!(
            wait_for(async || con.hlen(&db).await >= 8, Duration::from_secs(20)).await,
            "the child worker never started"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let written = con.hlen(&db).await;
        let stream = format!("{ns}:#wb:{{account}}");
        let pending = con.pending(&stream).await;
        assert!(written < N as usize, "killed mid-batch: {written} written");
        assert!(pending > 0, "the killed worker left entries pending");

        // Another worker claims what the dead one left and reads the rest.
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
            Arc::new(|_, _| false),
            Duration::ZERO,
        ));
        assert!(
            wait_for(
                async || con.hlen(&db).await == N as usize && con.pending(&stream).await == 0,
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
        assert_eq!(con.xlen(&stream).await, 0);
    });
}

// ---------------------------------------------------------------------------
// The queue write comes first

/// When the `XADD` fails (here the queue key holds a string), nothing is
/// cached: an entry whose source write was never queued would be served
/// while the source never gets it.
fn a_refused_queue_write_caches_nothing(r: &mut Runner, ns: &Namespace) {
    let ledgers = Cache::<Ledger>::new().namespace(ns);
    let stream = redis_state::cache::behind::stream_key::<Ledger>(Some(ns));
    let _: () = r.cmd("SET", &stream).arg("not a stream").go();
    let ledger = Ledger {
        id: 1,
        owner: "ada".into(),
    };
    let err = r.run(ledgers.write_behind(&1, &ledger)).unwrap_err();
    assert!(err.server_code() == Some("WRONGTYPE"), "{err:?}");
    let exists: i64 = r.cmd("EXISTS", &ledgers.key(&1)).go();
    assert_eq!(exists, 0, "the entry was written without its queued write");
    let tag = format!("{ns}:#tag:owner:ada");
    let exists: i64 = r.cmd("EXISTS", &tag).go();
    assert_eq!(exists, 0, "the tag was recorded without the queued write");
    let kept: String = r.cmd("GET", &stream).go();
    assert_eq!(kept, "not a stream");

    // With the queue usable again, the same write goes through.
    let _: i64 = r.cmd("DEL", &stream).go();
    let entry = r.run(ledgers.write_behind(&1, &ledger)).unwrap();
    assert!(entry.contains('-'), "a stream id: {entry}");
    assert_eq!(r.run(ledgers.get(&1)).unwrap(), Some(ledger));
    let queued: i64 = r.cmd("XLEN", &stream).go();
    assert_eq!(queued, 1);
    let exists: i64 = r.cmd("EXISTS", &tag).go();
    assert_eq!(exists, 1);
}

/// The stream is bounded, with the error policy: a write that finds it
/// full fails with `StreamFull` and caches nothing; the depth says why.
fn a_full_queue_refuses_and_caches_nothing(r: &mut Runner, ns: &Namespace) {
    let accounts = Cache::<Account>::new().namespace(ns);
    let worker = WriteBehindWorker::new(&accounts, "w");
    for id in 1..=2 {
        let a = Account { id, balance: 1 };
        r.run(accounts.write_behind(&id, &a).max_queued(2)).unwrap();
    }
    assert_eq!(r.run(worker.depth()).unwrap(), 2);
    let err = r
        .run(
            accounts
                .write_behind(&3, &Account { id: 3, balance: 1 })
                .max_queued(2),
        )
        .unwrap_err();
    match err {
        redis_state::Error::StreamFull { key, len } => {
            assert_eq!(key, worker.stream());
            assert_eq!(len, 2);
        }
        other => panic!("expected StreamFull, got {other:?}"),
    }
    assert_eq!(r.run(accounts.get(&3)).unwrap(), None);
    assert_eq!(r.run(worker.depth()).unwrap(), 2);
}

matrix!(
    a_refused_queue_write_caches_nothing,
    a_full_queue_refuses_and_caches_nothing
);

/// As a transaction's write, a write-behind queues between `MULTI` and
/// `EXEC` and stores its entry after `EXEC`.
#[test]
fn a_write_behind_as_a_transactions_write_queues_then_stores() {
    use redis_state::tx::{Decision, Transaction};
    let ns = Namespace::new(unique_prefix("wb_tx")).unwrap();
    let ledgers = Cache::<Ledger>::new().namespace(&ns);
    let mut con = shared_server().connection().unwrap();
    let ledger = Ledger {
        id: 1,
        owner: "ada".into(),
    };
    let watched = format!("{ns}:watched");
    let committed = Transaction::new(&[&watched])
        .perform(
            &mut con,
            || redis_state::op::command::<Option<i64>>("GET", &watched),
            |_| {
                Ok(Decision::Commit(
                    ledgers.write_behind(&1, &ledger),
                    "committed",
                ))
            },
        )
        .unwrap();
    assert_eq!(committed, "committed");
    let stream = redis_state::cache::behind::stream_key::<Ledger>(Some(&ns));
    let queued: i64 = redis::cmd("XLEN").arg(&stream).query(&mut con).unwrap();
    assert_eq!(queued, 1, "the write is queued");
    assert_eq!(
        ledgers.get(&1).run(&mut con).unwrap(),
        Some(ledger),
        "the entry is stored after EXEC"
    );
}

// ---------------------------------------------------------------------------
// A worker keeps the entries it works on

/// Counts the handler calls of one worker, per account id, and refuses the
/// writes `fail` says.
fn counting(
    calls: Arc<Mutex<Vec<(u32, u32)>>>,
    fail: impl Fn(&Account, u32) -> bool + Send + Sync + 'static,
) -> Fail {
    Arc::new(move |a: &Account, attempt: u32| {
        calls.lock().unwrap().push((a.id, attempt));
        fail(a, attempt)
    })
}

/// A worker retrying an entry (backoffs longer in all than `claim_idle`)
/// keeps it: a second worker of the group never gets it meanwhile.
fn a_retrying_worker_keeps_its_entry(cluster: bool) {
    let urls = urls(cluster);
    let ns = Namespace::new(unique_prefix("wb_keep")).unwrap();
    let db = format!("{ns}:db");
    rt().block_on(async {
        let mut con = Con::open(&urls).await;
        let cache = Cache::<Account>::new().namespace(&ns);
        con.run(cache.write_behind(&1, &Account { id: 1, balance: 7 }))
            .await
            .unwrap();
        let (a_calls, b_calls) = (Arc::default(), Arc::default());
        let worker = |name: &str| {
            WriteBehindWorker::new(&cache, name)
                .claim_idle(Duration::from_millis(300))
                .max_attempts(30)
                .backoff(Duration::from_millis(60), Duration::from_millis(60))
                .block(Duration::from_millis(50))
        };
        let stream = worker("a").stream().to_owned();
        let (trigger, sd) = shutdown();
        // 15 failures, each followed by a backoff of 30 to 60 ms: at least
        // 450 ms of retries.
        let a = tokio::spawn(run_worker(
            con.worker_con(),
            worker("a"),
            sd.clone(),
            db.clone(),
            urls.clone(),
            counting(Arc::clone(&a_calls), |_, attempt| attempt <= 15),
            Duration::ZERO,
        ));
        let a_calls: Arc<Mutex<Vec<(u32, u32)>>> = a_calls;
        assert!(
            wait_for(
                async || !a_calls.lock().unwrap().is_empty(),
                Duration::from_secs(5)
            )
            .await
        );
        let b = tokio::spawn(run_worker(
            con.worker_con(),
            worker("b"),
            sd,
            db.clone(),
            urls.clone(),
            counting(Arc::clone(&b_calls), |_, _| false),
            Duration::ZERO,
        ));
        assert!(
            wait_for(
                async || con.hlen(&db).await == 1 && con.pending(&stream).await == 0,
                Duration::from_secs(10)
            )
            .await,
            "the write never reached the source"
        );
        trigger.fire();
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let b_calls: Arc<Mutex<Vec<(u32, u32)>>> = b_calls;
        assert_eq!(
            b_calls.lock().unwrap().clone(),
            vec![],
            "the second worker ran the entry the first was retrying"
        );
        assert_eq!(b.claimed, 0);
        assert_eq!(a_calls.lock().unwrap().len(), 16);
        assert_eq!((a.done, a.retries), (1, 15));
    });
}

/// Entries read in a batch and claimed away by another worker while this
/// one was busy with an earlier entry (longer than `claim_idle`) are left to
/// the worker that claimed them, not handled twice: the next entry is kept
/// along with a settlement, a later one before its first attempt.
fn an_entry_claimed_away_mid_batch_runs_once(cluster: bool) {
    let urls = urls(cluster);
    let ns = Namespace::new(unique_prefix("wb_batch")).unwrap();
    let db = format!("{ns}:db");
    rt().block_on(async {
        let mut con = Con::open(&urls).await;
        let cache = Cache::<Account>::new().namespace(&ns);
        for id in 1..=3 {
            con.run(cache.write_behind(&id, &Account { id, balance: 7 }))
                .await
                .unwrap();
        }
        let calls: Arc<Mutex<Vec<(u32, u32)>>> = Arc::default();
        let b_calls: Arc<Mutex<Vec<(u32, u32)>>> = Arc::default();
        let worker = |name: &str| {
            WriteBehindWorker::new(&cache, name)
                .claim_idle(Duration::from_millis(300))
                .max_attempts(30)
                .backoff(Duration::from_millis(60), Duration::from_millis(60))
                .block(Duration::from_millis(50))
        };
        let stream = worker("a").stream().to_owned();
        let (trigger, sd) = shutdown();
        // Account 1 fails 15 times (at least 450 ms), accounts 2 and 3 wait
        // in the same batch.
        let a = tokio::spawn(run_worker(
            con.worker_con(),
            worker("a"),
            sd.clone(),
            db.clone(),
            urls.clone(),
            counting(Arc::clone(&calls), |a, attempt| a.id == 1 && attempt <= 15),
            Duration::ZERO,
        ));
        assert!(
            wait_for(
                async || !calls.lock().unwrap().is_empty(),
                Duration::from_secs(5)
            )
            .await
        );
        let b = tokio::spawn(run_worker(
            con.worker_con(),
            worker("b"),
            sd,
            db.clone(),
            urls.clone(),
            counting(Arc::clone(&b_calls), |_, _| false),
            Duration::ZERO,
        ));
        assert!(
            wait_for(
                async || con.hlen(&db).await == 3 && con.pending(&stream).await == 0,
                Duration::from_secs(10)
            )
            .await,
            "the writes never reached the source"
        );
        trigger.fire();
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let a_calls = calls.lock().unwrap().clone();
        let b_calls = b_calls.lock().unwrap().clone();
        let of = |calls: &[(u32, u32)], id| calls.iter().filter(|c| c.0 == id).count();
        for id in [2, 3] {
            assert_eq!(
                of(&a_calls, id) + of(&b_calls, id),
                1,
                "account {id} handled more than once: {a_calls:?} {b_calls:?}"
            );
        }
        assert_eq!(of(&b_calls, 1), 0, "the retried entry was taken");
        assert_eq!(of(&a_calls, 1), 16);
        assert_eq!(a.done + b.done, 3);
    });
}

#[test]
fn standalone_a_retrying_worker_keeps_its_entry() {
    a_retrying_worker_keeps_its_entry(false);
}
#[test]
fn cluster_a_retrying_worker_keeps_its_entry() {
    a_retrying_worker_keeps_its_entry(true);
}
#[test]
fn standalone_an_entry_claimed_away_mid_batch_runs_once() {
    an_entry_claimed_away_mid_batch_runs_once(false);
}
#[test]
fn cluster_an_entry_claimed_away_mid_batch_runs_once() {
    an_entry_claimed_away_mid_batch_runs_once(true);
}

#[test]
fn standalone_drains_the_queue() {
    drains_the_queue(false);
}
#[test]
fn cluster_drains_the_queue() {
    drains_the_queue(true);
}
#[test]
fn standalone_retries_then_dead_letters() {
    retries_then_dead_letters(false);
}
#[test]
fn cluster_retries_then_dead_letters() {
    retries_then_dead_letters(true);
}
#[test]
fn standalone_shutdown_leaves_a_retrying_entry_pending() {
    shutdown_leaves_a_retrying_entry_pending(false);
}
#[test]
fn cluster_shutdown_leaves_a_retrying_entry_pending() {
    shutdown_leaves_a_retrying_entry_pending(true);
}
#[test]
fn standalone_killed_worker_loses_nothing() {
    killed_worker_loses_nothing(false);
}
#[test]
fn cluster_killed_worker_loses_nothing() {
    killed_worker_loses_nothing(true);
}
