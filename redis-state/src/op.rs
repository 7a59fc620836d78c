//! Operations as values (DESIGN principle 1).
//!
//! Every operation of the crate (save, load, rank, acquire, ...) is a value
//! that implements [`Operation`]: it writes the commands of one round trip into
//! a [`Plan`] and decodes the [`Replies`]. Building one does no I/O. The same
//! value runs on a blocking connection with [`Operation::run`] or on an async
//! one with [`Operation::run_async`], on a standalone server or a Cluster.
//!
//! Operations compose: [`batch`] runs a tuple of operations of any models in
//! one pipeline and returns a tuple of their outputs; [`many`] does the same
//! for a `Vec`. A few operations need a second round trip (a secondary index
//! lookup, then the entities); in a batch, all second rounds share one
//! pipeline too.
//!
//! ```no_run
//! # use redis_state::prelude::*;
//! # #[derive(RedisHash)] #[redis(key = "user:{id}")] struct User { #[redis(id)] id: u64, name: String }
//! # #[derive(RedisHash)] #[redis(key = "order:{id}")] struct Order { #[redis(id)] id: u64, total: i64 }
//! # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
//! // One round trip for two models.
//! let (user, order) = redis_state::batch((User::load(&1), Order::load(&7))).run(con)?;
//! # Ok(()) }
//! ```

use std::future::Future;

use redis::{Cmd, FromRedisValue, Value};

use crate::error::{Error, Result};
use crate::exec::{AsyncExecutor, SyncExecutor};
use crate::keys::key_slot;
use crate::script::Script;

/// One command of a plan.
#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub(crate) cmd: Cmd,
    /// Set when `cmd` is an `EVALSHA` of this script.
    pub(crate) script: Option<&'static Script>,
    /// The Cluster slot of the command's keys; `None` for keyless commands.
    /// Read by the Cluster executors (feature `cluster`); computed in every
    /// build, where it also checks that a command's keys share a slot.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) slot: Option<u16>,
    /// Where the command goes when its keys do not say.
    pub(crate) target: Target,
    /// Where its keys stand among its arguments (for error messages).
    pub(crate) keys: KeyArgs,
}

/// Where a command's keys stand among its arguments: `count` arguments
/// from index `start`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KeyArgs {
    start: usize,
    count: usize,
}

/// What a server error names: the command (or script) and its keys.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    operation: String,
    keys: Vec<String>,
}

/// The names and keys of a plan's commands, copied into one buffer before
/// the plan is sent (its commands move into the pipeline). The buffer is
/// held in the value itself up to [`INLINE`] bytes (a command or two on
/// short keys: no allocation), else allocated once, sized up front; none
/// per command (the first command's entry is held inline too). A [`Site`]
/// is built from it only for a command that failed.
#[derive(Debug, Default)]
pub(crate) struct Sites {
    /// Each command's name, then its keys: each a `u32` length (native
    /// order) and the bytes.
    text: Text,
    /// The first command's entry.
    first: Option<SiteEntry>,
    /// The entries of the commands after the first.
    rest: Vec<SiteEntry>,
}

#[derive(Debug, Clone, Copy)]
struct SiteEntry {
    script: Option<&'static Script>,
    /// Where the command's name starts in `text`; its keys follow it.
    at: usize,
    keys: usize,
}

/// Bytes of [`Sites`] text held without an allocation: a `PUBLISH` or
/// `GET` on a key of up to 33 bytes (4 + 7 + 4 + 33).
const INLINE: usize = 48;

/// The text of [`Sites`]: inline up to [`INLINE`] bytes, on the heap past
/// that.
#[derive(Debug)]
enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Vec<u8>),
}

impl Default for Text {
    fn default() -> Self {
        Text::Inline {
            len: 0,
            bytes: [0; INLINE],
        }
    }
}

