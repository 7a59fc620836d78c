//! The plain list queue other clients use: JSON pushed with `RPUSH` at
//! `queue:<name>`, popped with `LPOP` / `BLPOP`.

use std::marker::PhantomData;
use std::time::Duration;

use crate::driver::{Async, Blocking, Deadline, Io, block_on, read_until};
use crate::error::{DecodeError, Error, Result};
use crate::exec::{AsyncExecutor, SyncExecutor};
use crate::op::{Operation, Plan, Replies, Step};

/// A plain list of JSON jobs at `queue:<name>`: what redis-py's
/// `r.rpush(key, json.dumps(job))` and `r.blpop(key)` read and write.
///
/// Simple and interoperable, but not reliable: a job popped by a worker
/// that dies is lost, and there is no retry or delay. Use
/// [`Queue`](super::Queue) when that matters.
pub struct ListQueue<T> {
    key: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for ListQueue<T> {
    fn clone(&self) -> Self {
        ListQueue {
            key: self.key.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for ListQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListQueue").field("key", &self.key).finish()
    }
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> ListQueue<T> {
    /// The queue at `queue:<name>`, the seed's layout.
    pub fn new(name: &str) -> Self {
        ListQueue::at(format!("queue:{name}"))
    }

    /// The queue at exactly `key`.
    pub fn at(key: impl Into<String>) -> Self {
        ListQueue {
            key: key.into(),
            _t: PhantomData,
        }
    }

    /// The list key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Appends a job (`RPUSH key json`); the output is the new length.
    pub fn push(&self, job: &T) -> ListPush {
        ListPush {
            key: self.key.clone(),
            payload: Some(serde_json::to_vec(job).map_err(|e| Error::Encode {
                model: std::any::type_name::<T>(),
                field: "job",
                message: e.to_string(),
            })),
        }
    }

    /// Pops the oldest job without waiting (`LPOP`); `None` when empty. A
    /// payload that does not decode is an [`Error::Decode`] naming the key
    /// (the job is gone from the list: it was popped).
    pub fn pop(&self) -> ListPop<T> {
        ListPop {
            key: self.key.clone(),
            block: None,
            _t: PhantomData,
        }
    }

    /// Waits up to `timeout` for a job: `BLPOP` on this blocking
    /// connection (400 ms at most at a time).
    pub fn pop_wait<C: SyncExecutor + ?Sized>(
        &self,
        con: &mut C,
        timeout: Duration,
    ) -> Result<Option<T>>
    where
        T: Send,
    {
        block_on(self.wait(&mut Blocking::new(con), timeout))
    }

    /// [`pop_wait`](Self::pop_wait), awaited: blocks only a connection of
    /// its own, polls a shared one.
    pub async fn pop_wait_async<C: AsyncExecutor + ?Sized>(
        &self,
        con: &mut C,
        timeout: Duration,
    ) -> Result<Option<T>>
    where
        T: Send,
    {
        self.wait(&mut Async::new(con), timeout).await
    }

    async fn wait<I: Io>(&self, io: &mut I, timeout: Duration) -> Result<Option<T>>
    where
        T: Send,
    {
        read_until(io, Deadline::after(timeout), |block| ListPop::<T> {
            key: self.key.clone(),
            block,
            _t: PhantomData,
        })
        .await
    }
}

/// See [`ListQueue::push`].
#[derive(Debug)]
pub struct ListPush {
    key: String,
    payload: Option<Result<Vec<u8>>>,
}

impl Operation for ListPush {
    type Output = u64;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        if let Some(p) = self.payload.take() {
            plan.cmd("RPUSH", &self.key).arg(p?);
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<u64>> {
        replies.next("RPUSH").map(Step::Done)
    }
}

/// See [`ListQueue::pop`].
#[derive(Debug)]
pub struct ListPop<T> {
    key: String,
    block: Option<Duration>,
    _t: PhantomData<fn() -> T>,
}

impl<T: serde::de::DeserializeOwned> Operation for ListPop<T> {
    type Output = Option<T>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match self.block {
            Some(b) => {
                plan.cmd("BLPOP", &self.key)
                    .arg(format!("{:.3}", b.as_secs_f64().max(0.001)));
            }
            None => {
                plan.cmd("LPOP", &self.key);
            }
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Option<T>>> {
        let raw: Option<Vec<u8>> = if self.block.is_some() {
            let pair: Option<(Vec<u8>, Vec<u8>)> = replies.next("BLPOP")?;
            pair.map(|(_, v)| v)
        } else {
            replies.next("LPOP")?
        };
        let Some(raw) = raw else {
            return Ok(Step::Done(None));
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map(Step::Done)
            .map_err(|e| {
                let mut d = DecodeError::new(&self.key, None, "a JSON job", Some(&raw));
                d.detail = Some(e.to_string());
                d.into()
            })
    }
}
