//! The doctests of this crate are the code blocks of `redis-state/README.md`
//! (the crate's page on crates.io and docs.rs), compiled with `redis-state`
//! as the only dependency, as a new user's crate would have it.
//! `cargo test -p readme-check --doc` runs them.
#![doc = include_str!("../../redis-state/README.md")]
