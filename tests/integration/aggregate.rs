//! The default `aggregate` plugin: one client request, several upstream
//! calls (in parallel where independent), one JSON document.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// `users`, `orders` and `billing` backends, with documents to serve.
struct Three {
    users: Backend,
    orders: Backend,
    billing: Backend,
}

impl Three {
    async fn start() -> Three {
        let three = Three {
            users: Backend::start().await,
            orders: Backend::start().await,
            billing: Backend::start().await,
        };
        three.users.serve_json(
            "/users/7",
            &json!({"id": 7, "name": "Ada", "plan_id": "gold", "secret": "s"}),
        );
        three
            .orders
            .serve_json("/orders", &json!([{"id": 1}, {"id": 2}]));
        three
            .billing
            .serve_json("/plans/gold", &json!({"id": "gold", "price": 10}));
        three
    }

    fn setup(&self, endpoint: Value) -> Setup {
        Setup::new()
            .limit("hook_deadline_ms = 5000")
            .upstream("users", &[self.users.url()])
            .upstream("orders", &[self.orders.url()])
            .upstream("billing", &[self.billing.url()])
            .plugin(
                "40-aggregate",
                "weir_plugin_aggregate",
                Some(json!({"endpoints": [endpoint]})),
            )
            .scripted(
                "90-fallback",
                json!({"on_request": [{"op": "respond", "status": 299, "body": "fell through"}]}),
            )
    }
}

fn summary(calls: Value) -> Value {
    json!({
        "path": "/users/{id}/summary",
        "calls": calls,
        "forward_headers": ["authorization", "accept-language"],
        "select": {"user": ["/id", "/name", "/plan_id"]}
    })
}

fn standard_calls() -> Value {
    json!({
        "user": {"upstream": "users", "path": "/users/{id}"},
        "orders": {"upstream": "orders", "path": "/orders?user={id}&limit=5", "optional": true, "timeout_ms": 300},
        "plan": {"upstream": "billing", "path": "/plans/{user.plan_id}", "after": "user"}
    })
}

#[tokio::test]
async fn the_merged_document_is_exactly_as_configured() {
    let b = Three::start().await;
    let gw = b.setup(summary(standard_calls())).serve().await;
    let reply = get(&gw.url("/users/7/summary")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-weir-partial"), None);
    assert_eq!(
        reply.json(),
        json!({
            "user": {"id": 7, "name": "Ada", "plan_id": "gold"},
            "orders": [{"id": 1}, {"id": 2}],
            "plan": {"id": "gold", "price": 10}
        })
    );
    // Captures filled the call paths; the dependent call used the field.
    assert_eq!(
        b.orders.last().unwrap().path_and_query,
        "/orders?user=7&limit=5"
    );
    assert_eq!(b.billing.last().unwrap().path_and_query, "/plans/gold");
}

#[tokio::test]
async fn independent_calls_run_in_parallel() {
    let b = Three::start().await;
    for backend in [&b.users, &b.orders, &b.billing] {
        backend.set_delay(200);
    }
    b.billing.serve_json("/plans", &json!({"plans": []}));
    let gw = b
        .setup(summary(json!({
            "user": {"upstream": "users", "path": "/users/{id}"},
            "orders": {"upstream": "orders", "path": "/orders"},
            "plans": {"upstream": "billing", "path": "/plans"}
        })))
        .serve()
        .await;
    let started = Instant::now();
    let reply = get(&gw.url("/users/7/summary")).await;
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(took >= Duration::from_millis(200), "{took:?}");
    // Sequential calls would take 600 ms.
    assert!(
        took < Duration::from_millis(350),
        "three 200 ms calls took {took:?}"
    );
}

#[tokio::test]
async fn an_optional_failure_is_null_with_errors_and_a_partial_header() {
    let b = Three::start().await;
    b.orders.set_failing(500);
    let gw = b.setup(summary(standard_calls())).serve().await;
    let reply = get(&gw.url("/users/7/summary")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-weir-partial"), Some("true"));
    let body = reply.json();
    assert_eq!(body["orders"], Value::Null);
    assert_eq!(body["_errors"]["orders"], "status 500");
    assert_eq!(body["user"]["name"], "Ada");
}

#[tokio::test]
async fn an_optional_timeout_is_null_too() {
    let b = Three::start().await;
    b.orders.set_delay(2_000);
    let gw = b.setup(summary(standard_calls())).serve().await;
    let started = Instant::now();
    let reply = get(&gw.url("/users/7/summary")).await;
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["_errors"]["orders"], "timed out");
}

#[tokio::test]
async fn a_required_failure_is_502_naming_the_call() {
    let b = Three::start().await;
    b.users.set_failing(503);
    let gw = b.setup(summary(standard_calls())).serve().await;
    let reply = get(&gw.url("/users/7/summary")).await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.json(),
        json!({"error": "upstream call failed", "call": "user", "cause": "status 503"})
    );
    // The dependent call was never made.
    assert_eq!(b.billing.hits(), 0);
}

#[tokio::test]
async fn a_required_timeout_is_504_naming_the_call() {
    let b = Three::start().await;
    b.billing.set_delay(2_000);
    let mut calls = standard_calls();
    calls["plan"]["timeout_ms"] = json!(200);
    let gw = b.setup(summary(calls)).serve().await;
    let reply = get(&gw.url("/users/7/summary")).await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.json()["call"], "plan");
    assert_eq!(reply.json()["error"], "upstream call timed out");
}

