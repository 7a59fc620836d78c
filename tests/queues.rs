//! Job queues against real servers: priorities, delays, leases and fenced
//! completion, retries and dead jobs, hostile payloads, the plain list
//! queue, and faults: workers that die mid-job and a server killed with
//! `appendfsync always`, with jobs lost (must be 0) and run twice (counted)
//! printed.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Runner;
use redis_state::cache::{Shutdown, shutdown};
use redis_state::prelude::*;
use redis_state::queue::{Ack, Effect, Job, ListQueue, Queue, QueueOptions, WorkerStats};
use redis_state::testing::RedisServer;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Task {
    n: u64,
    what: String,
}

fn task(n: u64) -> Task {
    Task {
        n,
        what: format!("t{n}"),
    }
}

fn queue(ns: &Namespace, name: &str, lease: Duration) -> Queue<Task> {
    let mut o = QueueOptions::default();
    o.lease = lease;
    o.backoff = Duration::from_millis(1);
    o.max_backoff = Duration::from_millis(2);
    o.max_attempts = 3;
    o.block = Duration::from_millis(20);
    Queue::new(format!("{}.{name}", ns.as_str())).options(o)
}

fn work<R: Into<Ack>>(
    r: &mut Runner,
    q: &Queue<Task>,
    sd: &Shutdown,
    mut handler: impl FnMut(Job<Task>) -> Result<R, String>,
) -> WorkerStats {
    let w = q.worker();
    match r {
        Runner::Sync(con) => w.run(con, sd, handler),
        Runner::SyncCluster(con) => w.run(con, sd, handler),
        Runner::Async(rt, con) => {
            rt.block_on(w.run_async(con, sd, |j| std::future::ready(handler(j))))
        }
        Runner::AsyncCluster(rt, con) => {
            rt.block_on(w.run_async(con, sd, |j| std::future::ready(handler(j))))
        }
    }
    .unwrap()
}

fn priorities_then_fifo(r: &mut Runner, ns: &Namespace) {
    let q = queue(ns, "p", Duration::from_secs(30));
    r.run(q.push(&task(1))).unwrap();
    r.run(q.push(&task(2)).priority(5)).unwrap();
    r.run(q.push(&task(3))).unwrap();
    r.run(q.push(&task(4)).priority(5)).unwrap();
    r.run(q.push(&task(5)).priority(-1)).unwrap();
    let mut order = Vec::new();
    while let Some(job) = r.run(q.take()).unwrap() {
        assert_eq!(job.attempt, 1);
        order.push(job.data.n);
        assert_eq!(
            r.run(q.complete(&job, ())).unwrap(),
            redis_state::queue::Settled::Done
        );
    }
    assert_eq!(order, vec![2, 4, 1, 3, 5]);
    assert_eq!(r.run(q.counts()).unwrap(), (0, 0, 0, 0));
    // Nothing left behind but the id counter.
    let fields: u64 = r.cmd("HLEN", &q.key("jobs")).go();
    assert_eq!(fields, 0);
}

