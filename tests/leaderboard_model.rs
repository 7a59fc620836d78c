//! Property test: for random sequences of submits, increments and removals,
//! the scores and ranks the library returns equal a simple in-memory model of
//! the same rules (update policy, order, tie-break, rank mode), after every
//! step, for every combination of policy and rank mode.

mod common;

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Runner, Topology};
use proptest::prelude::*;
use redis_state::leaderboard::{Order, RankMode, TieWinner, UpdatePolicy};
use redis_state::prelude::*;

/// Builds an entry of a test model.
trait Make: Leaderboard<Member = String, Score = i64> + Send + Sync {
    fn make(member: &str, score: i64) -> Self;
}

macro_rules! model {
    ($name:ident, $($attr:tt)*) => {
        #[derive(Leaderboard, Debug, Clone, PartialEq)]
        #[leaderboard(key = "{{prop}}:{game}", $($attr)*)]
        struct $name {
            game: String,
            #[leaderboard(member)]
            player: String,
            #[leaderboard(score)]
            points: i64,
        }
        impl Make for $name {
            fn make(member: &str, score: i64) -> Self {
                $name { game: "g".into(), player: member.into(), points: score }
            }
        }
    };
}

model!(ReplaceOrdinal, update = "replace", rank = "ordinal");
model!(ReplaceCompetition, update = "replace", rank = "competition");
model!(ReplaceDense, update = "replace", rank = "dense");
model!(BestOrdinal, update = "keep_best", rank = "ordinal");
model!(
    BestCompetitionLow,
    update = "keep_best",
    rank = "competition",
    order = "low_first"
);
model!(BestDense, update = "keep_best", rank = "dense");
model!(
    AddOrdinalLow,
    update = "add",
    rank = "ordinal",
    order = "low_first"
);
model!(AddCompetition, update = "add", rank = "competition");
model!(AddDense, update = "add", rank = "dense");
model!(
    TieBestOrdinal,
    update = "keep_best",
    rank = "ordinal",
    tie_break = "earlier",
    max_score = 100_000
);
model!(
    TieReplaceDenseLow,
    update = "replace",
    rank = "dense",
    order = "low_first",
    tie_break = "earlier",
    max_score = 100_000
);
model!(
    TieAddCompetition,
    update = "add",
    rank = "competition",
    tie_break = "later",
    max_score = 100_000
);
model!(
    TieBestCompetitionLowLater,
    update = "keep_best",
    rank = "competition",
    order = "low_first",
    tie_break = "later",
    max_score = 100_000
);
model!(
    CappedBestDense,
    update = "keep_best",
    rank = "dense",
    cap = 4
);

#[derive(Debug, Clone)]
enum Op {
    Submit { member: u8, score: i64, dt: i64 },
    Increment { member: u8, delta: i64, dt: i64 },
    Remove { member: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    // Few members and scores, so that ties are common; time moves by 0 to 2
    // seconds per step, so that equal times are common too.
    prop_oneof![
        6 => (0u8..6, -3i64..6, 0i64..3).prop_map(|(member, score, dt)| Op::Submit { member, score, dt }),
        2 => (0u8..6, -2i64..3, 0i64..3).prop_map(|(member, delta, dt)| Op::Increment { member, delta, dt }),
        1 => (0u8..6).prop_map(|member| Op::Remove { member }),
    ]
}

/// The model: member -> (score, time index), and the rules.
struct Model {
    order: Order,
    policy: UpdatePolicy,
    mode: RankMode,
    tie: Option<TieWinner>,
    cap: Option<u64>,
    entries: HashMap<String, (i64, i64)>,
}

impl Model {
    fn new<M: Leaderboard>() -> Self {
        let s = M::SCHEMA;
        Model {
            order: s.order,
            policy: s.update,
            mode: s.rank,
            tie: s.tie_break.map(|t| t.winner),
            cap: s.cap,
            entries: HashMap::new(),
        }
    }

    /// A key that sorts best first: the stored order of the sorted set.
    fn key(&self, member: &str, score: i64, t: i64) -> (i64, i64, Vec<i16>) {
        let high = self.order == Order::HighFirst;
        let s = if high { -score } else { score };
        // The tie: earlier (smaller t) first when the earlier achiever wins.
        let t = match self.tie {
            None => 0,
            Some(TieWinner::Earlier) => t,
            Some(_) => -t,
        };
        // Equal stored scores: ZREVRANGE lists members in descending byte
        // order, ZRANGE in ascending.
        let m: Vec<i16> = member
            .bytes()
            .map(|b| if high { -i16::from(b) } else { i16::from(b) })
            .collect();
        (s, t, m)
    }

    fn better(&self, a: (i64, i64), b: (i64, i64)) -> bool {
        let (ka, kb) = (self.key("", a.0, a.1), self.key("", b.0, b.1));
        (ka.0, ka.1) < (kb.0, kb.1)
    }

    fn write(&mut self, member: &str, value: (i64, i64), add: bool) -> bool {
        let t = if self.tie.is_some() { value.1 } else { 0 };
        let old = self.entries.get(member).copied();
        let new = if add {
            (old.map_or(0, |o| o.0) + value.0, t)
        } else {
            (value.0, t)
        };
        let apply =
            add || self.policy == UpdatePolicy::Replace || old.is_none_or(|o| self.better(new, o));
        if apply {
            self.entries.insert(member.to_owned(), new);
        }
        if let Some(cap) = self.cap {
            while self.entries.len() as u64 > cap {
                let worst = self.sorted().pop().unwrap().0;
                self.entries.remove(&worst);
            }
        }
        apply
    }

