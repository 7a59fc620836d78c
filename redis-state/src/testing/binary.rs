//! Finding the `redis-server` executable and checking its version.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

use super::TestSupportError;

/// The environment variable that overrides the `redis-server` executable.
pub(crate) const BIN_ENV: &str = "REDIS_SERVER_BIN";

/// The oldest supported server: 7.0 brought `CLUSTER ADDSLOTSRANGE` and `--cluster-port`.
const MIN_VERSION: (u32, u32) = (7, 0);

/// Executables whose version was already checked in this process.
static CHECKED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Resolves the executable to run: `explicit` (from `ServerBuilder::binary`),
/// else `$REDIS_SERVER_BIN`, else `redis-server` on `PATH`; then checks that it
/// is Redis 7.0 or newer (once per executable and process).
pub(crate) fn resolve(explicit: Option<&Path>) -> Result<PathBuf, TestSupportError> {
    let binary = locate(explicit)?;
    check_version(&binary)?;
    Ok(binary)
}

fn locate(explicit: Option<&Path>) -> Result<PathBuf, TestSupportError> {
    if let Some(path) = explicit {
        return find(path.as_os_str()).ok_or_else(|| TestSupportError::RedisServerNotFound {
            looked_at: format!("{} (set with ServerBuilder::binary)", path.display()),
        });
    }
    match std::env::var_os(BIN_ENV) {
        Some(value) if !value.is_empty() => {
            find(&value).ok_or_else(|| TestSupportError::RedisServerNotFound {
                looked_at: format!(
                    "${BIN_ENV}={}, which is not an executable file",
                    Path::new(&value).display()
                ),
            })
        }
        _ => {
            find(OsStr::new("redis-server")).ok_or_else(|| TestSupportError::RedisServerNotFound {
                looked_at: format!("${BIN_ENV} (unset) and PATH"),
            })
        }
    }
}

/// A name with a path separator is taken as a path; a bare name is looked up on `PATH`.
fn find(name: &OsStr) -> Option<PathBuf> {
    let path = Path::new(name);
    if path.components().count() > 1 || path.is_absolute() {
        return is_executable(path).then(|| path.to_path_buf());
    }
    let search = std::env::var_os("PATH")?;
    std::env::split_paths(&search)
        .map(|dir| dir.join(path))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

fn check_version(binary: &Path) -> Result<(), TestSupportError> {
    let checked = |list: &Vec<PathBuf>| list.iter().any(|p| p == binary);
    if checked(&CHECKED.lock().unwrap_or_else(PoisonError::into_inner)) {
        return Ok(());
    }
    let version_error = |reason: String| TestSupportError::VersionCheck {
        binary: binary.to_path_buf(),
        reason,
    };
    let output = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| version_error(e.to_string()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(version_error(format!(
            "it exited with {} and printed {:?}",
            output.status,
            format!("{}{}", text, String::from_utf8_lossy(&output.stderr)).trim()
        )));
    }
    let (found, major, minor) = parse_version(&text)
        .ok_or_else(|| version_error(format!("no `v=X.Y.Z` in {:?}", text.trim())))?;
    if (major, minor) < MIN_VERSION {
        return Err(TestSupportError::TooOld {
            binary: binary.to_path_buf(),
            found,
        });
    }
    CHECKED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(binary.to_path_buf());
    Ok(())
}

/// Parses `Redis server v=7.0.15 sha=...` into ("7.0.15", 7, 0).
fn parse_version(text: &str) -> Option<(String, u32, u32)> {
    let version = text
        .split_whitespace()
        .find_map(|word| word.strip_prefix("v="))?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((version.to_owned(), major, minor))
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn parses_redis_server_version_line() {
        let line = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d";
        assert_eq!(parse_version(line), Some(("7.0.15".to_owned(), 7, 0)));
        assert_eq!(
            parse_version("Redis server v=6.2.6 sha=0"),
            Some(("6.2.6".to_owned(), 6, 2))
        );
        assert_eq!(parse_version("redis 7"), None);
    }
}
