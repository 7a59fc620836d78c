//! Derive macros for redis-state.
