//! The default `validate` plugin through the real gateway and router: valid
//! requests pass untouched; each kind of invalid request gets its status
//! and an RFC 9457 problem listing every error with its JSON pointer, and
//! the backend never sees it; an OpenAPI 3.1 document (a YAML `$file`)
//! drives the same checks; report mode logs and counts bad responses
//! without changing them.

use http::Method;
use serde_json::Value;

use crate::support::client::{Reply, http1};
use crate::support::process::Process;
use crate::support::*;

/// `POST /orders` (to the backend's `/echo`) and `GET /orders/{id}`.
fn router() -> Value {
    json!({"routes": [
        {"name": "order", "match": {"path": "/orders/{id}", "methods": ["GET"]}, "upstream": "backend"},
        {"name": "orders", "match": {"path": "/orders"}, "upstream": "backend", "rewrite": "/echo"}
    ]})
}

fn order_schema() -> Value {
    json!({
        "type": "object",
        "required": ["item", "qty"],
        "additionalProperties": false,
        "properties": {"item": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}
    })
}

fn schemas() -> Value {
    json!({"routes": {
        "orders": {
            "methods": ["POST"],
            "body": order_schema(),
            "query": {"properties": {"dry_run": {"type": "boolean"}}},
            "headers": {"properties": {"x-request-id": {"type": "string", "pattern": "^[0-9a-f]{8}$"}}, "required": ["x-request-id"]}
        },
        "order": {
            "path": {"properties": {"id": {"type": "integer", "minimum": 1}}, "required": ["id"]},
            "report_responses": true,
            "responses": {"200": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}}
        }
    }})
}

fn validated(backend: &Backend, router: Value, validate: Value) -> Setup {
    Setup::new()
        .upstream("backend", &[backend.url()])
        .router(router)
        .plugin("65-validate", "weir_plugin_validate", Some(validate))
}

async fn call(url: &str, method: Method, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(
        &http1(),
        builder
            .body(weir::http::body::full(body.to_string()))
            .unwrap(),
    )
    .await
}

const JSON: (&str, &str) = ("content-type", "application/json");
const ID: (&str, &str) = ("x-request-id", "0123abcd");
const GOOD: &str = r#"{"item": "tea", "qty": 2}"#;

/// The problem's status, and its errors as `(pointer, keyword)`.
fn problem(reply: &Reply) -> (u16, Vec<(String, String)>) {
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{}",
        reply.text()
    );
    let body = reply.json();
    assert_eq!(body["status"], reply.status.as_u16());
    assert_eq!(body["type"], "about:blank");
    assert!(body["title"].is_string() && body["detail"].is_string());
    let errors = body["errors"].as_array().expect("errors").iter();
    let errors = errors.map(|e| {
        (
            e["pointer"].as_str().unwrap().to_string(),
            e["keyword"].as_str().unwrap().to_string(),
        )
    });
    (reply.status.as_u16(), errors.collect())
}

fn one(status: u16, pointer: &str, keyword: &str) -> (u16, Vec<(String, String)>) {
    (status, vec![(pointer.to_string(), keyword.to_string())])
}

/// The refusals both configurations must give, as (method, path, headers,
/// body, expected status and errors).
type Case = (
    Method,
    &'static str,
    Vec<(&'static str, &'static str)>,
    &'static str,
    (u16, Vec<(String, String)>),
);

