//! # Hash models, async API and Redis Cluster
//!
//! The same operation values run on async connections with `.run_async`:
//! a `MultiplexedConnection`, a `ConnectionManager`, or a Cluster connection.
//! On a Cluster, a batch is split per hash slot and the parts are sent
//! concurrently; scripts only ever touch keys of one slot, so no operation
//! can get `CROSSSLOT`. An index either lives under a hash tag you choose
//! (`Order` below: one index per tenant) or, on a key without one, is
//! partitioned per bucket (`Product`: `buckets = 16`, the entities spread
//! over every primary, and `find_by` reads every bucket's partition with
//! one round trip per node).
//!
//! Without `REDIS_URL` this program starts a private server; it always starts
//! a private 3-node Cluster to show the same code running there.
//!
//! Run it with `cargo run --example hash_async`.

use redis_state::prelude::*;
use redis_state::testing::{RedisCluster, RedisServer};

// ANCHOR: model
/// Orders of one tenant share the tenant's hash slot (`hash_tag`), so the
/// `status` index is per tenant and its upkeep is atomic on a Cluster.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "order:{tenant}:{id}", hash_tag = "tenant")]
struct Order {
    #[redis(id)]
    tenant: String,
    #[redis(id)]
    id: u64,
    #[redis(index)]
    status: Status,
    total_cents: i64,
    /// Any serde type, stored as JSON text.
    #[redis(json)]
    lines: Vec<Line>,
}

#[derive(RedisField, Debug, Clone, Copy, PartialEq)]
#[redis(rename_all = "snake_case")]
enum Status {
    Open,
    Paid,
    Shipped,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Line {
    sku: String,
    qty: u32,
}

/// Products spread over the whole Cluster: the key `product:{sku}` has no
/// hash tag, so each product's key carries the tag of one of 16 buckets
/// (`product:{<tag>}:<sku>`) and the `category` index is partitioned per
/// bucket. Without `buckets`, an indexed model like this one gets 64.
#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "product:{sku}", buckets = 16)]
struct Product {
    #[redis(id)]
    sku: String,
    #[redis(index)]
    category: String,
    price_cents: i64,
}
// ANCHOR_END: model

// ANCHOR: work
/// The same function runs on any async connection.
async fn work<C>(con: &mut C, label: &str) -> redis_state::Result<()>
where
    C: redis_state::exec::AsyncExecutor + 'static,
{
    let orders: Vec<Order> = (1..=50)
        .map(|id| Order {
            tenant: if id % 2 == 0 { "acme" } else { "globex" }.to_owned(),
            id,
            status: if id % 5 == 0 {
                Status::Paid
            } else {
                Status::Open
            },
            total_cents: id as i64 * 100,
            lines: vec![Line {
                sku: format!("sku-{id}"),
                qty: 1,
            }],
        })
        .collect();
    Order::save_many(&orders).run_async(con).await?;

    let paid = Order::find_by_status(&"acme".to_owned(), &Status::Paid)
        .run_async(con)
        .await?;
    println!("[{label}] acme has {} paid orders", paid.len());

    let ids: Vec<(String, u64)> = (1..=50)
        .map(|id| (if id % 2 == 0 { "acme" } else { "globex" }.to_owned(), id))
        .collect();
    let loaded = Order::load_many(&ids).run_async(con).await?;
    let total: i64 = loaded.iter().flatten().map(|o| o.total_cents).sum();
    println!(
        "[{label}] loaded {} orders worth {total} cents",
        loaded.iter().flatten().count()
    );

    Order::update(&("acme".to_owned(), 10))
        .set(Order::STATUS, Status::Shipped)
        .run_async(con)
        .await?;
    let removed = Order::delete_many(&ids).run_async(con).await?;
    println!("[{label}] removed {removed} orders");

    // Bucketed: one script per save on the product's bucket, and a lookup
    // that reads all 16 partitions, pipelined per node.
    let products: Vec<Product> = (1..=60)
        .map(|n| Product {
            sku: format!("sku-{n}"),
            category: if n % 3 == 0 { "tea" } else { "coffee" }.to_owned(),
            price_cents: n * 10,
        })
        .collect();
    Product::save_many(&products).run_async(con).await?;
    let tea = Product::find_by_category("tea").run_async(con).await?;
    println!(
        "[{label}] {} tea products, first {}, key {}",
        tea.len(),
        tea[0].sku,
        Product::key_of("sku-3")
    );
    let skus: Vec<String> = products.iter().map(|p| p.sku.clone()).collect();
    Product::delete_many(&skus).run_async(con).await?;
    Ok(())
}
// ANCHOR_END: work

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: connections
    // A standalone server, through a multiplexed connection ...
    let _server;
    let client = match std::env::var("REDIS_URL") {
        Ok(url) => redis::Client::open(url)?,
        Err(_) => {
            _server = RedisServer::start()?;
            _server.client()
        }
    };
    let mut con = client.get_multiplexed_async_connection().await?;
    work(&mut con, "standalone").await?;

    // ... and a Redis Cluster of three primaries, same code.
    let cluster = RedisCluster::start(3)?;
    let mut con = cluster.client().get_async_connection().await?;
    work(&mut con, "cluster").await?;
    // ANCHOR_END: connections
    Ok(())
}
