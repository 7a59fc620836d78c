//! # A tour of redis-state
//!
//! The demo: one program that walks through everything the library does
//! today, one numbered section per capability, each printing what it did
//! against a real server. It uses `REDIS_URL` if set, and otherwise starts
//! a private `redis-server` (plus a private Cluster and three servers for
//! Redlock, which always start), so it needs nothing but Redis 7 installed.
//!
//! The sections are the entries of `SECTIONS`, numbered in the order they
//! run: a new capability adds one function and one line there.
//!
//! Run it with `./scripts/demo` (installs Redis if needed) or
//! `cargo run --example tour`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis_state::cache::{
    Cache, CacheWaker, KeyPattern, LocalCache, LocalCacheOptions, QueuedWrite, Tag,
    WriteBehindWorker, invalidate_pattern, shutdown,
};
use redis_state::collections::{Feed, Presence, TagSet, TimeWindow};
use redis_state::lock::{Lock, LostReason};
use redis_state::prelude::*;
use redis_state::ratelimit::{FixedWindow, Gcra, SlidingWindow};
use redis_state::redlock::Redlock;
use redis_state::session::{HashSessions, IdFormat, JsonSessions};
use redis_state::testing::{RedisCluster, RedisServer};
use redis_state::tx::{Decision, Transaction};
use redis_state::value::{Counter, StringValue};
use redis_state::{Error, Ttl};
use serde::{Deserialize, Serialize};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// What every section works with.
struct Tour {
    client: redis::Client,
    url: String,
    con: redis::Connection,
    ns: Namespace,
    rt: tokio::runtime::Runtime,
}

/// One section: its title and what it runs.
type Section = (&'static str, fn(&mut Tour) -> Result);

/// The sections, in the order they run and are numbered.
const SECTIONS: &[Section] = &[
    ("#[derive(RedisHash)]: save, load, plain data", hash_models),
    ("Secondary indexes that cannot go stale", indexes),
    ("Counters and optimistic locking", counters),
    ("TTLs that no write loses", ttls),
    ("Batches: several models, one round trip", batches),
    ("Hostile ids stay in their segment", hostile_ids),
    ("The same operations on a Redis Cluster", cluster),
    ("Cache-aside: one loader call per miss", cache_aside),
    (
        "Write-through: the source first, then the cache",
        write_through,
    ),
    ("Write-behind: a durable queue and a worker", write_behind),
    (
        "Write-behind on a Cluster: one atomic step per bucket",
        write_behind_buckets,
    ),
    (
        "Invalidation: by entity event, tag and pattern",
        invalidation,
    ),
    (
        "Stampede across processes: one fill, the other waits",
        stampede,
    ),
    ("XFetch: a hot key refreshed before it expires", xfetch),
    ("A local cache the server keeps honest", local_cache),
    (
        "Leaderboards: ties by time, rank modes, daily boards",
        leaderboards,
    ),
    ("Locks: fencing tokens and a watchdog", locks),
    ("Redlock over independent servers", redlock),
    (
        "Rate limiters: fixed window, sliding log, GCRA",
        rate_limits,
    ),
    ("Sessions: the JSON layout and the hash layout", sessions),
    ("Plain values and counters that keep their TTL", values),
    (
        "Sharing keys with other clients: their layouts as options",
        sharing,
    ),
    ("Optimistic transactions", transactions),
    ("Typed Lua scripts", typed_scripts),
    ("Async: the same operation values, awaited", async_ops),
    (
        "Connections and errors: pools as they are, errors to act on",
        connections_and_errors,
    ),
    ("Feeds, time windows, tag sets and presence", collections),
    ("Typed pub/sub: channels as types", pubsub),
    (
        "Replicas: bounded connections and durable writes",
        topologies,
    ),
    (
        "Operations: server INFO and per-model statistics",
        operations,
    ),
    (
        "Streams: typed events, a consumer group, dead letters",
        streams,
    ),
    ("Job queues: leases, fenced completion, delays", queues),
];

fn main() -> Result {
    println!("redis-state tour");
    let started = Instant::now();
    let mut _server = None;
    let client = match std::env::var("REDIS_URL") {
        Ok(url) => {
            println!("using REDIS_URL={url}");
            redis::Client::open(url)?
        }
        Err(_) => {
            let server = RedisServer::start()?;
            println!("started a private redis-server on port {}", server.port());
            let client = server.client();
            _server = Some(server);
            client
        }
    };
    let url = client.get_connection_info().addr().to_string();
    let url = format!("redis://{url}/");
    let mut tour = Tour {
        con: client.get_connection()?,
        client,
        url,
        ns: Namespace::new(format!("tour-{}", std::process::id()))?,
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
    };
    for (i, (title, section)) in SECTIONS.iter().enumerate() {
        println!("\n== {}. {title}", i + 1);
        section(&mut tour)?;
    }
    cleanup(&mut tour)?;
    println!(
        "\ntour complete: {} sections in {:.1?}",
        SECTIONS.len(),
        started.elapsed()
    );
    Ok(())
}

// -- hash models ---------------------------------------------------------------

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

fn player(id: u32, nick: &str, guild: Option<&str>) -> Player {
    Player {
        id,
        nick: nick.into(),
        guild: guild.map(Into::into),
        gold: 0,
        version: 0,
    }
}

fn lobbies() -> Vec<Lobby> {
    (0..1000)
        .map(|i| Lobby {
            id: format!("b{i}"),
            host: i,
            seats: 2,
        })
        .collect()
}

fn hash_models(t: &mut Tour) -> Result {
    let p = Player {
        gold: 10,
        ..player(1, "ferris", Some("crabs"))
    };
    p.save().namespace(&t.ns).run(&mut t.con)?;
    let raw: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(format!("{}:{}", t.ns, p.key()))
        .query(&mut t.con)?;
    println!("stored as a plain hash: {raw:?}");
    let back = Player::load(&1).namespace(&t.ns).run(&mut t.con)?;
    println!("loaded: {back:?}");
    Ok(())
}

fn indexes(t: &mut Tour) -> Result {
    player(2, "corro", Some("crabs"))
        .save()
        .namespace(&t.ns)
        .run(&mut t.con)?;
    let nicks = |ps: Vec<Player>| ps.into_iter().map(|p| p.nick).collect::<Vec<_>>();
    let crabs = Player::find_by_guild("crabs")
        .namespace(&t.ns)
        .run(&mut t.con)?;
    println!("guild crabs: {:?}", nicks(crabs));
    Player::update(&2)
        .set(Player::GUILD, None)
        .namespace(&t.ns)
        .run(&mut t.con)?;
    let crabs = Player::find_by_guild("crabs")
        .namespace(&t.ns)
        .run(&mut t.con)?;
    println!("after corro left: {:?}", nicks(crabs));
    let dup = player(3, "ferris", None);
    if let Err(e @ Error::UniqueViolation { .. }) = dup.save().namespace(&t.ns).run(&mut t.con) {
        println!("unique nick enforced: {e}");
    }
    Ok(())
}

fn counters(t: &mut Tour) -> Result {
    let gold = Player::increment_gold(&1, 25)
        .namespace(&t.ns)
        .run(&mut t.con)?;
    println!("gold after +25: {gold}");
    let current = Player::load(&1)
        .namespace(&t.ns)
        .run(&mut t.con)?
        .ok_or("player 1 is missing")?;
    let stale = current.clone();
    current.save_versioned().namespace(&t.ns).run(&mut t.con)?;
    if let Err(e @ Error::VersionConflict { .. }) =
        stale.save_versioned().namespace(&t.ns).run(&mut t.con)
    {
        println!("second writer refused: {e}");
    }
    Ok(())
}

fn ttls(t: &mut Tour) -> Result {
    let lobby = Lobby {
        id: "l1".into(),
        host: 1,
        seats: 4,
    };
    lobby.save().namespace(&t.ns).run(&mut t.con)?;
    Lobby::update("l1")
        .set(Lobby::SEATS, 3u8)
        .namespace(&t.ns)
        .run(&mut t.con)?;
    if let Ttl::Expires(d) = Lobby::ttl("l1").namespace(&t.ns).run(&mut t.con)? {
        println!("lobby still expires in {}s after an update", d.as_secs());
    }
    Ok(())
}

fn batches(t: &mut Tour) -> Result {
    let (player, lobby, nobody) = batch((
        Player::load(&1).namespace(&t.ns),
        Lobby::load("l1").namespace(&t.ns),
        Player::load(&99).namespace(&t.ns),
    ))
    .run(&mut t.con)?;
    println!(
        "one round trip: {} / {} seats / {:?}",
        player.map(|p| p.nick).unwrap_or_default(),
        lobby.map(|l| l.seats).unwrap_or_default(),
        nobody
    );
    let started = Instant::now();
    Lobby::save_many(&lobbies())
        .namespace(&t.ns)
        .run(&mut t.con)?;
    println!(
        "saved 1000 lobbies in one pipeline in {:?}",
        started.elapsed()
    );
    Ok(())
}

fn hostile_ids(_: &mut Tour) -> Result {
    for id in ["a:b", "{tag}", "*", "", "ünï"] {
        println!("id {id:?} -> key {:?}", Lobby::key_of(id));
    }
    Ok(())
}

fn cluster(_: &mut Tour) -> Result {
    let cluster = RedisCluster::start(3)?;
    let mut con = cluster.connection()?;
    Lobby::save_many(&lobbies()).run(&mut con)?;
    let ids: Vec<String> = (0..1000).map(|i| format!("b{i}")).collect();
    let back = Lobby::load_many(&ids).run(&mut con)?;
    println!(
        "1000 lobbies over {} nodes, {} loaded back",
        cluster.nodes().len(),
        back.iter().flatten().count()
    );
    Ok(())
}

// -- caching -------------------------------------------------------------------

/// A cached value: `#[derive(Cached)]` on any serde type.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(
    key = "scoreboard:{period}",
    ttl = "5m",
    jitter = "10%",
    tag = "season:{season}"
)]
struct Scoreboard {
    period: String,
    season: u32,
    top: Vec<u32>,
}

