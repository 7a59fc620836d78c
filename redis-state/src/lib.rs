//! redis-state: typed Rust state in Redis.

#[cfg(feature = "test-support")]
pub mod testing;
