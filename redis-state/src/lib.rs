#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
//!
//! # Crate map
//!
//! * [`RedisHash`] (derive and trait): structs stored as hashes, with TTLs,
//!   secondary indexes, unique fields, counters and optimistic versions.
//! * [`Leaderboard`] (derive and trait): ranked boards on sorted sets, with
//!   update policies, tie-break by time, rank modes, time windows, caps and
//!   member data.
//! * [`cache`] (`#[derive(Cached)]` and [`Cache`](cache::Cache)): cache-aside,
//!   write-through and write-behind, stampede protection inside a process
//!   and across processes, XFetch early refresh, invalidation by key, tag,
//!   pattern and entity event, and an opt-in local cache kept honest by
//!   RESP3 client tracking.
//! * [`op`]: operations as values, [`batch`] and [`many`] for pipelines.
//! * [`driver`]: procedures of several round trips (retries, backoff, waits,
//!   blocking reads), written once and run by both executors.
//! * [`codec`]: how field values are stored, and how to add your own.
//! * [`keys`]: key escaping, namespaces, Cluster slots.
//! * [`script!`]: typed Lua scripts, declared once, run as operations.
//! * [`lock`]: locks with fencing tokens, blocking acquire, scoped forms and
//!   a watchdog; [`lock::fence`] for the resource side.
//! * [`redlock`]: Redlock over independent servers (an efficiency lock).
//! * [`ratelimit`]: fixed window, sliding window and GCRA limiters.
//! * [`session`]: sessions for any serde type, JSON or hash layout.
//! * [`tx`]: optimistic `WATCH`/`MULTI`/`EXEC` transactions with retries.
//! * [`value`]: plain string values and counters at keys other clients share.
//! * [`collections`]: capped feeds, time windows, tag sets with a reverse
//!   index, presence.
//! * [`pubsub`] (`#[derive(Channel)]`): typed channels, publishing as an
//!   operation, subscribers with bounded buffers, reconnects and sharded
//!   channels that follow slot moves.
//! * [`monitor`]: `INFO`, `SLOWLOG` and `LATENCY` as typed values from
//!   every primary, and per-model statistics.
//! * [`observe`]: a `tracing` span and `metrics` per operation run
//!   (features `tracing`, `metrics`).
//! * [`stream`]: typed streams with retention, consumer groups, claims,
//!   dead letters and group-aware trimming.
//! * [`queue`]: job queues with leases, delays, retries, priorities and
//!   fenced completion; the plain list queue.
//! * `testing` (feature `test-support`): real `redis-server` processes for
//!   tests, standalone or as a local Cluster.

pub mod cache;
pub mod codec;
pub mod collections;
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub mod connect;
pub mod driver;
pub mod error;
pub mod exec;
pub mod hash;
pub mod keys;
pub mod leaderboard;
pub mod lock;
pub mod monitor;
pub mod observe;
pub mod op;
pub mod pubsub;
pub mod queue;
mod random;
pub mod ratelimit;
pub mod redlock;
mod reply;
pub mod script;
pub mod session;
mod setters;
pub mod stream;
pub mod tx;
pub mod value;

#[cfg(feature = "test-support")]
pub mod testing;

pub use redis;
pub use redis_state_derive::Channel;
pub use redis_state_derive::{Cached, Leaderboard, RedisField, RedisHash};

pub use crate::error::{DecodeError, Error, ErrorKind, Result};
pub use crate::hash::{RedisHash, Ttl};
pub use crate::keys::{Namespace, Namespaced};
pub use crate::leaderboard::Leaderboard;
pub use crate::op::{Operation, batch, many};

/// The names most programs need: `use redis_state::prelude::*;`.
pub mod prelude {
    pub use crate::cache::{Cache, Cached, CachedKeyed};
    pub use crate::hash::RedisHash;
    pub use crate::keys::Namespace;
    pub use crate::leaderboard::Leaderboard;
    pub use crate::op::{Operation, batch, many};
    pub use crate::pubsub::Channel;
    pub use redis_state_derive::Channel;
    pub use redis_state_derive::{Cached, Leaderboard, RedisField, RedisHash};
}

/// What the derives expand to. Not public API: no semver guarantees.
#[doc(hidden)]
pub mod __private {
    pub use crate::cache::{
        CacheInvalidations, CacheSchema, Cached, CachedKeyed, EntryFormat, Tags,
    };
    pub use crate::codec::{
        Codec, CounterValue, ExpiresAtValue, FieldError, FieldValue, Json, Opt, Plain, Req, Slot,
        VersionValue,
    };
    pub use crate::error::{Error, Result};
    pub use crate::hash::{
        CounterField, ExpiryField, Field, FieldKind, FieldReader, FieldSchema, FieldWriter, FindBy,
        FindUnique, HashSchema, Increment, IndexField, IndexSchema, RedisHash, UniqueField,
    };
    pub use crate::keys::{IdBuf, IdValue, KeyPart, KeyTemplate, Seg};
    pub use crate::leaderboard::{
        DataReader, DataWriter, Leaderboard, LeaderboardSchema, MemberValue, Order, RankMode,
        ScoreValue, TieBreak, TieWinner, UpdatePolicy, Window, WindowSpec,
    };
    pub use crate::script::{ScriptCall, assert_single_arg, lua_max_index};
    pub use core::clone::Clone;
    pub use core::option::Option::{self, None, Some};
    pub use core::result::Result::{Err, Ok};
    pub use serde;
    pub use std::string::String;
    pub use std::vec::Vec;

