use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(key = "lb:{game}", max_score = 1000, tie_resolution = "1ms")]
struct Run {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u32,
}

fn main() {}
