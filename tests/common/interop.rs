//! The redis-py side of the interop tests: one Python process per
//! [`Python`], running `tests/interop/harness.py` with the packages
//! `scripts/python-deps` installs (pinned redis-py in a venv under
//! `target/interop/`, installed on first use).
//!
//! ```ignore
//! let py = Python::standalone(server.port());
//! let id: Option<String> = py.call("seeds_coord.lock_acquire", json!({"name": "x"}));
//! ```
//!
//! Each area keeps its redis-py code in its own module beside the harness
//! (`tests/interop/seeds_coord.py`, `seeds_cache.py`, ...); a call names
//! `<module>.<function>`, whose first parameter is the redis-py client.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/interop`, next to the test binaries' `target/<profile>/`.
fn interop_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test>-<hash>
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("interop"))
        .unwrap_or_else(|| root().join("target/interop"))
}

/// The interpreter `scripts/python-deps` prepared (run once per test
/// process; it returns at once when everything is installed).
fn interpreter() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let dir = interop_dir();
        let out = Command::new(root().join("scripts/python-deps"))
            .env("INTEROP_DIR", &dir)
            .output()
            .expect("scripts/python-deps runs (bash is needed)");
        assert!(
            out.status.success(),
            "scripts/python-deps failed: the interop tests need Python 3 and pip (and PyPI the first time):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir.join("python")
    })
}

/// A running `harness.py` connected to one server or Cluster. Killed when
/// dropped.
pub struct Python {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Python {
    /// A harness whose client is `redis.Redis` on `127.0.0.1:<port>`.
    pub fn standalone(port: u16) -> Python {
        Python::start(&format!("redis://127.0.0.1:{port}/"), false)
    }

    /// A harness whose client is `redis.cluster.RedisCluster` reached
    /// through the node at `127.0.0.1:<port>`.
    pub fn cluster(port: u16) -> Python {
        Python::start(&format!("redis://127.0.0.1:{port}/"), true)
    }

    fn start(url: &str, cluster: bool) -> Python {
        let mut cmd = Command::new(interpreter());
        cmd.arg(root().join("tests/interop/harness.py"))
            .arg("--url")
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if cluster {
            cmd.arg("--cluster");
        }
        let mut child = cmd.spawn().expect("the interop Python starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Python {
            child,
            stdin,
            stdout,
        }
    }

    /// Calls `<module>.<function>(client, **args)` and returns its result;
    /// panics with the Python traceback when it raised.
    pub fn call<T: serde::de::DeserializeOwned>(&mut self, function: &str, args: Value) -> T {
        let value = self
            .try_call(function, args)
            .unwrap_or_else(|traceback| panic!("{function} raised in Python:\n{traceback}"));
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{function} returned {value}, which does not decode: {e}"))
    }

    /// Like [`call`](Python::call), with the traceback as the error when the
    /// function raised (for tests that expect the Python side to fail).
    pub fn try_call(&mut self, function: &str, args: Value) -> Result<Value, String> {
        let request = serde_json::json!({ "call": function, "args": args });
        writeln!(self.stdin, "{request}").expect("the interop Python reads its requests");
        self.stdin
            .flush()
            .expect("the interop Python reads its requests");
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .expect("the interop Python answers");
        assert!(
            n > 0,
            "the interop Python exited while running {function} (its error is above)"
        );
        let mut reply: serde_json::Map<String, Value> = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the interop Python wrote {line:?}: {e}"));
        match (reply.remove("ok"), reply.remove("error")) {
            (Some(ok), _) => Ok(ok),
            (_, Some(Value::String(traceback))) => Err(traceback),
            _ => panic!("the interop Python wrote {line:?}"),
        }
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A harness on the server or Cluster `runner` talks to (the shared ones
/// of `redis_state::testing`), with the matching redis-py client.
pub fn python_for(runner: &super::Runner) -> Python {
    if runner.is_cluster() {
        let cluster = redis_state::testing::shared_cluster();
        Python::cluster(cluster.primaries()[0].port())
    } else {
        Python::standalone(redis_state::testing::shared_server().port())
    }
}
