//! Hostile ids never collide with another id and never reach another
//! entity's key, on a standalone server and on a Cluster.

mod common;

use std::collections::HashSet;

use common::Runner;
use proptest::prelude::*;
use redis_state::prelude::*;

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "item:{id}")]
struct Item {
    #[redis(id)]
    id: String,
    value: String,
}

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "acct:{owner}:{id}", hash_tag = "owner")]
struct Account {
    #[redis(id)]
    owner: String,
    #[redis(id)]
    id: String,
    #[redis(index)]
    kind: String,
}

/// Review finding 1: with `"order:{customer}-{id}"` and `"pair:{a}{b}"`
/// (now compile errors, `tests/ui/hash/template_parts_not_segments.rs`) the
/// ids below shared one key. Written as the compiler suggests, they stay
/// apart.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "order:{customer}:{id}")]
struct Order {
    #[redis(id)]
    customer: String,
    #[redis(id)]
    id: String,
    total: i64,
}

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "pair:{a}:{b}")]
struct Pair {
    #[redis(id)]
    a: String,
    #[redis(id)]
    b: String,
    v: i64,
}

fn hostile() -> Vec<String> {
    let mut ids: Vec<String> = [
        "",
        ":",
        "::",
        "*",
        "?",
        "[",
        "]",
        "[a-z]",
        "\\",
        "{",
        "}",
        "{}",
        "{a}",
        "}{",
        " ",
        "  ",
        "\n",
        "\r\n",
        "\t",
        "\0",
        "%",
        "%25",
        "%3A",
        "a:b",
        "a%3Ab",
        "#",
        "#idx",
        "#item:idx:kind",
        "item:1",
        "1",
        "01",
        "ünïcödé",
        "🦀",
        "a b",
        "a*b",
        "a?b",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ids.push("x".repeat(10 * 1024));
    ids.push(":{}*?[]\\#% \n".repeat(800));
    ids
}

fn ids_stay_apart(r: &mut Runner, ns: &Namespace) {
    let ids = hostile();
    let items: Vec<Item> = ids
        .iter()
        .map(|id| Item {
            id: id.clone(),
            value: id.clone(),
        })
        .collect();
    r.run(Item::save_many(&items).namespace(ns)).unwrap();
    let loaded = r.run(Item::load_many(&ids).namespace(ns)).unwrap();
    for (id, got) in ids.iter().zip(loaded) {
        assert_eq!(
            got.map(|i| i.value).as_deref(),
            Some(id.as_str()),
            "id {id:?}"
        );
    }
    // Every id got its own key, and every key has exactly the template's shape.
    let keys: HashSet<String> = ids.iter().map(|id| Item::key_of(id.as_str())).collect();
    assert_eq!(keys.len(), ids.len(), "two ids share a key");
    for key in &keys {
        let rest = key.strip_prefix("item:").expect("prefix");
        assert!(
            !rest.contains([
                ':', '{', '}', '*', '?', '[', ']', '\\', '#', ' ', '\n', '\0'
            ]),
            "a value escaped its segment: {key:?}"
        );
    }
    // Deleting one hostile id leaves all the others.
    assert!(r.run(Item::delete("*").namespace(ns)).unwrap());
    let left = r.run(Item::load_many(&ids).namespace(ns)).unwrap();
    assert_eq!(left.iter().filter(|i| i.is_some()).count(), ids.len() - 1);
}

fn hostile_tags_stay_in_their_slot(r: &mut Runner, ns: &Namespace) {
    // Owners that try to open or close hash tags: the escaped tag still
    // covers the entity key and its index keys (a Cluster would answer
    // CROSSSLOT otherwise).
    let owners = ["{", "}", "a}b", "{x}", "}{", "a:b", "", "🦀"];
    for (i, owner) in owners.iter().enumerate() {
        let acct = Account {
            owner: owner.to_string(),
            id: format!("{i}"),
            kind: "gold".into(),
        };
        let res = r.run(acct.save().namespace(ns));
        if owner.is_empty() {
            // An empty tag would hash the entity and its index to different
            // slots: refused before sending, never CROSSSLOT.
            let err = res.unwrap_err();
            assert!(matches!(err, redis_state::Error::CrossSlot { .. }), "{err}");
            continue;
        }
        res.unwrap();
        let found = r
            .run(Account::find_by_kind(&owner.to_string(), "gold").namespace(ns))
            .unwrap();
        assert_eq!(found, vec![acct], "owner {owner:?}");
    }
}

fn composite_ids_stay_apart(r: &mut Runner, ns: &Namespace) {
    let alice = Order {
        customer: "acme-1".into(),
        id: "7".into(),
        total: 100,
    };
    let mallory = Order {
        customer: "acme".into(),
        id: "1-7".into(),
        total: 0,
    };
    assert_ne!(
        alice.key(),
        mallory.key(),
        "two different ids map to one key"
    );
    r.run(alice.save().namespace(ns)).unwrap();
    r.run(mallory.save().namespace(ns)).unwrap();
    let loaded = r
        .run(Order::load(&("acme-1".to_owned(), "7".to_owned())).namespace(ns))
        .unwrap();
    assert_eq!(loaded, Some(alice));
    let x = Pair {
        a: "1".into(),
        b: "23".into(),
        v: 1,
    };
    let y = Pair {
        a: "12".into(),
        b: "3".into(),
        v: 2,
    };
    assert_ne!(x.key(), y.key(), "adjacent parts collide");
}

/// Keys already written stay where they are: hostile ids render the keys
/// written out here (the byte-for-byte comparison with the escaping as it
/// was is `redis-state-keys/tests/unchanged_keys.rs`).
#[test]
fn hostile_ids_keep_their_keys() {
    for (id, key) in [
        ("a:b", "item:a%3Ab"),
        ("{x}", "item:%7Bx%7D"),
        ("50%", "item:50%25"),
        ("ünïcödé", "item:ünïcödé"),
        ("#idx", "item:%23idx"),
        ("[a-z]*?\\", "item:%5Ba-z%5D%2A%3F%5C"),
        ("a b\n\u{7f}", "item:a%20b%0A%7F"),
        ("\u{a0}\u{2028}", "item:\u{a0}\u{2028}"),
    ] {
        assert_eq!(Item::key_of(id), key, "{id:?}");
    }
    let owner_id = ("acme:corp".to_owned(), "7".to_owned());
    assert_eq!(Account::key_of(&owner_id), "acct:{acme%3Acorp}:7");
}

matrix!(
    ids_stay_apart,
    hostile_tags_stay_in_their_slot,
    composite_ids_stay_apart
);

proptest! {
    #[test]
    fn different_ids_give_different_keys(a in any::<String>(), b in any::<String>()) {
        prop_assume!(a != b);
        prop_assert_ne!(Item::key_of(a.as_str()), Item::key_of(b.as_str()));
    }

    #[test]
    fn different_composite_ids_give_different_keys(
        a in (any::<String>(), any::<String>()),
        b in (any::<String>(), any::<String>()),
    ) {
        prop_assume!(a != b);
        prop_assert_ne!(Account::key_of(&a), Account::key_of(&b));
        prop_assert_ne!(Order::key_of(&a), Order::key_of(&b));
        prop_assert_ne!(Pair::key_of(&a), Pair::key_of(&b));
    }

    #[test]
    fn escaping_round_trips(raw in any::<Vec<u8>>()) {
        let mut s = String::new();
        redis_state::keys::escape_bytes_into(&mut s, &raw);
        prop_assert_eq!(redis_state::keys::unescape(&s), Some(raw));
    }
}