fn scoreboard(period: &str) -> Scoreboard {
    Scoreboard {
        period: period.into(),
        season: 1,
        top: vec![1, 2],
    }
}

fn cache_aside(t: &mut Tour) -> Result {
    let boards = Cache::<Scoreboard>::new().namespace(&t.ns);
    let loads = AtomicUsize::new(0);
    let load = || {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(Some(scoreboard("daily")))
    };
    for _ in 0..3 {
        boards.get_or_load(&mut t.con, &"daily".to_owned(), load)?;
    }
    println!("3 reads, {} load", loads.load(Ordering::SeqCst));
    // 16 threads miss one key at once: still one loader call.
    let before = loads.load(Ordering::SeqCst);
    std::thread::scope(|s| {
        for _ in 0..16 {
            let (boards, client, load) = (&boards, &t.client, &load);
            s.spawn(move || {
                let mut con = client.get_connection().expect("connection");
                boards
                    .get_or_load(&mut con, &"weekly".to_owned(), load)
                    .expect("read");
            });
        }
    });
    println!(
        "16 concurrent misses of one key -> {} loader call",
        loads.load(Ordering::SeqCst) - before
    );
    let raw: String = redis::cmd("GET")
        .arg(boards.key(&"daily".to_owned()))
        .query(&mut t.con)?;
    println!("stored: {raw:?}");
    Ok(())
}

