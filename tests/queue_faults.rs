//! Job queue and stream consumer faults that cross process and server
//! boundaries, with figures (`cargo test --all-features --test queue_faults
//! -- --nocapture` prints them):
//!
//! * worker *processes* killed with `SIGKILL` mid-job and restarted: jobs
//!   lost (must be 0), jobs whose handler ran more than once (counted) and
//!   effects applied twice in Redis (must be 0);
//! * a queue and a stream consumer on a local Cluster whose primary (the
//!   one owning their slot) is killed: every push and add acknowledged by a
//!   replica (`WAIT`) is completed once the replica took over.

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_state::Error;
use redis_state::cache::shutdown;
use redis_state::connect::{Connection, ConnectionOptions, durable};
use redis_state::keys::key_slot;
use redis_state::prelude::*;
use redis_state::queue::{Effect, Queue, QueueOptions};
use redis_state::stream::{ConsumerOptions, JsonData, Retention, Stream};
use redis_state::testing::{RedisCluster, RedisServer, unique_prefix};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Task {
    n: u64,
}

const ENV_URL: &str = "REDIS_STATE_QF_URL";
const ENV_QUEUE: &str = "REDIS_STATE_QF_QUEUE";
/// Jobs whose number is a multiple of this hang on their first attempt
/// until the parent kills their worker process.
const HANG_EVERY: u64 = 40;

fn process_worker_options() -> QueueOptions {
    let mut o = QueueOptions::default();
    o.lease = Duration::from_millis(300);
    o.max_attempts = 50;
    o.backoff = Duration::from_millis(1);
    o.max_backoff = Duration::from_millis(5);
    o.block = Duration::from_millis(20);
    o
}

/// The worker process that gets killed: run by
/// `worker_processes_killed_with_sigkill_lose_nothing` in child processes.
/// Each handler run is counted (`<q>:runs`, before the work); completion
/// applies `HINCRBY <q>:results <n> 1` in the completion script. A job to
/// hang on announces this process (`RPUSH <q>:hung <pid>`) and waits to be
/// killed.
#[test]
#[ignore = "helper: run in a child process and killed"]
fn queue_worker_process() {
    let (Ok(url), Ok(name)) = (std::env::var(ENV_URL), std::env::var(ENV_QUEUE)) else {
        return;
    };
    let q = Queue::<Task>::new(name).options(process_worker_options());
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_connection().unwrap();
    let mut side = client.get_connection().unwrap();
    let (runs, results, hung) = (q.key("runs"), q.key("results"), q.key("hung"));
    let (_stop, sd) = shutdown();
    q.worker()
        .run(&mut con, &sd, |job| {
            let n = job.data.n;
            let _: i64 = redis::cmd("HINCRBY")
                .arg(&runs)
                .arg(n)
                .arg(1)
                .query(&mut side)
                .map_err(|e| e.to_string())?;
            if n % HANG_EVERY == 0 && job.attempt == 1 {
                let _: i64 = redis::cmd("RPUSH")
                    .arg(&hung)
                    .arg(std::process::id())
                    .query(&mut side)
                    .map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_secs(120));
            }
            std::thread::sleep(Duration::from_millis(2));
            Ok::<_, String>(Effect::new().command("HINCRBY", &results, (n, 1)))
        })
        .unwrap();
}

