//! proxy-wasm filters, built from source with the proxy-wasm Rust SDK from
//! crates.io (`tests/proxy-wasm`), running unmodified as plugins: header
//! edits both ways, a local reply, a JSON body rewrite, an external
//! authorization call that pauses the request, shared data on one Redis
//! seen by two gateways, metrics, a trap contained to its request, and a
//! grant refusal.
//!
//! Behaviours are those of the proxy-wasm ABI v0.2.1 specification
//! (proxy-wasm/spec, `abi-versions/v0.2.1/README.md`), by the section of
//! the function each test relies on: `proxy_on_configure` (configuration
//! bytes, a `false` return fails the plugin), `proxy_get/set_header_map_*`
//! and their map types (with `:path` among request headers),
//! `proxy_send_local_response`, `proxy_get/set_buffer_bytes` with
//! `proxy_on_request_body`/`proxy_on_response_body`, `proxy_http_call`
//! with `proxy_on_http_call_response` and `proxy_continue_stream`,
//! `proxy_get/set_shared_data` (the CAS argument: 0 writes
//! unconditionally, a stale one answers `CAS_MISMATCH`), and
//! `proxy_define_metric`/`proxy_increment_metric`/`proxy_record_metric`.

use std::path::PathBuf;

use http::Method;

use crate::support::client::call;
use crate::support::plugin_metrics::text as metrics_text;
use crate::support::process::{Process, run_to_end};
use crate::support::redis::RedisServer;
use crate::support::*;

/// A built proxy-wasm filter, e.g. `pw_headers`.
fn filter(artifact: &str) -> PathBuf {
    let path = std::path::Path::new(weir::BUILT_PROXY_WASM_DIR).join(format!("{artifact}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: the build script builds it",
        path.display()
    );
    path
}

/// `filter` at `10-STEM` with `config` bytes (any bytes: not JSON), and a
/// scripted plugin sending every request to `backend`.
fn with_filter(stem: &str, artifact: &str, config: Option<&[u8]>, backend: &Backend) -> Setup {
    let setup = Setup::new()
        .upstream("backend", &[backend.url()])
        .plugin_file(&format!("10-{stem}"), &filter(artifact), None)
        .scripted(
            "90-upstream",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        );
    if let Some(config) = config {
        std::fs::write(setup.plugins_dir().join(format!("10-{stem}.json")), config).unwrap();
    }
    setup
}

#[tokio::test]
async fn a_filter_edits_request_and_response_headers_and_reads_its_opaque_config() {
    let backend = Backend::start().await;
    // proxy-wasm configurations are bytes: this one is not JSON.
    let gw = with_filter(
        "headers",
        "pw_headers",
        Some(b"tag=abc; not json"),
        &backend,
    )
    .serve()
    .await;
    let reply = call(
        &gw.url("/headers?q=1"),
        Method::GET,
        &[("x-replace", "original"), ("x-remove", "1")],
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    let seen = backend.last().unwrap();
    assert_eq!(seen.headers["x-pw-request"], "yes");
    assert_eq!(seen.headers["x-replace"], "replaced");
    assert!(seen.headers.get("x-remove").is_none());
    // `:path` is among the request's headers, as the ABI defines.
    assert_eq!(seen.headers["x-pw-seen-path"], "/headers?q=1");
    assert_eq!(reply.header("x-pw-response"), Some("yes"));
    assert_eq!(reply.header("x-pw-config"), Some("tag=abc; not json"));
    assert_eq!(reply.header("x-pw-property-path"), Some("/headers?q=1"));
    assert_eq!(reply.header("x-pw-plugin-name"), Some("10-headers"));
    let plugins = gw.gateway.pipeline();
    let info = plugins.plugins()[0].info();
    assert_eq!(info.contract, "proxy-wasm 0.2.1");
}

#[tokio::test]
async fn a_filter_answers_403_with_a_local_reply() {
    let backend = Backend::start().await;
    let gw = with_filter("headers", "pw_headers", None, &backend)
        .serve()
        .await;
    let reply = call(&gw.url("/"), Method::GET, &[("x-deny", "1")], "").await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.text(), "denied by filter\n");
    assert_eq!(reply.header("x-denied-by"), Some("pw-headers"));
    assert_eq!(
        backend.hits(),
        0,
        "a local reply never reaches the upstream"
    );
}

#[tokio::test]
async fn a_filter_rewrites_a_json_request_body_and_the_response_body() {
    let backend = Backend::start().await;
    let gw = with_filter("json", "pw_json_body", None, &backend)
        .serve()
        .await;
    let reply = call(
        &gw.url("/echo"),
        Method::POST,
        &[("content-type", "application/json")],
        r#"{"user":"a","password":"hunter2"}"#,
    )
    .await;
    assert_eq!(reply.status, 200);
    // The backend echoes what it received: the rewritten body, whose new
    // length the gateway framed.
    assert_eq!(
        reply.text(),
        "{\"user\":\"a\",\"password\":\"***\",\"filtered\":true}\n-- filtered by pw-json-body\n"
    );
    let refused = call(&gw.url("/echo"), Method::POST, &[], "not json").await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.text(), "expected a JSON object\n");
}

