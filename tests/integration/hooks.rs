//! The hook pipeline: order, short-circuits, context passing, edits to
//! requests and responses, and bodies read on demand.

use bytes::Bytes;
use http::Method;

use crate::support::*;

#[tokio::test]
async fn a_plugin_answering_401_means_the_backend_is_never_hit() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted("10-route", json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}))
        .scripted(
            "20-deny",
            json!({"on_request": [{"op": "respond", "status": 401, "body": "{\"error\":\"no credentials\"}",
                                   "headers": [["www-authenticate", "Bearer"], ["content-type", "application/json"]]}]}),
        )
        .scripted("30-after", json!({"on_request": [{"op": "set_header", "name": "x-never", "value": "1"}]}))
        .serve()
        .await;
    for _ in 0..3 {
        let reply = get(&gw.url("/private")).await;
        assert_eq!(reply.status, 401);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert_eq!(reply.json()["error"], "no credentials");
    }
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn requests_run_in_file_order_and_responses_in_reverse() {
    let backend = Backend::start().await;
    // Each plugin appends its name to a request header on the way in and a
    // response header on the way out.
    let step = |name: &str| {
        json!({
            "on_request": [{"op": "context_to_header", "key": "trail", "header": "x-trail-before"},
                           {"op": "set_context", "key": "trail", "value": name}],
            "on_response": [{"op": "set_header", "name": format!("x-out-{name}"), "value": "1"},
                            {"op": "header_names_to_header", "header": format!("x-seen-by-{name}")}]
        })
    };
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted("10-a", step("a"))
        .scripted("20-b", step("b"))
        .scripted(
            "30-route",
            json!({
            "on_request": [{"op": "set_upstream", "name": "backend"},
                           {"op": "context_to_header", "key": "trail", "header": "x-trail"}]}),
        )
        .serve()
        .await;
    let reply = get(&gw.url("/")).await;
    assert_eq!(reply.status, 200);
    // 20-b ran after 10-a: it saw a's context value; route saw b's.
    let seen = backend.last().unwrap();
    assert_eq!(seen.headers["x-trail"], "b");
    assert_eq!(seen.headers["x-trail-before"], "a");
    assert_eq!(reply.header("x-out-a"), Some("1"));
    assert_eq!(reply.header("x-out-b"), Some("1"));
}

#[tokio::test]
async fn context_set_by_one_plugin_is_read_by_a_later_one() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted("10-auth", json!({"on_request": [{"op": "set_context", "key": "consumer", "value": "alice"}]}))
        .scripted("20-route", json!({
            "on_request": [{"op": "set_upstream", "name": "backend"},
                           {"op": "context_to_header", "key": "consumer", "header": "x-consumer"}],
            "on_response": [{"op": "context_to_header", "key": "consumer", "header": "x-consumer-out"}]}))
        .serve()
        .await;
    let reply = get(&gw.url("/")).await;
    assert_eq!(backend.last().unwrap().headers["x-consumer"], "alice");
    assert_eq!(reply.header("x-consumer-out"), Some("alice"));
}

#[tokio::test]
async fn on_response_of_earlier_plugins_sees_a_reply_from_a_later_one() {
    let gw = Setup::new()
        .scripted("10-cors", json!({"on_response": [{"op": "set_header", "name": "access-control-allow-origin", "value": "*"}]}))
        .scripted("20-deny", json!({
            "on_request": [{"op": "respond", "status": 403}],
            "on_response": [{"op": "set_header", "name": "x-deny-on-response", "value": "ran"}]}))
        .serve()
        .await;
    let reply = get(&gw.url("/")).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    // The plugin that answered does not also see its own reply.
    assert_eq!(reply.header("x-deny-on-response"), None);
}

