//! Standard `wasi:http/proxy` components as plugins: a handler a route
//! names (scoped to it), answering with bodies streamed both ways and
//! calling only the upstreams it is granted; and middleware whose
//! outgoing request is the next stage. Handlers are built in Rust
//! (`tests/fixtures/http-handler`), Python and JavaScript.
//!
//! Behaviours are those of the `wasi:http` 0.2 WIT
//! (`tests/fixtures/wasi-http-wit/deps/http.wit`): `incoming-handler.handle`
//! with `response-outparam.set` sent before the body is written (so the
//! body streams after the head), `incoming-body.stream` read while the
//! answer streams, and `outgoing-handler.handle` whose `error-code` the
//! guest sees when the host refuses a request (`HTTP-request-denied`).

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;

use crate::support::client::{call, http1};
use crate::support::toolchains;
use crate::support::*;

/// A router with an `app` route (prefix stripped) served by the component
/// `handler` at `60-app`, scoped to it, granted `outbound:users`; and an
/// `api` route to `backend`.
fn routed(
    handler: &std::path::Path,
    backend: &Backend,
    users: &Backend,
    billing: &Backend,
) -> Setup {
    Setup::new()
        .upstream("backend", &[backend.url()])
        .upstream("users", &[users.url()])
        .upstream("billing", &[billing.url()])
        .router(json!({"routes": [
            {"name": "app", "match": {"path_prefix": "/app"}, "strip_prefix": true},
            {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "backend"}
        ]}))
        .plugin_file("60-app", handler, None)
        .section("[plugins.60-app]\nroutes = [\"app\"]\ncapabilities = [\"outbound:users\"]")
}

#[tokio::test]
async fn a_rust_handler_answers_its_route_and_calls_only_granted_upstreams() {
    let (backend, users, billing) = (
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    );
    users.serve_http("/users/7", 200, &[], "{\"id\":7}");
    let gw = routed(&wasm("fixture_http_handler"), &backend, &users, &billing)
        .serve()
        .await;

    let hello = get(&gw.url("/app/hello")).await;
    assert_eq!(hello.status, 200);
    assert_eq!(hello.text(), "hello from wasi:http\n");
    assert_eq!(hello.header("x-handler"), Some("rust"));
    assert_eq!(get(&gw.url("/api/x")).await.status, 200);
    assert_eq!(backend.hits(), 1, "only the api route reached the upstream");

    let streamed = get(&gw.url("/app/stream?n=4")).await;
    assert_eq!(streamed.text(), "chunk-0\nchunk-1\nchunk-2\nchunk-3\n");

    // An outgoing request to an upstream by name, within the grant.
    let called = get(&gw.url("/app/call")).await;
    assert_eq!(called.text(), "users said 200: {\"id\":7}");
    assert_eq!(users.last().unwrap().path_and_query, "/users/7");

    // `billing` is an upstream, but not in the grant: refused, never called.
    let refused = get(&gw.url("/app/call-billing")).await;
    assert_eq!(refused.status, 502);
    assert!(
        refused.text().starts_with("call failed:"),
        "{}",
        refused.text()
    );
    assert_eq!(billing.hits(), 0);

    let plugins = gw.gateway.pipeline();
    let app = plugins
        .plugins()
        .iter()
        .find(|p| p.name() == "60-app")
        .unwrap();
    assert_eq!(
        (app.kind(), app.info().contract),
        ("wasi-http", "wasi:http/proxy@0.2")
    );
}