fn auth_setup(backend: &Backend, auth: &Backend) -> Setup {
    with_filter("auth", "pw_auth_call", None, backend).upstream("auth", &[auth.url()])
}

#[tokio::test]
async fn an_auth_filter_pauses_for_its_http_call_then_resumes_or_denies() {
    let (backend, auth) = (Backend::start().await, Backend::start().await);
    auth.serve_http("/check", 200, &[("x-user", "alice")], "");
    // Each call takes 300 ms. Two requests paused for their calls at once
    // end together: a paused request waits without holding the worker
    // (the in-process gateway runs on one thread here).
    auth.set_delay(300);
    let gw = auth_setup(&backend, &auth).serve().await;
    let url = gw.url("/private");
    let started = std::time::Instant::now();
    let (first, second) = tokio::join!(
        call(&url, Method::GET, &[("authorization", "Bearer t1")], ""),
        call(&url, Method::GET, &[("authorization", "Bearer t1")], ""),
    );
    let took = started.elapsed();
    assert_eq!(
        (first.status.as_u16(), second.status.as_u16()),
        (200, 200),
        "{}",
        first.text()
    );
    assert!(took >= std::time::Duration::from_millis(300), "{took:?}");
    assert!(
        took < std::time::Duration::from_millis(550),
        "paused requests ran one after the other: {took:?}"
    );
    assert_eq!(
        auth.last_at("/check").unwrap().headers["authorization"],
        "Bearer t1"
    );
    assert_eq!(
        backend.last_at("/private").unwrap().headers["x-user"],
        "alice"
    );

    auth.set_delay(0);
    auth.set_failing(401);
    let denied = call(
        &gw.url("/private"),
        Method::GET,
        &[("authorization", "Bearer bad")],
        "",
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.header("x-auth-status"), Some("401"));
    assert!(backend.last_at("/private").unwrap().headers["authorization"] == "Bearer t1");
}

#[tokio::test]
async fn an_http_call_outside_the_grant_is_refused() {
    let (backend, auth) = (Backend::start().await, Backend::start().await);
    let gw = auth_setup(&backend, &auth)
        .section("[plugins.10-auth]\ncapabilities = [\"log\", \"outbound:backend\"]")
        .serve()
        .await;
    let reply = call(
        &gw.url("/private"),
        Method::GET,
        &[("authorization", "Bearer t1")],
        "",
    )
    .await;
    // The SDK's dispatch_http_call returns the host's BadArgument; the
    // filter answers 503 with it. No call was made.
    assert_eq!(reply.status, 503);
    assert_eq!(reply.text(), "auth call refused: BadArgument\n");
    assert_eq!(auth.hits(), 0);
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn shared_data_is_one_counter_for_two_gateways_on_one_redis() {
    let redis = RedisServer::start();
    let backend = Backend::start().await;
    let setup = with_filter("counter", "pw_counter", None, &backend)
        .state("backend = \"redis\"")
        .state(&format!("url = {:?}", redis.url()))
        .state("timeout_ms = 500");
    let (one, two) = (setup.serve().await, setup.serve().await);
    // The first write creates the key: the ABI has no compare-and-swap on
    // an absent key (cas 0 writes unconditionally, in Envoy too), so it
    // goes alone; every later one races.
    assert_eq!(get(&one.url("/")).await.header("x-hits"), Some("1"));
    let mut tasks = Vec::new();
    for i in 1..40 {
        let url = if i % 2 == 0 {
            one.url("/")
        } else {
            two.url("/")
        };
        tasks.push(tokio::spawn(async move { get(&url).await }));
    }
    let mut hits = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        hits.push(reply.header("x-hits").unwrap().parse::<u64>().unwrap());
    }
    hits.push(1);
    hits.sort_unstable();
    // Compare-and-swap across both gateways: no update lost, none repeated.
    assert_eq!(hits, (1..=40).collect::<Vec<u64>>());
}

#[tokio::test]
async fn a_filters_metrics_are_prometheus_families() {
    let backend = Backend::start().await;
    let gw = with_filter("counter", "pw_counter", None, &backend)
        .serve()
        .await;
    for _ in 0..5 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    let text = metrics_text(&gw);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
            .to_string()
    };
    assert_eq!(
        line("weir_plugin_counter_pw_counter_requests_total"),
        "weir_plugin_counter_pw_counter_requests_total{plugin=\"10-counter\"} 5"
    );
    assert_eq!(
        line("weir_plugin_counter_pw_counter_last_hits"),
        "weir_plugin_counter_pw_counter_last_hits{plugin=\"10-counter\"} 5.0"
    );
    assert!(line("weir_plugin_counter_pw_counter_header_count_count").ends_with(" 5"));
}

