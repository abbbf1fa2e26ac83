//! OpenTelemetry traces from a real `weir` process to an OTLP receiver in
//! the test (HTTP/protobuf and gRPC): one trace per sampled request, with
//! the request span, a span per hook call, the upstream span and the
//! plugin's `outbound` span, correctly parented; the upstream and the
//! outbound target see a `traceparent` of the same trace; the access log
//! carries the trace id. Spans are read after a SIGTERM, which flushes the
//! exporter, so the test never waits on a timer.

use std::collections::HashSet;

use crate::support::otlp::{Receiver, Span};
use crate::support::process::Process;
use crate::support::*;

const SERVER: i32 = 2;
const CLIENT: i32 = 3;

/// A router that also calls `side` from its hook, and a plugin that
/// stamps in both hooks; tracing to `endpoint` over `protocol` at `ratio`.
fn traced(good: &Backend, side: &Backend, endpoint: &str, protocol: &str, ratio: f64) -> Setup {
    Setup::new()
        .upstream("good", &[good.url()])
        .upstream("side", &[side.url()])
        .scripted(
            "10-route",
            json!({"on_request": [
                {"op": "set_upstream", "name": "good"},
                {"op": "set_context", "key": "route", "value": "api"},
                {"op": "call", "upstream": "side", "path": "/side", "header": "x-side"}]}),
        )
        .scripted(
            "20-stamp",
            json!({"on_request": [{"op": "set_header", "name": "x-a", "value": "1"}],
                   "on_response": [{"op": "set_header", "name": "x-b", "value": "2"}]}),
        )
        .section(&format!(
            "[tracing]\notlp_endpoint = \"{endpoint}\"\nprotocol = \"{protocol}\"\n\
             sample_ratio = {ratio:?}\nservice_name = \"edge-test\"\n\
             resource = {{ \"deployment.environment\" = \"test\" }}"
        ))
        .log(&["access_log = true", "format = \"json\""])
        .top(r#"trusted_proxies = ["127.0.0.1"]"#)
}

fn traceparent_of(backend: &Backend, path: &str) -> (String, String, String) {
    let seen = backend.last_at(path).expect("the backend was called");
    let value = seen
        .headers
        .get("traceparent")
        .expect("a traceparent reached the backend")
        .to_str()
        .unwrap()
        .to_string();
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    (
        parts[1].to_string(),
        parts[2].to_string(),
        parts[3].to_string(),
    )
}

fn one<'a>(spans: &'a [Span], trace: &str, name: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == trace && s.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "spans named {name:?} in {trace}: {spans:#?}"
    );
    found[0]
}

/// Check one request's trace: its spans and their parents.
fn check_trace(spans: &[Span], trace: &str, client_parent: &str) -> (String, String) {
    let server = one(spans, trace, "GET");
    assert_eq!(server.kind, SERVER);
    assert_eq!(server.parent_span_id, client_parent);
    assert_eq!(server.service, "edge-test");
    assert_eq!(server.attribute("http.route"), Some("api"));
    assert_eq!(server.attribute("http.response.status_code"), Some("200"));
    assert_eq!(server.attribute("http.request.method"), Some("GET"));
    let route_hook = one(spans, trace, "on_request 10-route");
    let stamp_request = one(spans, trace, "on_request 20-stamp");
    let stamp_response = one(spans, trace, "on_response 20-stamp");
    // The scripted fixture declares both hooks (the SDK's default).
    let route_response = one(spans, trace, "on_response 10-route");
    for hook in [route_hook, stamp_request, stamp_response, route_response] {
        assert_eq!(hook.parent_span_id, server.span_id, "{hook:?}");
        assert_eq!(hook.attribute("weir.outcome"), Some("continue"));
    }
    assert_eq!(route_hook.attribute("weir.plugin"), Some("10-route"));
    let upstream = one(spans, trace, "upstream good");
    assert_eq!(upstream.kind, CLIENT);
    assert_eq!(upstream.status, 0, "not an error");
    assert_eq!(upstream.parent_span_id, server.span_id);
    assert_eq!(upstream.attribute("http.response.status_code"), Some("200"));
    let outbound = one(spans, trace, "outbound side");
    assert_eq!(outbound.kind, CLIENT);
    assert_eq!(
        outbound.parent_span_id, route_hook.span_id,
        "the outbound call is a child of the hook that made it"
    );
    assert_eq!(
        spans.iter().filter(|s| s.trace_id == trace).count(),
        7,
        "exactly the request, four hook calls, the upstream and the outbound call"
    );
    (upstream.span_id.clone(), outbound.span_id.clone())
}

