use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(key = "lb:{gmae}:{region}")]
struct Run {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u32,
}

fn main() {}
