use redis_state::prelude::*;

// An attribute mistake is the only error: uses of the model elsewhere
// type-check against the stand-in impl.
#[derive(Leaderboard)]
#[leaderboard(key = "lb:{game}", update = "best")]
struct Run {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u32,
}

fn main() {
    let board = Run::board("chess");
    let _top = board.top(10);
    let _rank = board.rank("ada");
    let _score: Option<u32> = None;
    let run = Run { game: "chess".into(), player: "ada".into(), points: 3 };
    let _ = run.submit();
}
