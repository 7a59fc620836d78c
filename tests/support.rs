//! Tests of the test support itself (`redis_state::testing`): real
//! `redis-server` processes are started, stopped, restarted, clustered, and
//! never left behind.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail by panicking; TestSupportError's Debug is its full message"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use redis::{AsyncCommands, Commands};
use redis_state::testing::{
    RedisCluster, RedisServer, TestSupportError, shared_cluster, shared_server, unique_prefix,
};

/// Whether a process with this pid exists and is not a zombie.
fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // "<pid> (<comm>) <state> ..."; comm may hold spaces or parentheses.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        !matches!(state, Some('Z' | 'X') | None)
    } else {
        Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

fn wait_until_dead(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while pid_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn ping(server: &RedisServer) -> String {
    let mut con = server.connection().unwrap();
    redis::cmd("PING").query(&mut con).unwrap()
}

#[test]
fn server_starts_and_answers() {
    let server = RedisServer::start().unwrap();
    assert_eq!(server.host(), "127.0.0.1");
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    assert_ne!(server.port(), 6379);
    assert!(server.is_running());
    assert!(server.pid().is_some_and(pid_alive));
    assert!(server.dir().is_dir());
    assert_eq!(ping(&server), "PONG");

    let mut con = server.connection().unwrap();
    let () = con.set("k", "v").unwrap();
    let value: String = con.get("k").unwrap();
    assert_eq!(value, "v");

    // The promised configuration is in force.
    let save: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query(&mut con)
        .unwrap();
    assert_eq!(save, ["save", ""]);
    let dir: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        Path::new(&dir[1]).canonicalize().unwrap(),
        server.dir().canonicalize().unwrap()
    );
    assert!(server.log().contains("Ready to accept connections"));
}

#[tokio::test]
async fn async_connection_works() {
    let server = RedisServer::start().unwrap();
    let mut con = server.async_connection().await.unwrap();
    let () = con.set("k", 42).await.unwrap();
    let value: i64 = con.get("k").await.unwrap();
    assert_eq!(value, 42);
}

#[test]
fn builder_passes_configuration() {
    let server = RedisServer::builder()
        .config("maxmemory", "10mb")
        .arg("--databases")
        .arg("4")
        .start()
        .unwrap();
    let maxmemory: Vec<String> = server
        .query(redis::cmd("CONFIG").arg("GET").arg("maxmemory"))
        .unwrap();
    assert_eq!(maxmemory[1], (10 * 1024 * 1024).to_string());
    let databases: Vec<String> = server
        .query(redis::cmd("CONFIG").arg("GET").arg("databases"))
        .unwrap();
    assert_eq!(databases[1], "4");
}

#[test]
fn stop_ends_the_process() {
    let mut server = RedisServer::start().unwrap();
    let pid = server.pid().unwrap();
    assert!(pid_alive(pid));
    server.stop();
    assert!(!pid_alive(pid), "redis-server {pid} survived stop()");
    assert!(!server.is_running());
    assert_eq!(server.pid(), None);
    server.stop(); // idempotent
    assert!(server.connection().is_err());
}

#[test]
fn drop_during_a_panic_kills_the_server() {
    let started = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let server = RedisServer::start().unwrap();
        *started.lock().unwrap() = Some((server.pid().unwrap(), server.dir().to_path_buf()));
        panic!("a test fails while its server runs");
    }));
    assert!(result.is_err());
    let (pid, dir) = started.lock().unwrap().take().unwrap();
    assert!(!pid_alive(pid), "redis-server {pid} survived the panic");
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

#[test]
fn restart_keeps_the_port() {
    let mut server = RedisServer::start().unwrap();
    let port = server.port();
    let first_pid = server.pid().unwrap();
    let mut old = server.connection().unwrap();
    let () = old.set("before", "restart").unwrap();

    server.restart().unwrap();
    assert_eq!(server.port(), port);
    let second_pid = server.pid().unwrap();
    assert_ne!(first_pid, second_pid);
    assert!(!pid_alive(first_pid));
    assert!(pid_alive(second_pid));

    // The old connection broke with the old process; a new one works.
    assert!(redis::cmd("PING").query::<String>(&mut old).is_err());
    assert_eq!(ping(&server), "PONG");
    let mut con = server.connection().unwrap();
    let before: Option<String> = con.get("before").unwrap();
    assert_eq!(before, None, "nothing is persisted across a restart");

    // Restart also works from the stopped state, and the log spans both runs.
    server.stop();
    server.restart().unwrap();
    assert_eq!(ping(&server), "PONG");
    assert_eq!(
        server.log().matches("Ready to accept connections").count(),
        3
    );
}

#[test]
fn servers_get_different_ports_and_directories() {
    let a = RedisServer::start().unwrap();
    let b = RedisServer::start().unwrap();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    assert_eq!(ping(&a), "PONG");
    assert_eq!(ping(&b), "PONG");
}

