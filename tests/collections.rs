//! Feeds, time windows, tag sets and presence on every executor and
//! topology: the one-round-trip writes and what they leave in Redis, pages
//! and their bounds, corrupt and wrong-typed data written by hand (typed
//! errors, never a panic), hostile ids and tags, and a property test of the
//! tag index's two sides.

mod common;

use std::time::{Duration, SystemTime};

use common::Runner;
use redis_state::collections::{Feed, Presence, TagSet, TimeWindow};
use redis_state::{Error, Namespace};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Activity {
    action: String,
    n: u32,
}

fn act(n: u32) -> Activity {
    Activity {
        action: format!("a{n}"),
        n,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn decode_error(e: Error) -> Box<redis_state::DecodeError> {
    match e {
        Error::Decode(d) => d,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

fn is_wrongtype(e: &Error) -> bool {
    e.server_code() == Some("WRONGTYPE")
}

// ---------------------------------------------------------------------------
// Feeds

fn feed_push_trims_and_expires(r: &mut Runner, ns: &Namespace) {
    let feed = Feed::<Activity>::new("activity", 3)
        .ttl(secs(600))
        .namespace(ns);
    let key = feed.key(7u64);
    assert_eq!(key, format!("{ns}:feed:activity:7"));
    for n in 1..=5 {
        let len = r.run(feed.push(7u64, &act(n))).unwrap();
        assert_eq!(len, u64::from(n.min(3)));
    }
    assert_eq!(r.run(feed.len(7u64)).unwrap(), 3);
    let page = r.run(feed.recent(7u64, 10)).unwrap();
    assert_eq!(page.items, vec![act(5), act(4), act(3)]);
    assert_eq!(page.skipped, 0);
    let page = r.run(feed.page(7u64, 1, 1)).unwrap();
    assert_eq!(page.items, vec![act(4)]);
    assert!(r.run(feed.page(7u64, 0, 0)).unwrap().items.is_empty());
    assert!(
        r.run(feed.page(7u64, u64::MAX, u64::MAX))
            .unwrap()
            .items
            .is_empty()
    );
    let ttl: i64 = r.cmd("PTTL", &key).go();
    assert!(ttl > 0 && ttl <= 600_000, "{ttl}");

    // Many at once, oldest first: only the newest `cap` are kept.
    let pushed = r
        .run(feed.push_all(8u64, [act(1), act(2), act(3), act(4)].iter()))
        .unwrap();
    assert_eq!(pushed, 3);
    let page = r.run(feed.recent(8u64, 3)).unwrap();
    assert_eq!(page.items, vec![act(4), act(3), act(2)]);
    // Nothing pushed: the length as it is.
    assert_eq!(r.run(feed.push_all(8u64, [].iter())).unwrap(), 3);

    // Without a TTL the feed keeps the one it has (here: none).
    let plain = Feed::<String, redis_state::codec::Plain>::new("plain", 2).namespace(ns);
    r.run(plain.push("u", &"x".to_owned())).unwrap();
    let ttl: i64 = r.cmd("PTTL", &plain.key("u")).go();
    assert_eq!(ttl, -1);
    assert!(r.run(plain.clear("u")).unwrap());
    assert!(!r.run(plain.clear("u")).unwrap());

    // Any TTL saturates (1 ms to 2^53 - 1 ms); any cap is accepted.
    for ttl in [Duration::ZERO, Duration::MAX] {
        let f = Feed::<Activity>::new("ttl", u64::MAX)
            .ttl(ttl)
            .namespace(ns);
        assert_eq!(r.run(f.push(1u64, &act(1))).unwrap(), 1);
        r.run(f.clear(1u64)).unwrap();
    }

    // A cap of 0 is refused before sending.
    let none = Feed::<Activity>::new("none", 0).namespace(ns);
    assert!(matches!(
        r.run(none.push(1u64, &act(1))),
        Err(Error::InvalidConfig { .. })
    ));
}

fn feed_bad_entries_are_skipped_or_named(r: &mut Runner, ns: &Namespace) {
    let feed = Feed::<Activity>::new("bad", 10).namespace(ns);
    r.run(feed.push(1u64, &act(1))).unwrap();
    let key = feed.key(1u64);
    // Another writer left text that is not an Activity at index 0, and one
    // in the wrong shape.
    let _: i64 = r.cmd("LPUSH", &key).arg("{\"action\": 3}").go();
    let _: i64 = r.cmd("LPUSH", &key).arg("not json").go();
    r.run(feed.push(1u64, &act(2))).unwrap();

    let page = r.run(feed.recent(1u64, 10)).unwrap();
    assert_eq!(page.items, vec![act(2), act(1)]);
    assert_eq!(page.skipped, 2);

    let e = decode_error(r.run(feed.recent(1u64, 10).strict()).unwrap_err());
    assert_eq!(e.key, key);
    assert_eq!(e.field.as_deref(), Some("index 1"));
    assert_eq!(e.found.as_deref(), Some("\"not json\""));
    assert_eq!(e.expected, "JSON");

    // A key of another type: the server's WRONGTYPE, and the TTL of that
    // key is left alone (the script stops at the first error).
    let other = feed.key(2u64);
    let _: () = r.cmd("SET", &other).arg("a string").go();
    let ttl_feed = Feed::<Activity>::new("bad", 10).ttl(secs(5)).namespace(ns);
    let e = r.run(ttl_feed.push(2u64, &act(1))).unwrap_err();
    assert!(is_wrongtype(&e), "{e:?}");
    let e = r.run(feed.recent(2u64, 5)).unwrap_err();
    assert!(is_wrongtype(&e), "{e:?}");
    let ttl: i64 = r.cmd("PTTL", &other).go();
    assert_eq!(ttl, -1, "the string's TTL was changed");
}

fn feed_hostile_owners(r: &mut Runner, ns: &Namespace) {
    let feed = Feed::<String, redis_state::codec::Plain>::new("x:{y}", 5)
        .key_layout("feed:", "")
        .namespace(ns);
    let owners = ["a:b", "a%3Ab", "{tag}", "*", "", " ", "x\ny", "ünï"];
    for o in owners {
        r.run(feed.push(o, &format!("for {o}"))).unwrap();
    }
    for o in owners {
        let page = r.run(feed.recent(o, 5)).unwrap();
        assert_eq!(page.items, vec![format!("for {o}")], "owner {o:?}");
        let key = feed.key(o);
        let segment = key.strip_prefix(&format!("{ns}:feed:")).unwrap();
        assert!(!segment.contains([':', '{', '}', '*', ' ']), "{key}");
    }
    // The default layout escapes the name too.
    let own = Feed::<String, redis_state::codec::Plain>::new("x:{y}", 5);
    assert_eq!(own.key("a:b"), "feed:x%3A%7By%7D:a%3Ab");
}

// ---------------------------------------------------------------------------
// Time windows

fn window_adds_trim_and_read(r: &mut Runner, ns: &Namespace) {
    let now = SystemTime::now();
    let w = TimeWindow::<String>::new("logins", secs(30)).namespace(ns);
    let at = |back: u64| now - secs(back);
    assert_eq!(
        r.run(w.add(1u64, &"old".into()).at(at(50)).now(now))
            .unwrap(),
        0
    );
    assert_eq!(
        r.run(w.add(1u64, &"b".into()).at(at(20)).now(now)).unwrap(),
        1
    );
    assert_eq!(
        r.run(w.add(1u64, &"c".into()).at(at(5)).now(now)).unwrap(),
        2
    );
    let page = r.run(w.recent(1u64, 10).now(now)).unwrap();
    let names: Vec<_> = page.items.iter().map(|t| t.value.as_str()).collect();
    assert_eq!(names, ["c", "b"]);
    // Times come back to the millisecond.
    let c_at = page.items[0].at;
    let diff = at(5).duration_since(c_at).unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_millis(1), "{diff:?}");
    assert_eq!(r.run(w.recent(1u64, 1).now(now)).unwrap().items.len(), 1);
    assert_eq!(r.run(w.count(1u64).now(now)).unwrap(), 2);
    assert_eq!(r.run(w.count_between(1u64, at(25), at(10))).unwrap(), 1);
    // Reads filter by the cutoff even before an add trims: 20 s later, b
    // is out.
    let later = now + secs(20);
    assert_eq!(r.run(w.count(1u64).now(later)).unwrap(), 1);
    let names: Vec<_> = r
        .run(w.recent(1u64, 10).now(later))
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.value)
        .collect();
    assert_eq!(names, ["c"]);
    // The seed's layout, scored in seconds: redis-cli sees `time.time()`.
    let key = w.key(1u64);
    let score: f64 = r.cmd("ZSCORE", &key).arg("c").go();
    let expect = at(5)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((score - expect).abs() < 0.002, "{score} vs {expect}");
    let ttl: i64 = r.cmd("PTTL", &key).go();
    assert!(ttl > 0 && ttl <= 30_000, "{ttl}");
    assert!(r.run(w.remove(1u64, &"c".into())).unwrap());
    assert!(!r.run(w.remove(1u64, &"c".into())).unwrap());

    // The cap keeps the newest.
    let capped = TimeWindow::<u64>::new("capped", secs(3600))
        .cap(3)
        .namespace(ns);
    for i in 0..5u64 {
        r.run(capped.add("u", &i).at(at(100 - i)).now(now)).unwrap();
    }
    let kept: Vec<u64> = r
        .run(capped.recent("u", 10).now(now))
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.value)
        .collect();
    assert_eq!(kept, [4, 3, 2]);
    // Any span: Duration::MAX keeps everything up to the cap.
    let forever = TimeWindow::<u64>::new("forever", Duration::MAX)
        .cap(10)
        .namespace(ns);
    r.run(forever.add("u", &1).at(SystemTime::UNIX_EPOCH))
        .unwrap();
    assert_eq!(r.run(forever.count("u")).unwrap(), 1);
}

fn window_trims_in_bounded_chunks(r: &mut Runner, ns: &Namespace) {
    let now = SystemTime::now();
    let w = TimeWindow::<u64>::new("chunks", secs(60)).namespace(ns);
    let key = w.key("u");
    // 1,000 stale members written by hand (a long pause, another writer).
    let old = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 3600.0;
    let mut cmd = redis_state::op::command::<i64>("ZADD", &key);
    for i in 0..1000u64 {
        cmd = cmd.arg(old + i as f64 * 0.001).arg(1_000_000 + i);
    }
    assert_eq!(r.run(cmd).unwrap(), 1000);
    // One add removes at most 512; its count is what is left, and reads
    // filter the rest out.
    assert_eq!(r.run(w.add("u", &1).now(now)).unwrap(), 1001 - 512);
    assert_eq!(r.run(w.count("u").now(now)).unwrap(), 1);
    assert_eq!(r.run(w.recent("u", 10).now(now)).unwrap().items.len(), 1);
    assert_eq!(r.run(w.add("u", &2).now(now)).unwrap(), 2);
    let card: i64 = r.cmd("ZCARD", &key).go();
    assert_eq!(card, 2);
}

fn window_bad_members(r: &mut Runner, ns: &Namespace) {
    let now = SystemTime::now();
    let w = TimeWindow::<u64>::new("bad", secs(60)).namespace(ns);
    r.run(w.add("u", &7).now(now)).unwrap();
    let key = w.key("u");
    let score = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let _: i64 = r.cmd("ZADD", &key).arg(score).arg("seven").go();
    let page = r.run(w.recent("u", 10).now(now)).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].value, 7);
    assert_eq!(page.skipped, 1);
    let e = decode_error(r.run(w.recent("u", 10).now(now).strict()).unwrap_err());
    assert_eq!(e.key, key);
    assert_eq!(e.field.as_deref(), Some("member string \"seven\""));
    // Wrong type.
    let other = w.key("v");
    let _: i64 = r.cmd("LPUSH", &other).arg("x").go();
    assert!(is_wrongtype(&r.run(w.add("v", &1)).unwrap_err()));
    assert!(is_wrongtype(&r.run(w.recent("v", 1)).unwrap_err()));
    assert!(is_wrongtype(&r.run(w.count("v")).unwrap_err()));
    let ttl: i64 = r.cmd("PTTL", &other).go();
    assert_eq!(ttl, -1);
}

