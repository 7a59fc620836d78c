//! Optimistic transactions (WATCH/MULTI/EXEC with bounded retries): the
//! credit transfer under concurrency, aborts, conflicts, errors; blocking and
//! async.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use redis_state::op::{CommandOp, command};
use redis_state::testing::shared_server;
use redis_state::tx::{Decision, Transaction, WatchConnection};
use redis_state::{Error, Operation, batch};

fn get(key: &str) -> CommandOp<Option<i64>> {
    command::<Option<i64>>("GET", key)
}

fn set(key: &str, v: i64) -> CommandOp<()> {
    command::<()>("SET", key).arg(v)
}

type Reads = redis_state::op::Batch<(
    redis_state::op::Child<CommandOp<Option<i64>>>,
    redis_state::op::Child<CommandOp<Option<i64>>>,
)>;
type Writes = redis_state::op::Batch<(
    redis_state::op::Child<CommandOp<()>>,
    redis_state::op::Child<CommandOp<()>>,
)>;

/// The seed's `transfer_credits`: the read and the decision, shared by the
/// blocking and the async runs.
struct Transfer {
    from: String,
    to: String,
    amount: i64,
    tries: Arc<AtomicU32>,
}

impl Transfer {
    fn new(from: &str, to: &str, amount: i64, tries: &Arc<AtomicU32>) -> Self {
        Transfer {
            from: from.to_owned(),
            to: to.to_owned(),
            amount,
            tries: tries.clone(),
        }
    }

    fn tx(&self) -> Transaction {
        Transaction::new(&[&self.from, &self.to]).max_tries(1000)
    }

    fn read(&self) -> Reads {
        self.tries.fetch_add(1, Ordering::Relaxed); // every try reads again
        batch((get(&self.from), get(&self.to)))
    }

    fn decide(
        &self,
        (a, b): (Option<i64>, Option<i64>),
    ) -> redis_state::Result<Decision<Writes, bool>> {
        let (a, b) = (a.unwrap_or(0), b.unwrap_or(0));
        if a < self.amount {
            return Ok(Decision::Abort(false));
        }
        Ok(Decision::Commit(
            batch((
                set(&self.from, a - self.amount),
                set(&self.to, b + self.amount),
            )),
            true,
        ))
    }
}

fn transfer(
    con: &mut redis::Connection,
    from: &str,
    to: &str,
    amount: i64,
    tries: &Arc<AtomicU32>,
) -> bool {
    let t = Transfer::new(from, to, amount, tries);
    t.tx().perform(con, || t.read(), |v| t.decide(v)).unwrap()
}

async fn transfer_async(
    con: &mut WatchConnection,
    from: &str,
    to: &str,
    amount: i64,
    tries: &Arc<AtomicU32>,
) -> bool {
    let t = Transfer::new(from, to, amount, tries);
    t.tx()
        .perform_async(con, || t.read(), |v| t.decide(v))
        .await
        .unwrap()
}

fn balances(con: &mut redis::Connection, keys: &[String]) -> Vec<i64> {
    keys.iter()
        .map(|k| get(k).run(con).unwrap().unwrap_or(0))
        .collect()
}

const ACCOUNTS: usize = 5;
const START: i64 = 100;

fn accounts(label: &str) -> Vec<String> {
    let ns = common::namespace(label);
    let keys: Vec<String> = (0..ACCOUNTS)
        .map(|i| format!("{ns}:user:{i}:credits"))
        .collect();
    let mut con = shared_server().connection().unwrap();
    for k in &keys {
        set(k, START).run(&mut con).unwrap();
    }
    keys
}

