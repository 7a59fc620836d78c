use redis_state::prelude::*;

#[derive(Leaderboard)]
enum Run {
    A,
}

fn main() {}