fn write_through(t: &mut Tour) -> Result {
    let boards = Cache::<Scoreboard>::new().namespace(&t.ns);
    let database = std::sync::Mutex::new(Vec::new());
    let save = |b: &Scoreboard| {
        let ok = !b.top.is_empty();
        if ok {
            database.lock().expect("database").push(b.clone());
        }
        async move {
            if ok {
                Ok(())
            } else {
                Err("an empty board".to_owned())
            }
        }
    };
    let monthly = scoreboard("monthly");
    t.rt.block_on(async {
        let mut con = t.client.get_multiplexed_async_connection().await?;
        boards.write_through_async(&mut con, &monthly, save).await?;
        let empty = Scoreboard {
            top: vec![],
            ..monthly.clone()
        };
        let refused = boards.write_through_async(&mut con, &empty, save).await;
        println!(
            "source refused an empty board: {}",
            refused.err().map(|e| e.to_string()).unwrap_or_default()
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    println!(
        "database rows: {}, cache: {:?}",
        database.lock().expect("database").len(),
        boards.get(&"monthly".to_owned()).run(&mut t.con)?
    );
    Ok(())
}

fn write_behind(t: &mut Tour) -> Result {
    let boards = Cache::<Scoreboard>::new().namespace(&t.ns);
    for period in ["q1", "q2", "q3"] {
        let entry = boards
            .write_behind(&period.to_owned(), &scoreboard(period))
            .run(&mut t.con)?;
        println!("cached {period} at once, queued as stream entry {entry}");
    }
    let stored = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler = {
        let stored = stored.clone();
        move |w: QueuedWrite<Scoreboard>| {
            let stored = stored.clone();
            async move {
                stored.lock().expect("database").push(w.value.period);
                Ok::<_, String>(())
            }
        }
    };
    let worker = WriteBehindWorker::new(&boards, "tour-worker");
    let stats = t.rt.block_on(async {
        // The worker blocks on its stream: it gets a connection of its own.
        let mut worker_con = t.client.get_multiplexed_async_connection().await?;
        let (trigger, stop) = shutdown();
        let task =
            tokio::spawn(async move { worker.process_async(&mut worker_con, stop, handler).await });
        let deadline = Instant::now() + Duration::from_secs(10);
        while stored.lock().expect("database").len() < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        trigger.fire();
        Ok::<_, Box<dyn std::error::Error>>(task.await??)
    })?;
    println!(
        "the worker stored {:?} in the database ({stats:?})",
        stored.lock().expect("database")
    );
    Ok(())
}

/// A cached type in the bucketed layout: each entry key carries the hash
/// tag of one of 8 buckets, and each bucket has its write-behind queue in
/// that tag, so on a Cluster the append and the entry are one script.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "order_view:{id}", ttl = "10m", buckets = 8)]
struct OrderView {
    id: u64,
    total: u64,
}

fn write_behind_buckets(t: &mut Tour) -> Result {
    let cluster = RedisCluster::start(3)?;
    let mut con = cluster.connection()?;
    let orders = Cache::<OrderView>::new().namespace(&t.ns);
    for id in 1..=40u64 {
        orders
            .write_behind(&id, &OrderView { id, total: id * 10 })
            .run(&mut con)?;
    }
    let worker = WriteBehindWorker::new(&orders, "tour-bucket-worker");
    println!(
        "40 writes, each one atomic script: {} queued over {} bucket queues",
        worker.depth().run(&mut con)?,
        worker.streams().len()
    );
    let stored = std::sync::Arc::new(AtomicUsize::new(0));
    let handler = {
        let stored = stored.clone();
        move |_w: QueuedWrite<OrderView>| {
            let stored = stored.clone();
            async move {
                stored.fetch_add(1, Ordering::Relaxed);
                Ok::<_, String>(())
            }
        }
    };
    let drained = worker.clone();
    let stats = t.rt.block_on(async {
        let mut worker_con = cluster.async_connection().await?;
        let (trigger, stop) = shutdown();
        let task =
            tokio::spawn(
                async move { drained.process_async(&mut worker_con, stop, handler).await },
            );
        let deadline = Instant::now() + Duration::from_secs(10);
        while stored.load(Ordering::Relaxed) < 40 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        trigger.fire();
        Ok::<_, Box<dyn std::error::Error>>(task.await??)
    })?;
    println!(
        "one worker drained every bucket: {} written to the source ({stats:?}), {} left queued",
        stored.load(Ordering::Relaxed),
        worker.depth().run(&mut con)?
    );
    Ok(())
}

#[derive(RedisHash, Debug, Clone)]
#[redis(key = "{{products}}:{id}", invalidates(ProductView = "id"))]
struct Product {
    #[redis(id)]
    id: u64,
    name: String,
}

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "product_view:{id}", ttl = "10m")]
struct ProductView {
    id: u64,
    title: String,
}

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "page:{user}:{page}", ttl = "10m")]
struct Page {
    user: String,
    page: String,
}

fn invalidation(t: &mut Tour) -> Result {
    // Event: the entity declares which cached views depend on it.
    let views = Cache::<ProductView>::new().namespace(&t.ns);
    let lamp = ProductView {
        id: 1,
        title: "LAMP".into(),
    };
    views.set(&1, &lamp).run(&mut t.con)?;
    Product {
        id: 1,
        name: "desk lamp".into(),
    }
    .save()
    .namespace(&t.ns)
    .run(&mut t.con)?;
    println!(
        "view after the product was saved: {:?}",
        views.get(&1).run(&mut t.con)?
    );
    // Tag: every board of season 1, without SCAN.
    let boards = Cache::<Scoreboard>::new().namespace(&t.ns);
    boards
        .set(&"daily".to_owned(), &scoreboard("daily"))
        .run(&mut t.con)?;
    let n = boards
        .invalidate_tag(&Tag::new("season:").value(&1u32))
        .run(&mut t.con)?;
    println!("tag season:1 dropped {n} entries");
    // Pattern: SCAN on every primary, user values escaped.
    let pages = Cache::<Page>::new().namespace(&t.ns);
    for (user, page) in [("42", "home"), ("42", "settings"), ("4*2", "home")] {
        let p = Page {
            user: user.into(),
            page: page.into(),
        };
        pages
            .set(&(user.to_owned(), page.to_owned()), &p)
            .run(&mut t.con)?;
    }
    for user in ["42", "4*2"] {
        let pattern = KeyPattern::entries_of::<Page, _>(Some(&t.ns), &user.to_owned());
        println!(
            "pattern {} dropped {}",
            pattern.as_str(),
            invalidate_pattern(&mut t.con, &pattern)?
        );
    }
    Ok(())
}

