//! Every operation of `#[derive(Leaderboard)]`, through the blocking and the
//! async executor, on a standalone server and on a 3-primary Cluster.

mod common;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use common::Runner;
use redis_state::Error;
use redis_state::leaderboard::{Aggregate, Board, Period, Window};
use redis_state::prelude::*;

/// Tomorrow, 10:00 UTC: every time a test gives an operation is taken
/// relative to now, so window keys (which expire a retention after their
/// period ends) are live whatever the date the suite runs on.
fn t0() -> DateTime<Utc> {
    let tomorrow = Utc::now().date_naive() + Duration::days(1);
    tomorrow.and_hms_opt(10, 0, 0).unwrap().and_utc()
}

/// The first Saturday after today whose Sunday and Monday fall in the same
/// month, and the first day of the month after: a day, an ISO week and a
/// month boundary to cross, all in the future.
fn weekend_ahead() -> (NaiveDate, NaiveDate) {
    let mut sat = Utc::now().date_naive() + Duration::days(1);
    while sat.weekday() != chrono::Weekday::Sat || (sat + Duration::days(2)).month() != sat.month()
    {
        sat += Duration::days(1);
    }
    let (y, m) = if sat.month() == 12 {
        (sat.year() + 1, 1)
    } else {
        (sat.year(), sat.month() + 1)
    };
    (sat, NaiveDate::from_ymd_opt(y, m, 1).unwrap())
}

// ---------------------------------------------------------------------------
// Rank modes with ties, both orders

macro_rules! plain_board {
    ($name:ident, $order:literal, $rank:literal) => {
        #[derive(Leaderboard, Debug, Clone, PartialEq)]
        #[leaderboard(key = "{{rank:{game}}}", order = $order, rank = $rank)]
        struct $name {
            game: String,
            #[leaderboard(member)]
            player: String,
            #[leaderboard(score)]
            points: i64,
            note: String,
        }

        impl $name {
            fn new(player: &str, points: i64) -> Self {
                $name {
                    game: "g".into(),
                    player: player.into(),
                    points,
                    note: format!("{player}:{points}"),
                }
            }
        }
    };
}
plain_board!(HighOrdinal, "high_first", "ordinal");
plain_board!(HighCompetition, "high_first", "competition");
plain_board!(HighDense, "high_first", "dense");
plain_board!(LowOrdinal, "low_first", "ordinal");
plain_board!(LowCompetition, "low_first", "competition");
plain_board!(LowDense, "low_first", "dense");

const TIED: [(&str, i64); 8] = [
    ("a", 50),
    ("b", 40),
    ("c", 40),
    ("d", 40),
    ("e", 30),
    ("f", 20),
    ("g", 20),
    ("h", 10),
];

/// Submits `TIED`, then checks every read against `expected`: the board
/// order (members, best first) with each member's rank.
macro_rules! check_ranks {
    ($r:expr, $ns:expr, $ty:ident, $expected:expr, $pct_c:expr) => {{
        let r: &mut Runner = $r;
        let ns: &Namespace = $ns;
        for (p, s) in TIED {
            r.run($ty::new(p, s).submit().namespace(ns)).unwrap();
        }
        let expected: &[(&str, u64)] = $expected;
        let board = $ty::board("g").namespace(ns);
        let got: Vec<(String, u64)> = r
            .run(board.top(8))
            .unwrap()
            .into_iter()
            .map(|e| (e.member, e.rank))
            .collect();
        let want: Vec<(String, u64)> = expected.iter().map(|(m, r)| (m.to_string(), *r)).collect();
        assert_eq!(got, want, "top");
        // Without data: the plain ZREVRANGE path.
        let plain: Vec<(String, u64)> = r
            .run(board.top(8).without_data())
            .unwrap()
            .into_iter()
            .map(|e| (e.member, e.rank))
            .collect();
        assert_eq!(plain, want, "top without data");
        // A page starting inside a run of ties.
        let page: Vec<(String, u64)> = r
            .run(board.page(2, 3))
            .unwrap()
            .into_iter()
            .map(|e| (e.member, e.rank))
            .collect();
        assert_eq!(page, want[3..6].to_vec(), "page 2 of 3");
        let page: Vec<(String, u64)> = r
            .run(board.page(2, 3).without_data())
            .unwrap()
            .into_iter()
            .map(|e| (e.member, e.rank))
            .collect();
        assert_eq!(page, want[3..6].to_vec(), "page 2 of 3 without data");
        for (i, (m, rank)) in want.iter().enumerate() {
            assert_eq!(
                r.run(board.rank(m.as_str())).unwrap(),
                Some(*rank),
                "rank of {m}"
            );
            let st = r.run(board.standing(m.as_str())).unwrap().unwrap();
            assert_eq!(st.rank, *rank);
            let e = r.run(board.entry(m.as_str())).unwrap().unwrap();
            assert_eq!(e.rank, *rank);
            assert_eq!(e.data.unwrap().note, format!("{m}:{}", e.score));
            let around = r.run(board.around(m.as_str(), 1)).unwrap().unwrap();
            let lo = i.saturating_sub(1);
            let hi = (i + 1).min(want.len() - 1);
            let got: Vec<(String, u64)> = around.into_iter().map(|e| (e.member, e.rank)).collect();
            assert_eq!(got, want[lo..=hi].to_vec(), "around {m}");
        }
        // Scores 20..=40: members with 40, 30, 20 (or reversed on low-first boards).
        let between: Vec<(String, u64)> = r
            .run(board.between(20, 40))
            .unwrap()
            .into_iter()
            .map(|e| (e.member, e.rank))
            .collect();
        let want_between: Vec<(String, u64)> = want
            .iter()
            .filter(|(m, _)| TIED.iter().any(|(p, s)| p == m && (20..=40).contains(s)))
            .cloned()
            .collect();
        assert_eq!(between, want_between, "between");
        let limited: Vec<String> = r
            .run(board.between_limit(20, 40, 1, Some(2)))
            .unwrap()
            .into_iter()
            .map(|e| e.member)
            .collect();
        let want_limited: Vec<String> = want_between[1..3].iter().map(|(m, _)| m.clone()).collect();
        assert_eq!(limited, want_limited, "between with a limit");
        assert_eq!(r.run(board.percentile("c")).unwrap(), Some($pct_c));
        assert_eq!(r.run(board.rank("nobody")).unwrap(), None);
        assert_eq!(r.run(board.around("nobody", 3)).unwrap(), None);
        assert_eq!(r.run(board.percentile("nobody")).unwrap(), None);
    }};
}

