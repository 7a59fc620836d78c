//! Shared support for the redis-state benchmarks (`benches/*.rs`).
//!
//! DESIGN, "Testing": speed is measured here, never asserted. A benchmark runs
//! the redis-state API ("derived") beside hand-written redis-rs code sending
//! the same commands ("hand-written") and the server's own ceiling
//! (`redis-benchmark`), on one server in one run, and prints ratios. Targets
//! are reported as PASS / MISS; nothing fails on a MISS.
//!
//! Use it from a benchmark with `mod support;` (the file sits in
//! `benches/support/mod.rs`, so it is not a benchmark target of its own):
//!
//! ```ignore
//! mod support;
//! use support::*;
//!
//! fn main() {
//!     let cfg = Config::from_args();
//!     let server = bench_server();
//!     let mut report = Report::new("cache", &server, &cfg);
//!     let [ours, theirs] = alternate(&cfg.rounds(15, 2), [
//!         &mut |r| Round::each(cfg.scale(2_000, 50), |i| { /* derived op */ }),
//!         &mut |r| Round::each(cfg.scale(2_000, 50), |i| { /* hand-written op */ }),
//!     ]);
//!     let ceiling = RedisBenchmark::new(&server).requests(50_000).run(&["GET", "k"]);
//!     report.push(Row::new("1", "get (sync)", &ours).hand(&theirs).ceiling(ceiling)
//!         .target(Target::MinHandRatio(0.95)));
//!     report.finish();
//! }
//! ```
//!
//! * [`Config`]: full run under `cargo bench`, a quick smoke run under
//!   `cargo test --benches` (no `--bench` argument) or with `BENCH_QUICK=1`.
//! * [`bench_server`]: `REDIS_URL` if set, else a private `redis-server`
//!   (never the shared one on 6379).
//! * [`Round`], [`alternate`], [`alternate_each`], [`Series`]: warm-up,
//!   alternating rounds, medians and latency percentiles; [`Round::cpu`]
//!   times CPU-only code by the thread's CPU time, which a busy machine does
//!   not inflate.
//! * [`RedisBenchmark`]: runs `redis-benchmark` on the same server and parses
//!   its ops/s.
//! * [`Report`], [`Row`], [`Target`]: the table on stdout and the same rows as
//!   JSON in `target/bench/<name>.json`, with machine information.

#![allow(
    dead_code,
    reason = "each benchmark uses a different part of the support"
)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use redis_state::testing::RedisServer;
use serde::Serialize;

// ---------------------------------------------------------------------------
// Configuration

/// How long the run is.
#[derive(Debug, Clone)]
pub struct Config {
    /// A smoke run: few, small rounds; numbers are not meaningful.
    pub quick: bool,
    /// `BENCH_ONLY=1,5`: run only the rows whose id starts with one of these
    /// (for profiling one row); `None` runs every row.
    pub only: Option<Vec<String>>,
}

impl Config {
    /// A full run when the binary gets `--bench` (as `cargo bench` passes it)
    /// and `BENCH_QUICK` is unset or `0`; otherwise a quick smoke run (as
    /// under `cargo test --benches`, which passes no `--bench`).
    pub fn from_args() -> Config {
        let bench = std::env::args().any(|a| a == "--bench");
        let forced_quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let only = std::env::var("BENCH_ONLY")
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            });
        Config {
            quick: !bench || forced_quick,
            only,
        }
    }

    /// Whether row `id` runs (see [`Config::only`]).
    pub fn wants(&self, id: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| id.starts_with(o.as_str())))
    }

    /// `full` in a full run, `quick` in a smoke run.
    pub fn scale(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }

    /// Measured and warm-up rounds: as given in a full run, 1 and 0 in a
    /// smoke run.
    pub fn rounds(&self, rounds: usize, warmup: usize) -> Rounds {
        if self.quick {
            Rounds {
                rounds: 1,
                warmup: 0,
            }
        } else {
            Rounds { rounds, warmup }
        }
    }
}

/// How many rounds [`alternate`] runs per side.
#[derive(Debug, Clone, Copy)]
pub struct Rounds {
    /// Measured rounds.
    pub rounds: usize,
    /// Rounds run first and discarded (connections, caches, allocator, CPU
    /// frequency settle).
    pub warmup: usize,
}

// ---------------------------------------------------------------------------
// The server

/// The server a benchmark runs against.
pub struct BenchServer {
    client: redis::Client,
    url: String,
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    /// The private server, stopped when this is dropped; `None` with `REDIS_URL`.
    private: Option<RedisServer>,
}

/// `REDIS_URL` when set (a scratch server: the benchmark writes and deletes
/// keys under `bench:`), else a private `redis-server` on a free port,
/// started with `redis_state::testing::RedisServer` and stopped at the end.
///
/// # Panics
///
/// When the URL is invalid, the server cannot be started or does not answer:
/// a benchmark cannot continue without it.
pub fn bench_server() -> BenchServer {
    let (client, url, private) = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let client = redis::Client::open(url.as_str())
                .unwrap_or_else(|e| panic!("REDIS_URL={url} is not a valid Redis URL: {e}"));
            (client, url, None)
        }
        _ => {
            let server = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
            (server.client(), server.url(), Some(server))
        }
    };
    let info = client.get_connection_info();
    let (host, port) = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
        redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port),
        other => panic!("benchmarks need a TCP server, REDIS_URL gives {other:?}"),
    };
    let settings = info.redis_settings();
    let server = BenchServer {
        host,
        port,
        username: settings.username().map(str::to_owned),
        password: settings.password().map(str::to_owned),
        db: settings.db(),
        client,
        url,
        private,
    };
    let pong: String = redis::cmd("PING")
        .query(&mut server.connection())
        .unwrap_or_else(|e| panic!("{} does not answer PING: {e}", server.describe()));
    assert_eq!(pong, "PONG");
    server
}

