use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(key = "lb:{game}")]
struct Run {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: Option<u32>,
}

fn main() {}