fn high_ordinal(r: &mut Runner, ns: &Namespace) {
    // Equal scores: Redis orders them by member, descending for ZREVRANGE.
    check_ranks!(
        r,
        ns,
        HighOrdinal,
        &[
            ("a", 1),
            ("d", 2),
            ("c", 3),
            ("b", 4),
            ("e", 5),
            ("g", 6),
            ("f", 7),
            ("h", 8)
        ],
        68.75
    );
}

fn high_competition(r: &mut Runner, ns: &Namespace) {
    check_ranks!(
        r,
        ns,
        HighCompetition,
        &[
            ("a", 1),
            ("d", 2),
            ("c", 2),
            ("b", 2),
            ("e", 5),
            ("g", 6),
            ("f", 6),
            ("h", 8)
        ],
        68.75
    );
}

fn high_dense(r: &mut Runner, ns: &Namespace) {
    check_ranks!(
        r,
        ns,
        HighDense,
        &[
            ("a", 1),
            ("d", 2),
            ("c", 2),
            ("b", 2),
            ("e", 3),
            ("g", 4),
            ("f", 4),
            ("h", 5)
        ],
        68.75
    );
}

fn low_ordinal(r: &mut Runner, ns: &Namespace) {
    check_ranks!(
        r,
        ns,
        LowOrdinal,
        &[
            ("h", 1),
            ("f", 2),
            ("g", 3),
            ("e", 4),
            ("b", 5),
            ("c", 6),
            ("d", 7),
            ("a", 8)
        ],
        31.25
    );
}

fn low_competition(r: &mut Runner, ns: &Namespace) {
    check_ranks!(
        r,
        ns,
        LowCompetition,
        &[
            ("h", 1),
            ("f", 2),
            ("g", 2),
            ("e", 4),
            ("b", 5),
            ("c", 5),
            ("d", 5),
            ("a", 8)
        ],
        31.25
    );
}

fn low_dense(r: &mut Runner, ns: &Namespace) {
    check_ranks!(
        r,
        ns,
        LowDense,
        &[
            ("h", 1),
            ("f", 2),
            ("g", 2),
            ("e", 3),
            ("b", 4),
            ("c", 4),
            ("d", 4),
            ("a", 5)
        ],
        31.25
    );
}

/// Dense ranks follow moves and removals: the distinct-score set is kept in
/// step by every write.
fn dense_follows_writes(r: &mut Runner, ns: &Namespace) {
    let board = HighDense::board("g").namespace(ns);
    for (p, s) in [("a", 30), ("b", 20), ("c", 20), ("d", 10)] {
        r.run(HighDense::new(p, s).submit().namespace(ns)).unwrap();
    }
    assert_eq!(r.run(board.rank("d")).unwrap(), Some(3));
    // b leaves the 20 band, c still holds it.
    r.run(HighDense::new("b", 5).submit().namespace(ns))
        .unwrap();
    assert_eq!(r.run(board.rank("d")).unwrap(), Some(3));
    assert_eq!(r.run(board.rank("b")).unwrap(), Some(4));
    // c leaves: the 20 band disappears.
    r.run(board.remove("c")).unwrap();
    assert_eq!(r.run(board.rank("d")).unwrap(), Some(2));
    assert_eq!(r.run(board.rank("b")).unwrap(), Some(3));
    let dense: Vec<String> = r
        .cmd("ZRANGE", &format!("{}:#dense", board.key()))
        .arg(0)
        .arg(-1)
        .go();
    assert_eq!(dense, vec!["5", "10", "30"]);
    // An increment moves d up into a's band.
    r.run(board.increment("d", 20)).unwrap();
    assert_eq!(r.run(board.rank("d")).unwrap(), Some(1));
    assert_eq!(r.run(board.rank("b")).unwrap(), Some(2));
}

// ---------------------------------------------------------------------------
// Tie-break by time

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(
    key = "{{tie:{game}}}",
    rank = "ordinal",
    tie_break = "earlier",
    max_score = 1_000_000
)]
struct Earlier {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u32,
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(
    key = "{{lap:{game}}}",
    order = "low_first",
    rank = "competition",
    tie_break = "earlier",
    max_score = 3600,
    decimals = 3,
    tie_resolution = "1s"
)]
struct LapTime {
    game: String,
    #[leaderboard(member)]
    driver: String,
    #[leaderboard(score)]
    seconds: f64,
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{later:{game}}}", tie_break = "later", max_score = 1000)]
struct Later {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i16,
}

fn tie_break_by_time(r: &mut Runner, ns: &Namespace) {
    let t = t0();
    // z reaches 100 first, then a, then m: ordinal ranks follow the times,
    // not the member names.
    for (i, p) in ["z", "a", "m"].into_iter().enumerate() {
        let e = Earlier {
            game: "g".into(),
            player: p.into(),
            points: 100,
        };
        r.run(e.submit().at(t + Duration::seconds(i as i64)).namespace(ns))
            .unwrap();
    }
    let e = Earlier {
        game: "g".into(),
        player: "top".into(),
        points: 101,
    };
    r.run(e.submit().at(t + Duration::seconds(9)).namespace(ns))
        .unwrap();
    let board = Earlier::board("g").namespace(ns);
    let top = r.run(board.top(10)).unwrap();
    let order: Vec<(&str, u64, u32)> = top
        .iter()
        .map(|e| (e.member.as_str(), e.rank, e.score))
        .collect();
    assert_eq!(
        order,
        vec![("top", 1, 101), ("z", 2, 100), ("a", 3, 100), ("m", 4, 100)]
    );
    assert_eq!(top[1].achieved_at, Some(t));
    assert_eq!(top[3].achieved_at, Some(t + Duration::seconds(2)));
    // A replace of an equal score at a later time moves z behind a and m.
    let e = Earlier {
        game: "g".into(),
        player: "z".into(),
        points: 100,
    };
    r.run(e.submit().at(t + Duration::seconds(5)).namespace(ns))
        .unwrap();
    assert_eq!(r.run(board.rank("z")).unwrap(), Some(4));
    // Within one tie_resolution unit (1 s) the tie stands and Redis orders
    // by member: "b" and "c" both score 50 in the same second.
    for p in ["c", "b"] {
        let e = Earlier {
            game: "g".into(),
            player: p.into(),
            points: 50,
        };
        r.run(e.submit().at(t + Duration::milliseconds(700)).namespace(ns))
            .unwrap();
    }
    let stored_b: f64 = r.cmd("ZSCORE", &board.key()).arg("b").go();
    let stored_c: f64 = r.cmd("ZSCORE", &board.key()).arg("c").go();
    assert_eq!(stored_b, stored_c);

    // Low-first lap times with milliseconds: the earlier of two equal laps
    // ranks first; competition ranks ignore the time.
    for (i, (d, s)) in [("x", 61.25), ("y", 61.25), ("w", 59.999)]
        .into_iter()
        .enumerate()
    {
        let lap = LapTime {
            game: "g".into(),
            driver: d.into(),
            seconds: s,
        };
        r.run(
            lap.submit()
                .at(t + Duration::seconds(i as i64))
                .namespace(ns),
        )
        .unwrap();
    }
    let laps = LapTime::board("g").namespace(ns);
    let top = r.run(laps.top(3)).unwrap();
    let got: Vec<(&str, u64, f64)> = top
        .iter()
        .map(|e| (e.member.as_str(), e.rank, e.score))
        .collect();
    assert_eq!(
        got,
        vec![("w", 1, 59.999), ("x", 2, 61.25), ("y", 2, 61.25)]
    );
    assert_eq!(top[2].achieved_at, Some(t + Duration::seconds(1)));

    // "later" wins: the most recent of equal scores ranks first.
    for (i, p) in ["p", "q"].into_iter().enumerate() {
        let e = Later {
            game: "g".into(),
            player: p.into(),
            points: -5,
        };
        r.run(e.submit().at(t + Duration::seconds(i as i64)).namespace(ns))
            .unwrap();
    }
    let later = Later::board("g").namespace(ns);
    let got: Vec<String> = r
        .run(later.top(2))
        .unwrap()
        .into_iter()
        .map(|e| e.member)
        .collect();
    assert_eq!(got, vec!["q", "p"]);
    assert_eq!(r.run(later.score("p")).unwrap(), Some(-5));
}