#[tokio::test]
async fn invalid_json_and_oversized_bodies_are_clear_errors() {
    let b = Three::start().await;
    // The users backend answers its default route with plain text.
    let mut endpoint = summary(json!({"user": {"upstream": "users", "path": "/plain"}}));
    let gw = b.setup(endpoint.clone()).serve().await;
    let reply = get(&gw.url("/users/7/summary")).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["call"], "user");
    assert!(
        reply.json()["cause"]
            .as_str()
            .unwrap()
            .starts_with("response is not JSON"),
        "{}",
        reply.text()
    );

    b.users
        .serve_json("/big", &json!({"blob": "x".repeat(4096)}));
    endpoint["calls"] = json!({"user": {"upstream": "users", "path": "/big"}});
    endpoint["max_body_bytes"] = json!(1024);
    let gw = b.setup(endpoint).serve().await;
    let reply = get(&gw.url("/users/7/summary")).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["cause"], "response larger than 1024 bytes");
}

#[tokio::test]
async fn only_listed_headers_are_forwarded_to_calls() {
    let b = Three::start().await;
    let gw = b.setup(summary(standard_calls())).serve().await;
    let req = http::Request::builder()
        .uri(gw.url("/users/7/summary"))
        .header("authorization", "Bearer t")
        .header("accept-language", "fr")
        .header("cookie", "session=secret")
        .header("x-internal", "1")
        .body(weir::http::body::empty())
        .unwrap();
    assert_eq!(
        send(&crate::support::client::http1(), req).await.status,
        200
    );
    for backend in [&b.users, &b.orders, &b.billing] {
        let seen = backend.last().unwrap();
        assert_eq!(seen.headers["authorization"], "Bearer t");
        assert_eq!(seen.headers["accept-language"], "fr");
        assert!(seen.headers.get("cookie").is_none());
        assert!(seen.headers.get("x-internal").is_none());
    }
}

#[tokio::test]
async fn requests_matching_no_endpoint_pass_on_untouched() {
    let b = Three::start().await;
    let gw = b.setup(summary(standard_calls())).serve().await;
    for path in ["/users/7", "/users/7/summary/extra", "/other"] {
        let reply = get(&gw.url(path)).await;
        assert_eq!(reply.status, 299, "{path}");
        assert_eq!(reply.text(), "fell through");
    }
    let reply = send(
        &crate::support::client::http1(),
        request(http::Method::POST, &gw.url("/users/7/summary"), ""),
    )
    .await;
    assert_eq!(reply.status, 299);
    assert_eq!(b.users.hits() + b.orders.hits() + b.billing.hits(), 0);
}

#[tokio::test]
async fn router_routes_without_upstream_name_aggregate_endpoints() {
    let b = Three::start().await;
    let gw = Setup::new()
        .upstream("users", &[b.users.url()])
        .upstream("orders", &[b.orders.url()])
        .upstream("billing", &[b.billing.url()])
        .router(json!({"routes": [
            {"name": "user-summary", "match": {"path": "/users/{id}/summary"}},
            {"name": "user", "match": {"path": "/users/{id}"}, "upstream": "users"}
        ]}))
        .scripted("55-seen", json!({"on_response": [{"op": "context_to_header", "key": "route", "header": "x-route"}]}))
        .plugin("80-aggregate", "weir_plugin_aggregate", Some(json!({"endpoints": [summary(standard_calls())]})))
        .serve()
        .await;
    let reply = get(&gw.url("/users/7/summary")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["plan"]["price"], 10);
    // The route named the request for the plugins in between.
    assert_eq!(reply.header("x-route"), Some("user-summary"));
    assert_eq!(get(&gw.url("/users/7")).await.status, 200);
}

/// An endpoint that names the router's route answers only requests the
/// router sent to that route; when every endpoint names one, the plugin
/// declares them (contract 0.5.0's `interest.only-routes`) and the gateway
/// calls it on no other route.
#[tokio::test]
async fn endpoints_naming_a_route_answer_on_it_only_and_are_declared() {
    let b = Three::start().await;
    let mut endpoint = summary(standard_calls());
    endpoint["route"] = json!("user-summary");
    let orders = json!({
        "path": "/orders/{id}/summary",
        "route": "orders-summary",
        "calls": {"orders": {"upstream": "orders", "path": "/orders"}}
    });
    let router = |summary_route: &str| {
        json!({"routes": [
            {"name": summary_route, "match": {"path": "/users/{id}/summary"}},
            {"name": "orders-summary", "match": {"path": "/orders/{id}/summary"}},
            {"name": "user", "match": {"path": "/users/{id}"}, "upstream": "users"}
        ]})
    };
    let setup =
        |summary_route: &str| {
            Setup::new()
            .limit("hook_deadline_ms = 5000")
            .upstream("users", &[b.users.url()])
            .upstream("orders", &[b.orders.url()])
            .upstream("billing", &[b.billing.url()])
            .plugin("10-router", "weir_plugin_router", Some(router(summary_route)))
            .plugin(
                "40-aggregate",
                "weir_plugin_aggregate",
                Some(json!({"endpoints": [endpoint.clone(), orders.clone()]})),
            )
            .scripted(
                "90-fallback",
                json!({"on_request": [{"op": "respond", "status": 299, "body": "fell through"}]}),
            )
        };
    let gw = setup("user-summary").serve().await;
    let pipeline = gw.gateway.pipeline();
    assert_eq!(
        pipeline.plugins()[1].routes(),
        Some(&["user-summary".to_string(), "orders-summary".to_string()][..])
    );
    let reply = get(&gw.url("/users/7/summary")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["user"]["name"], "Ada");
    // Another route: the plugin is not in its chain.
    assert_eq!(get(&gw.url("/users/7")).await.status, 299);

    // The router names the path `orders-summary`: the plugin is called (it
    // declared that route), but the endpoint for the path wants
    // `user-summary`, so the request passes on.
    let gw = setup("orders-summary").serve().await;
    let reply = get(&gw.url("/users/7/summary")).await;
    assert_eq!(reply.status, 299, "{}", reply.text());
}
