use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(key = "lb:{game}")]
struct Run {
    game: String,
    #[leaderboard(member, score)]
    player: u64,
}

fn main() {}