impl Text {
    /// Room for `n` bytes: inline when they fit.
    fn with_capacity(n: usize) -> Self {
        if n <= INLINE {
            Text::default()
        } else {
            Text::Heap(Vec::with_capacity(n))
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Text::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Text::Heap(v) => v,
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Appends `b`, moving the text to the heap when it no longer fits.
    fn extend_from_slice(&mut self, b: &[u8]) {
        match self {
            Text::Inline { len, bytes } => {
                let at = usize::from(*len);
                let end = at + b.len();
                if let (Some(dst), Ok(end)) = (bytes.get_mut(at..end), u8::try_from(end)) {
                    dst.copy_from_slice(b);
                    *len = end;
                    return;
                }
                let mut v = Vec::with_capacity(end.max(2 * INLINE));
                v.extend_from_slice(bytes.get(..at).unwrap_or_default());
                v.extend_from_slice(b);
                *self = Text::Heap(v);
            }
            Text::Heap(v) => v.extend_from_slice(b),
        }
    }
}

/// The bytes of a simple argument.
fn arg_bytes(a: redis::Arg<&[u8]>) -> &[u8] {
    match a {
        redis::Arg::Simple(b) => b,
        _ => &[],
    }
}

/// Bytes of the length in front of each name or key in [`Sites`].
const LEN: usize = std::mem::size_of::<u32>();

impl Command {
    /// The command's name, then its keys.
    fn site_parts(&self) -> impl Iterator<Item = &[u8]> {
        let name = self.cmd.args_iter().next().map_or(&[][..], arg_bytes);
        std::iter::once(name).chain(
            self.cmd
                .args_iter()
                .skip(self.keys.start)
                .take(self.keys.count)
                .map(arg_bytes),
        )
    }
}

impl Sites {
    fn of(commands: &[Command]) -> Sites {
        let size = commands
            .iter()
            .flat_map(Command::site_parts)
            .map(|p| LEN + p.len())
            .sum();
        let mut sites = Sites {
            text: Text::with_capacity(size),
            first: None,
            rest: Vec::with_capacity(commands.len().saturating_sub(1)),
        };
        for c in commands {
            let at = sites.text.len();
            let mut parts = 0;
            for p in c.site_parts() {
                sites.put(p);
                parts += 1;
            }
            sites.add(SiteEntry {
                script: c.script,
                at,
                keys: parts - 1,
            });
        }
        sites
    }

    fn put(&mut self, bytes: &[u8]) {
        // Redis caps a key at 512 MB: the cut never happens.
        let bytes = bytes.get(..u32::MAX as usize).unwrap_or(bytes);
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.text.extend_from_slice(&len.to_ne_bytes());
        self.text.extend_from_slice(bytes);
    }

    fn add(&mut self, e: SiteEntry) {
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(e);
        } else {
            self.rest.push(e);
        }
    }

    fn entry(&self, i: usize) -> Option<&SiteEntry> {
        match i {
            0 => self.first.as_ref(),
            _ => self.rest.get(i - 1),
        }
    }

    /// The name or key at `at` in `text`, and where the next one starts.
    fn part(&self, at: usize) -> (&[u8], usize) {
        let text = self.text.as_slice();
        let len = text
            .get(at..at + LEN)
            .and_then(|b| <[u8; LEN]>::try_from(b).ok())
            .map_or(0, |b| u32::from_ne_bytes(b) as usize);
        let end = at + LEN + len;
        (text.get(at + LEN..end).unwrap_or_default(), end)
    }

    /// The name and keys of an entry.
    fn parts(&self, e: &SiteEntry) -> impl Iterator<Item = &[u8]> {
        let mut at = e.at;
        (0..=e.keys).map(move |_| {
            let (bytes, next) = self.part(at);
            at = next;
            bytes
        })
    }

    /// The site of command `i`.
    fn get(&self, i: usize) -> Option<Site> {
        let e = self.entry(i)?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut parts = self.parts(e);
        let name = parts.next().map(text).unwrap_or_default();
        let operation = match e.script {
            Some(s) => format!("script {}", s.name()),
            None => name,
        };
        let keys = parts.map(text).collect();
        Some(Site { operation, keys })
    }

    /// The sites of `count` commands from `position`.
    fn range(&self, position: usize, count: usize) -> Sites {
        let mut out = Sites::default();
        for i in position..position.saturating_add(count) {
            let Some(e) = self.entry(i) else { break };
            let at = out.text.len();
            for p in self.parts(e) {
                out.put(p);
            }
            out.add(SiteEntry {
                script: e.script,
                at,
                keys: e.keys,
            });
        }
        out
    }
}

impl Site {
    /// The error of a server error reply at this site.
    pub(crate) fn error(self, e: redis::ServerError) -> Error {
        Error::server(self.operation, self.keys, e)
    }

    /// The error of a round trip that got no reply.
    pub(crate) fn no_reply(self, commands: usize, e: redis::RedisError) -> Error {
        Error::NoReply {
            operation: self.operation,
            keys: self.keys,
            commands,
            error: e,
        }
    }
}

/// Where a command goes, beyond what its keys say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// By its keys' slot (any node for a keyless command).
    Keys,
    /// Once to every primary; the reply is one per node (see
    /// [`Replies::next_per_node`]).
    EveryPrimary,
    /// To one node.
    Node(Node),
}

/// A server a command went to: the server of a standalone connection, or
/// one primary of a Cluster, as [`Replies::next_per_node`] names it and
/// [`Plan::on_node`] addresses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node(Option<(String, u16)>);

impl Node {
    /// The one server of a standalone connection.
    pub fn server() -> Self {
        Node(None)
    }

    /// The Cluster node at `host:port`.
    pub fn at(host: impl Into<String>, port: u16) -> Self {
        Node(Some((host.into(), port)))
    }

    /// Host and port of a Cluster node; `None` for the server of a
    /// standalone connection.
    pub fn address(&self) -> Option<(&str, u16)> {
        self.0.as_ref().map(|(h, p)| (h.as_str(), *p))
    }

    /// Reads the node's name in an every-primary reply: nil for a
    /// standalone server, `host:port` for a Cluster node.
    fn from_reply_key(key: &Value) -> Option<Self> {
        let text = match key {
            Value::Nil => return Some(Node::server()),
            Value::BulkString(b) => std::str::from_utf8(b).ok()?,
            Value::SimpleString(s) => s.as_str(),
            _ => return None,
        };
        let (host, port) = text.rsplit_once(':')?;
        Some(Node::at(host, port.parse().ok()?))
    }
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("the server"),
            Some((host, port)) => write!(f, "{host}:{port}"),
        }
    }
}

impl Command {
    /// The same call as `EVAL` with the script body.
    pub(crate) fn as_eval(&self) -> Option<Cmd> {
        Some(eval_form(self.script?, &self.cmd))
    }
}

/// The `EVAL` form of `evalsha`, an `EVALSHA` call of `script`: the body in
/// place of the SHA1, the same keys and arguments.
pub(crate) fn eval_form(script: &Script, evalsha: &Cmd) -> Cmd {
    let mut eval = Cmd::new();
    eval.arg("EVAL").arg(script.body());
    for arg in evalsha.args_iter().skip(2) {
        if let redis::Arg::Simple(bytes) = arg {
            eval.arg(bytes);
        }
    }
    eval
}

/// The commands of one round trip, written by operations.
#[derive(Debug, Default)]
pub struct Plan {
    pub(crate) commands: Vec<Command>,
    /// Set for the writes between `MULTI` and `EXEC`: they get no second
    /// round, so operations that may ask for one decide in this one.
    pub(crate) single_round: bool,
    /// Set when the executor sends every command to one server (see
    /// [`SyncExecutor::is_one_server`]): a script may then touch keys of
    /// several Cluster slots.
    pub(crate) one_server: bool,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Self {
        Plan::default()
    }

    /// Number of commands so far.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// True when no command was written.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// What each command's server error would name.
    pub(crate) fn sites(&self) -> Sites {
        Sites::of(&self.commands)
    }

    /// Starts command `name` on `key` (its first key) and returns it, so the
    /// caller appends the remaining arguments.
    pub fn cmd(&mut self, name: &str, key: impl AsRef<[u8]>) -> &mut Cmd {
        self.cmd_sized(name, key.as_ref(), 0, 0)
    }