/// What a redis-cli user sees, and how to read the real score back.
fn raw_board_is_a_plain_zset(r: &mut Runner, ns: &Namespace) {
    let e = Earlier {
        game: "raw".into(),
        player: "ada".into(),
        points: 1200,
    };
    let epoch = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    r.run(e.submit().at(epoch + Duration::seconds(5)).namespace(ns))
        .unwrap();
    let board = Earlier::board("raw").namespace(ns);
    let raw: Vec<(String, f64)> = r
        .cmd("ZREVRANGE", &board.key())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .go();
    let t = Earlier::SCHEMA.tie_break.unwrap().time_bits;
    assert_eq!(t, 33);
    let f = 2f64.powi(i32::from(t));
    // The module docs' example, number for number.
    assert_eq!(raw, vec![("ada".to_owned(), 1200.0 * f + (f - 1.0 - 5.0))]);
    assert_eq!((raw[0].1 / f).floor(), 1200.0);
    let (real, at) = Earlier::SCHEMA.decode_stored(raw[0].1);
    assert_eq!(real, 1200.0);
    assert_eq!(at, Some(epoch + Duration::seconds(5)));

    // A board without a tie-break stores the real score: another client's
    // ZADD reads back, and ours reads in redis-cli.
    let plain = HighOrdinal::board("g").namespace(ns);
    r.run(HighOrdinal::new("lib", 7).submit().namespace(ns))
        .unwrap();
    let _: i64 = r.cmd("ZADD", &plain.key()).arg(9).arg("cli").go();
    let top: Vec<(String, f64)> = r
        .cmd("ZREVRANGE", &plain.key())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .go();
    assert_eq!(top, vec![("cli".to_owned(), 9.0), ("lib".to_owned(), 7.0)]);
    let e = r.run(plain.entry("cli")).unwrap().unwrap();
    assert_eq!((e.rank, e.score), (1, 9));
    assert!(e.data.is_none(), "no member data was written for cli");
    let data: String = r
        .cmd("HGET", &format!("{}:#data", plain.key()))
        .arg("lib")
        .go();
    assert_eq!(data, r#"{"note":"lib:7"}"#);
}

// ---------------------------------------------------------------------------
// Update policies and member data

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{pol:{game}}}", update = "keep_best")]
struct Best {
    game: String,
    #[leaderboard(member)]
    player: u64,
    #[leaderboard(score)]
    points: u32,
    level: u8,
    #[leaderboard(rename = "nick")]
    name: Option<String>,
    #[leaderboard(skip)]
    scratch: Vec<u8>,
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{total:{game}}}", update = "add", rank = "competition")]
struct Total {
    game: String,
    #[leaderboard(member)]
    player: u64,
    #[leaderboard(score)]
    points: u8,
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{fast:{game}}}", order = "low_first", update = "keep_best")]
struct Fastest {
    game: String,
    #[leaderboard(member)]
    player: u64,
    #[leaderboard(score)]
    millis: u64,
}