impl BenchServer {
    /// A client for the server.
    pub fn client(&self) -> redis::Client {
        self.client.clone()
    }

    /// The server's URL (`REDIS_URL`, or the private server's), for APIs
    /// that open their own connections.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new blocking connection.
    pub fn connection(&self) -> redis::Connection {
        self.client
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.describe()))
    }

    /// A new multiplexed async connection (needs a Tokio runtime).
    pub async fn async_connection(&self) -> redis::aio::MultiplexedConnection {
        self.client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.describe()))
    }

    /// The host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// True for the private server (which the benchmark may flush).
    pub fn is_private(&self) -> bool {
        self.private.is_some()
    }

    /// `private redis-server on 127.0.0.1:PORT` or `REDIS_URL host:port`.
    pub fn describe(&self) -> String {
        if self.is_private() {
            format!("private redis-server on {}:{}", self.host, self.port)
        } else {
            format!(
                "REDIS_URL server {}:{} db {}",
                self.host, self.port, self.db
            )
        }
    }

    /// `redis_version` from `INFO server`.
    pub fn redis_version(&self) -> String {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut self.connection())
            .unwrap_or_default();
        info_field(&info, "redis_version").unwrap_or_else(|| "unknown".to_owned())
    }

    /// Removes the benchmark's keys: `FLUSHALL` on the private server; on a
    /// `REDIS_URL` server, `SCAN` + `UNLINK` of the keys matching `patterns`
    /// only.
    pub fn clear(&self, patterns: &[&str]) {
        let mut con = self.connection();
        if self.is_private() {
            let () = redis::cmd("FLUSHALL").query(&mut con).expect("FLUSHALL");
            return;
        }
        for pattern in patterns {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(&mut con)
                    .expect("SCAN");
                if !keys.is_empty() {
                    let _: i64 = redis::cmd("UNLINK")
                        .arg(&keys)
                        .query(&mut con)
                        .expect("UNLINK");
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
    }

    /// `MEMORY USAGE key SAMPLES 0` (bytes), `None` for a missing key.
    pub fn memory_usage(&self, con: &mut redis::Connection, key: &str) -> Option<u64> {
        redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query(con)
            .expect("MEMORY USAGE")
    }

    /// The arguments that point `redis-benchmark` at this server.
    fn benchmark_args(&self) -> Vec<String> {
        let mut args = vec![
            "-h".to_owned(),
            self.host.clone(),
            "-p".to_owned(),
            self.port.to_string(),
        ];
        if let Some(user) = &self.username {
            args.extend(["--user".to_owned(), user.clone()]);
        }
        if let Some(password) = &self.password {
            args.extend(["-a".to_owned(), password.clone()]);
        }
        if self.db != 0 {
            args.extend(["--dbnum".to_owned(), self.db.to_string()]);
        }
        args
    }
}

fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == name).then(|| v.trim().to_owned())
    })
}

// ---------------------------------------------------------------------------
// Timing

/// One timed round of one side.
#[derive(Debug, Clone, Default)]
pub struct Round {
    /// Operations done (entities, calls).
    pub ops: u64,
    /// Wall time of the whole round.
    pub elapsed: Duration,
    /// Latency of each operation in nanoseconds, for one-at-a-time rounds.
    pub latencies_ns: Vec<u64>,
}

impl Round {
    /// Runs `op(0..n)` one at a time, timing each call and the whole.
    pub fn each(n: usize, mut op: impl FnMut(usize)) -> Round {
        let mut sw = Stopwatch::start(n);
        for i in 0..n {
            op(i);
            sw.tick();
        }
        sw.finish()
    }

    /// [`Round::each`] for async operations: awaits `op(0..n)` one at a
    /// time (run it with `block_on`), timing each call and the whole.
    pub async fn each_async(n: usize, mut op: impl AsyncFnMut(usize)) -> Round {
        let mut sw = Stopwatch::start(n);
        for i in 0..n {
            op(i).await;
            sw.tick();
        }
        sw.finish()
    }

    /// Times `f` as a whole, which does `ops` operations (a pipeline of
    /// `ops` entities, or `ops` iterations of a CPU-only loop).
    pub fn whole(ops: u64, f: impl FnOnce()) -> Round {
        let start = Instant::now();
        f();
        Round {
            ops,
            elapsed: start.elapsed(),
            latencies_ns: Vec::new(),
        }
    }

    /// Times `f`, which does `ops` operations without I/O, by the CPU time
    /// of the calling thread ([`thread_cpu_time`]): time slices the
    /// scheduler gives to other processes on a busy machine do not count, so
    /// the figure is the code's own cost. Wall-clock time where the OS does
    /// not tell.
    pub fn cpu(ops: u64, f: impl FnOnce()) -> Round {
        let wall = Instant::now();
        let start = thread_cpu_time();
        f();
        let end = thread_cpu_time();
        let wall = wall.elapsed();
        Round {
            ops,
            elapsed: match (start, end) {
                (Some(a), Some(b)) if b > a => b - a,
                _ => wall,
            },
            latencies_ns: Vec::new(),
        }
    }

    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-12)
    }
}

/// Times operations one at a time where [`Round::each`] does not fit (an
/// async loop inside `block_on`): call [`Stopwatch::tick`] after each
/// operation.
#[derive(Debug)]
pub struct Stopwatch {
    start: Instant,
    last: Instant,
    latencies_ns: Vec<u64>,
}

