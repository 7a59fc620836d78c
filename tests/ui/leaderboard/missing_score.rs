use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(key = "lb:{game}")]
struct Run {
    game: String,
    #[leaderboard(member)]
    player: String,
    points: u32,
}

fn main() {}
