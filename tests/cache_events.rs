//! Event-based invalidation: saving or deleting a `#[derive(RedisHash)]`
//! entity drops the cache entries that depend on it, declared once in its
//! attributes.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::Runner;
use redis_state::Error;
use redis_state::cache::Cache;
use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

/// The source of truth: a hash per product.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(
    key = "{{product}}:{id}",
    invalidates(ProductView = "id"),
    invalidates_tag(CategoryPage = "category:{category}")
)]
struct ProductRow {
    #[redis(id)]
    id: u64,
    name: String,
    #[redis(index)]
    category: String,
}

/// A view of one product.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "product_view:{id}", ttl = "10m")]
struct ProductView {
    id: u64,
    title: String,
}

/// A page listing a category: depends on every product of the category.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(
    key = "category_page:{category}",
    ttl = "10m",
    tag = "category:{category}"
)]
struct CategoryPage {
    category: String,
    titles: Vec<String>,
}

/// A model with a composite id invalidating a cache keyed by the same parts.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(
    key = "stock:{warehouse}:{sku}",
    invalidates(StockView = "warehouse, sku")
)]
struct Stock {
    #[redis(id)]
    warehouse: String,
    #[redis(id)]
    sku: u32,
    count: i64,
}

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "stock_view:{warehouse}:{sku}", ttl = "1m")]
struct StockView {
    warehouse: String,
    sku: u32,
    count: i64,
}

/// A model with a unique field whose saves invalidate a tag.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{member}}:{id}", invalidates_tag(TeamPage = "team:{team}"))]
struct Member {
    #[redis(id)]
    id: u64,
    #[redis(unique)]
    handle: String,
    team: String,
}

#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "team_page:{team}", ttl = "10m", tag = "team:{team}")]
struct TeamPage {
    team: String,
    handles: Vec<String>,
}

/// A model in its own static namespace whose saves and deletes invalidate a
/// tag carried by cached types of other static namespaces (or none).
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(
    key = "shelf:{id}",
    namespace = "events_a",
    invalidates_tag(ShelfPage = "category:{category}", ShelfList = "category:{category}")
)]
struct Shelf {
    #[redis(id)]
    id: String,
    category: String,
}

/// Tagged in static namespace `events_b`.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(
    key = "shelf_page:{category}",
    ttl = "10m",
    tag = "category:{category}",
    namespace = "events_b"
)]
struct ShelfPage {
    category: String,
    titles: Vec<String>,
}

/// Tagged without a static namespace.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(
    key = "shelf_list:{category}",
    ttl = "10m",
    tag = "category:{category}"
)]
struct ShelfList {
    category: String,
    ids: Vec<String>,
}

fn row(id: u64, name: &str, category: &str) -> ProductRow {
    ProductRow {
        id,
        name: name.to_owned(),
        category: category.to_owned(),
    }
}

/// The loader: reads the source of truth.
fn view_loader(r: &mut Runner, ns: &Namespace, id: u64) -> Option<ProductView> {
    r.run(ProductRow::load(&id).namespace(ns))
        .unwrap()
        .map(|p| ProductView {
            id: p.id,
            title: p.name.to_uppercase(),
        })
}

fn cached_view(
    r: &mut Runner,
    cache: &Cache<ProductView>,
    ns: &Namespace,
    id: u64,
    calls: &AtomicUsize,
) -> Option<ProductView> {
    let loaded = view_loader(r, ns, id);
    let load = || {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(loaded)
    };
    match r {
        Runner::Sync(con) => cache.get_or_load(con, &id, load),
        Runner::SyncCluster(con) => cache.get_or_load(con, &id, load),
        Runner::Async(rt, con) => {
            rt.block_on(cache.get_or_load_async(con, &id, || async move { load() }))
        }
        Runner::AsyncCluster(rt, con) => {
            rt.block_on(cache.get_or_load_async(con, &id, || async move { load() }))
        }
    }
    .unwrap()
}

