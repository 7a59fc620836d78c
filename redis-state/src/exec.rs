//! The two executors: one blocking, one async (DESIGN principle 1).
//!
//! Both take a [`Plan`] (the commands of one round trip) and return one reply
//! per command, server errors included, so that each operation of a batch
//! decodes its own replies. Each connection type says, by its type, how a
//! plan is routed: nothing is recognised at run time.
//!
//! | connection                                   | how a plan is sent |
//! |----------------------------------------------|--------------------|
//! | `redis::Connection`                          | one pipeline |
//! | `redis::cluster::ClusterConnection`          | one cluster pipeline (redis-rs splits it per node) |
//! | `MultiplexedConnection`, `ConnectionManager` | one pipeline |
//! | `redis::cluster_async::ClusterConnection`    | one pipeline per hash slot, all sent concurrently |
//! | [`OneServer`]`(c)`, `c` any `ConnectionLike` or `aio::ConnectionLike` of one server | one pipeline |
//! | a pooled connection or wrapper ([`Forward`]) | as the connection it derefs to |
//!
//! A single command goes out as a plain request, not a pipeline.
//!
//! ## Pools and wrappers
//!
//! A type that derefs to one of these connections runs operations as the
//! connection inside it when it implements the marker [`Forward`]. The
//! pooled connections of deadpool-redis (single server and Cluster),
//! bb8-redis and r2d2 (pools of `Client` and `ClusterClient`) do, behind the
//! features `deadpool`, `bb8` and `r2d2`. Without the feature (or for a
//! wrapper of your own), `&mut *conn` always works, and
//! `impl redis_state::exec::Forward for MyWrapper {}` makes `&mut conn`
//! work. A type that is none of these does not compile, with a note
//! saying what to write: a pooled Cluster connection is never sent as a
//! plain pipeline that the server would refuse with `CROSSSLOT`.
//!
//! ## Scripts
//!
//! Script calls go out as `EVALSHA`. In a pipeline of several commands, the
//! first call of each script body (by SHA1, per hash slot on a Cluster) goes
//! out as `EVAL`
//! with the body, so a server that has not cached the script yet runs the
//! pipeline in order; the last command of a pipeline is the exception
//! (nothing of the pipeline runs after it, so its retry keeps the order). A
//! lone `EVALSHA` answered with `NOSCRIPT` is sent again as `EVAL`, and so is
//! such a last command. If a race (`SCRIPT FLUSH` during a pipeline) still produces
//! `NOSCRIPT` inside a pipeline, the failed calls are re-sent as `EVAL` after
//! the pipeline; they had not run, so nothing runs twice.
//!
//! The blocking Cluster client of redis-rs returns no per-command replies when
//! any command of a pipeline fails; on that client such a plan fails as a
//! whole with the server's errors.

#[cfg(all(feature = "async", feature = "cluster"))]
use std::collections::HashMap;
#[cfg(feature = "cluster")]
use std::collections::HashSet;
use std::future::Future;
use std::ops::DerefMut;

#[cfg(feature = "cluster")]
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ErrorKind, Pipeline, ServerErrorKind, Value};

use crate::error::{Error, Result};
use crate::op::{Command, Plan, Target, eval_form};
use crate::script::Script;

/// A blocking connection that can run a [`Plan`]: `redis::Connection`,
/// `redis::cluster::ClusterConnection` (routed per slot), [`OneServer`] of
/// any `redis::ConnectionLike`, and every [`Forward`] wrapper of these
/// (r2d2 pooled connections with the `r2d2` feature).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a blocking connection redis-state knows how to route",
    label = "not a redis-state blocking executor",
    note = "redis-state runs on `redis::Connection`, `redis::cluster::ClusterConnection` and, with the `r2d2` feature, r2d2 pooled connections of both",
    note = "a pooled connection or wrapper that derefs to one of them: pass `&mut *conn`, or write `impl redis_state::exec::Forward for {Self} {{}}`",
    note = "a `redis::ConnectionLike` of your own for one server: wrap it, `redis_state::exec::OneServer(conn)`"
)]
pub trait SyncExecutor {
    /// Sends the plan and returns one reply per command.
    fn execute(&mut self, plan: Plan) -> Result<Vec<Value>>;

    /// Whether every command goes to one server (a standalone connection),
    /// so that one script may touch keys of several Cluster slots. `false`,
    /// the safe answer, unless the executor knows: `true` for
    /// `redis::Connection`, `MultiplexedConnection`, `ConnectionManager`
    /// and [`OneServer`]; wrappers ([`Forward`]) ask what they wrap.
    fn is_one_server(&self) -> bool {
        false
    }
}

