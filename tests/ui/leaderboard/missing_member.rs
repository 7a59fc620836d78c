use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(key = "lb:{game}")]
struct Run {
    game: String,
    player: String,
    #[leaderboard(score)]
    points: u32,
}

fn main() {}
