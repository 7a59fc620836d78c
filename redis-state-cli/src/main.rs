//! `redis-state`: the command-line tool for people who run services built on
//! redis-state. See the crate's README for every command.
//!
//! Models are Rust types, which a tool cannot load, so every command that
//! works on a model takes its key template as text, written exactly as in
//! the derive's `key = "..."` attribute (`"{{user}}:{id}"`), with `#` and
//! the collection name after it when the model has indexes
//! (`"{{user}}:{id}#user"`; the collection is the snake_case type name
//! unless the derive sets `collection`). `#` cannot appear in a template, so
//! the split is unambiguous. An indexed model whose key has no hash tag is
//! bucketed: 64 buckets unless `@N` follows the collection
//! (`"user:{id}#user@8"` for `#[redis(buckets = 8)]`).

mod backlog;
mod html;
mod inspect;
mod output;
mod transfer;

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use redis_state::Namespace;
use redis_state::monitor::stats::{ModelKind, ModelSpec, StatsOptions};
use redis_state::monitor::{self};
use redis_state::op::Operation;

/// The connection: one server or a Cluster.
#[allow(clippy::large_enum_variant, reason = "one per process")]
pub(crate) enum Con {
    Single(redis::Connection),
    Cluster(redis::cluster::ClusterConnection),
}

impl Con {
    fn open(conn: &ConnArgs) -> Result<Con, String> {
        let timeout = std::time::Duration::from_millis(conn.timeout_ms);
        if conn.cluster {
            let client = redis::cluster::ClusterClientBuilder::new(conn.url.clone())
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .build()
                .map_err(|e| format!("cluster {:?}: {e}", conn.url))?;
            let con = client
                .get_connection()
                .map_err(|e| format!("cluster {:?}: {e}", conn.url))?;
            Ok(Con::Cluster(con))
        } else {
            let url = conn.url.first().map(String::as_str).unwrap_or_default();
            let client = redis::Client::open(url).map_err(|e| format!("{url}: {e}"))?;
            let con = client
                .get_connection_with_timeout(timeout)
                .map_err(|e| format!("{url}: {e}"))?;
            con.set_read_timeout(Some(timeout))
                .and_then(|()| con.set_write_timeout(Some(timeout)))
                .map_err(|e| format!("{url}: {e}"))?;
            Ok(Con::Single(con))
        }
    }

    /// Runs one operation.
    pub(crate) fn run<O: Operation>(&mut self, op: O) -> redis_state::Result<O::Output> {
        match self {
            Con::Single(c) => op.run(c),
            Con::Cluster(c) => op.run(c),
        }
    }
}

/// Runs a procedure written over the driver's `Io` on either connection:
/// `with_io!(con, |io| procedure(io, ...))`.
macro_rules! with_io {
    ($con:expr, |$io:ident| $body:expr) => {
        match $con {
            $crate::Con::Single(c) => {
                let $io = &mut redis_state::driver::Blocking::new(c);
                redis_state::driver::block_on($body)
            }
            $crate::Con::Cluster(c) => {
                let $io = &mut redis_state::driver::Blocking::new(c);
                redis_state::driver::block_on($body)
            }
        }
    };
}
pub(crate) use with_io;

