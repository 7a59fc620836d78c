//! # Caching: invalidation by TTL, key, event, tag and pattern
//!
//! The seeds show four ways to drop stale entries; each has its typed form:
//!
//! * **TTL**: `ttl`, `jitter` and `stale` on the type; nothing to call.
//! * **Event**: the seed's `update_product` deletes `product:<id>`,
//!   `product_list:category:<category>` and `products:featured` by hand
//!   after each update. Here the `RedisHash` model declares once what
//!   depends on it (`invalidates(View = "id")`,
//!   `invalidates_tag(List = "category:{category}")`: the tag as the cached
//!   type `List` carries it, in its namespace), and every save or delete
//!   drops those entries in the same pipeline as the write. The invalidation also revokes fills
//!   in flight, so a reader that loaded the old row cannot put it back.
//! * **Tag**: entries carry tags rendered from their fields; dropping a tag
//!   drops its entries without `SCAN` (tag sets are pruned as entries
//!   expire).
//! * **Pattern**: the seed's `invalidate_user_cache` scans `user:<id>:*`.
//!   [`invalidate_pattern`] does it on every primary of a Cluster, and
//!   escapes glob characters in user values (`4*2` matches only `4*2`).
//!   Prefer tags: a pattern scans the whole keyspace.
//!
//! Without `REDIS_URL` this program starts a private server.
//! Run it with `cargo run --example cache_invalidation`.

use std::time::Duration;

use redis_state::cache::{Cache, KeyPattern, Tag, invalidate_pattern};
use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

// ANCHOR: models
/// The source of truth, a hash per product; its saves and deletes drop the
/// cache entries that depend on it.
#[derive(RedisHash, Debug, Clone)]
#[redis(
    key = "{{products}}:{id}",
    invalidates(ProductView = "id"),
    invalidates_tag(ProductList = "category:{category}")
)]
struct Product {
    #[redis(id)]
    id: u64,
    name: String,
    #[redis(index)]
    category: String,
}

/// One product, as the API renders it.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "product_view:{id}", ttl = "10m")]
struct ProductView {
    id: u64,
    title: String,
}

/// A category listing: depends on every product of the category.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(
    key = "product_list:{category}",
    ttl = "10m",
    tag = "category:{category}"
)]
struct ProductList {
    category: String,
    titles: Vec<String>,
}

/// Per-user fragments, for the pattern example: `user_page:<user>:<page>`.
#[derive(Cached, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cache(key = "user_page:{user}:{page}", ttl = "10m")]
struct UserPage {
    user: String,
    page: String,
    html: String,
}
// ANCHOR_END: models

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;
    let ns = Namespace::new(redis_state::testing::unique_prefix("invalidation"))?;
    let views = Cache::<ProductView>::new().namespace(&ns);
    let lists = Cache::<ProductList>::new().namespace(&ns);

    // ANCHOR: event
    let lamp = Product {
        id: 1,
        name: "lamp".into(),
        category: "home".into(),
    };
    lamp.save().namespace(&ns).run(&mut con)?;
    std::thread::sleep(Duration::from_millis(300)); // past the save's hold
    let load_view = |p: Option<Product>| {
        Ok::<_, String>(p.map(|p| ProductView {
            id: p.id,
            title: p.name.to_uppercase(),
        }))
    };
    let row = Product::load(&1).namespace(&ns).run(&mut con)?;
    let view = views.get_or_load(&mut con, &1, || load_view(row))?;
    println!("cached view: {view:?}");
    let list = ProductList {
        category: "home".into(),
        titles: vec!["LAMP".into()],
    };
    lists.set(&"home".to_owned(), &list).run(&mut con)?;

    // update_product: one save; the view and the category list are dropped
    // in the same pipeline.
    Product {
        name: "desk lamp".into(),
        ..lamp.clone()
    }
    .save()
    .namespace(&ns)
    .run(&mut con)?;
    println!(
        "after the save: view {:?}, list {:?}",
        views.get(&1).run(&mut con)?,
        lists.get(&"home".to_owned()).run(&mut con)?
    );
    // ANCHOR_END: event

    // ANCHOR: tag
    lists.set(&"home".to_owned(), &list).run(&mut con)?;
    let n = lists
        .invalidate_tag(&Tag::new("category:").value("home"))
        .run(&mut con)?;
    println!("tag category:home dropped {n} entry");
    // ANCHOR_END: tag

    // ANCHOR: pattern
    let pages = Cache::<UserPage>::new().namespace(&ns);
    for (user, page) in [
        ("42", "home"),
        ("42", "settings"),
        ("4*2", "home"),
        ("7", "home"),
    ] {
        let p = UserPage {
            user: user.into(),
            page: page.into(),
            html: "<p>".into(),
        };
        pages
            .set(&(user.to_owned(), page.to_owned()), &p)
            .run(&mut con)?;
    }
    // invalidate_user_cache(42): every page of user 42, on every primary.
    let pattern = KeyPattern::entries_of::<UserPage, _>(Some(&ns), &"42".to_owned());
    let n = invalidate_pattern(&mut con, &pattern)?;
    println!("pattern {} dropped {n} entries", pattern.as_str());
    // The user "4*2" is not matched by user 42's pattern, nor the reverse.
    let hostile = KeyPattern::entries_of::<UserPage, _>(Some(&ns), &"4*2".to_owned());
    println!(
        "pattern {} dropped {}",
        hostile.as_str(),
        invalidate_pattern(&mut con, &hostile)?
    );
    assert!(
        pages
            .get(&("7".to_owned(), "home".to_owned()))
            .run(&mut con)?
            .is_some()
    );
    // ANCHOR_END: pattern

    Product::delete(&1).namespace(&ns).run(&mut con)?;
    Ok(())
}

/// Connects to `REDIS_URL`, or starts a private server for this run.
fn connect()
-> Result<(Option<redis_state::testing::RedisServer>, redis::Client), Box<dyn std::error::Error>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => Ok((None, redis::Client::open(url)?)),
        Err(_) => {
            let server = redis_state::testing::RedisServer::start()?;
            let client = server.client();
            Ok((Some(server), client))
        }
    }
}
