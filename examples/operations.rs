//! # Operations: what the server and each model hold
//!
//! The people who run a service need to see inside it: how much memory the
//! server uses and what is slow, how many entities each model holds and how
//! much memory they take, whether an index still points at entities that
//! are gone. `redis_state::monitor` answers with typed values:
//!
//! * **server introspection**: `monitor::info()` (`INFO`, typed section by
//!   section, unknown fields kept), `monitor::slowlog(n)` and
//!   `monitor::latency_latest()`. Each is one operation that goes to every
//!   primary (the one server of a standalone connection), so it runs on
//!   both executors and both topologies and batches like any other;
//! * **per-model statistics**: register models in a `Catalog` (from the
//!   derives' own schemas) and read entity counts, memory (sampled `MEMORY
//!   USAGE`, extrapolated), the spread of TTLs, and for hash models each
//!   index's entries and orphans. The work is `SCAN` on every primary in
//!   bounded batches, with a limit on the keys read;
//! * **repair**: `stats::sweep` removes orphan index entries, each re-checked
//!   in one script so that an entity saved in between keeps its entry;
//! * **backlogs**: `Queue::depth` (jobs ready, delayed, active and dead,
//!   and the lag: how long the most overdue job has waited past its due
//!   time or its lease), `Group::info` (a consumer group's pending entries,
//!   lag and oldest pending entry), and `monitor::backlog`, which reads any
//!   stream or queue by key or name: consumers and their pending entries,
//!   dead letters with their errors, and replaying them;
//! * **observability**: with the features `tracing` and `metrics`, every
//!   operation run opens a span and records its latency and errors by kind;
//!   every cache read of a strategy opens a span with its outcome (hit,
//!   local hit, miss, stale, refresh, error) and counts it, with fills and
//!   lease waits; queue and stream depths set gauges whenever the library
//!   reads them (see `redis_state::observe`). Without the features, nothing
//!   is compiled in.
//!
//! The same is on the command line: `cargo install redis-state-cli` gives
//! the `redis-state` binary (`info`, `stats`, `inspect`, `sweep`, `export`,
//! `import`, and for streams and queues `streams`, `queues`, `pending`,
//! `dead` and `replay`), which takes models as key templates written as in
//! the derives (`--hash '{{user}}:{id}#user'`). Every command prints a
//! table or, with `--json`, JSON; long work shows its progress on standard
//! error when that is a terminal:
//!
//! ```text
//! $ redis-state streams --match '{orders}*'
//! stream           length  dead  group    consumers  pending  lag  oldest pending idle
//! {orders}:events  4       1     audit    1          2        2    12 ms
//! {orders}:events  4       1     billing  1          0        0    -
//! $ redis-state dead --stream '{orders}:events'
//! $ redis-state replay --stream '{orders}:events' --count 10 --dry-run
//! $ redis-state queues --json
//! ```
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server`. Run it with `cargo run --example operations`.

use redis_state::monitor::stats::{self, Catalog, StatsOptions};
use redis_state::monitor::{self, backlog};
use redis_state::prelude::*;
use redis_state::queue::{Queue, QueueOptions};
use redis_state::stream::{ConsumerOptions, Retention, Stream};
use serde::{Deserialize, Serialize};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{customer}}:{id}", ttl = "30d")]
struct Customer {
    #[redis(id)]
    id: u64,
    name: String,
    #[redis(unique)]
    email: String,
    #[redis(index)]
    country: String,
}

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "quote:{id}", ttl = "5m")]
struct Quote {
    id: u64,
    total: i64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;
    let ns = Namespace::new(format!("ops-{}", std::process::id()))?;
    for id in 1..=50 {
        let c = Customer {
            id,
            name: format!("customer {id}"),
            email: format!("c{id}@example.com"),
            country: ["no", "it", "fr"][(id % 3) as usize].to_owned(),
        };
        c.save().namespace(&ns).run(&mut con)?;
    }
    for id in 1..=20 {
        let q = Quote {
            id,
            total: 100 * id as i64,
        };
        Quote::set(&id, &q).namespace(&ns).run(&mut con)?;
    }

    // ANCHOR: info
    for (node, info) in monitor::info().run(&mut con)? {
        println!(
            "{node}: redis {} ({}), {} bytes used, {} clients, {} keys",
            info.server.redis_version.as_deref().unwrap_or("?"),
            info.replication.role.as_deref().unwrap_or("?"),
            info.memory.used_memory.unwrap_or(0),
            info.clients.connected_clients.unwrap_or(0),
            info.total_keys(),
        );
        // A field this version of the library does not name is still there.
        let allocator = info.field("memory", "mem_allocator").unwrap_or("?");
        println!("  allocator: {allocator}");
    }
    for (node, entries) in monitor::slowlog(3).run(&mut con)? {
        for e in entries {
            println!("{node}: slow: {} us {}", e.duration_us, e.args.join(" "));
        }
    }
    // ANCHOR_END: info

    // ANCHOR: stats
    let catalog = Catalog::new()
        .namespace(&ns)
        .hash::<Customer>()
        .cached::<Quote>();
    let opts = StatsOptions::default().batch(100).memory_samples(500);
    for s in catalog.stats(&mut con, &opts)? {
        println!(
            "{}: {} keys, ~{} bytes, TTLs under a minute/hour/day/week/longer: {:?}",
            s.name, s.keys, s.memory.estimated_bytes, s.ttl.buckets
        );
        for ix in &s.indexes {
            println!(
                "  index {} ({}): {} entries, {} orphans",
                ix.field,
                if ix.unique { "unique" } else { "index" },
                ix.entries,
                ix.orphans
            );
        }
    }
    // ANCHOR_END: stats

    // ANCHOR: sweep
    // Someone deletes a customer behind the library's back: its index
    // entries now point at nothing. The sweep finds and removes them.
    redis::cmd("DEL")
        .arg(format!("{ns}:{{customer}}:7"))
        .query::<i64>(&mut con)?;
    let spec = stats::ModelSpec::hash::<Customer>(Some(&ns));
    let report = stats::sweep(&mut con, &spec, &opts)?;
    println!("sweep removed {} orphan entries", report.removed);
    // ANCHOR_END: sweep

    // ANCHOR: backlog
    // A job queue: two jobs wait, one is taken, one died after its only
    // attempt.
    let mut qo = QueueOptions::default();
    qo.max_attempts = 1;
    let mails = Queue::<String>::new(format!("{ns}.mails")).options(qo);
    for to in ["ann", "bob", "cy", "di"] {
        mails.push(&to.to_owned()).run(&mut con)?;
    }
    let first = mails.take().run(&mut con)?.ok_or("a job is ready")?;
    mails.fail(&first, "mailbox full").run(&mut con)?;
    let _in_hand = mails.take().run(&mut con)?;
    let d = mails.depth().run(&mut con)?;
    println!(
        "queue {}: {} ready, {} delayed, {} active, {} dead, lag {} ms",
        mails.name(),
        d.ready,
        d.delayed,
        d.active,
        d.dead,
        d.lag.as_millis()
    );
    for job in mails.dead(10).run(&mut con)? {
        println!("  dead job {}: {}", job.id, job.error);
    }
    let replayed = backlog::queue_replay(mails.name(), 10).run(&mut con)?;
    println!("  replayed {} dead job(s)", replayed.len());

    // A stream whose consumer group dead-letters an event it cannot handle.
    let orders = Stream::<Customer>::new(format!("{ns}:{{orders}}"), Retention::max_len(1_000));
    for id in 1..=3 {
        let c = Customer {
            id,
            name: format!("customer {id}"),
            email: format!("o{id}@example.com"),
            country: "no".into(),
        };
        orders.add(&c).run(&mut con)?;
    }
    let mut co = ConsumerOptions::default();
    co.max_attempts = 1;
    let consumer = orders.group("billing").consumer("ops")?.options(co);
    let (stop, shutdown) = redis_state::cache::shutdown();
    consumer.run(&mut con, &shutdown, |d| {
        if d.event.id == 3 {
            stop.fire();
        }
        if d.event.id == 2 {
            return Err("no billing address".to_owned());
        }
        Ok(())
    })?;
    let info = backlog::stream_info(orders.key()).run(&mut con)?;
    for g in &info.groups {
        println!(
            "stream {}: {} entries, {} dead letters; group {}: {} pending, lag {:?}",
            info.key, info.length, info.dead_letters, g.name, g.pending, g.lag
        );
    }
    for letter in backlog::stream_dead(orders.key(), 10).run(&mut con)? {
        println!("  dead letter of {}: {}", letter.origin, letter.error);
    }
    let moved = backlog::stream_replay_blocking(&mut con, orders.key(), 10, false)?;
    println!("  replayed {} dead letter(s) into the stream", moved.len());
    // ANCHOR_END: backlog

    for pattern in [format!("{ns}:*"), format!("queue:{{{ns}.mails}}:*")] {
        let keys: Vec<String> = {
            use redis::Commands;
            con.scan_match(&pattern)?.collect::<Result<_, _>>()?
        };
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).query::<i64>(&mut con)?;
        }
    }
    Ok(())
}

fn connect()
-> Result<(Option<redis_state::testing::RedisServer>, redis::Client), Box<dyn std::error::Error>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => Ok((None, redis::Client::open(url)?)),
        Err(_) => {
            let server = redis_state::testing::RedisServer::start()?;
            let client = server.client();
            Ok((Some(server), client))
        }
    }
}