fn refusals() -> Vec<Case> {
    vec![
        (
            Method::POST,
            "/orders",
            vec![JSON, ID],
            r#"{"item": "tea"}"#,
            one(422, "/body/qty", "required"),
        ),
        (
            Method::POST,
            "/orders",
            vec![JSON, ID],
            r#"{"item": "tea", "qty": "2"}"#,
            one(422, "/body/qty", "type"),
        ),
        (
            Method::POST,
            "/orders",
            vec![JSON, ID],
            r#"{"item": "tea", "qty": 2, "gift": true}"#,
            one(422, "/body/gift", "additionalProperties"),
        ),
        (
            Method::POST,
            "/orders?dry_run=maybe",
            vec![JSON, ID],
            GOOD,
            one(422, "/query/dry_run", "type"),
        ),
        (
            Method::POST,
            "/orders",
            vec![JSON, ("x-request-id", "NOT-HEX!")],
            GOOD,
            one(422, "/headers/x-request-id", "pattern"),
        ),
        (
            Method::POST,
            "/orders",
            vec![JSON],
            GOOD,
            one(422, "/headers/x-request-id", "required"),
        ),
        (
            Method::POST,
            "/orders",
            vec![("content-type", "text/plain"), ID],
            GOOD,
            one(415, "/headers/content-type", "content-type"),
        ),
        (
            Method::POST,
            "/orders",
            vec![JSON, ID],
            r#"{"item": "tea", "#,
            one(400, "/body", "json"),
        ),
        (
            Method::GET,
            "/orders/0",
            vec![],
            "",
            one(422, "/path/id", "minimum"),
        ),
        (
            Method::GET,
            "/orders/seven",
            vec![],
            "",
            one(422, "/path/id", "type"),
        ),
    ]
}

async fn assert_refusals(gw: &Running, backend: &Backend) {
    for (method, path, headers, body, expected) in refusals() {
        let reply = call(&gw.url(path), method.clone(), &headers, body).await;
        assert_eq!(problem(&reply), expected, "{method} {path} {body}");
    }
    assert_eq!(backend.hits(), 0, "a refused request reached the backend");
}

#[tokio::test]
async fn valid_requests_pass_untouched() {
    let backend = Backend::start().await;
    backend.serve_json("/orders/7", &json!({"id": 7}));
    let gw = validated(&backend, router(), schemas()).serve().await;
    let body = r#"{"item": "tea",   "qty": 2}"#;
    let reply = call(
        &gw.url("/orders?dry_run=true"),
        Method::POST,
        &[JSON, ID],
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.text(),
        body,
        "the body reached the backend byte for byte"
    );
    let seen = backend.last_at("/echo").unwrap();
    assert_eq!(seen.path_and_query, "/echo?dry_run=true");
    assert_eq!(seen.headers["x-request-id"], "0123abcd");
    assert_eq!(
        call(&gw.url("/orders/7"), Method::GET, &[], "")
            .await
            .json(),
        json!({"id": 7})
    );
    // Methods the rule does not list pass unchecked.
    assert_eq!(
        call(&gw.url("/orders"), Method::GET, &[], "").await.status,
        200
    );
    assert_eq!(backend.hits(), 3);
}

#[tokio::test]
async fn each_invalid_request_gets_its_status_and_pointers_and_never_reaches_the_backend() {
    let backend = Backend::start().await;
    let gw = validated(&backend, router(), schemas()).serve().await;
    assert_refusals(&gw, &backend).await;
}

#[tokio::test]
async fn every_error_of_a_request_is_listed() {
    let backend = Backend::start().await;
    let gw = validated(&backend, router(), schemas()).serve().await;
    let body = r#"{"qty": 0, "gift": true}"#;
    let reply = call(&gw.url("/orders?dry_run=1"), Method::POST, &[JSON], body).await;
    let (status, mut errors) = problem(&reply);
    errors.sort();
    let expected: Vec<(String, String)> = [
        ("/body/gift", "additionalProperties"),
        ("/body/item", "required"),
        ("/body/qty", "minimum"),
        ("/headers/x-request-id", "required"),
        ("/query/dry_run", "type"),
    ]
    .iter()
    .map(|(p, k)| (p.to_string(), k.to_string()))
    .collect();
    assert_eq!((status, errors), (422, expected));
    assert_eq!(
        reply.json()["detail"],
        "5 problems with the request to route `orders`"
    );
    assert_eq!(backend.hits(), 0);
}

