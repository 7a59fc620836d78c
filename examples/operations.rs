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
//! * **observability**: with the features `tracing` and `metrics`, every
//!   operation run opens a span and records its latency and errors by kind
//!   (see `redis_state::observe`); without them, nothing is compiled in.
//!
//! The same is on the command line: `cargo install redis-state-cli` gives
//! the `redis-state` binary (`info`, `stats`, `inspect`, `sweep`, `export`,
//! `import`), which takes models as key templates written as in the
//! derives (`--hash '{{user}}:{id}#user'`).
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server`. Run it with `cargo run --example operations`.

use redis_state::monitor::stats::{self, Catalog, StatsOptions};
use redis_state::monitor::{self};
use redis_state::prelude::*;
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

    let pattern = format!("{ns}:*");
    let keys: Vec<String> = {
        use redis::Commands;
        con.scan_match(&pattern)?.collect::<Result<_, _>>()?
    };
    if !keys.is_empty() {
        redis::cmd("DEL").arg(&keys).query::<i64>(&mut con)?;
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