fn saves_and_deletes_invalidate_dependents(r: &mut Runner, ns: &Namespace) {
    let views = Cache::<ProductView>::new().namespace(ns);
    let pages = Cache::<CategoryPage>::new().namespace(ns);
    let calls = AtomicUsize::new(0);
    r.run(row(1, "ada", "books").save().namespace(ns)).unwrap();
    r.run(row(2, "bob", "books").save().namespace(ns)).unwrap();
    r.run(row(3, "cy", "games").save().namespace(ns)).unwrap();
    std::thread::sleep(Duration::from_millis(300)); // past the saves' hold

    assert_eq!(cached_view(r, &views, ns, 1, &calls).unwrap().title, "ADA");
    assert_eq!(cached_view(r, &views, ns, 1, &calls).unwrap().title, "ADA");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "cached");
    for c in ["books", "games"] {
        let page = CategoryPage {
            category: c.into(),
            titles: vec!["..".into()],
        };
        r.run(pages.set(&c.to_owned(), &page)).unwrap();
    }

    // Saving product 1 drops its view and every page of its category.
    r.run(row(1, "ada lovelace", "books").save().namespace(ns))
        .unwrap();
    assert_eq!(r.run(views.get(&1)).unwrap(), None);
    assert_eq!(r.run(pages.get(&"books".to_owned())).unwrap(), None);
    assert!(
        r.run(pages.get(&"games".to_owned())).unwrap().is_some(),
        "other tags stay"
    );
    // A fill in flight cannot put the old view back: the lease is held.
    let lease: Option<String> = r.cmd("GET", &format!("{{{}}}:#lease", views.key(&1))).go();
    assert_eq!(lease.as_deref(), Some("inv"));
    // During the hold, readers load from the source without caching...
    assert_eq!(
        cached_view(r, &views, ns, 1, &calls).unwrap().title,
        "ADA LOVELACE"
    );
    assert_eq!(
        r.run(views.get(&1)).unwrap(),
        None,
        "not stored during the hold"
    );
    // ...after it, the new value is cached again.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        cached_view(r, &views, ns, 1, &calls).unwrap().title,
        "ADA LOVELACE"
    );
    assert_eq!(r.run(views.get(&1)).unwrap().unwrap().title, "ADA LOVELACE");

    // Deleting reads the entity back to find its dependents.
    let page = CategoryPage {
        category: "games".into(),
        titles: vec!["cy".into()],
    };
    r.run(pages.set(&"games".to_owned(), &page)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cached_view(r, &views, ns, 3, &calls).unwrap().title, "CY");
    assert!(r.run(ProductRow::delete(&3).namespace(ns)).unwrap());
    assert_eq!(r.run(views.get(&3)).unwrap(), None);
    assert_eq!(r.run(pages.get(&"games".to_owned())).unwrap(), None);
    // Deleting a missing entity invalidates nothing and reports false.
    assert!(!r.run(ProductRow::delete(&3).namespace(ns)).unwrap());
    // The index of the hash model still works (the write path is intact).
    let books = r
        .run(ProductRow::find_by_category("books").namespace(ns))
        .unwrap();
    assert_eq!(books.len(), 2);
}

fn composite_ids_map_part_by_part(r: &mut Runner, ns: &Namespace) {
    let views = Cache::<StockView>::new().namespace(ns);
    let view = StockView {
        warehouse: "north:1".into(),
        sku: 7,
        count: 1,
    };
    r.run(views.set(&("north:1".to_owned(), 7), &view)).unwrap();
    assert!(
        r.run(views.get(&("north:1".to_owned(), 7)))
            .unwrap()
            .is_some()
    );
    let stock = Stock {
        warehouse: "north:1".into(),
        sku: 7,
        count: 2,
    };
    r.run(stock.save().namespace(ns)).unwrap();
    assert_eq!(r.run(views.get(&("north:1".to_owned(), 7))).unwrap(), None);
    // Other skus are untouched.
    r.run(views.set(&("north:1".to_owned(), 8), &view)).unwrap();
    r.run(stock.save().namespace(ns)).unwrap();
    assert!(
        r.run(views.get(&("north:1".to_owned(), 8)))
            .unwrap()
            .is_some()
    );
}

/// A save that meets a stale unique-index holder runs its write twice (the
/// second call verifies the holder); the tag members its first call took
/// are still invalidated.
fn save_verifying_a_unique_holder_still_invalidates_tags(r: &mut Runner, ns: &Namespace) {
    let pages = Cache::<TeamPage>::new().namespace(ns);
    let member = |id, handle: &str| Member {
        id,
        handle: handle.to_owned(),
        team: "red".to_owned(),
    };
    r.run(member(1, "ada").save().namespace(ns)).unwrap();
    let _: i64 = r
        .cmd("DEL", &format!("{ns}:{}", Member::key_of(&1u64)))
        .go();
    let page = TeamPage {
        team: "red".into(),
        handles: vec!["ada".into()],
    };
    std::thread::sleep(Duration::from_millis(300)); // past the save's hold
    r.run(pages.set(&"red".to_owned(), &page)).unwrap();
    assert!(r.run(pages.get(&"red".to_owned())).unwrap().is_some());
    r.run(member(2, "ada").save().namespace(ns)).unwrap();
    assert_eq!(
        r.run(pages.get(&"red".to_owned())).unwrap(),
        None,
        "the page tagged by the first call stayed"
    );
}