fn update_policies(r: &mut Runner, ns: &Namespace) {
    let best = |points, level, name: Option<&str>| Best {
        game: "g".into(),
        player: 7,
        points,
        level,
        name: name.map(str::to_owned),
        scratch: vec![1],
    };
    let out = r
        .run(best(100, 1, Some("ada")).submit().namespace(ns))
        .unwrap();
    assert_eq!(
        (out.score, out.rank, out.updated),
        (Some(100), Some(1), true)
    );
    // A worse run keeps the best score and its data.
    let out = r.run(best(90, 2, None).submit().namespace(ns)).unwrap();
    assert_eq!(
        (out.score, out.rank, out.updated),
        (Some(100), Some(1), false)
    );
    let board = Best::board("g").namespace(ns);
    let e = r.run(board.entry(&7)).unwrap().unwrap();
    assert_eq!(
        e.data,
        Some(Best {
            scratch: Vec::new(),
            ..best(100, 1, Some("ada"))
        })
    );
    // A better one replaces both; `None` is an absent key.
    let out = r.run(best(120, 3, None).submit().namespace(ns)).unwrap();
    assert_eq!((out.score, out.updated), (Some(120), true));
    let raw: String = r
        .cmd("HGET", &format!("{}:#data", board.key()))
        .arg("7")
        .go();
    assert_eq!(raw, r#"{"level":3}"#);
    let e = r.run(board.entry(&7)).unwrap().unwrap();
    assert_eq!(e.data.unwrap().name, None);

    // Low-first keep-best keeps the lowest.
    let fast = |millis| Fastest {
        game: "g".into(),
        player: 1,
        millis,
    };
    r.run(fast(900).submit().namespace(ns)).unwrap();
    let out = r.run(fast(950).submit().namespace(ns)).unwrap();
    assert_eq!((out.score, out.updated), (Some(900), false));
    let out = r.run(fast(800).submit().namespace(ns)).unwrap();
    assert_eq!((out.score, out.updated), (Some(800), true));

    // Add sums, and refuses to leave the score type's range, writing nothing.
    let total = |player, points| Total {
        game: "g".into(),
        player,
        points,
    };
    r.run(total(1, 200).submit().namespace(ns)).unwrap();
    let out = r.run(total(1, 55).submit().namespace(ns)).unwrap();
    assert_eq!(out.score, Some(255));
    let err = r.run(total(1, 1).submit().namespace(ns)).unwrap_err();
    assert!(
        matches!(&err, Error::ScoreNotEncodable { member, value, .. } if member == "1" && value == "256"),
        "{err}"
    );
    let tboard = Total::board("g").namespace(ns);
    assert_eq!(r.run(tboard.score(&1)).unwrap(), Some(255));
    let err = r.run(tboard.increment(&1, -256)).unwrap_err();
    assert!(matches!(err, Error::ScoreNotEncodable { .. }), "{err}");
    let out = r.run(tboard.increment(&1, -55)).unwrap();
    assert_eq!(out.score, Some(200));
    // Increment of a new member starts from zero; competition rank.
    let out = r.run(tboard.increment(&2, 200)).unwrap();
    assert_eq!((out.score, out.rank), (Some(200), Some(1)));
    assert_eq!(r.run(tboard.rank(&1)).unwrap(), Some(1));
}

/// Member data follows the board through every write.
fn member_data_in_step(r: &mut Runner, ns: &Namespace) {
    let board = Best::board("d").namespace(ns);
    let data_key = format!("{}:#data", board.key());
    let entry = |player, points| Best {
        game: "d".into(),
        player,
        points,
        level: 1,
        name: Some(format!("p{player}")),
        scratch: Vec::new(),
    };
    for p in 1..=3 {
        r.run(entry(p, 10 * p as u32).submit().namespace(ns))
            .unwrap();
    }
    let n: i64 = r.cmd("HLEN", &data_key).go();
    assert_eq!(n, 3);
    // An increment of a member without data: on the board, no data.
    r.run(board.increment(&9, 5)).unwrap();
    let e = r.run(board.entry(&9)).unwrap().unwrap();
    assert_eq!((e.score, e.data), (5, None));
    // Remove takes the data too.
    assert!(r.run(board.remove(&2)).unwrap());
    assert!(!r.run(board.remove(&2)).unwrap());
    let has: bool = r.cmd("HEXISTS", &data_key).arg("2").go();
    assert!(!has);
    let tops: Vec<Option<String>> = r
        .run(board.top(10))
        .unwrap()
        .into_iter()
        .map(|e| e.data.and_then(|d| d.name))
        .collect();
    assert_eq!(tops, vec![Some("p3".into()), Some("p1".into()), None]);
    // Several members at once, absent ones as None, in the order given.
    let got = r.run(board.entries_of(&[3u64, 2, 1])).unwrap();
    let got: Vec<Option<(u64, u64)>> = got
        .into_iter()
        .map(|e| e.map(|e| (e.member, e.rank)))
        .collect();
    assert_eq!(got, vec![Some((3, 1)), None, Some((1, 2))]);
    assert!(r.run(board.entries_of(&[] as &[u64])).unwrap().is_empty());
    // Clear removes the board with its data.
    assert!(r.run(board.clear()).unwrap());
    assert!(!r.run(board.clear()).unwrap());
    let exists: i64 = r.cmd("EXISTS", &data_key).go();
    assert_eq!(exists, 0);
    assert_eq!(r.run(board.count()).unwrap(), 0);
}

// ---------------------------------------------------------------------------
// Windows

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(
    key = "{{win:{game}}}",
    update = "add",
    windows(daily = "2d", weekly, monthly = "90d")
)]
struct Daily {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i32,
    country: String,
}

fn windows_roll_over(r: &mut Runner, ns: &Namespace) {
    let entry = |player: &str, points| Daily {
        game: "g".into(),
        player: player.into(),
        points,
        country: "FR".into(),
    };
    // A Saturday late evening, then Sunday, then Monday (a new ISO week),
    // then the first of the next month: no sleeping, the time is given, and
    // it is ahead of now, so no window has expired.
    let (sat_day, next_month) = weekend_ahead();
    let sat = sat_day.and_hms_opt(23, 59, 59).unwrap().and_utc();
    let sun = sat + Duration::seconds(1);
    let mon = sun + Duration::days(1);
    let dec = next_month.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let out = r
        .run(entry("ada", 10).submit().at(sat).namespace(ns))
        .unwrap();
    assert_eq!(out.windows.len(), 3);
    assert_eq!(
        out.windows.iter().map(|w| w.period).collect::<Vec<_>>(),
        vec![
            Period::Day(sat_day),
            Period::Week(sat_day - Duration::days(5)),
            Period::Month(sat_day.with_day(1).unwrap()),
        ]
    );
    r.run(entry("ada", 5).submit().at(sun).namespace(ns))
        .unwrap();
    r.run(entry("bob", 7).submit().at(sun).namespace(ns))
        .unwrap();
    let out = r
        .run(entry("ada", 1).submit().at(mon).namespace(ns))
        .unwrap();
    assert_eq!(out.score, Some(16));
    assert_eq!(
        out.windows.iter().map(|w| w.score).collect::<Vec<_>>(),
        vec![Some(1), Some(1), Some(16)]
    );
    r.run(entry("bob", 3).submit().at(dec).namespace(ns))
        .unwrap();

    let board = Daily::board("g").namespace(ns);
    let scores = |r: &mut Runner, b: &Board<Daily>| -> Vec<(String, i32)> {
        r.run(b.top(10))
            .unwrap()
            .into_iter()
            .map(|e| (e.member, e.score))
            .collect()
    };
    let s = |v: &[(&str, i32)]| -> Vec<(String, i32)> {
        v.iter().map(|(m, p)| (m.to_string(), *p)).collect()
    };
    assert_eq!(scores(r, &board), s(&[("ada", 16), ("bob", 10)]));
    assert_eq!(scores(r, &board.clone().at(sat).daily()), s(&[("ada", 10)]));
    assert_eq!(
        scores(r, &board.clone().at(sun).daily()),
        s(&[("bob", 7), ("ada", 5)])
    );
    assert_eq!(
        scores(r, &board.clone().at(sun).weekly()),
        s(&[("ada", 15), ("bob", 7)])
    );
    assert_eq!(scores(r, &board.clone().at(mon).weekly()), s(&[("ada", 1)]));
    assert_eq!(
        scores(r, &board.clone().at(mon).monthly()),
        s(&[("ada", 16), ("bob", 7)])
    );
    assert_eq!(
        scores(r, &board.clone().at(dec).monthly()),
        s(&[("bob", 3)])
    );
    let sun_day = sat_day + Duration::days(1);
    let day = Period::Day(sun_day);
    assert_eq!(
        scores(r, &board.clone().period(day)),
        s(&[("bob", 7), ("ada", 5)])
    );
    // Keys carry the period; each window board expires its retention after
    // its period ends, with its data.
    let sunday = board.clone().period(day);
    assert!(
        sunday
            .key()
            .ends_with(&format!("{{win:g}}:#d:{}", sun_day.format("%Y-%m-%d"))),
        "{}",
        sunday.key()
    );
    let end = (sun_day + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let expires: i64 = r.cmd("PEXPIRETIME", &sunday.key()).go();
    assert_eq!(expires, (end + Duration::days(2)).timestamp_millis());
    let expires: i64 = r
        .cmd("PEXPIRETIME", &format!("{}:#data", sunday.key()))
        .go();
    assert_eq!(expires, (end + Duration::days(2)).timestamp_millis());
    let week = board.clone().at(sun).weekly();
    let iso = sun_day.iso_week();
    assert!(
        week.key()
            .ends_with(&format!(":#w:{}-W{:02}", iso.year(), iso.week())),
        "{}",
        week.key()
    );
    let expires: i64 = r.cmd("PEXPIRETIME", &week.key()).go();
    assert_eq!(expires, (end + Duration::days(7)).timestamp_millis());
    let month = board.clone().at(dec).monthly();
    assert!(
        month
            .key()
            .ends_with(&format!(":#m:{}", next_month.format("%Y-%m"))),
        "{}",
        month.key()
    );
    let all: i64 = r.cmd("PTTL", &board.key()).go();
    assert_eq!(all, -1, "the all-time board does not expire");
    // Remove takes the member off the all-time board and the current
    // periods (Monday's), not off Sunday's board.
    assert!(r.run(board.clone().at(mon).remove("ada")).unwrap());
    assert_eq!(scores(r, &board), s(&[("bob", 10)]));
    assert_eq!(scores(r, &board.clone().at(mon).daily()), vec![]);
    assert_eq!(
        scores(r, &board.clone().period(day)),
        s(&[("bob", 7), ("ada", 5)])
    );
    // A window the model does not declare is refused before sending.
    let err = r
        .run(HighOrdinal::board("g").namespace(ns).daily().top(3))
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { reason, .. } if reason.contains("no daily window")),
        "{err}"
    );
    let _ = Window::Daily;
}