impl Stopwatch {
    /// Starts timing; `n` is the expected number of operations.
    pub fn start(n: usize) -> Stopwatch {
        let now = Instant::now();
        Stopwatch {
            start: now,
            last: now,
            latencies_ns: Vec::with_capacity(n),
        }
    }

    /// Marks the end of one operation.
    #[inline]
    pub fn tick(&mut self) {
        let now = Instant::now();
        self.latencies_ns.push(nanos(now - self.last));
        self.last = now;
    }

    /// The round: one operation per tick.
    pub fn finish(self) -> Round {
        Round {
            ops: self.latencies_ns.len() as u64,
            elapsed: self.last - self.start,
            latencies_ns: self.latencies_ns,
        }
    }
}

/// CPU time consumed by the calling thread so far
/// (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`), `None` if the OS refuses.
#[cfg(unix)]
pub fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    #[allow(unsafe_code, reason = "clock_gettime has no safe wrapper in std")]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| {
        Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        )
    })
}

/// See the unix version; elsewhere there is no thread CPU time.
#[cfg(not(unix))]
pub fn thread_cpu_time() -> Option<Duration> {
    None
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The measured rounds of one side.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Ops/s of each measured round, in order.
    pub ops_per_sec: Vec<f64>,
    /// Operations per round (of the last round).
    pub ops_per_round: u64,
    /// Every per-operation latency of the measured rounds, sorted (ns).
    pub latencies_ns: Vec<u64>,
}

impl Series {
    fn push(&mut self, round: Round) {
        self.ops_per_sec.push(round.ops_per_sec());
        self.ops_per_round = round.ops;
        self.latencies_ns.extend(round.latencies_ns);
    }

    fn finish(&mut self) {
        self.latencies_ns.sort_unstable();
    }

    /// Median ops/s over the rounds.
    pub fn median(&self) -> f64 {
        median(&self.ops_per_sec)
    }

    /// Slowest and fastest round (ops/s).
    pub fn range(&self) -> (f64, f64) {
        let min = self
            .ops_per_sec
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let max = self.ops_per_sec.iter().copied().fold(0.0, f64::max);
        (min, max)
    }

    /// Nanoseconds per operation at the median rate.
    pub fn ns_per_op(&self) -> f64 {
        1e9 / self.median()
    }

    /// Latency percentile `q` in `0.0..=1.0` (nearest rank), `None` when the
    /// rounds were timed as a whole.
    pub fn latency(&self, q: f64) -> Option<Duration> {
        percentile(&self.latencies_ns, q).map(Duration::from_nanos)
    }
}

/// Median of `values` (mean of the two middle ones for an even count); 0
/// when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile of already sorted `sorted`; `None` when empty.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(sorted.len() - 1)])
}

/// A side of a comparison: called with the round number (warm-up rounds
/// included, so keys can vary per round), returns the timed round.
pub type Side<'a> = &'a mut dyn FnMut(usize) -> Round;

/// Runs the sides in alternation, `warmup` discarded rounds then `rounds`
/// measured ones; round `r` starts with side `r % N`, so that no side always
/// runs first (drift, caches and the server's state are shared alike).
pub fn alternate<const N: usize>(rounds: &Rounds, sides: [Side<'_>; N]) -> [Series; N] {
    let mut series: [Series; N] = std::array::from_fn(|_| Series::default());
    for r in 0..rounds.warmup + rounds.rounds {
        for k in 0..N {
            let s = (r + k) % N;
            let round = (sides[s])(r);
            if r >= rounds.warmup {
                series[s].push(round);
            }
        }
    }
    for s in &mut series {
        s.finish();
    }
    series
}

/// [`alternate`] of two sides that each do `n` operations one at a time per
/// round (`a(i)`, `b(i)` for `i` in `0..n`, timed by [`Round::each`]): the
/// usual shape of a derived-beside-hand-written comparison.
pub fn alternate_each(
    rounds: &Rounds,
    n: usize,
    mut a: impl FnMut(usize),
    mut b: impl FnMut(usize),
) -> [Series; 2] {
    alternate(
        rounds,
        [&mut |_| Round::each(n, &mut a), &mut |_| {
            Round::each(n, &mut b)
        }],
    )
}

// ---------------------------------------------------------------------------
// redis-benchmark

/// The server's own ceiling for one command, from `redis-benchmark`.
#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    /// The `redis-benchmark` options and command, as run (without host/port).
    pub command: String,
    /// Requests per second (median of the runs).
    pub ops_per_sec: f64,
    /// Every run's requests per second, in the order they ran.
    pub runs: Vec<f64>,
    /// Median latency reported by the median run, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of the median run, in milliseconds.
    pub p99_ms: Option<f64>,
}

/// A `redis-benchmark` invocation against the benchmark server. The binary
/// is `$REDIS_BENCHMARK_BIN` or `redis-benchmark` on `PATH`.
#[derive(Debug, Clone)]
pub struct RedisBenchmark {
    server_args: Vec<String>,
    clients: u32,
    pipeline: u32,
    requests: u64,
    keyspace: Option<u64>,
    runs: usize,
}

impl RedisBenchmark {
    /// One client (`-c 1`), no pipelining (`-P 1`), 100,000 requests, one run.
    pub fn new(server: &BenchServer) -> Self {
        RedisBenchmark {
            server_args: server.benchmark_args(),
            clients: 1,
            pipeline: 1,
            requests: 100_000,
            keyspace: None,
            runs: 1,
        }
    }

