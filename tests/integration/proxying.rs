//! The request flow through the proxy: bodies and headers arrive intact,
//! streaming works both ways, and upstream trouble maps to 502/504.

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::support::raw;
use crate::support::*;

fn to_backend(backend: &Backend) -> Setup {
    Setup::new().upstream("backend", &[backend.url()]).scripted(
        "10-route",
        json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
    )
}

#[tokio::test]
async fn hello_plugin_adds_header_and_keeps_the_backend_response_intact() {
    let backend = Backend::start().await;
    let gw = to_backend(&backend)
        .plugin("20-hello", "hello_header", None)
        .serve()
        .await;

    let reply = get(&gw.url("/status/201")).await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.header("x-hello"), Some("weir"));
    assert_eq!(reply.header("x-custom"), Some("1"));
    assert_eq!(reply.text(), "status 201");
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn hello_plugin_value_comes_from_its_config() {
    let backend = Backend::start().await;
    let gw = to_backend(&backend)
        .plugin(
            "20-hello",
            "hello_header",
            Some(json!({"name": "x-greeting", "value": "hi"})),
        )
        .serve()
        .await;
    let reply = get(&gw.url("/")).await;
    assert_eq!(reply.header("x-greeting"), Some("hi"));
    assert_eq!(reply.header("x-hello"), None);
}

#[tokio::test]
async fn five_mib_body_streams_both_ways_untouched() {
    let backend = Backend::start().await;
    let gw = to_backend(&backend)
        .plugin("20-hello", "hello_header", None)
        .serve()
        .await;

    // Sent in 64 KiB chunks without a content-length: a streamed upload.
    let payload: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<Result<Frame<Bytes>, weir::http::body::BoxError>> = payload
        .chunks(64 * 1024)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = StreamBody::new(futures::stream::iter(chunks)).boxed_unsync();
    let req = http::Request::builder()
        .method(Method::POST)
        .uri(gw.url("/echo"))
        .body(body)
        .unwrap();
    let reply = send(&crate::support::client::http1(), req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-hello"), Some("weir"));
    assert_eq!(reply.header("x-echo"), Some("1"));
    assert_eq!(reply.body.len(), payload.len());
    assert!(reply.body == payload, "echoed body differs");
}

#[tokio::test]
async fn chunked_response_is_streamed_to_the_client() {
    let backend = Backend::start().await;
    let gw = to_backend(&backend)
        .plugin("20-hello", "hello_header", None)
        .serve()
        .await;
    let reply = get(&gw.url("/chunked?n=50")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
    assert_eq!(reply.header("content-length"), None);
    let expected: String = (0..50).map(|i| format!("chunk-{i}\n")).collect();
    assert_eq!(reply.text(), expected);
}

#[tokio::test]
async fn http2_prior_knowledge_clients_are_served() {
    let backend = Backend::start().await;
    let gw = to_backend(&backend)
        .plugin("20-hello", "hello_header", None)
        .serve()
        .await;
    let reply = send(
        &crate::support::client::http2(),
        request(Method::GET, &gw.url("/json?x=1"), Bytes::new()),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-hello"), Some("weir"));
    assert_eq!(reply.json()["path"], "/json?x=1");
    // The upstream got the authority the client asked for as Host.
    let seen = backend.last().unwrap();
    assert_eq!(seen.headers["host"], gw.addr.to_string().as_str());
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_and_forwarded_headers_set() {
    let backend = Backend::start().await;
    let gw = to_backend(&backend).serve().await;
    let req = http::Request::builder()
        .uri(gw.url("/x"))
        .header("connection", "x-private-hop")
        .header("x-private-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-end-to-end", "kept")
        .body(weir::http::body::empty())
        .unwrap();
    let reply = send(&crate::support::client::http1(), req).await;
    assert_eq!(reply.status, 200);
    let seen = backend.last().unwrap();
    assert!(seen.headers.get("x-private-hop").is_none());
    assert!(seen.headers.get("keep-alive").is_none());
    assert_eq!(seen.headers["x-end-to-end"], "kept");
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(
        seen.headers["x-forwarded-host"],
        gw.addr.to_string().as_str()
    );
}

#[tokio::test]
async fn no_upstream_chosen_is_a_404_with_a_json_body() {
    let gw = Setup::new()
        .plugin("20-hello", "hello_header", None)
        .serve()
        .await;
    let reply = get(&gw.url("/anything")).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json()["error"], "no upstream");
}

#[tokio::test]
async fn dead_upstream_is_a_502_naming_it() {
    // Bind and drop a listener: nothing listens on that port now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = Setup::new()
        .upstream("gone", &[format!("http://127.0.0.1:{port}")])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "gone"}]}),
        )
        .serve()
        .await;
    let reply = get(&gw.url("/")).await;
    assert_eq!(reply.status, 502);
    let body = reply.json();
    assert_eq!(body["upstream"], "gone");
    assert_eq!(body["cause"], "connection failed");
}

#[tokio::test]
async fn slow_upstream_is_a_504_after_its_request_timeout() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream_with(
            "slow",
            &format!("targets = [{:?}]\nrequest_timeout_ms = 100", backend.url()),
        )
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "slow"}]}),
        )
        .serve()
        .await;
    let reply = get(&gw.url("/slow?ms=2000")).await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.json()["upstream"], "slow");
    assert_eq!(reply.json()["cause"], "timeout");
}

#[tokio::test]
async fn oversized_header_block_is_a_431() {
    let backend = Backend::start().await;
    let gw = to_backend(&backend)
        .limit("max_header_bytes = 1024")
        .serve()
        .await;
    let req = http::Request::builder()
        .uri(gw.url("/"))
        .header("x-big", "a".repeat(2000))
        .body(weir::http::body::empty())
        .unwrap();
    let reply = send(&crate::support::client::http1(), req).await;
    assert_eq!(reply.status, 431);
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn malformed_http_gets_a_400() {
    let backend = Backend::start().await;
    let gw = to_backend(&backend).serve().await;
    let addr = gw.addr;
    let answer = raw::exchange(addr, &b"GET /\0bad HTTP/1.1\r\nHost: x\r\n\r\n"[..]).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = raw::exchange(addr, &b"THIS IS NOT HTTP\r\n\r\n"[..]).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn absolute_form_target_never_makes_an_open_proxy() {
    let backend = Backend::start().await;
    let elsewhere = Backend::start().await;
    let gw = to_backend(&backend).serve().await;
    let addr = gw.addr;
    let request = format!(
        "GET http://{}/json HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        elsewhere.addr, elsewhere.addr
    );
    let answer = raw::exchange(addr, request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        elsewhere.hits(),
        0,
        "the gateway contacted an unconfigured host"
    );
    assert_eq!(backend.hits(), 1);
    assert_eq!(backend.last().unwrap().path_and_query, "/json");
}
