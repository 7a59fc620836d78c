use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(key = "lb:{game}:{player}")]
struct Run {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u32,
}

fn main() {}
