//! Child processes: one long-lived keeper thread spawns every `redis-server`,
//! and a process-wide registry tracks them until they are reaped.
//!
//! Why a keeper thread: on Linux each child gets `PR_SET_PDEATHSIG = SIGKILL`,
//! and the kernel sends that signal when the *thread* that forked the child
//! exits, not the process. `cargo test` runs every test on its own short-lived
//! thread, so a server spawned directly from a test would be killed when that
//! test's thread ends, even if it is a process-wide shared server kept in a
//! static. The keeper thread lives as long as the process, so the signal fires
//! exactly when the test process dies, however it dies (panic, `SIGKILL`,
//! `abort`). Statics are never dropped; that is the guarantee that leaves no
//! orphan `redis-server` behind.
//!
//! Best effort on top (every unix): an `atexit` hook kills and reaps the
//! children still registered when the process exits normally (including
//! `std::process::exit`, which the test harness calls when a test fails) and
//! removes their temporary directories, which nothing else would remove for
//! servers kept in statics.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock, PoisonError, TryLockError, mpsc};

use super::TestSupportError;

/// What the keeper thread needs to start one server.
pub(crate) struct SpawnSpec {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    /// Working directory; also receives `stdout.log` and `stderr.log`.
    pub(crate) dir: PathBuf,
}

/// A registered child. Not `Clone`: exactly one owner stops it.
#[derive(Debug)]
pub(crate) struct ChildHandle {
    id: u64,
    pid: u32,
}

impl ChildHandle {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }
}

struct Tracked {
    child: Child,
    /// Removed at exit if the child is still registered then (its owner was
    /// never dropped, e.g. a shared server in a static).
    #[cfg_attr(not(unix), allow(dead_code, reason = "no exit hook outside unix"))]
    dir: PathBuf,
}

struct Request {
    spec: SpawnSpec,
    reply: mpsc::Sender<io::Result<ChildHandle>>,
}

static CHILDREN: Mutex<BTreeMap<u64, Tracked>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static KEEPER: OnceLock<Result<mpsc::Sender<Request>, String>> = OnceLock::new();
static EXIT_HOOK: Once = Once::new();

fn children() -> MutexGuard<'static, BTreeMap<u64, Tracked>> {
    // No code panics while holding this lock; should one ever do so, the map
    // itself is still consistent (every operation is a single insert/remove).
    CHILDREN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spawns `spec` from the keeper thread and registers the child.
pub(crate) fn spawn(spec: SpawnSpec) -> Result<ChildHandle, TestSupportError> {
    EXIT_HOOK.call_once(sys::register_exit_hook);
    let keeper = KEEPER
        .get_or_init(start_keeper)
        .as_ref()
        .map_err(|reason| TestSupportError::Keeper {
            reason: reason.clone(),
        })?;
    let program = spec.program.display().to_string();
    let (reply, response) = mpsc::channel();
    keeper
        .send(Request { spec, reply })
        .map_err(|_| TestSupportError::Keeper {
            reason: "it stopped serving requests".to_owned(),
        })?;
    response
        .recv()
        .map_err(|_| TestSupportError::Keeper {
            reason: "it dropped a request without answering".to_owned(),
        })?
        .map_err(|e| TestSupportError::io(format!("spawn {program}"), e))
}

fn start_keeper() -> Result<mpsc::Sender<Request>, String> {
    let (sender, requests) = mpsc::channel::<Request>();
    std::thread::Builder::new()
        .name("redis-state-keeper".to_owned())
        .spawn(move || {
            // Ends only when every sender is gone, and the static keeps one for
            // the whole life of the process: this thread never exits.
            for Request { spec, reply } in requests {
                let result = spawn_here(spec);
                if let Err(mpsc::SendError(Ok(orphan))) = reply.send(result) {
                    // The requester is gone; nobody owns this child.
                    kill(orphan);
                }
            }
        })
        .map(|_| sender)
        .map_err(|e| format!("could not start it: {e}"))
}