fn delayed_jobs_become_due(r: &mut Runner, ns: &Namespace) {
    let q = queue(ns, "d", Duration::from_secs(30));
    // Long enough that a loaded machine cannot reach the first take after
    // the job is due; then polled, with a bound, until it is.
    let pushed = std::time::Instant::now();
    r.run(q.push(&task(1)).delay(Duration::from_millis(1500)))
        .unwrap();
    assert!(r.run(q.take()).unwrap().is_none());
    assert_eq!(r.run(q.counts()).unwrap(), (0, 1, 0, 0));
    let job = loop {
        if let Some(job) = r.run(q.take()).unwrap() {
            break job;
        }
        assert!(pushed.elapsed() < Duration::from_secs(15), "never due");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(pushed.elapsed() >= Duration::from_millis(1500));
    assert_eq!(job.data, task(1));
    r.run(q.complete(&job, ())).unwrap();
}

/// A worker whose completion carries an effect the server refuses: the
/// worker stops with the server's error, the job stays leased (it comes
/// back when the lease runs out, its effect not applied), and the job
/// behind it is not taken.
fn a_refused_effect_keeps_the_job(r: &mut Runner, ns: &Namespace) {
    let q = queue(ns, "e", Duration::from_millis(500));
    let list = q.key("not-a-counter");
    let _: i64 = r.cmd("RPUSH", &list).arg("x").go();
    r.run(redis_state::many((1..=2).map(|i| q.push(&task(i)))))
        .unwrap();
    let (_stop, sd) = shutdown();
    let handler = |_: Job<Task>| Ok::<_, String>(Effect::new().command("INCRBY", &list, 1));
    let w = q.worker();
    let outcome = match r {
        Runner::Sync(con) => w.run(con, &sd, handler),
        Runner::SyncCluster(con) => w.run(con, &sd, handler),
        Runner::Async(rt, con) => {
            rt.block_on(w.run_async(con, &sd, |j| std::future::ready(handler(j))))
        }
        Runner::AsyncCluster(rt, con) => {
            rt.block_on(w.run_async(con, &sd, |j| std::future::ready(handler(j))))
        }
    };
    assert!(
        matches!(outcome, Err(redis_state::Error::Server { .. })),
        "{outcome:?}"
    );
    // (ready, delayed, active, dead): job 1 still leased, job 2 untaken.
    assert_eq!(r.run(q.counts()).unwrap(), (1, 0, 1, 0));
    std::thread::sleep(Duration::from_millis(600));
    let again = r.run(q.take()).unwrap().expect("the leased job came back");
    assert_eq!((again.data.n, again.attempt), (1, 2));
    r.run(q.complete(&again, ())).unwrap();
}

fn fenced_completion_after_the_lease_ran_out(r: &mut Runner, ns: &Namespace) {
    let q = queue(ns, "f", Duration::from_millis(30));
    let done = q.key("done");
    r.run(q.push(&task(1))).unwrap();
    let stale = r.run(q.take()).unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(40));
    // The lease ran out: this worker may neither complete nor apply its
    // effect, even before another worker took the job.
    let effect = Effect::new().command("INCRBY", &done, 1);
    match r.run(q.complete(&stale, effect.clone())) {
        Err(redis_state::Error::LeaseLost { job, .. }) => assert_eq!(job, stale.id),
        other => panic!("expected LeaseLost, got {other:?}"),
    }
    assert!(r.run(q.extend(&stale, Duration::from_secs(1))).is_err());
    let again = r.run(q.take()).unwrap().expect("reclaimed");
    assert_eq!((again.id.as_str(), again.attempt), (stale.id.as_str(), 2));
    assert!(r.run(q.fail(&stale, "late")).is_err());
    r.run(q.extend(&again, Duration::from_secs(5))).unwrap();
    r.run(q.complete(&again, effect)).unwrap();
    let n: i64 = r.cmd("GET", &done).go();
    assert_eq!(n, 1);
    assert_eq!(r.run(q.counts()).unwrap(), (0, 0, 0, 0));
}

fn retries_then_dead_letters(r: &mut Runner, ns: &Namespace) {
    let q = queue(ns, "r", Duration::from_secs(30));
    r.run(q.push(&task(13))).unwrap();
    r.run(redis_state::many((1..=5).map(|i| q.push(&task(i)))))
        .unwrap();
    // A payload another client wrote badly: dead at once, with the reason.
    let _: i64 = r.cmd("HSET", &q.key("jobs")).arg("junk").arg("{nope").go();
    let _: i64 = r.cmd("ZADD", &q.key("ready")).arg(-10).arg("junk").go();
    let (trigger, sd) = shutdown();
    let mut seen = BTreeSet::new();
    let mut poison_tries = 0;
    let stats = work(r, &q, &sd, |job| {
        if job.data.n == 13 {
            poison_tries += 1;
            assert_eq!(job.attempt, poison_tries);
            if poison_tries == 3 && seen.len() == 5 {
                trigger.fire();
            }
            return Err(format!("poison #{}", job.attempt));
        }
        seen.insert(job.data.n);
        if seen.len() == 5 && poison_tries == 3 {
            trigger.fire();
        }
        Ok(())
    });
    assert_eq!(poison_tries, 3);
    assert_eq!(stats.done, 5);
    assert_eq!(stats.retried, 2);
    assert_eq!(stats.dead, 2);
    let dead = r.run(q.dead(10)).unwrap();
    assert_eq!(dead.len(), 2);
    let poison = dead.iter().find(|d| d.data.is_ok()).unwrap();
    assert_eq!(poison.error, "poison #3");
    assert_eq!(poison.attempts, 3);
    let junk = dead.iter().find(|d| d.id == "junk").unwrap();
    assert!(matches!(junk.data, Err(redis_state::Error::Decode(_))));
    assert!(junk.error.contains("JSON"));
    assert_eq!(r.run(q.counts()).unwrap(), (0, 0, 0, 2));
}