    /// [`Plan::cmd`] with room for `args` more arguments of `bytes` bytes in
    /// all, so that appending them does not reallocate.
    pub(crate) fn cmd_sized(
        &mut self,
        name: &str,
        key: &[u8],
        args: usize,
        bytes: usize,
    ) -> &mut Cmd {
        let mut cmd = Cmd::with_capacity(2 + args, name.len() + key.len() + bytes);
        cmd.arg(name).arg(key);
        self.push(
            cmd,
            Some(key_slot(key)),
            None,
            KeyArgs { start: 1, count: 1 },
        )
    }

    /// Adds `cmd`, built beforehand, whose first argument after its name is
    /// its only key, `key`.
    pub(crate) fn cmd_built(&mut self, cmd: Cmd, key: &[u8]) -> &mut Cmd {
        self.push(
            cmd,
            Some(key_slot(key)),
            None,
            KeyArgs { start: 1, count: 1 },
        )
    }

    /// Starts command `name` over several keys, which must share a Cluster
    /// slot (checked here). Returns the command after its keys.
    pub fn cmd_keys<K: AsRef<[u8]>>(&mut self, name: &str, keys: &[K]) -> Result<&mut Cmd> {
        let slot = common_slot(name, keys)?;
        let mut cmd = Cmd::new();
        cmd.arg(name);
        for k in keys {
            cmd.arg(k.as_ref());
        }
        let count = keys.len();
        Ok(self.push(cmd, slot, None, KeyArgs { start: 1, count }))
    }

    /// Starts command `name` routed by `key` (its Cluster slot) without
    /// writing the key, for commands whose keys come after other arguments
    /// (`XREAD BLOCK ms STREAMS key id`). The caller writes every argument.
    pub fn cmd_routed(&mut self, name: &str, key: impl AsRef<[u8]>) -> &mut Cmd {
        let mut cmd = Cmd::new();
        cmd.arg(name);
        self.push(cmd, Some(key_slot(key.as_ref())), None, KeyArgs::default())
    }

    /// Starts a command without keys (routed to any node in a Cluster).
    pub fn keyless(&mut self, name: &str) -> &mut Cmd {
        let mut cmd = Cmd::new();
        cmd.arg(name);
        self.push(cmd, None, None, KeyArgs::default())
    }

    /// Starts a command for every primary: the executors send it once on a
    /// standalone server and once to each primary on both Cluster clients
    /// (`SCAN`, `INFO`, `SCRIPT LOAD`, `DBSIZE`, `FLUSHDB`). Its reply is
    /// one per node: read it with [`Replies::next_per_node`].
    pub fn every_primary(&mut self, name: &str) -> &mut Cmd {
        let mut cmd = Cmd::new();
        cmd.arg(name);
        self.push_to(cmd, Target::EveryPrimary)
    }

    /// Starts a command for one node, named by an earlier
    /// [`every_primary`](Plan::every_primary) reply: a `SCAN` that goes on
    /// with the cursor that node returned. On a standalone connection it
    /// goes to the server.
    pub fn on_node(&mut self, node: &Node, name: &str) -> &mut Cmd {
        let mut cmd = Cmd::new();
        cmd.arg(name);
        self.push_to(cmd, Target::Node(node.clone()))
    }

    /// Starts a call of `script` with `keys`, which must share a Cluster slot
    /// (checked here, before anything is sent). Returns the command so the
    /// caller appends `ARGV`.
    pub fn script<K: AsRef<[u8]>>(
        &mut self,
        script: &'static Script,
        keys: &[K],
    ) -> Result<&mut Cmd> {
        self.script_sized(script, keys, 0, 0)
    }

    /// Whether one script may take `keys`: they share a Cluster slot, or
    /// the plan goes to one server (see [`Plan::script_on_one_server`]).
    pub(crate) fn fits_one_script<K: AsRef<[u8]>>(&self, keys: &[K]) -> bool {
        self.one_server || common_slot("", keys).is_ok()
    }

    /// [`Plan::script`] for a plan known to go to one server
    /// ([`SyncExecutor::is_one_server`]), where the keys may lie in several
    /// Cluster slots; `None` (nothing written) when the plan may be routed
    /// by slot and the keys do not share one. The caller then takes another
    /// way (such as two round trips).
    pub(crate) fn script_on_one_server<K: AsRef<[u8]>>(
        &mut self,
        script: &'static Script,
        keys: &[K],
    ) -> Option<&mut Cmd> {
        let slot = match common_slot(script.name(), keys) {
            Ok(slot) => slot,
            Err(_) if self.one_server => keys.first().map(|k| key_slot(k.as_ref())),
            Err(_) => return None,
        };
        let mut cmd = Cmd::new();
        cmd.arg("EVALSHA").arg(script.sha()).arg(keys.len());
        for k in keys {
            cmd.arg(k.as_ref());
        }
        let count = keys.len();
        Some(self.push(cmd, slot, Some(script), KeyArgs { start: 3, count }))
    }

    /// [`Plan::script`] with room for `args` arguments of `bytes` bytes in
    /// all, so that appending them does not reallocate.
    pub(crate) fn script_sized<K: AsRef<[u8]>>(
        &mut self,
        script: &'static Script,
        keys: &[K],
        args: usize,
        bytes: usize,
    ) -> Result<&mut Cmd> {
        let slot = common_slot(script.name(), keys)?;
        let key_bytes: usize = keys.iter().map(|k| k.as_ref().len()).sum();
        let mut cmd = Cmd::with_capacity(3 + keys.len() + args, 7 + 40 + 4 + key_bytes + bytes);
        cmd.arg("EVALSHA").arg(script.sha()).arg(keys.len());
        for k in keys {
            cmd.arg(k.as_ref());
        }
        let count = keys.len();
        Ok(self.push(cmd, slot, Some(script), KeyArgs { start: 3, count }))
    }

