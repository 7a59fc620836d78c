//! Plans that address every primary: a command the executors send once on
//! a standalone server and once per primary on both Cluster clients, with
//! one reply per node, and commands for one node named by such a reply.

#[macro_use]
mod common;

use std::collections::BTreeSet;

use common::Runner;
use redis_state::op::{Node, Plan, Replies, Step, command, every_primary};
use redis_state::testing::shared_cluster;
use redis_state::{Error, Namespace, Operation, Result, batch};

/// The nodes a command for every primary must reach.
fn expected_nodes(runner: &Runner) -> BTreeSet<Node> {
    if runner.is_cluster() {
        shared_cluster()
            .primaries()
            .iter()
            .map(|p| Node::at(p.host(), p.port()))
            .collect()
    } else {
        BTreeSet::from([Node::server()])
    }
}

fn info_comes_from_every_primary(runner: &mut Runner, _ns: &Namespace) {
    let replies = runner
        .run(every_primary::<String>("INFO").arg("server"))
        .unwrap();
    let nodes: BTreeSet<Node> = replies.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(nodes, expected_nodes(runner));
    assert_eq!(replies.len(), nodes.len(), "one reply per node");
    for (node, info) in &replies {
        assert!(info.contains("redis_version:"), "{node}: {info}");
        if let Some((_, port)) = node.address() {
            assert!(info.contains(&format!("tcp_port:{port}")), "{node}: {info}");
        }
    }
}

fn script_load_reaches_every_primary(runner: &mut Runner, ns: &Namespace) {
    // A body no other test loads: the namespace is unique.
    let body = format!("return '{ns}'");
    let loaded = runner
        .run(every_primary::<String>("SCRIPT").arg("LOAD").arg(&body))
        .unwrap();
    let shas: BTreeSet<&String> = loaded.iter().map(|(_, sha)| sha).collect();
    assert_eq!(shas.len(), 1, "every node hashes one body alike");
    let sha = loaded[0].1.clone();
    let exists = runner
        .run(every_primary::<Vec<bool>>("SCRIPT").arg("EXISTS").arg(&sha))
        .unwrap();
    assert_eq!(exists.len(), expected_nodes(runner).len());
    assert!(exists.iter().all(|(_, e)| e == &vec![true]), "{exists:?}");
    // A keyless EVALSHA, wherever it lands, finds the script.
    let out: String = runner
        .run(command::<String>("EVALSHA", &sha).arg(0))
        .unwrap();
    assert_eq!(out, ns.as_str());
}

/// `SCAN` to every primary, then on each node with its own cursor until
/// every node is done: the keys of many slots, each seen.
struct ScanAll {
    pattern: String,
    cursors: Option<Vec<(Node, u64)>>,
    seen: BTreeSet<String>,
    rounds: usize,
}

impl Operation for ScanAll {
    type Output = (BTreeSet<String>, usize);
    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.rounds += 1;
        match &self.cursors {
            None => {
                plan.every_primary("SCAN")
                    .arg(0)
                    .arg("MATCH")
                    .arg(&self.pattern)
                    .arg("COUNT")
                    .arg(250);
            }
            Some(cursors) => {
                for (node, cursor) in cursors {
                    plan.on_node(node, "SCAN")
                        .arg(*cursor)
                        .arg("MATCH")
                        .arg(&self.pattern)
                        .arg("COUNT")
                        .arg(250);
                }
            }
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        let per_node: Vec<(Node, (u64, Vec<String>))> = match &self.cursors {
            None => replies
                .next_per_node()?
                .into_iter()
                .map(|(n, v)| (n, redis::from_redis_value(v).unwrap()))
                .collect(),
            Some(cursors) => cursors
                .iter()
                .map(|(n, _)| Ok((n.clone(), replies.next("SCAN")?)))
                .collect::<Result<_>>()?,
        };
        let mut next = Vec::new();
        for (node, (cursor, keys)) in per_node {
            self.seen.extend(keys);
            if cursor != 0 {
                next.push((node, cursor));
            }
        }
        if next.is_empty() {
            return Ok(Step::Done((std::mem::take(&mut self.seen), self.rounds)));
        }
        self.cursors = Some(next);
        Ok(Step::Again)
    }
}

fn scans_go_on_on_each_node(runner: &mut Runner, ns: &Namespace) {
    let keys: BTreeSet<String> = (0..400).map(|i| format!("{ns}:{{k{i}}}")).collect();
    runner
        .run(redis_state::many(
            keys.iter().map(|k| command::<()>("SET", k).arg(1)),
        ))
        .unwrap();
    let (seen, rounds) = runner
        .run(ScanAll {
            pattern: format!("{ns}:*"),
            cursors: None,
            seen: BTreeSet::new(),
            rounds: 0,
        })
        .unwrap();
    assert_eq!(seen, keys);
    // COUNT 250 over the 400 keys takes more than one round on a standalone
    // server; an operation may take 16 rounds, so the test holds while the
    // shared server has fewer than 4,000 keys.
    assert!(rounds > 1 || runner.is_cluster(), "{rounds} rounds");
}

/// Commands for every primary, for one node and by key share one plan;
/// each gets its own reply, in plan order.
fn one_plan_mixes_nodes_and_keys(runner: &mut Runner, ns: &Namespace) {
    let key = format!("{ns}:{{mixed}}");
    let ((), pings, got) = runner
        .run(batch((
            command::<()>("SET", &key).arg("v"),
            every_primary::<String>("PING").arg("hi"),
            command::<String>("GET", &key),
        )))
        .unwrap();
    assert_eq!(got, "v");
    assert_eq!(
        pings
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<BTreeSet<_>>(),
        expected_nodes(runner)
    );
    assert!(pings.iter().all(|(_, p)| p == "hi"));
}

fn a_node_error_is_the_servers_error(runner: &mut Runner, _ns: &Namespace) {
    let err = runner
        .run(every_primary::<redis::Value>("NO-SUCH-COMMAND"))
        .unwrap_err();
    assert_eq!(err.kind(), redis_state::ErrorKind::Server, "{err:?}");
    assert!(err.to_string().contains("unknown command"), "{err}");
}

matrix!(
    info_comes_from_every_primary,
    script_load_reaches_every_primary,
    scans_go_on_on_each_node,
    one_plan_mixes_nodes_and_keys,
    a_node_error_is_the_servers_error,
);

#[test]
fn a_standalone_node_on_a_cluster_connection_is_refused() {
    struct ToServer;
    impl Operation for ToServer {
        type Output = ();
        fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
            plan.on_node(&Node::server(), "PING");
            Ok(())
        }
        fn complete(&mut self, replies: &mut Replies) -> Result<Step<()>> {
            replies.next_value().map(|_| Step::Done(()))
        }
    }
    let mut con = shared_cluster().connection().unwrap();
    let err = ToServer.run(&mut con).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
}
