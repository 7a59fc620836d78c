//! # Leaderboards: a game with daily and all-time boards
//!
//! `#[derive(Leaderboard)]` declares a board on a struct: one value is one
//! entry (the board it goes on, the member, the score) and the other fields
//! are *member data*, kept beside the board. Every board is a plain Redis
//! sorted set, so `redis-cli` reads it with `ZREVRANGE`.
//!
//! The attributes say how the board behaves:
//!
//! * `update`: what a new score does to an old one (`replace`, `keep_best`,
//!   `add`), applied atomically by one script;
//! * `rank`: how ties rank (`ordinal` 1-2-3-4, `competition` 1-2-2-4,
//!   `dense` 1-2-2-3), computed on the server in O(log N);
//! * `tie_break = "earlier"`: of two equal scores, the one achieved first
//!   ranks first. The time is encoded in the stored score, so one sorted set
//!   still orders everything; the score and the time share the 53 bits of a
//!   double, which is why `max_score` is declared (and checked at compile
//!   time: here 24 bits for the score leave 29 bits, 17 years of seconds);
//! * `windows`: daily and weekly boards kept beside the all-time board, each
//!   expiring a while after its period ends;
//! * `cap`: each board keeps its best 10,000 players.
//!
//! Time is injectable: every write and read takes `.at(instant)`, which is
//! how this program plays three days in a second (and how the tests check
//! windows rolling over without waiting). Periods are UTC days and ISO weeks.
//!
//! The hand-written redis-py functions users write today, and their typed
//! forms:
//!
//! | hand-written | here |
//! |---|---|
//! | `update_score(lb, user, score)`: `ZADD` | `entry.submit()`, under `replace`, `keep_best` or `add` |
//! | `get_leaderboard(lb, start, end)`: `ZREVRANGE .. WITHSCORES` | `board.top(n)`, `board.page(k, size)`, `board.slice(start, end)` |
//! | `get_user_rank(lb, user)`: `ZREVRANK`, -1 when absent | `board.rank(user)`: `Option<u64>` from 1, in the rank mode |
//! | `get_user_score(lb, user)`: `ZSCORE`, 0.0 when absent | `board.score(user)`: `Option` of the score type |
//! | `get_score_range(lb, min, max)`: `ZRANGEBYSCORE` | `board.between(min, max)`: ranked entries, best first |
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server` for the duration of the run.
//!
//! Run it with `cargo run --example leaderboard_game`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use redis_state::leaderboard::{Board, Period};
use redis_state::prelude::*;

// ANCHOR: model
/// One run of an arcade game. Keys look like `{arcade:tetris}` (all-time),
/// `{arcade:tetris}:#d:2026-11-21` (that day) and `{arcade:tetris}:#w:2026-W47`
/// (that week); the braces are a Cluster hash tag that keeps a game's boards
/// and their member data in one slot.
#[derive(Leaderboard, Debug, Clone)]
#[leaderboard(
    key = "{{arcade:{game}}}",
    update = "keep_best",
    rank = "competition",
    tie_break = "earlier",
    max_score = 10_000_000,
    windows(daily = "7d", weekly = "28d"),
    cap = 10_000
)]
struct Run {
    /// A board field: the key template names it.
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u32,
    /// Member data: stored as JSON beside each board, with the run that set
    /// the player's score there.
    country: String,
    character: Option<String>,
}
// ANCHOR_END: model

fn run(player: &str, points: u32, country: &str, character: &str) -> Run {
    Run {
        game: "tetris".into(),
        player: player.into(),
        points,
        country: country.into(),
        character: Some(character.into()),
    }
}