    /// Writes a typed script call: `keys` and `args` hold one Redis
    /// argument each, `ns` prefixes every key. The keys must share a slot
    /// (checked here). Builds the command in one presized buffer.
    pub(crate) fn script_call(
        &mut self,
        script: &'static Script,
        keys: &Cmd,
        args: &Cmd,
        ns: Option<&crate::keys::Namespace>,
    ) -> Result<()> {
        use redis::RedisWrite;
        use std::io::Write;
        fn simple(a: redis::Arg<&[u8]>) -> &[u8] {
            match a {
                redis::Arg::Simple(b) => b,
                _ => &[],
            }
        }
        let prefix = ns.map(|ns| ns.as_str().as_bytes());
        let full = |k: &[u8]| -> Vec<u8> {
            let p = prefix.unwrap_or_default();
            let mut v = Vec::with_capacity(p.len() + 1 + k.len());
            v.extend_from_slice(p);
            v.push(b':');
            v.extend_from_slice(k);
            v
        };
        let (mut nkeys, mut key_bytes, mut slot, mut crossed) = (0usize, 0usize, None, false);
        for k in keys.args_iter().map(simple) {
            nkeys += 1;
            key_bytes += k.len();
            let s = match prefix {
                None => key_slot(k),
                Some(_) => key_slot(&full(k)),
            };
            match slot {
                None => slot = Some(s),
                Some(prev) if prev != s => crossed = true,
                Some(_) => {}
            }
        }
        if crossed {
            return Err(Error::CrossSlot {
                unit: script.name().to_owned(),
                keys: keys
                    .args_iter()
                    .map(|k| match prefix {
                        None => String::from_utf8_lossy(simple(k)).into_owned(),
                        Some(_) => String::from_utf8_lossy(&full(simple(k))).into_owned(),
                    })
                    .collect(),
            });
        }
        let (mut nargs, mut arg_bytes) = (0usize, 0usize);
        for a in args.args_iter().map(simple) {
            nargs += 1;
            arg_bytes += a.len();
        }
        let prefix_len = prefix.map_or(0, |p| p.len() + 1);
        let mut cmd = Cmd::with_capacity(
            3 + nkeys + nargs,
            7 + 40 + 4 + key_bytes + nkeys * prefix_len + arg_bytes,
        );
        cmd.arg("EVALSHA").arg(script.sha()).arg(nkeys);
        for k in keys.args_iter().map(simple) {
            match prefix {
                None => cmd.write_arg(k),
                Some(p) => {
                    let mut w = cmd.writer_for_next_arg();
                    // writes into a Vec: cannot fail
                    let _ = w.write_all(p);
                    let _ = w.write_all(b":");
                    let _ = w.write_all(k);
                }
            }
        }
        for a in args.args_iter().map(simple) {
            cmd.write_arg(a);
        }
        self.push(
            cmd,
            slot,
            Some(script),
            KeyArgs {
                start: 3,
                count: nkeys,
            },
        );
        Ok(())
    }

    /// Adds a whole command whose argument after its name is its one key,
    /// of Cluster slot `slot` (`None` is fine when
    /// [`one_server`](Self::one_server) says the slot routes nothing).
    pub(crate) fn push_keyed(&mut self, cmd: Cmd, slot: Option<u16>) {
        self.push(cmd, slot, None, KeyArgs { start: 1, count: 1 });
    }

    /// Whether every command goes to one server (see
    /// [`SyncExecutor::is_one_server`]).
    pub(crate) fn one_server(&self) -> bool {
        self.one_server
    }

    fn push(
        &mut self,
        cmd: Cmd,
        slot: Option<u16>,
        script: Option<&'static Script>,
        keys: KeyArgs,
    ) -> &mut Cmd {
        self.commands.push(Command {
            cmd,
            script,
            slot,
            target: Target::Keys,
            keys,
        });
        let last = self.commands.len() - 1;
        &mut self.commands[last].cmd
    }

    fn push_to(&mut self, cmd: Cmd, target: Target) -> &mut Cmd {
        self.commands.push(Command {
            cmd,
            script: None,
            slot: None,
            target,
            keys: KeyArgs::default(),
        });
        let last = self.commands.len() - 1;
        &mut self.commands[last].cmd
    }
}