fn spawn_worker(url: &str, queue: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "queue_worker_process",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(ENV_URL, url)
        .env(ENV_QUEUE, queue)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn worker_processes_killed_with_sigkill_lose_nothing() {
    const JOBS: u64 = 400;
    const WORKERS: usize = 3;
    /// Kills at moments the parent picks (besides the hung jobs).
    const TIMED_KILLS: u32 = 8;
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let mut con = server.connection().unwrap();
    let name = unique_prefix("kill9-processes");
    let q = Queue::<Task>::new(&name).options(process_worker_options());
    redis_state::many((1..=JOBS).map(|n| q.push(&Task { n })))
        .run(&mut con)
        .unwrap();
    let mut workers: Vec<Child> = (0..WORKERS).map(|_| spawn_worker(&url, &name)).collect();
    let (mut hung_kills, mut timed_kills) = (0u32, 0u32);
    let mut last_timed = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // A worker that announced a hung job is killed mid-job.
        let hung: Option<u32> = redis::cmd("LPOP")
            .arg(q.key("hung"))
            .query(&mut con)
            .unwrap();
        let victim = match hung {
            Some(pid) => workers.iter().position(|w| w.id() == pid),
            None if timed_kills < TIMED_KILLS
                && last_timed.elapsed() >= Duration::from_millis(150) =>
            {
                last_timed = Instant::now();
                timed_kills += 1;
                Some(timed_kills as usize % WORKERS)
            }
            None => None,
        };
        if let Some(i) = victim {
            if hung.is_some() {
                hung_kills += 1;
            }
            workers[i].kill().unwrap(); // SIGKILL
            workers[i].wait().unwrap();
            workers[i] = spawn_worker(&url, &name);
        }
        let done: u64 = redis::cmd("HLEN")
            .arg(q.key("results"))
            .query(&mut con)
            .unwrap();
        if done == JOBS && hung.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workers completed {done} of {JOBS} jobs in two minutes"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for w in &mut workers {
        w.kill().unwrap();
        w.wait().unwrap();
    }
    let results: HashMap<u64, i64> = redis::cmd("HGETALL")
        .arg(q.key("results"))
        .query(&mut con)
        .unwrap();
    let runs: HashMap<u64, i64> = redis::cmd("HGETALL")
        .arg(q.key("runs"))
        .query(&mut con)
        .unwrap();
    let lost: Vec<u64> = (1..=JOBS).filter(|n| !results.contains_key(n)).collect();
    let applied_twice = results.values().filter(|&&v| v > 1).count();
    let duplicated = runs.values().filter(|&&v| v > 1).count();
    let counts = q.counts().run(&mut con).unwrap();
    println!(
        "worker processes killed with SIGKILL: {} kills ({hung_kills} while a job hung in the \
         handler, {timed_kills} at timed moments), jobs {JOBS}, completed {}, lost {}, run more \
         than once {duplicated} (handler), applied twice in Redis {applied_twice}; left (ready, \
         delayed, active, dead) {counts:?}",
        hung_kills + timed_kills,
        results.len(),
        lost.len(),
    );
    assert!(lost.is_empty(), "lost jobs {lost:?}");
    assert_eq!(applied_twice, 0, "an effect applied twice");
    assert_eq!(counts, (0, 0, 0, 0));
    let hanging = JOBS / HANG_EVERY;
    assert_eq!(
        u64::from(hung_kills),
        hanging,
        "every hung job's worker was killed"
    );
    // Every job whose worker was killed in the handler ran again.
    for n in (1..=JOBS).filter(|n| n % HANG_EVERY == 0) {
        assert!(runs.get(&n).copied().unwrap_or(0) >= 2, "job {n} ran once");
    }
}

// ---------------------------------------------------------------------------
// A Cluster primary killed under a queue and a stream consumer

fn cluster_options() -> ConnectionOptions {
    ConnectionOptions::new()
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .retries(2)
        .backoff(Duration::from_millis(50), Duration::from_millis(250))
        .circuit_breaker(20, Duration::from_millis(200))
}

const WAIT_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Acked {
    jobs: BTreeSet<u64>,
    events: BTreeSet<u64>,
    refused: u64,
    shortfalls: u64,
    unexpected: Vec<String>,
}