/// An async connection that can run a [`Plan`]: `MultiplexedConnection`,
/// `ConnectionManager`, `redis::cluster_async::ClusterConnection` (routed
/// per hash slot), [`OneServer`] of any `redis::aio::ConnectionLike`, and
/// every [`Forward`] wrapper of these (deadpool-redis and bb8-redis pooled
/// connections with the `deadpool` and `bb8` features).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an async connection redis-state knows how to route",
    label = "not a redis-state async executor",
    note = "redis-state runs on `MultiplexedConnection`, `ConnectionManager`, `redis::cluster_async::ClusterConnection` and, with the `deadpool` or `bb8` feature, pooled connections of those pools",
    note = "a pooled connection or wrapper that derefs to one of them: pass `&mut *conn`, or write `impl redis_state::exec::Forward for {Self} {{}}`",
    note = "a `redis::aio::ConnectionLike` of your own for one server: wrap it, `redis_state::exec::OneServer(conn)`"
)]
pub trait AsyncExecutor: Send {
    /// Sends the plan and returns one reply per command.
    fn execute_async(&mut self, plan: Plan) -> impl Future<Output = Result<Vec<Value>>> + Send;

    /// Whether every command goes to one server (a standalone connection); see
    /// [`SyncExecutor::is_one_server`],
    /// so that one script may touch keys of several Cluster slots. `false`,
    /// the safe answer, unless the executor knows: `true` for
    /// `redis::Connection`, `MultiplexedConnection`, `ConnectionManager`
    /// and [`OneServer`]; wrappers ([`Forward`]) ask what they wrap.
    fn is_one_server(&self) -> bool {
        false
    }

    /// An owned handle on the same connection, for clean-up that must
    /// outlive a borrow of it (a lock acquisition whose future was dropped
    /// releases its token through it). `Some` for the redis-rs connections
    /// that are handles already (`MultiplexedConnection`,
    /// `ConnectionManager`, the async Cluster client), `None` otherwise.
    #[doc(hidden)]
    fn detached(&self) -> Option<Detached> {
        None
    }

    /// Whether this connection is its holder's alone: no other task sends
    /// on it, so a command may block on the server without holding up
    /// anyone else's (see [`driver::read_until`](crate::driver::read_until)).
    /// `false` for every redis-rs async connection (they are shared
    /// handles); `true` for [`DedicatedConnection`] and the transactions'
    /// `WatchConnection`.
    fn is_exclusive(&self) -> bool {
        false
    }
}

#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
/// An async connection opened for one holder and never shared (not
/// `Clone`): a command that blocks on the server (`XREAD BLOCK`,
/// `XREADGROUP BLOCK`, `BLMOVE`) holds up nobody else's commands, so the
/// [driver](crate::driver) blocks on it instead of polling. Give one to each
/// worker that waits on the server; keep the application's shared
/// connection for everything else.
pub struct DedicatedConnection(Detached);

#[cfg(feature = "async")]
impl DedicatedConnection {
    /// Opens a connection to the server of `client` (redis-rs' default
    /// timeouts: 1 s to connect, 500 ms per response).
    pub async fn connect_async(client: &redis::Client) -> Result<Self> {
        let con = client.get_multiplexed_async_connection().await?;
        Ok(DedicatedConnection(Detached(DetachedCon::Multiplexed(con))))
    }

    /// Opens a Cluster connection of its own with `client`.
    #[cfg(feature = "cluster")]
    pub async fn connect_cluster_async(client: &redis::cluster::ClusterClient) -> Result<Self> {
        let con = client.get_async_connection().await?;
        Ok(DedicatedConnection(Detached(DetachedCon::Cluster(con))))
    }
}

#[cfg(feature = "async")]
impl std::fmt::Debug for DedicatedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DedicatedConnection").field(&self.0).finish()
    }
}

#[cfg(feature = "async")]
impl AsyncExecutor for DedicatedConnection {
    fn execute_async(&mut self, plan: Plan) -> impl Future<Output = Result<Vec<Value>>> + Send {
        self.0.execute_async(plan)
    }

    fn is_exclusive(&self) -> bool {
        true
    }

    fn is_one_server(&self) -> bool {
        self.0.is_one_server()
    }
}

/// An owned clone of a redis-rs async connection (see
/// [`AsyncExecutor::detached`]). Requests sent through it share the original
/// connection (its socket and its order).
#[doc(hidden)]
#[derive(Clone)]
pub struct Detached(DetachedCon);

#[derive(Clone)]
enum DetachedCon {
    #[cfg(feature = "async")]
    Multiplexed(redis::aio::MultiplexedConnection),
    #[cfg(feature = "async")]
    Manager(redis::aio::ConnectionManager),
    #[cfg(all(feature = "async", feature = "cluster"))]
    Cluster(redis::cluster_async::ClusterConnection),
    #[cfg(feature = "async")]
    Configured(crate::connect::Connection),
    /// Without the `async` feature there are no redis-rs async connections
    /// to hold a handle on: no `Detached` exists.
    #[cfg(not(feature = "async"))]
    #[allow(dead_code)]
    None(std::convert::Infallible),
}

