use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(key = "lb:{season}")]
struct Run {
    season: f64,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u32,
}

fn main() {}