#[test]
fn missing_binary_names_what_to_install() {
    let error = RedisServer::builder()
        .binary("/nonexistent/redis-server")
        .start()
        .unwrap_err();
    assert!(
        matches!(error, TestSupportError::RedisServerNotFound { .. }),
        "{error}"
    );
    let message = error.to_string();
    for needle in [
        "/nonexistent/redis-server",
        "sudo apt-get install redis-server",
        "brew install redis",
        "REDIS_SERVER_BIN",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
    // Debug says the same, so `.unwrap()` on it is readable.
    assert_eq!(format!("{error:?}"), message);
}

#[test]
fn a_rejected_argument_reports_the_server_output() {
    let error = RedisServer::builder()
        .config("no-such-directive", "1")
        .start()
        .unwrap_err();
    assert!(
        matches!(error, TestSupportError::ServerExited { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("no-such-directive"), "{message}");
}

#[test]
fn a_replica_receives_writes() {
    let primary = RedisServer::start().unwrap();
    let replica = RedisServer::builder().replica_of(&primary).start().unwrap();
    assert_eq!(replica.primary_port(), Some(primary.port()));

    let mut con = primary.connection().unwrap();
    let () = con.set("replicated", "yes").unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut con).unwrap();
    assert_eq!(acked, 1);

    let mut replica_con = replica.connection().unwrap();
    let value: String = replica_con.get("replicated").unwrap();
    assert_eq!(value, "yes");
    let role: String = replica
        .query(redis::cmd("INFO").arg("replication"))
        .unwrap();
    assert!(role.contains("role:slave"), "{role}");
}

#[test]
fn shared_server_is_one_server() {
    let a = shared_server();
    let b = shared_server();
    assert!(std::ptr::eq(a, b));
    assert_eq!(ping(a), "PONG");

    let first = unique_prefix("shared server");
    let second = unique_prefix("shared server");
    assert_ne!(first, second);
    let mut con = a.connection().unwrap();
    let () = con.set(format!("{first}:k"), 1).unwrap();
    let keys: Vec<String> = con.keys(format!("{second}*")).unwrap();
    assert!(keys.is_empty());
}

/// Keys, one per primary, as (key, slot reported by CLUSTER KEYSLOT).
fn keys_on_every_primary(cluster: &RedisCluster, label: &str) -> Vec<(String, u16)> {
    let prefix = unique_prefix(label);
    let mut by_primary: BTreeMap<u16, (String, u16)> = BTreeMap::new();
    for i in 0.. {
        if by_primary.len() == cluster.primaries().len() {
            break;
        }
        assert!(i < 1000, "no key found for every primary");
        let key = format!("{{{prefix}-{i}}}:value");
        let slot: u16 = cluster.primaries()[0]
            .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(&key))
            .unwrap();
        assert_eq!(
            cluster.node_for_key(&key).port(),
            cluster.node_for_slot(slot).port()
        );
        by_primary
            .entry(cluster.node_for_slot(slot).port())
            .or_insert((key, slot));
    }
    by_primary.into_values().collect()
}

/// The key is stored on the node `node_for_slot` names, and only there.
fn assert_stored_where_expected(cluster: &RedisCluster, key: &str, slot: u16, value: &str) {
    let owner = cluster.node_for_slot(slot);
    let stored: Option<String> = owner.query(redis::cmd("GET").arg(key)).unwrap();
    assert_eq!(stored.as_deref(), Some(value));
    for other in cluster.primaries() {
        if other.port() != owner.port() {
            let error = other
                .query::<Option<String>>(redis::cmd("GET").arg(key))
                .unwrap_err();
            assert!(
                error.to_string().to_lowercase().contains("moved"),
                "{error}"
            );
        }
    }
}

#[test]
fn shared_cluster_has_every_slot_and_a_sync_connection_works() {
    let cluster = shared_cluster();
    assert_eq!(cluster.primaries().len(), 3);
    assert_eq!(cluster.urls().len(), 3);
    for node in cluster.nodes() {
        let info: String = node.query(redis::cmd("CLUSTER").arg("INFO")).unwrap();
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
        assert!(info.contains("cluster_known_nodes:3"), "{info}");
    }
    assert_eq!(cluster.slot_range(0), Some(0..=5460));
    assert_eq!(cluster.slot_range(2).map(|r| *r.end()), Some(16383));

    let mut con = cluster.connection().unwrap();
    for (key, slot) in keys_on_every_primary(cluster, "sync cluster") {
        let () = con.set(&key, &key).unwrap();
        let read: String = con.get(&key).unwrap();
        assert_eq!(read, key);
        assert_stored_where_expected(cluster, &key, slot, &key);
    }
}

#[tokio::test]
async fn shared_cluster_async_connection_works() {
    let cluster = shared_cluster();
    let mut con = cluster.async_connection().await.unwrap();
    for (key, slot) in keys_on_every_primary(cluster, "async cluster") {
        let () = con.set(&key, "async").await.unwrap();
        let read: String = con.get(&key).await.unwrap();
        assert_eq!(read, "async");
        assert_stored_where_expected(cluster, &key, slot, "async");
    }
}

#[test]
fn a_cluster_with_replicas_replicates() {
    let cluster = RedisCluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .unwrap();
    assert_eq!(cluster.nodes().len(), 6);
    assert_eq!(cluster.replicas().len(), 3);
    for (index, primary) in cluster.primaries().iter().enumerate() {
        let replicas = cluster.replicas_of(index);
        assert_eq!(replicas.len(), 1);
        let info: String = replicas[0]
            .query(redis::cmd("INFO").arg("replication"))
            .unwrap();
        assert!(info.contains("role:slave"), "{info}");
        assert!(
            info.contains(&format!("master_port:{}", primary.port())),
            "{info}"
        );
    }

    let mut con = cluster.connection().unwrap();
    for (key, slot) in keys_on_every_primary(&cluster, "replicated cluster") {
        let () = con.set(&key, "copy").unwrap();
        let owner = cluster.node_for_slot(slot);
        let acked: i64 = owner.query(redis::cmd("WAIT").arg(1).arg(5000)).unwrap();
        assert_eq!(acked, 1);
        let index = cluster
            .primaries()
            .iter()
            .position(|p| p.port() == owner.port())
            .unwrap();
        let mut replica = cluster.replicas_of(index)[0].connection().unwrap();
        let () = redis::cmd("READONLY").query(&mut replica).unwrap();
        let copy: String = replica.get(&key).unwrap();
        assert_eq!(copy, "copy");
    }
}

// ---------------------------------------------------------------------------
// No orphans: a child test process starts the shared servers, then ends; the
// servers must end with it.

const HELPER_MODE: &str = "REDIS_STATE_ORPHAN_HELPER";
const HELPER_OUT: &str = "REDIS_STATE_ORPHAN_HELPER_OUT";

/// Run by `no_orphan_*` in a child process; does nothing when run directly.
#[test]
#[ignore = "helper: the no_orphan_* tests run it in a child process"]
fn orphan_helper() {
    let (Ok(mode), Some(out)) = (std::env::var(HELPER_MODE), std::env::var_os(HELPER_OUT)) else {
        return;
    };
    let server = shared_server();
    let cluster = shared_cluster();
    let lines: String = std::iter::once(server)
        .chain(cluster.nodes())
        .map(|s| format!("{} {}\n", s.pid().unwrap(), s.dir().display()))
        .collect();
    std::fs::write(out, lines).unwrap();
    if mode == "sigkill" {
        // Die without unwinding, without atexit: only PR_SET_PDEATHSIG is left.
        let _ = Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::thread::sleep(Duration::from_secs(30));
        panic!("kill -KILL did not kill the helper");
    }
}

/// Runs `orphan_helper` in a child process; returns its servers' (pid, dir).
fn run_helper(mode: &str) -> (std::process::ExitStatus, Vec<(u32, PathBuf)>) {
    let out = std::env::temp_dir().join(format!(
        "redis-state-orphan-helper-{}-{mode}.txt",
        std::process::id()
    ));
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["orphan_helper", "--exact", "--ignored", "--test-threads=1"])
        .env(HELPER_MODE, mode)
        .env(HELPER_OUT, &out)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&out).unwrap_or_else(|e| {
        panic!(
            "the helper wrote no pids ({e}); its output:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let _ = std::fs::remove_file(&out);
    let servers: Vec<(u32, PathBuf)> = text
        .lines()
        .map(|line| {
            let (pid, dir) = line.split_once(' ').unwrap();
            (pid.parse().unwrap(), PathBuf::from(dir))
        })
        .collect();
    assert_eq!(servers.len(), 4, "shared server + 3 cluster nodes");
    (output.status, servers)
}

#[test]
fn no_orphan_after_a_normal_exit() {
    let (status, servers) = run_helper("exit");
    assert!(status.success(), "helper failed: {status}");
    for (pid, dir) in servers {
        assert!(
            wait_until_dead(pid, Duration::from_secs(10)),
            "redis-server {pid} outlived its test process"
        );
        assert!(!dir.exists(), "{} was not removed at exit", dir.display());
    }
}

#[cfg(target_os = "linux")]
#[test]
fn no_orphan_after_the_test_process_is_killed() {
    use std::os::unix::process::ExitStatusExt;
    let (status, servers) = run_helper("sigkill");
    assert_eq!(
        status.signal(),
        Some(9),
        "helper should die by SIGKILL: {status}"
    );
    for (pid, dir) in servers {
        assert!(
            wait_until_dead(pid, Duration::from_secs(10)),
            "redis-server {pid} outlived its SIGKILLed test process (PDEATHSIG)"
        );
        // Nothing ran at exit to remove it.
        let _ = std::fs::remove_dir_all(dir);
    }
}
