//! `[state] backend = "redis_cluster"` against a real Redis Cluster: six
//! Debian `redis-server` processes (3 masters, 3 replicas) on loopback,
//! started by each test. Exact rate limits across two gateway processes
//! (a batch spanning slots too), a `kv` quota, the shared cache with purge,
//! and a master killed under load.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::Value;

use crate::support::client::{Reply, http1};
use crate::support::process::Process;
use crate::support::redis_cluster::RedisCluster;
use crate::support::*;

fn on_cluster(mut setup: Setup, cluster: &RedisCluster, policy: &str) -> Setup {
    for line in cluster.state_lines(policy) {
        setup = setup.state(&line);
    }
    setup
}

/// Every request goes to `backend`, limited by the rate-limit plugin with
/// `config`; `x-route` becomes the route.
fn limited(backend: &Backend, config: Value) -> Setup {
    Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [
            {"op": "set_upstream", "name": "backend"},
            {"op": "header_to_context", "header": "x-route", "key": "route"}]}),
        )
        .plugin("70-rate-limit", "weir_plugin_rate_limit", Some(config))
}

async fn fetch(method: Method, url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(&http1(), builder.body(weir::http::body::empty()).unwrap()).await
}

async fn status(url: &str, headers: &[(&str, &str)]) -> u16 {
    fetch(Method::GET, url, headers).await.status.as_u16()
}

/// The Redis key of the rate-limit plugin's limit `name` for `value`: the
/// plugin keys a limit `<name>\x1f<value>`, the host namespaces it with the
/// plugin's stem, and the cluster layout tags the whole key.
fn rate_key(name: &str, value: &str) -> String {
    format!("weir:rate:{{70-rate-limit/{name}\u{1f}{value}}}")
}

/// Two gateway processes on one cluster let exactly the limit through
/// together (100 requests alternating between them, 30 pass), so the
/// cluster holds one count for both.
#[tokio::test]
async fn two_gateway_processes_on_a_redis_cluster_enforce_one_exact_limit() {
    let cluster = RedisCluster::start();
    let backend = Backend::start().await;
    let config = json!({"limits": [{"name": "shared", "key": "route", "rate": 30, "per": "1h"}]});
    let setup = on_cluster(limited(&backend, config), &cluster, "fail_open");
    let path = setup.write();
    let (one, two) = (Process::start(&path).await, Process::start(&path).await);
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let url = if i % 2 == 0 {
                one.url("/")
            } else {
                two.url("/")
            };
            tokio::spawn(async move { status(&url, &[("x-route", "api")]).await })
        })
        .collect();
    let mut counts = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            200 => counts.0 += 1,
            429 => counts.1 += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(counts, (30, 70), "(allowed, refused) through a limit of 30");
    assert_eq!(backend.hits(), 30);
    // The count lives on the cluster, under the tagged key.
    let ttl = cluster.command(&["PTTL", &rate_key("shared", "api")]);
    assert!(ttl.trim().parse::<i64>().unwrap() > 0, "PTTL {ttl}");
}

/// Two limits whose keys live in different slots (so no one script can
/// hold them) are still charged all or nothing: requests refused by one
/// limit use up none of the other, and the other's count stays exact.
#[tokio::test]
async fn a_batch_spanning_cluster_slots_is_charged_all_or_nothing() {
    let cluster = RedisCluster::start();
    let backend = Backend::start().await;
    // `a` allows 2 per value, `b` 5 for its one shared value.
    let config = json!({"limits": [
        {"name": "a", "key": "header:x-a", "rate": 2, "per": "1h"},
        {"name": "b", "key": "header:x-b", "rate": 5, "per": "1h"}]});
    // Values of `a` whose keys live on another master than `b`'s key.
    let b_slot = cluster.slot_of(&rate_key("b", "shared"));
    let b_master = cluster.master_of_slot(b_slot).port;
    let values: Vec<String> = (0..1000)
        .map(|i| format!("v{i}"))
        .filter(|v| {
            let slot = cluster.slot_of(&rate_key("a", v));
            slot != b_slot && cluster.master_of_slot(slot).port != b_master
        })
        .take(2)
        .collect();
    let (first, second) = (values[0].as_str(), values[1].as_str());

    let setup = on_cluster(limited(&backend, config), &cluster, "fail_closed");
    let path = setup.write();
    let (one, two) = (Process::start(&path).await, Process::start(&path).await);
    let with = |a: &str| [("x-a", a.to_string()), ("x-b", "shared".to_string())];
    let ask = |gw: &Process, a: &str| {
        let url = gw.url("/");
        let headers = with(a);
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            status(&url, &h).await
        }
    };
    // `a=first` allows two (b: 2 of 5 used) …
    assert_eq!(ask(&one, first).await, 200);
    assert_eq!(ask(&two, first).await, 200);
    // … then refuses, on both gateways, without charging `b`.
    for gw in [&one, &two, &one, &two] {
        assert_eq!(ask(gw, first).await, 429);
    }
    // `b` has exactly 3 left: `a=second` gets 2 of them, and a third value
    // of `a` the last one, then `b` refuses.
    assert_eq!(ask(&two, second).await, 200);
    assert_eq!(ask(&one, second).await, 200);
    assert_eq!(ask(&one, "third").await, 200);
    assert_eq!(ask(&two, "fourth").await, 429);
    assert_eq!(backend.hits(), 5);
}