// ---------------------------------------------------------------------------
// Cap

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{cap:{game}}}", rank = "dense", cap = 3, windows(daily))]
struct Capped {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i64,
    tag: String,
}

fn cap_trims(r: &mut Runner, ns: &Namespace) {
    let entry = |p: &str, points| Capped {
        game: "g".into(),
        player: p.into(),
        points,
        tag: p.to_uppercase(),
    };
    for (p, s) in [("a", 50), ("b", 40), ("c", 30), ("d", 20)] {
        r.run(entry(p, s).submit().at(t0()).namespace(ns)).unwrap();
    }
    let board = Capped::board("g").namespace(ns).at(t0());
    let members = |r: &mut Runner, b: &Board<Capped>| -> Vec<String> {
        r.run(b.top(10))
            .unwrap()
            .into_iter()
            .map(|e| e.member)
            .collect()
    };
    assert_eq!(members(r, &board), vec!["a", "b", "c"]);
    assert_eq!(members(r, &board.clone().daily()), vec!["a", "b", "c"]);
    // A member below the cap gets no rank: it is not on the board.
    let out = r
        .run(entry("e", 10).submit().at(t0()).namespace(ns))
        .unwrap();
    assert_eq!((out.score, out.rank), (None, None));
    assert_eq!(out.windows[0].rank, None);
    // A better one pushes the last out, with its data and dense band.
    let out = r
        .run(entry("f", 45).submit().at(t0()).namespace(ns))
        .unwrap();
    assert_eq!(out.rank, Some(2));
    assert_eq!(members(r, &board), vec!["a", "f", "b"]);
    let data: Vec<String> = r.cmd("HKEYS", &format!("{}:#data", board.key())).go();
    let mut data = data;
    data.sort();
    assert_eq!(data, vec!["a", "b", "f"]);
    let dense: Vec<String> = r
        .cmd("ZRANGE", &format!("{}:#dense", board.key()))
        .arg(0)
        .arg(-1)
        .go();
    assert_eq!(dense, vec!["40", "45", "50"]);
    assert_eq!(r.run(board.count()).unwrap(), 3);
}

// ---------------------------------------------------------------------------
// Refusals: values that cannot be encoded are refused before anything is sent

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{enc:{game}}}")]
struct Big {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: u64,
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{real:{game}}}")]
struct Real {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: f64,
}

