//! TLS on every topology: a Cluster whose bus and replication run over TLS,
//! and Sentinel reached over TLS whose sentinels watch the data nodes over
//! TLS. The library's operations run over `rediss://` on both, through the
//! configured connections (blocking and async), and no secret (a password,
//! the CA's PEM) shows in an error or a Debug output.

use std::time::Duration;

use redis_state::connect::{ConnectionOptions, durable};
use redis_state::exec::{AsyncExecutor, SyncExecutor};
use redis_state::lock::Lock;
use redis_state::prelude::*;
use redis_state::testing::{RedisCluster, RedisSentinel, RedisServer, unique_prefix};
use redis_state::value::Counter;
use redis_state::{Error, op};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{tls-item}}:{id}")]
struct Item {
    #[redis(id)]
    id: String,
    #[redis(index)]
    colour: String,
    n: i64,
}

fn item(id: &str, n: i64) -> Item {
    Item {
        id: id.to_owned(),
        colour: "blue".to_owned(),
        n,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn options(ca: Vec<u8>) -> ConnectionOptions {
    ConnectionOptions::new()
        .connect_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(2))
        .retries(4)
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .tls_root_cert(ca)
}

/// Saves, loads, finds by index, locks and counts on `con`.
fn run_operations<C: SyncExecutor>(con: &mut C, label: &str) {
    let id = unique_prefix(label);
    item(&id, 1).save().run(con).unwrap();
    assert_eq!(Item::load(&id).run(con).unwrap(), Some(item(&id, 1)));
    let found = Item::find_by_colour("blue").run(con).unwrap();
    assert!(found.iter().any(|i| i.id == id));
    let lock = Lock::new(format!("{id}:lock"));
    let guard = lock.try_acquire().run(con).unwrap().unwrap();
    assert!(guard.release().run(con).unwrap());
    let counter = Counter::<i64>::new(format!("{id}:count"));
    assert_eq!(counter.incr(3).run(con).unwrap(), 3);
    Item::delete(&id).run(con).unwrap();
    assert_eq!(Item::load(&id).run(con).unwrap(), None);
}

async fn run_operations_async<C: AsyncExecutor>(con: &mut C, label: &str) {
    let id = unique_prefix(label);
    item(&id, 1).save().run_async(con).await.unwrap();
    assert_eq!(
        Item::load(&id).run_async(con).await.unwrap(),
        Some(item(&id, 1))
    );
    let found = Item::find_by_colour("blue").run_async(con).await.unwrap();
    assert!(found.iter().any(|i| i.id == id));
    let lock = Lock::new(format!("{id}:lock"));
    let guard = lock.try_acquire().run_async(con).await.unwrap().unwrap();
    assert!(guard.release().run_async(con).await.unwrap());
    let counter = Counter::<i64>::new(format!("{id}:count"));
    assert_eq!(counter.incr(3).run_async(con).await.unwrap(), 3);
    Item::delete(&id).run_async(con).await.unwrap();
    assert_eq!(Item::load(&id).run_async(con).await.unwrap(), None);
}

fn config(server: &RedisServer, name: &str) -> String {
    let pair: Vec<String> = server
        .query(redis::cmd("CONFIG").arg("GET").arg(name))
        .unwrap();
    pair.get(1).cloned().unwrap_or_default()
}

#[test]
fn operations_run_over_tls_on_a_tls_cluster() {
    let cluster = RedisCluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .tls()
        .start()
        .unwrap();
    // The bus and replication run over TLS, and the replicas synchronised
    // (the cluster started): over TLS.
    for node in cluster.nodes() {
        assert_eq!(config(node, "tls-cluster"), "yes");
        assert_eq!(config(node, "tls-replication"), "yes");
    }
    let urls = cluster.tls_urls();
    assert_eq!(urls.len(), 6);
    assert!(urls.iter().all(|u| u.starts_with("rediss://")));
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let opts = options(cluster.ca_cert().unwrap());

    // A TLS client is sent to the nodes' TLS ports (`CLUSTER SLOTS` as a
    // TLS client sees it).
    let mut raw = redis::cluster::ClusterClientBuilder::new(urls.clone())
        .certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: cluster.ca_cert(),
        })
        .build()
        .unwrap()
        .get_connection()
        .unwrap();
    let slots: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut raw).unwrap();
    for range in &slots {
        let redis::Value::Array(node) = &range[2] else {
            panic!("unexpected CLUSTER SLOTS row: {range:?}")
        };
        let port: u16 = redis::from_redis_value(node[1].clone()).unwrap();
        assert!(
            cluster.nodes().iter().any(|n| n.tls_port() == Some(port)),
            "CLUSTER SLOTS over TLS names the TLS port, not {port}"
        );
    }

    let mut blocking = opts.connect_cluster(&urls).unwrap();
    run_operations(&mut blocking, "tls-cluster-sync");
    runtime().block_on(async {
        let con = opts.connect_cluster_async(&urls).await.unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let mut con = con.clone();
                tokio::spawn(async move {
                    run_operations_async(&mut con, &format!("tls-cluster-async{t}")).await;
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        // A durable write waits for the primary's replica, over TLS.
        let mut con = con.clone();
        let id = unique_prefix("tls-cluster-durable");
        let (_, acked) = durable(item(&id, 7).save(), 1, Duration::from_secs(5))
            .run_async(&mut con)
            .await
            .unwrap();
        assert_eq!(acked, 1);
        // Without the test CA, the nodes' certificates are not trusted.
        let untrusted = ConnectionOptions::new()
            .connect_timeout(Duration::from_millis(500))
            .retries(0)
            .connect_cluster_async(&urls)
            .await;
        assert!(untrusted.is_err());
    });
    assert!(!format!("{opts:?}").contains("BEGIN CERTIFICATE"));
    assert!(!format!("{blocking:?}").contains("BEGIN CERTIFICATE"));
}

#[test]
fn operations_run_through_tls_sentinel_and_follow_a_failover() {
    let sentinel = RedisSentinel::start_with(&RedisServer::builder().tls(), 2, 3).unwrap();
    // The sentinels name the primary by its TLS port: they reach it over TLS.
    let reported = sentinel.reported_primary_port().unwrap();
    assert_eq!(Some(reported), sentinel.data().nodes()[0].tls_port());
    let urls = sentinel.sentinel_tls_urls();
    assert_eq!(urls.len(), 3);
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let opts = options(sentinel.ca_cert().unwrap());

    runtime().block_on(async {
        let mut con = opts
            .connect_sentinel_async(&urls, sentinel.service_name())
            .await
            .unwrap();
        run_operations_async(&mut con, "tls-sentinel-async").await;
        let id = unique_prefix("tls-sentinel");
        let (_, acked) = durable(item(&id, 1).save(), 2, Duration::from_secs(5))
            .run_async(&mut con)
            .await
            .unwrap();
        assert_eq!(acked, 2, "both replicas acknowledged over TLS");

        // A failover: the connection finds the new primary over TLS.
        let old = sentinel.failover().unwrap();
        let new = tokio::task::block_in_place(|| {
            sentinel
                .wait_for_promotion(old, Duration::from_secs(30))
                .unwrap()
        });
        assert_ne!(new, old);
        let mut saved = false;
        for _ in 0..50 {
            match durable(item(&id, 2).save(), 1, Duration::from_millis(500))
                .run_async(&mut con)
                .await
            {
                Ok(_) => {
                    saved = true;
                    break;
                }
                Err(e) => {
                    assert!(
                        e.is_connection_error() || matches!(e, Error::DurabilityShortfall { .. }),
                        "{e}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        assert!(saved, "a write reached the new primary");
        let primary = sentinel
            .data()
            .nodes()
            .iter()
            .find(|n| n.has_port(new))
            .unwrap();
        let n: Option<String> = primary
            .query(
                redis::cmd("HGET")
                    .arg(format!("{{tls-item}}:{id}"))
                    .arg("n"),
            )
            .unwrap();
        assert_eq!(n.as_deref(), Some("2"));
        assert!(!format!("{con:?}").contains("BEGIN CERTIFICATE"));
    });

    // The blocking Sentinel connection, over TLS too.
    let mut blocking = opts
        .connect_sentinel(&urls, sentinel.service_name())
        .unwrap();
    run_operations(&mut blocking, "tls-sentinel-sync");
}

#[test]
fn no_secret_in_tls_errors_or_debug_output() {
    let cluster = RedisCluster::builder().primaries(1).tls().start().unwrap();
    let node = &cluster.nodes()[0];
    node.query::<()>(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg("tls-s3cret-9931"),
    )
    .unwrap();
    let tls_port = node.tls_port().unwrap();
    let ca = cluster.ca_cert().unwrap();
    let pem = String::from_utf8(ca.clone()).unwrap();
    let pem_body = pem.lines().nth(1).unwrap().to_owned();
    let good = format!("rediss://:tls-s3cret-9931@127.0.0.1:{tls_port}/");
    let bad = format!("rediss://:tls-wr0ng-4471@127.0.0.1:{tls_port}/");
    let secrets = ["tls-s3cret-9931", "tls-wr0ng-4471", pem_body.as_str()];
    let opts = options(ca)
        .retries(0)
        .circuit_breaker(1, Duration::from_secs(60));
    let mut rendered: Vec<String> = vec![format!("{opts:?}")];
    runtime().block_on(async {
        // A wrong password: standalone, Cluster, Sentinel (a data node is
        // no sentinel), blocking and async.
        let e = opts.connect_async(bad.as_str()).await.unwrap_err();
        rendered.extend([e.to_string(), format!("{e:?}")]);
        let e = opts.connect(bad.as_str()).unwrap_err();
        rendered.extend([e.to_string(), format!("{e:?}")]);
        let e = opts
            .connect_cluster_async(&[bad.as_str()])
            .await
            .unwrap_err();
        rendered.extend([e.to_string(), format!("{e:?}")]);
        let e = opts
            .connect_sentinel_async(&[bad.as_str()], "mymaster")
            .await
            .unwrap_err();
        rendered.extend([e.to_string(), format!("{e:?}")]);

        // The right password, then the node goes away.
        let mut con = opts.connect_async(good.as_str()).await.unwrap();
        op::command::<i64>("INCR", "{tls}k")
            .run_async(&mut con)
            .await
            .unwrap();
        let mut blocking = opts.connect(good.as_str()).unwrap();
        rendered.extend([format!("{con:?}"), format!("{blocking:?}")]);
        let mut cluster = cluster;
        cluster.node_mut(0).unwrap().stop();
        for e in [
            op::command::<i64>("INCR", "{tls}k")
                .run_async(&mut con)
                .await
                .unwrap_err(),
            op::command::<i64>("INCR", "{tls}k")
                .run_async(&mut con)
                .await
                .unwrap_err(),
            op::command::<i64>("INCR", "{tls}k")
                .run(&mut blocking)
                .unwrap_err(),
            op::command::<i64>("INCR", "{tls}k")
                .run(&mut blocking)
                .unwrap_err(),
        ] {
            rendered.extend([e.to_string(), format!("{e:?}")]);
        }
    });
    assert!(rendered.len() >= 17);
    for text in &rendered {
        for secret in secrets {
            assert!(!text.contains(secret), "a secret in: {text}");
        }
    }
}
