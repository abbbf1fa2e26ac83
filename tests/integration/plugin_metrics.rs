//! Metrics plugins emit through the `metrics` capability: the default
//! auth, rate-limit and aggregate plugins (Rust) and the Python example
//! count exactly the requests of a known mix, under bounded labels.

use http::Method;
use serde_json::Value;
use sha2::Digest;

use crate::support::client::{Reply, http1};
use crate::support::jwt::{claims, sign};
use crate::support::plugin_metrics::{expected, samples};
use crate::support::toolchains;
use crate::support::*;

const KEY: &str = "alice-key-0123456789";

/// A port nothing listens on.
fn closed_port() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

async fn call(url: &str, method: Method, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(weir::http::body::full(body.to_string()))
        .unwrap();
    send(&http1(), request).await
}

async fn status(url: &str, headers: &[(&str, &str)]) -> u16 {
    call(url, Method::GET, headers, "").await.status.as_u16()
}

/// The demo's chain: router, auth, rate-limit and aggregate, on `users`,
/// `orders` and `slow` backends, an upstream nothing listens on (`down`)
/// and an aggregate call to an upstream that is not configured.
fn demo(users: &Backend, orders: &Backend, slow: &Backend) -> Setup {
    let routes = json!({"routes": [
        {"name": "public", "match": {"path_prefix": "/public"}, "upstream": "users"},
        {"name": "orders", "match": {"path_prefix": "/orders"}, "upstream": "orders"},
        {"name": "admin", "match": {"path_prefix": "/admin"}, "upstream": "orders"},
        {"name": "user-summary", "match": {"path": "/users/{id}/summary"}}
    ]});
    let auth = json!({
        "api_key": {"consumers": [
            {"id": "alice", "sha256": hex::encode(sha2::Sha256::digest(KEY.as_bytes())), "scopes": ["orders:read"]}
        ]},
        "jwt": {"issuer": "https://idp.test", "audiences": ["weir-api"], "jwks": jwt::jwks()},
        "routes": {
            "public": {"public": true},
            "admin": {"methods": ["api_key", "jwt"], "scopes": ["admin"]}
        }
    });
    let limits = json!({"limits": [
        {"name": "per-consumer", "key": "consumer", "rate": 3, "per": "1h", "routes": ["orders"]},
        {"name": "summaries", "key": "route", "rate": 2, "per": "1h", "routes": ["user-summary"]}
    ]});
    let aggregate = json!({"endpoints": [{
        "path": "/users/{id}/summary",
        "calls": {
            "user": {"upstream": "users", "path": "/users/{id}"},
            "orders": {"upstream": "orders", "path": "/orders/of/{id}", "optional": true},
            "greeting": {"upstream": "users", "path": "/plain", "optional": true},
            "slow": {"upstream": "slow", "path": "/slow?ms=5000", "optional": true, "timeout_ms": 100},
            "plan": {"upstream": "down", "path": "/plans/{id}", "optional": true},
            "price": {"upstream": "users", "path": "/prices/{plan.id}", "optional": true},
            "audit": {"upstream": "nowhere", "path": "/audit", "optional": true}
        }
    }]});
    Setup::new()
        .limit("hook_deadline_ms = 5000")
        .upstream("users", &[users.url()])
        .upstream("orders", &[orders.url()])
        .upstream("slow", &[slow.url()])
        .upstream("down", &[closed_port()])
        .router(routes)
        .plugin("60-auth", "weir_plugin_auth", Some(auth))
        .plugin("70-rate-limit", "weir_plugin_rate_limit", Some(limits))
        .plugin("80-aggregate", "weir_plugin_aggregate", Some(aggregate))
}