/// A refused write (a unique value another id holds, an insert of an
/// existing id) is an error, and the tag members its invalidations took are
/// still deleted: the tag set is gone, so nothing could reach them later.
fn refused_saves_still_invalidate_what_they_took(r: &mut Runner, ns: &Namespace) {
    let pages = Cache::<TeamPage>::new().namespace(ns);
    let member = |id, handle: &str| Member {
        id,
        handle: handle.to_owned(),
        team: "blue".to_owned(),
    };
    let page = TeamPage {
        team: "blue".into(),
        handles: vec!["bob".into()],
    };
    r.run(member(1, "bob").save().namespace(ns)).unwrap();
    for insert in [false, true] {
        std::thread::sleep(Duration::from_millis(300)); // past the last hold
        r.run(pages.set(&"blue".to_owned(), &page)).unwrap();
        assert!(r.run(pages.get(&"blue".to_owned())).unwrap().is_some());
        let err = if insert {
            r.run(member(1, "bob").insert().namespace(ns)).unwrap_err()
        } else {
            r.run(member(2, "bob").save().namespace(ns)).unwrap_err()
        };
        assert!(
            matches!(
                (insert, &err),
                (true, Error::AlreadyExists { .. }) | (false, Error::UniqueViolation { .. })
            ),
            "{err}"
        );
        assert_eq!(
            r.run(pages.get(&"blue".to_owned())).unwrap(),
            None,
            "the page whose tag set the refused write took stayed ({err})"
        );
    }
}

/// The tag sets live in the cached types' namespaces, not the model's: a
/// save and a delete without a runtime namespace still find the entries
/// (each test variant uses its own category and id, from `ns`).
fn tags_are_invalidated_in_the_cached_types_namespace(r: &mut Runner, ns: &Namespace) {
    let category = format!("{ns}_books");
    let other = format!("{ns}_games");
    let page = |c: &str| ShelfPage {
        category: c.to_owned(),
        titles: vec!["t".into()],
    };
    let list = |c: &str| ShelfList {
        category: c.to_owned(),
        ids: vec!["i".into()],
    };
    let fill = |r: &mut Runner| {
        for c in [&category, &other] {
            r.run(ShelfPage::set(c, &page(c))).unwrap();
            r.run(ShelfList::set(c, &list(c))).unwrap();
        }
        assert!(r.run(ShelfPage::get(&category)).unwrap().is_some());
        assert!(r.run(ShelfList::get(&category)).unwrap().is_some());
    };
    let shelf = Shelf {
        id: ns.to_string(),
        category: category.clone(),
    };
    fill(r);
    r.run(shelf.save()).unwrap();
    assert_eq!(
        r.run(ShelfPage::get(&category)).unwrap(),
        None,
        "the entry tagged in namespace `events_b` stayed"
    );
    assert_eq!(
        r.run(ShelfList::get(&category)).unwrap(),
        None,
        "the entry tagged without a namespace stayed"
    );
    assert!(
        r.run(ShelfPage::get(&other)).unwrap().is_some(),
        "other tags stay"
    );
    assert!(
        r.run(ShelfList::get(&other)).unwrap().is_some(),
        "other tags stay"
    );

    std::thread::sleep(Duration::from_millis(300)); // past the save's hold
    fill(r);
    assert!(r.run(Shelf::delete(&shelf.id)).unwrap());
    assert_eq!(r.run(ShelfPage::get(&category)).unwrap(), None);
    assert_eq!(r.run(ShelfList::get(&category)).unwrap(), None);

    // A runtime namespace replaces every static one, as before.
    let pages = Cache::<ShelfPage>::new().namespace(ns);
    r.run(pages.set(&category, &page(&category))).unwrap();
    r.run(shelf.save().namespace(ns)).unwrap();
    assert_eq!(r.run(pages.get(&category)).unwrap(), None);
    assert!(
        r.run(ShelfPage::get(&other)).unwrap().is_some(),
        "the static namespace is another one"
    );
}

matrix!(
    tags_are_invalidated_in_the_cached_types_namespace,
    saves_and_deletes_invalidate_dependents,
    composite_ids_map_part_by_part,
    save_verifying_a_unique_holder_still_invalidates_tags,
    refused_saves_still_invalidate_what_they_took
);