/// A job written in the layout before `<q>:jobs` (one hash per field) is
/// met with a typed error naming that layout and put back untouched; the
/// new layout's jobs behind it wait, and nothing is lost.
fn a_job_of_the_old_layout_is_named_not_lost(r: &mut Runner, ns: &Namespace) {
    let q = queue(ns, "old", Duration::from_secs(30));
    let id = "0000000000000001";
    let payload = serde_json::to_string(&task(7)).unwrap();
    let _: i64 = r.cmd("HSET", &q.key("data")).arg(id).arg(&payload).go();
    let _: i64 = r.cmd("HSET", &q.key("prio")).arg(id).arg(0).go();
    let _: i64 = r.cmd("ZADD", &q.key("ready")).arg(0).arg(id).go();
    let (): () = r.cmd("SET", &q.key("seq")).arg(1).go();
    for _ in 0..2 {
        match r.run(q.take()) {
            Err(redis_state::Error::QueueLayout { queue, job, key }) => {
                assert_eq!(queue, q.name());
                assert_eq!(job, id);
                assert_eq!(key, q.key("data"));
            }
            other => panic!("expected the old layout named, got {other:?}"),
        }
        assert_eq!(r.run(q.counts()).unwrap(), (1, 0, 0, 0));
    }
    // A worker stops on it with the same error, the job still ready.
    let (_trigger, sd) = shutdown();
    let w = q.worker();
    let got = match r {
        Runner::Sync(con) => w.run(con, &sd, |_| Ok::<_, String>(())),
        Runner::SyncCluster(con) => w.run(con, &sd, |_| Ok::<_, String>(())),
        Runner::Async(rt, con) => {
            rt.block_on(w.run_async(con, &sd, |_| async { Ok::<_, String>(()) }))
        }
        Runner::AsyncCluster(rt, con) => {
            rt.block_on(w.run_async(con, &sd, |_| async { Ok::<_, String>(()) }))
        }
    };
    assert!(
        matches!(got, Err(redis_state::Error::QueueLayout { .. })),
        "{got:?}"
    );
    assert_eq!(r.run(q.counts()).unwrap(), (1, 0, 0, 0));
    let kept: Option<String> = r.cmd("HGET", &q.key("data")).arg(id).go();
    assert_eq!(kept.as_deref(), Some(payload.as_str()));
}

fn a_dead_worker_loses_nothing(r: &mut Runner, ns: &Namespace) {
    // A lease long enough that the live worker's jobs never outlast it on
    // a loaded machine.
    let q = queue(ns, "w", Duration::from_millis(300));
    r.run(redis_state::many((1..=3).map(|i| q.push(&task(i)))))
        .unwrap();
    // A worker takes a job and dies (never settles it).
    let lost = r.run(q.take()).unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(350));
    let (trigger, sd) = shutdown();
    let mut seen = Vec::new();
    let stats = work(r, &q, &sd, |job| {
        seen.push((job.data.n, job.attempt));
        if seen.len() == 3 {
            trigger.fire();
        }
        Ok(())
    });
    assert_eq!(stats.done, 3);
    assert!(seen.contains(&(lost.data.n, 2)));
    assert_eq!(r.run(q.counts()).unwrap(), (0, 0, 0, 0));
}

