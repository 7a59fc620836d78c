//! `find_by` without a limit reads the index a page at a time: every match
//! is returned once, stale entries are pruned, and no single command grows
//! with the number of matches (the rounds do). Real servers, every executor
//! and topology.

#[macro_use]
mod common;

use common::{Runner, Topology};
use redis::Value;
use redis_state::Namespace;
use redis_state::exec::SyncExecutor;
use redis_state::op::Plan;
use redis_state::prelude::*;

/// Entities scoped per tenant: one index per tenant, in its hash tag.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "ticket:{tenant}:{id}", hash_tag = "tenant")]
struct Ticket {
    #[redis(id)]
    tenant: String,
    #[redis(id)]
    id: u32,
    #[redis(index)]
    status: String,
}

/// The bucketed layout: the index is split over 8 partitions.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "order:{id}", buckets = 8)]
struct Order {
    #[redis(id)]
    id: u32,
    #[redis(index)]
    status: String,
}

/// Matches of the tests: with a page of 100, many pages and more rounds
/// than the executor's cap on rounds without progress (16).
const N: u32 = 3_000;
const PAGE: usize = 100;

fn save_tickets(r: &mut Runner, ns: &Namespace, tenant: &str, n: u32, status: &str) {
    let all: Vec<Ticket> = (0..n)
        .map(|id| Ticket {
            tenant: tenant.to_owned(),
            id,
            status: status.to_owned(),
        })
        .collect();
    for part in all.chunks(500) {
        r.run(redis_state::op::many(
            part.iter().map(|t| t.save().namespace(ns)),
        ))
        .unwrap();
    }
}

/// The ids found, checked for duplicates, sorted.
fn unique_ids(ids: impl IntoIterator<Item = u32>) -> Vec<u32> {
    let mut ids: Vec<u32> = ids.into_iter().collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "an entity returned twice");
    ids
}

fn a_tagged_index_is_read_in_pages(r: &mut Runner, ns: &Namespace) {
    save_tickets(r, ns, "big", N, "done");
    // Others of the tenant and the value, outside the range read.
    save_tickets(r, ns, "other", 50, "done");
    for id in N..N + 40 {
        r.run(
            Ticket {
                tenant: "big".to_owned(),
                id,
                status: "donE".to_owned(),
            }
            .save()
            .namespace(ns),
        )
        .unwrap();
    }
    // Stale entries, on page boundaries and inside pages: entities deleted
    // behind the library's back.
    let stale = [0, 99, 100, 1_234, 2_999];
    for id in stale {
        let _: i64 = r.cmd("DEL", &format!("{ns}:ticket:{{big}}:{id}")).go();
    }
    let found = r
        .run(
            Ticket::find_by_status(&"big".to_owned(), "done")
                .page_size(PAGE)
                .namespace(ns),
        )
        .unwrap();
    assert!(
        found
            .iter()
            .all(|t| t.tenant == "big" && t.status == "done")
    );
    let want: Vec<u32> = (0..N).filter(|id| !stale.contains(id)).collect();
    assert_eq!(unique_ids(found.iter().map(|t| t.id)), want);
    let idx = format!("{ns}:ticket:{{big}}:#ticket:idx:status");
    let left: i64 = r.cmd("ZCARD", &idx).go();
    assert_eq!(
        left,
        i64::from(N) + 40 - stale.len() as i64,
        "stale entries removed"
    );
    // The default page and a limit give the same entities.
    let default = r
        .run(Ticket::find_by_status(&"big".to_owned(), "done").namespace(ns))
        .unwrap();
    assert_eq!(default, found);
    let page = r
        .run(
            Ticket::find_by_status(&"big".to_owned(), "done")
                .limit(10, 5)
                .namespace(ns),
        )
        .unwrap();
    assert_eq!(page.as_slice(), &found[10..15]);
}

fn a_bucketed_index_is_read_in_pages(r: &mut Runner, ns: &Namespace) {
    let all: Vec<Order> = (0..N)
        .map(|id| Order {
            id,
            status: if id % 3 == 0 { "new" } else { "paid" }.to_owned(),
        })
        .collect();
    for part in all.chunks(500) {
        r.run(redis_state::op::many(
            part.iter().map(|o| o.save().namespace(ns)),
        ))
        .unwrap();
    }
    let gone = [1, 2, 500, 2_998];
    for id in gone {
        r.run(Order::delete(&id).namespace(ns)).unwrap();
    }
    let found = r
        .run(Order::find_by_status("paid").page_size(PAGE).namespace(ns))
        .unwrap();
    let want: Vec<u32> = (0..N)
        .filter(|id| id % 3 != 0 && !gone.contains(id))
        .collect();
    assert!(found.iter().all(|o| o.status == "paid"));
    // Merged in id order, as one index would list them.
    let mut sorted = found.clone();
    sorted.sort_by_key(|o| o.id.to_string());
    assert_eq!(found, sorted);
    assert_eq!(unique_ids(found.iter().map(|o| o.id)), want);
    let first = r
        .run(Order::find_by_status("paid").limit(0, 3).namespace(ns))
        .unwrap();
    assert_eq!(first.as_slice(), &found[..3]);
}

