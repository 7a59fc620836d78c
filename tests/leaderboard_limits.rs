//! The edges of what a board can hold and read: sums (increments and
//! merges) that would leave the score type's range or the doubles' exact
//! integers are refused rather than stored, and reads of "everything"
//! (`top(u64::MAX)`) work. On a standalone server and a Cluster, through the
//! blocking and the async executor.

mod common;

use common::Runner;
use redis_state::Error;
use redis_state::prelude::*;

/// 2^53 - 1: the largest integer every smaller one of which a double holds.
const MAX_EXACT: u64 = (1 << 53) - 1;

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{tot}}:{region}", update = "add")]
struct Tot {
    region: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u8,
}

fn raw_board(r: &mut Runner, key: &str) -> Vec<String> {
    r.cmd("ZRANGE", key).arg(0).arg(-1).arg("WITHSCORES").go()
}

/// The reviewer's reproduction: a SUM union on a `u8` board without a
/// tie-break stored 200 + 200 = 400, which no read could decode. It is
/// refused like the same sum through `increment`, and writes nothing.
fn merge_sum_refuses_scores_the_type_cannot_hold(r: &mut Runner, ns: &Namespace) {
    for region in ["eu", "us"] {
        let e = Tot {
            region: region.into(),
            player: "p".into(),
            points: 200,
        };
        r.run(e.submit().namespace(ns)).unwrap();
    }
    let (eu, us, all) = (
        Tot::board("eu").namespace(ns),
        Tot::board("us").namespace(ns),
        Tot::board("all").namespace(ns),
    );
    let refused = r.run(eu.increment("p", 200)).unwrap_err();
    assert!(
        matches!(refused, Error::ScoreNotEncodable { .. }),
        "{refused}"
    );
    // The destination holds an earlier result: it must survive the refusal.
    r.run(Tot::union(&[&eu], &all)).unwrap();
    let merged = r.run(Tot::union(&[&eu, &us], &all));
    assert!(
        matches!(&merged, Err(Error::ScoreNotEncodable { member, .. }) if member == "p"),
        "{merged:?}"
    );
    let top = r.run(all.top(10)).unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].score, 200, "nothing was written");
    assert_eq!(raw_board(r, &all.key()), ["p", "200"]);
    let both = Tot::board("both").namespace(ns);
    let err = r.run(Tot::intersection(&[&eu, &us], &both)).unwrap_err();
    assert!(matches!(err, Error::ScoreNotEncodable { .. }), "{err}");
    assert_eq!(r.run(both.count()).unwrap(), 0);
    // A sum that fits is stored.
    let e = Tot {
        region: "asia".into(),
        player: "p".into(),
        points: 55,
    };
    r.run(e.submit().namespace(ns)).unwrap();
    let asia = Tot::board("asia").namespace(ns);
    assert_eq!(r.run(Tot::union(&[&eu, &asia], &all)).unwrap(), 1);
    assert_eq!(r.run(all.score("p")).unwrap(), Some(255));
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{sum64}}:{region}", update = "add")]
struct Sum64 {
    region: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i64,
}

