//! # Topologies: Sentinel, replicas, durable writes, one connection configuration
//!
//! Production Redis runs with replicas, behind Sentinel or as a Cluster, and
//! fails over. `redis_state::connect` opens a connection that every operation
//! of the library runs on, with one configuration for every topology:
//!
//! * **bounded**: connect and response timeouts, TCP keepalive, retries with
//!   exponential backoff and full jitter, a circuit breaker (open after N
//!   failed operations, one probe after a pause). `worst_case()` states the
//!   longest any operation can take; the defaults bound it at 8 s;
//! * **honest errors**: an operation that got no answer fails with
//!   `Error::Timeout { may_have_applied, .. }`: `true` when it held a write
//!   that was sent (it may have been applied; retry only what is
//!   idempotent), `false` when it only read or was never sent. Plans of
//!   reads are retried after a timeout, writes are not; replies that say
//!   "not applied" (`READONLY`, `LOADING`, `MOVED` left in a pipeline, ...)
//!   are retried for both;
//! * **Sentinel that follows failovers**: the connection asks the sentinels
//!   for the primary, checks its `ROLE`, follows `+switch-master`, and
//!   rediscovers after a failure or a `READONLY` reply;
//! * **reads on replicas**, per connection or per handle
//!   (`with_read_from`), optionally reading your own writes from the
//!   primary for a window after each write. A replica may lag: a read there
//!   may miss the latest writes (a *stale read*);
//! * **durable writes**: `durable(op, n, timeout)` sends `WAIT n timeout`
//!   right after the operation, on its node, and returns how many replicas
//!   acknowledged, or `Error::DurabilityShortfall`. `WAIT` does not make
//!   Redis strongly consistent; it makes losing an acknowledged write on a
//!   failover unlikely (the failover tests count 0 lost).
//!
//! * **TLS everywhere** (feature `tls`, rustls): `rediss://` URLs for a
//!   standalone server, the sentinels (the data nodes they name are then
//!   reached over TLS too) and a Cluster's seeds; `tls_root_cert` trusts a
//!   CA of your own instead of the system's. No password and no
//!   certificate appears in an error or a `Debug` output.
//!
//! Prefer these connections to a bare `MultiplexedConnection`, which never
//! reconnects once its socket is closed (`CLIENT KILL`, a restart, a
//! failover). A Cluster connection (`connect_cluster_async`) takes the same
//! options, passed to redis-rs' `ClusterClientBuilder`; so do pools
//! (chapter 18).
//!
//! This program starts its own Sentinel deployment over TLS (3 sentinels, a
//! primary, 2 replicas, replicating and watched over TLS, with certificates
//! the test support generates), then a TLS Cluster. Run it with
//! `cargo run --example topologies`.

use std::time::Duration;

use redis_state::connect::{ConnectionOptions, ReadFrom, durable};
use redis_state::prelude::*;
use redis_state::testing::{RedisCluster, RedisSentinel, RedisServer};
use redis_state::{Error, Namespace};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "account:{id}")]
struct Account {
    #[redis(id)]
    id: u64,
    owner: String,
    balance: i64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every node and sentinel listens for TLS too, with one generated CA.
    let sentinel = tokio::task::spawn_blocking(|| {
        RedisSentinel::start_with(&RedisServer::builder().tls(), 2, 3)
    })
    .await??;
    let urls = sentinel.sentinel_tls_urls(); // rediss://127.0.0.1:<port>/
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let ca = sentinel.ca_cert().ok_or("no CA")?;
    let ns = Namespace::new(format!("topologies-{}", std::process::id()))?;

    // ANCHOR: options
    let options = ConnectionOptions::new()
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_secs(2))
        .keepalive(Some(Duration::from_secs(30)))
        .retries(4)
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .circuit_breaker(20, Duration::from_secs(1))
        .tls_root_cert(ca); // trust this CA for rediss:// URLs
    println!("no operation waits longer than {:?}", options.worst_case());
    // ANCHOR_END: options

    // ANCHOR: sentinel
    let mut con = options
        .connect_sentinel_async(&urls, sentinel.service_name())
        .await?;
    let ada = Account {
        id: 1,
        owner: "ada".into(),
        balance: 100,
    };
    // Saved, then acknowledged by both replicas (WAIT 2 in the same round trip).
    let (_, acked) = durable(ada.save().namespace(&ns), 2, Duration::from_secs(1))
        .run_async(&mut con)
        .await?;
    println!("saved on the primary, acknowledged by {acked} replicas");
    // ANCHOR_END: sentinel

    // ANCHOR: replicas
    // Loads on this handle go to the replicas; the original still reads the primary.
    let mut reader = con.with_read_from(ReadFrom::Replica);
    let seen = Account::load(&1)
        .namespace(&ns)
        .run_async(&mut reader)
        .await?;
    println!("read from a replica: {:?}", seen.map(|a| a.balance));
    // ANCHOR_END: replicas

    // ANCHOR: failover
    let old = sentinel.failover()?;
    let new =
        tokio::task::block_in_place(|| sentinel.wait_for_promotion(old, Duration::from_secs(30)))?;
    println!("Sentinel moved the primary from port {old} to {new}");
    // Writes are accepted again once the connection follows the failover. A
    // durable write notices a demoted primary (its replicas left it).
    let bob = Account {
        id: 2,
        owner: "bob".into(),
        balance: 50,
    };
    for attempt in 1.. {
        match durable(bob.save().namespace(&ns), 1, Duration::from_secs(1))
            .run_async(&mut con)
            .await
        {
            Ok((_, acked)) => {
                println!(
                    "attempt {attempt}: saved on the new primary, acknowledged by {acked} replica(s)"
                );
                break;
            }
            Err(Error::Timeout {
                may_have_applied, ..
            }) if attempt < 50 => {
                // A save is idempotent: sending it again is safe either way.
                println!("attempt {attempt}: timed out (may have applied: {may_have_applied})");
            }
            Err(e @ (Error::DurabilityShortfall { .. } | Error::CircuitOpen { .. }))
                if attempt < 50 =>
            {
                println!("attempt {attempt}: {e}");
            }
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let both = Account::load_many(&[1, 2])
        .namespace(&ns)
        .run_async(&mut con)
        .await?;
    println!(
        "after the failover: {:?}",
        both.iter().flatten().map(|a| &a.owner).collect::<Vec<_>>()
    );
    // ANCHOR_END: failover

    // ANCHOR: tls_cluster
    // A Cluster over TLS: the seeds are rediss:// URLs, and the nodes, whose
    // bus and replication run over TLS (`tls-cluster yes`), send a TLS client
    // to their TLS ports.
    let cluster = tokio::task::spawn_blocking(|| {
        RedisCluster::builder()
            .primaries(3)
            .replicas_per_primary(1)
            .tls()
            .start()
    })
    .await??;
    let seeds = cluster.tls_urls();
    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
    let options = options.tls_root_cert(cluster.ca_cert().ok_or("no CA")?);
    let mut cluster_con = options.connect_cluster_async(&seeds).await?;
    let (_, acked) = durable(ada.save().namespace(&ns), 1, Duration::from_secs(1))
        .run_async(&mut cluster_con)
        .await?;
    let back = Account::load(&1)
        .namespace(&ns)
        .run_async(&mut cluster_con)
        .await?;
    println!(
        "TLS Cluster: saved (acknowledged by {acked} replica), read back {:?}",
        back.map(|a| a.owner)
    );
    // ANCHOR_END: tls_cluster
    Ok(())
}