#[cfg(feature = "async")]
impl Detached {
    /// A handle on a [configured connection](crate::connect::Connection).
    pub(crate) fn configured(con: crate::connect::Connection) -> Self {
        Detached(DetachedCon::Configured(con))
    }
}

#[cfg(feature = "async")]
impl std::fmt::Debug for Detached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            #[cfg(feature = "async")]
            DetachedCon::Multiplexed(_) => "Detached(MultiplexedConnection)",
            #[cfg(feature = "async")]
            DetachedCon::Manager(_) => "Detached(ConnectionManager)",
            #[cfg(all(feature = "async", feature = "cluster"))]
            DetachedCon::Cluster(_) => "Detached(ClusterConnection)",
            #[cfg(feature = "async")]
            DetachedCon::Configured(_) => "Detached(Connection)",
        })
    }
}

#[cfg(feature = "async")]
impl AsyncExecutor for Detached {
    async fn execute_async(&mut self, plan: Plan) -> Result<Vec<Value>> {
        match &mut self.0 {
            #[cfg(feature = "async")]
            DetachedCon::Multiplexed(con) => con.execute_async(plan).await,
            #[cfg(feature = "async")]
            DetachedCon::Manager(con) => con.execute_async(plan).await,
            #[cfg(all(feature = "async", feature = "cluster"))]
            DetachedCon::Cluster(con) => con.execute_async(plan).await,
            #[cfg(feature = "async")]
            DetachedCon::Configured(con) => con.execute_async(plan).await,
        }
    }

    fn detached(&self) -> Option<Detached> {
        Some(self.clone())
    }

    fn is_one_server(&self) -> bool {
        matches!(
            self.0,
            DetachedCon::Multiplexed(_) | DetachedCon::Manager(_)
        )
    }
}

#[cfg(not(feature = "async"))]
impl std::fmt::Debug for Detached {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            DetachedCon::None(never) => match never {},
        }
    }
}