    fn submit(&mut self, member: &str, score: i64, t: i64) -> bool {
        let add = self.policy == UpdatePolicy::Add;
        self.write(member, (score, t), add)
    }

    fn sorted(&self) -> Vec<(String, i64)> {
        let mut v: Vec<(&String, &(i64, i64))> = self.entries.iter().collect();
        v.sort_by_key(|(m, (s, t))| self.key(m, *s, *t));
        v.into_iter().map(|(m, (s, _))| (m.clone(), *s)).collect()
    }

    /// (member, score, rank), best first.
    fn ranked(&self) -> Vec<(String, i64, u64)> {
        let sorted = self.sorted();
        let mut out = Vec::with_capacity(sorted.len());
        for (i, (m, s)) in sorted.iter().enumerate() {
            let better_scores: Vec<i64> = sorted[..i]
                .iter()
                .map(|(_, x)| *x)
                .filter(|x| x != s)
                .collect();
            let rank = match self.mode {
                RankMode::Ordinal => i as u64 + 1,
                RankMode::Competition => better_scores.len() as u64 + 1,
                _ => {
                    let mut d = better_scores;
                    d.dedup();
                    d.len() as u64 + 1
                }
            };
            out.push((m.clone(), *s, rank));
        }
        out
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn check<M: Make>(r: &mut Runner, ops: &[Op]) -> Result<(), TestCaseError> {
    let ns = common::namespace("prop");
    let board = M::board_of(&M::make("", 0)).namespace(&ns);
    let mut model = Model::new::<M>();
    let mut now = 0i64;
    for op in ops {
        match op {
            Op::Submit { member, score, dt } => {
                now += dt;
                let m = format!("m{member}");
                let at = t0() + Duration::seconds(now);
                let out = r
                    .run(M::make(&m, *score).submit().at(at).namespace(&ns))
                    .unwrap();
                let applied = model.submit(&m, *score, now);
                prop_assert_eq!(out.updated, applied, "updated flag after {:?}", op);
                let want = model.ranked().into_iter().find(|(x, _, _)| *x == m);
                prop_assert_eq!(
                    out.score,
                    want.as_ref().map(|w| w.1),
                    "score after {:?}",
                    op
                );
                prop_assert_eq!(out.rank, want.as_ref().map(|w| w.2), "rank after {:?}", op);
            }
            Op::Increment { member, delta, dt } => {
                now += dt;
                let m = format!("m{member}");
                let at = t0() + Duration::seconds(now);
                let out = r
                    .run(board.clone().at(at).increment(m.as_str(), *delta))
                    .unwrap();
                model.write(&m, (*delta, now), true);
                let want = model.ranked().into_iter().find(|(x, _, _)| *x == m);
                prop_assert_eq!(out.rank, want.as_ref().map(|w| w.2), "rank after {:?}", op);
            }
            Op::Remove { member } => {
                let m = format!("m{member}");
                let was = model.entries.remove(&m).is_some();
                prop_assert_eq!(r.run(board.remove(m.as_str())).unwrap(), was);
            }
        }
        let want = model.ranked();
        let got: Vec<(String, i64, u64)> = r
            .run(board.top(100))
            .unwrap()
            .into_iter()
            .map(|e| (e.member, e.score, e.rank))
            .collect();
        prop_assert_eq!(&got, &want, "board after {:?}", op);
        // Each member's own rank, and the ranks of a page that starts in
        // the middle of the board.
        for (m, s, rank) in &want {
            prop_assert_eq!(r.run(board.rank(m.as_str())).unwrap(), Some(*rank));
            prop_assert_eq!(r.run(board.score(m.as_str())).unwrap(), Some(*s));
        }
        if want.len() > 2 {
            let page: Vec<(String, i64, u64)> = r
                .run(board.slice(2, 100))
                .unwrap()
                .into_iter()
                .map(|e| (e.member, e.score, e.rank))
                .collect();
            prop_assert_eq!(&page[..], &want[2..], "slice from 2 after {:?}", op);
        }
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

macro_rules! props {
    ($($test:ident: $ty:ident),* $(,)?) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $test(ops in proptest::collection::vec(op(), 1..24)) {
                    let mut r = Runner::new(Topology::Standalone, false);
                    check::<$ty>(&mut r, &ops)?;
                }
            )*
        }
    };
}

props!(
    replace_ordinal: ReplaceOrdinal,
    replace_competition: ReplaceCompetition,
    replace_dense: ReplaceDense,
    best_ordinal: BestOrdinal,
    best_competition_low: BestCompetitionLow,
    best_dense: BestDense,
    add_ordinal_low: AddOrdinalLow,
    add_competition: AddCompetition,
    add_dense: AddDense,
    tie_best_ordinal: TieBestOrdinal,
    tie_replace_dense_low: TieReplaceDenseLow,
    tie_add_competition: TieAddCompetition,
    tie_best_competition_low_later: TieBestCompetitionLowLater,
    capped_best_dense: CappedBestDense,
);

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..config() })]
    /// The same rules through the async Cluster executor.
    #[test]
    fn cluster_async_tie_best(ops in proptest::collection::vec(op(), 1..24)) {
        let mut r = Runner::new(Topology::Cluster, true);
        check::<TieBestOrdinal>(&mut r, &ops)?;
    }
}
