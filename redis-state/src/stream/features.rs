//! Stream commands and options newer than Redis 7.0, detected on the
//! server: see [`StreamFeatures`].

use redis::Value;

use crate::error::Result;
use crate::op::{Operation, Plan, Replies, Step};

/// Which stream commands and options newer than Redis 7.0 (the oldest
/// server the library supports) a server has, as it describes its own
/// commands: `COMMAND DOCS XADD XREADGROUP XTRIM XACKDEL` and `COMMAND
/// INFO XNACK`, one round trip. Detect once per server (e.g. at start-up)
/// with [`StreamFeatures::detect`].
///
/// Where they are used (each with a Redis 7.0 fallback of the same
/// contract):
///
/// * `xreadgroup_claim`: a [`Consumer`](super::Consumer) claims idle
///   entries with the read itself (`XREADGROUP … CLAIM`) instead of a
///   separate `XAUTOCLAIM` round.
/// * `xackdel`: a consumer that deletes what it settles
///   ([`ConsumerOptions::delete_acked`](super::ConsumerOptions::delete_acked))
///   acknowledges and deletes in one command (`XACKDEL`).
/// * `xadd_idmp`: [`Add::idempotent`](super::Add::idempotent) on a stream
///   declared [`with_features`](super::Stream::with_features) uses
///   `XADD … IDMP`.
/// * `trim_policies` and `xnack` are detected and not used (see
///   `docs/design.md`, "Newer stream commands").
///
/// A consumer detects them itself when it starts
/// ([`ConsumerOptions::features`]: `None`).
///
/// [`ConsumerOptions::features`]: super::ConsumerOptions::features
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamFeatures {
    /// `XADD … IDMP producer iid` / `IDMPAUTO producer`: idempotent adds
    /// (Redis 8.6).
    pub xadd_idmp: bool,
    /// `XREADGROUP … CLAIM min-idle`: idle pending entries claimed by the
    /// read itself (Redis 8.4).
    pub xreadgroup_claim: bool,
    /// `XACKDEL`: acknowledge and delete in one command (Redis 8.2).
    pub xackdel: bool,
    /// The `KEEPREF` / `DELREF` / `ACKED` options of `XTRIM` and `XADD`
    /// trimming (Redis 8.2).
    pub trim_policies: bool,
    /// `XNACK`: a pending entry handed back to the group at once (no
    /// released server has it yet).
    pub xnack: bool,
}

impl StreamFeatures {
    /// Redis 7.0's streams: none of the newer commands.
    pub const BASELINE: StreamFeatures = StreamFeatures {
        xadd_idmp: false,
        xreadgroup_claim: false,
        xackdel: false,
        trim_policies: false,
        xnack: false,
    };

    /// Asks the server. A server that refuses `COMMAND DOCS` or `COMMAND
    /// INFO` (older than 7.0, or an ACL user without `@connection`
    /// commands) has [`BASELINE`](Self::BASELINE): the fallback is always
    /// the Redis 7.0 path. On a Cluster the commands go to any node.
    pub fn detect() -> DetectStreamFeatures {
        DetectStreamFeatures
    }

    /// True when the server has none of the newer commands.
    pub fn is_baseline(&self) -> bool {
        *self == Self::BASELINE
    }
}

/// See [`StreamFeatures::detect`].
#[derive(Debug, Clone, Copy)]
#[must_use = "an operation does nothing until it is run"]
pub struct DetectStreamFeatures;

impl Operation for DetectStreamFeatures {
    type Output = StreamFeatures;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        plan.keyless("COMMAND")
            .arg("DOCS")
            .arg("XADD")
            .arg("XREADGROUP")
            .arg("XTRIM")
            .arg("XACKDEL");
        plan.keyless("COMMAND").arg("INFO").arg("XNACK");
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<StreamFeatures>> {
        let docs = replies.next_raw()?;
        let info = replies.next_raw()?;
        Ok(Step::Done(features(&docs, &info)))
    }
}

/// Reads the replies of `COMMAND DOCS XADD XREADGROUP XTRIM XACKDEL` and
/// `COMMAND INFO XNACK` (RESP2 or RESP3; an error reply counts as
/// "absent"; a command the server does not know is absent from the docs).
fn features(docs: &Value, info: &Value) -> StreamFeatures {
    let doc = |command: &str| command_doc(docs, command);
    StreamFeatures {
        xadd_idmp: doc("xadd").is_some_and(|d| has_token(d, "IDMP") || has_token(d, "IDMPAUTO")),
        xreadgroup_claim: doc("xreadgroup").is_some_and(|d| has_token(d, "CLAIM")),
        xackdel: doc("xackdel").is_some(),
        trim_policies: doc("xtrim").is_some_and(|d| {
            ["KEEPREF", "DELREF", "ACKED"]
                .iter()
                .all(|t| has_token(d, t))
        }),
        xnack: match info {
            Value::Array(items) => items.iter().any(|i| !matches!(i, Value::Nil)),
            _ => false,
        },
    }
}