fn encoding_refusals(r: &mut Runner, ns: &Namespace) {
    let big = |points| Big {
        game: "g".into(),
        player: "x".into(),
        points,
    };
    r.run(big((1 << 53) - 1).submit().namespace(ns)).unwrap();
    for refused in [1 << 53, (1 << 53) + 1] {
        let err = r.run(big(refused).submit().namespace(ns)).unwrap_err();
        assert!(
            matches!(&err, Error::ScoreNotEncodable { reason, .. } if reason.contains("2^53 - 1")),
            "{err}"
        );
    }
    assert_eq!(
        r.run(Big::board("g").namespace(ns).score("x")).unwrap(),
        Some((1 << 53) - 1)
    );
    let err = r
        .run(Big::submit_many(&[big(1), big(u64::MAX)]).namespace(ns))
        .unwrap_err();
    assert!(matches!(err, Error::ScoreNotEncodable { .. }), "{err}");
    assert_eq!(
        r.run(Big::board("g").namespace(ns).score("x")).unwrap(),
        Some((1 << 53) - 1),
        "a refused bulk writes nothing"
    );
    let real = |points| Real {
        game: "g".into(),
        player: "x".into(),
        points,
    };
    assert!(matches!(
        r.run(real(f64::NAN).submit().namespace(ns)).unwrap_err(),
        Error::ScoreNotEncodable { .. }
    ));
    // Infinities are scores Redis holds.
    r.run(real(f64::NEG_INFINITY).submit().namespace(ns))
        .unwrap();
    assert_eq!(
        r.run(Real::board("g").namespace(ns).score("x")).unwrap(),
        Some(f64::NEG_INFINITY)
    );
    r.run(real(0.1 + 0.2).submit().namespace(ns)).unwrap();
    assert_eq!(
        r.run(Real::board("g").namespace(ns).score("x")).unwrap(),
        Some(0.1 + 0.2),
        "floats round-trip exactly"
    );

    let earlier = |points| Earlier {
        game: "enc".into(),
        player: "x".into(),
        points,
    };
    let board = Earlier::board("enc").namespace(ns);
    let err = r
        .run(earlier(1_000_001).submit().at(t0()).namespace(ns))
        .unwrap_err();
    assert!(
        matches!(&err, Error::ScoreNotEncodable { reason, .. } if reason.contains("max_score")),
        "{err}"
    );
    let before_epoch = Utc.with_ymd_and_hms(2024, 12, 31, 23, 59, 59).unwrap();
    let err = r
        .run(earlier(1).submit().at(before_epoch).namespace(ns))
        .unwrap_err();
    assert!(
        matches!(&err, Error::ScoreNotEncodable { reason, .. } if reason.contains("tie_epoch")),
        "{err}"
    );
    let horizon = Earlier::SCHEMA.tie_break.unwrap().horizon_ms();
    let past = DateTime::from_timestamp_millis(horizon).unwrap();
    let err = r
        .run(earlier(1).submit().at(past).namespace(ns))
        .unwrap_err();
    assert!(
        matches!(&err, Error::ScoreNotEncodable { reason, .. } if reason.contains("horizon")),
        "{err}"
    );
    r.run(earlier(999_999).submit().at(t0()).namespace(ns))
        .unwrap();
    let err = r.run(board.clone().at(t0()).increment("x", 2)).unwrap_err();
    assert!(matches!(err, Error::ScoreNotEncodable { .. }), "{err}");
    assert_eq!(r.run(board.score("x")).unwrap(), Some(999_999));
    let lap = |seconds| LapTime {
        game: "enc".into(),
        driver: "x".into(),
        seconds,
    };
    let err = r.run(lap(1.0005).submit().namespace(ns)).unwrap_err();
    assert!(
        matches!(&err, Error::ScoreNotEncodable { reason, .. } if reason.contains("decimal")),
        "{err}"
    );
    r.run(lap(1.005).submit().namespace(ns)).unwrap();
    assert_eq!(
        r.run(LapTime::board("enc").namespace(ns).score("x"))
            .unwrap(),
        Some(1.005)
    );
    // Pages start at 1.
    let err = r.run(board.page(0, 10)).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(r.run(board.top(0)).unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Counts, slices, batches

fn counts_and_slices(r: &mut Runner, ns: &Namespace) {
    let board = HighCompetition::board("g").namespace(ns);
    assert_eq!(r.run(board.count()).unwrap(), 0);
    assert!(r.run(board.top(5)).unwrap().is_empty());
    assert_eq!(r.run(board.score("a")).unwrap(), None);
    assert_eq!(r.run(board.standing("a")).unwrap(), None);
    assert_eq!(r.run(board.entry("a")).unwrap(), None);
    for (p, s) in TIED {
        r.run(HighCompetition::new(p, s).submit().namespace(ns))
            .unwrap();
    }
    assert_eq!(r.run(board.count()).unwrap(), 8);
    assert_eq!(r.run(board.count_between(20, 40)).unwrap(), 6);
    assert_eq!(r.run(board.count_between(41, 49)).unwrap(), 0);
    let s: Vec<(String, u64)> = r
        .run(board.slice(2, 4))
        .unwrap()
        .into_iter()
        .map(|e| (e.member, e.rank))
        .collect();
    assert_eq!(s, vec![("c".into(), 2), ("b".into(), 2), ("e".into(), 5)]);
    assert!(r.run(board.slice(100, 200)).unwrap().is_empty());
    assert!(r.run(board.page(9, 1)).unwrap().is_empty());
    assert_eq!(r.run(board.around("a", 100)).unwrap().unwrap().len(), 8);
    // Reads of one board and a write compose into one pipeline.
    let (top, count, rank, out) = r
        .run(batch((
            board.top(2),
            board.count(),
            board.rank("e"),
            HighCompetition::new("i", 35).submit().namespace(ns),
        )))
        .unwrap();
    assert_eq!(top.len(), 2);
    assert_eq!((count, rank), (8, Some(5)));
    assert_eq!(out.rank, Some(5));
    assert_eq!(r.run(board.rank("e")).unwrap(), Some(6));
    // The seeds' functions, typed.
    assert_eq!(r.run(board.score("a")).unwrap(), Some(50)); // get_user_score
    assert_eq!(r.run(board.rank("a")).unwrap(), Some(1)); // get_user_rank
}

// ---------------------------------------------------------------------------
// Bulk submit

fn bulk_submit(r: &mut Runner, ns: &Namespace) {
    // Fast path (plain ZADD): a keep-best model on one sorted set, over
    // several boards (several slots on a Cluster).
    let entries: Vec<Fastest> = (0..2500u64)
        .map(|i| Fastest {
            game: format!("g{}", i % 5),
            player: i % 1000,
            millis: 10_000 - i,
        })
        .collect();
    let out = r.run(Fastest::submit_many(&entries).namespace(ns)).unwrap();
    assert_eq!(out.submitted, 2500);
    for g in 0..5 {
        let board = Fastest::board(format!("g{g}")).namespace(ns);
        assert_eq!(r.run(board.count()).unwrap(), 200);
        // Member 0 of g0 got 10_000, 9_000 and 8_000: keep-best kept 8_000.
        let best = entries
            .iter()
            .filter(|e| e.game == format!("g{g}"))
            .map(|e| e.millis)
            .min()
            .unwrap();
        let top = r.run(board.top(1)).unwrap();
        assert_eq!(top[0].score, best);
    }
    assert_eq!(
        r.run(Fastest::board("g0").namespace(ns).score(&0)).unwrap(),
        Some(8000)
    );
    // Submitting the same entries again changes nothing.
    let again = r.run(Fastest::submit_many(&entries).namespace(ns)).unwrap();
    assert_eq!(again.changed, 0);

    // Script path: windows, data, add policy. Same result as one by one.
    let entries: Vec<Daily> = (0..300)
        .map(|i| Daily {
            game: "bulk".into(),
            player: format!("p{}", i % 100),
            points: i,
            country: format!("c{i}"),
        })
        .collect();
    let out = r
        .run(Daily::submit_many(&entries).at(t0()).namespace(ns))
        .unwrap();
    assert_eq!((out.submitted, out.changed), (300, 300));
    let board = Daily::board("bulk").namespace(ns).at(t0());
    let e = r.run(board.entry("p7")).unwrap().unwrap();
    assert_eq!(e.score, 7 + 107 + 207);
    assert_eq!(e.data.unwrap().country, "c207");
    let d = r.run(board.clone().daily().entry("p7")).unwrap().unwrap();
    assert_eq!(d.score, 7 + 107 + 207);
    assert_eq!(r.run(board.count()).unwrap(), 100);
}

// ---------------------------------------------------------------------------
// Merge

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "{{merge}}:{region}", rank = "dense")]
struct Regional {
    region: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i64,
    from: String,
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(
    key = "{{merge-total}}:{region}",
    update = "add",
    tie_break = "earlier",
    max_score = 1000
)]
struct RegionalTotal {
    region: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i16,
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "spread:{region}")]
struct Spread {
    region: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i64,
}

