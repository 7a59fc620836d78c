//! Interop with redis-py: the seed documents' own code for activity lists,
//! feeds, tags, online users and the time-based sorted set
//! (`tests/interop/seeds_collections.py`) run by a real redis-py against
//! what this library writes, and the other way round, on every executor
//! and topology; and the seeds' broken patterns (tags intersected without a
//! reverse index, online users that never go offline) beside their fixes.
//! Owners carry the test's namespace text, since the seeds' layouts have
//! fixed prefixes.

mod common;

use std::time::{Duration, SystemTime};

use common::Runner;
use common::interop::python_for;
use redis_state::Namespace;
use redis_state::collections::{Feed, Presence, TagSet, TimeWindow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The seed's activity-list entry: `{"action": ..., "timestamp": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Activity {
    action: String,
    timestamp: String,
}

/// A feed entry of the seed's `add_to_feed`: any dict; here a typed one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Post {
    kind: String,
    post_id: u64,
}

fn post(n: u64) -> Post {
    Post {
        kind: "like".into(),
        post_id: n,
    }
}

/// The seed's `user:<id>:activity` (100 entries, 30 days) and
/// `feed:<id>` (100, 7 days): each side reads what the other pushed, in
/// order, and the caps and TTLs agree.
fn feeds_both_ways(r: &mut Runner, ns: &Namespace) {
    let mut py = python_for(r);
    let user = format!("{ns}-7");

    // Activity list: Python tracks, Rust reads typed; Rust pushes, the
    // seed's get_recent_activity reads.
    let activity = Feed::<Activity>::new("activity", 100)
        .ttl(Duration::from_secs(2_592_000))
        .key_layout("user:", ":activity");
    assert_eq!(activity.key(&user), format!("user:{user}:activity"));
    for action in ["login", "view"] {
        let _: Value = py.call(
            "seeds_collections.track_user_activity",
            json!({"user_id": user, "action": action}),
        );
    }
    let page = r.run(activity.recent(&user, 10)).unwrap();
    let actions: Vec<_> = page.items.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["view", "login"]);
    assert_eq!(page.skipped, 0);
    r.run(activity.push(
        &user,
        &Activity {
            action: "logout".into(),
            timestamp: "2026-01-01T00:00:00".into(),
        },
    ))
    .unwrap();
    let seen: Vec<Value> = py.call(
        "seeds_collections.get_recent_activity",
        json!({"user_id": user, "limit": 2}),
    );
    assert_eq!(seen[0]["action"], "logout");
    assert_eq!(seen[1]["action"], "view");

    // Feed: 120 pushes from both sides keep the newest 100.
    let feed = Feed::<Post>::new("feed", 100)
        .ttl(Duration::from_secs(604_800))
        .key_layout("feed:", "");
    for n in 0..60u64 {
        let _: Value = py.call(
            "seeds_collections.add_to_feed",
            json!({"user_id": user, "activity": {"kind": "like", "post_id": n}}),
        );
    }
    let items: Vec<Post> = (60..120).map(post).collect();
    assert_eq!(r.run(feed.push_all(&user, items.iter())).unwrap(), 100);
    assert_eq!(r.run(feed.len(&user)).unwrap(), 100);
    let py_page: Vec<Post> = py.call(
        "seeds_collections.get_feed",
        json!({"user_id": user, "start": 0, "end": 2}),
    );
    assert_eq!(py_page, [post(119), post(118), post(117)]);
    let tail = r.run(feed.page(&user, 97, 10)).unwrap();
    assert_eq!(tail.items, [post(22), post(21), post(20)]);
    let ttl: i64 = py.call(
        "seeds_collections.command",
        json!({"args": ["TTL", feed.key(&user)]}),
    );
    assert!(ttl > 604_000 && ttl <= 604_800, "{ttl}");
    // Python's next push trims to the same cap.
    let _: Value = py.call(
        "seeds_collections.add_to_feed",
        json!({"user_id": user, "activity": {"kind": "like", "post_id": 120}}),
    );
    assert_eq!(r.run(feed.len(&user)).unwrap(), 100);
    assert_eq!(r.run(feed.recent(&user, 1)).unwrap().items, [post(120)]);
}