fn stampede(t: &mut Tour) -> Result {
    // Two Caches stand for two processes: no shared memory, only Redis. A
    // fills slowly; B misses meanwhile, waits for A's fill (woken by
    // pub/sub), and never calls its loader.
    let loads = AtomicUsize::new(0);
    let (a, b) = t.rt.block_on(async {
        let waker = CacheWaker::connect_async(&t.url).await?;
        let process_a = Cache::<Scoreboard>::new().namespace(&t.ns);
        let process_b = Cache::<Scoreboard>::new()
            .namespace(&t.ns)
            .with_waker(waker);
        let mut con_a = t.client.get_multiplexed_async_connection().await?;
        let mut con_b = t.client.get_multiplexed_async_connection().await?;
        let key = "yearly".to_owned();
        let loads = &loads;
        let a = process_a.get_or_load_async(&mut con_a, &key, || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, String>(Some(scoreboard("yearly")))
        });
        let b = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let started = Instant::now();
            let v = process_b
                .get_or_load_async(&mut con_b, &key, || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(Some(scoreboard("yearly")))
                })
                .await;
            (v, started.elapsed())
        };
        let (a, (b, waited)) = tokio::join!(a, b);
        println!("process B waited {waited:?} for process A's fill");
        Ok::<_, Box<dyn std::error::Error>>((a?, b?))
    })?;
    println!(
        "both got the board: {}, loader calls: {}",
        a == b && a.is_some(),
        loads.load(Ordering::SeqCst)
    );
    Ok(())
}

/// A short TTL and an eager β, so that the early refresh shows within a
/// second.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "hot:{name}", ttl = "1s", beta = 8)]
struct Hot {
    name: String,
    computed: u32,
}

fn xfetch(t: &mut Tour) -> Result {
    let hot = Cache::<Hot>::new().namespace(&t.ns);
    let key = "front-page".to_owned();
    let mut probe = t.client.get_connection()?;
    let entry_key = hot.key(&key);
    let computed = AtomicUsize::new(0);
    // The loader notes how long the entry it replaces still had to live.
    let mut early = None;
    let deadline = Instant::now() + Duration::from_secs(3);
    while early.is_none() && Instant::now() < deadline {
        hot.get_or_load(&mut t.con, &key, || {
            let left: i64 = redis::cmd("PTTL")
                .arg(&entry_key)
                .query(&mut probe)
                .unwrap_or(-2);
            let n = computed.fetch_add(1, Ordering::SeqCst) as u32;
            if n > 0 && left > 0 {
                early = Some(left);
            }
            std::thread::sleep(Duration::from_millis(40)); // a slow computation
            Ok::<_, String>(Some(Hot {
                name: "front-page".into(),
                computed: n,
            }))
        })?;
        std::thread::sleep(Duration::from_millis(5));
    }
    let entry = hot.entry(&key).run(&mut t.con)?;
    println!(
        "entry remembers its computation took {:?}",
        entry.map(|e| e.delta).unwrap_or_default()
    );
    match early {
        Some(ms) => println!("recomputed early, {ms} ms before the entry would have expired"),
        None => println!("no early refresh within 3 s this time (it is random by design)"),
    }
    Ok(())
}

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "config:{name}", ttl = "1h")]
struct Setting {
    name: String,
    value: String,
}

