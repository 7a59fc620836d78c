//! The driver: procedures written once over `driver::Io`, run by the
//! blocking and the async executor, on a standalone server and a Cluster.

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Runner, Topology};
use redis_state::driver::{self, Async, Deadline, Io, Waitable};
use redis_state::exec::DedicatedConnection;
use redis_state::op::{Plan, Replies, Step, command};
use redis_state::testing::{shared_cluster, shared_server};
use redis_state::{Namespace, Operation, Result};

/// Several round trips over keys of several slots, a pause between each.
async fn count_up<I: Io>(io: &mut I, keys: &[String], rounds: u32) -> Result<Vec<i64>> {
    let mut last = Vec::new();
    for round in 0..rounds {
        if round > 0 {
            io.sleep(Duration::from_millis(2)).await;
        }
        last = io
            .run(redis_state::many(
                keys.iter().map(|k| command::<i64>("INCR", k)),
            ))
            .await?;
    }
    Ok(last)
}

fn rounds_and_pauses(runner: &mut Runner, ns: &Namespace) {
    let keys: Vec<String> = (0..6).map(|i| format!("{ns}:{{c{i}}}")).collect();
    let out = drive!(runner, |io| count_up(io, &keys, 5)).unwrap();
    assert_eq!(out, vec![5; 6]);
    let again = drive!(runner, |io| count_up(io, &keys, 3)).unwrap();
    assert_eq!(again, vec![8; 6]);
}

/// `XREAD COUNT 1 [BLOCK ms] STREAMS key 0-0`: the first entry's id, if any.
struct FirstEntry {
    key: String,
    block: Option<Duration>,
}

impl Operation for FirstEntry {
    type Output = Option<String>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let cmd = plan.cmd_routed("XREAD", &self.key).arg("COUNT").arg(1);
        if let Some(b) = self.block {
            cmd.arg("BLOCK").arg(b.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.key).arg("0-0");
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Option<String>>> {
        // [[key, [[id, [field, value]], ...]]] (RESP2), or nil.
        let v = replies.next_value()?;
        let first = |v: &redis::Value| match v {
            redis::Value::Array(items) => items.first().cloned(),
            _ => None,
        };
        let id = first(&v)
            .and_then(|stream| match stream {
                redis::Value::Array(parts) => parts.get(1).cloned(),
                _ => None,
            })
            .and_then(|entries| first(&entries))
            .and_then(|entry| first(&entry))
            .and_then(|id| redis::from_redis_value::<String>(id).ok());
        Ok(Step::Done(id))
    }
}

/// Waits for the first entry of `key`, recording each read's `block`.
async fn first_entry<I: Io>(
    io: &mut I,
    key: &str,
    bound: Duration,
    blocks: &Mutex<Vec<Option<Duration>>>,
) -> Result<Option<String>> {
    driver::read_until(io, Deadline::after(bound), |block| {
        blocks.lock().unwrap().push(block);
        FirstEntry {
            key: key.to_owned(),
            block,
        }
    })
    .await
}

/// Adds an entry to `key` from a connection of its own, a little later.
fn add_later(topology: Topology, key: String) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        let add = command::<String>("XADD", &key).arg("*").arg("f").arg("v");
        match topology {
            Topology::Standalone => add.run(&mut shared_server().connection().unwrap()),
            Topology::Cluster => add.run(&mut shared_cluster().connection().unwrap()),
        }
        .unwrap();
    })
}

fn topology_of(runner: &Runner) -> Topology {
    if runner.is_cluster() {
        Topology::Cluster
    } else {
        Topology::Standalone
    }
}

/// A blocking caller's connection is its own: its reads block on the
/// server. The redis-rs async connections are shared: their reads never
/// block, they poll.
fn reads_block_only_on_a_connection_of_its_own(runner: &mut Runner, ns: &Namespace) {
    let key = format!("{ns}:stream");
    let writer = add_later(topology_of(runner), key.clone());
    let blocks = Mutex::new(Vec::new());
    let got = drive!(runner, |io| first_entry(
        io,
        &key,
        Duration::from_secs(30),
        &blocks
    ))
    .unwrap();
    writer.join().unwrap();
    assert!(got.is_some(), "the entry added meanwhile is read");
    let blocks = blocks.into_inner().unwrap();
    let exclusive = matches!(runner, Runner::Sync(_) | Runner::SyncCluster(_));
    if exclusive {
        assert!(
            blocks
                .iter()
                .all(|b| b.is_some_and(|d| d <= driver::BLOCK_SLICE)),
            "{blocks:?}"
        );
    } else {
        assert!(blocks.iter().all(Option::is_none), "{blocks:?}");
        assert!(blocks.len() > 1, "the first poll came before the entry");
    }
}

