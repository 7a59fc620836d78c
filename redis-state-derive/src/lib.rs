//! Derive macros for [redis-state](https://docs.rs/redis-state). Use them
//! through the `redis_state` crate, which re-exports them.
//!
//! * `#[derive(RedisHash)]`: a struct stored as a Redis hash.
//! * `#[derive(Leaderboard)]`: a struct read as one entry of a ranked board
//!   (a sorted set).
//! * `#[derive(RedisField)]`: a newtype or unit enum stored as a plain field
//!   value (and usable as an id).

mod cached;
mod field;
mod hash;
mod internals;
mod leaderboard;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `redis_state::RedisHash`. See the `redis_state` crate docs for the
/// attributes.
#[proc_macro_derive(RedisHash, attributes(redis))]
pub fn derive_redis_hash(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    hash::derive(&input).into()
}

/// Derives `FieldValue` and `KeyPart` for a newtype or a unit enum.
#[proc_macro_derive(RedisField, attributes(redis))]
pub fn derive_redis_field(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    field::derive(&input).into()
}

/// Derives `redis_state::cache::Cached` (and `CachedKeyed` when the key is
/// made of fields). See `redis_state::cache` for the attributes.
#[proc_macro_derive(Cached, attributes(cache))]
pub fn derive_cached(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    cached::derive(&input).into()
}

/// Derives `redis_state::Leaderboard`. See the `redis_state::leaderboard`
/// module docs for the attributes.
#[proc_macro_derive(Leaderboard, attributes(leaderboard))]
pub fn derive_leaderboard(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    leaderboard::derive(&input).into()
}