async fn traced_requests(protocol: &str) {
    let (good, side) = (Backend::start().await, Backend::start().await);
    let receiver = Receiver::default();
    let endpoint = match protocol {
        "grpc" => receiver.start_grpc().await,
        _ => receiver.start_http().await,
    };
    let setup = traced(&good, &side, &endpoint, protocol, 1.0);
    let (mut process, output) = Process::start_capturing(&setup.write()).await;
    // Two new traces, then one continuing the client's.
    let mut upstream_parents = Vec::new();
    for _ in 0..2 {
        assert_eq!(get(&process.url("/a")).await.status, 200);
        upstream_parents.push((traceparent_of(&good, "/a"), traceparent_of(&side, "/side")));
    }
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let request = http::Request::get(process.url("/a"))
        .header("traceparent", format!("00-{client_trace}-{client_span}-01"))
        .header("x-forwarded-for", "203.0.113.77")
        .body(weir::http::body::empty())
        .unwrap();
    assert_eq!(send(&client::http1(), request).await.status, 200);
    upstream_parents.push((traceparent_of(&good, "/a"), traceparent_of(&side, "/side")));
    assert!(process.terminate().await.success());

    let spans = receiver.spans();
    let traces: HashSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces.len(), 3, "one trace per request: {spans:#?}");
    for (i, ((up_trace, up_parent, up_flags), (side_trace, side_parent, _))) in
        upstream_parents.iter().enumerate()
    {
        assert_eq!(
            up_trace, side_trace,
            "one trace for the upstream and the outbound call"
        );
        assert!(
            traces.contains(up_trace.as_str()),
            "the upstream's trace was exported"
        );
        assert_eq!(up_flags, "01", "sampled");
        let client_parent = if i == 2 {
            assert_eq!(up_trace, client_trace, "the client's trace is continued");
            client_span
        } else {
            ""
        };
        let (upstream_span, outbound_span) = check_trace(&spans, up_trace, client_parent);
        assert_eq!(
            up_parent, &upstream_span,
            "the upstream's parent is the upstream span"
        );
        assert_eq!(
            side_parent, &outbound_span,
            "the outbound target's parent is the outbound span"
        );
    }
    // The client behind the trusted proxy (127.0.0.1), in the span (OTel
    // semantic conventions) and in the access log.
    let server = one(&spans, client_trace, "GET");
    assert_eq!(server.attribute("client.address"), Some("203.0.113.77"));
    assert_eq!(server.attribute("network.peer.address"), Some("127.0.0.1"));
    let untraced = spans
        .iter()
        .find(|s| s.trace_id != client_trace && s.name == "GET");
    assert_eq!(
        untraced.unwrap().attribute("client.address"),
        Some("127.0.0.1")
    );
    // The access log names each trace.
    let log = output.text();
    assert!(log.contains("\"client\":\"203.0.113.77\""), "{log}");
    for trace in &traces {
        assert!(
            log.contains(&format!("\"trace_id\":\"{trace}\"")),
            "no access line for {trace}:\n{log}"
        );
    }
}

use crate::support::client;

#[tokio::test]
async fn otlp_http_receives_one_trace_per_request_correctly_parented() {
    traced_requests("http/protobuf").await;
}

#[tokio::test]
async fn otlp_grpc_receives_one_trace_per_request_correctly_parented() {
    traced_requests("grpc").await;
}

#[tokio::test]
async fn at_ratio_zero_nothing_is_exported_but_the_context_still_propagates() {
    let (good, side) = (Backend::start().await, Backend::start().await);
    let receiver = Receiver::default();
    let endpoint = receiver.start_http().await;
    let setup = traced(&good, &side, &endpoint, "http/protobuf", 0.0);
    let mut process = Process::start(&setup.write()).await;
    for _ in 0..5 {
        assert_eq!(get(&process.url("/a")).await.status, 200);
    }
    let (trace, _, flags) = traceparent_of(&good, "/a");
    assert_eq!(flags, "00", "not sampled");
    assert_ne!(trace, "0".repeat(32));
    assert!(process.terminate().await.success());
    assert_eq!(
        receiver.spans().len(),
        0,
        "nothing sampled, nothing exported"
    );
}