// ---------------------------------------------------------------------------
// Tag sets

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn tags_index_both_sides(r: &mut Runner, ns: &Namespace) {
    let tags = TagSet::<u64>::new("articles").namespace(ns);
    assert_eq!(r.run(tags.tag(&1, ["rust", "redis"])).unwrap(), 2);
    assert_eq!(r.run(tags.tag(&2, ["rust"])).unwrap(), 1);
    assert_eq!(
        r.run(tags.tag(&3, ["redis", "python", "redis"])).unwrap(),
        2
    );
    // Both sides.
    assert_eq!(
        sorted(r.run(tags.tags_of(&1)).unwrap().items),
        ["redis", "rust"]
    );
    assert_eq!(
        sorted(r.run(tags.items_with_all(["rust"])).unwrap().items),
        [1, 2]
    );
    assert_eq!(
        r.run(tags.items_with_all(["rust", "redis"])).unwrap().items,
        [1]
    );
    assert_eq!(
        sorted(
            r.run(tags.items_with_any(["rust", "python"]))
                .unwrap()
                .items
        ),
        [1, 2, 3]
    );
    assert_eq!(r.run(tags.count_with_all(["redis"], 0)).unwrap(), 2);
    assert_eq!(r.run(tags.count_with_all(["redis"], 1)).unwrap(), 1);
    assert!(
        r.run(tags.items_with_all(["nothing"]))
            .unwrap()
            .items
            .is_empty()
    );

    // Retag: stale reverse entries go.
    assert_eq!(r.run(tags.set_tags(&1, ["go", "rust"])).unwrap(), 2);
    assert_eq!(
        sorted(r.run(tags.tags_of(&1)).unwrap().items),
        ["go", "rust"]
    );
    assert_eq!(r.run(tags.items_with_all(["redis"])).unwrap().items, [3]);
    assert_eq!(r.run(tags.items_with_all(["go"])).unwrap().items, [1]);
    // Untag.
    assert_eq!(r.run(tags.untag(&1, ["go", "absent"])).unwrap(), 1);
    assert!(r.run(tags.items_with_all(["go"])).unwrap().items.is_empty());
    let go_key: i64 = r.cmd("EXISTS", &tags.tag_key("go")).go();
    assert_eq!(go_key, 0, "an empty tag set is no key");
    // Remove an item: gone from every tag, its own set deleted.
    assert_eq!(r.run(tags.remove_item(&3)).unwrap(), 0);
    assert!(
        r.run(tags.items_with_all(["python"]))
            .unwrap()
            .items
            .is_empty()
    );
    assert!(r.run(tags.tags_of(&3)).unwrap().items.is_empty());
    // A query names at least one tag.
    let none: [&str; 0] = [];
    assert!(matches!(
        r.run(tags.items_with_all(none)),
        Err(Error::InvalidArgument { .. })
    ));

    // The limit: a write past it is refused and writes nothing.
    let small = TagSet::<u64>::new("small").max_tags(2).namespace(ns);
    r.run(small.tag(&1, ["a", "b"])).unwrap();
    let e = r.run(small.tag(&1, ["c"])).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { reason, .. } if reason.contains("3 tags")),
        "{e:?}"
    );
    assert!(r.run(small.items_with_all(["c"])).unwrap().items.is_empty());
    assert!(matches!(
        r.run(small.set_tags(&1, ["x", "y", "z"])),
        Err(Error::InvalidArgument { .. })
    ));
    // Another writer gave the item more than the limit: a retag refuses
    // rather than walk it.
    let _: i64 = r.cmd("SADD", &small.item_key(&1)).arg(&["c", "d"]).go();
    assert!(matches!(
        r.run(small.set_tags(&1, ["a"])),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(r.run(small.tags_of(&1)).unwrap().items.len(), 4);
}

fn tags_reindex_and_other_writers(r: &mut Runner, ns: &Namespace) {
    let tags = TagSet::<u64>::new("seed").namespace(ns);
    // Another client wrote the item's side only (the seed's add_tags).
    let _: i64 = r
        .cmd("SADD", &tags.item_key(&9))
        .arg(&["red", "a:b", "{x}"])
        .go();
    assert!(
        r.run(tags.items_with_all(["red"]))
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(r.run(tags.reindex(&9)).unwrap(), 3);
    for t in ["red", "a:b", "{x}"] {
        assert_eq!(r.run(tags.items_with_all([t])).unwrap().items, [9], "{t}");
    }
    // Undecodable members, by hand: skipped and counted, or named.
    let _: i64 = r.cmd("SADD", &tags.tag_key("red")).arg("not-a-number").go();
    let page = r.run(tags.items_with_all(["red"])).unwrap();
    assert_eq!((page.items, page.skipped), (vec![9], 1));
    let e = decode_error(r.run(tags.items_with_all(["red"]).strict()).unwrap_err());
    assert_eq!(e.key, tags.tag_key("red"));
    assert_eq!(e.expected, "u64");
    // Wrong type at an item's key or a tag's key.
    let _: () = r.cmd("SET", &tags.item_key(&10)).arg("x").go();
    assert!(is_wrongtype(&r.run(tags.tag(&10, ["red"])).unwrap_err()));
    assert!(is_wrongtype(
        &r.run(tags.set_tags(&10, ["red"])).unwrap_err()
    ));
    assert!(is_wrongtype(&r.run(tags.tags_of(&10)).unwrap_err()));
    let _: () = r.cmd("SET", &tags.tag_key("str")).arg("x").go();
    assert!(is_wrongtype(&r.run(tags.tag(&11, ["str"])).unwrap_err()));
    assert!(is_wrongtype(
        &r.run(tags.items_with_all(["str"])).unwrap_err()
    ));
    // Nothing of the refused write was applied (the tags' sets it had
    // added to are undone).
    assert!(r.run(tags.tags_of(&11)).unwrap().items.is_empty());
    r.run(tags.tag(&12, ["red"])).unwrap();
    assert!(is_wrongtype(
        &r.run(tags.set_tags(&12, ["blue", "str"])).unwrap_err()
    ));
    assert_eq!(r.run(tags.tags_of(&12)).unwrap().items, ["red"]);
    assert!(
        r.run(tags.items_with_all(["blue"]))
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        r.run(tags.items_with_all(["red"]))
            .unwrap()
            .items
            .contains(&12)
    );
    assert!(is_wrongtype(
        &r.run(tags.tag(&12, ["green", "str"])).unwrap_err()
    ));
    assert!(
        r.run(tags.items_with_all(["green"]))
            .unwrap()
            .items
            .is_empty()
    );
    // Untagging skips a tag key of another type (it cannot hold the item).
    assert_eq!(r.run(tags.untag(&12, ["red", "str"])).unwrap(), 0);
}

fn tags_hostile_values(r: &mut Runner, ns: &Namespace) {
    let tags = TagSet::<String>::new("h{o}s:t").namespace(ns);
    let hostile = [
        "a:b",
        "{x}",
        "}",
        "{",
        "%",
        "%3A",
        "*",
        "?",
        "[a]",
        "\\",
        "#idx",
        " ",
        "\n",
        "\u{7f}",
        "ünï",
        "",
        "tag with spaces",
    ];
    let item = "item:{1}*";
    r.run(tags.set_tags(item, hostile)).unwrap();
    for t in hostile {
        assert_eq!(
            r.run(tags.items_with_all([t])).unwrap().items,
            [item.to_owned()],
            "{t:?}"
        );
    }
    // The retag builds the old tags' keys inside the script: they must be
    // the keys Rust computes, or stale entries would stay.
    r.run(tags.set_tags(item, ["plain"])).unwrap();
    for t in hostile {
        let n: i64 = r.cmd("EXISTS", &tags.tag_key(t)).go();
        assert_eq!(n, 0, "stale reverse entry for {t:?} at {}", tags.tag_key(t));
    }
    // The same through reindex.
    let _: i64 = r.cmd("SADD", &tags.item_key(item)).arg(&hostile[..]).go();
    r.run(tags.reindex(item)).unwrap();
    for t in hostile {
        assert_eq!(
            r.run(tags.items_with_all([t])).unwrap().items.len(),
            1,
            "{t:?}"
        );
    }
    r.run(tags.remove_item(item)).unwrap();
    for t in hostile.iter().chain(&["plain"]) {
        let n: i64 = r.cmd("EXISTS", &tags.tag_key(*t)).go();
        assert_eq!(n, 0, "{t:?}");
    }
    // Tags that are not UTF-8 are refused before sending.
    let bytes = TagSet::<String, Vec<u8>>::new("bytes").namespace(ns);
    assert!(matches!(
        r.run(bytes.tag("i", [vec![0xff, 0xfe]])),
        Err(Error::InvalidArgument { .. })
    ));
    // An empty space name has no hash tag; a layout without a shared one
    // cannot be atomic on a Cluster: both refused before sending.
    let empty = TagSet::<String>::new("").namespace(ns);
    assert!(matches!(
        r.run(empty.tag("i", ["t"])),
        Err(Error::InvalidConfig { .. })
    ));
    let split = TagSet::<String>::new("x").key_layout("item:", ":tags", "tag:", ":items");
    assert!(matches!(
        r.run(split.items_with_all(["t"])),
        Err(Error::InvalidConfig { .. })
    ));
    let half = TagSet::<String>::new("x").key_layout("{a}item:", "", "{b}tag:", "");
    assert!(matches!(
        r.run(half.set_tags("i", ["t"])),
        Err(Error::InvalidConfig { .. })
    ));
}

// ---------------------------------------------------------------------------
// Presence

fn presence_heartbeats_prune_and_list(r: &mut Runner, ns: &Namespace) {
    let now = SystemTime::now();
    let p = Presence::<String>::new("site", secs(60)).namespace(ns);
    assert_eq!(p.key(), format!("{ns}:presence:site"));
    assert_eq!(r.run(p.heartbeat("gone").now(now - secs(100))).unwrap(), 1);
    assert_eq!(r.run(p.heartbeat("ada").now(now - secs(30))).unwrap(), 1);
    assert_eq!(r.run(p.heartbeat("bob").now(now)).unwrap(), 2);
    let card: i64 = r.cmd("ZCARD", &p.key()).go();
    assert_eq!(card, 2, "the stale user was pruned by the heartbeat");
    assert_eq!(r.run(p.count().now(now)).unwrap(), 2);
    let list = r.run(p.online(0, 10).now(now)).unwrap();
    let names: Vec<_> = list.items.iter().map(|t| t.value.as_str()).collect();
    assert_eq!(names, ["bob", "ada"]);
    assert_eq!(r.run(p.online(1, 10).now(now)).unwrap().items.len(), 1);
    assert!(r.run(p.is_online("ada").now(now)).unwrap());
    assert!(!r.run(p.is_online("gone").now(now)).unwrap());
    // 40 s on, ada timed out: the count prunes her.
    let later = now + secs(40);
    assert!(!r.run(p.is_online("ada").now(later)).unwrap());
    assert_eq!(r.run(p.count().now(later)).unwrap(), 1);
    let card: i64 = r.cmd("ZCARD", &p.key()).go();
    assert_eq!(card, 1);
    assert!(r.run(p.leave("bob")).unwrap());
    assert_eq!(r.run(p.count().now(later)).unwrap(), 0);
    let ttl: i64 = r.cmd("PTTL", &p.key()).go();
    assert!(ttl <= 60_000, "{ttl}");

    // 1,000 stale users written by hand: a call prunes at most 512, and
    // the count is right all the same.
    let old = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 3600.0;
    let mut cmd = redis_state::op::command::<i64>("ZADD", p.key());
    for i in 0..1000u64 {
        cmd = cmd.arg(old + i as f64 * 0.001).arg(format!("old{i}"));
    }
    r.run(cmd).unwrap();
    assert_eq!(r.run(p.heartbeat("cy").now(now)).unwrap(), 1);
    let card: i64 = r.cmd("ZCARD", &p.key()).go();
    assert_eq!(card, 1001 - 512);
    assert_eq!(r.run(p.online(0, 5).now(now)).unwrap().items.len(), 1);
    let card: i64 = r.cmd("ZCARD", &p.key()).go();
    assert_eq!(card, 1);
}

fn presence_bad_data(r: &mut Runner, ns: &Namespace) {
    let now = SystemTime::now();
    let p = Presence::<u64>::new("room-1", secs(60)).namespace(ns);
    r.run(p.heartbeat(&7).now(now)).unwrap();
    let score = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let _: i64 = r.cmd("ZADD", &p.key()).arg(score).arg("guest").go();
    let page = r.run(p.online(0, 10).now(now)).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.skipped, 1);
    let e = decode_error(r.run(p.online(0, 10).now(now).strict()).unwrap_err());
    assert_eq!(e.key, p.key());
    // Wrong type: typed error, nothing changed.
    let other = Presence::<u64>::new("other", secs(60)).namespace(ns);
    let _: () = r.cmd("SET", &other.key()).arg("x").go();
    assert!(is_wrongtype(&r.run(other.heartbeat(&1)).unwrap_err()));
    assert!(is_wrongtype(&r.run(other.count()).unwrap_err()));
    assert!(is_wrongtype(&r.run(other.is_online(&1)).unwrap_err()));
    let ttl: i64 = r.cmd("PTTL", &other.key()).go();
    assert_eq!(ttl, -1);
    // Hostile names stay one segment; the key layout is used as given.
    let h = Presence::<String>::new("a:{b}*", secs(1)).namespace(ns);
    assert_eq!(h.key(), format!("{ns}:presence:a%3A%7Bb%7D%2A"));
    let v = Presence::<String>::new("x", secs(1)).key_layout("users:online:since");
    assert_eq!(v.key(), "users:online:since");
    // Any timeout saturates.
    let long = Presence::<String>::new("long", Duration::MAX).namespace(ns);
    assert_eq!(r.run(long.heartbeat("a")).unwrap(), 1);
    let short = Presence::<String>::new("short", Duration::ZERO).namespace(ns);
    r.run(short.heartbeat("a")).unwrap();
}

// ---------------------------------------------------------------------------
// All four in one pipeline

fn one_pipeline_for_all(r: &mut Runner, ns: &Namespace) {
    let now = SystemTime::now();
    let feed = Feed::<Activity>::new("f", 10).namespace(ns);
    let window = TimeWindow::<String>::new("w", secs(60)).namespace(ns);
    let tags = TagSet::<u64>::new("t").namespace(ns);
    let presence = Presence::<String>::new("p", secs(60)).namespace(ns);
    let (len, count, n_tags, online) = r
        .run(redis_state::batch((
            feed.push(1u64, &act(1)),
            window.add(1u64, &"x".into()).now(now),
            tags.tag(&1, ["a"]),
            presence.heartbeat("ada").now(now),
        )))
        .unwrap();
    assert_eq!((len, count, n_tags, online), (1, 1, 1, 1));
    let (page, recent, items, list) = r
        .run(redis_state::batch((
            feed.recent(1u64, 5),
            window.recent(1u64, 5).now(now),
            tags.items_with_all(["a"]),
            presence.online(0, 5).now(now),
        )))
        .unwrap();
    assert_eq!(page.items, [act(1)]);
    assert_eq!(recent.items[0].value, "x");
    assert_eq!(items.items, [1]);
    assert_eq!(list.items[0].value, "ada");
}

matrix!(
    feed_push_trims_and_expires,
    feed_bad_entries_are_skipped_or_named,
    feed_hostile_owners,
    window_adds_trim_and_read,
    window_trims_in_bounded_chunks,
    window_bad_members,
    tags_index_both_sides,
    tags_reindex_and_other_writers,
    tags_hostile_values,
    presence_heartbeats_prune_and_list,
    presence_bad_data,
    one_pipeline_for_all,
);

// ---------------------------------------------------------------------------
// Property: the two sides of a tag space agree after any sequence of changes

mod property {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[derive(Debug, Clone)]
    enum Change {
        Tag(u8, Vec<u8>),
        Untag(u8, Vec<u8>),
        Set(u8, Vec<u8>),
        Remove(u8),
    }

    const TAGS: [&str; 6] = ["a", "b:c", "{d}", "%", "e f", "ü"];

    fn change() -> impl Strategy<Value = Change> {
        let tags = proptest::collection::vec(0u8..6, 0..4);
        prop_oneof![
            (0u8..4, tags.clone()).prop_map(|(i, t)| Change::Tag(i, t)),
            (0u8..4, tags.clone()).prop_map(|(i, t)| Change::Untag(i, t)),
            (0u8..4, tags).prop_map(|(i, t)| Change::Set(i, t)),
            (0u8..4).prop_map(Change::Remove),
        ]
    }

    fn names(t: &[u8]) -> Vec<&'static str> {
        t.iter().map(|&i| TAGS[usize::from(i)]).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn both_sides_agree_with_a_model(changes in proptest::collection::vec(change(), 1..12)) {
            let mut r = Runner::new(common::Topology::Standalone, false);
            let ns = common::namespace("tags_property");
            let tags = TagSet::<u8>::new("p").namespace(&ns);
            let mut model: BTreeMap<u8, BTreeSet<&str>> = BTreeMap::new();
            for c in &changes {
                match c {
                    Change::Tag(i, t) => {
                        r.run(tags.tag(i, names(t))).unwrap();
                        model.entry(*i).or_default().extend(names(t));
                    }
                    Change::Untag(i, t) => {
                        r.run(tags.untag(i, names(t))).unwrap();
                        let e = model.entry(*i).or_default();
                        for n in names(t) { e.remove(n); }
                    }
                    Change::Set(i, t) => {
                        r.run(tags.set_tags(i, names(t))).unwrap();
                        model.insert(*i, names(t).into_iter().collect());
                    }
                    Change::Remove(i) => {
                        r.run(tags.remove_item(i)).unwrap();
                        model.remove(i);
                    }
                }
            }
            for i in 0u8..4 {
                let got: BTreeSet<String> = r.run(tags.tags_of(&i)).unwrap().items.into_iter().collect();
                let want: BTreeSet<String> = model.get(&i).into_iter().flatten().map(|s| s.to_string()).collect();
                prop_assert_eq!(got, want, "tags of {}", i);
            }
            for t in TAGS {
                let got: BTreeSet<u8> = r.run(tags.items_with_all([t])).unwrap().items.into_iter().collect();
                let want: BTreeSet<u8> = model.iter().filter(|(_, s)| s.contains(t)).map(|(i, _)| *i).collect();
                prop_assert_eq!(got, want, "items of {}", t);
            }
        }
    }
}
