//! Server introspection against real servers: `INFO`, `SLOWLOG GET` and
//! `LATENCY LATEST` from every primary, on both executors and topologies.

#[macro_use]
mod common;

use std::collections::BTreeSet;

use common::Runner;
use redis_state::monitor;
use redis_state::op::{Node, command, every_primary};
use redis_state::testing::shared_cluster;
use redis_state::{Namespace, many};

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

fn info_is_typed_per_primary(runner: &mut Runner, ns: &Namespace) {
    let keys: Vec<String> = (0..20).map(|i| format!("{ns}:k{i}")).collect();
    runner
        .run(many(
            keys.iter()
                .map(|k| command::<()>("SET", k).arg(1).arg("EX").arg(600)),
        ))
        .unwrap();
    let infos = runner.run(monitor::info()).unwrap();
    let nodes: BTreeSet<Node> = infos.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(nodes, expected_nodes(runner));
    assert_eq!(infos.len(), nodes.len());
    let mode = if runner.is_cluster() {
        "cluster"
    } else {
        "standalone"
    };
    let mut total_keys = 0;
    let mut total_expiring = 0;
    for (node, info) in &infos {
        assert!(info.server.redis_version.is_some(), "{node}");
        assert_eq!(info.server.redis_mode.as_deref(), Some(mode), "{node}");
        if let Some((_, port)) = node.address() {
            assert_eq!(info.server.tcp_port, Some(port));
        }
        assert!(info.memory.used_memory.unwrap() > 0, "{node}");
        assert!(info.clients.connected_clients.unwrap() >= 1, "{node}");
        assert!(info.stats.total_commands_processed.is_some(), "{node}");
        assert_eq!(info.replication.role.as_deref(), Some("master"), "{node}");
        assert!(info.persistence.loading.is_some(), "{node}");
        assert!(
            info.commandstats.iter().any(|c| c.command == "info"),
            "{node}: {:?}",
            info.commandstats
        );
        total_keys += info.total_keys();
        total_expiring += info.keyspace.iter().filter_map(|d| d.expires).sum::<u64>();
    }
    // Other tests share the servers: at least ours.
    assert!(total_keys >= 20, "{total_keys}");
    assert!(total_expiring >= 20, "{total_expiring}");
}

fn info_sections_can_be_chosen(runner: &mut Runner, _ns: &Namespace) {
    let infos = runner
        .run(monitor::info().sections(&["memory", "keyspace"]))
        .unwrap();
    for (node, info) in infos {
        assert!(info.memory.used_memory.is_some(), "{node}");
        assert_eq!(info.server.redis_version, None, "{node}: not asked for");
        assert!(!info.sections.contains_key("server"), "{node}");
    }
}

fn slowlog_shows_each_nodes_commands(runner: &mut Runner, ns: &Namespace) {
    // Every command is slow from here on (this binary's own servers).
    runner
        .run(
            every_primary::<()>("CONFIG")
                .arg("SET")
                .arg("slowlog-log-slower-than")
                .arg(0),
        )
        .unwrap();
    runner
        .run(
            every_primary::<()>("CONFIG")
                .arg("SET")
                .arg("slowlog-max-len")
                .arg(1024),
        )
        .unwrap();
    let marker = format!("{ns}:marker");
    runner
        .run(every_primary::<String>("ECHO").arg(&marker))
        .unwrap();
    let logs = runner.run(monitor::slowlog(1024)).unwrap();
    assert_eq!(
        logs.iter().map(|(n, _)| n.clone()).collect::<BTreeSet<_>>(),
        expected_nodes(runner)
    );
    for (node, entries) in &logs {
        let echo = entries
            .iter()
            .find(|e| {
                e.args
                    .first()
                    .is_some_and(|a| a.eq_ignore_ascii_case("echo"))
                    && e.args.get(1) == Some(&marker)
            })
            .unwrap_or_else(|| panic!("{node}: no ECHO {marker} in {entries:?}"));
        assert!(echo.duration_us >= 0);
        assert!(echo.at_unix_secs > 0);
        assert!(echo.client_addr.is_some(), "{echo:?}");
        let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    }
}

fn latency_latest_reports_a_slow_script(runner: &mut Runner, _ns: &Namespace) {
    runner
        .run(
            every_primary::<()>("CONFIG")
                .arg("SET")
                .arg("latency-monitor-threshold")
                .arg(1),
        )
        .unwrap();
    // A script that counts to three million runs well over a millisecond
    // on any machine.
    runner
        .run(
            every_primary::<i64>("EVAL")
                .arg("local i = 0 while i < 3000000 do i = i + 1 end return i")
                .arg(0),
        )
        .unwrap();
    let events = runner.run(monitor::latency_latest()).unwrap();
    assert_eq!(events.len(), expected_nodes(runner).len());
    for (node, events) in events {
        let command = events
            .iter()
            .find(|e| e.event == "command")
            .unwrap_or_else(|| panic!("{node}: {events:?}"));
        assert!(
            command.max_ms >= command.latest_ms && command.latest_ms >= 1,
            "{command:?}"
        );
    }
}

matrix!(
    info_is_typed_per_primary,
    info_sections_can_be_chosen,
    slowlog_shows_each_nodes_commands,
    latency_latest_reports_a_slow_script,
);
