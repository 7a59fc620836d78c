//! # A tour of redis-state
//!
//! The demo: one program that walks through everything the library does so
//! far, each step printing what it did. It uses `REDIS_URL` if set, and
//! otherwise starts a private `redis-server` (and a private Cluster for the
//! Cluster step), so it needs nothing but Redis 7 installed.
//!
//! Run it with `./scripts/demo` (installs Redis if needed) or
//! `cargo run --example tour`.

use std::time::{Duration, Instant};

use redis_state::prelude::*;
use redis_state::testing::{RedisCluster, RedisServer};
use redis_state::{Error, Ttl};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{player}}:{id}")]
struct Player {
    #[redis(id)]
    id: u32,
    #[redis(unique)]
    nick: String,
    #[redis(index)]
    guild: Option<String>,
    #[redis(counter)]
    gold: i64,
    #[redis(version)]
    version: u64,
}

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "lobby:{id}", ttl = "10m")]
struct Lobby {
    #[redis(id)]
    id: String,
    host: u32,
    seats: u8,
}

/// A cached value (step 8): `#[derive(Cached)]` on any serde type.
#[derive(redis_state::Cached, serde::Serialize, serde::Deserialize, Debug, Clone)]
#[cache(key = "scoreboard:{period}", ttl = "5m", jitter = "10%")]
struct Scoreboard {
    period: String,
    top: Vec<u32>,
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("redis-state tour");
    let _server;
    let client = match std::env::var("REDIS_URL") {
        Ok(url) => {
            println!("using REDIS_URL={url}");
            redis::Client::open(url)?
        }
        Err(_) => {
            _server = RedisServer::start()?;
            println!("started a private redis-server on port {}", _server.port());
            _server.client()
        }
    };
    let mut con = client.get_connection()?;
    let ns = Namespace::new(format!("tour-{}", std::process::id()))?;

    step("1. #[derive(RedisHash)]: save, load, plain data");
    let p = Player {
        id: 1,
        nick: "ferris".into(),
        guild: Some("crabs".into()),
        gold: 10,
        version: 0,
    };
    p.save().namespace(&ns).run(&mut con)?;
    let raw: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(format!("{ns}:{}", p.key()))
        .query(&mut con)?;
    println!("stored as a plain hash: {raw:?}");
    println!(
        "loaded: {:?}",
        Player::load(&1).namespace(&ns).run(&mut con)?
    );

    step("2. Secondary indexes that cannot go stale");
    Player {
        id: 2,
        nick: "corro".into(),
        guild: Some("crabs".into()),
        gold: 0,
        version: 0,
    }
    .save()
    .namespace(&ns)
    .run(&mut con)?;
    let crabs = Player::find_by_guild("crabs")
        .namespace(&ns)
        .run(&mut con)?;
    println!(
        "guild crabs: {:?}",
        crabs.iter().map(|p| &p.nick).collect::<Vec<_>>()
    );
    Player::update(&2)
        .set(Player::GUILD, None)
        .namespace(&ns)
        .run(&mut con)?;
    let crabs = Player::find_by_guild("crabs")
        .namespace(&ns)
        .run(&mut con)?;
    println!(
        "after corro left: {:?}",
        crabs.iter().map(|p| &p.nick).collect::<Vec<_>>()
    );
    let dup = Player {
        id: 3,
        nick: "ferris".into(),
        guild: None,
        gold: 0,
        version: 0,
    };
    if let Err(e @ Error::UniqueViolation { .. }) = dup.save().namespace(&ns).run(&mut con) {
        println!("unique nick enforced: {e}");
    }

    step("3. Counters and optimistic locking");
    let gold = Player::increment_gold(&1, 25)
        .namespace(&ns)
        .run(&mut con)?;
    println!("gold after +25: {gold}");
    let current = Player::load(&1)
        .namespace(&ns)
        .run(&mut con)?
        .ok_or("missing")?;
    let stale = current.clone();
    current.save_versioned().namespace(&ns).run(&mut con)?;
    if let Err(e @ Error::VersionConflict { .. }) =
        stale.save_versioned().namespace(&ns).run(&mut con)
    {
        println!("second writer refused: {e}");
    }

    step("4. TTLs that no write loses");
    let lobby = Lobby {
        id: "l1".into(),
        host: 1,
        seats: 4,
    };
    lobby.save().namespace(&ns).run(&mut con)?;
    Lobby::update("l1")
        .set(Lobby::SEATS, 3u8)
        .namespace(&ns)
        .run(&mut con)?;
    if let Ttl::Expires(d) = Lobby::ttl("l1").namespace(&ns).run(&mut con)? {
        println!("lobby still expires in {}s after an update", d.as_secs());
    }

