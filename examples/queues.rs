//! # Job queues
//!
//! A `Queue<T>` holds jobs of one serde type. Every state change is one Lua
//! script over the queue's keys (one hash tag: one Cluster slot):
//!
//! * **nothing lost**: a worker takes a job under a *lease* (a visibility
//!   timeout, separate from any delay); a job whose worker died comes back
//!   when the lease runs out;
//! * **fenced completion**: completing, failing or extending checks the
//!   lease token; a worker whose lease ran out gets `Error::LeaseLost` and
//!   its `Effect` is not applied;
//! * **delays without pub/sub**: delayed and retried jobs wait in a sorted
//!   set that the workers' own calls promote, by the server's clock;
//! * **retries with backoff and jitter**, then a dead-letter set with the
//!   last error; **priorities** (higher first, oldest first among equals).
//!
//! `ListQueue<T>` is the plain `RPUSH`/`BLPOP` list of JSON other clients
//! use at `queue:<name>`: interoperable, but a job popped by a worker that
//! dies is lost.
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server`. Run it with `cargo run --example queues`.

use std::time::Duration;

use redis_state::cache::shutdown;
use redis_state::prelude::*;
use redis_state::queue::{ListQueue, Queue, QueueOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Resize {
    image: String,
    width: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;
    let mut options = QueueOptions::default();
    options.lease = Duration::from_secs(10);
    options.backoff = Duration::from_millis(5);
    options.max_attempts = 2;
    let name = format!("images-{}", std::process::id());
    let queue = Queue::<Resize>::new(&name).options(options);

    queue
        .push(&Resize {
            image: "cat.png".into(),
            width: 64,
        })
        .run(&mut con)?;
    queue
        .push(&Resize {
            image: "hero.png".into(),
            width: 1200,
        })
        .priority(10)
        .run(&mut con)?;
    queue
        .push(&Resize {
            image: "later.png".into(),
            width: 32,
        })
        .delay(Duration::from_millis(50))
        .run(&mut con)?;
    queue
        .push(&Resize {
            image: "broken.gif".into(),
            width: 0,
        })
        .run(&mut con)?;

    // A worker: its own connection, its own loop; stops once all are settled.
    let (stop, shutdown) = shutdown();
    let mut seen = 0;
    let stats = queue.worker().run(&mut con, &shutdown, |job| {
        seen += 1;
        println!(
            "job {} (attempt {}): {}",
            job.id, job.attempt, job.data.image
        );
        if seen == 5 {
            stop.fire();
        }
        if job.data.width == 0 {
            return Err(format!("{} has no width", job.data.image));
        }
        Ok(())
    })?;
    println!(
        "done {}, retried {}, dead {}",
        stats.done, stats.retried, stats.dead
    );
    for dead in queue.dead(10).run(&mut con)? {
        println!("dead job {}: {}", dead.id, dead.error);
    }

    // A job taken by a worker whose lease then ran out cannot be completed.
    let short = Queue::<Resize>::new(format!("{name}-short")).options({
        let mut o = QueueOptions::default();
        o.lease = Duration::from_millis(20);
        o
    });
    short
        .push(&Resize {
            image: "slow.png".into(),
            width: 8,
        })
        .run(&mut con)?;
    let job = short.take().run(&mut con)?.ok_or("a job")?;
    std::thread::sleep(Duration::from_millis(30));
    match short.complete(&job, ()).run(&mut con) {
        Err(e) => println!("late completion refused: {e}"),
        Ok(_) => println!("completed"),
    }

    // The plain list queue, as redis-py's rpush/blpop code writes it.
    let plain = ListQueue::<Resize>::new(&name);
    plain
        .push(&Resize {
            image: "plain.png".into(),
            width: 10,
        })
        .run(&mut con)?;
    println!(
        "plain: {:?}",
        plain.pop_wait(&mut con, Duration::from_secs(1))?
    );

    for q in [&name, &format!("{name}-short")] {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("queue:{{{q}}}:*"))
            .query(&mut con)?;
        if !keys.is_empty() {
            let () = redis::cmd("DEL")
                .arg(&keys)
                .query::<i64>(&mut con)
                .map(drop)?;
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