fn text(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// Key-value pairs of a RESP3 map or a RESP2 flat array.
fn pairs(v: &Value) -> Vec<(&Value, &Value)> {
    match v {
        Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        Value::Array(a) => a.chunks_exact(2).map(|p| (&p[0], &p[1])).collect(),
        _ => Vec::new(),
    }
}

/// The documentation of `command` in a `COMMAND DOCS` reply.
fn command_doc<'a>(docs: &'a Value, command: &str) -> Option<&'a Value> {
    pairs(docs)
        .into_iter()
        .find(|(k, _)| text(k).is_some_and(|k| k.eq_ignore_ascii_case(command.as_bytes())))
        .map(|(_, v)| v)
}

/// Whether an argument of `doc` (at any depth) has token `token`.
fn has_token(doc: &Value, token: &str) -> bool {
    let mut stack = vec![doc];
    while let Some(v) = stack.pop() {
        for (k, val) in pairs(v) {
            match text(k) {
                Some(b"token")
                    if text(val).is_some_and(|t| t.eq_ignore_ascii_case(token.as_bytes())) =>
                {
                    return true;
                }
                Some(b"arguments") => {
                    if let Value::Array(args) = val {
                        stack.extend(args.iter());
                    }
                }
                _ => {}
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::BulkString(x.as_bytes().to_vec())
    }

    /// A RESP2 argument description: name and token.
    fn arg(name: &str, token: Option<&str>, nested: Vec<Value>) -> Value {
        let mut a = vec![s("name"), s(name), s("type"), s("block")];
        if let Some(t) = token {
            a.extend([s("token"), s(t)]);
        }
        if !nested.is_empty() {
            a.extend([s("arguments"), Value::Array(nested)]);
        }
        Value::Array(a)
    }

    fn doc(args: Vec<Value>) -> Value {
        Value::Array(vec![
            s("summary"),
            s("Appends a new message to a stream (IDMP in the text does not count)."),
            s("arguments"),
            Value::Array(args),
        ])
    }

    #[test]
    fn tokens_at_any_depth_are_found() {
        let xadd = doc(vec![
            arg("key", None, vec![]),
            arg(
                "idmp-block",
                None,
                vec![
                    arg("idmpauto", Some("IDMPAUTO"), vec![]),
                    arg("idmp", Some("IDMP"), vec![]),
                ],
            ),
        ]);
        let xreadgroup = doc(vec![arg("min-idle-time", Some("CLAIM"), vec![])]);
        let xtrim = doc(vec![arg(
            "condition",
            None,
            vec![
                arg("keepref", Some("KEEPREF"), vec![]),
                arg("delref", Some("DELREF"), vec![]),
                arg("acked", Some("ACKED"), vec![]),
            ],
        )]);
        let xackdel = doc(vec![arg("key", None, vec![])]);
        let docs = Value::Array(vec![
            s("xadd"),
            xadd,
            s("xreadgroup"),
            xreadgroup,
            s("xtrim"),
            xtrim,
            s("xackdel"),
            xackdel,
        ]);
        let info = Value::Array(vec![Value::Array(vec![s("xnack"), Value::Int(-5)])]);
        assert_eq!(
            features(&docs, &info),
            StreamFeatures {
                xadd_idmp: true,
                xreadgroup_claim: true,
                xackdel: true,
                trim_policies: true,
                xnack: true,
            }
        );
    }

    #[test]
    fn a_redis_7_0_shape_is_the_baseline() {
        // Tokens of the 7.0 forms only; the summary mentions a newer word.
        let xadd = doc(vec![
            arg("key", None, vec![]),
            arg("nomkstream", Some("NOMKSTREAM"), vec![]),
        ]);
        let xreadgroup = doc(vec![arg("count", Some("COUNT"), vec![])]);
        let xtrim = doc(vec![arg("limit", Some("LIMIT"), vec![])]);
        let docs = Value::Map(vec![
            (s("xadd"), xadd),
            (s("xreadgroup"), xreadgroup),
            (s("xtrim"), xtrim),
        ]);
        let info = Value::Array(vec![Value::Nil]);
        assert!(features(&docs, &info).is_baseline());
        // Replies of another shape count as absent.
        assert!(features(&Value::Nil, &Value::Okay).is_baseline());
    }
}