    step("5. Batches: several models, one round trip");
    let started = Instant::now();
    let (player, lobby, nobody) = batch((
        Player::load(&1).namespace(&ns),
        Lobby::load("l1").namespace(&ns),
        Player::load(&99).namespace(&ns),
    ))
    .run(&mut con)?;
    println!(
        "{} / {} seats / {:?} in {:?}",
        player.map(|p| p.nick).unwrap_or_default(),
        lobby.map(|l| l.seats).unwrap_or_default(),
        nobody,
        started.elapsed()
    );
    let lobbies: Vec<Lobby> = (0..1000)
        .map(|i| Lobby {
            id: format!("b{i}"),
            host: i,
            seats: 2,
        })
        .collect();
    let started = Instant::now();
    Lobby::save_many(&lobbies).namespace(&ns).run(&mut con)?;
    println!(
        "saved 1000 lobbies in one pipeline in {:?}",
        started.elapsed()
    );

    step("6. Hostile ids stay in their segment");
    for id in ["a:b", "{tag}", "*", "", "ünï"] {
        println!("id {id:?} -> key {:?}", Lobby::key_of(id));
    }

    step("7. The same operations on a Redis Cluster");
    let cluster = RedisCluster::start(3)?;
    let mut ccon = cluster.connection()?;
    Lobby::save_many(&lobbies).run(&mut ccon)?;
    let ids: Vec<String> = (0..1000).map(|i| format!("b{i}")).collect();
    let back = Lobby::load_many(&ids).run(&mut ccon)?;
    println!(
        "1000 lobbies over {} nodes, {} loaded back",
        cluster.nodes().len(),
        back.iter().flatten().count()
    );

    step("8. Caching: cache-aside with one loader call per miss");
    let scores = redis_state::cache::Cache::<Scoreboard>::new().namespace(&ns);
    let loads = std::sync::atomic::AtomicUsize::new(0);
    for _ in 0..3 {
        let board = scores.get_or_load(&mut con, &"daily".to_owned(), || {
            loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, String>(Some(Scoreboard {
                period: "daily".into(),
                top: vec![1, 2],
            }))
        })?;
        println!("scoreboard: {board:?}");
    }
    println!(
        "3 reads, {} load; entry: {:?}",
        loads.load(std::sync::atomic::Ordering::SeqCst),
        scores.key(&"daily".to_owned())
    );
    scores.invalidate(&"daily".to_owned()).run(&mut con)?;

    step("10. Coordination: a fenced lock, a rate limit, a session");
    let lock = redis_state::lock::Lock::new("tour").namespace(&ns);
    let fence = lock.scope(&mut con, |guard| guard.fence())?;
    println!("ran under {} with fencing token {fence}", lock.key());
    let limit = redis_state::ratelimit::SlidingWindow::new("tour", 2, Duration::from_secs(1))
        .namespace(&ns);
    let admitted: Vec<bool> = (0..3)
        .map(|_| limit.check("ferris").run(&mut con).map(|d| d.allowed))
        .collect::<Result<_, _>>()?;
    println!("3 requests against a limit of 2 per second: {admitted:?}");
    let sessions =
        redis_state::session::JsonSessions::<Vec<u32>>::new(Duration::from_secs(60)).namespace(&ns);
    let s = sessions.create(1, vec![7]).run(&mut con)?;
    println!(
        "session {} read back: {:?}",
        s.id,
        sessions.get(s.id.as_str()).run(&mut con)?.map(|s| s.data)
    );
    sessions.delete_all_for_user(&1).run(&mut con)?;
    redis_state::op::command::<i64>("DEL", lock.fence_key()).run(&mut con)?;

    step("9. Leaderboards: ties by time, rank modes, daily boards");
    {
        /// Fastest lap first; of two equal laps the earlier one ranks first;
        /// competition ranks (1-2-2-4); a daily board beside the all-time one.
        #[derive(Leaderboard, Debug, Clone)]
        #[leaderboard(
            key = "{{laps:{track}}}",
            order = "low_first",
            update = "keep_best",
            rank = "competition",
            tie_break = "earlier",
            max_score = 600_000,
            windows(daily = "2d")
        )]
        struct Lap {
            track: String,
            #[leaderboard(member)]
            driver: String,
            #[leaderboard(score)]
            millis: u32,
        }
        let start = chrono::Utc::now();
        for (i, (driver, millis)) in [("ann", 81_250), ("ben", 80_900), ("cat", 81_250)]
            .into_iter()
            .enumerate()
        {
            let lap = Lap {
                track: "monza".into(),
                driver: driver.into(),
                millis,
            };
            let at = start + chrono::Duration::seconds(i as i64);
            lap.submit().at(at).namespace(&ns).run(&mut con)?;
        }
        let board = Lap::board("monza").namespace(&ns).at(start);
        for e in board.clone().daily().top(3).run(&mut con)? {
            println!("today #{} {} {} ms", e.rank, e.member, e.score);
        }
        board.clone().daily().clear().run(&mut con)?;
        board.clear().run(&mut con)?;
    }

    // Clean up the namespace on a shared server.
    Lobby::delete_many(&ids).namespace(&ns).run(&mut con)?;
    for id in [1, 2] {
        Player::delete(&id).namespace(&ns).run(&mut con)?;
    }
    Lobby::delete("l1").namespace(&ns).run(&mut con)?;
    let _ = Duration::ZERO;
    println!("\ntour complete");
    Ok(())
}