/// A read with nothing to find returns `None` once its bound is spent.
fn reads_give_up_at_their_deadline(runner: &mut Runner, ns: &Namespace) {
    let key = format!("{ns}:empty");
    let bound = Duration::from_millis(300);
    let blocks = Mutex::new(Vec::new());
    let started = Instant::now();
    let got = drive!(runner, |io| first_entry(io, &key, bound, &blocks)).unwrap();
    assert_eq!(got, None);
    assert!(started.elapsed() >= bound, "returned before its bound");
    // The last read came at or after the bound, and did not block.
    assert_eq!(blocks.into_inner().unwrap().last(), Some(&None));
}

/// An event inside the process: a value another thread sends.
struct Delivered(tokio::sync::oneshot::Receiver<u32>);

impl Waitable for Delivered {
    type Output = Option<u32>;
    fn wait(self) -> Option<u32> {
        self.0.blocking_recv().ok()
    }
    async fn wait_async(self) -> Option<u32> {
        self.0.await.ok()
    }
}

async fn wait_then_store<I: Io>(io: &mut I, key: &str, w: Delivered) -> Result<Option<u32>> {
    let got = io.wait(w).await;
    if let Some(v) = got {
        io.run(command::<()>("SET", key).arg(v)).await?;
    }
    Ok(got)
}

fn waits_for_events_in_the_process(runner: &mut Runner, ns: &Namespace) {
    let key = format!("{ns}:waited");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(41).unwrap();
    });
    let got = drive!(runner, |io| wait_then_store(io, &key, Delivered(rx))).unwrap();
    sender.join().unwrap();
    assert_eq!(got, Some(41));
    assert_eq!(runner.cmd::<u32>("GET", &key).go(), 41);
}

matrix!(
    rounds_and_pauses,
    reads_block_only_on_a_connection_of_its_own,
    reads_give_up_at_their_deadline,
    waits_for_events_in_the_process,
);

/// An async connection dedicated to one caller blocks on the server too,
/// on a standalone server and on a Cluster.
#[test]
fn a_dedicated_async_connection_blocks_on_the_server() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for topology in [Topology::Standalone, Topology::Cluster] {
        let ns = common::namespace("dedicated");
        let key = format!("{ns}:stream");
        let mut con = rt
            .block_on(async {
                match topology {
                    Topology::Standalone => {
                        DedicatedConnection::connect_async(&shared_server().client()).await
                    }
                    Topology::Cluster => {
                        DedicatedConnection::connect_cluster_async(&shared_cluster().client()).await
                    }
                }
            })
            .unwrap();
        let writer = add_later(topology, key.clone());
        let blocks = Arc::new(Mutex::new(Vec::new()));
        let got = rt
            .block_on(async {
                first_entry(
                    &mut Async::new(&mut con),
                    &key,
                    Duration::from_secs(30),
                    &blocks,
                )
                .await
            })
            .unwrap();
        writer.join().unwrap();
        assert!(got.is_some(), "{topology:?}");
        let blocks = blocks.lock().unwrap();
        assert!(
            blocks.iter().all(Option::is_some),
            "{topology:?}: {blocks:?}"
        );
    }
}

/// While a procedure waits on a shared async connection, other tasks'
/// commands on that connection go through: the server never holds the
/// connection in a blocking command (checked on the server: the
/// connection's client entry never shows the blocked flag).
#[test]
fn a_shared_connection_is_never_held_by_a_wait() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ns = common::namespace("shared-wait");
    let key = format!("{ns}:stream");
    rt.block_on(async {
        let mut con = shared_server().async_connection().await.unwrap();
        let id: i64 = command::<i64>("CLIENT", "ID")
            .run_async(&mut con)
            .await
            .unwrap();
        let mut waiting = con.clone();
        let waiter = tokio::spawn(async move {
            let blocks = Mutex::new(Vec::new());
            first_entry(
                &mut Async::new(&mut waiting),
                &key,
                Duration::from_millis(600),
                &blocks,
            )
            .await
        });
        let mut observer = shared_server().async_connection().await.unwrap();
        let mut looks = 0;
        while !waiter.is_finished() {
            let list: String = command::<String>("CLIENT", "LIST")
                .arg("ID")
                .arg(id)
                .run_async(&mut observer)
                .await
                .unwrap();
            assert!(!list.contains("flags=b"), "{list}");
            let pong: String = command::<String>("PING", "x")
                .run_async(&mut con)
                .await
                .unwrap();
            assert_eq!(pong, "x");
            looks += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(looks > 0);
        assert_eq!(waiter.await.unwrap().unwrap(), None);
    });
}
