//! The default `router` plugin through the real gateway: matching,
//! rewriting, header edits, context for later plugins, 404 and 405.

use http::Method;

use crate::support::*;

/// Three backends behind three upstreams, and a router over them.
struct Three {
    users: Backend,
    orders: Backend,
    legacy: Backend,
}

impl Three {
    async fn start() -> Three {
        Three {
            users: Backend::start().await,
            orders: Backend::start().await,
            legacy: Backend::start().await,
        }
    }

    fn setup(&self, routes: serde_json::Value) -> Setup {
        Setup::new()
            .upstream("users", &[self.users.url()])
            .upstream("orders", &[self.orders.url()])
            .upstream("legacy", &[self.legacy.url()])
            .router(json!({ "routes": routes }))
    }
}

fn with_headers(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> http::Request<weir::http::body::Body> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(weir::http::body::empty()).unwrap()
}

#[tokio::test]
async fn template_captures_and_rewrites_arrive_as_configured() {
    let b = Three::start().await;
    let gw = b
        .setup(json!([
            {"name": "user", "match": {"path": "/users/{id}", "methods": ["GET"]}, "upstream": "users",
             "rewrite": "/v2/users/{id}"},
            {"name": "files", "match": {"path": "/users/{id}/files/{*path}"}, "upstream": "users",
             "rewrite": "/store/{id}/{path}"},
            {"name": "orders", "match": {"path_prefix": "/orders"}, "upstream": "orders", "strip_prefix": true},
            {"name": "legacy", "match": {"path_regex": "^/old/(.*)$"}, "upstream": "legacy", "rewrite": "/new/{1}"}
        ]))
        .serve()
        .await;

    assert_eq!(get(&gw.url("/users/7?full=1")).await.status, 200);
    assert_eq!(b.users.last().unwrap().path_and_query, "/v2/users/7?full=1");
    assert_eq!(get(&gw.url("/users/7/files/a/b.txt")).await.status, 200);
    assert_eq!(b.users.last().unwrap().path_and_query, "/store/7/a/b.txt");
    assert_eq!(get(&gw.url("/orders/42")).await.status, 200);
    assert_eq!(b.orders.last().unwrap().path_and_query, "/42");
    assert_eq!(get(&gw.url("/orders")).await.status, 200);
    assert_eq!(b.orders.last().unwrap().path_and_query, "/");
    assert_eq!(get(&gw.url("/old/page/1")).await.status, 200);
    assert_eq!(b.legacy.last().unwrap().path_and_query, "/new/page/1");
}

#[tokio::test]
async fn host_header_and_query_conditions_pick_the_route() {
    let b = Three::start().await;
    let gw = b
        .setup(json!([
            {"name": "v2", "match": {"path_prefix": "/orders", "host": "api.example.com", "headers": {"x-version": "2"}},
             "upstream": "orders"},
            {"name": "beta", "match": {"path_prefix": "/orders", "host": "*.example.com", "query": {"beta": "1"}},
             "upstream": "legacy"},
            {"name": "default", "match": {"path_prefix": "/orders"}, "upstream": "users"}
        ]))
        .serve()
        .await;
    let client = crate::support::client::http1();
    let host = |h: &str| vec![("host", h.to_string())];
    let send_with = |path: &str, headers: Vec<(&str, String)>| {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        with_headers(Method::GET, &gw.url(path), &headers)
    };
    let mut h = host("api.example.com");
    h.push(("x-version", "2".to_string()));
    assert_eq!(send(&client, send_with("/orders/1", h)).await.status, 200);
    assert_eq!(b.orders.hits(), 1);
    assert_eq!(
        send(
            &client,
            send_with("/orders/1?beta=1", host("eu.shop.example.com:8080"))
        )
        .await
        .status,
        200
    );
    assert_eq!(b.legacy.hits(), 1);
    assert_eq!(
        send(&client, send_with("/orders/1", host("api.example.com")))
            .await
            .status,
        200
    );
    assert_eq!(b.users.hits(), 1);
}