fn common_slot<K: AsRef<[u8]>>(unit: &str, keys: &[K]) -> Result<Option<u16>> {
    let mut slot = None;
    for k in keys {
        let s = key_slot(k.as_ref());
        match slot {
            None => slot = Some(s),
            Some(prev) if prev != s => {
                return Err(Error::CrossSlot {
                    unit: unit.to_owned(),
                    keys: keys
                        .iter()
                        .map(|k| String::from_utf8_lossy(k.as_ref()).into_owned())
                        .collect(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(slot)
}

/// The replies to the commands an operation wrote, in order.
///
/// An operation reads exactly as many replies as it wrote commands; replies
/// it leaves unread are skipped, so one operation's failure never shifts the
/// replies of the next one in a batch.
#[derive(Debug)]
pub struct Replies {
    iter: std::vec::IntoIter<Value>,
    budget: usize,
    /// What each command names, by position, for server errors.
    sites: Sites,
    total: usize,
}

impl Replies {
    /// Replies to commands whose sites are `sites` (in order).
    pub(crate) fn with_sites(values: Vec<Value>, sites: Sites) -> Self {
        let budget = values.len();
        Replies {
            iter: values.into_iter(),
            budget,
            sites,
            total: budget,
        }
    }

    /// How many replies were read so far (of the whole plan).
    pub(crate) fn position(&self) -> usize {
        self.total - self.iter.len()
    }

    /// The sites of `count` commands from `position`.
    pub(crate) fn sites(&self, position: usize, count: usize) -> Sites {
        self.sites.range(position, count)
    }

    /// The server error reply `e` to the last reply read, naming its
    /// command and keys.
    pub(crate) fn server_error(&self, e: redis::ServerError) -> Error {
        let at = self.total - self.iter.len();
        match at.checked_sub(1).and_then(|i| self.sites.get(i)) {
            Some(site) => site.error(e),
            None => Error::server("a command".to_owned(), Vec::new(), e),
        }
    }

    /// The next reply; a server error reply becomes [`Error::Server`],
    /// naming the command (or script) and its keys.
    pub fn next_value(&mut self) -> Result<Value> {
        match self.next_raw()? {
            Value::ServerError(e) => Err(self.server_error(e)),
            v => Ok(v),
        }
    }

    /// The next reply as it came, server errors included.
    pub fn next_raw(&mut self) -> Result<Value> {
        if self.budget == 0 {
            return Err(Error::UnexpectedReply {
                context: "an operation",
                found: "fewer replies than commands".to_owned(),
            });
        }
        self.budget -= 1;
        self.iter.next().ok_or_else(|| Error::UnexpectedReply {
            context: "an operation",
            found: "fewer replies than commands".to_owned(),
        })
    }

    /// The next reply of a command written with
    /// [`Plan::every_primary`]: one reply per node (one on a standalone
    /// server), in no particular order. A node's server error fails the
    /// whole read with that error.
    pub fn next_per_node(&mut self) -> Result<Vec<(Node, Value)>> {
        let v = self.next_value()?;
        let Value::Map(pairs) = v else {
            return Err(Error::unexpected("a command to every primary", &v));
        };
        let mut out = Vec::with_capacity(pairs.len());
        for (key, reply) in pairs {
            let node = Node::from_reply_key(&key)
                .ok_or_else(|| Error::unexpected("a command to every primary", &key))?;
            match reply {
                Value::ServerError(e) => return Err(self.server_error(e)),
                reply => out.push((node, reply)),
            }
        }
        Ok(out)
    }

    /// The next reply converted with redis-rs' [`FromRedisValue`].
    pub fn next<T: FromRedisValue>(&mut self, context: &'static str) -> Result<T> {
        let v = self.next_value()?;
        T::from_redis_value_ref(&v).map_err(|_| Error::unexpected(context, &v))
    }

    /// Number of replies left for the current operation.
    pub fn remaining(&self) -> usize {
        self.budget
    }

    /// Lets `f` read the next `n` replies, then skips whatever it left.
    pub(crate) fn scope<R>(&mut self, n: usize, f: impl FnOnce(&mut Replies) -> R) -> R {
        let outer = self.budget;
        let n = n.min(outer);
        self.budget = n;
        let r = f(self);
        for _ in 0..self.budget {
            self.iter.next();
        }
        self.budget = outer - n;
        r
    }
}

/// What an operation says after reading its replies.
#[derive(Debug)]
pub enum Step<T> {
    /// Finished, with the output.
    Done(T),
    /// Needs another round trip: `prepare` will be called again.
    Again,
}

impl<T> Step<T> {
    /// Maps the output of a finished step.
    pub fn map_done<U>(self, f: impl FnOnce(T) -> U) -> Step<U> {
        match self {
            Step::Done(t) => Step::Done(f(t)),
            Step::Again => Step::Again,
        }
    }
}

/// The most round trips in a row one operation may ask for without
/// reporting progress ([`Operation::progress`]) before the executor reports
/// a bug instead of looping.
const MAX_ROUNDS: usize = 16;

/// A Redis operation as a value: commands plus a decoder of the replies.
///
/// Implement it for your own operations to batch them with the crate's.
pub trait Operation {
    /// What the operation returns.
    type Output;

    /// Writes the commands of the next round trip.
    fn prepare(&mut self, plan: &mut Plan) -> Result<()>;

    /// Reads the replies to the commands written by the last `prepare`.
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>>;

    /// How much of its work the operation has done so far: a count that
    /// only grows (0 by default). Most operations take a fixed number of
    /// round trips and the executor caps them at 16; an operation whose
    /// rounds grow with its result (`find_by` reading a large index a page
    /// at a time) raises this after each round that moved it forward, and
    /// only rounds that did not raise it count toward the cap. The cap
    /// still stops an operation that asks for rounds without progress.
    /// Wrappers (`map`, `settled`, `batch`, `many`, `durable`, transactions)
    /// report their parts'; a wrapper of your own that runs another
    /// operation should return that operation's progress too.
    fn progress(&self) -> u64 {
        0
    }

    /// Runs the operation on a blocking connection: a `redis::Connection`,
    /// a `redis::cluster::ClusterConnection`, an r2d2 pooled connection of
    /// either (feature `r2d2`), or any [`SyncExecutor`] (see
    /// [`exec`](crate::exec) for wrappers and connections of your own).
    fn run<C: SyncExecutor + ?Sized>(self, con: &mut C) -> Result<Self::Output>
    where
        Self: Sized,
    {
        crate::driver::block_on(rounds(self, Blocking(con)))
    }

    /// Runs the operation on an async connection: a
    /// `redis::aio::MultiplexedConnection`, a `ConnectionManager`, a
    /// `redis::cluster_async::ClusterConnection`, a deadpool-redis or
    /// bb8-redis pooled connection (features `deadpool`, `bb8`), or any
    /// [`AsyncExecutor`] (see [`exec`](crate::exec)).
    fn run_async<C: AsyncExecutor + ?Sized>(
        self,
        con: &mut C,
    ) -> impl Future<Output = Result<Self::Output>> + Send
    where
        Self: Sized + Send,
    {
        rounds(self, Awaiting(con))
    }

    /// Transforms the output.
    fn map<F, T>(self, f: F) -> Map<Self, F>
    where
        Self: Sized,
        F: FnMut(Self::Output) -> T,
    {
        Map { op: self, f }
    }

    /// Turns a failure into an output, so that in a [`batch`] or [`many`] one
    /// failing operation does not fail the others. Both kinds of failure are
    /// caught: an error building the commands (an unencodable value, a
    /// `CrossSlot` refusal; the operation then sends nothing and the rest of
    /// the batch still runs) and an error in the replies.
    fn settled(self) -> Settled<Self>
    where
        Self: Sized,
    {
        Settled {
            op: self,
            failed: None,
        }
    }
}

/// How [`rounds`] sends a plan: the one place the two executors differ.
trait Sender {
    fn send(&mut self, plan: Plan) -> impl Future<Output = Result<Vec<Value>>> + Send;
    fn one_server(&self) -> bool;
}

/// A blocking executor: the reply is there when `send` returns.
struct Blocking<'c, C: ?Sized>(&'c mut C);

impl<C: SyncExecutor + ?Sized> Sender for Blocking<'_, C> {
    fn send(&mut self, plan: Plan) -> impl Future<Output = Result<Vec<Value>>> + Send {
        std::future::ready(self.0.execute(plan))
    }
    fn one_server(&self) -> bool {
        self.0.is_one_server()
    }
}

/// An async executor.
struct Awaiting<'c, C: ?Sized>(&'c mut C);

impl<C: AsyncExecutor + ?Sized> Sender for Awaiting<'_, C> {
    fn send(&mut self, plan: Plan) -> impl Future<Output = Result<Vec<Value>>> + Send {
        self.0.execute_async(plan)
    }
    fn one_server(&self) -> bool {
        self.0.is_one_server()
    }
}

/// The rounds of one operation, written once for both executors: prepare,
/// send (nothing when the plan is empty), complete, until it is done;
/// at most [`MAX_ROUNDS`].
#[cfg(any(feature = "tracing", feature = "metrics"))]
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice"
)]
fn rounds<O: Operation, S: Sender>(op: O, con: S) -> impl Future<Output = Result<O::Output>> {
    // An `async move` block, not an `async fn`: see `rounds_counted`.
    async move {
        // The one place every operation run passes (features `tracing`,
        // `metrics`; see `crate::observe`).
        let mut run = crate::observe::Run::start::<O>();
        #[cfg(feature = "tracing")]
        let result = {
            use tracing::Instrument;
            let span = run.span();
            rounds_counted(op, con, &mut run).instrument(span).await
        };
        #[cfg(not(feature = "tracing"))]
        let result = rounds_counted(op, con, &mut run).await;
        run.finish(&result);
        result
    }
}