#[cfg(not(feature = "async"))]
impl AsyncExecutor for Detached {
    async fn execute_async(&mut self, _: Plan) -> Result<Vec<Value>> {
        match self.0 {
            DetachedCon::None(never) => match never {},
        }
    }
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

/// A pipeline built from the commands of a plan, which it owns (they are
/// moved into it, not copied), with what a `NOSCRIPT` retry needs.
struct Built {
    pipe: Pipeline,
    /// The `EVALSHA` calls that went out as such: position and script.
    evalsha: Vec<(usize, &'static Script)>,
}

/// Builds the pipeline of `commands`, sending the first call of each script
/// as `EVAL` when there is more than one command, unless it is the last
/// command: nothing of the pipeline runs after it, so when it gets
/// `NOSCRIPT` its re-sent `EVAL` still runs after everything before it, as
/// a lone call's does.
fn pipeline_of(commands: Vec<Command>) -> Built {
    let n = commands.len();
    let mut pipe = plain_pipeline(n);
    let mut evalsha = Vec::new();
    // Plans call few distinct scripts: a short list beats hashing. Tracked
    // by SHA, not by name: two scripts may share a name, and one body
    // declared twice is loaded by its first `EVAL`.
    let mut seen: Vec<&'static str> = Vec::new();
    for (i, c) in commands.into_iter().enumerate() {
        match c.script {
            Some(s) if i + 1 < n && !seen.contains(&s.sha()) => {
                seen.push(s.sha());
                pipe.add_command(eval_form(s, &c.cmd));
            }
            Some(s) => {
                evalsha.push((i, s));
                pipe.add_command(c.cmd);
            }
            None => {
                pipe.add_command(c.cmd);
            }
        }
    }
    Built { pipe, evalsha }
}

fn plain_pipeline(n: usize) -> Pipeline {
    let mut pipe = Pipeline::with_capacity(n);
    pipe.ignore_errors();
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

impl Built {
    /// The script calls answered with `NOSCRIPT`: position and `EVAL` form.
    fn noscript_retries(&self, values: &[Value]) -> Vec<(usize, Cmd)> {
        let failed: Vec<(usize, &'static Script)> = self
            .evalsha
            .iter()
            .copied()
            .filter(|&(i, _)| values.get(i).is_some_and(is_noscript))
            .collect();
        if failed.is_empty() {
            return Vec::new();
        }
        let cmds: Vec<&Cmd> = self.pipe.cmd_iter().collect();
        failed
            .into_iter()
            .filter_map(|(i, s)| Some((i, eval_form(s, cmds.get(i)?))))
            .collect()
    }
}

/// The pipeline that re-sends `retries` as `EVAL`.
fn retry_pipeline(retries: &[(usize, Cmd)]) -> Pipeline {
    let mut again = plain_pipeline(retries.len());
    for (_, eval) in retries {
        again.add_command(eval.clone());
    }
    again
}

/// A marker for a type that derefs to a connection redis-state can run on
/// (a pooled connection, a wrapper of your own): it then runs operations
/// as that connection does, Cluster routing included.
///
/// ```no_run
/// use redis_state::Operation;
///
/// struct Traced(redis::aio::MultiplexedConnection);
///
/// impl std::ops::Deref for Traced {
///     type Target = redis::aio::MultiplexedConnection;
///     fn deref(&self) -> &Self::Target {
///         &self.0
///     }
/// }
///
/// impl std::ops::DerefMut for Traced {
///     fn deref_mut(&mut self) -> &mut Self::Target {
///         &mut self.0
///     }
/// }
///
/// impl redis_state::exec::Forward for Traced {}
///
/// async fn hits(con: &mut Traced) -> redis_state::Result<Option<i64>> {
///     redis_state::op::command("GET", "hits").run_async(con).await
/// }
/// ```
pub trait Forward: DerefMut {}

/// A connection of your own to one server (any `redis::ConnectionLike` or
/// `redis::aio::ConnectionLike` that is not a Cluster client): its plans go
/// out as one pipeline. Wrapping a Cluster connection here would send
/// commands of several slots to one node; the Cluster clients run as they
/// are.
#[derive(Debug, Clone, Default)]
pub struct OneServer<C>(pub C);

impl SyncExecutor for redis::Connection {
    fn execute(&mut self, plan: Plan) -> Result<Vec<Value>> {
        execute_one_server(self, plan.commands)
    }

    fn is_one_server(&self) -> bool {
        true
    }
}

impl<C: redis::ConnectionLike> SyncExecutor for OneServer<C> {
    fn execute(&mut self, plan: Plan) -> Result<Vec<Value>> {
        execute_one_server(&mut self.0, plan.commands)
    }

    fn is_one_server(&self) -> bool {
        true
    }
}

#[cfg(feature = "cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
impl SyncExecutor for redis::cluster::ClusterConnection {
    fn execute(&mut self, plan: Plan) -> Result<Vec<Value>> {
        if plan.commands.is_empty() {
            return Ok(Vec::new());
        }
        execute_sync_cluster(self, plan.commands)
    }
}

impl<W: Forward + ?Sized> SyncExecutor for W
where
    W::Target: SyncExecutor,
{
    fn execute(&mut self, plan: Plan) -> Result<Vec<Value>> {
        (**self).execute(plan)
    }

    fn is_one_server(&self) -> bool {
        (**self).is_one_server()
    }
}

fn execute_one_server<C: redis::ConnectionLike>(
    con: &mut C,
    commands: Vec<Command>,
) -> Result<Vec<Value>> {
    if commands.is_empty() {
        return Ok(Vec::new());
    }
    let every = every_primary_positions(&commands);
    let mut values = send_sync(con, commands)?;
    as_per_node(&mut values, &every);
    Ok(values)
}

/// Sends `commands` to one server as a pipeline (or a lone request).
fn send_sync<C: redis::ConnectionLike>(con: &mut C, commands: Vec<Command>) -> Result<Vec<Value>> {
    if let [only] = commands.as_slice() {
        let first = con.req_command(&only.cmd);
        // The EVAL form (with the whole body) only when it is needed.
        let v = match noscript_result(&first).then(|| only.as_eval()).flatten() {
            Some(eval) => con.req_command(&eval),
            None => first,
        };
        return Ok(vec![as_reply(v)?]);
    }
    let n = commands.len();
    let built = pipeline_of(commands);
    let mut values = into_values(built.pipe.query::<Value>(con)?, n)?;
    let retries = built.noscript_retries(&values);
    if !retries.is_empty() {
        let redo = into_values(retry_pipeline(&retries).query::<Value>(con)?, retries.len())?;
        for ((i, _), v) in retries.into_iter().zip(redo) {
            values[i] = v;
        }
    }
    Ok(values)
}

/// Where the commands written with [`Plan::every_primary`] stand.
fn every_primary_positions(commands: &[Command]) -> Vec<usize> {
    commands
        .iter()
        .enumerate()
        .filter(|(_, c)| c.target == Target::EveryPrimary)
        .map(|(i, _)| i)
        .collect()
}

/// A standalone server's reply to a command for every primary, in the
/// per-node shape of the Cluster clients: one node, the server (nil).
fn as_per_node(values: &mut [Value], positions: &[usize]) {
    for &i in positions {
        if let Some(v) = values.get_mut(i) {
            let reply = std::mem::replace(v, Value::Nil);
            *v = Value::Map(vec![(Value::Nil, reply)]);
        }
    }
}

/// How a Cluster client routes a command addressed by [`Target`]; `None`
/// for a command routed by its keys.
#[cfg(feature = "cluster")]
fn cluster_routing(target: &Target) -> Result<Option<RoutingInfo>> {
    Ok(match target {
        Target::Keys => None,
        // No response policy: redis-rs answers a map of node address to
        // that node's reply.
        Target::EveryPrimary => Some(RoutingInfo::MultiNode((
            MultipleNodeRoutingInfo::AllMasters,
            None,
        ))),
        Target::Node(node) => match node.address() {
            Some((host, port)) => Some(RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.to_owned(),
                port,
            })),
            None => {
                return Err(Error::InvalidConfig {
                    what: "a plan",
                    reason: "a command for the server of a standalone connection was sent on a \
                             Cluster connection"
                        .to_owned(),
                });
            }
        },
    })
}

/// Keyed commands the blocking Cluster client refuses inside a pipeline
/// (redis-rs' `is_illegal_cmd`) although their keys share a slot (checked
/// when the plan was written): multi-key set reads.
#[cfg(feature = "cluster")]
fn refused_in_sync_cluster_pipeline(c: &Command) -> bool {
    let name = c.cmd.args_iter().next();
    matches!(
        name,
        Some(redis::Arg::Simple(n)) if [&b"SINTER"[..], b"SUNION", b"SDIFF"]
            .iter()
            .any(|x| n.eq_ignore_ascii_case(x))
    ) && c.slot.is_some()
}

#[cfg(feature = "cluster")]
fn execute_sync_cluster(
    con: &mut redis::cluster::ClusterConnection,
    commands: Vec<Command>,
) -> Result<Vec<Value>> {
    if commands
        .iter()
        .all(|c| c.target == Target::Keys && !refused_in_sync_cluster_pipeline(c))
    {
        return send_sync_cluster(con, commands);
    }
    // Commands for chosen nodes, and those the cluster pipeline refuses (sent
    // to their slot's primary), go out one by one, in plan order; the
    // commands between them as cluster pipelines.
    let mut values = Vec::with_capacity(commands.len());
    let mut run: Vec<Command> = Vec::new();
    for c in commands {
        let routing = match c.slot {
            Some(slot) if refused_in_sync_cluster_pipeline(&c) => Some(RoutingInfo::SingleNode(
                SingleNodeRoutingInfo::SpecificNode(redis::cluster_routing::Route::new(
                    slot,
                    redis::cluster_routing::SlotAddr::Master,
                )),
            )),
            _ => cluster_routing(&c.target)?,
        };
        match routing {
            None => run.push(c),
            Some(routing) => {
                if !run.is_empty() {
                    values.extend(send_sync_cluster(con, std::mem::take(&mut run))?);
                }
                values.push(as_reply(con.route_command(&c.cmd, routing))?);
            }
        }
    }
    if !run.is_empty() {
        values.extend(send_sync_cluster(con, run)?);
    }
    Ok(values)
}

#[cfg(feature = "cluster")]
fn send_sync_cluster(
    con: &mut redis::cluster::ClusterConnection,
    commands: Vec<Command>,
) -> Result<Vec<Value>> {
    if commands.len() == 1 {
        return send_sync(con, commands);
    }
    let n = commands.len();
    let mut pipe = redis::cluster::cluster_pipe();
    // redis-rs decides which node gets which command, so the first call of a
    // script is sent as EVAL once per hash slot.
    let mut seen: HashSet<(&str, Option<u16>)> = HashSet::new();
    for c in &commands {
        match c.script {
            Some(s) if seen.insert((s.sha(), c.slot)) => pipe.add_command(eval_form(s, &c.cmd)),
            _ => pipe.add_command(c.cmd.clone()),
        };
    }
    let mut values: Vec<Value> = match pipe.query(con) {
        Ok(values) => values,
        // A slot of the pipeline is migrating or has moved, and the
        // blocking cluster pipeline gives up on the whole of it: each
        // command is sent alone, which follows `ASK` (with `ASKING`) and
        // `MOVED` and retries `TRYAGAIN` within the client's retry limit.
        // Only while slots move, so the extra round trips are rare.
        Err(e) if is_redirection_error(&e) => {
            let mut values = Vec::with_capacity(n);
            for c in commands {
                values.extend(send_sync(con, vec![c])?);
            }
            return Ok(values);
        }
        Err(e) => return Err(e.into()),
    };
    if values.len() != n {
        return Err(Error::UnexpectedReply {
            context: "a cluster pipeline",
            found: format!("{} replies to {n} commands", values.len()),
        });
    }
    // The blocking cluster pipeline hands back the redirections of a slot
    // that is migrating (`ASK`, `TRYAGAIN`) or has just moved (`MOVED`) as
    // replies. Each such command is sent again alone, which follows the
    // redirection (with `ASKING`) and retries `TRYAGAIN` within the
    // client's retry limit.
    let redirected: Vec<usize> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| is_redirection(v))
        .map(|(i, _)| i)
        .collect();
    if !redirected.is_empty() {
        let mut commands: Vec<Option<Command>> = commands.into_iter().map(Some).collect();
        for i in redirected {
            if let Some(c) = commands[i].take() {
                values[i] = send_sync(con, vec![c])?.pop().unwrap_or(Value::Nil);
            }
        }
    }
    Ok(values)
}

/// A reply that redirects the command to another node of a Cluster.
#[cfg(feature = "cluster")]
fn is_redirection(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if matches!(e.code(), "ASK" | "MOVED" | "TRYAGAIN"))
}