fn merge_boards(r: &mut Runner, ns: &Namespace) {
    let reg = |region: &str, player: &str, points| Regional {
        region: region.into(),
        player: player.into(),
        points,
        from: region.into(),
    };
    for e in [
        reg("eu", "a", 10),
        reg("eu", "b", 20),
        reg("us", "b", 30),
        reg("us", "c", 5),
    ] {
        r.run(e.submit().namespace(ns)).unwrap();
    }
    let eu = Regional::board("eu").namespace(ns);
    let us = Regional::board("us").namespace(ns);
    let world = Regional::board("world").namespace(ns);
    let n = r.run(Regional::union(&[&eu, &us], &world)).unwrap();
    assert_eq!(n, 3);
    let got: Vec<(String, i64, u64, String)> = r
        .run(world.top(10))
        .unwrap()
        .into_iter()
        .map(|e| (e.member, e.score, e.rank, e.data.unwrap().from))
        .collect();
    assert_eq!(
        got,
        vec![
            ("b".into(), 30, 1, "eu".into()),
            ("a".into(), 10, 2, "eu".into()),
            ("c".into(), 5, 3, "us".into()),
        ],
        "best score, data from the first source that has it, dense set rebuilt"
    );
    let both = Regional::board("both").namespace(ns);
    let n = r
        .run(Regional::intersection(&[&eu, &us], &both).aggregate(Aggregate::Sum))
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(r.run(both.score("b")).unwrap(), Some(50));
    // A merge replaces the destination.
    r.run(Regional::union(&[&us], &world).ttl(std::time::Duration::from_secs(60)))
        .unwrap();
    assert_eq!(r.run(world.count()).unwrap(), 2);
    let ttl: i64 = r.cmd("PTTL", &world.key()).go();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");

    // Sums on tie-break boards decode, add and re-encode.
    let t = t0();
    for (i, (region, points)) in [("eu", 300), ("us", 400), ("eu", 5)]
        .into_iter()
        .enumerate()
    {
        let e = RegionalTotal {
            region: region.into(),
            player: "p".into(),
            points,
        };
        r.run(e.submit().at(t + Duration::seconds(i as i64)).namespace(ns))
            .unwrap();
    }
    let q = RegionalTotal {
        region: "us".into(),
        player: "q".into(),
        points: 705,
    };
    r.run(q.submit().at(t).namespace(ns)).unwrap();
    let eu = RegionalTotal::board("eu").namespace(ns);
    let us = RegionalTotal::board("us").namespace(ns);
    let all = RegionalTotal::board("all").namespace(ns);
    r.run(RegionalTotal::union(&[&eu, &us], &all)).unwrap();
    let top = r.run(all.top(10)).unwrap();
    let got: Vec<(&str, i16, u64)> = top
        .iter()
        .map(|e| (e.member.as_str(), e.score, e.rank))
        .collect();
    // q reached 705 at t, p only at t + 2 s: q ranks first.
    assert_eq!(got, vec![("q", 705, 1), ("p", 705, 2)]);
    assert_eq!(top[1].achieved_at, Some(t + Duration::seconds(2)));
    // A sum past max_score is refused and writes nothing.
    let err = r
        .run(RegionalTotal::union(&[&all, &eu, &us], &all))
        .unwrap_err();
    assert!(matches!(err, Error::ScoreNotEncodable { .. }), "{err}");
    assert_eq!(r.run(all.score("p")).unwrap(), Some(705));

    // Boards in different slots cannot be merged: refused before sending.
    let a = Spread::board("a").namespace(ns);
    let b = Spread::board("b").namespace(ns);
    let err = r.run(Spread::union(&[&a, &b], &a)).unwrap_err();
    assert!(matches!(err, Error::CrossSlot { .. }), "{err}");
    let err = r.run(Spread::union(&[], &a)).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
}

// ---------------------------------------------------------------------------
// Scan

fn scan_whole_board(r: &mut Runner, ns: &Namespace) {
    let entries: Vec<Best> = (0..600u64)
        .map(|i| Best {
            game: "scan".into(),
            player: i,
            points: (i % 37) as u32,
            level: (i % 7) as u8,
            name: Some(format!("n{i}")),
            scratch: Vec::new(),
        })
        .collect();
    r.run(Best::submit_many(&entries).namespace(ns)).unwrap();
    let board = Best::board("scan").namespace(ns);
    let mut seen = std::collections::BTreeMap::new();
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        let page = r.run(board.scan_page(cursor, 100)).unwrap();
        pages += 1;
        for item in page.items {
            let data = item.data.unwrap();
            assert_eq!(data.name, Some(format!("n{}", item.member)));
            seen.insert(item.member, item.score);
        }
        cursor = page.cursor;
        if cursor == 0 {
            break;
        }
    }
    assert!(pages > 1, "a big board takes several steps");
    assert_eq!(seen.len(), 600);
    assert!(seen.iter().all(|(m, s)| u64::from(*s) == m % 37));
}

// ---------------------------------------------------------------------------
// Hostile members and board ids

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "host:{{{game}}}", rank = "competition", windows(daily))]
struct Hostile {
    game: String,
    #[leaderboard(member)]
    player: Vec<u8>,
    #[leaderboard(score)]
    points: i32,
    label: String,
}

#[derive(Leaderboard, Debug, Clone, PartialEq)]
#[leaderboard(key = "host:{game}")]
struct HostileKey {
    game: String,
    #[leaderboard(member)]
    player: String,
    #[leaderboard(score)]
    points: i32,
}