    /// Parallel connections (`-c`).
    pub fn clients(mut self, n: u32) -> Self {
        self.clients = n;
        self
    }

    /// Requests per pipeline (`-P`).
    pub fn pipeline(mut self, n: u32) -> Self {
        self.pipeline = n;
        self
    }

    /// Total requests (`-n`).
    pub fn requests(mut self, n: u64) -> Self {
        self.requests = n;
        self
    }

    /// Replace `__rand_int__` in the command with random numbers below `n` (`-r`).
    pub fn keyspace(mut self, n: u64) -> Self {
        self.keyspace = Some(n);
        self
    }

    /// Runs it `n` times and keeps the median.
    pub fn runs(mut self, n: usize) -> Self {
        self.runs = n.max(1);
        self
    }

    /// The options, as shown in reports.
    fn options(&self) -> Vec<String> {
        let mut args = vec![
            "-c".to_owned(),
            self.clients.to_string(),
            "-P".to_owned(),
            self.pipeline.to_string(),
            "-n".to_owned(),
            self.requests.to_string(),
        ];
        if let Some(r) = self.keyspace {
            args.extend(["-r".to_owned(), r.to_string()]);
        }
        args
    }

    /// Runs `command` (arguments as `redis-benchmark` takes them after its
    /// options). `Err` explains why there is no ceiling (no binary, a
    /// failure, unparsable output); the benchmark goes on without it.
    pub fn run(&self, command: &[&str]) -> Result<Ceiling, String> {
        let mut results = Vec::with_capacity(self.runs);
        for _ in 0..self.runs {
            results.push(self.run_once(command)?);
        }
        Ok(self.ceiling_of(command, results))
    }