fn local_cache(t: &mut Tour) -> Result {
    t.rt.block_on(async {
        let prefix = format!("{}:config:", t.ns);
        let local =
            LocalCache::connect_async(&t.url, &[&prefix], LocalCacheOptions::default()).await?;
        let settings = Cache::<Setting>::new()
            .namespace(&t.ns)
            .with_local(local.clone());
        let mut con = t.client.get_multiplexed_async_connection().await?;
        let name = "feature-x".to_owned();
        let flag = Setting {
            name: name.clone(),
            value: "on".into(),
        };
        settings.set(&name, &flag).run_async(&mut con).await?;
        let never = || async { Err::<Option<Setting>, String>("not needed".into()) };
        // Our own write's invalidation arrives first; then a read is kept.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !local.contains(&settings.key(&name)) && Instant::now() < deadline {
            settings.get_or_load_async(&mut con, &name, never).await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let started = Instant::now();
        for _ in 0..10_000 {
            settings.get_or_load_async(&mut con, &name, never).await?;
        }
        println!(
            "10,000 reads served from process memory in {:?}",
            started.elapsed()
        );
        // Another client writes: the server pushes an invalidation.
        let mut other = t.client.get_multiplexed_async_connection().await?;
        let off = Setting {
            value: "off".into(),
            ..flag
        };
        settings.set(&name, &off).run_async(&mut other).await?;
        let written = Instant::now();
        while local.contains(&settings.key(&name)) && written.elapsed() < Duration::from_secs(5) {
            tokio::task::yield_now().await;
        }
        println!(
            "a write elsewhere dropped the local copy after {:?}; next read: {:?}",
            written.elapsed(),
            settings
                .get_or_load_async(&mut con, &name, never)
                .await?
                .map(|s| s.value)
        );
        println!("{:?}", local.stats());
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

// -- leaderboards --------------------------------------------------------------

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

fn leaderboards(t: &mut Tour) -> Result {
    let start = chrono::Utc::now();
    let laps = [("ann", 81_250), ("ben", 80_900), ("cat", 81_250)];
    for (i, (driver, millis)) in laps.into_iter().enumerate() {
        let lap = Lap {
            track: "monza".into(),
            driver: driver.into(),
            millis,
        };
        let at = start + chrono::Duration::seconds(i as i64);
        lap.submit().at(at).namespace(&t.ns).run(&mut t.con)?;
    }
    let board = Lap::board("monza").namespace(&t.ns).at(start);
    for e in board.clone().daily().top(3).run(&mut t.con)? {
        println!("today #{} {} {} ms", e.rank, e.member, e.score);
    }
    board.clone().daily().clear().run(&mut t.con)?;
    board.clear().run(&mut t.con)?;
    Ok(())
}

// -- coordination --------------------------------------------------------------

fn locks(t: &mut Tour) -> Result {
    let lock = Lock::new("tour").namespace(&t.ns);
    let fence = lock.scope(&mut t.con, |guard| guard.fence())?;
    let again = lock.scope(&mut t.con, |guard| guard.fence())?;
    println!(
        "ran twice under {} with fencing tokens {fence} then {again}",
        lock.key()
    );
    t.rt.block_on(async {
        let con = t.client.get_multiplexed_async_connection().await?;
        let job = Lock::new("tour-job")
            .namespace(&t.ns)
            .ttl(Duration::from_millis(200));
        let held = job.acquire_watched_async(&con).await?;
        tokio::time::sleep(Duration::from_millis(300)).await; // > 1 TTL
        println!(
            "after 300 ms (TTL 200 ms) the watched lock is lost? {}",
            held.loss().is_lost()
        );
        let mut raw = con.clone();
        redis_state::op::command::<i64>("DEL", job.key())
            .run_async(&mut raw)
            .await?;
        let reason = held.loss().lost_async().await;
        println!("someone deleted the key; the watchdog reports: {reason}");
        assert_eq!(reason, LostReason::Expired);
        for key in [job.fence_key(), lock.fence_key()] {
            redis_state::op::command::<i64>("DEL", key)
                .run_async(&mut raw)
                .await?;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

fn redlock(_: &mut Tour) -> Result {
    let mut servers = (0..3)
        .map(|_| RedisServer::start())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let redlock = Redlock::new(servers.iter().map(RedisServer::client))?
        .ttl(Duration::from_secs(10))
        .retry(1, Duration::from_millis(50))
        .instance_timeout(Duration::from_millis(50));
    let lease = redlock.lock("report")?.ok_or("all servers are up")?;
    println!(
        "locked on {} of {} servers, valid for {:?}",
        lease.acquired_on(),
        servers.len(),
        lease.validity()
    );
    let other = Redlock::new(servers.iter().map(RedisServer::client))?.retry(0, Duration::ZERO);
    println!(
        "a second client gets it too? {}",
        other.lock("report")?.is_some()
    );
    redlock.unlock(&lease)?;
    servers[0].stop();
    let lease = redlock.lock("report")?.ok_or("2 of 3 is a majority")?;
    println!("one server down: locked on {}", lease.acquired_on());
    redlock.unlock(&lease)?;
    Ok(())
}

fn rate_limits(t: &mut Tour) -> Result {
    let show = |what: &str, allowed: Vec<bool>| println!("{what}: {allowed:?}");
    let fixed = FixedWindow::new("tour-login", 2, Duration::from_secs(60)).namespace(&t.ns);
    let sliding = SlidingWindow::new("tour-api", 2, Duration::from_secs(1)).namespace(&t.ns);
    let gcra = Gcra::new("tour-upload", 10, Duration::from_secs(1))
        .burst(2)
        .namespace(&t.ns);
    let mut allowed = Vec::new();
    for _ in 0..3 {
        allowed.push(fixed.check("ferris").run(&mut t.con)?.allowed);
    }
    show("fixed window, 3 logins against 2 a minute", allowed);
    let mut allowed = Vec::new();
    for _ in 0..3 {
        allowed.push(sliding.check("ferris").run(&mut t.con)?.allowed);
    }
    show("sliding log, 3 calls against 2 in any second", allowed);
    let mut allowed = Vec::new();
    for _ in 0..3 {
        allowed.push(gcra.check("ferris").run(&mut t.con)?.allowed);
    }
    show("GCRA, 3 uploads against a burst of 2", allowed);
    let denied = gcra.check("ferris").run(&mut t.con)?;
    println!(
        "GCRA says retry after {:?} (10 per second sustained)",
        denied.retry_after
    );
    Ok(())
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Cart {
    items: Vec<u32>,
    theme: String,
}

fn sessions(t: &mut Tour) -> Result {
    let json = JsonSessions::<Cart, u64>::new(Duration::from_secs(60)).namespace(&t.ns);
    let cart = Cart {
        items: vec![7],
        theme: "light".into(),
    };
    let s = json.create(1, cart.clone()).run(&mut t.con)?;
    let raw: String = redis::cmd("GET")
        .arg(format!("{}:session:{}", t.ns, s.id))
        .query(&mut t.con)
        .unwrap_or_default();
    println!("JSON session {}: {raw}", s.id);
    let hashes = HashSessions::<Cart, u64>::new(Duration::from_secs(60)).namespace(&t.ns);
    let h = hashes.create(2, cart).run(&mut t.con)?;
    hashes
        .set_field(h.id.as_str(), "theme", "dark")
        .run(&mut t.con)?;
    let theme: Option<String> = hashes.get_field(h.id.as_str(), "theme").run(&mut t.con)?;
    println!("hash session {}: one field changed, theme {theme:?}", h.id);
    let n = json.delete_all_for_user(&1).run(&mut t.con)?;
    let m = hashes.delete_all_for_user(&2).run(&mut t.con)?;
    println!("logged users 1 and 2 out everywhere: {n} and {m} sessions");
    Ok(())
}

fn values(t: &mut Tour) -> Result {
    let motd = StringValue::<String>::new("motd").namespace(&t.ns);
    motd.set(&"welcome".to_owned())
        .ttl(Duration::from_secs(60))
        .run(&mut t.con)?;
    motd.set(&"welcome back".to_owned()).run(&mut t.con)?;
    println!(
        "{}: {:?}, TTL kept: {:?}",
        motd.key(),
        motd.get().run(&mut t.con)?,
        motd.ttl().run(&mut t.con)?
    );
    let quota = Counter::<i64>::new("quota:ferris").namespace(&t.ns);
    for _ in 0..3 {
        quota
            .incr(1)
            .ttl(Duration::from_secs(3600))
            .run(&mut t.con)?;
    }
    println!(
        "a quota counted 3 times, its window opened by the first: {:?}",
        quota.ttl().run(&mut t.con)?
    );
    let first = motd.get_or_set(&"ignored".to_owned()).run(&mut t.con)?;
    println!("get-or-set found {first:?} (one SET NX GET)");
    Ok(())
}

fn sharing(t: &mut Tour) -> Result {
    // The keys other clients use have no namespace: the tour's name keeps
    // them apart, and they are removed at the end of the section.
    let run = t.ns.as_str().to_owned();
    let lock = Lock::new(format!("{run}:resource:123")).verbatim_keys("lock:");
    let guard = lock.try_acquire().run(&mut t.con)?.ok_or("free")?;
    println!(
        "a redis-py RedisLock on the same name waits: {} = {}",
        lock.key(),
        guard.token()
    );
    guard.release().run(&mut t.con)?;
    let api = FixedWindow::new("api", 2, Duration::from_secs(60))
        .count_all_requests()
        .verbatim_keys("rate_limit:");
    let subject = format!("{run}-7");
    let mut allowed = Vec::new();
    for _ in 0..3 {
        allowed.push(api.check(subject.as_str()).run(&mut t.con)?.allowed);
    }
    println!("rate_limit:{subject}, every request counted: {allowed:?}");
    let sessions = JsonSessions::<Cart, u64>::new(Duration::from_secs(60))
        .id_format(IdFormat::Uuid4)
        .user_index(false);
    let s = sessions
        .create(
            7,
            Cart {
                items: vec![1],
                theme: "dark".into(),
            },
        )
        .run(&mut t.con)?;
    println!(
        "session:{} (uuid4, no index), as SessionManager writes it",
        s.id
    );
    sessions.delete(s.id.as_str()).run(&mut t.con)?;
    for key in [lock.fence_key().to_owned(), format!("rate_limit:{subject}")] {
        redis::cmd("DEL").arg(key).query::<i64>(&mut t.con)?;
    }
    Ok(())
}

fn transactions(t: &mut Tour) -> Result {
    use redis_state::op::{CommandOp, command};
    let get = |key: &str| -> CommandOp<Option<i64>> { command("GET", key) };
    let set = |key: &str, v: i64| -> CommandOp<()> { command("SET", key).arg(v) };
    let (alice, bob) = (
        format!("{}:credits:alice", t.ns),
        format!("{}:credits:bob", t.ns),
    );
    set(&alice, 100).run(&mut t.con)?;
    let transfer = |con: &mut redis::Connection, amount: i64| {
        Transaction::new(&[alice.as_str(), bob.as_str()]).perform(
            con,
            || batch((get(&alice), get(&bob))),
            |(a, b)| {
                let (a, b) = (a.unwrap_or(0), b.unwrap_or(0));
                if a < amount {
                    return Ok(Decision::Abort(false));
                }
                Ok(Decision::Commit(
                    batch((set(&alice, a - amount), set(&bob, b + amount))),
                    true,
                ))
            },
        )
    };
    println!(
        "WATCH/MULTI/EXEC transfer of 30: {}",
        transfer(&mut t.con, 30)?
    );
    println!("transfer of 500: {}", transfer(&mut t.con, 500)?);
    let (a, b) = batch((get(&alice), get(&bob))).run(&mut t.con)?;
    println!("balances: alice {a:?}, bob {b:?}");
    redis_state::op::command::<i64>("DEL", &alice)
        .arg(&bob)
        .run(&mut t.con)?;
    Ok(())
}

redis_state::script! {
    pub struct Transfer {
        name: "tour.transfer",
        keys: [from, to],
        args: [amount: i64],
        returns: Option<(i64, i64)>,
        lua: r#"
            local have = tonumber(redis.call('GET', KEYS[1]) or '0')
            if have < tonumber(ARGV[1]) then return false end
            return {redis.call('DECRBY', KEYS[1], ARGV[1]),
                    redis.call('INCRBY', KEYS[2], ARGV[1])}
        "#,
    }
}

fn typed_scripts(t: &mut Tour) -> Result {
    let (alice, bob) = ("{bank}:alice", "{bank}:bob");
    redis_state::op::command::<()>("SET", format!("{}:{alice}", t.ns))
        .arg(100)
        .run(&mut t.con)?;
    let (moved, refused) = batch((
        Transfer::new(alice, bob, 30).namespace(&t.ns),
        Transfer::new(alice, bob, 500).namespace(&t.ns),
    ))
    .run(&mut t.con)?;
    println!("two script calls, one round trip: {moved:?}, {refused:?}");
    match Transfer::new("alice", "bob", 1)
        .namespace(&t.ns)
        .run(&mut t.con)
    {
        Err(e) => println!("keys in two slots refused before sending: {e}"),
        Ok(v) => println!("unexpected: {v:?}"),
    }
    redis_state::op::command::<i64>("DEL", format!("{}:{alice}", t.ns))
        .arg(format!("{}:{bob}", t.ns))
        .run(&mut t.con)?;
    Ok(())
}

fn async_ops(t: &mut Tour) -> Result {
    let ns = t.ns.clone();
    t.rt.block_on(async {
        let mut con = t.client.get_multiplexed_async_connection().await?;
        // The same operation values, awaited; several at once on one
        // multiplexed connection.
        let (mut a, mut b) = (con.clone(), con.clone());
        let (one, two) = tokio::join!(
            Player::load(&1).namespace(&ns).run_async(&mut a),
            Player::load(&2).namespace(&ns).run_async(&mut b),
        );
        println!(
            "two loads awaited together: {:?}, {:?}",
            one?.map(|p| p.nick),
            two?.map(|p| p.nick)
        );
        let lobbies = Lobby::load_many(&["b1".to_owned(), "b2".to_owned()])
            .namespace(&ns)
            .run_async(&mut con)
            .await?;
        println!(
            "load_many awaited: {} found",
            lobbies.iter().flatten().count()
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

fn connections_and_errors(t: &mut Tour) -> Result {
    let ns = t.ns.clone();
    let url = t.url.clone();
    let pool_url = url.clone();
    t.rt.block_on(async {
        // A deadpool-redis pooled connection (feature `deadpool`), as is.
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
        let mut pooled = pool.get().await?;
        let one = Player::load(&1)
            .namespace(&ns)
            .run_async(&mut pooled)
            .await?;
        println!("loaded through a pool: {:?}", one.map(|p| p.nick));
        // A pool built from a ConnectionOptions: bounded checkout, PING on
        // checkout, retries and a circuit breaker per operation.
        let mut configured =
            redis_state::connect::ConnectionOptions::new().deadpool(pool_url.as_str(), 4)?;
        let two = Player::load(&1)
            .namespace(&ns)
            .run_async(&mut configured)
            .await?;
        println!("and through a configured pool: {:?}", two.map(|p| p.nick));
        // A key of another type: the server's error, naming what failed.
        let key = format!("{ns}:{{player}}:77");
        let () = redis::cmd("RPUSH")
            .arg(&key)
            .arg("x")
            .query_async::<i64>(&mut *pooled)
            .await
            .map(drop)?;
        let err = Player::load(&77)
            .namespace(&ns)
            .run_async(&mut pooled)
            .await
            .unwrap_err();
        println!("{err}");
        println!(
            "kind: {}, retryable: {}, keys: {:?}",
            err.kind(),
            err.is_retryable(),
            err.keys()
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

fn topologies(t: &mut Tour) -> Result {
    use redis_state::connect::{ConnectionOptions, durable};
    use redis_state::testing::ReplicaSet;
    // A primary and one replica of our own (the tour's server may be
    // shared), over TLS: clients and replication, one generated CA.
    let set = ReplicaSet::start_with(&RedisServer::builder().tls(), 1)?;
    let url = set.nodes()[0].tls_url().ok_or("no TLS port")?;
    let ca = set.nodes()[0].ca_cert().ok_or("no CA")?;
    let ns = t.ns.clone();
    t.rt.block_on(async {
        // Timeouts, keepalive, bounded retries, a circuit breaker; a
        // connection that reconnects after CLIENT KILL or a restart.
        // WAIT below waits up to 5 s, inside the response timeout. The
        // same options open TLS Sentinel and TLS Cluster connections.
        let options = ConnectionOptions::new()
            .response_timeout(Duration::from_secs(10))
            .tls_root_cert(ca);
        println!("worst case for one operation: {:?}", options.worst_case());
        let mut con = options.connect_async(url.as_str()).await?; // rediss://
        let player = Player {
            id: 7,
            nick: "replicated".into(),
            guild: None,
            gold: 1,
            version: 0,
        };
        // WAIT 1 in the same round trip: how many replicas have the write.
        let (_, acked) = durable(player.save().namespace(&ns), 1, Duration::from_secs(5))
            .run_async(&mut con)
            .await?;
        println!("saved, acknowledged by {acked} replica");
        let back = Player::load(&7).namespace(&ns).run_async(&mut con).await?;
        println!("read back: {:?}", back.map(|p| p.nick));
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

fn operations(t: &mut Tour) -> Result {
    use redis_state::monitor::{self, stats};
    // INFO of every primary, typed; one operation on any topology.
    for (node, info) in monitor::info().run(&mut t.con)? {
        println!(
            "{node}: {} bytes used, {} keys",
            info.memory.used_memory.unwrap_or(0),
            info.total_keys()
        );
    }
    // Entities, memory and index health of the tour's players.
    let catalog = stats::Catalog::new().namespace(&t.ns).hash::<Player>();
    for s in catalog.stats(&mut t.con, &stats::StatsOptions::default())? {
        let orphans: u64 = s.indexes.iter().map(|i| i.orphans).sum();
        println!(
            "{}: {} entities, ~{} bytes, {} index entries, {orphans} orphans",
            s.name,
            s.keys,
            s.memory.estimated_bytes,
            s.indexes.iter().map(|i| i.entries).sum::<u64>()
        );
    }
    // A queue's backlog as a dashboard polls it (`redis-state queues` on
    // the command line); with feature `metrics` the read sets gauges.
    let name = format!("{}-ops-jobs", t.ns);
    let q = redis_state::queue::Queue::<String>::new(&name);
    for job in ["invoice", "receipt", "reminder"] {
        q.push(&job.to_owned()).run(&mut t.con)?;
    }
    let taken = q.take().run(&mut t.con)?.ok_or("a job")?;
    let d = q.depth().run(&mut t.con)?;
    println!(
        "queue {name}: {} ready, {} active ({}), {} dead, lag {} ms",
        d.ready,
        d.active,
        taken.data,
        d.dead,
        d.lag.as_millis()
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("queue:{{{name}}}:*"))
        .query(&mut t.con)?;
    if !keys.is_empty() {
        let () = redis::cmd("DEL")
            .arg(&keys)
            .query::<i64>(&mut t.con)
            .map(drop)?;
    }
    Ok(())
}

// -- streams and queues --------------------------------------------------------

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "tour_event:{id}")]
struct Shipped {
    #[redis(id)]
    id: u64,
    parcels: u32,
}

fn streams(t: &mut Tour) -> Result {
    use redis_state::stream::{ConsumerOptions, Effect, Retention, Stream};
    let events = Stream::<Shipped>::new(
        format!("{}:{{tour-events}}", t.ns),
        Retention::max_len(1_000),
    );
    redis_state::many((1..=3).map(|id| {
        events.add(&Shipped {
            id,
            parcels: id as u32,
        })
    }))
    .run(&mut t.con)?;
    let sum_key = format!("{}:{{tour-events}}:parcels", t.ns);
    let mut options = ConsumerOptions::default();
    options.max_attempts = 1;
    let consumer = events.group("shipping").consumer("tour")?.options(options);
    let (stop, shutdown) = redis_state::cache::shutdown();
    let stats = consumer.run(&mut t.con, &shutdown, |d| {
        if d.event.id == 3 {
            stop.fire();
        }
        if d.event.id == 2 {
            return Err("carrier unknown".to_owned());
        }
        Ok(Effect::new().command("INCRBY", &sum_key, d.event.parcels))
    })?;
    let parcels: u32 = redis::cmd("GET").arg(&sum_key).query(&mut t.con)?;
    println!(
        "{}: {} done, {} dead-lettered, {parcels} parcels counted once",
        consumer.name(),
        stats.done,
        stats.dead
    );
    Ok(())
}

fn queues(t: &mut Tour) -> Result {
    use redis_state::queue::{Queue, QueueOptions};
    let name = format!("{}-jobs", t.ns);
    let mut options = QueueOptions::default();
    options.lease = Duration::from_millis(50);
    let q = Queue::<String>::new(&name).options(options);
    q.push(&"low".to_owned()).run(&mut t.con)?;
    q.push(&"urgent".to_owned()).priority(9).run(&mut t.con)?;
    q.push(&"later".to_owned())
        .delay(Duration::from_secs(60))
        .run(&mut t.con)?;
    let first = q.take().run(&mut t.con)?.ok_or("a job")?;
    println!("first taken: {} (priority first)", first.data);
    q.complete(&first, ()).run(&mut t.con)?;
    let slow = q.take().run(&mut t.con)?.ok_or("a job")?;
    std::thread::sleep(Duration::from_millis(60));
    match q.complete(&slow, ()).run(&mut t.con) {
        Err(Error::LeaseLost { .. }) => println!("{}: late completion refused", slow.data),
        other => println!("unexpected: {other:?}"),
    }
    let again = q.take().run(&mut t.con)?.ok_or("a job")?;
    println!("{} taken again, attempt {}", again.data, again.attempt);
    q.complete(&again, ()).run(&mut t.con)?;
    println!(
        "(ready, delayed, active, dead) = {:?}",
        q.counts().run(&mut t.con)?
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("queue:{{{name}}}:*"))
        .query(&mut t.con)?;
    if !keys.is_empty() {
        let () = redis::cmd("DEL")
            .arg(&keys)
            .query::<i64>(&mut t.con)
            .map(drop)?;
    }
    Ok(())
}

/// Leaves nothing behind on a shared server.
fn cleanup(t: &mut Tour) -> Result {
    let ids: Vec<String> = (0..1000).map(|i| format!("b{i}")).collect();
    Lobby::delete_many(&ids).namespace(&t.ns).run(&mut t.con)?;
    Lobby::delete("l1").namespace(&t.ns).run(&mut t.con)?;
    for id in [1, 2] {
        Player::delete(&id).namespace(&t.ns).run(&mut t.con)?;
    }
    Product::delete(&1).namespace(&t.ns).run(&mut t.con)?;
    let pattern = format!("{}:*", t.ns);
    let keys: Vec<String> = {
        use redis::Commands;
        t.con
            .scan_match(&pattern)?
            .collect::<std::result::Result<_, _>>()?
    };
    if !keys.is_empty() {
        let () = redis::cmd("DEL")
            .arg(&keys)
            .query::<i64>(&mut t.con)
            .map(drop)?;
    }
    Ok(())
}

fn collections(t: &mut Tour) -> Result {
    // A capped feed: push, trim and TTL in one atomic round trip.
    let feed = Feed::<String, redis_state::codec::Plain>::new("news", 3)
        .ttl(Duration::from_secs(600))
        .namespace(&t.ns);
    for n in 1..=5 {
        feed.push("ferris", &format!("story {n}")).run(&mut t.con)?;
    }
    println!(
        "{} keeps the newest 3: {:?}",
        feed.key("ferris"),
        feed.recent("ferris", 10).run(&mut t.con)?.items
    );
    // A time window: the add trims below the cutoff in the same call.
    let hour = TimeWindow::<String>::new("logins", Duration::from_secs(3600)).namespace(&t.ns);
    let now = std::time::SystemTime::now();
    hour.add("ferris", &"yesterday".to_owned())
        .at(now - Duration::from_secs(86_400))
        .run(&mut t.con)?;
    hour.add("ferris", &"just now".to_owned()).run(&mut t.con)?;
    println!(
        "logins in the last hour: {}",
        hour.count("ferris").run(&mut t.con)?
    );
    // Tags indexed both ways: a real SINTER, and a retag leaves no stale
    // entry.
    let tags = TagSet::<u64>::new("crates").namespace(&t.ns);
    tags.tag(&1, ["async", "redis"]).run(&mut t.con)?;
    tags.tag(&2, ["async"]).run(&mut t.con)?;
    println!(
        "async and redis: {:?}",
        tags.items_with_all(["async", "redis"])
            .run(&mut t.con)?
            .items
    );
    tags.set_tags(&1, ["cli"]).run(&mut t.con)?;
    println!(
        "after retagging 1, async: {:?}",
        tags.items_with_all(["async"]).run(&mut t.con)?.items
    );
    // Presence: no sweeper; a stale user is pruned by the next call.
    let online = Presence::<String>::new("lobby", Duration::from_secs(30)).namespace(&t.ns);
    online
        .heartbeat("gone")
        .now(now - Duration::from_secs(60))
        .run(&mut t.con)?;
    online.heartbeat("ferris").run(&mut t.con)?;
    println!("online now: {}", online.count().run(&mut t.con)?);
    for key in [feed.key("ferris"), hour.key("ferris"), online.key()] {
        redis::cmd("DEL").arg(key).query::<i64>(&mut t.con)?;
    }
    for item in [1u64, 2] {
        tags.remove_item(&item).run(&mut t.con)?;
    }
    Ok(())
}

#[derive(redis_state::Channel, Debug)]
#[channel(name = "{app}:order:{id}:events", message = String, format = "plain")]
struct OrderEvents {
    app: String,
    id: u64,
}

fn pubsub(t: &mut Tour) -> Result {
    use redis_state::pubsub::{Channel, Event, Subscriber, SubscriberOptions, Target};
    // A pattern subscription hands each message back with its id parsed.
    let mut sub = Subscriber::<OrderEvents>::connect(
        Target::standalone(t.url.clone()),
        SubscriberOptions::new(),
    )?;
    sub.psubscribe(&OrderEvents::pattern())?;
    let app = t.ns.as_str().to_owned();
    let receivers = OrderEvents {
        app: app.clone(),
        id: 42,
    }
    .publish(&"shipped".to_owned())
    .run(&mut t.con)?;
    println!("published to {receivers} receiver(s)");
    loop {
        match sub
            .recv(Duration::from_secs(5))
            .ok_or("no message within 5 s")??
        {
            Event::Message(m) if m.channel.app == app => {
                println!("order {} {}", m.channel.id, m.message);
                break;
            }
            _ => {}
        }
    }
    sub.unsubscribe_all()?;

    // A reliable topic: the messages also go to a capped stream, numbered;
    // a reader resuming after #1 gets #2 from the stream, each once.
    let topic = redis_state::pubsub::Topic::new(
        OrderEvents {
            app: app.clone(),
            id: 43,
        },
        100,
    )?;
    for text in ["paid", "packed"] {
        topic.publish(&text.to_owned()).run(&mut t.con)?;
    }
    let mut reader = redis_state::pubsub::TopicSubscriber::<OrderEvents>::connect(
        Target::standalone(t.url.clone()),
        SubscriberOptions::new(),
    )?;
    reader.subscribe_from(&topic, 1)?;
    loop {
        let item = reader
            .recv(Duration::from_secs(5))
            .ok_or("no message within 5 s")??;
        if let redis_state::pubsub::TopicEvent::Message(m) = item {
            println!(
                "order {} #{} {} (backfilled: {})",
                m.channel.id, m.seq, m.message, m.backfilled
            );
            break;
        }
    }

    // Entity events: saves, deletes and expiries of a model from keyspace
    // notifications (best effort), if the server's operator turned them on.
    match redis_state::pubsub::EntityEvents::<Player>::connect(
        Target::standalone(t.url.clone()),
        Some(&t.ns),
        SubscriberOptions::new(),
    ) {
        Ok(events) => println!("watching players on {} node(s)", events.nodes()),
        Err(e) => println!("no entity events: {e}"),
    }
    Ok(())
}