/// The rounds of one operation (see above); without `tracing` and
/// `metrics` nothing is counted and the future is [`rounds_counted`]'s own
/// (not one more layer holding a second copy of the operation).
#[cfg(not(any(feature = "tracing", feature = "metrics")))]
fn rounds<O: Operation, S: Sender>(op: O, con: S) -> impl Future<Output = Result<O::Output>> {
    rounds_counted(op, con, NoCount)
}

/// Counts what an operation sends, for [`crate::observe`]; nothing when
/// both features are off.
trait Counter: Send {
    fn sent(&mut self, commands: usize);
}

/// The counter of a build without `tracing` and `metrics`.
#[cfg(not(any(feature = "tracing", feature = "metrics")))]
struct NoCount;

#[cfg(not(any(feature = "tracing", feature = "metrics")))]
impl Counter for NoCount {
    fn sent(&mut self, _: usize) {}
}

#[cfg(any(feature = "tracing", feature = "metrics"))]
impl Counter for &mut crate::observe::Run {
    fn sent(&mut self, commands: usize) {
        self.commands += commands;
        self.round_trips += 1;
    }
}

/// The rounds of one operation (see [`rounds`]), counted by `counter`.
///
/// A function returning an `async move` block, not an `async fn`: an
/// `async fn` moves its arguments into locals of its own, so its future
/// would hold the operation twice (as received and as moved).
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice"
)]
fn rounds_counted<O: Operation, S: Sender>(
    mut op: O,
    mut con: S,
    mut counter: impl Counter,
) -> impl Future<Output = Result<O::Output>> {
    async move {
        // Rounds in a row without progress: the cap is on these.
        let mut stalled = 0;
        let mut progress = op.progress();
        while stalled < MAX_ROUNDS {
            let mut plan = Plan::new();
            plan.one_server = con.one_server();
            op.prepare(&mut plan)?;
            let empty = plan.is_empty();
            let sites = plan.sites();
            let values = if empty {
                Vec::new()
            } else {
                let n = plan.len();
                counter.sent(n);
                match con.send(plan).await {
                    Ok(values) => values,
                    Err(e) => return Err(unanswered(e, sites, n)),
                }
            };
            match op.complete(&mut Replies::with_sites(values, sites))? {
                Step::Done(out) => return Ok(out),
                Step::Again if empty => break,
                Step::Again => {}
            }
            let now = op.progress();
            if now > progress {
                progress = now;
                stalled = 0;
            } else {
                stalled += 1;
            }
        }
        Err(too_many_rounds())
    }
}

/// A round trip's failure: [`Error::NoReply`] when the commands were sent
/// and no reply came (a timeout, a connection dropped or broken after
/// sending), naming the first command; other errors as they are.
fn unanswered(e: Error, sites: Sites, commands: usize) -> Error {
    match e {
        Error::Redis(e)
            if (e.is_timeout() || e.is_connection_dropped() || e.is_io_error())
                && !e.is_connection_refusal() =>
        {
            match sites.get(0) {
                Some(site) => site.no_reply(commands, e),
                None => Error::Redis(e),
            }
        }
        // The blocking Cluster client fails a whole pipeline on any error
        // reply: name the first command that failed.
        Error::Redis(e) => match e.clone().into_server_errors().as_deref() {
            Some([(i, first), ..]) => match sites.get(*i) {
                Some(site) => site.error(first.clone()),
                None => Error::Redis(e),
            },
            _ => Error::Redis(e),
        },
        other => other,
    }
}

fn too_many_rounds() -> Error {
    Error::UnexpectedReply {
        context: "an operation",
        found: "an operation asked for another round trip without sending a command".to_owned(),
    }
}

/// See [`Operation::map`].
#[derive(Debug)]
pub struct Map<O, F> {
    op: O,
    f: F,
}

impl<O: Operation, F: FnMut(O::Output) -> T, T> Operation for Map<O, F> {
    type Output = T;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.op.prepare(plan)
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<T>> {
        Ok(match self.op.complete(replies)? {
            Step::Done(out) => Step::Done((self.f)(out)),
            Step::Again => Step::Again,
        })
    }
    fn progress(&self) -> u64 {
        self.op.progress()
    }
}

/// See [`Operation::settled`].
#[derive(Debug)]
pub struct Settled<O> {
    op: O,
    /// An error of `prepare`, reported by the next `complete`.
    failed: Option<Error>,
}