/// An error that redirects a command to another node of a Cluster.
#[cfg(feature = "cluster")]
fn is_redirection_error(e: &redis::RedisError) -> bool {
    matches!(e.code(), Some("ASK" | "MOVED" | "TRYAGAIN"))
}

#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
impl AsyncExecutor for redis::aio::MultiplexedConnection {
    fn execute_async(&mut self, plan: Plan) -> impl Future<Output = Result<Vec<Value>>> + Send {
        execute_one_server_async(self, plan.commands)
    }

    fn detached(&self) -> Option<Detached> {
        Some(Detached(DetachedCon::Multiplexed(self.clone())))
    }

    fn is_one_server(&self) -> bool {
        true
    }
}

#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
impl AsyncExecutor for redis::aio::ConnectionManager {
    fn execute_async(&mut self, plan: Plan) -> impl Future<Output = Result<Vec<Value>>> + Send {
        execute_one_server_async(self, plan.commands)
    }

    fn detached(&self) -> Option<Detached> {
        Some(Detached(DetachedCon::Manager(self.clone())))
    }

    fn is_one_server(&self) -> bool {
        true
    }
}

#[cfg(all(feature = "async", feature = "cluster"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "async", feature = "cluster"))))]
impl AsyncExecutor for redis::cluster_async::ClusterConnection {
    async fn execute_async(&mut self, plan: Plan) -> Result<Vec<Value>> {
        if plan.commands.is_empty() {
            return Ok(Vec::new());
        }
        execute_async_cluster(self, plan.commands).await
    }