fn list_queue_and_bad_payloads(r: &mut Runner, ns: &Namespace) {
    let q = ListQueue::<Task>::new(&format!("{}.list", ns.as_str()));
    assert_eq!(q.key(), format!("queue:{}.list", ns.as_str()));
    r.run(q.push(&task(1))).unwrap();
    r.run(q.push(&task(2))).unwrap();
    assert_eq!(r.run(q.pop()).unwrap(), Some(task(1)));
    let waited = match r {
        Runner::Sync(con) => q.pop_wait(con, Duration::from_millis(50)),
        Runner::SyncCluster(con) => q.pop_wait(con, Duration::from_millis(50)),
        Runner::Async(rt, con) => rt.block_on(q.pop_wait_async(con, Duration::from_millis(50))),
        Runner::AsyncCluster(rt, con) => {
            rt.block_on(q.pop_wait_async(con, Duration::from_millis(50)))
        }
    }
    .unwrap();
    assert_eq!(waited, Some(task(2)));
    assert_eq!(r.run(q.pop()).unwrap(), None);
    let _: i64 = r.cmd("RPUSH", q.key()).arg("not json").go();
    match r.run(q.pop()) {
        Err(redis_state::Error::Decode(d)) => assert_eq!(d.key, q.key()),
        other => panic!("expected a decode error, got {other:?}"),
    }
    // A queue name that would break its hash tag is refused.
    let bad = Queue::<Task>::new("a}b");
    assert!(matches!(
        r.run(bad.push(&task(1))),
        Err(redis_state::Error::InvalidKeyPart { .. })
    ));
}

matrix!(
    priorities_then_fifo,
    delayed_jobs_become_due,
    fenced_completion_after_the_lease_ran_out,
    a_refused_effect_keeps_the_job,
    retries_then_dead_letters,
    a_job_of_the_old_layout_is_named_not_lost,
    a_dead_worker_loses_nothing,
    list_queue_and_bad_payloads,
);

// ---------------------------------------------------------------------------
// Faults

/// Completed job ids (by the effect, exactly once in Redis) and handler
/// runs per job (in the process, at least once).
struct Tally {
    runs: Mutex<HashMap<u64, u32>>,
}

fn report(
    label: &str,
    q: &Queue<Task>,
    con: &mut redis::Connection,
    pushed: &[u64],
    tally: &Tally,
) {
    let done: HashMap<String, i64> = redis::cmd("HGETALL")
        .arg(q.key("results"))
        .query(con)
        .unwrap();
    let (ready, delayed, active, dead) = q.counts().run(con).unwrap();
    let runs = tally.runs.lock().unwrap();
    let lost: Vec<u64> = pushed
        .iter()
        .copied()
        .filter(|n| !done.contains_key(&n.to_string()))
        .collect();
    let duplicated = runs.values().filter(|&&n| n > 1).count();
    let twice_in_redis = done.values().filter(|&&n| n > 1).count();
    println!(
        "{label}: pushed {}, completed {}, lost {}, run more than once {duplicated} (handler), applied twice in Redis {twice_in_redis}, left ready {ready} delayed {delayed} active {active} dead {dead}",
        pushed.len(),
        done.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "{label}: lost jobs {lost:?}");
    assert_eq!(twice_in_redis, 0, "{label}: an effect applied twice");
}

/// Runs workers on `threads` threads until every pushed job is completed;
/// each worker dies (panics mid-job, settling nothing) on jobs `die_on`
/// says, and a new one takes its place.
fn run_workers(
    server_url: &str,
    q: &Queue<Task>,
    threads: usize,
    total: usize,
    tally: &Arc<Tally>,
    die_on: fn(u64, u32) -> bool,
    mut between: impl FnMut(u64),
) {
    let (stop, sd) = shutdown();
    let mut handles = Vec::new();
    for _ in 0..threads {
        let (url, q, tally, sd) = (server_url.to_owned(), q.clone(), tally.clone(), sd.clone());
        handles.push(std::thread::spawn(move || {
            let mut deaths = 0u32;
            while !sd.is_fired() {
                let client = redis::Client::open(url.as_str()).unwrap();
                let Ok(mut con) = client.get_connection() else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let results = q.key("results");
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    q.worker().run(&mut con, &sd, |job| {
                        *tally.runs.lock().unwrap().entry(job.data.n).or_default() += 1;
                        if die_on(job.data.n, job.attempt) {
                            panic!("worker dies mid-job {}", job.data.n);
                        }
                        Ok::<_, String>(Effect::new().command("HINCRBY", &results, (job.data.n, 1)))
                    })
                }));
                if run.is_err() {
                    deaths += 1;
                }
                // A Redis error (the server went away): reconnect.
                std::thread::sleep(Duration::from_millis(5));
            }
            deaths
        }));
    }
    let mut checks = 0u64;
    let con = redis::Client::open(server_url).unwrap();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        checks += 1;
        between(checks);
        let done: Option<u64> = con
            .get_connection()
            .ok()
            .and_then(|mut c| redis::cmd("HLEN").arg(q.key("results")).query(&mut c).ok());
        if done == Some(total as u64) {
            break;
        }
        assert!(checks < 3000, "workers did not finish within a minute");
    }
    stop.fire();
    let deaths: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    println!("worker deaths: {deaths}");
}

