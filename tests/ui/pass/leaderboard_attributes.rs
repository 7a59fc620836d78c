//! Every container and field attribute of `#[derive(Leaderboard)]` at once,
//! and the shapes a board can take.

use redis_state::leaderboard::{Order, RankMode, UpdatePolicy, Window};
use redis_state::{Leaderboard, RedisField};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct Gear {
    weapon: String,
}

fn unknown() -> String {
    "(unknown)".to_owned()
}

#[derive(RedisField, Clone, Debug, PartialEq)]
enum Region {
    Eu,
    Us,
}

#[derive(Leaderboard)]
#[leaderboard(
    key = "lb:{game}:{{{region}}}",
    namespace = "app:v1",
    order = "low_first",
    update = "keep_best",
    rank = "dense",
    tie_break = "later",
    max_score = 3600.5,
    decimals = 1,
    tie_resolution = "1m",
    tie_epoch = "2024-06-01",
    windows(daily = "3d", weekly, monthly = "8w"),
    cap = 10_000
)]
#[leaderboard(rename_all = "camelCase", crate = "redis_state")]
struct Lap {
    game: String,
    region: Region,
    #[leaderboard(member)]
    driver: u64,
    #[leaderboard(score)]
    seconds: f32,
    car_name: String,
    #[leaderboard(rename = "kit")]
    gear: Option<Gear>,
    #[leaderboard(default = "unknown")]
    team: String,
    #[leaderboard(default)]
    laps: u32,
    #[leaderboard(skip)]
    cached: Vec<u8>,
}

/// No board fields: one board, `{daily_total}` by default.
#[derive(Leaderboard)]
#[leaderboard(update = "add", windows(daily))]
struct DailyTotal {
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i64,
}

/// A generic data field: the user bounds the parameter by what it needs.
#[derive(Leaderboard)]
#[leaderboard(key = "{{g:{game}}}")]
struct Generic<T: Serialize + serde::de::DeserializeOwned> {
    game: u32,
    #[leaderboard(member)]
    player: Vec<u8>,
    #[leaderboard(score)]
    points: i8,
    extra: T,
}

/// Attribute values from `macro_rules!` fragments.
macro_rules! board {
    ($name:ident, $order:literal, $cap:literal) => {
        #[derive(Leaderboard)]
        #[leaderboard(key = "m:{game}", order = $order, cap = $cap)]
        struct $name {
            game: String,
            #[leaderboard(member)]
            player: String,
            #[leaderboard(score)]
            points: u128,
        }
    };
}
board!(FromMacro, "low_first", 5);

fn main() {
    let s = Lap::SCHEMA;
    assert_eq!(s.order, Order::LowFirst);
    assert_eq!(s.update, UpdatePolicy::KeepBest);
    assert_eq!(s.rank, RankMode::Dense);
    assert_eq!(s.windows.len(), 3);
    assert_eq!(s.windows[0].window, Window::Daily);
    assert_eq!(s.windows[0].keep_ms, 3 * 86_400_000);
    assert_eq!(s.cap, Some(10_000));
    assert_eq!(s.data, &["carName", "kit", "team", "laps"]);
    let tie = s.tie_break.unwrap();
    assert_eq!((tie.max_scaled, tie.decimals, tie.resolution_ms), (36005, 1, 60_000));
    assert_eq!(tie.time_bits, 37);
    let _ = Lap::board(("monza".to_owned(), Region::Eu)).daily().top(10);
    let _ = Lap::board(("monza".to_owned(), Region::Us)).rank(&7u64);
    let _ = DailyTotal::board(()).weekly();
    assert_eq!(DailyTotal::board(()).key(), "{daily_total}");
    let _ = Generic::<Gear>::board(3u32).top(3);
    assert_eq!(FromMacro::SCHEMA.cap, Some(5));
    let lap = Lap {
        game: "monza".into(),
        region: Region::Eu,
        driver: 7,
        seconds: 81.5,
        car_name: "f".into(),
        gear: None,
        team: "t".into(),
        laps: 3,
        cached: Vec::new(),
    };
    let _ = lap.submit();
    let _ = lap.cached.len();
}