/// Doubles round past 2^53: `(2^53 - 1) + 2 - 2` summed in doubles gives
/// `2^53 - 2`, a wrong score inside the range. A merge never stores a sum
/// that went through a rounded total.
fn merge_sum_never_stores_a_rounded_total(r: &mut Runner, ns: &Namespace) {
    let max = MAX_EXACT as i64;
    for (region, points) in [("a", max), ("b", 2), ("c", -2)] {
        let e = Sum64 {
            region: region.into(),
            player: "p".into(),
            points,
        };
        r.run(e.submit().namespace(ns)).unwrap();
    }
    let boards: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|b| Sum64::board(b).namespace(ns))
        .collect();
    let all = Sum64::board("all").namespace(ns);
    let merged = r.run(Sum64::union(&[&boards[0], &boards[1], &boards[2]], &all));
    let score = r.run(all.score("p")).unwrap();
    assert!(
        merged.is_err() || score == Some(max),
        "{merged:?}: stored {score:?}, the exact sum is {max}"
    );
    assert!(
        matches!(merged, Err(Error::ScoreNotEncodable { .. })),
        "{merged:?}"
    );
    assert_eq!(score, None, "nothing was written");
    // Negative sums are bounded too.
    let e = Sum64 {
        region: "d".into(),
        player: "p".into(),
        points: -max,
    };
    r.run(e.submit().namespace(ns)).unwrap();
    let d = Sum64::board("d").namespace(ns);
    let err = r.run(Sum64::union(&[&d, &boards[2]], &all)).unwrap_err();
    assert!(matches!(err, Error::ScoreNotEncodable { .. }), "{err}");
    assert_eq!(r.run(Sum64::union(&[&d, &boards[1]], &all)).unwrap(), 1);
    assert_eq!(r.run(all.score("p")).unwrap(), Some(2 - max));
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{f32}}:{region}", update = "add")]
struct Float32 {
    region: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: f32,
}

/// An `f32` board holds `f32` values: a sum past `f32::MAX` (a finite
/// double no `f32` equals) is refused by increments and merges alike;
/// infinities are `f32` values and add as they do in Rust.
fn f32_sums_stay_within_f32(r: &mut Runner, ns: &Namespace) {
    let entry = |region: &str, player: &str, points| Float32 {
        region: region.into(),
        player: player.into(),
        points,
    };
    for region in ["eu", "us"] {
        r.run(entry(region, "p", f32::MAX).submit().namespace(ns))
            .unwrap();
    }
    let (eu, us, all) = (
        Float32::board("eu").namespace(ns),
        Float32::board("us").namespace(ns),
        Float32::board("all").namespace(ns),
    );
    let err = r.run(eu.increment("p", f32::MAX)).unwrap_err();
    assert!(matches!(err, Error::ScoreNotEncodable { .. }), "{err}");
    assert_eq!(r.run(eu.score("p")).unwrap(), Some(f32::MAX));
    let merged = r.run(Float32::union(&[&eu, &us], &all));
    assert!(
        matches!(merged, Err(Error::ScoreNotEncodable { .. })),
        "{merged:?}"
    );
    assert!(
        r.run(all.top(10)).unwrap().is_empty(),
        "nothing was written"
    );
    // Infinities.
    r.run(entry("asia", "q", f32::INFINITY).submit().namespace(ns))
        .unwrap();
    r.run(entry("oc", "q", 1.0).submit().namespace(ns)).unwrap();
    let asia = Float32::board("asia").namespace(ns);
    let oc = Float32::board("oc").namespace(ns);
    let up = r.run(asia.increment("q", 1.0)).unwrap();
    assert_eq!(up.score, Some(f32::INFINITY));
    assert_eq!(r.run(Float32::union(&[&asia, &oc], &all)).unwrap(), 1);
    assert_eq!(r.run(all.score("q")).unwrap(), Some(f32::INFINITY));
    // A sum that fits.
    r.run(entry("oc", "p", -f32::MAX).submit().namespace(ns))
        .unwrap();
    assert_eq!(r.run(Float32::union(&[&eu, &oc], &all)).unwrap(), 2);
    assert_eq!(r.run(all.score("p")).unwrap(), Some(0.0));
}

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
        r.run(board.increment(&1u64, -(MAX_EXACT as i64)))
            .unwrap()
            .score,
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
    assert_eq!(r.run(board.top(u64::MAX).without_data()).unwrap().len(), 3);
    assert_eq!(
        r.run(board.slice(1, u64::MAX).without_data())
            .unwrap()
            .len(),
        2
    );
    assert!(r.run(board.slice(u64::MAX, u64::MAX)).unwrap().is_empty());
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
    merge_sum_refuses_scores_the_type_cannot_hold,
    merge_sum_never_stores_a_rounded_total,
    f32_sums_stay_within_f32,
    increments_past_the_exact_integers_are_refused,
    reads_of_everything_work,
);
