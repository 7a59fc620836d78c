//! The edges of what a board can hold and read: sums that would leave the
//! score type's range or the doubles' exact integers are refused rather
//! than stored, and reads of "everything" (`top(u64::MAX)`) work. On a standalone server and a Cluster, through the
//! blocking and the async executor.

mod common;

use common::Runner;
use redis_state::Error;
use redis_state::prelude::*;

/// 2^53 - 1: the largest integer every smaller one of which a double holds.
const MAX_EXACT: u64 = (1 << 53) - 1;

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{total:{game}}}", update = "add")]
struct Total {
    game: String,
    #[leaderboard(member)]
    player: u64,
    #[leaderboard(score)]
    points: u64,
}

/// The reviewer's reproduction: the add bounds included 2^53, so
/// `(2^53 - 1) + 2` (2^53 + 1, rounded to 2^53 in doubles) was stored. The
/// largest integer score is now 2^53 - 1, and a sum past it is refused.
fn increments_past_the_exact_integers_are_refused(r: &mut Runner, ns: &Namespace) {
    let total = |points| Total {
        game: "g".into(),
        player: 1,
        points,
    };
    r.run(total(MAX_EXACT).submit().namespace(ns)).unwrap();
    let board = Total::board("g").namespace(ns);
    let r2 = r.run(board.increment(&1u64, 2));
    let score = r.run(board.score(&1u64)).unwrap();
    assert!(
        r2.is_err() || score == Some(MAX_EXACT + 2),
        "rounded sum stored: {score:?}"
    );
    assert!(matches!(r2, Err(Error::ScoreNotEncodable { .. })), "{r2:?}");
    assert_eq!(score, Some(MAX_EXACT));
    let err = r.run(board.increment(&1u64, 1)).unwrap_err();
    assert!(matches!(err, Error::ScoreNotEncodable { .. }), "{err}");
    // 2^53 itself is refused: 2^53 + 1 would be stored as 2^53 too, so a
    // stored 2^53 cannot be told from a rounded value.
    let err = r.run(total(1 << 53).submit().namespace(ns)).unwrap_err();
    assert!(matches!(err, Error::ScoreNotEncodable { .. }), "{err}");
    let err = r
        .run(Total::submit_many(&[total(1 << 53)]).namespace(ns))
        .unwrap_err();
    assert!(matches!(err, Error::ScoreNotEncodable { .. }), "{err}");
    assert_eq!(r.run(board.score(&1u64)).unwrap(), Some(MAX_EXACT));
    assert_eq!(
        r.run(board.increment(&1u64, -(MAX_EXACT as i64))).unwrap().score,
        Some(0)
    );
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{arcade:{game}}}", rank = "competition")]
struct Run {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u32,
    country: String,
}

/// The reviewer's reproduction: counts were clamped to `i64::MAX`, which
/// the read script turned into the double 2^63, a range bound Redis
/// refuses: "everything" failed on boards with member data.
fn reads_of_everything_work(r: &mut Runner, ns: &Namespace) {
    for (p, s) in [("ada", 10), ("bob", 20), ("cy", 20)] {
        let e = Run {
            game: "g".into(),
            player: p.into(),
            points: s,
            country: "UK".into(),
        };
        r.run(e.submit().namespace(ns)).unwrap();
    }
    let board = Run::board("g").namespace(ns);
    let ranks = |v: Vec<redis_state::leaderboard::Entry<Run>>| {
        v.into_iter()
            .map(|e| (e.member, e.rank, e.data.is_some()))
            .collect::<Vec<_>>()
    };
    // Equal scores list in reverse member order, as ZREVRANGE does.
    let everyone = vec![
        ("cy".to_owned(), 1, true),
        ("bob".to_owned(), 1, true),
        ("ada".to_owned(), 3, true),
    ];
    assert_eq!(ranks(r.run(board.top(u64::MAX)).unwrap()), everyone);
    assert_eq!(
        ranks(r.run(board.slice(1, u64::MAX)).unwrap()),
        everyone[1..]
    );
    assert_eq!(
        r.run(board.top(u64::MAX).without_data()).unwrap().len(),
        3
    );
    assert_eq!(
        r.run(board.slice(1, u64::MAX).without_data())
            .unwrap()
            .len(),
        2
    );
    assert!(
        r.run(board.slice(u64::MAX, u64::MAX))
            .unwrap()
            .is_empty()
    );
    assert!(r.run(board.page(u64::MAX, u64::MAX)).unwrap().is_empty());
    assert_eq!(ranks(r.run(board.page(1, u64::MAX)).unwrap()), everyone);
    let around = r.run(board.around("cy", u64::MAX)).unwrap().unwrap();
    assert_eq!(ranks(around), everyone);
    assert_eq!(
        ranks(
            r.run(board.between_limit(0, u32::MAX, 1, Some(u64::MAX)))
                .unwrap()
        ),
        everyone[1..]
    );
    assert!(
        r.run(board.between_limit(0, u32::MAX, u64::MAX, None))
            .unwrap()
            .is_empty()
    );
}

matrix!(
    increments_past_the_exact_integers_are_refused,
    reads_of_everything_work,
);
