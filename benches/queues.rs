//! The job queue beside BullMQ itself, on the same server in one run: the
//! four bullmq-bench scenarios (add one job at a time, bulk adds of 50, one
//! worker processing, a worker with 100 concurrent jobs).
//!
//! ```text
//! cargo bench --all-features --bench queues
//! BENCH_QUICK=1 cargo bench --all-features --bench queues
//! ```
//!
//! BullMQ runs in Node.js: the benchmark installs a pinned BullMQ with npm
//! into `target/bench-node/` (once) and runs `benches/support/bullmq.cjs`
//! once per round, which prints its figures as JSON. Node.js and npm must be
//! on `PATH`; without them the benchmark stops with an error saying so.
//!
//! Both sides are single-threaded (Node's event loop; a current-thread
//! Tokio runtime with one multiplexed connection here), both remove a job
//! when it completes, and both fill a queue before a processing scenario's
//! clock starts. The "hand-written" column of the table is BullMQ. Rows go
//! to `target/bench/queues.json`, target: at least 3x BullMQ.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::panic)]

mod support;

use std::cell::Cell;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use redis_state::cache::shutdown;
use redis_state::prelude::*;
use redis_state::queue::{Queue, QueueOptions};
use serde::{Deserialize, Serialize};
use support::{Config, Report, Round, Row, Series, Target, bench_server};

/// The BullMQ release measured (pinned: figures stay comparable).
const BULLMQ_VERSION: &str = "5.81.5";
const ROUNDS: usize = 5;
const BULK: usize = 50;
const CONCURRENCY: usize = 100;
const SCENARIOS: [(&str, &str, &str); 4] = [
    ("1", "add", "add one job (each awaited)"),
    ("2", "bulk", "bulk add of 50 jobs"),
    ("3", "worker", "one worker processing"),
    ("4", "concurrent", "100 concurrent jobs processing"),
];

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Job {
    id: u64,
    what: String,
}