#[derive(Parser, Debug)]
#[command(
    name = "redis-state",
    version,
    about = "Operate Redis state written by redis-state"
)]
struct Cli {
    #[command(flatten)]
    conn: ConnArgs,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct ConnArgs {
    /// Server URL; give several (or one node's) with --cluster.
    #[arg(
        long,
        short = 'u',
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    url: Vec<String>,
    /// The URLs are Cluster nodes.
    #[arg(long, global = true)]
    cluster: bool,
    /// Connect and response timeout, milliseconds.
    #[arg(long, default_value_t = 5000, global = true)]
    timeout_ms: u64,
}

#[derive(Args, Debug, Clone)]
struct ModelArgs {
    /// A hash model's key template, `#collection` after it to check indexes
    /// (`'{{user}}:{id}#user'`). Repeatable.
    #[arg(long = "hash")]
    hash: Vec<String>,
    /// A cached type's key template (`'product:{id}'`). Repeatable.
    #[arg(long = "cache")]
    cache: Vec<String>,
    /// A leaderboard's key template (`'{{rank:{game}}}'`). Repeatable.
    #[arg(long = "board")]
    board: Vec<String>,
    /// Any other key template. Repeatable.
    #[arg(long = "keys")]
    keys: Vec<String>,
    /// The namespace the application runs its models in.
    #[arg(long, short = 'n')]
    namespace: Option<String>,
}

#[derive(Args, Debug, Clone)]
struct ScanArgs {
    /// Keys per SCAN call and per pipeline.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Keys read at most per model.
    #[arg(long, default_value_t = 1_000_000)]
    max_keys: u64,
    /// Keys whose MEMORY USAGE is read per model.
    #[arg(long, default_value_t = 1_000)]
    samples: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// INFO of every primary: version, memory, clients, traffic, keys.
    Info,
    /// The slow log of every primary.
    Slowlog {
        /// Entries per node.
        #[arg(long, default_value_t = 10)]
        count: usize,
    },
    /// LATENCY LATEST of every primary.
    Latency,
    /// Per-model statistics: entities, memory, TTLs, index orphans.
    Stats {
        #[command(flatten)]
        models: ModelArgs,
        #[command(flatten)]
        scan: ScanArgs,
        /// Also write an HTML page with charts (memory and keys per model,
        /// TTL distribution) to this file.
        #[arg(long)]
        html: Option<std::path::PathBuf>,
    },
    /// Decodes one key: hash model, cache entry, leaderboard, lock, session.
    Inspect {
        /// The key.
        key: String,
        /// Members or items shown at most.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Removes orphan index entries of hash models.
    Sweep {
        #[command(flatten)]
        models: ModelArgs,
        #[command(flatten)]
        scan: ScanArgs,
        /// Count the orphans, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Writes a hash model's entities as JSON lines.
    Export {
        /// The model's key template (see `stats --hash`).
        #[arg(long = "hash")]
        hash: String,
        /// The namespace the application runs the model in.
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// The file to write (standard output when absent).
        #[arg(long, short = 'o')]
        output: Option<std::path::PathBuf>,
        #[command(flatten)]
        scan: ScanArgs,
    },
    /// Reads JSON lines written by `export` and writes each hash, its
    /// fields replaced in one step, its TTL kept.
    Import {
        /// The file to read (standard input when absent).
        #[arg(long, short = 'i')]
        input: Option<std::path::PathBuf>,
        /// Rewrite keys starting with OLD to start with NEW (`OLD=NEW`).
        #[arg(long)]
        rename_prefix: Option<String>,
        /// Entities per pipeline.
        #[arg(long, default_value_t = 200)]
        batch: usize,
    },
    /// Streams with their length, dead letters and consumer groups
    /// (consumers, pending, lag, the oldest pending entry's idle time).
    Streams {
        /// Only streams whose key matches this glob.
        #[arg(long = "match", default_value = "*")]
        pattern: String,
        /// Keys per SCAN call.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Job queues with their ready, delayed, active and dead jobs and lag.
    Queues {
        /// Keys per SCAN call.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// A stream group's consumers and oldest pending entries (idle time,
    /// delivery count), or a queue's jobs under a lease.
    Pending {
        #[command(flatten)]
        target: backlog::Target,
        /// The consumer group (with --stream).
        #[arg(long)]
        group: Option<String>,
        /// Entries shown at most.
        #[arg(long, default_value_t = 20)]
        count: usize,
    },
    /// Dead letters of a stream, or dead jobs of a queue, with their errors.
    Dead {
        #[command(flatten)]
        target: backlog::Target,
        /// Shown at most.
        #[arg(long, default_value_t = 20)]
        count: usize,
    },
    /// Moves the oldest dead letters back to their stream, or dead jobs
    /// back to ready with fresh attempts.
    Replay {
        #[command(flatten)]
        target: backlog::Target,
        /// How many at most.
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// List what would move; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "redis-state: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A spinner on standard error, drawn only when it is a terminal and the
/// output is not JSON (`quiet`); hidden otherwise, so that piped output and
/// logs carry no drawing.
pub(crate) fn progress(label: &str, quiet: bool) -> ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(label.to_owned());
    bar
}

/// Turns a spinner into a bar of `total` bytes (an input file read).
pub(crate) fn bytes_bar(bar: &ProgressBar, total: u64) {
    if bar.is_hidden() {
        return;
    }
    bar.set_length(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix}: [{bar:30}] {bytes}/{total_bytes} {msg} ({elapsed}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
}

fn namespace(ns: &Option<String>) -> Result<Option<Namespace>, String> {
    ns.as_deref()
        .map(|n| Namespace::new(n).map_err(|e| format!("namespace {n:?}: {e}")))
        .transpose()
}

/// `TEMPLATE[#collection]` into a spec.
pub(crate) fn spec(
    kind: ModelKind,
    arg: &str,
    ns: Option<&Namespace>,
) -> Result<ModelSpec, String> {
    let (template, collection) = match arg.split_once('#') {
        Some((t, c)) => (t, Some(c)),
        None => (arg, None),
    };
    let (collection, buckets) = match collection.map(|c| c.split_once('@')) {
        Some(Some((c, n))) => {
            let n: u16 = n
                .parse()
                .ok()
                .filter(|n| (1..=16384).contains(n))
                .ok_or_else(|| {
                    format!("{arg:?}: the bucket count after `@` is 1 to 16384, not {n:?}")
                })?;
            (Some(c), n)
        }
        Some(None) => (collection, DEFAULT_BUCKETS),
        None => (None, 0),
    };
    // An indexed model whose key has no hash tag is bucketed (a tagged
    // shape ignores the count).
    ModelSpec::from_template(template, kind, template, ns, collection)
        .map(|s| s.with_buckets(buckets))
        .map_err(|e| e.to_string())
}

/// The derives' bucket count for an indexed model whose key has no hash
/// tag, unless `#[redis(buckets = N)]` sets another.
const DEFAULT_BUCKETS: u16 = 64;

fn specs(m: &ModelArgs) -> Result<Vec<ModelSpec>, String> {
    let ns = namespace(&m.namespace)?;
    let mut out = Vec::new();
    for (kind, list) in [
        (ModelKind::Hash, &m.hash),
        (ModelKind::Cache, &m.cache),
        (ModelKind::Leaderboard, &m.board),
        (ModelKind::Keys, &m.keys),
    ] {
        for a in list {
            out.push(spec(kind, a, ns.as_ref())?);
        }
    }
    if out.is_empty() {
        return Err("name at least one model: --hash, --cache, --board or --keys TEMPLATE".into());
    }
    Ok(out)
}

fn options(scan: &ScanArgs, bar: &ProgressBar) -> StatsOptions {
    let bar = bar.clone();
    StatsOptions::default()
        .batch(scan.batch)
        .max_keys(scan.max_keys)
        .memory_samples(scan.samples)
        .progress(move |what, n| {
            bar.set_message(format!("{what}: {n}"));
            bar.tick();
        })
}

fn run(cli: Cli) -> Result<(), String> {
    let json = cli.json;
    let mut con = Con::open(&cli.conn)?;
    let err = |e: redis_state::Error| e.to_string();
    match cli.command {
        Command::Info => {
            let infos = con.run(monitor::info()).map_err(err)?;
            output::info(&infos, json)
        }
        Command::Slowlog { count } => {
            let logs = con.run(monitor::slowlog(count)).map_err(err)?;
            output::per_node(&logs, json, output::slowlog_rows)
        }
        Command::Latency => {
            let ev = con.run(monitor::latency_latest()).map_err(err)?;
            output::per_node(&ev, json, output::latency_rows)
        }
        Command::Stats { models, scan, html } => {
            let specs = specs(&models)?;
            let bar = progress("stats", json);
            let opts = options(&scan, &bar);
            let mut out = Vec::new();
            for s in &specs {
                out.push(stats_of(&mut con, s, &opts).map_err(err)?);
            }
            bar.finish_and_clear();
            if let Some(path) = html {
                let page = html::page(&out, &cli.conn.url.join(", "));
                std::fs::write(&path, page).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            output::stats(&out, json)
        }
        Command::Sweep {
            models,
            scan,
            dry_run,
        } => {
            let specs = specs(&models)?;
            let bar = progress("sweep", json);
            let opts = options(&scan, &bar);
            let mut reports = Vec::new();
            for s in specs.iter().filter(|s| s.collection.is_some()) {
                let r = if dry_run {
                    let st = stats_of(&mut con, s, &opts.clone().max_keys(0)).map_err(err)?;
                    serde_json::json!({"model": s.name, "removed": 0, "expired": 0, "indexes": st.indexes, "dry_run": true})
                } else {
                    let r = sweep_of(&mut con, s, &opts).map_err(err)?;
                    serde_json::json!({"model": s.name, "removed": r.removed, "expired": r.expired, "indexes": r.indexes, "dry_run": false})
                };
                reports.push(r);
            }
            bar.finish_and_clear();
            if reports.is_empty() {
                return Err(
                    "sweep needs a hash model with its collection: --hash 'TEMPLATE#collection'"
                        .into(),
                );
            }
            output::sweep(&reports, json)
        }
        Command::Inspect { key, limit } => {
            let v = inspect::inspect(&mut con, &key, limit).map_err(err)?;
            output::inspect(&v, json)
        }
        Command::Export {
            hash,
            namespace: ns,
            output: path,
            scan,
        } => {
            let ns = namespace(&ns)?;
            let spec = spec(ModelKind::Hash, &hash, ns.as_ref())?;
            let bar = progress("export", json);
            let n = transfer::export(&mut con, &spec, path.as_deref(), &scan_opts(&scan), &bar)?;
            bar.finish_and_clear();
            output::count("exported", n, json)
        }
        Command::Import {
            input,
            rename_prefix,
            batch,
        } => {
            let rename = match rename_prefix.as_deref() {
                None => None,
                Some(r) => Some(
                    r.split_once('=')
                        .map(|(a, b)| (a.to_owned(), b.to_owned()))
                        .ok_or("--rename-prefix takes OLD=NEW")?,
                ),
            };
            let bar = progress("import", json);
            let n = transfer::import(&mut con, input.as_deref(), rename, batch.max(1), &bar)?;
            bar.finish_and_clear();
            output::count("imported", n, json)
        }
        Command::Streams { pattern, batch } => {
            backlog::streams(&mut con, &pattern, batch.max(1), json)
        }
        Command::Queues { batch } => backlog::queues(&mut con, batch.max(1), json),
        Command::Pending {
            target,
            group,
            count,
        } => backlog::pending(&mut con, &target, group.as_deref(), count, json),
        Command::Dead { target, count } => backlog::dead(&mut con, &target, count, json),
        Command::Replay {
            target,
            count,
            dry_run,
        } => backlog::replay(&mut con, &target, count, dry_run, json),
    }
}

fn scan_opts(scan: &ScanArgs) -> (usize, u64) {
    (scan.batch.max(1), scan.max_keys)
}

fn stats_of(
    con: &mut Con,
    spec: &ModelSpec,
    opts: &StatsOptions,
) -> redis_state::Result<redis_state::monitor::stats::ModelStats> {
    match con {
        Con::Single(c) => redis_state::monitor::stats::model_stats(c, spec, opts),
        Con::Cluster(c) => redis_state::monitor::stats::model_stats(c, spec, opts),
    }
}

fn sweep_of(
    con: &mut Con,
    spec: &ModelSpec,
    opts: &StatsOptions,
) -> redis_state::Result<redis_state::monitor::stats::SweepReport> {
    match con {
        Con::Single(c) => redis_state::monitor::stats::sweep(c, spec, opts),
        Con::Cluster(c) => redis_state::monitor::stats::sweep(c, spec, opts),
    }
}