#[tokio::test]
async fn on_response_respond_replaces_the_upstream_response() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-outer",
            json!({"on_response": [{"op": "set_header", "name": "x-outer", "value": "1"}]}),
        )
        .scripted(
            "20-replace",
            json!({
            "on_request": [{"op": "set_upstream", "name": "backend"}],
            "on_response": [{"op": "respond", "status": 503, "body": "replaced"}]}),
        )
        .serve()
        .await;
    let reply = get(&gw.url("/")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.text(), "replaced");
    assert_eq!(reply.header("x-backend"), None);
    assert_eq!(reply.header("x-outer"), Some("1"));
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn plugins_edit_the_request_path_and_headers() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-edit",
            json!({"on_request": [
            {"op": "set_upstream", "name": "backend"},
            {"op": "set_path", "path": "/v2/users?full=1"},
            {"op": "set_header", "name": "x-added", "value": "yes"},
            {"op": "remove_header", "name": "x-drop-me"},
            {"op": "client_to_headers"}]}),
        )
        .serve()
        .await;
    let req = http::Request::builder()
        .uri(gw.url("/users"))
        .header("x-drop-me", "1")
        .body(weir::http::body::empty())
        .unwrap();
    let reply = send(&crate::support::client::http1(), req).await;
    assert_eq!(reply.status, 200);
    let seen = backend.last().unwrap();
    assert_eq!(seen.path_and_query, "/v2/users?full=1");
    assert_eq!(seen.headers["x-added"], "yes");
    assert!(seen.headers.get("x-drop-me").is_none());
    assert_eq!(seen.headers["x-client-ip"], "127.0.0.1");
    assert_eq!(seen.headers["x-method"], "GET");
    // Later steps see earlier edits.
    assert_eq!(seen.headers["x-path"], "/v2/users?full=1");
    assert_eq!(seen.headers["x-authority"], gw.addr.to_string().as_str());
}

#[tokio::test]
async fn a_plugin_reads_and_rewrites_bodies_both_ways() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-body",
            json!({
            "on_request": [{"op": "set_upstream", "name": "backend"},
                           {"op": "body_length_to_header", "header": "x-request-length"},
                           {"op": "uppercase_body"}],
            "on_response": [{"op": "body_length_to_header", "header": "x-response-length"}]}),
        )
        .scripted(
            "20-inner",
            json!({"on_response": [{"op": "uppercase_body"}]}),
        )
        .serve()
        .await;
    let reply = send(
        &crate::support::client::http1(),
        request(Method::POST, &gw.url("/echo"), "hello, weir"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(backend.last().unwrap().headers["x-request-length"], "11");
    assert_eq!(backend.last().unwrap().headers["content-length"], "11");
    assert_eq!(reply.text(), "HELLO, WEIR");
    assert_eq!(reply.header("x-response-length"), Some("11"));
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_to_the_plugin_but_streams_on_whole() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .limit("max_body_bytes = 1024")
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-body",
            json!({
            "on_request": [{"op": "set_upstream", "name": "backend"},
                           {"op": "body_length_to_header", "header": "x-request-length"}]}),
        )
        .serve()
        .await;
    let payload = Bytes::from(vec![b'z'; 100_000]);
    let reply = send(
        &crate::support::client::http1(),
        request(Method::POST, &gw.url("/echo"), payload.clone()),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        backend.last().unwrap().headers["x-request-length"],
        "error: BodyError::TooLarge(1024)"
    );
    assert_eq!(reply.body, payload);
}

#[tokio::test]
async fn an_invalid_reply_is_a_500_naming_the_plugin() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-bad",
            json!({"on_request": [{"op": "respond", "status": 1000}]}),
        )
        .serve()
        .await;
    let reply = get(&gw.url("/")).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.json()["plugin"], "10-bad");
    assert_eq!(reply.json()["cause"], "invalid reply");
    let gw = Setup::new()
        .scripted("10-bad", json!({"on_request": [{"op": "respond", "status": 200, "headers": [["bad header", "x"]]}]}))
        .serve()
        .await;
    assert_eq!(get(&gw.url("/")).await.status, 500);
}

#[tokio::test]
async fn respond_then_continue_and_wait_from_on_response_are_plugin_failures() {
    let backend = Backend::start().await;
    for action in [
        json!({"op": "respond_then_continue", "status": 200, "body": "late"}),
        json!({"op": "wait", "key": "k", "timeout_ms": 10}),
    ] {
        let gw = Setup::new()
            .upstream("backend", &[backend.url()])
            .scripted(
                "10-bad",
                json!({"on_request": [{"op": "set_upstream", "name": "backend"}],
                       "on_response": [action]}),
            )
            .serve()
            .await;
        let reply = get(&gw.url("/")).await;
        assert_eq!(reply.status, 500, "{action}: {}", reply.text());
        assert_eq!(reply.json()["plugin"], "10-bad");
        assert_eq!(reply.json()["cause"], "invalid reply");
    }
}