#[test]
fn workers_killed_mid_job_lose_nothing() {
    let server = RedisServer::start().unwrap();
    let mut o = QueueOptions::default();
    o.lease = Duration::from_millis(200);
    o.max_attempts = 10;
    o.backoff = Duration::from_millis(1);
    o.max_backoff = Duration::from_millis(5);
    o.block = Duration::from_millis(20);
    let q = Queue::<Task>::new("kill9.workers").options(o);
    let mut con = server.connection().unwrap();
    let pushed: Vec<u64> = (1..=300).collect();
    redis_state::many(pushed.iter().map(|&n| q.push(&task(n))))
        .run(&mut con)
        .unwrap();
    let tally = Arc::new(Tally {
        runs: Mutex::new(HashMap::new()),
    });
    // Every 7th job kills its worker on the first attempt.
    run_workers(
        &server.url(),
        &q,
        4,
        300,
        &tally,
        |n, attempt| n % 7 == 0 && attempt == 1,
        |_| {},
    );
    report("workers killed mid-job", &q, &mut con, &pushed, &tally);
}

#[test]
fn server_killed_with_aof_always_loses_no_job() {
    let mut server = RedisServer::builder()
        .config("appendonly", "yes")
        .config("appendfsync", "always")
        .start()
        .unwrap();
    let mut o = QueueOptions::default();
    o.lease = Duration::from_millis(300);
    o.max_attempts = 20;
    o.backoff = Duration::from_millis(1);
    o.max_backoff = Duration::from_millis(5);
    o.block = Duration::from_millis(20);
    let q = Queue::<Task>::new("kill9.server").options(o);
    let mut con = server.connection().unwrap();
    let pushed: Vec<u64> = (1..=400).collect();
    redis_state::many(pushed.iter().map(|&n| q.push(&task(n))))
        .run(&mut con)
        .unwrap();
    let tally = Arc::new(Tally {
        runs: Mutex::new(HashMap::new()),
    });
    let url = server.url();
    let server = Mutex::new(&mut server);
    let mut kills = 0;
    run_workers(
        &url,
        &q,
        3,
        400,
        &tally,
        |_, _| false,
        |check| {
            // kill -9 the server three times while the workers run.
            if check % 5 == 0 && kills < 3 {
                kills += 1;
                server.lock().unwrap().restart().unwrap();
            }
        },
    );
    println!("server kill -9 restarts: {kills}");
    let mut con = server.lock().unwrap().connection().unwrap();
    report("server killed (AOF always)", &q, &mut con, &pushed, &tally);
}

#[test]
fn delayed_jobs_survive_a_server_kill() {
    let mut server = RedisServer::builder()
        .config("appendonly", "yes")
        .config("appendfsync", "always")
        .start()
        .unwrap();
    let mut o = QueueOptions::default();
    o.lease = Duration::from_millis(100);
    let q = Queue::<Task>::new("kill9.delayed").options(o);
    let mut con = server.connection().unwrap();
    q.push(&task(1))
        .delay(Duration::from_millis(200))
        .run(&mut con)
        .unwrap();
    q.push(&task(2)).run(&mut con).unwrap();
    // Taken and then the server dies: the lease survives in the AOF and
    // runs out; the job comes back.
    let taken = q.take().run(&mut con).unwrap().unwrap();
    assert_eq!(taken.data, task(2));
    server.restart().unwrap();
    let mut con = server.connection().unwrap();
    assert_eq!(q.counts().run(&mut con).unwrap(), (0, 1, 1, 0));
    std::thread::sleep(Duration::from_millis(250));
    let mut got = Vec::new();
    while let Some(job) = q.take().run(&mut con).unwrap() {
        got.push((job.data.n, job.attempt));
        q.complete(&job, ()).run(&mut con).unwrap();
    }
    got.sort();
    assert_eq!(got, vec![(1, 1), (2, 2)]);
    // The stale worker's completion is refused.
    assert!(q.complete(&taken, ()).run(&mut con).is_err());
}