/// An executor that records each round trip's largest reply.
struct Recording<'c, C> {
    inner: &'c mut C,
    /// Per round trip: the entries of its longest reply.
    rounds: Vec<usize>,
}

impl<C: SyncExecutor> SyncExecutor for Recording<'_, C> {
    fn execute(&mut self, plan: Plan) -> redis_state::Result<Vec<Value>> {
        let values = self.inner.execute(plan)?;
        let longest = values
            .iter()
            .map(|v| match v {
                Value::Array(items) => items.len(),
                _ => 1,
            })
            .max()
            .unwrap_or(0);
        self.rounds.push(longest);
        Ok(values)
    }
    fn is_one_server(&self) -> bool {
        self.inner.is_one_server()
    }
}

/// Runs the find on `tenant` and returns (entities, round trips, longest
/// reply).
fn recorded(r: &mut Runner, ns: &Namespace, tenant: &str) -> (usize, usize, usize) {
    let op = Ticket::find_by_status(&tenant.to_owned(), "done")
        .page_size(PAGE)
        .namespace(ns);
    let (found, rounds) = match r {
        Runner::Sync(con) => {
            let mut rec = Recording {
                inner: con,
                rounds: Vec::new(),
            };
            (op.run(&mut rec).unwrap(), rec.rounds)
        }
        Runner::SyncCluster(con) => {
            let mut rec = Recording {
                inner: con,
                rounds: Vec::new(),
            };
            (op.run(&mut rec).unwrap(), rec.rounds)
        }
        _ => unreachable!("a blocking runner"),
    };
    let longest = rounds.iter().copied().max().unwrap_or(0);
    (found.len(), rounds.len(), longest)
}

/// The rounds grow with the matches; the longest reply (a page of the
/// index, or a find script's rows) does not.
fn rounds_grow_and_commands_stay_bounded(topology: Topology) {
    let r = &mut Runner::new(topology, false);
    let ns = &common::namespace("rounds_grow_and_commands_stay_bounded");
    save_tickets(r, ns, "small", 300, "done");
    save_tickets(r, ns, "large", N, "done");
    let (small, small_rounds, small_longest) = recorded(r, ns, "small");
    let (large, large_rounds, large_longest) = recorded(r, ns, "large");
    assert_eq!((small, large), (300, N as usize));
    // A page per round; the round verifying the last full page reads the
    // empty page that ends the partition.
    assert_eq!(small_rounds, 300 / PAGE + 1);
    assert_eq!(large_rounds, N as usize / PAGE + 1);
    // Every reply at most a page (the scripts verify a page in chunks of
    // at most 256, more than a page of 100).
    assert_eq!(small_longest, PAGE);
    assert_eq!(large_longest, PAGE);
}

#[test]
fn rounds_grow_and_commands_stay_bounded_standalone() {
    rounds_grow_and_commands_stay_bounded(Topology::Standalone);
}

#[test]
fn rounds_grow_and_commands_stay_bounded_cluster() {
    rounds_grow_and_commands_stay_bounded(Topology::Cluster);
}

/// Asks for `rounds` round trips of one `EXISTS` each; raises its progress
/// after each when `progressing`.
struct Pings {
    rounds: usize,
    done: usize,
    progressing: bool,
}

impl Operation for Pings {
    type Output = usize;
    fn prepare(&mut self, plan: &mut Plan) -> redis_state::Result<()> {
        plan.cmd("EXISTS", "find_paging:pings");
        Ok(())
    }
    fn complete(
        &mut self,
        replies: &mut redis_state::op::Replies,
    ) -> redis_state::Result<redis_state::op::Step<usize>> {
        replies.next_value()?;
        self.done += 1;
        Ok(if self.done == self.rounds {
            redis_state::op::Step::Done(self.done)
        } else {
            redis_state::op::Step::Again
        })
    }
    fn progress(&self) -> u64 {
        if self.progressing {
            self.done as u64
        } else {
            0
        }
    }
}

fn pings(rounds: usize, progressing: bool) -> Pings {
    Pings {
        rounds,
        done: 0,
        progressing,
    }
}

/// Rounds that make progress are not capped; 16 in a row without progress
/// still stop an operation, with a typed error.
fn only_rounds_without_progress_are_capped(r: &mut Runner, _: &Namespace) {
    assert_eq!(r.run(pings(100, true)).unwrap(), 100);
    assert_eq!(r.run(pings(16, false)).unwrap(), 16);
    let err = r.run(pings(17, false)).unwrap_err();
    assert!(
        matches!(err, redis_state::Error::UnexpectedReply { .. }),
        "{err:?}"
    );
    // In a batch, a progressing part keeps the batch going.
    let (a, b) = r
        .run(redis_state::batch((pings(40, true), pings(3, false))))
        .unwrap();
    assert_eq!((a, b), (40, 3));
}

matrix!(
    a_tagged_index_is_read_in_pages,
    a_bucketed_index_is_read_in_pages,
    only_rounds_without_progress_are_capped,
);