    fn run_once(&self, command: &[&str]) -> Result<CsvResult, String> {
        let bin = std::env::var("REDIS_BENCHMARK_BIN").unwrap_or_else(|_| "redis-benchmark".into());
        let output = Command::new(&bin)
            .args(&self.server_args)
            .args(self.options())
            .arg("--csv")
            .args(command)
            .output()
            .map_err(|e| format!("cannot run {bin}: {e} (install redis-tools / redis)"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "{bin} failed ({}): {}{}",
                output.status,
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        parse_csv(&stdout).ok_or_else(|| format!("cannot parse {bin} output: {}", stdout.trim()))
    }

    fn ceiling_of(&self, command: &[&str], mut results: Vec<CsvResult>) -> Ceiling {
        let runs = results.iter().map(|r| r.rps).collect();
        results.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        let mid = &results[results.len() / 2];
        Ceiling {
            command: format!("{} {}", self.options().join(" "), shell_words(command)),
            ops_per_sec: mid.rps,
            runs,
            p50_ms: mid.p50_ms,
            p99_ms: mid.p99_ms,
        }
    }
}

/// [`alternate`] for two sides plus the server's ceiling: in every round,
/// besides one round of each side, one `redis-benchmark` run of `command`
/// (with `bench`'s options; size its requests like a side's round), in
/// rotating order. The ceiling is then measured under the same conditions
/// as the sides (drift, other load on the machine) instead of once before
/// or after them. Its figure is the median of the runs of the measured
/// rounds. Without `redis-benchmark`, the sides still run; the ceiling is
/// the error.
pub fn alternate_with_ceiling(
    rounds: &Rounds,
    sides: [Side<'_>; 2],
    bench: &RedisBenchmark,
    command: &[&str],
) -> ([Series; 2], Result<Ceiling, String>) {
    let [a, b] = sides;
    let mut runs: Vec<(usize, CsvResult)> = Vec::new();
    let mut error: Option<String> = None;
    let mut ceiling = |r: usize| {
        if error.is_none() {
            match bench.run_once(command) {
                Ok(res) => runs.push((r, res)),
                Err(e) => error = Some(e),
            }
        }
        // Not a measurement of ours: the figures are kept in `runs`.
        Round::default()
    };
    let [sa, sb, _] = alternate(rounds, [a, b, &mut ceiling]);
    let ceiling = match error {
        Some(e) => Err(e),
        None => {
            let measured: Vec<CsvResult> = runs
                .into_iter()
                .filter(|(r, _)| *r >= rounds.warmup)
                .map(|(_, res)| res)
                .collect();
            if measured.is_empty() {
                Err("no redis-benchmark run was measured".to_owned())
            } else {
                Ok(bench.ceiling_of(command, measured))
            }
        }
    };
    ([sa, sb], ceiling)
}

struct CsvResult {
    rps: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

/// Parses `redis-benchmark --csv`: a header line (`"test","rps",...` since
/// Redis 7, absent before) and one line per test.
fn parse_csv(out: &str) -> Option<CsvResult> {
    let rows: Vec<Vec<String>> = out
        .lines()
        .filter(|l| l.starts_with('"'))
        .map(|l| {
            l.split("\",\"")
                .map(|c| c.trim_matches('"').to_owned())
                .collect()
        })
        .collect();
    let (header, data) = match rows.as_slice() {
        [h, d, ..] if h.first().is_some_and(|c| c == "test") => (Some(h), d),
        [d, ..] => (None, d),
        [] => return None,
    };
    let col = |name: &str, fallback: usize| -> Option<f64> {
        let i = match header {
            Some(h) => h.iter().position(|c| c == name)?,
            None => fallback,
        };
        data.get(i)?.parse().ok()
    };
    Some(CsvResult {
        rps: col("rps", 1)?,
        p50_ms: col("p50_latency_ms", usize::MAX),
        p99_ms: col("p99_latency_ms", usize::MAX),
    })
}

/// `args` joined for display, quoting empty and spaced arguments.
pub fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) || a.contains('"') {
                format!("{a:?}")
            } else if a.len() > 48 {
                format!(
                    "{}…",
                    &a[..a.char_indices().nth(40).map_or(a.len(), |(i, _)| i)]
                )
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// Report

/// Summary of one side of a row.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Median ops/s over the rounds.
    pub ops_per_sec: f64,
    /// Slowest round.
    pub ops_per_sec_min: f64,
    /// Fastest round.
    pub ops_per_sec_max: f64,
    /// Measured rounds.
    pub rounds: usize,
    /// Operations per round.
    pub ops_per_round: u64,
    /// Nanoseconds per operation at the median rate.
    pub ns_per_op: f64,
    /// Median per-operation latency (one-at-a-time rows), microseconds.
    pub p50_us: Option<f64>,
    /// 99th percentile per-operation latency, microseconds.
    pub p99_us: Option<f64>,
    /// Ops/s of each measured round, in the order they ran.
    pub per_round: Vec<f64>,
}

/// `ours ÷ theirs`: with as many rounds on both sides (rounds alternated by
/// [`alternate`]), the median of the per-round ratios, each round against
/// the other side's round of the same turn (a paired comparison, which
/// cancels drift that the medians alone only dampen); otherwise the ratio
/// of the medians.
pub fn paired_ratio(ours: &[f64], theirs: &[f64]) -> f64 {
    if !ours.is_empty() && ours.len() == theirs.len() {
        let ratios: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
        median(&ratios)
    } else {
        median(ours) / median(theirs)
    }
}

impl Stats {
    /// Summarises a series.
    pub fn of(s: &Series) -> Stats {
        let (min, max) = s.range();
        let us = |q| s.latency(q).map(|d| d.as_nanos() as f64 / 1e3);
        Stats {
            ops_per_sec: s.median(),
            ops_per_sec_min: min,
            ops_per_sec_max: max,
            rounds: s.ops_per_sec.len(),
            ops_per_round: s.ops_per_round,
            ns_per_op: s.ns_per_op(),
            p50_us: us(0.50),
            p99_us: us(0.99),
            per_round: s.ops_per_sec.clone(),
        }
    }

    /// The cost of doing one operation of `a` and one of `b` (e.g. encode
    /// then decode), round by round when both have as many rounds.
    pub fn sum(a: &Series, b: &Series) -> Stats {
        if a.ops_per_sec.len() != b.ops_per_sec.len() {
            return Stats::from_ns_per_op(a.ns_per_op() + b.ns_per_op());
        }
        let per_round: Vec<f64> = a
            .ops_per_sec
            .iter()
            .zip(&b.ops_per_sec)
            .map(|(x, y)| 1e9 / (1e9 / x + 1e9 / y))
            .collect();
        let rate = median(&per_round);
        let min = per_round.iter().copied().fold(f64::INFINITY, f64::min);
        let max = per_round.iter().copied().fold(0.0, f64::max);
        Stats {
            ops_per_sec: rate,
            ops_per_sec_min: min,
            ops_per_sec_max: max,
            rounds: per_round.len(),
            ops_per_round: a.ops_per_round,
            ns_per_op: 1e9 / rate,
            p50_us: None,
            p99_us: None,
            per_round,
        }
    }

    /// Stats of a CPU-only figure derived from others (e.g. the sum of two
    /// rows' costs): `ns_per_op` only.
    pub fn from_ns_per_op(ns: f64) -> Stats {
        let ops = 1e9 / ns;
        Stats {
            ops_per_sec: ops,
            ops_per_sec_min: ops,
            ops_per_sec_max: ops,
            rounds: 0,
            ops_per_round: 0,
            ns_per_op: ns,
            p50_us: None,
            p99_us: None,
            per_round: Vec::new(),
        }
    }
}

/// A target a row is reported against (never asserted).
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// derived ops/s ≥ x × hand-written ops/s.
    MinHandRatio(f64),
    /// derived ops/s ≥ x × the redis-benchmark ceiling.
    MinCeilingRatio(f64),
    /// derived cost ≤ x nanoseconds per operation.
    MaxNsPerOp(f64),
}

/// A target with its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `"derived >= 0.95 x hand-written"`, ...
    pub target: String,
    /// The measured value the target is about (a ratio or ns/op).
    pub value: Option<f64>,
    /// `"PASS"`, `"MISS"`, or `"n/a"` when the value could not be measured.
    pub result: &'static str,
}

impl Verdict {
    fn short(&self) -> String {
        let t = self
            .target
            .replace("derived ", "")
            .replace(" x hand-written", "×hand")
            .replace(" x ceiling", "×ceil")
            .replace(" ns/op", "ns");
        format!("{t} {}", self.result)
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Short id (`"1"`, `"6b"`).
    pub id: String,
    /// What is measured.
    pub name: String,
    /// The redis-state API.
    pub derived: Stats,
    /// Hand-written redis-rs code sending the same commands.
    pub hand_written: Option<Stats>,
    /// derived ops/s ÷ hand-written ops/s ([`paired_ratio`] of the rounds).
    pub ratio: Option<f64>,
    /// The server's ceiling for the same commands.
    pub ceiling: Option<Ceiling>,
    /// Why there is no ceiling, when one was asked for.
    pub ceiling_error: Option<String>,
    /// derived ops/s ÷ ceiling ops/s ([`paired_ratio`] of the rounds).
    pub ratio_to_ceiling: Option<f64>,
    /// Targets and outcomes.
    pub targets: Vec<Verdict>,
    /// Free text.
    pub note: Option<String>,
    #[serde(skip)]
    pending: Vec<Target>,
}

impl Row {
    /// A row measuring `derived`.
    pub fn new(id: &str, name: &str, derived: &Series) -> Row {
        Row::from_stats(id, name, Stats::of(derived))
    }