const OPENAPI: &str = r##"
openapi: 3.1.0
info: {title: orders, version: "1"}
paths:
  /echo:
    post:
      parameters:
        - {name: dry_run, in: query, schema: {type: boolean}}
        - {name: X-Request-Id, in: header, required: true, schema: {type: string, pattern: "^[0-9a-f]{8}$"}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Order"}
      responses:
        "200": {description: the order}
  /orders/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
      responses:
        "200":
          description: the order
          content:
            application/json:
              schema: {type: object, required: [id], properties: {id: {type: integer}}}
components:
  schemas:
    Order:
      type: object
      required: [item, qty]
      additionalProperties: false
      properties:
        item: {type: string}
        qty: {type: integer, minimum: 1}
"##;

fn with_openapi(backend: &Backend) -> Setup {
    let rule = json!({"openapi": {"$file": "orders.yaml"}, "report_responses": true});
    validated(backend, router(), json!({"default": rule}))
        .raw_file("orders.yaml", OPENAPI.as_bytes())
}

#[tokio::test]
async fn an_openapi_3_1_document_drives_the_same_checks() {
    let backend = Backend::start().await;
    let gw = with_openapi(&backend).serve().await;
    assert_refusals(&gw, &backend).await;
    // An operation the document does not describe.
    let wrong_method = call(&gw.url("/orders"), Method::DELETE, &[], "").await;
    assert_eq!(problem(&wrong_method), one(405, "", "operation"));
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    assert_eq!(backend.hits(), 0);
    // And what it describes passes (the router rewrote /orders to /echo,
    // the path the document, written for the upstream, names).
    let reply = call(
        &gw.url("/orders?dry_run=false"),
        Method::POST,
        &[JSON, ID],
        GOOD,
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.text()),
        (200, GOOD.to_string())
    );
    backend.serve_json("/orders/7", &json!({"id": 7}));
    assert_eq!(
        call(&gw.url("/orders/7"), Method::GET, &[], "")
            .await
            .status,
        200
    );
    assert_eq!(backend.hits(), 2);
}

