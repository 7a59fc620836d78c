//! Compile-time checks of the derives (DESIGN: "Compile-time checks are
//! proven with trybuild UI tests"). Each `tests/ui/<area>/*.rs` case holds one
//! mistake (or, for `multiple_errors`, several) and its blessed `.stderr`;
//! `tests/ui/pass` proves that valid inputs compile.
//!
//! Re-bless after an intended change of a message:
//! `TRYBUILD=overwrite cargo test --test ui`, then read every changed
//! `.stderr`: each error must sit at the attribute or field at fault.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/hash/*.rs");
    t.compile_fail("tests/ui/field/*.rs");
    t.compile_fail("tests/ui/cached/*.rs");
    t.compile_fail("tests/ui/script/*.rs");
    t.compile_fail("tests/ui/leaderboard/*.rs");
}