#[tokio::test]
async fn a_trapping_filter_costs_its_request_only() {
    let backend = Backend::start().await;
    let gw = with_filter("headers", "pw_headers", None, &backend)
        .serve()
        .await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let url = gw.url("/");
        tasks.push(tokio::spawn(async move {
            let headers: &[(&str, &str)] = if i % 3 == 0 { &[("x-trap", "1")] } else { &[] };
            (
                i,
                call(&url, Method::GET, headers, "").await.status.as_u16(),
            )
        }));
    }
    for task in tasks {
        let (i, status) = task.await.unwrap();
        assert_eq!(status, if i % 3 == 0 { 500 } else { 200 }, "request {i}");
    }
    // The trapped instances were discarded; the filter serves on.
    assert_eq!(get(&gw.url("/")).await.status, 200);
}

#[tokio::test]
async fn a_filter_rejecting_its_configuration_is_not_loaded() {
    let backend = Backend::start().await;
    let err = with_filter("headers", "pw_headers", Some(b"reject me"), &backend)
        .try_gateway()
        .await
        .err()
        .expect("the configuration is rejected")
        .to_string();
    assert!(err.contains("10-headers.wasm"), "{err}");
    assert!(
        err.contains("proxy_on_configure rejected the plugin configuration"),
        "{err}"
    );
}

#[tokio::test]
async fn check_admin_and_test_plugin_show_and_run_a_filter() {
    let backend = Backend::start().await;
    let setup = with_filter("headers", "pw_headers", Some(b"tag=cli"), &backend)
        .plugin_file("20-counter", &filter("pw_counter"), None)
        .admin("token = \"s3cret\"");
    let config = setup.write();
    let config = config.to_str().unwrap();

    let (ok, out, err) = run_to_end(&["check", "--config", config]).await;
    assert!(ok, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("plugin 10-headers ok ("))
        .unwrap();
    assert!(
        line.contains(", proxy-wasm 0.2.1 filter) imports: "),
        "{line}"
    );

    let process = Process::start(std::path::Path::new(config)).await;
    let client = crate::support::client::http1();
    let admin = |path: &str| {
        let request = http::Request::builder()
            .uri(process.admin_url(path))
            .header("authorization", "Bearer s3cret")
            .body(weir::http::body::empty())
            .unwrap();
        send(&client, request)
    };
    for _ in 0..3 {
        assert_eq!(get(&process.url("/")).await.status, 200);
    }
    // The filter's metrics, scraped from the binary's `/metrics`.
    let scrape = admin("/metrics").await.text();
    assert!(
        scrape
            .lines()
            .any(|l| l == "weir_plugin_counter_pw_counter_requests_total{plugin=\"20-counter\"} 3"),
        "{scrape}"
    );
    let plugins = admin("/admin/plugins").await.json();
    let listed = &plugins["plugins"][0];
    assert_eq!(listed["name"], "10-headers");
    assert_eq!(listed["contract"], "proxy-wasm 0.2.1");
    assert_eq!(listed["kind"], "proxy-wasm");
    assert_eq!(listed["hooks"], json!(["on-request", "on-response"]));
    drop(process);

    // `weir test-plugin` runs a filter as it runs a component; its
    // configuration file is given as bytes, not parsed as JSON.
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let config = file("filter.conf", "tag=kit");
    let request = file(
        "request.json",
        r#"{"method": "GET", "path": "/kit", "headers": {"x-remove": "1"}}"#,
    );
    let response = file("response.json", r#"{"status": 200, "body": "ok"}"#);
    let wasm = filter("pw_headers");
    let (ok, out, err) = run_to_end(&[
        "test-plugin",
        wasm.to_str().unwrap(),
        "--config",
        &config,
        "--request",
        &request,
        "--response",
        &response,
    ])
    .await;
    assert!(ok, "{out}{err}");
    let output: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(output["on_request"]["action"], "continue");
    assert_eq!(
        output["on_request"]["request"]["headers"]["x-pw-request"],
        "yes"
    );
    assert!(
        output["on_request"]["request"]["headers"]
            .get("x-remove")
            .is_none()
    );
    assert_eq!(
        output["on_response"]["response"]["headers"]["x-pw-config"],
        "tag=kit"
    );
}

#[tokio::test]
async fn a_paused_request_ends_at_the_hook_deadline() {
    let (backend, auth) = (Backend::start().await, Backend::start().await);
    auth.serve_http("/check", 200, &[("x-user", "alice")], "");
    auth.set_delay(5_000);
    let gw = auth_setup(&backend, &auth)
        .limit("hook_deadline_ms = 300")
        .serve()
        .await;
    let started = std::time::Instant::now();
    let reply = get(&gw.url("/private")).await;
    let took = started.elapsed();
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(
        took < std::time::Duration::from_millis(1_000),
        "answered after {took:?}"
    );
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn a_filters_failure_policy_applies_as_to_any_plugin() {
    let backend = Backend::start().await;
    let gw = with_filter("headers", "pw_headers", None, &backend)
        .section("[plugins.10-headers]\non_failure = \"skip\"")
        .serve()
        .await;
    // The filter traps; `skip` lets the request go on without it.
    let reply = call(&gw.url("/"), Method::GET, &[("x-trap", "1")], "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        backend
            .last()
            .unwrap()
            .headers
            .get("x-pw-request")
            .is_none()
    );
}
