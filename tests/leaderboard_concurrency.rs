//! Each update policy under concurrent submits: no lost update, and member
//! data never out of step with the score, on a standalone server and a
//! Cluster. Every thread has its own connection.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::Topology;
use redis_state::prelude::*;
use redis_state::testing::{shared_cluster, shared_server};

const THREADS: usize = 8;
const ROUNDS: i64 = 150;

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{conc-add:{game}}}", update = "add", windows(daily))]
struct Added {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i64,
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(
    key = "{{conc-best:{game}}}",
    update = "keep_best",
    rank = "dense",
    tie_break = "earlier",
    max_score = 1_000_000
)]
struct Best {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i64,
    /// Always equal to `points`: shows which submit the data came from.
    echo: i64,
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{conc-rep:{game}}}", rank = "competition", cap = 50)]
struct Replaced {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i64,
    echo: i64,
}

/// Runs `f(thread, connection)` on `THREADS` threads at once.
fn in_parallel(topology: Topology, f: impl Fn(usize, &mut Con) + Sync) {
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let f = &f;
            s.spawn(move || f(t, &mut connect(topology)));
        }
    });
}

fn run<O: Operation>(con: &mut Con, op: O) -> O::Output {
    match con {
        Con::Standalone(c) => op.run(c),
        Con::Cluster(c) => op.run(c),
    }
    .unwrap()
}

fn add_loses_nothing(topology: Topology) {
    let ns = common::namespace("conc_add");
    let at = chrono::Utc::now();
    in_parallel(topology, |t, con| {
        for i in 0..ROUNDS {
            let e = Added {
                game: "g".into(),
                player: "shared".into(),
                points: 1 + (i % 3),
            };
            let out = run(con, e.submit().at(at).namespace(&ns));
            assert!(out.updated);
            // Every thread also increments through the board handle.
            if i % 10 == 0 {
                let board = Added::board("g").namespace(&ns).at(at);
                run(con, board.increment("shared", -1));
            }
            let _ = t;
        }
    });
    let per_thread: i64 = (0..ROUNDS).map(|i| 1 + (i % 3)).sum::<i64>() - ROUNDS / 10;
    let want = per_thread * THREADS as i64;
    let board = Added::board("g").namespace(&ns).at(at);
    let mut con = connect(topology);
    assert_eq!(run(&mut con, board.score("shared")), Some(want));
    assert_eq!(
        run(&mut con, board.clone().daily().score("shared")),
        Some(want)
    );
}

fn keep_best_keeps_the_best(topology: Topology) {
    let ns = common::namespace("conc_best");
    let start = chrono::Utc::now();
    in_parallel(topology, |t, con| {
        let mut last_seen = i64::MIN;
        for i in 0..ROUNDS {
            // Interleaved values: every thread submits rising and falling ones.
            let points = ((i * 7 + t as i64 * 13) % 97) * 10 + t as i64;
            let e = Best {
                game: "g".into(),
                player: "shared".into(),
                points,
                echo: points,
            };
            let out = run(con, e.submit().at(start).namespace(&ns));
            let kept = out.score.unwrap();
            assert!(kept >= points, "kept {kept} below the submitted {points}");
            assert!(
                kept >= last_seen,
                "the best went down: {last_seen} then {kept}"
            );
            last_seen = kept;
        }
    });
    let best = (0..THREADS as i64)
        .flat_map(|t| (0..ROUNDS).map(move |i| ((i * 7 + t * 13) % 97) * 10 + t))
        .max()
        .unwrap();
    let mut con = connect(topology);
    let e = run(&mut con, Best::board("g").namespace(&ns).entry("shared")).unwrap();
    assert_eq!(e.score, best);
    assert_eq!(e.data.unwrap().echo, best, "the data of the best submit");
}

fn replace_keeps_data_in_step(topology: Topology) {
    let ns = common::namespace("conc_rep");
    let stop = Arc::new(AtomicBool::new(false));
    let readers_checked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::scope(|s| {
        // Readers: every entry read is one atomic script, so its data is
        // always the data of the submit that wrote its score.
        for _ in 0..2 {
            let (stop, checked, ns) = (stop.clone(), readers_checked.clone(), ns.clone());
            s.spawn(move || {
                let mut con = connect(topology);
                let board = Replaced::board("g").namespace(&ns);
                while !stop.load(Ordering::Relaxed) {
                    for e in run(&mut con, board.top(60)) {
                        if let Some(d) = e.data {
                            assert_eq!(d.echo, e.score, "torn entry for {}", e.member);
                            checked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        in_parallel(topology, |t, con| {
            for i in 0..ROUNDS {
                let points = (i * 31 + t as i64 * 17) % 1000;
                let e = Replaced {
                    game: "g".into(),
                    player: format!("m{}", i % 80),
                    points,
                    echo: points,
                };
                run(con, e.submit().namespace(&ns));
            }
        });
        stop.store(true, Ordering::Relaxed);
    });
    assert!(readers_checked.load(Ordering::Relaxed) > 0);
    let mut con = connect(topology);
    let board = Replaced::board("g").namespace(&ns);
    assert_eq!(run(&mut con, board.count()), 50, "the cap held");
    let top = run(&mut con, board.top(100));
    assert_eq!(top.len(), 50);
    for e in &top {
        assert_eq!(e.data.as_ref().unwrap().echo, e.score);
    }
    let data_len = run(
        &mut con,
        redis_state::op::command::<i64>("HLEN", format!("{}:#data", board.key())),
    );
    assert_eq!(data_len, 50, "trimmed members took their data");
}

#[allow(clippy::large_enum_variant, reason = "one per thread")]
enum Con {
    Standalone(redis::Connection),
    Cluster(redis::cluster::ClusterConnection),
}

fn connect(topology: Topology) -> Con {
    match topology {
        Topology::Standalone => Con::Standalone(shared_server().connection().unwrap()),
        Topology::Cluster => Con::Cluster(shared_cluster().connection().unwrap()),
    }
}

#[test]
fn add_standalone() {
    add_loses_nothing(Topology::Standalone);
}

#[test]
fn add_cluster() {
    add_loses_nothing(Topology::Cluster);
}

#[test]
fn keep_best_standalone() {
    keep_best_keeps_the_best(Topology::Standalone);
}

#[test]
fn keep_best_cluster() {
    keep_best_keeps_the_best(Topology::Cluster);
}

#[test]
fn replace_standalone() {
    replace_keeps_data_in_step(Topology::Standalone);
}

#[test]
fn replace_cluster() {
    replace_keeps_data_in_step(Topology::Cluster);
}