fn job(i: usize) -> Job {
    Job {
        id: i as u64,
        what: "resize".into(),
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Runs `program --version`, or stops the benchmark saying what is missing.
fn require(program: &str) -> String {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => panic!(
            "the BullMQ comparison needs Node.js and npm: `{program} --version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "the BullMQ comparison needs Node.js and npm on PATH: cannot run `{program}`: {e}"
        ),
    }
}

/// Installs BullMQ `BULLMQ_VERSION` under `target/bench-node/` unless it is
/// there; returns its `node_modules`.
fn install_bullmq() -> PathBuf {
    let dir = target_dir()
        .join("bench-node")
        .join(format!("bullmq-{BULLMQ_VERSION}"));
    let modules = dir.join("node_modules");
    require("npm");
    if modules.join("bullmq").join("package.json").is_file() {
        return modules;
    }
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    println!("installing bullmq@{BULLMQ_VERSION} into {}", dir.display());
    let status = Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(&dir)
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .arg(format!("bullmq@{BULLMQ_VERSION}"))
        .status()
        .unwrap_or_else(|e| panic!("cannot run npm: {e}"));
    assert!(
        status.success(),
        "`npm install bullmq@{BULLMQ_VERSION}` failed ({status})"
    );
    modules
}

#[derive(Deserialize, Debug)]
struct NodeFigure {
    ops: u64,
    secs: f64,
}

#[derive(Deserialize, Debug)]
struct NodeRound {
    version: String,
    add: NodeFigure,
    bulk: NodeFigure,
    worker: NodeFigure,
    concurrent: NodeFigure,
}

/// One round of BullMQ's side: a Node process running the four scenarios.
fn bullmq_round(modules: &PathBuf, url: &str, jobs: usize) -> (String, [Round; 4]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/support/bullmq.cjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(url)
        .arg(jobs.to_string())
        .arg("bench:bullmq")
        .env("NODE_PATH", modules)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    assert!(
        out.status.success(),
        "{} failed ({}): {}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let r: NodeRound = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{} printed no figures ({e}): {}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let round = |f: &NodeFigure| Round {
        ops: f.ops,
        elapsed: Duration::from_secs_f64(f.secs),
        latencies_ns: Vec::new(),
    };
    (
        r.version.clone(),
        [
            round(&r.add),
            round(&r.bulk),
            round(&r.worker),
            round(&r.concurrent),
        ],
    )
}

/// Deletes every key of `q`.
async fn drop_queue(q: &Queue<Job>, con: &mut redis::aio::MultiplexedConnection) {
    let mut del = redis::cmd("DEL");
    for part in [
        "seq", "data", "prio", "ready", "delayed", "active", "attempts", "token", "errors", "dead",
        "notify",
    ] {
        del.arg(q.key(part));
    }
    let _: i64 = del.query_async(con).await.unwrap();
}

async fn fill(q: &Queue<Job>, con: &mut redis::aio::MultiplexedConnection, jobs: usize) {
    for start in (0..jobs).step_by(500) {
        redis_state::many((start..jobs.min(start + 500)).map(|i| q.push(&job(i))))
            .run_async(con)
            .await
            .unwrap();
    }
}

/// Workers with `concurrency` jobs in flight (each its own worker loop on
/// a clone of the connection) until `jobs` jobs are done.
async fn process(
    q: &Queue<Job>,
    con: &redis::aio::MultiplexedConnection,
    jobs: usize,
    concurrency: usize,
) -> Round {
    let (trigger, sd) = shutdown();
    let done = Cell::new(0usize);
    let mut cons: Vec<_> = (0..concurrency).map(|_| con.clone()).collect();
    let worker = q.worker();
    let start = Instant::now();
    futures_util::future::join_all(cons.iter_mut().map(|c| {
        worker.run_async(c, &sd, |j| {
            std::hint::black_box(j.data.id);
            done.set(done.get() + 1);
            if done.get() == jobs {
                trigger.fire();
            }
            std::future::ready(Ok::<_, String>(()))
        })
    }))
    .await
    .into_iter()
    .for_each(|r| {
        r.unwrap();
    });
    Round {
        ops: jobs as u64,
        elapsed: start.elapsed(),
        latencies_ns: Vec::new(),
    }
}

/// One round of the library's side.
async fn ours_round(client: &redis::Client, jobs: usize) -> [Round; 4] {
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let q =
        |name: &str| Queue::<Job>::new(format!("bench.{name}")).options(QueueOptions::default());

    let add = q("add");
    let start = Instant::now();
    for i in 0..jobs {
        add.push(&job(i)).run_async(&mut con).await.unwrap();
    }
    let r_add = Round {
        ops: jobs as u64,
        elapsed: start.elapsed(),
        latencies_ns: Vec::new(),
    };
    drop_queue(&add, &mut con).await;

    let bulk = q("bulk");
    let n = jobs.div_ceil(BULK) * BULK;
    let start = Instant::now();
    for first in (0..n).step_by(BULK) {
        redis_state::many((first..first + BULK).map(|i| bulk.push(&job(i))))
            .run_async(&mut con)
            .await
            .unwrap();
    }
    let r_bulk = Round {
        ops: n as u64,
        elapsed: start.elapsed(),
        latencies_ns: Vec::new(),
    };
    drop_queue(&bulk, &mut con).await;

    let one = q("worker");
    fill(&one, &mut con, jobs).await;
    let r_worker = process(&one, &con, jobs, 1).await;
    drop_queue(&one, &mut con).await;

    let many = q("concurrent");
    fill(&many, &mut con, jobs).await;
    let r_concurrent = process(&many, &con, jobs, CONCURRENCY).await;
    drop_queue(&many, &mut con).await;

    [r_add, r_bulk, r_worker, r_concurrent]
}

fn main() {
    let cfg = Config::from_args();
    let jobs = cfg.scale(2_000, 100);
    let rounds = cfg.rounds(ROUNDS, 1);
    let node = require("node");
    let modules = install_bullmq();
    let server = bench_server();
    let mut report = Report::new("queues", &server, &cfg);
    server.clear(&["queue:{bench.*", "bench:bullmq:*"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = server.client();
    let mut ours: [Series; 4] = Default::default();
    let mut theirs: [Series; 4] = Default::default();
    let mut version = String::new();
    for r in 0..rounds.warmup + rounds.rounds {
        // Alternate which side goes first.
        let (mut a, mut b) = (None, None);
        for side in [r % 2, (r + 1) % 2] {
            if side == 0 {
                a = Some(rt.block_on(ours_round(&client, jobs)));
            } else {
                let (v, rounds) = bullmq_round(&modules, server.url(), jobs);
                version = v;
                b = Some(rounds);
            }
        }
        if r < rounds.warmup {
            continue;
        }
        for (k, (x, y)) in a.unwrap().into_iter().zip(b.unwrap()).enumerate() {
            for (s, round) in [(&mut ours[k], x), (&mut theirs[k], y)] {
                s.ops_per_sec.push(round.ops_per_sec());
                s.ops_per_round = round.ops;
            }
        }
    }
    report.note(format!(
        "the hand-written column is BullMQ {version} on Node.js {node}, on the same server; \
         {jobs} jobs per scenario and round, {} rounds, sides alternated",
        rounds.rounds
    ));
    for (k, (id, _, name)) in SCENARIOS.iter().enumerate() {
        report.push(
            Row::new(id, &format!("queue vs BullMQ: {name}"), &ours[k])
                .hand(&theirs[k])
                .target(Target::MinHandRatio(3.0)),
        );
    }
    server.clear(&["queue:{bench.*", "bench:bullmq:*"]);
    report.finish();
}
