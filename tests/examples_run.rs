//! Runs every program in `examples/` (cargo builds them before the tests)
//! and checks that each one exits successfully: the guide shows only code
//! that works.

use std::path::PathBuf;
use std::process::Command;

fn examples_dir() -> PathBuf {
    // target/<profile>/deps/examples_run-<hash> -> target/<profile>/examples
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples")
}

/// The newest executable built for example `name` (`cargo build` names it
/// `name`, `cargo test` names it `name-<hash>`).
fn binary(name: &str) -> Option<PathBuf> {
    std::fs::read_dir(examples_dir())
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let file = e.file_name();
            let file = file.to_string_lossy();
            let hashed = file
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|hash| hash.chars().all(|c| c.is_ascii_hexdigit()));
            file == name || hashed
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

fn run(name: &str) {
    let path = binary(name).unwrap_or_else(|| examples_dir().join(name));
    assert!(
        path.exists(),
        "{} is missing: the examples are built by `cargo test` with no target filter; to run this test alone use `cargo test --examples --test examples_run`",
        path.display()
    );
    let out = Command::new(&path)
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("running 0 tests"),
        "{} is the example built as a test harness (`cargo test --examples`), not the program; run the whole suite with `cargo test`",
        path.display()
    );
    assert!(!stdout.trim().is_empty(), "example {name} printed nothing");
    assert!(
        out.status.success(),
        "example {name} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_example_runs() {
    let mut names: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
            .unwrap()
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .into_string()
                    .ok()?
                    .strip_suffix(".rs")
                    .map(str::to_owned)
            })
            .collect();
    names.sort();
    assert!(!names.is_empty());
    for name in names {
        run(&name);
    }
}
