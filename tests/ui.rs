//! Compile-time checks of the derives (DESIGN: "Compile-time checks are
//! proven with trybuild UI tests"). Each `tests/ui/<area>/*.rs` case holds one
//! mistake (or, for `multiple_errors`, several) and its blessed `.stderr`;
//! `tests/ui/pass` proves that valid inputs compile.
//!
//! The `.stderr` files are rustc's exact output, blessed with the toolchain
//! `rust-toolchain.toml` pins; the test first checks that it runs with that
//! toolchain, so that another rustc fails here with that message rather
//! than with a hundred diffs of wording.
//!
//! Re-bless after an intended change of a message, or together with a bump
//! of `rust-toolchain.toml`:
//!
//! ```text
//! TRYBUILD=overwrite cargo test --all-features --test ui
//! git diff tests/ui
//! ```
//!
//! then read every changed `.stderr`: each error must still say what it
//! said, at the attribute or field at fault. A new case's first run writes
//! its output to `wip/`; move it next to the case once it reads right.

use std::process::Command;

/// The channel `rust-toolchain.toml` pins.
fn pinned_toolchain() -> String {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/rust-toolchain.toml");
    let text = std::fs::read_to_string(file).expect("rust-toolchain.toml is readable");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("rust-toolchain.toml names a channel")
}

#[test]
fn ui() {
    let pinned = pinned_toolchain();
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned()))
        .arg("--version")
        .output()
        .expect("rustc runs");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.starts_with(&format!("rustc {pinned} ")),
        "the UI tests' .stderr files were blessed with rustc {pinned} (rust-toolchain.toml), \
         but this is {}: run them with that toolchain, or bump rust-toolchain.toml and \
         re-bless as tests/ui.rs says",
        version.trim()
    );

    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/hash/*.rs");
    t.compile_fail("tests/ui/field/*.rs");
    t.compile_fail("tests/ui/cached/*.rs");
    t.compile_fail("tests/ui/script/*.rs");
    t.compile_fail("tests/ui/leaderboard/*.rs");
    t.compile_fail("tests/ui/connection/*.rs");
    t.compile_fail("tests/ui/channel/*.rs");
}
