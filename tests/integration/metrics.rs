//! `GET /metrics` on the admin listener of a real `weir` process, parsed by
//! the Prometheus client library's OpenMetrics parser: after a known mix of
//! requests the counters equal the mix exactly, histogram counts match, and
//! label sets stay bounded however many distinct routes a plugin names.

use sha2::Digest;

use crate::support::openmetrics::Exposition;
use crate::support::process::Process;
use crate::support::*;

const KEY: &str = "metrics-test-key";

/// A scripted router (routes by path, and traps on `/trap`), auth (API key
/// on `private`, public otherwise), and a limit of 2 on `limited`.
fn mixed(good: &Backend, dead: &str) -> Setup {
    let route = |path: &str, route: &str, upstream: &str| {
        json!({"op": "when_path", "path": path, "then": [
            {"op": "set_context", "key": "route", "value": route},
            {"op": "set_upstream", "name": upstream}]})
    };
    Setup::new()
        .upstream("good", &[good.url()])
        .upstream_with(
            "dead",
            &format!("targets = [\"http://{dead}\"]\nretries = 0\npassive = {{ failures = 0 }}"),
        )
        .scripted(
            "10-route",
            json!({"on_request": [
                route("/ok", "ok", "good"),
                route("/private", "private", "good"),
                route("/limited", "limited", "good"),
                route("/down", "down", "dead"),
                {"op": "when_path", "path": "/trap", "then": [{"op": "trap"}]}]}),
        )
        .plugin(
            "60-auth",
            "weir_plugin_auth",
            Some(json!({
                "api_key": {"header": "x-api-key", "consumers": [
                    {"id": "alice", "sha256": hex::encode(sha2::Sha256::digest(KEY.as_bytes()))}]},
                "default": {"public": true},
                "routes": {"private": {"methods": ["api_key"]}}
            })),
        )
        .plugin(
            "70-rate-limit",
            "weir_plugin_rate_limit",
            Some(json!({"limits": [
                {"name": "tiny", "key": "route", "rate": 2, "per": "1h", "routes": ["limited"]}]})),
        )
}

async fn call(method: http::Method, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = weir::http::body::full(bytes::Bytes::from(body.to_string()));
    send(&client::http1(), builder.body(body).unwrap()).await
}

async fn scrape(process: &Process) -> Exposition {
    let reply = get(&process.admin_url("/metrics")).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        reply.header("content-type")
    );
    Exposition::parse(&reply.text())
}

fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

use crate::support::client::{self, Reply};