#[tokio::test]
async fn default_plugins_count_a_known_mix_exactly() {
    let (users, orders, slow) = (
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    );
    users.serve_json("/users/7", &json!({"id": 7, "name": "Ada"}));
    orders.serve_http("/orders/of/7", 500, &[], "down for maintenance");
    let gw = demo(&users, &orders, &slow).serve().await;
    let alice = [("x-api-key", KEY)];
    let bob = format!("Bearer {}", sign("ES256", &claims("bob")));
    let bob = [("authorization", bob.as_str())];

    // Before any request, no plugin has counted anything.
    for family in [
        "weir_plugin_auth_outcomes_total",
        "weir_plugin_rate_limit_refusals_total",
        "weir_plugin_aggregate_calls_total",
    ] {
        assert_eq!(samples(&gw, family), expected(&[]), "{family}");
    }

    // Public: nothing checked.
    assert_eq!(status(&gw.url("/public/a"), &[]).await, 200);
    // Alice's key five times: three pass her limit, two are refused.
    let mut alice_statuses = Vec::new();
    for _ in 0..5 {
        alice_statuses.push(status(&gw.url("/orders"), &alice).await);
    }
    assert_eq!(alice_statuses, [200, 200, 200, 429, 429]);
    // Bob's token once.
    assert_eq!(status(&gw.url("/orders"), &bob).await, 200);
    // No credential, a wrong key, a malformed token.
    assert_eq!(status(&gw.url("/orders"), &[]).await, 401);
    assert_eq!(
        status(&gw.url("/orders"), &[("x-api-key", "wrong")]).await,
        401
    );
    assert_eq!(
        status(
            &gw.url("/orders"),
            &[("authorization", "Bearer not.a.token")]
        )
        .await,
        401
    );
    // Valid credentials without the `admin` scope.
    assert_eq!(status(&gw.url("/admin"), &alice).await, 403);
    assert_eq!(status(&gw.url("/admin"), &bob).await, 403);
    // Three summaries: two are aggregated, the third is over its limit.
    for _ in 0..2 {
        let reply = call(&gw.url("/users/7/summary"), Method::GET, &bob, "").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["user"]["name"], "Ada");
        assert_eq!(reply.header("x-weir-partial"), Some("true"));
    }
    assert_eq!(status(&gw.url("/users/7/summary"), &bob).await, 429);

    assert_eq!(
        samples(&gw, "weir_plugin_auth_outcomes_total"),
        expected(&[
            (r#"{plugin="60-auth",method="none",outcome="public"}"#, 1.0),
            (
                r#"{plugin="60-auth",method="api_key",outcome="allowed"}"#,
                5.0
            ),
            (r#"{plugin="60-auth",method="jwt",outcome="allowed"}"#, 4.0),
            (r#"{plugin="60-auth",method="none",outcome="missing"}"#, 1.0),
            (
                r#"{plugin="60-auth",method="api_key",outcome="invalid"}"#,
                1.0
            ),
            (r#"{plugin="60-auth",method="jwt",outcome="invalid"}"#, 1.0),
            (
                r#"{plugin="60-auth",method="api_key",outcome="forbidden"}"#,
                1.0
            ),
            (
                r#"{plugin="60-auth",method="jwt",outcome="forbidden"}"#,
                1.0
            ),
        ])
    );
    assert_eq!(
        samples(&gw, "weir_plugin_rate_limit_refusals_total"),
        expected(&[
            (r#"{plugin="70-rate-limit",limit="per-consumer"}"#, 2.0),
            (r#"{plugin="70-rate-limit",limit="summaries"}"#, 1.0),
        ])
    );
    assert_eq!(
        samples(&gw, "weir_plugin_aggregate_calls_total"),
        expected(&[
            (
                r#"{plugin="80-aggregate",upstream="users",outcome="ok"}"#,
                2.0
            ),
            (
                r#"{plugin="80-aggregate",upstream="orders",outcome="status"}"#,
                2.0
            ),
            (
                r#"{plugin="80-aggregate",upstream="users",outcome="invalid"}"#,
                2.0
            ),
            (
                r#"{plugin="80-aggregate",upstream="slow",outcome="timeout"}"#,
                2.0
            ),
            (
                r#"{plugin="80-aggregate",upstream="down",outcome="error"}"#,
                2.0
            ),
            (
                r#"{plugin="80-aggregate",upstream="users",outcome="skipped"}"#,
                2.0
            ),
            (
                r#"{plugin="80-aggregate",upstream="nowhere",outcome="refused"}"#,
                2.0
            ),
        ])
    );
    // Nothing was folded: every label set is one the plugins chose.
    assert_eq!(
        samples(&gw, "weir_plugin_metric_series_folded_total"),
        expected(&[])
    );
}

#[tokio::test]
async fn calls_made_after_a_required_failure_are_counted_too() {
    let (users, orders, slow) = (
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    );
    orders.serve_json("/orders", &json!([]));
    let gw = Setup::new()
        .upstream("users", &[users.url()])
        .upstream("orders", &[orders.url()])
        .upstream("slow", &[slow.url()])
        .plugin(
            "80-aggregate",
            "weir_plugin_aggregate",
            Some(json!({"endpoints": [{
                "path": "/summary",
                "calls": {
                    "a_user": {"upstream": "users", "path": "/status/500"},
                    "b_orders": {"upstream": "orders", "path": "/orders"},
                    "c_next": {"upstream": "slow", "path": "/later", "after": "b_orders"}
                }
            }]})),
        )
        .serve()
        .await;
    let reply = get(&gw.url("/summary")).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.json()["call"], "a_user");
    // Both calls of the first stage were made and are counted; the next
    // stage never ran, so its call is not.
    assert_eq!(
        samples(&gw, "weir_plugin_aggregate_calls_total"),
        expected(&[
            (
                r#"{plugin="80-aggregate",upstream="users",outcome="status"}"#,
                1.0
            ),
            (
                r#"{plugin="80-aggregate",upstream="orders",outcome="ok"}"#,
                1.0
            ),
        ])
    );
    assert_eq!(slow.hits(), 0);
}

fn example_config(dir: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(dir)
        .join("config.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_python_example_counts_what_it_checks() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .limit("max_body_bytes = 1024")
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin_file(
            "45-python-validator",
            toolchains::python_validator(),
            Some(example_config("python-validator")),
        )
        .serve()
        .await;
    let post = |path: &str, body: &str| {
        let url = gw.url(path);
        let body = body.to_string();
        async move {
            call(
                &url,
                Method::POST,
                &[("content-type", "application/json")],
                &body,
            )
            .await
        }
    };

    for _ in 0..2 {
        let reply = post("/orders", r#"{"item": "tea", "quantity": 2}"#).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    for body in [
        r#"{}"#,
        r#"{"item": "", "quantity": 1}"#,
        r#"{"item": "tea", "quantity": 0}"#,
    ] {
        assert_eq!(post("/orders", body).await.status, 422, "{body}");
    }
    assert_eq!(post("/orders", "not json").await.status, 422);
    let huge = format!(r#"{{"item": "{}", "quantity": 1}}"#, "x".repeat(4096));
    let too_large = post("/orders", &huge).await;
    assert_eq!(too_large.status, 413, "{}", too_large.text());
    // Not checked (not under `/orders`), so not counted.
    assert_eq!(post("/other", "not json").await.status, 200);

    assert_eq!(
        samples(&gw, "weir_plugin_python_validator_checked_total"),
        expected(&[
            (r#"{plugin="45-python-validator",outcome="valid"}"#, 2.0),
            (r#"{plugin="45-python-validator",outcome="invalid"}"#, 3.0),
            (r#"{plugin="45-python-validator",outcome="not_json"}"#, 1.0),
            (r#"{plugin="45-python-validator",outcome="too_large"}"#, 1.0),
        ])
    );
}
