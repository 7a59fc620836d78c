use redis_state::cache::Tag;
use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize, Clone)]
#[cache(
    key = "{{shop}}:product:{id}",
    ttl = "10m",
    jitter = "10%",
    stale = "30s",
    negative_ttl = "1m",
    tag = "category:{category}",
    tag = "brand:{brand}:{category}",
    version = 3,
    beta = 1.5,
    namespace = "app"
)]
struct Product {
    id: u64,
    category: String,
    brand: String,
}

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "report:{day}:{region}", id = (String, u16), ttl = 3600)]
struct Report {
    total: i64,
}

#[derive(Cached, Serialize, Deserialize)]
#[cache(ttl = "1m")]
struct Session {
    id: String,
}

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "pair:{a}:{b}", ttl = "1m", jitter = "5s")]
struct Pair<T> {
    a: u32,
    b: String,
    extra: T,
}

/// `invalidates(..)` takes a path: name a generic instance with an alias.
type PairU8 = Pair<u8>;

#[derive(RedisHash)]
#[redis(
    key = "{{shop}}:row:{id}",
    invalidates(Product = "id"),
    invalidates(PairU8 = "a, b"),
    invalidates_tag(Product = "category:{category}", PairU8 = "category:{category}"),
    invalidates_tag(Product = "shop:{a}")
)]
struct Row {
    #[redis(id)]
    id: u64,
    a: u32,
    b: String,
    category: String,
}

fn main() {
    let _ = Product::get(&1u64);
    let _ = Product::invalidate_tag(&Tag::new("category:").value("books"));
    let _ = Report::get(&("2024-05-01".to_owned(), 7u16));
    let _ = Session::get("abc");
    let _ = Pair::<u8>::get(&(1u32, "x".to_owned()));
    assert_eq!(Product::cache_key(&7u64), "app:{shop}:product:7");
    let _ = Row::load(&1u64);
}