/// The seed's `user:<id>:activities` sorted set scored by `time.time()`:
/// Rust sees Python's members at their times, Python sees Rust's with
/// scores in seconds.
fn windows_both_ways(r: &mut Runner, ns: &Namespace) {
    let mut py = python_for(r);
    let user = format!("{ns}-8");
    let window = TimeWindow::<String>::new("activities", Duration::from_secs(86_400))
        .key_layout("user:", ":activities");
    let before = SystemTime::now() - Duration::from_secs(1);
    let _: Value = py.call(
        "seeds_collections.add_activity",
        json!({"user_id": user, "activity": "from python"}),
    );
    r.run(window.add(&user, &"from rust".to_owned())).unwrap();
    let after = SystemTime::now() + Duration::from_secs(1);
    let recent = r.run(window.recent(&user, 10)).unwrap();
    let names: Vec<_> = recent.items.iter().map(|t| t.value.as_str()).collect();
    assert_eq!(names, ["from rust", "from python"]);
    for t in &recent.items {
        assert!(t.at > before && t.at < after, "{t:?}");
    }
    let seen: Vec<(String, f64)> = py.call(
        "seeds_collections.get_recent_activities",
        json!({"user_id": user, "count": 10}),
    );
    assert_eq!(seen[0].0, "from rust");
    let rust_at = recent.items[0]
        .at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((seen[0].1 - rust_at).abs() < 0.002, "{seen:?}");
    // A member older than the seed's 24 hours, added by Rust with its time:
    // trimmed at once, as the seed's zremrangebyscore would.
    let old = SystemTime::now() - Duration::from_secs(90_000);
    assert_eq!(
        r.run(window.add(&user, &"stale".to_owned()).at(old))
            .unwrap(),
        2
    );
    let _: Value = py.call(
        "seeds_collections.add_activity",
        json!({"user_id": user, "activity": "again"}),
    );
    assert_eq!(r.run(window.count(&user)).unwrap(), 3);
}

