//! The two executors: one blocking, one async (DESIGN principle 1).
//!
//! Both take a [`Plan`] (the commands of one round trip) and return one reply
//! per command, server errors included, so that each operation of a batch
//! decodes its own replies. Both are implemented once for every connection
//! type of redis-rs:
//!
//! | connection                                   | how a plan is sent |
//! |----------------------------------------------|--------------------|
//! | `redis::Connection` (and any `ConnectionLike`) | one pipeline |
//! | `redis::cluster::ClusterConnection`          | one cluster pipeline (redis-rs splits it per node) |
//! | `MultiplexedConnection`, `ConnectionManager` (any `aio::ConnectionLike`) | one pipeline |
//! | `redis::cluster_async::ClusterConnection`    | one pipeline per hash slot, all sent concurrently |
//!
//! A single command goes out as a plain request, not a pipeline.
//!
//! ## Scripts
//!
//! Script calls go out as `EVALSHA`. In a pipeline of several commands, the
//! first call of each script (per hash slot on a Cluster) goes out as `EVAL`
//! with the body, so a server that has not cached the script yet runs the
//! pipeline in order. A lone `EVALSHA` answered with `NOSCRIPT` is sent again
//! as `EVAL`. If a race (`SCRIPT FLUSH` during a pipeline) still produces
//! `NOSCRIPT` inside a pipeline, the failed calls are re-sent as `EVAL` after
//! the pipeline; they had not run, so nothing runs twice.
//!
//! The blocking Cluster client of redis-rs returns no per-command replies when
//! any command of a pipeline fails; on that client such a plan fails as a
//! whole with the server's errors.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::future::Future;

use redis::{Cmd, ErrorKind, Pipeline, ServerErrorKind, Value};

use crate::error::{Error, Result};
use crate::op::{Command, Plan};

/// A blocking connection that can run a [`Plan`]. Implemented for every
/// `redis::ConnectionLike`; the Cluster client is recognised and routed.
pub trait SyncExecutor {
    /// Sends the plan and returns one reply per command.
    fn execute(&mut self, plan: Plan) -> Result<Vec<Value>>;
}

/// An async connection that can run a [`Plan`]. Implemented for every
/// `redis::aio::ConnectionLike`; the async Cluster client is recognised and
/// routed per hash slot.
pub trait AsyncExecutor: Send {
    /// Sends the plan and returns one reply per command.
    fn execute_async(&mut self, plan: Plan) -> impl Future<Output = Result<Vec<Value>>> + Send;
}

fn is_noscript(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript))
}

/// `NOSCRIPT`, whether the client returned it as a reply or as an error
/// (clients differ).
fn noscript_result(r: &redis::RedisResult<Value>) -> bool {
    match r {
        Ok(v) => is_noscript(v),
        Err(e) => e.kind() == ErrorKind::Server(ServerErrorKind::NoScript),
    }
}

/// Builds the pipeline of `commands`, sending the first call of each script
/// as `EVAL` when there is more than one command.
fn pipeline_of<'a>(commands: impl ExactSizeIterator<Item = &'a Command>) -> Pipeline {
    let n = commands.len();
    let mut pipe = Pipeline::with_capacity(n);
    pipe.ignore_errors();
    let mut seen: HashSet<&str> = HashSet::new();
    for c in commands {
        match c.script {
            Some(s) if n > 1 && seen.insert(s.name()) => match c.as_eval() {
                Some(eval) => pipe.add_command(eval),
                None => pipe.add_command(c.cmd.clone()),
            },
            _ => pipe.add_command(c.cmd.clone()),
        };
    }
    pipe
}

/// A lone command's result as a reply: a server error reply (`WRONGTYPE`,
/// ...) becomes `Value::ServerError`, as inside a pipeline, whether the
/// client returned it as a value or as an error (clients differ), so each
/// operation decodes its own errors.
fn as_reply(r: redis::RedisResult<Value>) -> Result<Value> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => match redis::ServerError::try_from(e) {
            Ok(server) => Ok(Value::ServerError(server)),
            Err(e) => Err(e.into()),
        },
    }
}

fn into_values(v: Value, expected: usize) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) if items.len() == expected => Ok(items),
        other => Err(Error::unexpected("a pipeline", &other)),
    }
}

/// Indices of script calls answered with `NOSCRIPT`, and their `EVAL` forms.
fn noscript_retries(commands: &[Command], values: &[Value]) -> Vec<(usize, Cmd)> {
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| is_noscript(v))
        .filter_map(|(i, _)| commands.get(i)?.as_eval().map(|eval| (i, eval)))
        .collect()
}

impl<C: redis::ConnectionLike + Any> SyncExecutor for C {
    fn execute(&mut self, plan: Plan) -> Result<Vec<Value>> {
        let commands = plan.commands;
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let any: &mut dyn Any = self;
        if let Some(cluster) = any.downcast_mut::<redis::cluster::ClusterConnection>() {
            return execute_sync_cluster(cluster, &commands);
        }
        if commands.len() == 1 {
            let first = self.req_command(&commands[0].cmd);
            let v = match (noscript_result(&first), commands[0].as_eval()) {
                (true, Some(eval)) => self.req_command(&eval),
                _ => first,
            };
            return Ok(vec![as_reply(v)?]);
        }
        let pipe = pipeline_of(commands.iter());
        let mut values = into_values(pipe.query::<Value>(self)?, commands.len())?;
        let retries = noscript_retries(&commands, &values);
        if !retries.is_empty() {
            let mut again = Pipeline::with_capacity(retries.len());
            again.ignore_errors();
            for (_, eval) in &retries {
                again.add_command(eval.clone());
            }
            let redo = into_values(again.query::<Value>(self)?, retries.len())?;
            for ((i, _), v) in retries.into_iter().zip(redo) {
                values[i] = v;
            }
        }
        Ok(values)
    }
}

