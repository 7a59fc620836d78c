use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(key = "lb:{game}")]
struct Run {
    game: String,
    #[leaderboard(member)]
    players: Vec<String>,
    #[leaderboard(score)]
    points: u32,
}

fn main() {}