/// A plugin's `kv` quota holds across two gateways writing through the
/// cluster: the namespace's keys and bookkeeping share one slot, so the
/// quota script stays atomic and the total is exact.
#[tokio::test]
async fn a_kv_quota_is_enforced_through_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let backend = Backend::start().await;
    let setup = || {
        on_cluster(
            Setup::new()
                .upstream("backend", &[backend.url()])
                .budget("kv_max_keys = 5")
                .scripted(
                    "10-fill",
                    json!({"on_request": [
                        {"op": "kv_fill", "count": 3, "size": 10, "header": "x-fill"},
                        {"op": "set_upstream", "name": "backend"}]}),
                ),
            &cluster,
            "fail_open",
        )
    };
    let (one, two) = (setup().serve().await, setup().serve().await);
    // Different paths: different keys (the fixture names them by path).
    assert_eq!(get(&one.url("/a")).await.status, 200);
    assert_eq!(
        backend.last().unwrap().headers["x-fill"],
        "ok=3 quota=0 other=0"
    );
    assert_eq!(get(&two.url("/b")).await.status, 200);
    assert_eq!(
        backend.last().unwrap().headers["x-fill"],
        "ok=2 quota=1 other=0"
    );
    assert_eq!(get(&one.url("/c")).await.status, 200);
    assert_eq!(
        backend.last().unwrap().headers["x-fill"],
        "ok=0 quota=3 other=0"
    );
    // Five keys in the namespace's index, each stored, all in the
    // namespace's slot.
    let index = "weir:kvq:{10-fill}:index";
    let members = cluster.command(&["ZRANGE", index, "0", "-1"]);
    let members: Vec<&str> = members.lines().collect();
    assert_eq!(members.len(), 5, "{members:?}");
    for member in members {
        let key = format!("weir:kv:{{10-fill}}/{member}");
        assert_eq!(cluster.command(&["EXISTS", &key]).trim(), "1", "{key}");
        assert_eq!(cluster.slot_of(&key), cluster.slot_of(index));
    }
}

/// Router → cache, on the cluster.
fn cached(backend: &Backend, cluster: &RedisCluster) -> Setup {
    on_cluster(
        Setup::new()
            .upstream("backend", &[backend.url()])
            .router(json!({"routes": [
                {"name": "api", "match": {"path_prefix": "/"}, "upstream": "backend"}
            ]}))
            .plugin(
                "75-cache",
                "weir_plugin_cache",
                Some(json!({"routes": {"api": {}}})),
            ),
        cluster,
        "fail_open",
    )
}

fn outcome(reply: &Reply) -> &str {
    reply.header("x-cache").unwrap_or("(none)")
}

/// A response cached by one gateway is served by another from the
/// cluster, and a purge through one gateway's admin API (a `SCAN` sent to
/// the node owning the namespace's slot) empties it for both.
#[tokio::test]
async fn two_gateways_on_a_redis_cluster_share_the_cache_and_its_purge() {
    let cluster = RedisCluster::start();
    let backend = Backend::start().await;
    backend.serve_http(
        "/shared",
        200,
        &[("cache-control", "max-age=60"), ("etag", "\"s\"")],
        "one copy",
    );
    let setup = cached(&backend, &cluster);
    let path = setup.write();
    let (one, two) = (Process::start(&path).await, Process::start(&path).await);
    let first = fetch(Method::GET, &one.url("/shared"), &[]).await;
    assert_eq!(outcome(&first), "MISS");
    let second = fetch(Method::GET, &two.url("/shared"), &[]).await;
    assert_eq!(
        (outcome(&second), second.text().as_str()),
        ("HIT", "one copy")
    );
    let conditional = fetch(
        Method::GET,
        &two.url("/shared"),
        &[("if-none-match", "\"s\"")],
    )
    .await;
    assert_eq!(conditional.status, 304);
    assert_eq!(backend.hits(), 1);

    let purge = fetch(
        Method::POST,
        &one.admin_url("/admin/plugins/75-cache/kv/purge?pattern=*"),
        &[],
    )
    .await;
    assert_eq!(purge.status, 200, "{}", purge.text());
    assert!(
        purge.json()["purged"].as_u64().unwrap() >= 1,
        "{}",
        purge.text()
    );
    assert_eq!(
        outcome(&fetch(Method::GET, &two.url("/shared"), &[]).await),
        "MISS"
    );
    assert_eq!(backend.hits(), 2);
}

