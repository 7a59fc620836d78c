//! Derive macros for [redis-state](https://docs.rs/redis-state). Use them
//! through the `redis_state` crate, which re-exports them.
//!
//! * `#[derive(RedisHash)]`: a struct stored as a Redis hash
//!   ([attributes](https://docs.rs/redis-state/latest/redis_state/hash/index.html#attributes)).
//! * `#[derive(Cached)]`: a serde type cached as one Redis string per id
//!   ([attributes](https://docs.rs/redis-state/latest/redis_state/cache/index.html#attributes)).
//! * `#[derive(Leaderboard)]`: a struct read as one entry of a ranked board
//!   (a sorted set)
//!   ([attributes](https://docs.rs/redis-state/latest/redis_state/leaderboard/index.html#attributes)).
//! * `#[derive(RedisField)]`: a newtype or unit enum stored as a plain field
//!   value (and usable as an id)
//!   ([codecs](https://docs.rs/redis-state/latest/redis_state/codec/index.html)).
//!
//! Each derive runs the same way (`internals::derive::run`): its `attr`
//! module reads its attribute into typed slots, its `ast` module normalises
//! them over the shared container and field model (`internals::ast`), its
//! `check` module relates attributes, fields and the key template, and its
//! `expand` module writes the impls; with errors, a stand-in impl is emitted
//! beside them. The key, namespace and template rules are the
//! `redis-state-keys` crate's, which the runtime follows too.

mod cached;
mod channel;
mod field;
mod hash;
mod internals;
mod leaderboard;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `redis_state::RedisHash`. The attributes:
/// <https://docs.rs/redis-state/latest/redis_state/hash/index.html#attributes>.
#[proc_macro_derive(RedisHash, attributes(redis))]
pub fn derive_redis_hash(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    hash::derive(&input).into()
}

/// Derives `FieldValue` and `KeyPart` for a newtype or a unit enum:
/// `#[redis(rename_all = "...", crate = "...")]` on an enum, `#[redis(rename
/// = "...")]` on a variant. How values are stored:
/// <https://docs.rs/redis-state/latest/redis_state/codec/index.html>.
#[proc_macro_derive(RedisField, attributes(redis))]
pub fn derive_redis_field(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    field::derive(&input).into()
}

/// Derives `redis_state::cache::Cached` (and `CachedKeyed` when the key is
/// made of fields) for a type that also derives serde's `Serialize` and
/// `Deserialize`. The attributes:
/// <https://docs.rs/redis-state/latest/redis_state/cache/index.html#attributes>.
#[proc_macro_derive(Cached, attributes(cache))]
pub fn derive_cached(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    cached::derive(&input).into()
}

/// Derives `redis_state::Leaderboard`. The attributes:
/// <https://docs.rs/redis-state/latest/redis_state/leaderboard/index.html#attributes>.
#[proc_macro_derive(Leaderboard, attributes(leaderboard))]
pub fn derive_leaderboard(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    leaderboard::derive(&input).into()
}

/// Derives `redis_state::pubsub::Channel` for a struct whose fields are the
/// parts of a channel name. The attributes:
/// <https://docs.rs/redis-state/latest/redis_state/pubsub/index.html#attributes>.
#[proc_macro_derive(Channel, attributes(channel))]
pub fn derive_channel(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    channel::derive(&input).into()
}