/// Pushes jobs and adds events (each `WAIT 1`) until `stop`, recording the
/// numbers a replica acknowledged. A number whose write failed is not
/// reused.
async fn produce(
    mut con: Connection,
    q: Queue<Task>,
    s: Stream<Task, JsonData>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let job = durable(q.push(&Task { n }), 1, WAIT_TIMEOUT)
            .run_async(&mut con)
            .await;
        let event = durable(s.add(&Task { n }), 1, WAIT_TIMEOUT)
            .run_async(&mut con)
            .await;
        {
            let mut a = acked.lock().unwrap();
            for (r, set) in [(job.map(|_| ()), 0), (event.map(|_| ()), 1)] {
                match r {
                    Ok(()) if set == 0 => {
                        a.jobs.insert(n);
                    }
                    Ok(()) => {
                        a.events.insert(n);
                    }
                    Err(Error::DurabilityShortfall { .. }) => a.shortfalls += 1,
                    Err(e) if e.is_connection_error() || e.is_retryable() => a.refused += 1,
                    Err(e) => a.unexpected.push(e.to_string()),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
}

/// A queue worker (`queue`) or stream consumer, restarted after each Redis
/// error, until `stop`.
async fn consume(con: Connection, q: Queue<Task>, s: Stream<Task, JsonData>, queue: bool) {
    // Never fired: the parent aborts these tasks.
    let (_stop, sd) = shutdown();
    loop {
        let mut c = con.clone();
        let run = if queue {
            let results = q.key("results");
            q.worker()
                .run_async(&mut c, &sd, |job| {
                    let effect = Effect::new().command("HINCRBY", &results, (job.data.n, 1));
                    std::future::ready(Ok::<_, String>(effect))
                })
                .await
                .map(|_| ())
        } else {
            let mut o = ConsumerOptions::default();
            o.block = Duration::from_millis(20);
            o.claim_idle = Duration::from_millis(800);
            o.claim_every = Duration::from_millis(200);
            o.max_deliveries = 100;
            o.max_attempts = 100;
            o.backoff = Duration::from_millis(5);
            o.max_backoff = Duration::from_millis(50);
            let results = format!("{}:results", s.key());
            let consumer = s.group("g").consumer("w").unwrap().options(o);
            consumer
                .run_async(&mut c, &sd, |d| {
                    let effect = Effect::new().command("HINCRBY", &results, (d.event.n, 1));
                    std::future::ready(Ok::<_, String>(effect))
                })
                .await
                .map(|_| ())
        };
        // A run ends only on a Redis error (the primary went away): again.
        if run.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[test]
fn queue_and_stream_consumer_survive_a_cluster_primary_kill() {
    let mut cluster = RedisCluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .config("cluster-node-timeout", "1000")
        .start()
        .unwrap();
    // A queue and a stream in one slot of primary 0, the one killed.
    let range = cluster.slot_range(0).unwrap();
    let prefix = unique_prefix("cluster-kill");
    let tag = (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|t| range.contains(&key_slot(t.as_bytes())))
        .unwrap();
    let mut o = QueueOptions::default();
    o.lease = Duration::from_millis(800);
    o.max_attempts = 100;
    o.backoff = Duration::from_millis(5);
    o.max_backoff = Duration::from_millis(50);
    o.block = Duration::from_millis(20);
    let q = Queue::<Task>::new(tag.clone()).options(o);
    let s =
        Stream::<Task, JsonData>::json(format!("{{{tag}}}:events"), Retention::max_len(1_000_000));
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let con = rt
        .block_on(cluster_options().connect_cluster_async(&urls))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let producer = rt.spawn(produce(
        con.clone(),
        q.clone(),
        s.clone(),
        stop.clone(),
        acked.clone(),
    ));
    let consumers: Vec<_> = [true, true, false, false]
        .into_iter()
        .map(|queue| rt.spawn(consume(con.clone(), q.clone(), s.clone(), queue)))
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let killed_at = cluster.kill_primary(0).unwrap();
    cluster
        .wait_for_promotion(0, Duration::from_secs(60))
        .unwrap();
    let promoted = killed_at.elapsed();
    // The old primary rejoins (empty) as the new primary's replica, so
    // `WAIT 1` can be met again.
    cluster.node_mut(0).unwrap().restart().unwrap();
    let before = acked.lock().unwrap().jobs.len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && acked.lock().unwrap().jobs.len() < before + 100 {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    rt.block_on(producer).unwrap();

    // Every acknowledged job and event is completed, once in Redis.
    let mut check = cluster.connection().unwrap();
    let (jobs, events) = {
        let a = acked.lock().unwrap();
        (a.jobs.clone(), a.events.clone())
    };
    let read = |check: &mut redis::cluster::ClusterConnection, key: String| {
        redis::cmd("HGETALL")
            .arg(key)
            .query::<HashMap<u64, i64>>(check)
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (job_results, event_results) = loop {
        let j = read(&mut check, q.key("results"));
        let e = read(&mut check, format!("{}:results", s.key()));
        let all =
            jobs.iter().all(|n| j.contains_key(n)) && events.iter().all(|n| e.contains_key(n));
        if all || Instant::now() >= deadline {
            break (j, e);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for c in consumers {
        c.abort();
    }
    let lost_jobs = jobs.iter().filter(|n| !job_results.contains_key(n)).count();
    let lost_events = events
        .iter()
        .filter(|n| !event_results.contains_key(n))
        .count();
    let twice_jobs = job_results.values().filter(|&&v| v > 1).count();
    let twice_events = event_results.values().filter(|&&v| v > 1).count();
    let a = acked.lock().unwrap();
    println!(
        "Cluster primary killed under a queue and a stream consumer: promoted after {promoted:?} \
         (cluster-reported failover {:?}); jobs acknowledged {}, lost {lost_jobs}, completed {} \
         (effect applied twice {twice_jobs}); events acknowledged {}, lost {lost_events}, \
         handled {} (effect applied twice {twice_events}); writes refused {}, WAIT shortfalls {}",
        cluster.reported_failover_time(0),
        jobs.len(),
        job_results.len(),
        events.len(),
        event_results.len(),
        a.refused,
        a.shortfalls,
    );
    assert!(a.unexpected.is_empty(), "{:?}", a.unexpected);
    assert_eq!(lost_jobs, 0, "acknowledged jobs lost");
    assert_eq!(lost_events, 0, "acknowledged events lost");
    assert_eq!(twice_jobs, 0, "a job's effect applied twice");
    assert_eq!(twice_events, 0, "an event's effect applied twice");
    assert!(
        jobs.len() > before,
        "no job acknowledged after the failover"
    );
}
