//! Interop with redis-py: the seed documents' own stream and queue code
//! (`tests/interop/seeds_streams.py`: `add_event`, `read_events`, the
//! consumer group functions, `enqueue_job` / `dequeue_job`) run by a real
//! redis-py against what this library writes, and the other way round, on
//! every executor and topology.

mod common;

use std::collections::BTreeMap;

use common::Runner;
use common::interop::python_for;
use redis_state::cache::shutdown;
use redis_state::prelude::*;
use redis_state::queue::ListQueue;
use redis_state::stream::{Retention, Stream};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "order:{id}")]
struct OrderPlaced {
    #[redis(id)]
    id: u64,
    total: i64,
    note: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Job {
    task: String,
    n: u64,
}

/// Python adds with the seed's `add_event`, Rust reads and consumes in a
/// group; Rust adds, the seed's `read_events` and consumer loop read plain
/// strings and acknowledge.
fn streams_both_ways(r: &mut Runner, ns: &Namespace) {
    let mut py = python_for(r);
    let s = Stream::<OrderPlaced>::new(format!("{ns}:{{events}}"), Retention::max_len(1000));
    let id: String = py.call(
        "seeds_streams.stream_add",
        json!({"key": s.key(), "fields": {"id": "1", "total": "250"}}),
    );
    r.run(s.add(&OrderPlaced {
        id: 2,
        total: 40,
        note: Some("gift".into()),
    }))
    .unwrap();
    let all = r.run(s.range("-", "+", 10)).unwrap();
    assert_eq!(all[0].id, id);
    assert_eq!(
        all[0].event,
        OrderPlaced {
            id: 1,
            total: 250,
            note: None
        }
    );
    let seen: Vec<(String, BTreeMap<String, String>)> =
        py.call("seeds_streams.stream_read", json!({"key": s.key()}));
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].1["note"], "gift");
    assert_eq!(seen[1].1["total"], "40");

    // The seed's consumer group loop reads and acknowledges what Rust added.
    let consumed: Vec<BTreeMap<String, String>> = py.call(
        "seeds_streams.group_consume",
        json!({"key": s.key(), "group": "py"}),
    );
    assert_eq!(consumed.len(), 2);
    assert_eq!(r.run(s.group("py").pending()).unwrap(), 0);

    // A Rust consumer of another group reads what Python added.
    let c = s.group("rust").consumer("w").unwrap();
    let (trigger, sd) = shutdown();
    let mut got = Vec::new();
    let mut handler = |d: redis_state::stream::Delivery<OrderPlaced>| {
        got.push(d.event.id);
        if got.len() == 2 {
            trigger.fire();
        }
        Ok::<_, String>(())
    };
    match r {
        Runner::Sync(con) => c.run(con, &sd, &mut handler),
        Runner::SyncCluster(con) => c.run(con, &sd, &mut handler),
        Runner::Async(rt, con) => {
            rt.block_on(c.run_async(con, &sd, |d| std::future::ready(handler(d))))
        }
        Runner::AsyncCluster(rt, con) => {
            rt.block_on(c.run_async(con, &sd, |d| std::future::ready(handler(d))))
        }
    }
    .unwrap();
    assert_eq!(got, vec![1, 2]);
}

/// The seed's `enqueue_job` / `dequeue_job` and `ListQueue` share
/// `queue:<name>`.
fn list_queue_both_ways(r: &mut Runner, ns: &Namespace) {
    let mut py = python_for(r);
    let name = format!("{ns}.emails");
    let q = ListQueue::<Job>::new(&name);
    py.call::<serde_json::Value>(
        "seeds_streams.job_enqueue",
        json!({"queue_name": name, "job": {"task": "send", "n": 1}}),
    );
    r.run(q.push(&Job {
        task: "send".into(),
        n: 2,
    }))
    .unwrap();
    assert_eq!(
        r.run(q.pop()).unwrap(),
        Some(Job {
            task: "send".into(),
            n: 1
        })
    );
    let job: Option<Job> = py.call(
        "seeds_streams.job_dequeue",
        json!({"queue_name": name, "timeout": 1}),
    );
    assert_eq!(job.map(|j| j.n), Some(2));
    let none: Option<Job> = py.call("seeds_streams.job_dequeue", json!({"queue_name": name}));
    assert!(none.is_none());
}

matrix!(streams_both_ways, list_queue_both_ways);
