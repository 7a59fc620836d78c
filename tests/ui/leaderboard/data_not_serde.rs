use redis_state::prelude::*;

struct Avatar;

#[derive(Leaderboard)]
#[leaderboard(key = "{{lb:{game}}}")]
struct Run {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u32,
    avatar: Avatar,
}

fn main() {}
