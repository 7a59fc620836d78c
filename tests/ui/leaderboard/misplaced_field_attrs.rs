use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(key = "lb:{game}")]
struct Run {
    #[leaderboard(rename = "g")]
    game: String,
    #[leaderboard(member, rename = "who")]
    player: String,
    #[leaderboard(score, default)]
    points: u32,
}

fn main() {}