    /// A row from already summarised stats.
    pub fn from_stats(id: &str, name: &str, derived: Stats) -> Row {
        Row {
            id: id.to_owned(),
            name: name.to_owned(),
            derived,
            hand_written: None,
            ratio: None,
            ceiling: None,
            ceiling_error: None,
            ratio_to_ceiling: None,
            targets: Vec::new(),
            note: None,
            pending: Vec::new(),
        }
    }

    /// The hand-written side.
    pub fn hand(self, hand: &Series) -> Row {
        self.hand_stats(Stats::of(hand))
    }

    /// The hand-written side, already summarised.
    pub fn hand_stats(mut self, hand: Stats) -> Row {
        self.ratio = Some(paired_ratio(&self.derived.per_round, &hand.per_round));
        self.hand_written = Some(hand);
        self
    }

    /// The ceiling (or why there is none).
    pub fn ceiling(mut self, ceiling: Result<Ceiling, String>) -> Row {
        match ceiling {
            Ok(c) => {
                self.ratio_to_ceiling = Some(paired_ratio(&self.derived.per_round, &c.runs));
                self.ceiling = Some(c);
            }
            Err(e) => self.ceiling_error = Some(e),
        }
        self
    }

    /// A target to report against.
    pub fn target(mut self, target: Target) -> Row {
        self.pending.push(target);
        self
    }

    /// A note printed under the table.
    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = Some(note.into());
        self
    }

    fn judge(&mut self) {
        for t in std::mem::take(&mut self.pending) {
            let (target, value, pass) = match t {
                Target::MinHandRatio(x) => (
                    format!("derived >= {x:.2} x hand-written"),
                    self.ratio,
                    self.ratio.map(|v| v >= x),
                ),
                Target::MinCeilingRatio(x) => (
                    format!("derived >= {x:.2} x ceiling"),
                    self.ratio_to_ceiling,
                    self.ratio_to_ceiling.map(|v| v >= x),
                ),
                Target::MaxNsPerOp(x) => (
                    format!("derived <= {x:.0} ns/op"),
                    Some(self.derived.ns_per_op),
                    Some(self.derived.ns_per_op <= x),
                ),
            };
            self.targets.push(Verdict {
                target,
                value,
                result: match pass {
                    Some(true) => "PASS",
                    Some(false) => "MISS",
                    None => "n/a",
                },
            });
        }
    }
}

/// Where and on what the benchmark ran.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// When the run started (RFC 3339, UTC).
    pub date: String,
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// `model name` from `/proc/cpuinfo`, if readable.
    pub cpu: Option<String>,
    /// OS and kernel release.
    pub os: String,
    /// `redis_version` of the server.
    pub redis_version: String,
    /// `redis-benchmark --version`, if found.
    pub redis_benchmark: Option<String>,
    /// The server used.
    pub server: String,
    /// `rustc --version`, if found.
    pub rustc: Option<String>,
    /// `git describe --always --dirty` of the workspace, if available.
    pub git: Option<String>,
    /// `/proc/loadavg` (1, 5, 15 minutes) when the run started: on a shared
    /// machine, other work skews absolute numbers (ratios of alternated
    /// rounds much less).
    pub loadavg_start: Option<String>,
    /// `/proc/loadavg` when the run ended.
    pub loadavg_end: Option<String>,
    /// A smoke run: the numbers are not meaningful.
    pub quick: bool,
}

fn loadavg() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

impl Machine {
    fn collect(server: &BenchServer, cfg: &Config) -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        });
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!(" {}", s.trim()))
            .unwrap_or_default();
        let bin = std::env::var("REDIS_BENCHMARK_BIN").unwrap_or_else(|_| "redis-benchmark".into());
        Machine {
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu,
            os: format!("{}{release}", std::env::consts::OS),
            redis_version: server.redis_version(),
            redis_benchmark: command_output(&bin, &["--version"]),
            server: server.describe(),
            rustc: command_output(
                &std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()),
                &["--version"],
            ),
            git: command_output(
                "git",
                &[
                    "-C",
                    env!("CARGO_MANIFEST_DIR"),
                    "describe",
                    "--always",
                    "--dirty",
                ],
            ),
            loadavg_start: loadavg(),
            loadavg_end: None,
            quick: cfg.quick,
        }
    }
}

fn command_output(bin: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(bin).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The rows of one benchmark, printed as a table and written as JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The benchmark's name (`"hash"`): the JSON file is `<name>.json`.
    pub bench: String,
    /// Where it ran.
    pub machine: Machine,
    /// The rows, in order.
    pub rows: Vec<Row>,
    /// Further results (memory, ...), by name.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Free text printed after the table.
    pub notes: Vec<String>,
    /// Further results as text, printed under the table (title, lines).
    #[serde(skip)]
    sections: Vec<(String, Vec<String>)>,
    #[serde(skip)]
    started: Option<Instant>,
}