#[tokio::test]
async fn report_mode_counts_bad_responses_and_never_changes_them() {
    let backend = Backend::start().await;
    for setup in [
        validated(&backend, router(), schemas()),
        with_openapi(&backend),
    ] {
        let gw = setup.serve().await;
        backend.serve_json("/orders/7", &json!({"id": 7}));
        assert_eq!(
            call(&gw.url("/orders/7"), Method::GET, &[], "")
                .await
                .status,
            200
        );
        assert!(!plugin_metrics::text(&gw).contains("responses_invalid_total{"));
        backend.serve_json("/orders/7", &json!({"id": "seven"}));
        let reply = call(&gw.url("/orders/7"), Method::GET, &[], "").await;
        assert_eq!(
            (reply.status.as_u16(), reply.json()),
            (200, json!({"id": "seven"}))
        );
        let text = plugin_metrics::text(&gw);
        assert!(
            text.contains(r#"weir_plugin_validate_responses_invalid_total{plugin="65-validate",route="order"} 1"#),
            "{text}"
        );
        // Refusals are counted too.
        call(&gw.url("/orders/0"), Method::GET, &[], "").await;
        assert!(
            plugin_metrics::text(&gw).contains(r#"weir_plugin_validate_requests_refused_total{plugin="65-validate",route="order",status="422"} 1"#)
        );
    }
}

#[tokio::test]
async fn report_mode_logs_the_bad_response() {
    let backend = Backend::start().await;
    backend.serve_json("/orders/7", &json!({"id": "seven"}));
    let setup = validated(&backend, router(), schemas());
    let (process, output) = Process::start_capturing(&setup.write()).await;
    let reply = call(&process.url("/orders/7"), Method::GET, &[], "").await;
    assert_eq!(reply.json(), json!({"id": "seven"}));
    let expected = "response 200 on route `order` does not match its schema at `/body/id`";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !output.text().contains(expected) {
        assert!(
            std::time::Instant::now() < deadline,
            "not logged:\n{}",
            output.text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Run `weir ARGS`, which must succeed; its output.
async fn weir_ok(args: &[&std::ffi::OsStr]) -> String {
    let out = tokio::process::Command::new(crate::support::process::WEIR)
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

/// `weir init DIR` then `weir check` on it, with the sample upstreams
/// pointed at `users` and `orders`; returns the config path.
async fn init_demo(dir: &std::path::Path, users: &Backend, orders: &Backend) -> std::path::PathBuf {
    weir_ok(&["init".as_ref(), dir.as_os_str()]).await;
    let config = dir.join("weir.toml");
    let cache = crate::support::gateway::shared_cache_dir();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("http://127.0.0.1:8001", &users.url())
        .replace("http://127.0.0.1:8002", &orders.url())
        .replace(
            "cache_dir = \".weir-cache\"",
            &format!("cache_dir = {:?}", cache.display().to_string()),
        );
    std::fs::write(&config, text).unwrap();
    let checked = weir_ok(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]).await;
    for plugin in ["65-validate", "75-cache"] {
        assert!(
            checked.contains(&format!("plugin {plugin} ok")),
            "{checked}"
        );
    }
    config
}

#[tokio::test]
async fn weir_init_ships_validate_and_cache_with_sample_configs_that_work() {
    let (users, orders) = (Backend::start().await, Backend::start().await);
    let dir = tempfile::tempdir().unwrap();
    let config = init_demo(&dir.path().join("gw"), &users, &orders).await;
    let process = Process::start(&config).await;
    // The cache keeps `GET /users/{id}` (route `user`) for as long as the
    // origin says; with nothing said, it keeps nothing (RFC-safe default).
    users.serve_http("/7.json", 200, &[("cache-control", "max-age=30")], "{}");
    users.serve_http("/8.json", 200, &[], "{}");
    let first = call(&process.url("/users/7"), Method::GET, &[], "").await;
    let second = call(&process.url("/users/7"), Method::GET, &[], "").await;
    assert_eq!(
        (first.header("x-cache"), second.header("x-cache")),
        (Some("MISS"), Some("HIT"))
    );
    assert_eq!(users.hits(), 1);
    let unsaid = call(&process.url("/users/8"), Method::GET, &[], "").await;
    let again = call(&process.url("/users/8"), Method::GET, &[], "").await;
    assert_eq!(
        (unsaid.header("x-cache"), again.header("x-cache")),
        (Some("BYPASS"), Some("BYPASS"))
    );
    // Validation checks `POST /orders` bodies, after auth.
    let key = ("x-api-key", "weir-demo-key");
    let anonymous = call(&process.url("/orders"), Method::POST, &[JSON], "{}").await;
    assert_eq!(anonymous.status, 401);
    let bad = call(
        &process.url("/orders"),
        Method::POST,
        &[JSON, key],
        r#"{"item": "tea"}"#,
    )
    .await;
    assert_eq!(problem(&bad), one(422, "/body/qty", "required"));
    assert_eq!(orders.hits(), 0);
    let good = call(&process.url("/orders"), Method::POST, &[JSON, key], GOOD).await;
    assert_eq!(good.status, 200);
    assert_eq!(orders.hits(), 1);
    // Other orders requests are not validated, nor cached.
    let listed = call(&process.url("/orders/index.json"), Method::GET, &[key], "").await;
    assert_eq!(
        (listed.status.as_u16(), listed.header("x-cache")),
        (200, None)
    );
}

/// Validation declares the routes it has rules for (contract 0.5.0's
/// `interest.only-routes`), so the gateway does not call it on the others;
/// a `default` rule covers every route, so it then declares none.
#[tokio::test]
async fn validation_declares_its_routes_unless_a_default_rule_covers_all() {
    let backend = Backend::start().await;
    let gw = validated(&backend, router(), schemas()).gateway().await;
    let pipeline = gw.pipeline();
    assert_eq!(
        pipeline.plugins()[1].routes(),
        Some(&["order".to_string(), "orders".to_string()][..])
    );
    let gw = with_openapi(&backend).gateway().await;
    assert_eq!(gw.pipeline().plugins()[1].routes(), None);
}
