//! Durability per write: `WAIT` on the write's own node.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::op::{Command, Operation, Plan, Replies, Step, Target};

/// An operation followed, in the same round trip and on the same node, by
/// `WAIT replicas timeout`: see [`durable`].
#[derive(Debug)]
#[must_use = "an operation does nothing until it is run"]
pub struct Durable<O> {
    op: O,
    replicas: u32,
    timeout: Duration,
    /// Commands the operation wrote in the current round, and whether a
    /// `WAIT` follows them.
    written: usize,
    waits: bool,
    /// The fewest acknowledgements seen over the rounds.
    acked: Option<u32>,
}

/// Runs `op`, then waits until `replicas` replicas acknowledged its writes
/// or `timeout` passed (`WAIT`, sent in the same pipeline right after the
/// operation's commands, so on the node of its last command: on a Cluster
/// the node of its hash slot). Returns the output and how many replicas
/// acknowledged.
///
/// # Errors
///
/// [`Error::DurabilityShortfall`] when fewer replicas acknowledged: the
/// write *was* applied on the primary and may survive or not a failover
/// that follows. `WAIT` does not make Redis strongly consistent: a replica
/// that acknowledged may still lose the write if it is not the one
/// promoted, or if it restarts without persistence. It makes the loss of
/// an acknowledged write unlikely on a failover that promotes a replica
/// that acknowledged (Sentinel and Cluster promote the most up-to-date
/// replica).
///
/// `WAIT` blocks its connection's reply for up to `timeout`: keep it below
/// the connection's response timeout (on a
/// [configured connection](super::ConnectionOptions::response_timeout)),
/// or a shortfall arrives as a timeout instead.
///
/// The blocking Cluster client of redis-rs sends a keyless `WAIT` to any
/// node: use the async Cluster client (or a standalone or Sentinel
/// connection) for durable writes on a Cluster.
pub fn durable<O: Operation>(op: O, replicas: u32, timeout: Duration) -> Durable<O> {
    Durable {
        op,
        replicas,
        timeout,
        written: 0,
        waits: false,
        acked: None,
    }
}

impl<O: Operation> Operation for Durable<O> {
    type Output = (O::Output, u32);

    fn progress(&self) -> u64 {
        self.op.progress()
    }

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let before = plan.commands.len();
        self.op.prepare(plan)?;
        self.written = plan.commands.len() - before;
        let last = plan.commands.last().filter(|_| self.written > 0);
        self.waits = false;
        if let Some(last) = last {
            let slot = last.slot;
            let ms = u64::try_from(self.timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let mut cmd = redis::cmd("WAIT");
            cmd.arg(self.replicas).arg(ms);
            plan.commands.push(Command {
                cmd,
                script: None,
                slot,
                target: Target::Keys,
                keys: Default::default(),
            });
            self.waits = true;
        }
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let step = replies.scope(self.written, |r| self.op.complete(r));
        if self.waits {
            let n: i64 = replies.next("WAIT")?;
            let n = u32::try_from(n.max(0)).unwrap_or(u32::MAX);
            self.acked = Some(self.acked.map_or(n, |a| a.min(n)));
        }
        match step? {
            Step::Again => Ok(Step::Again),
            Step::Done(out) => {
                let acked = self.acked.unwrap_or(0);
                if acked < self.replicas {
                    return Err(Error::DurabilityShortfall {
                        wanted: self.replicas,
                        acked,
                        timeout: self.timeout,
                    });
                }
                Ok(Step::Done((out, acked)))
            }
        }
    }
}