fn hostile_members(r: &mut Runner, ns: &Namespace) {
    let members: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b":".to_vec(),
        b"{x}".to_vec(),
        b"*?[]\\".to_vec(),
        b"a b\nc\r\n".to_vec(),
        b"\x00\xff\xfe".to_vec(),
        "ünïcödé 🎲".as_bytes().to_vec(),
        br#"{"json":"looking"}"#.to_vec(),
        b"%25%3A#idx".to_vec(),
        vec![b'x'; 10_000],
    ];
    for (i, m) in members.iter().enumerate() {
        let e = Hostile {
            game: "g".into(),
            player: m.clone(),
            points: i as i32,
            label: format!("l{i}\"\\"),
        };
        let out = r.run(e.submit().at(t0()).namespace(ns)).unwrap();
        assert_eq!(out.rank, Some(1));
    }
    let board = Hostile::board("g").namespace(ns).at(t0());
    let top = r.run(board.top(100)).unwrap();
    assert_eq!(top.len(), members.len());
    for e in &top {
        let i = members.iter().position(|m| *m == e.member).unwrap();
        assert_eq!(e.score, i as i32);
        assert_eq!(e.data.as_ref().unwrap().label, format!("l{i}\"\\"));
    }
    for (i, m) in members.iter().enumerate() {
        assert_eq!(
            r.run(board.rank(m.as_slice())).unwrap(),
            Some((members.len() - i) as u64)
        );
        let around = r
            .run(board.clone().daily().around(m.as_slice(), 0))
            .unwrap()
            .unwrap();
        assert_eq!(around[0].member, *m);
    }
    assert!(r.run(board.remove(b"{x}".as_slice())).unwrap());
    assert_eq!(r.run(board.count()).unwrap(), members.len() as u64 - 1);

    // Board ids are escaped in keys: they cannot add segments, a hash tag or
    // glob characters, and two ids never share a key.
    let ids = ["a:b", "a%3Ab", "{t}", "*", "ünï", " "];
    for (i, id) in ids.iter().enumerate() {
        let e = HostileKey {
            game: (*id).into(),
            player: "p".into(),
            points: i as i32,
        };
        r.run(e.submit().namespace(ns)).unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let board = HostileKey::board(*id).namespace(ns);
        assert_eq!(r.run(board.score("p")).unwrap(), Some(i as i32), "{id}");
        assert!(
            !board.key()[ns.as_str().len()..].contains(['{', '}', '*', ' ']),
            "{}",
            board.key()
        );
    }
    // An empty id inside the hash tag would make Redis hash the whole key:
    // the family would span slots, so the write is refused before sending.
    let e = Hostile {
        game: String::new(),
        player: b"p".to_vec(),
        points: 1,
        label: String::new(),
    };
    let err = r.run(e.submit().at(t0()).namespace(ns)).unwrap_err();
    assert!(matches!(err, Error::CrossSlot { .. }), "{err}");
}

// ---------------------------------------------------------------------------
// Bad data in Redis gives typed errors, never a panic

fn bad_data(r: &mut Runner, ns: &Namespace) {
    let board = Best::board("bad").namespace(ns);
    for (player, points) in [(1, 10), (3, 30), (4, 40)] {
        let e = Best {
            game: "bad".into(),
            player,
            points,
            level: 1,
            name: None,
            scratch: Vec::new(),
        };
        r.run(e.submit().namespace(ns)).unwrap();
    }
    let data_key = format!("{}:#data", board.key());
    let _: i64 = r.cmd("HSET", &data_key).arg("1").arg("{not json").go();
    // A page leaves the entry it cannot read out; the others keep their
    // ranks. Strict reads fail with the error naming the key.
    let page = r.run(board.top(3)).unwrap();
    assert_eq!(
        page.iter().map(|e| (e.rank, e.member)).collect::<Vec<_>>(),
        [(1, 4), (2, 3)]
    );
    let err = r.run(board.top(3).strict()).unwrap_err();
    assert!(
        matches!(&err, Error::Decode(d) if d.key == data_key),
        "{err}"
    );
    let _: i64 = r
        .cmd("HSET", &data_key)
        .arg("1")
        .arg(r#"{"level":"high"}"#)
        .go();
    // A read of that member names the field.
    let err = r.run(board.entry(&1)).unwrap_err();
    assert!(err.to_string().contains("level"), "{err}");
    // Reads without data still see it.
    assert_eq!(r.run(board.top(3).without_data()).unwrap()[2].score, 10);
    // A member that is not a u64 (another client's ZADD): every page that
    // holds it still reads, ranks counting it; scans skip it too.
    let _: i64 = r.cmd("ZADD", &board.key()).arg(35).arg("ann").go();
    let _: i64 = r.cmd("HDEL", &data_key).arg("1").go();
    for page in [
        r.run(board.top(5).without_data()).unwrap(),
        r.run(board.top(5)).unwrap(),
        r.run(board.page(1, 5)).unwrap(),
        r.run(board.around(&3, 2)).unwrap().unwrap(),
    ] {
        assert_eq!(
            page.iter().map(|e| (e.rank, e.member)).collect::<Vec<_>>(),
            [(1, 4), (3, 3), (4, 1)]
        );
    }
    let err = r.run(board.top(5).without_data().strict()).unwrap_err();
    assert!(
        matches!(&err, Error::Decode(d) if d.field.as_deref() == Some("member")),
        "{err}"
    );
    let scanned = r.run(board.scan_page(0, 100)).unwrap();
    assert_eq!(scanned.items.len(), 3);
    assert!(matches!(
        r.run(board.scan_page(0, 100).strict()),
        Err(Error::Decode(_))
    ));
    let _: i64 = r.cmd("ZREM", &board.key()).arg("ann").go();
    let _: i64 = r.cmd("ZADD", &board.key()).arg(-1.5).arg("2").go();
    let err = r.run(board.score(&2)).unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err}");
    assert_eq!(
        r.run(board.top(5)).unwrap().len(),
        3,
        "a score that is not a u32"
    );
    // A board key of another type.
    let other = Best::board("wrongtype").namespace(ns);
    let _: () = r.cmd("SET", &other.key()).arg("x").go();
    assert!(matches!(
        r.run(other.top(3)).unwrap_err(),
        Error::Server { .. }
    ));
}

/// The blocking iterator over a whole board, on both topologies.
#[test]
fn scan_iterator() {
    use redis_state::testing::{shared_cluster, shared_server};
    let ns = common::namespace("scan_iterator");
    let entries: Vec<HighOrdinal> = (0..700)
        .map(|i| HighOrdinal::new(&format!("p{i}"), i))
        .collect();
    let mut con = shared_server().connection().unwrap();
    HighOrdinal::submit_many(&entries)
        .namespace(&ns)
        .run(&mut con)
        .unwrap();
    let board = HighOrdinal::board("g").namespace(&ns);
    let mut seen: Vec<i64> = board
        .scan(&mut con, 100)
        .map(|r| r.unwrap().score)
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, (0..700).collect::<Vec<_>>());
    let mut ccon = shared_cluster().connection().unwrap();
    HighOrdinal::submit_many(&entries)
        .namespace(&ns)
        .run(&mut ccon)
        .unwrap();
    let n = board
        .scan(&mut ccon, 100)
        .map(|r| r.unwrap().data.unwrap().note)
        .filter(|note| note.starts_with('p'))
        .count();
    assert!(n >= 700, "every member at least once: {n}");
}

matrix!(
    high_ordinal,
    high_competition,
    high_dense,
    low_ordinal,
    low_competition,
    low_dense,
    dense_follows_writes,
    tie_break_by_time,
    raw_board_is_a_plain_zset,
    update_policies,
    member_data_in_step,
    windows_roll_over,
    cap_trims,
    encoding_refusals,
    counts_and_slices,
    bulk_submit,
    merge_boards,
    scan_whole_board,
    hostile_members,
    bad_data,
);
