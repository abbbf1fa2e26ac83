//! The default `rate-limit` plugin on the host's limiter: exact under
//! concurrency in memory and in Redis, shared by two gateway processes,
//! and following the fail policy through a Redis outage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::process::Process;
use crate::support::redis::RedisServer;
use crate::support::*;

/// Every request goes to `backend`; `x-consumer` becomes the consumer and
/// `x-route` the route, as auth and the router would set them.
fn limited(backend: &Backend, config: Value) -> Setup {
    Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [
            {"op": "set_upstream", "name": "backend"},
            {"op": "header_to_context", "header": "x-consumer", "key": "consumer"},
            {"op": "header_to_context", "header": "x-route", "key": "route"}]}),
        )
        .plugin("70-rate-limit", "weir_plugin_rate_limit", Some(config))
}

fn request_with(url: &str, headers: &[(&str, &str)]) -> http::Request<weir::http::body::Body> {
    let mut builder = http::Request::builder().uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(weir::http::body::empty()).unwrap()
}

async fn status(url: &str, headers: &[(&str, &str)]) -> u16 {
    send(&crate::support::client::http1(), request_with(url, headers))
        .await
        .status
        .as_u16()
}

/// Fire `n` requests at once; return how many got 200 and 429.
async fn burst(url: String, n: usize, headers: Vec<(String, String)>) -> (usize, usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let url = url.clone();
            let headers = headers.clone();
            tokio::spawn(async move {
                let h: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect();
                status(&url, &h).await
            })
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (ok, limited)
}

fn fifty_per_hour() -> Value {
    json!({"limits": [{"name": "global", "key": "route", "rate": 50, "per": "1h"}]})
}

#[tokio::test]
async fn exactly_the_limit_passes_200_concurrent_requests_in_memory() {
    let backend = Backend::start().await;
    let gw = limited(&backend, fifty_per_hour()).serve().await;
    let (ok, refused) = burst(gw.url("/"), 200, vec![("x-route".into(), "api".into())]).await;
    assert_eq!((ok, refused), (50, 150));
    assert_eq!(backend.hits(), 50);
}

