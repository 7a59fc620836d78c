// Placeholders must be whole key segments (review finding 1), also inside
// the hash tag.
use redis_state::prelude::*;

#[derive(Leaderboard)]
#[leaderboard(key = "{{lb:{game}.{region}}}")]
struct Run {
    game: String,
    region: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u32,
}

fn main() {
    let _ = Run::board(("chess".to_owned(), "eu".to_owned()));
}