fn execute_sync_cluster(
    con: &mut redis::cluster::ClusterConnection,
    commands: &[Command],
) -> Result<Vec<Value>> {
    use redis::ConnectionLike;
    if commands.len() == 1 {
        let first = con.req_command(&commands[0].cmd);
        let v = match (noscript_result(&first), commands[0].as_eval()) {
            (true, Some(eval)) => con.req_command(&eval),
            _ => first,
        };
        return Ok(vec![as_reply(v)?]);
    }
    let mut pipe = redis::cluster::cluster_pipe();
    // redis-rs decides which node gets which command, so the first call of a
    // script is sent as EVAL once per hash slot.
    let mut seen: HashSet<(&str, Option<u16>)> = HashSet::new();
    for c in commands {
        match c.script {
            Some(s) if seen.insert((s.name(), c.slot)) => match c.as_eval() {
                Some(eval) => pipe.add_command(eval),
                None => pipe.add_command(c.cmd.clone()),
            },
            _ => pipe.add_command(c.cmd.clone()),
        };
    }
    let values: Vec<Value> = pipe.query(con)?;
    if values.len() != commands.len() {
        return Err(Error::UnexpectedReply {
            context: "a cluster pipeline",
            found: format!("{} replies to {} commands", values.len(), commands.len()),
        });
    }
    Ok(values)
}

impl<C: redis::aio::ConnectionLike + Send + Any> AsyncExecutor for C {
    async fn execute_async(&mut self, plan: Plan) -> Result<Vec<Value>> {
        let commands = plan.commands;
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let any: &mut dyn Any = self;
        if let Some(cluster) = any.downcast_mut::<redis::cluster_async::ClusterConnection>() {
            return execute_async_cluster(cluster, commands).await;
        }
        send_async(self, &commands).await
    }
}

/// Sends `commands` to one node as a pipeline (or a lone request).
async fn send_async<C: redis::aio::ConnectionLike + Send>(
    con: &mut C,
    commands: &[Command],
) -> Result<Vec<Value>> {
    if commands.len() == 1 {
        let first = con.req_packed_command(&commands[0].cmd).await;
        let v = match (noscript_result(&first), commands[0].as_eval()) {
            (true, Some(eval)) => con.req_packed_command(&eval).await,
            _ => first,
        };
        return Ok(vec![as_reply(v)?]);
    }
    let pipe = pipeline_of(commands.iter());
    let mut values = into_values(pipe.query_async::<Value>(con).await?, commands.len())?;
    let retries = noscript_retries(commands, &values);
    if !retries.is_empty() {
        let mut again = Pipeline::with_capacity(retries.len());
        again.ignore_errors();
        for (_, eval) in &retries {
            again.add_command(eval.clone());
        }
        let redo = into_values(again.query_async::<Value>(con).await?, retries.len())?;
        for ((i, _), v) in retries.into_iter().zip(redo) {
            values[i] = v;
        }
    }
    Ok(values)
}

async fn execute_async_cluster(
    con: &mut redis::cluster_async::ClusterConnection,
    commands: Vec<Command>,
) -> Result<Vec<Value>> {
    // Group by slot, keeping order inside each group. Keyless commands each
    // form a group of their own.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_slot: HashMap<u16, usize> = HashMap::new();
    for (i, c) in commands.iter().enumerate() {
        match c.slot {
            Some(slot) => {
                let g = *by_slot.entry(slot).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[g].push(i);
            }
            None => groups.push(vec![i]),
        }
    }
    if groups.len() == 1 {
        return send_async(con, &commands).await;
    }
    let commands = &commands;
    let futures = groups.iter().map(|idx| {
        let mut con = con.clone();
        async move {
            let group: Vec<&Command> = idx.iter().map(|&i| &commands[i]).collect();
            send_group_async(&mut con, &group).await
        }
    });
    let results = futures_util::future::join_all(futures).await;
    let mut values = vec![Value::Nil; commands.len()];
    for (idx, result) in groups.iter().zip(results) {
        for (&i, v) in idx.iter().zip(result?) {
            values[i] = v;
        }
    }
    Ok(values)
}

async fn send_group_async(
    con: &mut redis::cluster_async::ClusterConnection,
    group: &[&Command],
) -> Result<Vec<Value>> {
    if let [only] = group {
        return send_async(con, std::slice::from_ref(*only)).await;
    }
    let pipe = pipeline_of(group.iter().copied());
    let mut values = into_values(pipe.query_async::<Value>(con).await?, group.len())?;
    let retries: Vec<(usize, Cmd)> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| is_noscript(v))
        .filter_map(|(i, _)| group.get(i)?.as_eval().map(|eval| (i, eval)))
        .collect();
    for (i, eval) in retries {
        use redis::aio::ConnectionLike;
        values[i] = con.req_packed_command(&eval).await?;
    }
    Ok(values)
}

/// Builds an error for a plan the executors refuse.
#[allow(dead_code)]
pub(crate) fn client_error(msg: &'static str) -> Error {
    Error::Redis(redis::RedisError::from((ErrorKind::Client, msg)))
}