/// Runs on the keeper thread.
fn spawn_here(spec: SpawnSpec) -> io::Result<ChildHandle> {
    let output = |name: &str| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(spec.dir.join(name))
    };
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&spec.dir)
        .stdin(Stdio::null())
        .stdout(output("stdout.log")?)
        .stderr(output("stderr.log")?);
    sys::kill_child_when_keeper_dies(&mut command);
    let child = command.spawn()?;
    let handle = ChildHandle {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        pid: child.id(),
    };
    children().insert(
        handle.id,
        Tracked {
            child,
            dir: spec.dir,
        },
    );
    Ok(handle)
}

/// `None` while the child runs, `Some(status)` once it exited.
pub(crate) fn exit_status(handle: &ChildHandle) -> Option<ExitStatus> {
    let mut map = children();
    let tracked = map.get_mut(&handle.id)?;
    // try_wait fails only if waitpid does (ECHILD: reaped behind our back,
    // which nothing in this crate does).
    tracked.child.try_wait().ok().flatten()
}

/// Kills (SIGKILL) and reaps the child. Idempotent by construction: it
/// consumes the handle.
pub(crate) fn kill(handle: ChildHandle) {
    let tracked = children().remove(&handle.id);
    if let Some(mut tracked) = tracked {
        // Both fail only if the child was already reaped, which is what we want.
        let _ = tracked.child.kill();
        let _ = tracked.child.wait();
    }
}

/// Called once at process exit: kills and reaps what is still registered and
/// removes those children's directories.
#[cfg_attr(not(unix), allow(dead_code, reason = "no exit hook outside unix"))]
fn reap_all_at_exit() {
    // try_lock: never block process exit on a thread that is mid-operation.
    let mut map = match CHILDREN.try_lock() {
        Ok(map) => map,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return,
    };
    let remaining = std::mem::take(&mut *map);
    drop(map);
    for mut tracked in remaining.into_values() {
        let _ = tracked.child.kill();
        let _ = tracked.child.wait();
        let _ = std::fs::remove_dir_all(&tracked.dir);
    }
}

/// The only `unsafe` of the crate: two FFI calls with nothing else inside.
mod sys {
    use std::process::Command;

    /// Linux: `prctl(PR_SET_PDEATHSIG, SIGKILL)` in the child, between fork
    /// and exec. The "parent" whose death triggers it is the forking thread,
    /// which is always the keeper thread (see the module docs).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[allow(
        unsafe_code,
        reason = "CommandExt::pre_exec is unsafe because the hook runs in the forked child of a \
                  multi-threaded process, where only async-signal-safe calls are allowed. The hook \
                  calls only prctl(2) and getppid(2), both async-signal-safe, and builds its \
                  io::Error from an errno without allocating."
    )]
    pub(super) fn kill_child_when_keeper_dies(command: &mut Command) {
        use std::os::unix::process::CommandExt;
        let parent = libc::pid_t::try_from(std::process::id()).ok();
        // SAFETY: see the `reason` above: no allocation, no lock, no
        // non-async-signal-safe call happens inside the hook.
        unsafe {
            command.pre_exec(move || {
                let signal = libc::SIGKILL as libc::c_ulong;
                let zero: libc::c_ulong = 0;
                if libc::prctl(libc::PR_SET_PDEATHSIG, signal, zero, zero, zero) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // If the process died between fork and prctl, no signal will
                // ever come (we were reparented): refuse to run orphaned.
                if parent.is_some_and(|parent| libc::getppid() != parent) {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }

    /// Other platforms have no parent-death signal; the exit hook and `Drop`
    /// remain.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) fn kill_child_when_keeper_dies(_command: &mut Command) {}

    #[cfg(unix)]
    #[allow(
        unsafe_code,
        reason = "atexit(3) is a foreign function. It only stores a pointer to `on_exit`, a plain \
                  `extern \"C\" fn` that cannot unwind (a panic in it aborts) and uses only safe \
                  std APIs that stay valid while the process exits (Rust never tears down \
                  statics)."
    )]
    pub(super) fn register_exit_hook() {
        extern "C" fn on_exit() {
            super::reap_all_at_exit();
        }
        // SAFETY: see the `reason` above. A non-zero return (out of memory)
        // only loses the best-effort cleanup; PDEATHSIG still applies.
        unsafe {
            libc::atexit(on_exit);
        }
    }

    #[cfg(not(unix))]
    pub(super) fn register_exit_hook() {}
}
