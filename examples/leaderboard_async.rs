//! # Leaderboards, async and on a Cluster
//!
//! The same operations run on an async connection with `.run_async(&mut
//! con).await`, on a standalone server or a Redis Cluster. This program
//! keeps one board per game and region. The key template
//! `"{{league:{game}}}:{region}"` puts the hash tag on the game: every
//! region of a game lives in one Cluster slot, so they can be merged into a
//! world board by one script (`union`, `intersection`), while different
//! games spread over the cluster.
//!
//! It also shows the bulk path (`submit_many`: one pipeline, grouped per
//! board; for a board that is one sorted set with `replace` or `keep_best`,
//! one variadic `ZADD` per thousand entries) and a scan over a whole board
//! that never blocks the server (`ZSCAN`, a bounded amount of work per round
//! trip).
//!
//! Run it with `cargo run --example leaderboard_async`.

use futures_util::StreamExt;
use redis_state::prelude::*;
use redis_state::testing::{RedisCluster, RedisServer};

// ANCHOR: model
#[derive(Leaderboard, Debug, Clone)]
#[leaderboard(key = "{{league:{game}}}:{region}", update = "add", rank = "dense")]
struct Points {
    game: String,
    region: String,
    #[leaderboard(member)]
    player: u64,
    #[leaderboard(score)]
    points: i64,
}
// ANCHOR_END: model

// ANCHOR: work
async fn work<C>(con: &mut C, label: &str) -> redis_state::Result<()>
where
    C: redis_state::exec::AsyncExecutor,
{
    let ns = Namespace::new(format!("lb-async-{}", std::process::id()))?;
    // 30,000 results over three regions, one pipeline.
    let results: Vec<Points> = (0..30_000u64)
        .map(|i| Points {
            game: "chess".into(),
            region: ["eu", "us", "asia"][(i % 3) as usize].into(),
            player: i % 5_000,
            points: (i % 7) as i64,
        })
        .collect();
    let loaded = Points::submit_many(&results)
        .namespace(&ns)
        .run_async(con)
        .await?;
    println!("[{label}] submitted {} results", loaded.submitted);

    // The world board: the sum of the regions (the policy is `add`).
    let regions: Vec<_> = ["eu", "us", "asia"]
        .iter()
        .map(|r| Points::board(("chess".to_owned(), (*r).to_owned())).namespace(&ns))
        .collect();
    let world = Points::board(("chess".to_owned(), "world".to_owned())).namespace(&ns);
    let sources: Vec<_> = regions.iter().collect();
    let players = Points::union(&sources, &world).run_async(con).await?;
    let top = world.top(3).run_async(con).await?;
    println!("[{label}] world board of {players} players, dense ranks:");
    for e in &top {
        println!(
            "[{label}]   #{} player {} with {}",
            e.rank, e.member, e.score
        );
    }

    // Every member of a board, a page per round trip.
    let mut scan = world.scan_async(con, 500);
    let (mut seen, mut total) = (0u64, 0i64);
    while let Some(item) = scan.next().await {
        let item = item?;
        seen += 1;
        total += item.score;
    }
    drop(scan);
    println!("[{label}] scanned {seen} players, {total} points in all");

    for b in regions.iter().chain([&world]) {
        b.clear().run_async(con).await?;
    }
    Ok(())
}
// ANCHOR_END: work

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: connections
    let _server;
    let client = match std::env::var("REDIS_URL") {
        Ok(url) => redis::Client::open(url)?,
        Err(_) => {
            _server = RedisServer::start()?;
            _server.client()
        }
    };
    let mut con = client.get_multiplexed_async_connection().await?;
    work(&mut con, "standalone").await?;

    let cluster = RedisCluster::start(3)?;
    let mut con = cluster.client().get_async_connection().await?;
    work(&mut con, "cluster").await?;
    // ANCHOR_END: connections
    Ok(())
}