impl<O: Operation> Operation for Settled<O> {
    type Output = Result<O::Output>;
    fn progress(&self) -> u64 {
        self.op.progress()
    }
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let before = plan.len();
        if let Err(e) = self.op.prepare(plan) {
            // Whatever the operation wrote before failing is not sent, so
            // the batch's other operations keep their replies.
            plan.commands.truncate(before);
            self.failed = Some(e);
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        if let Some(e) = self.failed.take() {
            return Ok(Step::Done(Err(e)));
        }
        Ok(match self.op.complete(replies) {
            Ok(Step::Done(out)) => Step::Done(Ok(out)),
            Ok(Step::Again) => Step::Again,
            Err(e) => Step::Done(Err(e)),
        })
    }
}

// ---------------------------------------------------------------------------
// Batches

/// One operation inside a batch, with its state.
pub struct Child<O: Operation> {
    op: O,
    out: Option<O::Output>,
    /// Commands written in the current round.
    n: usize,
    failed: bool,
}

impl<O: Operation + std::fmt::Debug> std::fmt::Debug for Child<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("op", &self.op)
            .field("done", &self.out.is_some())
            .finish()
    }
}

impl<O: Operation + std::fmt::Debug> std::fmt::Debug for Many<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Many")
            .field("children", &self.children)
            .finish()
    }
}

impl<O: Operation> Child<O> {
    fn new(op: O) -> Self {
        Child {
            op,
            out: None,
            n: 0,
            failed: false,
        }
    }

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.n = 0;
        if self.out.is_some() {
            return Ok(());
        }
        let before = plan.len();
        self.op.prepare(plan)?;
        self.n = plan.len() - before;
        Ok(())
    }

    /// Returns `Ok(true)` when finished.
    fn complete(&mut self, replies: &mut Replies) -> Result<bool> {
        if self.out.is_some() {
            return Ok(true);
        }
        if self.failed {
            return Ok(false);
        }
        match replies.scope(self.n, |r| self.op.complete(r)) {
            Ok(Step::Done(out)) => {
                self.out = Some(out);
                Ok(true)
            }
            Ok(Step::Again) => Ok(false),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    fn take(&mut self) -> Result<O::Output> {
        self.out.take().ok_or_else(too_many_rounds)
    }
}

/// Several operations in one pipeline; see [`batch`].
#[derive(Debug)]
pub struct Batch<T> {
    children: T,
}

/// Runs a tuple of operations (of any models) in one pipeline and returns
/// the tuple of their outputs. Operations that need a second round trip share
/// a second pipeline.
///
/// The batch fails with the first failing operation's error; operations are
/// not a transaction, so the others may have been applied. Wrap an operation
/// in [`Operation::settled`] to get its `Result` instead.
pub fn batch<T: IntoBatch>(ops: T) -> Batch<T::Children> {
    Batch {
        children: ops.into_children(),
    }
}

/// Tuples of operations that [`batch`] accepts.
pub trait IntoBatch {
    /// The tuple of [`Child`] states.
    type Children;
    /// Wraps each operation.
    fn into_children(self) -> Self::Children;
}

macro_rules! tuple_batch {
    ($($name:ident . $idx:tt),+) => {
        impl<$($name: Operation),+> IntoBatch for ($($name,)+) {
            type Children = ($(Child<$name>,)+);
            fn into_children(self) -> Self::Children {
                ($(Child::new(self.$idx),)+)
            }
        }

        impl<$($name: Operation),+> Operation for Batch<($(Child<$name>,)+)> {
            type Output = ($($name::Output,)+);

            fn progress(&self) -> u64 {
                0 $( + self.children.$idx.op.progress() )+
            }

            fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
                $( self.children.$idx.prepare(plan)?; )+
                Ok(())
            }

            fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
                let mut done = true;
                $( done &= self.children.$idx.complete(replies)?; )+
                if !done {
                    return Ok(Step::Again);
                }
                Ok(Step::Done(($(self.children.$idx.take()?,)+)))
            }
        }
    };
}
tuple_batch!(A.0);
tuple_batch!(A.0, B.1);
tuple_batch!(A.0, B.1, C.2);
tuple_batch!(A.0, B.1, C.2, D.3);
tuple_batch!(A.0, B.1, C.2, D.3, E.4);
tuple_batch!(A.0, B.1, C.2, D.3, E.4, F.5);
tuple_batch!(A.0, B.1, C.2, D.3, E.4, F.5, G.6);
tuple_batch!(A.0, B.1, C.2, D.3, E.4, F.5, G.6, H.7);
tuple_batch!(A.0, B.1, C.2, D.3, E.4, F.5, G.6, H.7, I.8);
tuple_batch!(A.0, B.1, C.2, D.3, E.4, F.5, G.6, H.7, I.8, J.9);
tuple_batch!(A.0, B.1, C.2, D.3, E.4, F.5, G.6, H.7, I.8, J.9, K.10);
tuple_batch!(A.0, B.1, C.2, D.3, E.4, F.5, G.6, H.7, I.8, J.9, K.10, L.11);

/// Any number of operations of one type in one pipeline; see [`many`].
pub struct Many<O: Operation> {
    children: Vec<Child<O>>,
}

/// Runs operations of one type in one pipeline (one per slot group on a
/// Cluster) and returns their outputs in order. Fails like [`batch`].
pub fn many<O: Operation>(ops: impl IntoIterator<Item = O>) -> Many<O> {
    Many {
        children: ops.into_iter().map(Child::new).collect(),
    }
}

impl<O: Operation + crate::keys::Namespaced> Many<O> {
    /// Runs every operation in namespace `ns`.
    pub fn namespace(mut self, ns: &crate::keys::Namespace) -> Self {
        self.children = self
            .children
            .into_iter()
            .map(|c| Child {
                op: c.op.namespace(ns),
                ..c
            })
            .collect();
        self
    }
}

impl<O: Operation> Operation for Many<O> {
    type Output = Vec<O::Output>;

    fn progress(&self) -> u64 {
        self.children.iter().map(|c| c.op.progress()).sum()
    }

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        // Most operations write one command: room for them at once instead
        // of growing (and copying) the plan step by step.
        plan.commands.reserve(self.children.len());
        for child in &mut self.children {
            child.prepare(plan)?;
        }
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let mut done = true;
        for child in &mut self.children {
            done &= child.complete(replies)?;
        }
        if !done {
            return Ok(Step::Again);
        }
        self.children
            .iter_mut()
            .map(Child::take)
            .collect::<Result<_>>()
            .map(Step::Done)
    }
}