#[tokio::test]
async fn refusals_are_429_with_retry_after_and_ratelimit_headers() {
    let backend = Backend::start().await;
    let gw = limited(
        &backend,
        json!({"limits": [{"name": "per-consumer", "key": "consumer", "rate": 2, "per": "1h"}]}),
    )
    .serve()
    .await;
    let alice = [("x-consumer", "alice")];
    let first = send(
        &crate::support::client::http1(),
        request_with(&gw.url("/"), &alice),
    )
    .await;
    assert_eq!(first.status, 200);
    // Allowed responses carry the quota too.
    assert_eq!(
        first.header("ratelimit-policy"),
        Some(r#""per-consumer";q=2;w=3600"#)
    );
    assert_eq!(
        first.header("ratelimit"),
        Some(r#""per-consumer";r=1;t=1800"#)
    );
    assert_eq!(status(&gw.url("/"), &alice).await, 200);
    let refused = send(
        &crate::support::client::http1(),
        request_with(&gw.url("/"), &alice),
    )
    .await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("1800"));
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some(r#""per-consumer";q=2;w=3600"#)
    );
    assert_eq!(
        refused.header("ratelimit"),
        Some(r#""per-consumer";r=0;t=3600"#)
    );
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(refused.json()["error"], "rate limit exceeded");
    assert_eq!(refused.json()["limit"], "per-consumer");
    // Another consumer has its own quota; no consumer: the limit does not apply.
    assert_eq!(status(&gw.url("/"), &[("x-consumer", "bob")]).await, 200);
    assert_eq!(status(&gw.url("/"), &[]).await, 200);
    assert_eq!(backend.hits(), 4);
}

#[tokio::test]
async fn all_limits_must_allow_and_a_refusal_charges_none() {
    let backend = Backend::start().await;
    let config = json!({"limits": [
        {"name": "per-tenant", "key": "header:x-tenant", "rate": 2, "per": "1h"},
        {"name": "whole-route", "key": "route", "rate": 4, "per": "1h"}
    ]});
    let gw = limited(&backend, config).serve().await;
    let as_tenant = |t: &'static str| [("x-tenant", t), ("x-route", "orders")];
    let mut a = Vec::new();
    for _ in 0..5 {
        a.push(status(&gw.url("/"), &as_tenant("a")).await);
    }
    assert_eq!(a, [200, 200, 429, 429, 429]);
    // Tenant a's refusals did not use the route's quota: b gets its two.
    assert_eq!(status(&gw.url("/"), &as_tenant("b")).await, 200);
    assert_eq!(status(&gw.url("/"), &as_tenant("b")).await, 200);
    // Now the route's 4 are used: c is refused by the route limit.
    let refused = send(
        &crate::support::client::http1(),
        request_with(&gw.url("/"), &as_tenant("c")),
    )
    .await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["limit"], "whole-route");
    assert_eq!(backend.hits(), 4);
}

#[tokio::test]
async fn limits_can_apply_to_some_routes_and_combine_keys() {
    let backend = Backend::start().await;
    let config = json!({"limits": [
        {"name": "orders-per-consumer", "key": ["consumer", "route"], "rate": 1, "per": "1h", "routes": ["orders"]}
    ]});
    let gw = limited(&backend, config).serve().await;
    let h = |route: &'static str, consumer: &'static str| {
        [("x-route", route), ("x-consumer", consumer)]
    };
    assert_eq!(status(&gw.url("/"), &h("orders", "alice")).await, 200);
    assert_eq!(status(&gw.url("/"), &h("orders", "alice")).await, 429);
    assert_eq!(status(&gw.url("/"), &h("orders", "bob")).await, 200);
    // Other routes are not limited.
    for _ in 0..3 {
        assert_eq!(status(&gw.url("/"), &h("users", "alice")).await, 200);
    }
}

#[tokio::test]
async fn client_ip_honours_forwarded_for_only_from_trusted_proxies() {
    let backend = Backend::start().await;
    let per_ip = |trusted: Value| json!({"trusted_proxies": trusted, "limits": [{"key": "client_ip", "rate": 1, "per": "1h"}]});
    // The test client is 127.0.0.1: trusted, so each forwarded client counts alone.
    let gw = limited(&backend, per_ip(json!(["127.0.0.1/32"])))
        .serve()
        .await;
    assert_eq!(
        status(&gw.url("/"), &[("x-forwarded-for", "198.51.100.1")]).await,
        200
    );
    assert_eq!(
        status(&gw.url("/"), &[("x-forwarded-for", "198.51.100.2")]).await,
        200
    );
    assert_eq!(
        status(&gw.url("/"), &[("x-forwarded-for", "198.51.100.1")]).await,
        429
    );
    // Not trusted: the header is ignored, all requests are 127.0.0.1's.
    let gw = limited(&backend, per_ip(json!([]))).serve().await;
    assert_eq!(
        status(&gw.url("/"), &[("x-forwarded-for", "198.51.100.1")]).await,
        200
    );
    assert_eq!(
        status(&gw.url("/"), &[("x-forwarded-for", "198.51.100.2")]).await,
        429
    );
}

#[tokio::test]
async fn bad_limit_configs_are_refused_naming_the_limit() {
    let backend = Backend::start().await;
    for (config, expected) in [
        (
            json!({"limits": [{"name": "x", "key": "ip", "rate": 1, "per": "1s"}]}),
            "limit `x`",
        ),
        (
            json!({"limits": [{"name": "x", "key": "consumer", "rate": 1, "per": "1w"}]}),
            "unit",
        ),
        (
            json!({"limits": [{"name": "x", "key": "consumer", "rate": 0, "per": "1s"}]}),
            "rate",
        ),
        (
            json!({"trusted_proxies": ["10.0.0.0/99"], "limits": []}),
            "prefix",
        ),
    ] {
        let err = limited(&backend, config)
            .try_gateway()
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(expected), "{err}");
    }
}

// ---- Redis ----

fn redis_state(setup: Setup, redis: &RedisServer, policy: &str) -> Setup {
    setup
        .state("backend = \"redis\"")
        .state(&format!("url = {:?}", redis.url()))
        .state("timeout_ms = 200")
        .state(&format!("on_error = {policy:?}"))
}

#[tokio::test]
async fn exactly_the_limit_passes_200_concurrent_requests_with_redis() {
    let redis = RedisServer::start();
    let backend = Backend::start().await;
    let gw = redis_state(limited(&backend, fifty_per_hour()), &redis, "fail_open")
        .serve()
        .await;
    let (ok, refused) = burst(gw.url("/"), 200, vec![("x-route".into(), "api".into())]).await;
    assert_eq!((ok, refused), (50, 150));
    assert_eq!(backend.hits(), 50);
}

