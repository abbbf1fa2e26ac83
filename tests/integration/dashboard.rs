//! The Grafana dashboard (`deploy/grafana/weir.json`) queries only metric
//! families the gateway exposes: every name in its PromQL is in the
//! exposition of a gateway running the default plugins.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::client::{Reply, http1};
use crate::support::process::Process;
use crate::support::redis::RedisServer;
use crate::support::*;

fn dashboard() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/weir.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every PromQL expression of the dashboard: panel targets and variables.
fn expressions(dashboard: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            found.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        found.push(variable["definition"].as_str().unwrap().to_string());
    }
    found
}

/// Metric names in `expr`: identifiers followed by a selector, or the
/// first argument of `label_values(`.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let starts = (c.is_ascii_lowercase() || c == b'_')
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if !starts {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let word = &expr[start..i];
        if bytes.get(i) == Some(&b'{') || expr[..start].ends_with("label_values(") {
            names.push(word.to_string());
        }
    }
    names
}

/// The family a sample name belongs to, as `# TYPE` names it.
fn family_of(sample: &str) -> &str {
    for suffix in ["_total", "_bucket", "_count", "_sum"] {
        if let Some(family) = sample.strip_suffix(suffix) {
            return family;
        }
    }
    sample
}

/// A port nothing listens on.
fn closed_port() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

async fn with_token(method: http::Method, url: &str, token: &str) -> Reply {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .body(weir::http::body::empty())
        .unwrap();
    send(&http1(), request).await
}

#[tokio::test]
async fn the_dashboard_queries_only_families_the_gateway_exposes() {
    // The `weir` binary with the default plugins, Redis state and a plugin
    // that traps on `/trap`, so that every family the dashboard queries has
    // a sample (families without one are not in the exposition).
    let mut redis = RedisServer::start();
    let users = Backend::start().await;
    users.serve_json("/7.json", &json!({"id": 7, "name": "Ada"}));
    let token = "dashboard-token";
    let mut setup = Setup::new()
        .upstream("users", &[users.url()])
        .upstream("orders", &[closed_port()])
        .state("backend = \"redis\"")
        .state(&format!("url = {:?}", redis.url()))
        .admin(&format!("token = {token:?}"))
        .reload("watch = false")
        .scripted(
            "10-trap",
            json!({"on_request": [{"op": "when_path", "path": "/trap", "then": [{"op": "trap"}]}]}),
        );
    for plugin in weir::tooling::init::DEFAULT_PLUGINS {
        setup = setup
            .raw_file(&format!("{}.wasm", plugin.stem), plugin.wasm)
            .raw_file(&format!("{}.json", plugin.stem), plugin.config.as_bytes());
    }
    let gw = Process::start(&setup.write()).await;
    assert_eq!(get(&gw.url("/users/7")).await.status, 200);
    assert_eq!(get(&gw.url("/users/7/summary")).await.status, 200);
    assert_eq!(get(&gw.url("/trap")).await.status, 500);
    let down = http::Request::builder()
        .uri(gw.url("/orders/1"))
        .header("x-api-key", "weir-demo-key")
        .body(weir::http::body::empty())
        .unwrap();
    // 502, or 503 once the target is ejected (the summary's optional call
    // to `orders` failed to connect too).
    let status = send(&http1(), down).await.status.as_u16();
    assert!(matches!(status, 502 | 503), "{status}");
    let reload = with_token(http::Method::POST, &gw.admin_url("/admin/reload"), token).await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    // Redis gone: the limiter's calls fail (and the request passes: the
    // default policy is fail open).
    redis.stop();
    get(&gw.url("/users/8")).await;

    // `/metrics` needs the token.
    assert_eq!(get(&gw.admin_url("/metrics")).await.status, 401);
    let scrape = with_token(http::Method::GET, &gw.admin_url("/metrics"), token).await;
    assert_eq!(scrape.status, 200, "{}", scrape.text());
    let exposition = scrape.text();
    let exposed: BTreeSet<&str> = exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .collect();

    let dashboard = dashboard();
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    let expressions = expressions(&dashboard);
    let mut queried = BTreeSet::new();
    for expr in &expressions {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric found in `{expr}`");
        queried.extend(names);
    }
    let missing: Vec<&String> = queried
        .iter()
        .filter(|name| !exposed.contains(family_of(name)))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, which the gateway does not expose; it exposes {exposed:?}"
    );
    // The families the dashboard is built on are all there.
    for family in [
        "weir_requests",
        "weir_request_duration_seconds",
        "weir_upstream_failures",
        "weir_plugin_hook_duration_seconds",
        "weir_plugin_failures",
        "weir_reloads",
        "weir_state_store_errors",
        "weir_plugin_auth_outcomes",
        "weir_plugin_rate_limit_refusals",
        "weir_plugin_aggregate_calls",
        "process_cpu_seconds",
    ] {
        assert!(
            queried.iter().any(|name| family_of(name) == family),
            "the dashboard does not use {family}"
        );
    }
}