impl Report {
    /// Starts a report and prints the machine information.
    pub fn new(bench: &str, server: &BenchServer, cfg: &Config) -> Report {
        let machine = Machine::collect(server, cfg);
        println!("== {bench} benchmark ==");
        println!(
            "{} | redis {} | {} cores{} | load {} | {}{}",
            machine.server,
            machine.redis_version,
            machine.cores,
            machine
                .cpu
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            machine.loadavg_start.as_deref().unwrap_or("?"),
            machine.date,
            if cfg.quick {
                " | QUICK smoke run (numbers are not meaningful; `cargo bench` for a full run)"
            } else {
                ""
            }
        );
        Report {
            bench: bench.to_owned(),
            machine,
            rows: Vec::new(),
            extra: serde_json::Map::new(),
            notes: Vec::new(),
            sections: Vec::new(),
            started: Some(Instant::now()),
        }
    }

    /// Adds a row (and prints a one-line progress summary).
    pub fn push(&mut self, mut row: Row) {
        row.judge();
        let mut line = format!(
            "  [{:>3}] {:<44} {:>12}",
            row.id,
            row.name,
            fmt_rate(row.derived.ops_per_sec)
        );
        if let (Some(h), Some(r)) = (&row.hand_written, row.ratio) {
            let _ = write!(line, "  hand {:>12}  ratio {r:.3}", fmt_rate(h.ops_per_sec));
        }
        if let Some(r) = row.ratio_to_ceiling {
            let _ = write!(line, "  ÷ceil {r:.3}");
        }
        println!("{line}");
        self.rows.push(row);
    }

    /// Adds a named extra result to the JSON.
    pub fn extra(&mut self, name: &str, value: serde_json::Value) {
        self.extra.insert(name.to_owned(), value);
    }

    /// Adds a note printed after the table.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Adds a titled block of text printed under the table (results that
    /// are not rows, e.g. memory per entity); put the figures in the JSON
    /// with [`Report::extra`].
    pub fn section(&mut self, title: &str, lines: Vec<String>) {
        self.sections.push((title.to_owned(), lines));
    }

    /// Prints the table and writes `target/bench/<name>.json`.
    pub fn finish(mut self) {
        self.machine.loadavg_end = loadavg();
        let busy = |l: &Option<String>| {
            l.as_deref()
                .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
                .is_some_and(|one| one > self.machine.cores as f64)
        };
        if busy(&self.machine.loadavg_start) || busy(&self.machine.loadavg_end) {
            let note = format!(
                "the machine was busy (load average {} at start, {} at end, {} cores): \
                 absolute ops/s are low and noisy; the ratios come from alternated rounds",
                self.machine.loadavg_start.as_deref().unwrap_or("?"),
                self.machine.loadavg_end.as_deref().unwrap_or("?"),
                self.machine.cores
            );
            self.notes.push(note);
        }
        println!();
        print!("{}", self.table());
        let path = self.write_json();
        let elapsed = self
            .started
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        println!("wrote {} ({elapsed:.0} s)", path.display());
    }

