use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(key = "lb:{game}")]
struct Run {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(member)]
    team: String,
    #[leaderboard(score)]
    points: u32,
}

fn main() {}