    /// The schema of the stand-in impl the derive emits beside compile errors.
    pub static FALLBACK_SCHEMA: HashSchema = HashSchema::new(
        "(invalid)",
        "invalid",
        KeyTemplate {
            segs: &[],
            scope: None,
            namespace: None,
        },
        None,
        &[],
        &[],
        None,
        None,
    );

    /// The schema of the stand-in `Cached` impl the derive emits beside
    /// compile errors.
    pub static FALLBACK_CACHE_SCHEMA: CacheSchema = CacheSchema::new(
        "(invalid)",
        "invalid",
        KeyTemplate {
            segs: &[],
            scope: None,
            namespace: None,
        },
        1,
        0,
        0,
        None,
        0,
        0.0,
    );

    /// A serde type (serialise and deserialise owned): the bound the
    /// `Cached` derive puts on its impls.
    pub trait SerdeValue: serde::Serialize + serde::de::DeserializeOwned {}
    impl<T: serde::Serialize + serde::de::DeserializeOwned> SerdeValue for T {}

    /// `Serialize`, asked of a `#[derive(Cached)]` type by name, so that a
    /// missing derive is reported as such.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be cached: it does not implement serde's `Serialize`",
        label = "add `#[derive(serde::Serialize)]` to `{Self}`",
        note = "a cached value is stored as JSON; the `Cached` attributes: https://docs.rs/redis-state/latest/redis_state/cache/index.html#attributes"
    )]
    pub trait CachedSerialize {}
    impl<T: serde::Serialize> CachedSerialize for T {}

    /// `DeserializeOwned`, asked of a `#[derive(Cached)]` type by name, so
    /// that a missing derive is reported as such.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be cached: it does not implement serde's `Deserialize`",
        label = "add `#[derive(serde::Deserialize)]` to `{Self}`",
        note = "a cached value is stored as JSON; the `Cached` attributes: https://docs.rs/redis-state/latest/redis_state/cache/index.html#attributes"
    )]
    pub trait CachedDeserialize {}
    impl<T: serde::de::DeserializeOwned> CachedDeserialize for T {}

    /// See [`assert_field_value`]: the `Cached` derive's check that the
    /// type is a serde type, reported at its name.
    pub fn assert_cached_serde<T: CachedSerialize + CachedDeserialize>() {}

    /// Compile-time assertion helpers: a failing bound is reported at the
    /// field type it names.
    pub fn assert_field_value<T: FieldValue>() {}
    /// See [`assert_field_value`].
    pub fn assert_key_part<T: KeyPart>() {}
    /// See [`assert_field_value`].
    pub fn assert_counter<T: CounterValue>() {}
    /// See [`assert_field_value`].
    pub fn assert_version<T: VersionValue>() {}
    /// See [`assert_field_value`].
    pub fn assert_expires_at<T: ExpiresAtValue>() {}
    /// See [`assert_field_value`].
    pub fn assert_codec<T, C: Codec<T>>() {}
    /// See [`assert_field_value`].
    pub fn assert_score<T: ScoreValue>() {}
    /// See [`assert_field_value`].
    pub fn assert_member<T: MemberValue>() {}
    /// See [`assert_field_value`].
    pub fn assert_board_part<T: KeyPart + Clone + Send + Sync + 'static>() {}
    /// See [`assert_field_value`].
    pub fn assert_data<T: serde::Serialize + serde::de::DeserializeOwned>() {}

    pub use crate::pubsub::{Channel, ChannelSchema, PartError, parse_part};

    /// A channel part: written into the name as a key part, parsed back as
    /// a plain field value.
    pub fn assert_channel_part<T: KeyPart + FieldValue>() {}

    /// The schema of the stand-in `Channel` impl the derive emits beside
    /// compile errors.
    pub static FALLBACK_CHANNEL: ChannelSchema =
        ChannelSchema::new("(invalid)", KeyTemplate::EMPTY, false);

    /// The codec of the stand-in `Channel` impl: reads and writes nothing.
    #[derive(Debug)]
    pub struct FallbackCodec;
    impl<T> Codec<T> for FallbackCodec {
        const EXPECTED: &'static str = "(invalid)";
        fn encode(_: &T, _: &mut Vec<u8>) -> core::result::Result<(), String> {
            Err("the channel's declaration has errors".to_owned())
        }
        fn decode(_: &[u8]) -> core::result::Result<T, FieldError> {
            Err(FieldError::new())
        }
    }

    /// The schema of the stand-in impl the derive emits beside compile errors.
    pub static FALLBACK_LEADERBOARD: LeaderboardSchema = LeaderboardSchema::new(
        "(invalid)",
        KeyTemplate {
            segs: &[],
            scope: None,
            namespace: None,
        },
        Order::HighFirst,
        UpdatePolicy::Replace,
        RankMode::Ordinal,
        None,
        &[],
        None,
        &[],
    );
}
