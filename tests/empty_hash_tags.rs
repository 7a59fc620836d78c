//! Empty values inside a hash tag (issue 11, item 8). Redis hashes a key
//! whose first `{…}` is empty as a whole (`note:{}` has no tag), so the
//! structures kept beside such a key (a lock's fence counter, a cache
//! entry's lease and wake-up stream) are placed in its slot by other means:
//! nothing fails with CrossSlot, on a standalone server or a Cluster.
//! Locks: `an_empty_name_is_a_lock` in `tests/lock.rs`. (Hash models whose
//! hash tag holds only an id part are not covered yet: their index keys are
//! rendered from the key template.)

mod common;

use common::Runner;
use redis_state::Namespace;
use redis_state::cache::Cache;
use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "note:{{{id}}}", ttl = "10m")]
struct Note {
    id: String,
    text: String,
}

fn get_or_load(
    r: &mut Runner,
    cache: &Cache<Note>,
    id: &str,
    text: &str,
) -> redis_state::Result<Option<Note>> {
    let id = id.to_owned();
    let note = Note {
        id: id.clone(),
        text: text.to_owned(),
    };
    let loader = move || Ok::<_, String>(Some(note));
    match r {
        Runner::Sync(con) => cache.get_or_load(con, &id, loader),
        Runner::SyncCluster(con) => cache.get_or_load(con, &id, loader),
        Runner::Async(rt, con) => {
            rt.block_on(cache.get_or_load_async(con, &id, || async move { loader() }))
        }
        Runner::AsyncCluster(rt, con) => {
            rt.block_on(cache.get_or_load_async(con, &id, || async move { loader() }))
        }
    }
}

/// A cached type whose hash tag holds its id, read and filled for the
/// empty id: the fill protocol's lease and wake-up keys share the entry's
/// slot.
fn cache_entry_with_an_empty_tag(r: &mut Runner, ns: &Namespace) {
    let cache = Cache::<Note>::new().namespace(ns);
    let key = cache.key(&String::new());
    assert!(key.ends_with("note:{}"), "{key}");
    let got = get_or_load(r, &cache, "", "empty").unwrap();
    assert_eq!(got.map(|n| n.text).as_deref(), Some("empty"));
    let hit = get_or_load(r, &cache, "", "not loaded again").unwrap();
    assert_eq!(hit.map(|n| n.text).as_deref(), Some("empty"));
    assert!(r.run(cache.invalidate(&String::new())).is_ok());
    let again = get_or_load(r, &cache, "", "reloaded").unwrap();
    assert_eq!(again.map(|n| n.text).as_deref(), Some("reloaded"));
    // And a non-empty id beside it is another entry.
    let other = get_or_load(r, &cache, "a", "a").unwrap();
    assert_eq!(other.map(|n| n.text).as_deref(), Some("a"));
}

matrix!(cache_entry_with_an_empty_tag);