    fn detached(&self) -> Option<Detached> {
        Some(Detached(DetachedCon::Cluster(self.clone())))
    }
}

#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
impl<C: redis::aio::ConnectionLike + Send> AsyncExecutor for OneServer<C> {
    fn execute_async(&mut self, plan: Plan) -> impl Future<Output = Result<Vec<Value>>> + Send {
        execute_one_server_async(&mut self.0, plan.commands)
    }

    fn is_one_server(&self) -> bool {
        true
    }
}

impl<W: Forward + Send + ?Sized> AsyncExecutor for W
where
    W::Target: AsyncExecutor,
{
    fn execute_async(&mut self, plan: Plan) -> impl Future<Output = Result<Vec<Value>>> + Send {
        (**self).execute_async(plan)
    }

    fn detached(&self) -> Option<Detached> {
        (**self).detached()
    }

    fn is_exclusive(&self) -> bool {
        (**self).is_exclusive()
    }

    fn is_one_server(&self) -> bool {
        (**self).is_one_server()
    }
}

/// An async connection the lock watchdog can own a handle of, to renew the
/// lock from its own task ([`Lock::acquire_watched_async`]): the redis-rs
/// connections that are shared handles (`MultiplexedConnection`,
/// `ConnectionManager`, the async Cluster connection), [`OneServer`] of a
/// `Clone` connection, and every [`Forward`] wrapper of these (pooled
/// connections of deadpool-redis and bb8-redis: the watchdog gets a handle
/// on the connection inside, the pooled object stays the caller's).
///
/// [`Lock::acquire_watched_async`]: crate::lock::Lock::acquire_watched_async
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be shared with the lock's watchdog task",
    label = "no cloneable handle on this connection",
    note = "the watchdog owns a handle: use a `MultiplexedConnection`, `ConnectionManager`, async Cluster connection, or a deadpool-redis / bb8-redis pooled connection (features `deadpool`, `bb8`)",
    note = "a `Clone` connection of your own for one server: `redis_state::exec::OneServer(conn)`"
)]
pub trait Shared: AsyncExecutor {
    /// The handle the watchdog owns.
    type Handle: AsyncExecutor + Clone + Send + Sync + 'static;
    /// A handle on the same connection.
    fn handle(&self) -> Self::Handle;
}

#[cfg(feature = "async")]
macro_rules! shared_handles {
    ($($t:ty),*) => {$(
        impl Shared for $t {
            type Handle = $t;
            fn handle(&self) -> $t {
                self.clone()
            }
        }
    )*};
}