#[tokio::test]
async fn handle_works_without_a_socket() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin("20-hello", "hello_header", None)
        .gateway()
        .await;
    let req = http::Request::builder()
        .uri("/json")
        .header("host", "api.example.com")
        .body(http_body_util::Full::new(Bytes::from_static(b"")))
        .unwrap();
    let response = gw
        .handle(
            req,
            "192.0.2.7:4242".parse::<std::net::SocketAddr>().unwrap(),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-hello"], "weir");
    let seen = backend.last().unwrap();
    assert_eq!(seen.headers["x-forwarded-for"], "192.0.2.7");
    assert_eq!(seen.headers["host"], "api.example.com");
}

#[tokio::test]
async fn a_request_body_read_on_the_way_in_is_still_readable_on_the_way_out() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted("10-body", json!({
            "on_request": [{"op": "set_upstream", "name": "backend"},
                           {"op": "body_length_to_header", "header": "x-in"}],
            "on_response": [{"op": "request_body_length_to_header", "header": "x-request-length-out"}]}))
        .serve()
        .await;
    let reply = send(
        &crate::support::client::http1(),
        request(Method::POST, &gw.url("/echo"), "twelve bytes"),
    )
    .await;
    assert_eq!(reply.text(), "twelve bytes");
    assert_eq!(reply.header("x-request-length-out"), Some("12"));
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({
            "on_request": [{"op": "set_upstream", "name": "backend"}],
            "on_response": [{"op": "request_body_length_to_header", "header": "x-never-read"}]}),
        )
        .serve()
        .await;
    let reply = send(
        &crate::support::client::http1(),
        request(Method::POST, &gw.url("/echo"), "twelve bytes"),
    )
    .await;
    assert_eq!(reply.text(), "twelve bytes");
    // Streamed straight through: nothing is left to read afterwards.
    assert_eq!(reply.header("x-never-read"), Some("0"));
}

#[tokio::test]
async fn response_headers_set_in_on_request_reach_the_client_before_on_response_runs() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-strip",
            json!({"on_response": [{"op": "remove_header", "name": "x-dropped"}]}),
        )
        .scripted(
            "20-route",
            json!({"on_request": [
                {"op": "set_upstream", "name": "backend"},
                {"op": "set_response_header", "name": "x-limit", "value": "5"},
                {"op": "set_response_header", "name": "X-Limit", "value": "6"},
                {"op": "set_response_header", "name": "x-dropped", "value": "1"},
                {"op": "set_response_header", "name": "bad name", "value": "1"}]}),
        )
        .serve()
        .await;
    let reply = get(&gw.url("/")).await;
    assert_eq!(reply.status, 200);
    // A later call for the same name replaced the earlier value.
    let limits: Vec<_> = reply.headers.get_all("x-limit").iter().collect();
    assert_eq!(limits, ["6"]);
    // Set before on-response ran: the earlier plugin's hook removed it.
    assert_eq!(reply.header("x-dropped"), None);
    // Checked at the call: the invalid name was refused to the plugin.
    let seen = backend.last().unwrap();
    let error = seen.headers["x-response-header-error"].to_str().unwrap();
    assert!(error.contains("invalid-header-name"), "{error}");
}

#[tokio::test]
async fn response_headers_set_in_on_request_go_on_a_later_plugins_reply() {
    let gw = Setup::new()
        .scripted(
            "10-limit",
            json!({"on_request": [{"op": "set_response_header", "name": "x-limit", "value": "5"}]}),
        )
        .scripted(
            "20-deny",
            json!({"on_request": [{"op": "respond", "status": 403}]}),
        )
        .serve()
        .await;
    let reply = get(&gw.url("/")).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.header("x-limit"), Some("5"));
}
