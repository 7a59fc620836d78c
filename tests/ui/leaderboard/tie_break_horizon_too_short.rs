use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(
    key = "lb:{game}",
    tie_break = "earlier",
    max_score = 1_000_000_000,
    tie_resolution = "1ms"
)]
struct Run {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u64,
}

fn main() {}