    /// The table as text.
    pub fn table(&self) -> String {
        let headers = [
            "#",
            "row",
            "derived ops/s",
            "hand ops/s",
            "ratio",
            "ceiling ops/s",
            "÷ceil",
            "derived p50/p99 µs",
            "hand p50/p99 µs",
            "targets",
        ];
        let lat = |s: &Stats| match (s.p50_us, s.p99_us) {
            (Some(a), Some(b)) => format!("{a:.1}/{b:.1}"),
            _ => format!("{:.0} ns/op", s.ns_per_op),
        };
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
        let rows: Vec<[String; 10]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.id.clone(),
                    r.name.clone(),
                    fmt_rate(r.derived.ops_per_sec),
                    opt(r.hand_written.as_ref().map(|h| fmt_rate(h.ops_per_sec))),
                    opt(r.ratio.map(|x| format!("{x:.3}"))),
                    match (&r.ceiling, &r.ceiling_error) {
                        (Some(c), _) => fmt_rate(c.ops_per_sec),
                        (None, Some(_)) => "error".to_owned(),
                        (None, None) => "-".to_owned(),
                    },
                    opt(r.ratio_to_ceiling.map(|x| format!("{x:.3}"))),
                    lat(&r.derived),
                    opt(r.hand_written.as_ref().map(lat)),
                    if r.targets.is_empty() {
                        "-".to_owned()
                    } else {
                        r.targets
                            .iter()
                            .map(Verdict::short)
                            .collect::<Vec<_>>()
                            .join("; ")
                    },
                ]
            })
            .collect();
        let mut widths = headers.map(|h| h.chars().count());
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w - c.chars().count();
                // Text columns left-aligned, numbers right-aligned.
                if i == 1 || i == 9 {
                    let _ = write!(s, "{c}{} ", " ".repeat(pad));
                } else {
                    let _ = write!(s, "{}{c} ", " ".repeat(pad));
                }
                if i < cells.len() - 1 {
                    s.push_str("| ");
                }
            }
            s.trim_end().to_owned()
        };
        let mut out = String::new();
        let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
        let _ = writeln!(out, "{}", line(&header));
        let _ = writeln!(
            out,
            "{}",
            widths
                .iter()
                .map(|w| "-".repeat(w + 1))
                .collect::<Vec<_>>()
                .join("+-")
        );
        for r in &rows {
            let _ = writeln!(out, "{}", line(r));
        }
        out.push_str(
            "ratio: median over the rounds of derived ÷ hand-written ops/s, each round against \
             the other side's round of the same turn; ÷ceil: the same against that turn's \
             redis-benchmark run. The ops/s columns are each side's median round: on a busy \
             machine round rates can be bimodal and two medians fall on different modes, \
             which the paired ratio is not misled by.\n\n",
        );
        let ceilings: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.ceiling.is_some() || r.ceiling_error.is_some())
            .collect();
        if !ceilings.is_empty() {
            out.push_str("ceilings (redis-benchmark, same server, same run):\n");
            for r in ceilings {
                match (&r.ceiling, &r.ceiling_error) {
                    (Some(c), _) => {
                        let (lo, hi) =
                            c.runs.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
                                (lo.min(*x), hi.max(*x))
                            });
                        let _ = writeln!(
                            out,
                            "  [{}] {}  (median of {} runs: {}; range {} - {})",
                            r.id,
                            c.command,
                            c.runs.len(),
                            fmt_rate(c.ops_per_sec),
                            fmt_rate(lo),
                            fmt_rate(hi)
                        );
                    }
                    (None, Some(e)) => {
                        let _ = writeln!(out, "  [{}] none: {e}", r.id);
                    }
                    _ => {}
                }
            }
        }
        for (title, lines) in &self.sections {
            let _ = writeln!(out, "{title}:");
            for l in lines {
                let _ = writeln!(out, "  {l}");
            }
        }
        let notes: Vec<String> = self
            .rows
            .iter()
            .filter_map(|r| r.note.as_ref().map(|n| format!("  [{}] {n}", r.id)))
            .chain(self.notes.iter().map(|n| format!("  {n}")))
            .collect();
        if !notes.is_empty() {
            out.push_str("notes:\n");
            for n in notes {
                let _ = writeln!(out, "{n}");
            }
        }
        let verdicts: Vec<&Verdict> = self.rows.iter().flat_map(|r| &r.targets).collect();
        let pass = verdicts.iter().filter(|v| v.result == "PASS").count();
        let miss: Vec<String> = self
            .rows
            .iter()
            .flat_map(|r| {
                r.targets
                    .iter()
                    .filter(|v| v.result != "PASS")
                    .map(move |v| format!("[{}] {} ({})", r.id, v.target, v.result))
            })
            .collect();
        let _ = writeln!(out, "targets: {pass} PASS, {} MISS/n/a", miss.len());
        for m in miss {
            let _ = writeln!(out, "  {m}");
        }
        out
    }

    fn write_json(&self) -> PathBuf {
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
            .join("bench");
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let path = dir.join(format!("{}.json", self.bench));
        let json = serde_json::to_string_pretty(self).expect("report serializes");
        std::fs::write(&path, json + "\n")
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

/// `1,234,567` (integer ops/s with thousands separators).
pub fn fmt_rate(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_owned();
    }
    let n = x.round() as u64;
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------
// Checking that two sides send the same commands

/// A blocking connection that records every packed command (or pipeline) it
/// sends, so a benchmark can check that its sides send the same bytes.
pub struct Recorder {
    con: redis::Connection,
    /// The packed requests, one entry per `req_packed_command(s)` call.
    pub sent: Vec<Vec<u8>>,
}

impl Recorder {
    /// Wraps `con`.
    pub fn new(con: redis::Connection) -> Self {
        Recorder {
            con,
            sent: Vec::new(),
        }
    }

    /// The commands sent since the last call, each as its argument list.
    pub fn take(&mut self) -> Vec<Vec<Vec<u8>>> {
        std::mem::take(&mut self.sent)
            .iter()
            .flat_map(|packed| parse_commands(packed))
            .collect()
    }
}

impl redis::ConnectionLike for Recorder {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
        self.sent.push(cmd.to_vec());
        self.con.req_packed_command(cmd)
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        self.sent.push(cmd.to_vec());
        self.con.req_packed_commands(cmd, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.con.get_db()
    }

    fn check_connection(&mut self) -> bool {
        self.con.check_connection()
    }

    fn is_open(&self) -> bool {
        self.con.is_open()
    }
}

/// Splits packed RESP requests (`*N\r\n$len\r\narg\r\n...`) into commands.
///
/// # Panics
///
/// On bytes that are not RESP arrays of bulk strings.
pub fn parse_commands(mut buf: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn line(buf: &mut &[u8], prefix: u8) -> usize {
        assert_eq!(buf.first(), Some(&prefix), "malformed RESP request");
        let end = buf.windows(2).position(|w| w == b"\r\n").expect("CRLF");
        let n = std::str::from_utf8(&buf[1..end]).unwrap().parse().unwrap();
        *buf = &buf[end + 2..];
        n
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let argc = line(&mut buf, b'*');
        let mut args = Vec::with_capacity(argc);
        for _ in 0..argc {
            let len = line(&mut buf, b'$');
            args.push(buf[..len].to_vec());
            buf = &buf[len + 2..];
        }
        out.push(args);
    }
    out
}

/// A command as readable text, long arguments shortened.
pub fn show_command(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| {
            let s = String::from_utf8_lossy(a);
            if s.len() > 60 {
                format!("<{} bytes>", a.len())
            } else if s.is_empty() || s.contains(' ') {
                format!("{s:?}")
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Panics with both command lists when they differ.
pub fn assert_same_commands(what: &str, derived: &[Vec<Vec<u8>>], hand: &[Vec<Vec<u8>>]) {
    if derived == hand {
        return;
    }
    let show = |cmds: &[Vec<Vec<u8>>]| {
        cmds.iter()
            .take(4)
            .map(|c| format!("    {}", show_command(c)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let first = derived.iter().zip(hand).position(|(a, b)| a != b);
    panic!(
        "{what}: the derived and hand-written code send different commands \
         ({} vs {} commands, first difference at {first:?}); the comparison would be unfair.\n  derived:\n{}\n  hand-written:\n{}",
        derived.len(),
        hand.len(),
        show(derived),
        show(hand)
    );
}