#[tokio::test]
async fn a_handlers_bodies_stream_both_ways() {
    let (backend, users, billing) = (
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    );
    let gw = routed(&wasm("fixture_http_handler"), &backend, &users, &billing)
        .serve()
        .await;
    // The second request chunk is sent only after the first answer chunk
    // arrived: buffering either body anywhere would stall this.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(1);
    let body = http_body_util::StreamBody::new(tokio_stream_of(rx));
    let request = http::Request::builder()
        .method(Method::POST)
        .uri(gw.url("/app/upper"))
        .body(weir::http::body::boxed(body))
        .unwrap();
    let client = http1();
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"first "))))
        .await
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .expect("the answer starts before the request body ends")
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut answer = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), answer.frame())
        .await
        .expect("the first chunk comes back while the request is still open")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"FIRST "));
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"second"))))
        .await
        .unwrap();
    drop(tx);
    let rest = tokio::time::timeout(Duration::from_secs(5), answer.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, Bytes::from_static(b"SECOND"));
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn middleware_sees_and_changes_both_the_request_and_the_response() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-upstream",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin("20-mw", "fixture_http_middleware", None)
        .scripted(
            "30-after",
            json!({"on_request": [{"op": "set_header", "name": "x-after", "value": "1"}]}),
        )
        .serve()
        .await;
    let reply = call(
        &gw.url("/echo"),
        Method::POST,
        &[("x-client", "c")],
        "payload through middleware",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "payload through middleware");
    assert_eq!(reply.header("x-mw-response"), Some("rust"));
    assert_eq!(
        reply.header("x-echo"),
        Some("1"),
        "the upstream's headers come through"
    );
    let seen = backend.last().unwrap();
    assert_eq!(seen.headers["x-mw-request"], "rust");
    assert_eq!(seen.headers["x-client"], "c");
    // The rest of the chain ran after the middleware, on its request.
    assert_eq!(seen.headers["x-after"], "1");

    let blocked = call(&gw.url("/echo"), Method::GET, &[("x-mw-block", "1")], "").await;
    assert_eq!(blocked.status, 401);
    assert_eq!(blocked.text(), "blocked by middleware\n");
    assert_eq!(
        backend.hits(),
        1,
        "an answer without the next stage never reaches the upstream"
    );
}

/// A handler in another language answers its route, calls a granted
/// upstream and is refused an ungranted one, as the Rust one is.
async fn handler_in_another_language(handler: &std::path::Path, language: &str) {
    let (backend, users, billing) = (
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    );
    users.serve_http("/users/7", 200, &[], "{\"id\":7}");
    let gw = routed(handler, &backend, &users, &billing).serve().await;
    let hello = get(&gw.url("/app/hello")).await;
    assert_eq!(hello.status, 200, "{}", hello.text());
    assert_eq!(hello.text(), format!("hello from {language}\n"));
    assert_eq!(hello.header("x-handler"), Some(language));
    let called = get(&gw.url("/app/call")).await;
    assert_eq!(called.status, 200, "{}", called.text());
    assert_eq!(called.text(), "users said 200: {\"id\":7}");
    let refused = get(&gw.url("/app/call-billing")).await;
    assert_eq!(refused.status, 502, "{}", refused.text());
    assert!(
        refused.text().starts_with("call failed:"),
        "{}",
        refused.text()
    );
    assert_eq!(billing.hits(), 0);
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn a_python_handler_answers_routed_requests() {
    handler_in_another_language(toolchains::python_http(), "python").await;
}

#[tokio::test]
async fn a_javascript_handler_answers_routed_requests() {
    handler_in_another_language(toolchains::js_http(), "javascript").await;
}

#[tokio::test]
async fn a_trapping_or_spinning_component_costs_its_request_only() {
    let (backend, users, billing) = (
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    );
    let gw = routed(&wasm("fixture_http_handler"), &backend, &users, &billing)
        .limit("hook_deadline_ms = 300")
        .serve()
        .await;
    let (trap, spin, hello) = (
        gw.url("/app/trap"),
        gw.url("/app/spin"),
        gw.url("/app/hello"),
    );
    let started = std::time::Instant::now();
    let (trapped, spun, good) = tokio::join!(get(&trap), get(&spin), get(&hello));
    assert_eq!(trapped.status, 500);
    assert_eq!(spun.status, 500);
    assert_eq!(good.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The handler serves on.
    assert_eq!(get(&gw.url("/app/hello")).await.status, 200);
}

#[tokio::test]
async fn test_plugin_runs_a_wasi_http_handler() {
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.json");
    std::fs::write(&request, r#"{"method": "GET", "path": "/hello"}"#).unwrap();
    let handler = wasm("fixture_http_handler");
    let (ok, out, err) = crate::support::process::run_to_end(&[
        "test-plugin",
        handler.to_str().unwrap(),
        "--request",
        request.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{out}{err}");
    let output: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(output["on_request"]["action"], "respond", "{output}");
    assert_eq!(output["on_request"]["reply"]["status"], 200);
    assert_eq!(
        output["on_request"]["reply"]["body"],
        "hello from wasi:http\n"
    );
}
