//! # Caching: write-behind
//!
//! The seed's `update_user_fast` writes the cache and puts the database
//! write on an in-process `Queue` for a daemon thread: a crash loses every
//! queued write, and a failing write is printed and dropped.
//!
//! [`Cache::write_behind`] appends the source write to a Redis stream and
//! then writes the entry (one atomic script on one server, and on a Cluster
//! for a type declared with `#[cache(buckets = 64)]`, whose entries and
//! per-bucket queues share hash tags; two round trips on a Cluster
//! otherwise; either way no entry is cached when the queue refuses the
//! write): once it returns, the write survives a
//! crash of this process. A [`WriteBehindWorker`] (any number, in any
//! process) reads the stream as a consumer group and calls your handler:
//!
//! * an entry is acknowledged only after the handler succeeded;
//! * a failing handler is retried with exponential backoff and jitter, and
//!   after `max_attempts` the entry moves to a dead-letter stream with the
//!   error;
//! * entries a dead worker left pending are claimed by the others
//!   (`XAUTOCLAIM` after `claim_idle`, which must exceed one handler attempt
//!   plus one backoff delay: a live worker keeps its entries while it
//!   retries), and a restarted worker re-reads its own;
//! * shutdown is graceful: the current entry is finished, nothing new read.
//!
//! Delivery is **at-least-once**: a worker killed after the handler and
//! before the acknowledgement repeats the write, so handlers must be
//! idempotent (an upsert by id).
//!
//! Without `REDIS_URL` this program starts a private server.
//! Run it with `cargo run --example cache_write_behind`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis_state::cache::{Cache, QueuedWrite, WriteBehindWorker, shutdown};
use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

// ANCHOR: model
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "user:{id}", ttl = "1h")]
struct User {
    id: u64,
    name: String,
}
// ANCHOR_END: model

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let ns = Namespace::new(redis_state::testing::unique_prefix("write-behind"))?;
    let users = Cache::<User>::new().namespace(&ns);

    // ANCHOR: enqueue
    // update_user_fast: the cache now, the database later.
    for id in 1..=5 {
        let user = User {
            id,
            name: format!("user {id}"),
        };
        let entry = users.write_behind(&id, &user).run_async(&mut con).await?;
        println!("cached user {id}, queued as stream entry {entry}");
    }
    println!(
        "readers see it at once: {:?}",
        users.get(&3).run_async(&mut con).await?
    );
    // ANCHOR_END: enqueue

    // ANCHOR: worker
    // The "database": user 4 is refused every time (it will be dead-lettered).
    let db: Arc<Mutex<HashMap<u64, String>>> = Arc::default();
    let handler = {
        let db = db.clone();
        move |w: QueuedWrite<User>| {
            let db = db.clone();
            async move {
                if w.value.id == 4 {
                    return Err(format!("constraint violated (attempt {})", w.attempt));
                }
                // Idempotent: an upsert by id.
                db.lock().unwrap().insert(w.value.id, w.value.name);
                Ok(())
            }
        }
    };
    let worker = WriteBehindWorker::new(&users, "worker-1")
        .max_attempts(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(100));
    let dead_letters = worker.dead_letter_stream().to_owned();
    let (trigger, stop) = shutdown();
    // The worker gets a connection of its own: its blocking reads never
    // hold up the application's shared connection.
    let mut worker_con = redis_state::exec::DedicatedConnection::connect_async(&client).await?;
    let task =
        tokio::spawn(async move { worker.process_async(&mut worker_con, stop, handler).await });

    // Let it drain, then shut it down gracefully.
    while db.lock().unwrap().len() < 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    trigger.fire();
    let stats = task.await??;
    println!("worker: {stats:?}");
    println!("database: {:?}", db.lock().unwrap());
    let dead: usize = redis::cmd("XLEN")
        .arg(&dead_letters)
        .query_async(&mut con)
        .await?;
    println!("dead letters in {dead_letters}: {dead}");
    // ANCHOR_END: worker
    Ok(())
}

/// Connects to `REDIS_URL`, or starts a private server for this run.
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