#[cfg(feature = "async")]
shared_handles!(
    redis::aio::MultiplexedConnection,
    redis::aio::ConnectionManager,
    Detached
);

#[cfg(all(feature = "async", feature = "cluster"))]
shared_handles!(redis::cluster_async::ClusterConnection);

#[cfg(feature = "async")]
impl<C> Shared for OneServer<C>
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    type Handle = OneServer<C>;
    fn handle(&self) -> Self::Handle {
        self.clone()
    }
}

impl<W: Forward + Send + ?Sized> Shared for W
where
    W::Target: Shared,
{
    type Handle = <W::Target as Shared>::Handle;
    fn handle(&self) -> Self::Handle {
        (**self).handle()
    }
}

#[cfg(feature = "deadpool")]
impl Forward for deadpool_redis::Connection {}

#[cfg(all(feature = "deadpool", feature = "cluster"))]
impl Forward for deadpool_redis::cluster::Connection {}

#[cfg(feature = "bb8")]
impl<M: bb8_redis::bb8::ManageConnection> Forward for bb8_redis::bb8::PooledConnection<'_, M> {}

#[cfg(feature = "r2d2")]
impl<M: r2d2::ManageConnection> Forward for r2d2::PooledConnection<M> {}

// The futures below are functions returning `async move` blocks, not
// `async fn`s: an `async fn` moves its arguments into locals of its own, and
// its future would hold them twice. Every operation's future holds theirs.
#[cfg(feature = "async")]
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice"
)]
fn execute_one_server_async<C: redis::aio::ConnectionLike + Send>(
    con: &mut C,
    commands: Vec<Command>,
) -> impl Future<Output = Result<Vec<Value>>> + Send {
    async move {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let every = every_primary_positions(&commands);
        let mut values = send_async(con, commands).await?;
        as_per_node(&mut values, &every);
        Ok(values)
    }
}

/// Sends `commands` to one node as a pipeline (or a lone request).
#[cfg(feature = "async")]
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice"
)]
fn send_async<C: redis::aio::ConnectionLike + Send>(
    con: &mut C,
    commands: Vec<Command>,
) -> impl Future<Output = Result<Vec<Value>>> + Send {
    async move {
        if let [only] = commands.as_slice() {
            let first = con.req_packed_command(&only.cmd).await;
            if !noscript_result(&first) {
                return Ok(vec![as_reply(first)?]);
            }
            // The EVAL form (with the whole body) only when it is needed;
            // boxed, so that the single command's future does not carry
            // the state of this rare second request.
            return Box::pin(resend_as_eval(con, only, first)).await;
        }
        // Boxed: the pipeline's state is large, and every caller's future
        // (a single command's too) would otherwise carry it; one allocation
        // per pipeline instead.
        Box::pin(send_pipeline_async(con, commands)).await
    }
}

/// A lone script call refused with `NOSCRIPT`, sent again as `EVAL` (or
/// `first` as it came, when `only` calls no script).
#[cfg(feature = "async")]
async fn resend_as_eval<C: redis::aio::ConnectionLike + Send>(
    con: &mut C,
    only: &Command,
    first: redis::RedisResult<Value>,
) -> Result<Vec<Value>> {
    let v = match only.as_eval() {
        Some(eval) => con.req_packed_command(&eval).await,
        None => first,
    };
    Ok(vec![as_reply(v)?])
}

/// [`send_async`] of two commands or more: one pipeline.
#[cfg(feature = "async")]
async fn send_pipeline_async<C: redis::aio::ConnectionLike + Send>(
    con: &mut C,
    commands: Vec<Command>,
) -> Result<Vec<Value>> {
    let n = commands.len();
    let built = pipeline_of(commands);
    let mut values = into_values(built.pipe.query_async::<Value>(con).await?, n)?;
    let retries = built.noscript_retries(&values);
    if !retries.is_empty() {
        let redo = into_values(
            retry_pipeline(&retries).query_async::<Value>(con).await?,
            retries.len(),
        )?;
        for ((i, _), v) in retries.into_iter().zip(redo) {
            values[i] = v;
        }
    }
    Ok(values)
}