#[tokio::test]
async fn route_header_edits_and_context_reach_later_plugins_and_the_upstream() {
    let b = Three::start().await;
    let gw = b
        .setup(json!([
            {"name": "user", "match": {"path": "/users/{id}"}, "upstream": "users",
             "request_headers": {"set": {"x-set": "s"}, "add": {"x-add": "a"}, "remove": ["x-secret"]}}
        ]))
        .scripted("60-after", json!({"on_request": [
            {"op": "context_to_header", "key": "route", "header": "x-route"},
            {"op": "context_to_header", "key": "route.param.id", "header": "x-route-id"}]}))
        .serve()
        .await;
    let req = with_headers(
        Method::GET,
        &gw.url("/users/ada"),
        &[("x-secret", "1"), ("x-add", "client")],
    );
    assert_eq!(
        send(&crate::support::client::http1(), req).await.status,
        200
    );
    let seen = b.users.last().unwrap();
    assert_eq!(seen.headers["x-set"], "s");
    let added: Vec<&str> = seen
        .headers
        .get_all("x-add")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(added, ["client", "a"]);
    assert!(seen.headers.get("x-secret").is_none());
    assert_eq!(seen.headers["x-route"], "user");
    assert_eq!(seen.headers["x-route-id"], "ada");
}

#[tokio::test]
async fn no_route_is_404_and_a_wrong_method_is_405_with_allow() {
    let b = Three::start().await;
    let gw = b
        .setup(json!([
            {"name": "read", "match": {"path": "/users/{id}", "methods": ["GET", "HEAD"]}, "upstream": "users"},
            {"name": "write", "match": {"path": "/users/{id}", "methods": ["PUT"]}, "upstream": "users"}
        ]))
        .serve()
        .await;
    let reply = get(&gw.url("/nowhere")).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json()["error"], "no route");
    assert_eq!(reply.json()["path"], "/nowhere");

    let reply = send(
        &crate::support::client::http1(),
        request(Method::DELETE, &gw.url("/users/1"), ""),
    )
    .await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET, HEAD, PUT"));
    assert_eq!(reply.json()["error"], "method not allowed");

    let reply = send(
        &crate::support::client::http1(),
        request(Method::PUT, &gw.url("/users/1"), "x"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(b.users.hits(), 1);
}

#[tokio::test]
async fn most_specific_route_wins() {
    let b = Three::start().await;
    let gw = b
        .setup(json!([
            {"name": "regex", "match": {"path_regex": "^/api/.*$"}, "upstream": "legacy"},
            {"name": "prefix", "match": {"path_prefix": "/api"}, "upstream": "orders"},
            {"name": "template", "match": {"path": "/api/users/{id}"}, "upstream": "users"},
            {"name": "exact", "match": {"path": "/api/users/me"}, "upstream": "legacy"}
        ]))
        .scripted("60-after", json!({"on_response": [{"op": "context_to_header", "key": "route", "header": "x-route"}]}))
        .serve()
        .await;
    let route = |path: &'static str| {
        let url = gw.url(path);
        async move { get(&url).await.header("x-route").unwrap().to_string() }
    };
    assert_eq!(route("/api/users/me").await, "exact");
    assert_eq!(route("/api/users/7").await, "template");
    assert_eq!(route("/api/orders").await, "prefix");
}

#[tokio::test]
async fn a_bad_router_config_is_refused_naming_the_route() {
    let b = Three::start().await;
    let err = b
        .setup(json!([{"name": "broken", "match": {"path": "/a/{id}"}, "upstream": "users", "rewrite": "/b/{nope}"}]))
        .try_gateway()
        .await
        .err()
        .expect("the router should refuse the config")
        .to_string();
    assert!(err.contains("50-router.wasm"), "{err}");
    assert!(err.contains("route `broken`"), "{err}");
    assert!(err.contains("nope"), "{err}");
}