#[tokio::test]
async fn after_a_known_mix_the_counters_equal_the_mix() {
    let good = Backend::start().await;
    let dead = closed_port();
    let mut process = Process::start(&mixed(&good, &dead).write()).await;
    let url = |path: &str| process.url(path);
    let mut ok_response_bytes = 0;
    // 3 GETs and 2 POSTs of 100 bytes, routed and proxied.
    for _ in 0..3 {
        let reply = call(http::Method::GET, &url("/ok"), &[], "").await;
        assert_eq!(reply.status, 200);
        ok_response_bytes += reply.body.len();
    }
    for _ in 0..2 {
        let reply = call(http::Method::POST, &url("/ok"), &[], &"x".repeat(100)).await;
        assert_eq!(reply.status, 200);
        ok_response_bytes += reply.body.len();
    }
    // 3 without a key (401 from auth), 2 with one.
    for _ in 0..3 {
        assert_eq!(get(&url("/private")).await.status, 401);
    }
    for _ in 0..2 {
        let reply = call(
            http::Method::GET,
            &url("/private"),
            &[("x-api-key", KEY)],
            "",
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    // 2 pass the limit of 2, 2 are refused.
    let limited: Vec<u16> = {
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(get(&url("/limited")).await.status.as_u16());
        }
        statuses
    };
    assert_eq!(limited, [200, 200, 429, 429]);
    // 2 plugin traps, 2 upstream down, 1 with no route.
    for _ in 0..2 {
        assert_eq!(get(&url("/trap")).await.status, 500);
    }
    for _ in 0..2 {
        assert_eq!(get(&url("/down")).await.status, 502);
    }
    assert_eq!(get(&url("/nowhere")).await.status, 404);

    let m = scrape(&process).await;
    let requests = |route, upstream, class, by| {
        m.value(
            "weir_requests_total",
            &[
                ("route", route),
                ("upstream", upstream),
                ("status_class", class),
                ("answered_by", by),
            ],
        )
    };
    assert_eq!(requests("ok", "good", "2xx", "upstream"), 5.0);
    assert_eq!(requests("private", "good", "4xx", "60-auth"), 3.0);
    assert_eq!(requests("private", "good", "2xx", "upstream"), 2.0);
    assert_eq!(requests("limited", "good", "2xx", "upstream"), 2.0);
    assert_eq!(requests("limited", "good", "4xx", "70-rate-limit"), 2.0);
    // The trap happens in the hook that would have named the route.
    assert_eq!(requests("-", "-", "5xx", "10-route"), 2.0);
    assert_eq!(requests("down", "dead", "5xx", "gateway"), 2.0);
    assert_eq!(requests("-", "-", "4xx", "gateway"), 1.0);
    assert_eq!(
        m.value("weir_requests_total", &[]),
        19.0,
        "no request is counted twice or missed"
    );

    // Histogram counts match the counters.
    let durations = |route| m.value("weir_request_duration_seconds_count", &[("route", route)]);
    assert_eq!(
        (
            durations("ok"),
            durations("private"),
            durations("limited"),
            durations("down"),
            durations("-")
        ),
        (5.0, 5.0, 4.0, 2.0, 3.0)
    );
    let hooks = |plugin| {
        m.value(
            "weir_plugin_hook_duration_seconds_count",
            &[("plugin", plugin), ("hook", "on_request")],
        )
    };
    // Every request reaches the router; auth sees all but the traps; the
    // limiter all but those auth refused.
    assert_eq!(
        (hooks("10-route"), hooks("60-auth"), hooks("70-rate-limit")),
        (19.0, 17.0, 14.0)
    );
    assert_eq!(
        m.value(
            "weir_upstream_request_duration_seconds_count",
            &[("upstream", "good")]
        ),
        9.0
    );
    assert_eq!(
        m.value(
            "weir_upstream_failures_total",
            &[("upstream", "dead"), ("cause", "connect")]
        ),
        2.0
    );
    assert_eq!(
        m.value(
            "weir_plugin_failures_total",
            &[("plugin", "10-route"), ("cause", "trap")]
        ),
        2.0
    );
    assert_eq!(
        m.value("weir_plugin_failures_total", &[]),
        2.0,
        "only the traps failed"
    );
    assert_eq!(
        m.value(
            "weir_rate_limit_decisions_total",
            &[("plugin", "70-rate-limit"), ("outcome", "allowed")]
        ),
        2.0
    );
    assert_eq!(
        m.value(
            "weir_rate_limit_decisions_total",
            &[("plugin", "70-rate-limit"), ("outcome", "refused")]
        ),
        2.0
    );
    // Bytes, as streamed.
    assert_eq!(
        m.value("weir_request_body_bytes_total", &[("route", "ok")]),
        200.0
    );
    assert_eq!(
        m.value("weir_response_body_bytes_total", &[("route", "ok")]),
        ok_response_bytes as f64
    );
    // State read at scrape time.
    assert_eq!(m.value("weir_plugins_loaded", &[]), 3.0);
    assert_eq!(
        m.value("weir_upstream_healthy_targets", &[("upstream", "good")]),
        1.0
    );
    assert_eq!(
        m.value("weir_upstream_targets", &[("upstream", "dead")]),
        1.0
    );
    // The two trapped instances were replaced.
    assert!(
        m.value(
            "weir_plugin_instantiations_total",
            &[("plugin", "10-route")]
        ) >= 3.0
    );
    assert!(m.value("process_resident_memory_bytes", &[]) > 1e6);
    assert!(m.value("process_open_fds", &[]) >= 3.0);
    assert!(m.value("process_cpu_seconds_total", &[]) > 0.0);
    assert!(process.terminate().await.success());
}

#[tokio::test]
async fn reloads_are_counted_with_their_result() {
    let good = Backend::start().await;
    let setup = mixed(&good, &closed_port()).reload("watch = false");
    let mut process = Process::start(&setup.write()).await;
    let reload = || async {
        let request = http::Request::post(process.admin_url("/admin/reload"))
            .body(weir::http::body::empty())
            .unwrap();
        send(&client::http1(), request).await.status.as_u16()
    };
    assert_eq!(reload().await, 200);
    assert_eq!(reload().await, 200);
    std::fs::write(setup.plugins_dir().join("60-auth.json"), "{ not json").unwrap();
    assert_eq!(reload().await, 422);
    let m = scrape(&process).await;
    assert_eq!(m.value("weir_reloads_total", &[("result", "ok")]), 2.0);
    assert_eq!(m.value("weir_reloads_total", &[("result", "failed")]), 1.0);
    let last = m.value("weir_last_reload_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - last).abs() < 60.0,
        "last reload at {last}, now {now}"
    );
    assert!(process.terminate().await.success());
}

#[tokio::test]
async fn ten_thousand_distinct_routes_stay_within_the_label_cap() {
    let good = Backend::start().await;
    // A plugin that names the route after a header: the worst case, a
    // route per request.
    let setup = Setup::new().upstream("good", &[good.url()]).scripted(
        "10-route",
        json!({"on_request": [
            {"op": "set_upstream", "name": "good"},
            {"op": "header_to_context", "header": "x-route", "key": "route"}]}),
    );
    let mut process = Process::start(&setup.write()).await;
    let base = process.url("/");
    let tasks: Vec<_> = (0..16)
        .map(|worker| {
            let base = base.clone();
            tokio::spawn(async move {
                let client = client::http1();
                for i in (worker..10_000).step_by(16) {
                    let request = http::Request::get(format!("{base}p/{i}"))
                        .header("x-route", format!("route-{i}"))
                        .body(weir::http::body::empty())
                        .unwrap();
                    assert_eq!(send(&client, request).await.status, 200);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let m = scrape(&process).await;
    assert_eq!(m.value("weir_requests_total", &[]), 10_000.0);
    let series = m.series("weir_requests_total");
    let cap = weir::telemetry::host_metrics::MAX_ROUTES;
    assert!(
        series <= cap + 1,
        "{series} request series for 10,000 routes"
    );
    assert!(
        m.value("weir_requests_total", &[("route", "other")]) >= (10_000 - cap) as f64,
        "routes past the cap are counted under `other`"
    );
    // No label anywhere holds a path.
    assert!(
        m.0.iter()
            .all(|s| s.labels.values().all(|v| !v.starts_with("/p/"))),
        "a raw path became a label value"
    );
    assert!(process.terminate().await.success());
}

#[tokio::test]
async fn with_metrics_off_the_endpoint_says_so() {
    let good = Backend::start().await;
    let setup = Setup::new()
        .upstream("good", &[good.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "good"}]}),
        )
        .section("[metrics]\nenabled = false");
    let mut process = Process::start(&setup.write()).await;
    assert_eq!(get(&process.url("/")).await.status, 200);
    let reply = get(&process.admin_url("/metrics")).await;
    assert_eq!(reply.status, 404);
    assert!(reply.text().contains("enabled = false"), "{}", reply.text());
    assert!(process.terminate().await.success());
}