/// A single command whose reply converts with [`FromRedisValue`]: the
/// smallest operation, for plain commands next to the crate's own in a batch.
///
/// ```no_run
/// # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
/// use redis_state::prelude::*;
/// let n: i64 = redis_state::op::command::<i64>("INCR", "visits").run(con)?;
/// # Ok(()) }
/// ```
pub fn command<T: FromRedisValue>(name: &str, key: impl AsRef<[u8]>) -> CommandOp<T> {
    let key = key.as_ref();
    let mut cmd = Cmd::new();
    cmd.arg(name).arg(key);
    CommandOp {
        cmd: Some(cmd),
        slot: Some(key_slot(key)),
        target: Target::Keys,
        _out: std::marker::PhantomData,
    }
}

/// See [`command`].
#[derive(Debug)]
pub struct CommandOp<T> {
    cmd: Option<Cmd>,
    slot: Option<u16>,
    target: Target,
    _out: std::marker::PhantomData<fn() -> T>,
}

impl<T> CommandOp<T> {
    /// Appends an argument.
    pub fn arg(mut self, arg: impl redis::ToRedisArgs) -> Self {
        if let Some(cmd) = &mut self.cmd {
            cmd.arg(arg);
        }
        self
    }

    /// Writes the command into `plan` (once).
    fn write(&mut self, plan: &mut Plan) {
        if let Some(cmd) = self.cmd.take() {
            plan.commands.push(Command {
                cmd,
                script: None,
                slot: self.slot,
                target: self.target.clone(),
                keys: KeyArgs {
                    start: 1,
                    count: usize::from(self.slot.is_some()),
                },
            });
        }
    }
}

impl<T: FromRedisValue> Operation for CommandOp<T> {
    type Output = T;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.write(plan);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<T>> {
        replies.next::<T>("a command").map(Step::Done)
    }
}

/// A command for every primary: sent once on a standalone server and once
/// to each primary of a Cluster; the output is each node's reply,
/// converted with [`FromRedisValue`].
///
/// ```no_run
/// # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
/// use redis_state::prelude::*;
/// for (node, keys) in redis_state::op::every_primary::<u64>("DBSIZE").run(con)? {
///     println!("{node}: {keys} keys");
/// }
/// # Ok(()) }
/// ```
pub fn every_primary<T: FromRedisValue>(name: &str) -> EveryPrimary<T> {
    let mut cmd = Cmd::new();
    cmd.arg(name);
    EveryPrimary(CommandOp {
        cmd: Some(cmd),
        slot: None,
        target: Target::EveryPrimary,
        _out: std::marker::PhantomData,
    })
}

/// See [`every_primary`].
#[derive(Debug)]
pub struct EveryPrimary<T>(CommandOp<T>);

impl<T> EveryPrimary<T> {
    /// Appends an argument.
    pub fn arg(self, arg: impl redis::ToRedisArgs) -> Self {
        EveryPrimary(self.0.arg(arg))
    }
}

impl<T: FromRedisValue> Operation for EveryPrimary<T> {
    type Output = Vec<(Node, T)>;
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.0.write(plan);
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        replies
            .next_per_node()?
            .into_iter()
            .map(|(node, v)| {
                T::from_redis_value_ref(&v)
                    .map(|t| (node, t))
                    .map_err(|_| Error::unexpected("a command to every primary", &v))
            })
            .collect::<Result<_>>()
            .map(Step::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(site: Option<Site>) -> (String, Vec<String>) {
        let site = site.expect("a site");
        (site.operation, site.keys)
    }

    #[test]
    fn sites_name_each_command_and_its_keys() {
        let mut plan = Plan::new();
        plan.cmd("SET", "k1").arg("v");
        plan.cmd_keys("MGET", &["{t}a", "{t}b"]).expect("one slot");
        plan.push_to(Cmd::new().arg("PING").clone(), Target::Keys);
        let sites = plan.sites();
        assert_eq!(
            names(sites.get(0)),
            ("SET".to_owned(), vec!["k1".to_owned()])
        );
        assert_eq!(
            names(sites.get(1)),
            (
                "MGET".to_owned(),
                vec!["{t}a".to_owned(), "{t}b".to_owned()]
            )
        );
        assert_eq!(names(sites.get(2)), ("PING".to_owned(), vec![]));
        assert!(sites.get(3).is_none());
        let tail = sites.range(1, 5);
        assert_eq!(names(tail.get(0)).0, "MGET");
        assert_eq!(names(tail.get(1)).0, "PING");
        assert!(tail.get(2).is_none());
        assert!(Sites::of(&[]).get(0).is_none());
    }

    #[test]
    fn sites_past_the_inline_text_move_to_the_heap() {
        let long = "k".repeat(INLINE);
        let mut plan = Plan::new();
        plan.cmd("GET", "short");
        plan.cmd("GET", &long);
        plan.cmd("PUBLISH", "{c}name");
        let sites = plan.sites();
        assert!(matches!(sites.text, Text::Heap(_)));
        assert_eq!(names(sites.get(1)), ("GET".to_owned(), vec![long.clone()]));
        // Built from empty: inline at first, moved to the heap by the long
        // key, every entry still read back.
        let all = sites.range(0, 3);
        assert!(matches!(all.text, Text::Heap(_)));
        assert_eq!(
            names(all.get(0)),
            ("GET".to_owned(), vec!["short".to_owned()])
        );
        assert_eq!(names(all.get(1)), ("GET".to_owned(), vec![long]));
        assert_eq!(
            names(all.get(2)),
            ("PUBLISH".to_owned(), vec!["{c}name".to_owned()])
        );
        // A short plan stays inline.
        let mut plan = Plan::new();
        plan.cmd("PUBLISH", "bench:pub:ticks");
        let sites = plan.sites();
        assert!(matches!(sites.text, Text::Inline { .. }));
        assert_eq!(
            names(sites.get(0)),
            ("PUBLISH".to_owned(), vec!["bench:pub:ticks".to_owned()])
        );
    }
}