#[tokio::test]
async fn two_gateway_processes_sharing_redis_enforce_one_limit() {
    let redis = RedisServer::start();
    let backend = Backend::start().await;
    let config = json!({"limits": [{"name": "shared", "key": "route", "rate": 30, "per": "1h"}]});
    let setup = redis_state(limited(&backend, config), &redis, "fail_open");
    let path = setup.write();
    let (one, two) = (Process::start(&path).await, Process::start(&path).await);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let url = if i % 2 == 0 {
            one.url("/")
        } else {
            two.url("/")
        };
        tasks.push(tokio::spawn(async move {
            status(&url, &[("x-route", "api")]).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(
        ok, 30,
        "the two gateways together let {ok} requests through a limit of 30"
    );
    assert_eq!(backend.hits(), 30);
}

/// Probe with fresh tenants until a tenant limit of two per hour refuses the
/// third request again: limiting works.
async fn until_limiting_works(gw: &Running) {
    let deadline = Instant::now() + Duration::from_secs(15);
    for i in 0.. {
        let tenant = format!("probe-{i}");
        let h = [("x-tenant", tenant.as_str())];
        let first = status(&gw.url("/"), &h).await;
        let _second = status(&gw.url("/"), &h).await;
        let third = status(&gw.url("/"), &h).await;
        if first == 200 && third == 429 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "limiting did not resume after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_redis_outage_fails_open_then_limiting_resumes() {
    let mut redis = RedisServer::start();
    let backend = Backend::start().await;
    let config = json!({"limits": [{"key": "header:x-tenant", "rate": 2, "per": "1h"}]});
    let gw = redis_state(limited(&backend, config), &redis, "fail_open")
        .serve()
        .await;
    let h = [("x-tenant", "t")];
    assert_eq!(status(&gw.url("/"), &h).await, 200);
    assert_eq!(status(&gw.url("/"), &h).await, 200);
    assert_eq!(status(&gw.url("/"), &h).await, 429);

    redis.stop();
    // Fail open: everything passes, quickly (a down Redis costs no waits).
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(status(&gw.url("/"), &h).await, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the outage slowed requests: {:?}",
        started.elapsed()
    );

    redis.restart();
    until_limiting_works(&gw).await;
    // Redis lost its data on restart: the tenant's count starts again.
    let url = gw.url("/");
    let after = [("x-tenant", "after")];
    let statuses: Vec<u16> = futures::future::join_all((0..4).map(|_| status(&url, &after))).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_redis_outage_fails_closed_when_configured() {
    let mut redis = RedisServer::start();
    let backend = Backend::start().await;
    let config = json!({"limits": [{"key": "header:x-tenant", "rate": 100, "per": "1h"}]});
    let gw = Arc::new(
        redis_state(limited(&backend, config), &redis, "fail_closed")
            .serve()
            .await,
    );
    assert_eq!(status(&gw.url("/"), &[("x-tenant", "t")]).await, 200);
    redis.stop();
    for _ in 0..5 {
        assert_eq!(status(&gw.url("/"), &[("x-tenant", "t")]).await, 429);
    }
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while status(&gw.url("/"), &[("x-tenant", "t")]).await != 200 {
        assert!(
            Instant::now() < deadline,
            "requests were still refused after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(backend.hits(), 2);
}

#[tokio::test]
async fn kv_lives_in_redis_and_is_shared_by_gateways() {
    let redis = RedisServer::start();
    let backend = Backend::start().await;
    let counting = || {
        redis_state(
            Setup::new().upstream("backend", &[backend.url()]).scripted(
                "10-count",
                json!({"on_request": [
                    {"op": "kv_incr", "key": "visits", "header": "x-visits"},
                    {"op": "set_upstream", "name": "backend"}]}),
            ),
            &redis,
            "fail_open",
        )
    };
    let (one, two) = (counting().serve().await, counting().serve().await);
    for (gw, expected) in [(&one, "1"), (&two, "2"), (&one, "3")] {
        assert_eq!(get(&gw.url("/")).await.status, 200);
        assert_eq!(backend.last().unwrap().headers["x-visits"], expected);
    }
}
