use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(key = "lb:{game}", ttl = "1d")]
struct Run {
    #[leaderboard(id)]
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score, order = "low_first")]
    points: u32,
}

fn main() {}
