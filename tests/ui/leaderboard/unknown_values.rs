use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(
    key = "{{lb:{game}}}",
    order = "descending",
    update = "max",
    rank = "olympic",
    tie_break = "first"
)]
struct Run {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u32,
}

fn main() {}