/// Eight threads move credits between five accounts at random; many
/// transfers conflict and retry. The total never changes and no balance
/// goes negative.
#[test]
fn concurrent_transfers_conserve_the_total() {
    let keys = accounts("tx_conserve");
    let done = Arc::new(AtomicU32::new(0));
    let tries = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let keys = keys.clone();
            let done = done.clone();
            let tries = tries.clone();
            let mut con = shared_server().connection().unwrap();
            std::thread::spawn(move || {
                let mut seed = t * 7919 + 1;
                for _ in 0..150 {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let from = (seed >> 33) as usize % ACCOUNTS;
                    let to = (from + 1 + (seed >> 40) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                    let amount = 1 + (seed >> 50) as i64 % 40;
                    if transfer(&mut con, &keys[from], &keys[to], amount, &tries) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = shared_server().connection().unwrap();
    let b = balances(&mut con, &keys);
    assert_eq!(b.iter().sum::<i64>(), START * ACCOUNTS as i64, "{b:?}");
    assert!(b.iter().all(|&x| x >= 0), "{b:?}");
    assert!(done.load(Ordering::Relaxed) > 100, "transfers happened");
    // Conflicts happened and were retried (8 × 150 transfers, more tries).
    assert!(tries.load(Ordering::Relaxed) > 8 * 150, "{tries:?}");
}

#[test]
fn concurrent_async_transfers_conserve_the_total() {
    let keys = accounts("tx_conserve_async");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tries = Arc::new(AtomicU32::new(0));
    rt.block_on(async {
        let client = shared_server().client();
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let keys = keys.clone();
            let tries = tries.clone();
            let mut con = WatchConnection::connect_async(&client).await.unwrap();
            tasks.push(tokio::spawn(async move {
                let mut seed = t * 104729 + 3;
                for _ in 0..100 {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let from = (seed >> 33) as usize % ACCOUNTS;
                    let to = (from + 1 + (seed >> 40) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                    let amount = 1 + (seed >> 50) as i64 % 40;
                    transfer_async(&mut con, &keys[from], &keys[to], amount, &tries).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let mut con = shared_server().connection().unwrap();
    let b = balances(&mut con, &keys);
    assert_eq!(b.iter().sum::<i64>(), START * ACCOUNTS as i64, "{b:?}");
    assert!(b.iter().all(|&x| x >= 0), "{b:?}");
    assert!(tries.load(Ordering::Relaxed) > 8 * 100, "{tries:?}");
}

/// UNWATCH was sent on `con`: another client's write to `key` does not
/// fail this connection's next MULTI/EXEC.
fn assert_unwatched(con: &mut redis::Connection, key: &str) {
    let mut other = shared_server().connection().unwrap();
    set(key, 7).run(&mut other).unwrap();
    let got: Option<(i64,)> = redis::pipe()
        .atomic()
        .cmd("GET")
        .arg(key)
        .query(con)
        .unwrap();
    assert_eq!(got, Some((7,)), "EXEC ran");
}

#[test]
fn insufficient_funds_abort_and_unwatch() {
    let keys = accounts("tx_abort");
    let mut con = shared_server().connection().unwrap();
    let tries = Arc::new(AtomicU32::new(0));
    assert!(!transfer(&mut con, &keys[0], &keys[1], START + 1, &tries));
    assert_eq!(tries.load(Ordering::Relaxed), 1);
    assert_eq!(balances(&mut con, &keys[..2]), [START, START]);
    assert_unwatched(&mut con, &keys[0]);
}

#[test]
fn gives_up_after_max_tries_of_conflict() {
    let keys = accounts("tx_conflict");
    let mut con = shared_server().connection().unwrap();
    let mut other = shared_server().connection().unwrap();
    let tries = AtomicU32::new(0);
    let key = keys[0].clone();
    let err = Transaction::new(&[&key])
        .max_tries(4)
        .perform(
            &mut con,
            || get(&key),
            |v| {
                tries.fetch_add(1, Ordering::Relaxed);
                // Another client writes between WATCH and EXEC, every time.
                set(&key, v.unwrap_or(0) + 1000).run(&mut other).unwrap();
                Ok(Decision::Commit(set(&key, -1), ()))
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::TransactionConflict { tries: 4, keys } if keys == std::slice::from_ref(&key)),
        "{err}"
    );
    assert_eq!(tries.load(Ordering::Relaxed), 4);
    // None of the transaction's writes happened; the other client's did.
    assert_eq!(get(&key).run(&mut con).unwrap(), Some(START + 4000));
}

#[test]
fn errors_of_decide_propagate_and_write_nothing() {
    let keys = accounts("tx_error");
    let mut con = shared_server().connection().unwrap();
    let err = Transaction::new(&[&keys[0]])
        .perform(
            &mut con,
            || get(&keys[0]),
            |_| -> redis_state::Result<Decision<CommandOp<()>, ()>> {
                Err(Error::user("no thanks"))
            },
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "no thanks");
    assert_eq!(get(&keys[0]).run(&mut con).unwrap(), Some(START));
}

/// A write that fails inside EXEC (WRONGTYPE) is reported; MULTI/EXEC does
/// not roll back the writes before it, and the error says so by being an
/// error, not a silent success.
#[test]
fn a_failing_write_inside_exec_is_an_error() {
    let keys = accounts("tx_exec_error");
    let mut con = shared_server().connection().unwrap();
    let _: i64 = redis::cmd("DEL").arg(&keys[1]).query(&mut con).unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(&keys[1])
        .arg("f")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let err = Transaction::new(&[&keys[0], &keys[1]])
        .perform(
            &mut con,
            || get(&keys[0]),
            |_| Ok(Decision::Commit(command::<i64>("INCR", &keys[1]), ())),
        )
        .unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
}

#[derive(redis_state::RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{account}}:{id}")]
struct Account {
    #[redis(id)]
    id: u64,
    #[redis(unique)]
    email: String,
}

/// A save whose unique value another id holds cannot verify the holder in a
/// second round inside `MULTI`/`EXEC`: it trusts the index and reports the
/// violation (outside a transaction the holder is verified first).
#[test]
fn a_unique_violation_inside_exec_is_reported() {
    use redis_state::RedisHash;
    let ns = common::namespace("tx_unique");
    let mut con = shared_server().connection().unwrap();
    let first = Account {
        id: 1,
        email: "a@x".into(),
    };
    first.save().namespace(&ns).run(&mut con).unwrap();
    let second = Account {
        id: 2,
        email: "a@x".into(),
    };
    let key = format!("{ns}:{}", Account::key_of(&2u64));
    let err = Transaction::new(&[&key])
        .perform(
            &mut con,
            || Account::load(&2).namespace(&ns),
            |_| Ok(Decision::Commit(second.save().namespace(&ns), ())),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::UniqueViolation { holder, .. } if holder == "1"),
        "{err}"
    );
    assert!(!Account::exists(&2).namespace(&ns).run(&mut con).unwrap());
}

/// Writes of two rounds: `INCR` a counter, then copy what it returned to a
/// second key (the shape of a save that invalidates tagged cache entries:
/// its first round learns what its second deletes).
struct IncrThenCopy {
    counter: String,
    copy: String,
    seen: Option<i64>,
}

impl Operation for IncrThenCopy {
    type Output = i64;
    fn prepare(&mut self, plan: &mut redis_state::op::Plan) -> redis_state::Result<()> {
        match self.seen {
            None => plan.cmd("INCR", &self.counter),
            Some(n) => plan.cmd("SET", &self.copy).arg(n),
        };
        Ok(())
    }
    fn complete(
        &mut self,
        replies: &mut redis_state::op::Replies,
    ) -> redis_state::Result<redis_state::op::Step<i64>> {
        use redis_state::op::Step;
        match self.seen {
            None => {
                self.seen = Some(replies.next("INCR")?);
                Ok(Step::Again)
            }
            Some(n) => {
                replies.next_value()?;
                Ok(Step::Done(n))
            }
        }
    }
}

/// The first round of such writes runs inside `MULTI`/`EXEC`; the rest
/// after `EXEC`, and the transaction reports success (the writes stand).
#[test]
fn writes_with_a_second_round_finish_after_exec() {
    let keys = accounts("tx_rounds");
    let mut con = shared_server().connection().unwrap();
    let _: i64 = redis::cmd("DEL").arg(&keys[1]).query(&mut con).unwrap();
    let committed = Transaction::new(&[&keys[0]])
        .perform(
            &mut con,
            || get(&keys[0]),
            |_| {
                let w = IncrThenCopy {
                    counter: keys[0].clone(),
                    copy: keys[1].clone(),
                    seen: None,
                };
                Ok(Decision::Commit(w, "committed"))
            },
        )
        .unwrap();
    assert_eq!(committed, "committed");
    assert_eq!(get(&keys[0]).run(&mut con).unwrap(), Some(START + 1));
    assert_eq!(get(&keys[1]).run(&mut con).unwrap(), Some(START + 1));
}

#[tokio::test]
async fn async_writes_with_a_second_round_finish_after_exec() {
    let keys = accounts("tx_rounds_async");
    let server = shared_server();
    let mut con = server.connection().unwrap();
    let _: i64 = redis::cmd("DEL").arg(&keys[1]).query(&mut con).unwrap();
    let mut watch = WatchConnection::connect_async(&server.client())
        .await
        .unwrap();
    let committed = Transaction::new(&[&keys[0]])
        .perform_async(
            &mut watch,
            || get(&keys[0]),
            |_| {
                let w = IncrThenCopy {
                    counter: keys[0].clone(),
                    copy: keys[1].clone(),
                    seen: None,
                };
                Ok(Decision::Commit(w, 7u8))
            },
        )
        .await
        .unwrap();
    assert_eq!(committed, 7);
    assert_eq!(get(&keys[0]).run(&mut con).unwrap(), Some(START + 1));
    assert_eq!(get(&keys[1]).run(&mut con).unwrap(), Some(START + 1));
}

/// Writes that cannot be built: their `prepare` fails.
struct Unbuildable;

impl Operation for Unbuildable {
    type Output = ();
    fn prepare(&mut self, _plan: &mut redis_state::op::Plan) -> redis_state::Result<()> {
        Err(Error::user("cannot build these writes"))
    }
    fn complete(
        &mut self,
        _replies: &mut redis_state::op::Replies,
    ) -> redis_state::Result<redis_state::op::Step<()>> {
        unreachable!("never prepared")
    }
}

/// Writes that fail to build are an error, and the connection is left
/// without a WATCH (a later MULTI/EXEC on it is not voided by the keys
/// this transaction watched).
#[test]
fn writes_that_fail_to_build_unwatch() {
    let keys = accounts("tx_unbuildable");
    let mut con = shared_server().connection().unwrap();
    let err = Transaction::new(&[&keys[0]])
        .perform(
            &mut con,
            || get(&keys[0]),
            |_| Ok(Decision::Commit(Unbuildable, ())),
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "cannot build these writes");
    assert_unwatched(&mut con, &keys[0]);
}