/// SIGKILL a master while requests flow through a rate limit: the gateway
/// keeps answering every request with a clean 200 or 429 (fail open while
/// the dead master's slots have no owner), within the call timeout; once
/// the replica has taken over, a fresh key on the promoted node is limited
/// exactly again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_killed_under_load_fails_over_and_limits_stay_exact() {
    let mut cluster = RedisCluster::start();
    let backend = Backend::start().await;
    let config =
        json!({"limits": [{"name": "t", "key": "header:x-tenant", "rate": 3, "per": "1h"}]});
    let setup = on_cluster(limited(&backend, config), &cluster, "fail_open");
    let path = setup.write();
    let mut gw = Process::start(&path).await;
    let url = gw.url("/");

    // Load: 4 tasks, sequential requests over 16 tenants, until told to stop
    // (at most 20 s).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|worker| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen: Vec<(Instant, u16)> = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut i = worker;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline
                {
                    let tenant = format!("load-{}", i % 16);
                    let answer = tokio::time::timeout(
                        Duration::from_secs(5),
                        status(&url, &[("x-tenant", tenant.as_str())]),
                    )
                    .await
                    .expect("the gateway answered within 5 s");
                    seen.push((Instant::now(), answer));
                    i += 4;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                seen
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    let killed = tokio::task::block_in_place(|| {
        let id = cluster.kill_master_of(&rate_key("t", "load-0"));
        cluster.wait_failover(&id);
        id
    });
    let failed_over_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = Vec::new();
    for task in load {
        seen.extend(task.await.unwrap());
    }
    assert!(gw.alive(), "the gateway died");
    let bad: Vec<u16> = seen
        .iter()
        .map(|(_, s)| *s)
        .filter(|s| *s != 200 && *s != 429)
        .collect();
    assert!(bad.is_empty(), "answers other than 200/429: {bad:?}");
    let during = seen
        .iter()
        .filter(|(at, _)| *at > killed_at && *at < failed_over_at)
        .count();
    assert!(
        during >= 20,
        "only {during} answers while the failover ran ({:?}, {} answers in all)",
        failed_over_at - killed_at,
        seen.len()
    );
    eprintln!(
        "failover of {killed} took {:?}; {} answers, {during} during it",
        failed_over_at - killed_at,
        seen.len()
    );

    // A fresh tenant whose key lives on the promoted replica is limited
    // exactly: 3 of 10 concurrent requests pass. The store may need a
    // moment to learn the new topology (fail open meanwhile), so probe
    // with fresh tenants until one is refused on its fourth request.
    let promoted = cluster.master_of_slot(cluster.slot_of(&rate_key("t", "load-0")));
    let on_promoted = |from: usize| {
        (from..10_000)
            .map(|i| format!("after-{i}"))
            .find(|t| promoted.owns(cluster.slot_of(&rate_key("t", t))))
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut next = 0;
    loop {
        let tenant = on_promoted(next);
        next = tenant
            .trim_start_matches("after-")
            .parse::<usize>()
            .unwrap()
            + 1;
        let h = [("x-tenant", tenant.as_str())];
        let statuses: Vec<u16> = futures::future::join_all((0..10).map(|_| status(&url, &h))).await;
        let ok = statuses.iter().filter(|s| **s == 200).count();
        if ok == 3 {
            assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7);
            eprintln!(
                "exact again {:?} after the failover ({tenant})",
                failed_over_at.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "limits were not exact after the failover: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And a tenant of the load keeps its count on the promoted node: it is
    // refused (its 3 were used before or during the failover).
    assert_eq!(status(&url, &[("x-tenant", "load-0")]).await, 429);
}

/// With no seed node answering, the gateway still starts (the cluster is
/// connected on first use) and rate limits follow the fail policy at once:
/// `fail_closed` refuses, without waiting on the unreachable cluster.
#[tokio::test]
async fn with_no_seed_node_answering_the_gateway_starts_and_follows_the_fail_policy() {
    let backend = Backend::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config =
        json!({"limits": [{"name": "t", "key": "header:x-tenant", "rate": 100, "per": "1h"}]});
    let gw = limited(&backend, config)
        .state("backend = \"redis_cluster\"")
        .state(&format!("nodes = [\"redis://127.0.0.1:{closed}\"]"))
        .state("timeout_ms = 200")
        .state("on_error = \"fail_closed\"")
        .serve()
        .await;
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(status(&gw.url("/"), &[("x-tenant", "t")]).await, 429);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the unreachable cluster slowed requests: {:?}",
        started.elapsed()
    );
    assert_eq!(backend.hits(), 0);
}