#[cfg(all(feature = "async", feature = "cluster"))]
async fn execute_async_cluster(
    con: &mut redis::cluster_async::ClusterConnection,
    commands: Vec<Command>,
) -> Result<Vec<Value>> {
    // Group by slot, keeping order inside each group. Keyless commands each
    // form a group of their own.
    let n = commands.len();
    let mut groups: Vec<(Vec<usize>, Vec<Command>)> = Vec::new();
    let mut by_slot: HashMap<u16, usize> = HashMap::new();
    for (i, c) in commands.into_iter().enumerate() {
        let g = match c.slot.filter(|_| c.target == Target::Keys) {
            Some(slot) => *by_slot.entry(slot).or_insert_with(|| {
                groups.push((Vec::new(), Vec::new()));
                groups.len() - 1
            }),
            None => {
                groups.push((Vec::new(), Vec::new()));
                groups.len() - 1
            }
        };
        groups[g].0.push(i);
        groups[g].1.push(c);
    }
    if groups.len() == 1 {
        let (_, commands) = groups.pop().unwrap_or_default();
        return send_group_async(con, commands).await;
    }
    let (positions, groups): (Vec<Vec<usize>>, Vec<Vec<Command>>) = groups.into_iter().unzip();
    let futures = groups.into_iter().map(|group| {
        let mut con = con.clone();
        async move { send_group_async(&mut con, group).await }
    });
    let results = futures_util::future::join_all(futures).await;
    let mut values = vec![Value::Nil; n];
    for (idx, result) in positions.iter().zip(results) {
        for (&i, v) in idx.iter().zip(result?) {
            values[i] = v;
        }
    }
    Ok(values)
}

#[cfg(all(feature = "async", feature = "cluster"))]
async fn send_group_async(
    con: &mut redis::cluster_async::ClusterConnection,
    group: Vec<Command>,
) -> Result<Vec<Value>> {
    if let [only] = group.as_slice()
        && let Some(routing) = cluster_routing(&only.target)?
    {
        let cmd = group.into_iter().next().map(|c| c.cmd).unwrap_or_default();
        return Ok(vec![as_reply(con.route_command(cmd, routing).await)?]);
    }
    if group.len() == 1 {
        return send_async(con, group).await;
    }
    let n = group.len();
    let built = pipeline_of(group.clone());
    let mut values = match built.pipe.query_async::<Value>(con).await {
        Ok(v) => into_values(v, n)?,
        // The slot is migrating or has moved and the cluster pipeline
        // gives up on it: each command alone follows `ASK` (with
        // `ASKING`) and `MOVED` and retries `TRYAGAIN` (as for the
        // blocking client, only while slots move).
        Err(e) if is_redirection_error(&e) => {
            let mut values = Vec::with_capacity(n);
            for c in group {
                values.extend(send_async(con, vec![c]).await?);
            }
            return Ok(values);
        }
        Err(e) => return Err(e.into()),
    };
    for (i, eval) in built.noscript_retries(&values) {
        use redis::aio::ConnectionLike;
        values[i] = con.req_packed_command(&eval).await?;
    }
    let mut group: Vec<Option<Command>> = group.into_iter().map(Some).collect();
    for (i, v) in values.iter_mut().enumerate() {
        if is_redirection(v)
            && let Some(c) = group[i].take()
        {
            *v = send_async(con, vec![c]).await?.pop().unwrap_or(Value::Nil);
        }
    }
    Ok(values)
}

/// Builds an error for a plan the executors refuse.
#[allow(dead_code)]
pub(crate) fn client_error(msg: &'static str) -> Error {
    Error::Redis(redis::RedisError::from((ErrorKind::Client, msg)))
}

#[cfg(all(test, feature = "test-support", feature = "async"))]
mod tests {
    //! The `NOSCRIPT` retry inside a pipeline: a `SCRIPT FLUSH` between the
    //! first call of a script (sent as `EVAL`) and the next ones (`EVALSHA`).

    use crate::op::{Operation, Plan, Replies, Step, batch};
    use crate::testing::RedisServer;

    crate::script! {
        struct Echo {
            name: "redis_state.test.echo",
            keys: [key],
            args: [value: &str],
            returns: String,
            lua: "return ARGV[1]",
        }
    }

    fn echo(value: &str) -> Echo {
        Echo::new("echo-key", value)
    }

    struct FlushScripts;

    impl Operation for FlushScripts {
        type Output = ();
        fn prepare(&mut self, plan: &mut Plan) -> crate::Result<()> {
            plan.keyless("SCRIPT").arg("FLUSH");
            Ok(())
        }
        fn complete(&mut self, replies: &mut Replies) -> crate::Result<Step<()>> {
            replies.next_value().map(|_| Step::Done(()))
        }
    }

    fn ops() -> impl Operation<Output = (String, (), String, String)> + Send {
        batch((echo("a"), FlushScripts, echo("b"), echo("c")))
    }

    #[test]
    fn calls_flushed_mid_pipeline_are_resent_as_eval() {
        let server = RedisServer::start().expect("redis-server");
        let mut con = server.connection().expect("connection");
        let out = ops().run(&mut con).expect("batch");
        assert_eq!(out, ("a".into(), (), "b".into(), "c".into()));

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let out = rt
            .block_on(async {
                let mut con = server.async_connection().await.expect("connection");
                ops().run_async(&mut con).await
            })
            .expect("batch");
        assert_eq!(out, ("a".into(), (), "b".into(), "c".into()));
    }
}