fn show(title: &str, entries: &[redis_state::leaderboard::Entry<Run>]) {
    println!("{title}");
    for e in entries {
        let data = e.data.as_ref();
        println!(
            "  #{:<3} {:<6} {:>6}  {} {}",
            e.rank,
            e.member,
            e.score,
            data.map_or("?", |d| d.country.as_str()),
            data.and_then(|d| d.character.as_deref()).unwrap_or("-"),
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;
    // A namespace of our own, in case REDIS_URL points at a shared server.
    let ns = Namespace::new(format!("lb-example-{}", std::process::id()))?;
    // Yesterday at 18:00 UTC, then today: relative to the real clock so that
    // the window boards are within their retention whenever this runs.
    let yesterday = Utc::now().date_naive() - Duration::days(1);
    let day1: DateTime<Utc> = Utc.from_utc_datetime(&yesterday.and_hms_opt(18, 0, 0).unwrap());

    // ANCHOR: submit
    // Day 1. Each submit is one script: keep-best on the all-time, daily and
    // weekly boards, member data, expiry, cap, and the new ranks.
    let runs = [
        (0, run("ada", 4200, "UK", "I-piece")),
        (5, run("bob", 3100, "FR", "T-piece")),
        (9, run("cyd", 4200, "JP", "S-piece")),
        (12, run("dee", 5000, "BR", "O-piece")),
        (20, run("eve", 900, "DE", "Z-piece")),
    ];
    for (minute, r) in &runs {
        let at = day1 + Duration::minutes(*minute);
        let done = r.submit().at(at).namespace(&ns).run(&mut con)?;
        println!(
            "{} scored {}: all-time #{:?}, today #{:?}",
            r.player, r.points, done.rank, done.windows[0].rank
        );
    }
    // A worse run keeps the best score, and the data of the best run.
    let worse = run("ada", 1000, "UK", "L-piece");
    let done = worse
        .submit()
        .at(day1 + Duration::minutes(30))
        .namespace(&ns)
        .run(&mut con)?;
    println!(
        "ada scored 1000: kept {:?} (updated: {})",
        done.score, done.updated
    );
    // ANCHOR_END: submit

    // ANCHOR: read
    let board = Run::board("tetris").namespace(&ns).at(day1);
    // ada and cyd both have 4200: competition ranks give them #2, and the
    // tie-break lists ada first because she got there 9 minutes earlier.
    show("all-time top 10:", &board.top(10).run(&mut con)?);
    let ada = board.standing("ada").run(&mut con)?;
    println!("ada: {ada:?}");
    let around = board.around("bob", 1).run(&mut con)?.unwrap_or_default();
    show("around bob:", &around);
    let friends = board.entries_of(["eve", "nobody", "ada"]).run(&mut con)?;
    for (name, e) in ["eve", "nobody", "ada"].iter().zip(&friends) {
        println!(
            "  friend {name}: {:?}",
            e.as_ref().map(|e| (e.rank, e.score))
        );
    }
    println!(
        "bob beats {:.1}% of the board",
        board.percentile("bob").run(&mut con)?.unwrap_or(0.0)
    );
    // Several reads, one round trip.
    let (page2, count, between) =
        batch((board.page(2, 2), board.count(), board.between(3000, 4500))).run(&mut con)?;
    show(&format!("page 2 of 2 (of {count} players):"), &page2);
    show("scores 3000..=4500:", &between);
    // ANCHOR_END: read

    // ANCHOR: raw
    // What redis-cli sees: a plain sorted set. On a board with a tie-break
    // the stored score is `points * 2^T + time`; the schema decodes it.
    let raw: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
        .arg(board.key())
        .arg(0)
        .arg(2)
        .arg("WITHSCORES")
        .query(&mut con)?;
    let bits = Run::SCHEMA.tie_break.map_or(0, |t| t.time_bits);
    for (member, stored) in raw {
        let (points, at) = Run::SCHEMA.decode_stored(stored);
        println!(
            "ZREVRANGE: {member} {stored} = floor({stored} / 2^{bits}) = {points}, achieved {}",
            at.map_or_else(String::new, |t| t.to_rfc3339())
        );
    }
    // ANCHOR_END: raw

    // ANCHOR: windows
    // Day 2: a new daily board starts empty; the week and all time go on.
    let day2 = day1 + Duration::days(1);
    run("bob", 6000, "FR", "T-piece")
        .submit()
        .at(day2)
        .namespace(&ns)
        .run(&mut con)?;
    run("fay", 2500, "CA", "J-piece")
        .submit()
        .at(day2 + Duration::hours(1))
        .namespace(&ns)
        .run(&mut con)?;
    let today = Run::board("tetris").namespace(&ns).at(day2);
    show(
        "today (day 2):",
        &today.clone().daily().top(10).run(&mut con)?,
    );
    show("this week:", &today.clone().weekly().top(3).run(&mut con)?);
    show("all time:", &today.top(3).run(&mut con)?);
    let yesterday = today.clone().period(Period::Day(day1.date_naive()));
    show("yesterday, still kept:", &yesterday.top(3).run(&mut con)?);
    let ttl: i64 = redis::cmd("PTTL").arg(yesterday.key()).query(&mut con)?;
    println!(
        "{} expires in {:.1} days (7 days after its day ended)",
        yesterday.key(),
        ttl as f64 / 86_400_000.0
    );
    // ANCHOR_END: windows

    // ANCHOR: moderate
    // A cheater goes from the all-time board and the current day and week,
    // with their member data.
    let removed = today.remove("dee").run(&mut con)?;
    println!("removed dee: {removed}");
    show("all time after moderation:", &today.top(3).run(&mut con)?);
    // ANCHOR_END: moderate

    // Clean up the namespace on a shared server.
    let boards: Vec<Board<Run>> = vec![
        today.clone(),
        today.clone().daily(),
        today.clone().weekly(),
        yesterday,
    ];
    for b in &boards {
        b.clear().run(&mut con)?;
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