/// The seed's `item:<id>:tags` sets, beside the reverse index
/// `tag:<tag>:items` in one hash tag. The seed's own
/// `find_items_with_all_tags` intersects the literal key `item:*:tags` and
/// finds nothing; the fixed query (one `SINTER` of the tags' sets) finds
/// what Rust tagged; what the seed's `add_tags` writes (one side only) is
/// found after `reindex`.
fn tags_both_ways(r: &mut Runner, ns: &Namespace) {
    let mut py = python_for(r);
    let prefix = format!("{ns}:{{catalog}}:");
    let tags = TagSet::<u64>::new("catalog")
        .key_layout("{catalog}:item:", ":tags", "{catalog}:tag:", ":items")
        .namespace(ns);
    assert_eq!(tags.item_key(&1), format!("{prefix}item:1:tags"));
    r.run(tags.tag(&1, ["rust", "redis"])).unwrap();
    r.run(tags.tag(&2, ["rust"])).unwrap();

    let mut got: Vec<String> = py.call(
        "seeds_collections.get_tags",
        json!({"prefix": prefix, "item_id": 1}),
    );
    got.sort();
    assert_eq!(got, ["redis", "rust"]);
    let broken: Vec<String> = py.call(
        "seeds_collections.find_items_with_all_tags",
        json!({"prefix": prefix, "tags": ["rust", "redis"]}),
    );
    assert!(broken.is_empty(), "the seed's version finds nothing");
    let fixed: Vec<String> = py.call(
        "seeds_collections.find_items_with_all_tags_fixed",
        json!({"prefix": prefix, "tags": ["rust", "redis"]}),
    );
    assert_eq!(fixed, ["1"]);
    let fixed: Vec<String> = py.call(
        "seeds_collections.find_items_with_all_tags_fixed",
        json!({"prefix": prefix, "tags": ["rust"]}),
    );
    assert_eq!(fixed, ["1", "2"]);

    // The seed's add_tags writes the item's side only.
    let _: Value = py.call(
        "seeds_collections.add_tags",
        json!({"prefix": prefix, "item_id": 3, "tags": ["rust", "python"]}),
    );
    let mut of3 = r.run(tags.tags_of(&3)).unwrap().items;
    of3.sort();
    assert_eq!(of3, ["python", "rust"]);
    assert!(
        r.run(tags.items_with_all(["python"]))
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(r.run(tags.reindex(&3)).unwrap(), 2);
    assert_eq!(r.run(tags.items_with_all(["python"])).unwrap().items, [3]);
    // The fixed add_tags writes both sides, as Rust does.
    let _: Value = py.call(
        "seeds_collections.add_tags_fixed",
        json!({"prefix": prefix, "item_id": 4, "tags": ["go", "rust"]}),
    );
    let mut rust = r.run(tags.items_with_all(["rust"])).unwrap().items;
    rust.sort();
    assert_eq!(rust, [1, 2, 3, 4]);
    // A Rust retag removes the stale reverse entries Python would read.
    r.run(tags.set_tags(&4, ["go"])).unwrap();
    let fixed: Vec<String> = py.call(
        "seeds_collections.find_items_with_all_tags_fixed",
        json!({"prefix": prefix, "tags": ["rust"]}),
    );
    assert_eq!(fixed, ["1", "2", "3"]);
}

/// Online users: the seed's `users:online` set never lets a user go (the
/// `expire` is on a heartbeat key nobody writes); the sorted set by last
/// seen does, and Python's fixed heartbeat and Rust's share it.
fn presence_both_ways(r: &mut Runner, ns: &Namespace) {
    let mut py = python_for(r);
    // The seed: a user marked online once is counted for ever.
    let _: Value = py.call(
        "seeds_collections.user_online",
        json!({"user_id": format!("{ns}-ghost")}),
    );
    let exists: i64 = py.call(
        "seeds_collections.command",
        json!({"args": ["EXISTS", format!("user:{ns}-ghost:heartbeat")]}),
    );
    assert_eq!(exists, 0, "the seed's heartbeat key is never written");
    let ttl: i64 = py.call(
        "seeds_collections.command",
        json!({"args": ["TTL", "users:online"]}),
    );
    assert_eq!(ttl, -1, "the seed's online set never expires");
    let _: i64 = py.call(
        "seeds_collections.command",
        json!({"args": ["SREM", "users:online", format!("{ns}-ghost")]}),
    );

    let presence = Presence::<String>::new("site", Duration::from_secs(60)).namespace(ns);
    let key = presence.key();
    let _: bool = py.call(
        "seeds_collections.heartbeat",
        json!({"key": key, "user_id": "py-user"}),
    );
    assert_eq!(r.run(presence.heartbeat("rs-user")).unwrap(), 2);
    let n: i64 = py.call("seeds_collections.online_count", json!({"key": key}));
    assert_eq!(n, 2);
    let mut users: Vec<String> = py.call("seeds_collections.online_users", json!({"key": key}));
    users.sort();
    assert_eq!(users, ["py-user", "rs-user"]);
    // 61 s on (Rust's clock given), both are offline and pruned.
    let later = SystemTime::now() + Duration::from_secs(61);
    assert_eq!(r.run(presence.count().now(later)).unwrap(), 0);
    let n: i64 = py.call("seeds_collections.online_count", json!({"key": key}));
    assert_eq!(n, 0);
}

matrix!(
    feeds_both_ways,
    windows_both_ways,
    tags_both_ways,
    presence_both_ways
);
