use redis_state::prelude::*;

// Every mistake of one item is reported at once, each at its own span.
#[derive(Leaderboard)]
#[leaderboard(key = "lb:{game}:{reigon}", rank = "top", cap = 0, max_score = 10)]
struct Run {
    game: String,
    region: String,
    player: String,
    #[leaderboard(score)]
    points: u32,
}

fn main() {}
