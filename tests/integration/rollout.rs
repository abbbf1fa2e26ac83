//! Plugin versions under load: quarantine of a failing plugin (and its
//! re-probe), canaries (share, stickiness, automatic rollback) and
//! promotion, with the admin API's view of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Method;

use crate::support::process::Process;
use crate::support::*;

fn route() -> serde_json::Value {
    json!({"on_request": [{"op": "set_upstream", "name": "backend"}]})
}

/// A plugin that marks responses with its version.
fn version(name: &str) -> serde_json::Value {
    json!({"on_response": [{"op": "set_header", "name": "x-version", "value": name}]})
}

/// Trap on `/bad`, mark the rest.
fn flaky() -> serde_json::Value {
    json!({"on_request": [{"op": "when_path", "path": "/bad", "then": [{"op": "trap"}]}]})
}

async fn get_with(url: &str, header: (&str, &str)) -> client::Reply {
    let mut req = request(Method::GET, url, "");
    req.headers_mut().insert(
        http::HeaderName::from_bytes(header.0.as_bytes()).unwrap(),
        http::HeaderValue::from_str(header.1).unwrap(),
    );
    send(&client::http1(), req).await
}

#[tokio::test]
async fn a_plugin_failing_half_its_calls_is_quarantined_and_reprobed() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted("10-route", route())
        .scripted("20-flaky", flaky())
        .section(
            "[plugins.20-flaky.quarantine]\nfailure_rate = 0.3\nmin_calls = 10\n\
             window_s = 60\nbackoff_s = 1\nmax_backoff_s = 2",
        )
        .serve()
        .await;
    let pipeline = gw.gateway.pipeline();
    let health = &pipeline.governed(1).unwrap().health;
    // Half the requests trap. The record counts hook calls: a good request
    // makes two (on-request, on-response), a bad one fails the first, so
    // a third of the calls fail; past ten calls that quarantines it.
    for i in 0..20 {
        if health.quarantined() {
            break;
        }
        let path = if i % 2 == 0 { "/bad" } else { "/good" };
        let expected = if i % 2 == 0 { 500 } else { 200 };
        assert_eq!(get(&gw.url(path)).await.status, expected, "call {i}");
    }
    assert!(health.quarantined(), "quarantined within the window");
    let at_quarantine = health.totals();
    assert!(at_quarantine.0 >= 10 && at_quarantine.1 * 10 >= at_quarantine.0 * 3);
    // Quarantined with `reject`: not called, 503 naming it.
    let reply = get(&gw.url("/good")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json()["plugin"], "20-flaky");
    assert_eq!(reply.json()["cause"], "quarantined");
    assert_eq!(
        health.totals(),
        at_quarantine,
        "a quarantined plugin is not called"
    );
    // After the back-off one request probes it; it succeeds, so the
    // quarantine is lifted and requests flow again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = get(&gw.url("/good")).await.status;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "never re-probed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!health.quarantined());
    // The probe (its on-request) and the same request's on-response.
    assert_eq!(
        health.totals(),
        (at_quarantine.0 + 2, at_quarantine.1),
        "exactly one probe"
    );
    assert_eq!(get(&gw.url("/good")).await.status, 200);
}

#[tokio::test]
async fn a_quarantined_skip_plugin_is_passed_over() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted("10-route", route())
        .scripted("20-flaky", flaky())
        .section(
            "[plugins.20-flaky]\non_failure = \"skip\"\n\
             [plugins.20-flaky.quarantine]\nmin_calls = 4\nbackoff_s = 60",
        )
        .serve()
        .await;
    for _ in 0..10 {
        assert_eq!(get(&gw.url("/bad")).await.status, 200);
    }
    let pipeline = gw.gateway.pipeline();
    let health = &pipeline.governed(1).unwrap().health;
    assert!(health.quarantined());
    // Two bad requests: each fails on-request (skipped) and then runs
    // on-response; four calls, two failed, and it is quarantined.
    assert_eq!(health.totals(), (4, 2), "not called once quarantined");
    assert_eq!(backend.hits(), 10);
}

#[tokio::test]
async fn a_canary_at_ten_percent_gets_its_share_sticky_per_client() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted("10-route", route())
        .scripted("20-version", version("stable"))
        .scripted("20-version.canary", version("canary"))
        .section("[plugins.20-version.canary]\nshare = 0.1\nsticky = \"header:x-user\"")
        .serve()
        .await;
    let mut canary_users = Vec::new();
    for i in 0..2000 {
        let user = format!("user-{i}");
        let reply = get_with(&gw.url("/"), ("x-user", &user)).await;
        assert_eq!(reply.status, 200);
        if reply.header("x-version") == Some("canary") {
            canary_users.push(user);
        } else {
            assert_eq!(reply.header("x-version"), Some("stable"));
        }
    }
    let share = canary_users.len() as f64 / 2000.0;
    assert!((0.07..=0.13).contains(&share), "canary share {share}");
    // Sticky: the same client gets the same version again.
    for user in canary_users.iter().take(50) {
        let reply = get_with(&gw.url("/"), ("x-user", user)).await;
        assert_eq!(reply.header("x-version"), Some("canary"), "{user}");
    }
    for i in 0..50 {
        let user = format!("user-{i}");
        let expected = if canary_users.contains(&user) {
            "canary"
        } else {
            "stable"
        };
        let reply = get_with(&gw.url("/"), ("x-user", &user)).await;
        assert_eq!(reply.header("x-version"), Some(expected), "{user}");
    }
}

/// `sticky = "client_ip"` keys on the client the gateway resolved: behind
/// a trusted proxy every connection comes from 127.0.0.1, yet clients
/// split between the versions, each staying on its own.
#[tokio::test]
async fn a_canary_sticky_by_client_ip_uses_the_client_behind_a_trusted_proxy() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .top(r#"trusted_proxies = ["127.0.0.1"]"#)
        .upstream("backend", &[backend.url()])
        .scripted("10-route", route())
        .scripted("20-version", version("stable"))
        .scripted("20-version.canary", version("canary"))
        .section("[plugins.20-version.canary]\nshare = 0.5\nsticky = \"client_ip\"")
        .serve()
        .await;
    let mut versions = Vec::new();
    for i in 0..40 {
        let ip = format!("198.51.100.{i}");
        let first = get_with(&gw.url("/"), ("x-forwarded-for", &ip)).await;
        let again = get_with(&gw.url("/"), ("x-forwarded-for", &ip)).await;
        assert_eq!(first.header("x-version"), again.header("x-version"), "{ip}");
        versions.push(first.header("x-version").unwrap().to_string());
    }
    assert!(
        versions.iter().any(|v| v == "canary") && versions.iter().any(|v| v == "stable"),
        "{versions:?}"
    );
}

#[tokio::test]
async fn a_trapping_canary_is_rolled_back_with_no_failed_request() {
    let backend = Backend::start().await;
    let trap = json!({"on_request": [{"op": "trap"}]});
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted("10-route", route())
        .scripted("20-version", version("stable"))
        .scripted("20-version.canary", trap)
        .section(
            "[plugins.20-version.canary]\nshare = 0.5\nsticky = \"header:x-user\"\nmin_calls = 10",
        )
        .serve()
        .await;
    for i in 0..200 {
        let reply = get_with(&gw.url("/"), ("x-user", &format!("user-{i}"))).await;
        assert_eq!(reply.status, 200, "request {i}: {}", reply.text());
        assert_eq!(reply.header("x-version"), Some("stable"));
    }
    let pipeline = gw.gateway.pipeline();
    let canary = pipeline.governed(1).unwrap().canary.as_ref().unwrap();
    assert!(canary.health.retired(), "rolled back");
    let (calls, failures) = canary.health.totals();
    assert_eq!((calls, failures), (10, 10), "not called once rolled back");
}

/// A gateway process (for the admin API) with `20-version` and its canary.
async fn process_with_canary(share: &str) -> (Backend, Setup, Process) {
    let backend = Backend::start().await;
    let setup = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted("10-route", route())
        .scripted("20-version", version("stable"))
        .scripted("20-version.canary", version("canary"))
        .section(&format!(
            "[plugins.20-version.canary]\nshare = {share}\nsticky = \"header:x-user\""
        ));
    let process = Process::start(&setup.write()).await;
    (backend, setup, process)
}

#[tokio::test]
async fn promotion_swaps_versions_with_no_failed_request_under_load() {
    let (_backend, setup, gw) = process_with_canary("0.1").await;
    let url = gw.url("/");
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed, canary_seen) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut load = Vec::new();
    for worker in 0..4 {
        let (url, stop, served, failed, canary_seen) = (
            url.clone(),
            stop.clone(),
            served.clone(),
            failed.clone(),
            canary_seen.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let reply = get_with(&url, ("x-user", &format!("w{worker}-{}", i % 40))).await;
                served.fetch_add(1, Ordering::Relaxed);
                if reply.status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                if reply.header("x-version") == Some("canary") {
                    canary_seen.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    while served.load(Ordering::Relaxed) < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reply = send(
        &client::http1(),
        request(
            Method::POST,
            &gw.admin_url("/admin/plugins/20-version/promote"),
            "",
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Every user is on the promoted version now.
    for i in 0..40 {
        let reply = get_with(&url, ("x-user", &format!("w0-{i}"))).await;
        assert_eq!(reply.header("x-version"), Some("canary"));
    }
    let after = served.load(Ordering::Relaxed);
    while served.load(Ordering::Relaxed) < after + 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no failed request");
    assert!(canary_seen.load(Ordering::Relaxed) > 0);
    let plugins = setup.plugins_dir();
    assert!(!plugins.join("20-version.canary.wasm").exists());
    assert!(!plugins.join("20-version.canary.json").exists());
    let config = std::fs::read_to_string(plugins.join("20-version.json")).unwrap();
    assert!(config.contains("canary"), "{config}");
    let listed = get(&gw.admin_url("/admin/plugins")).await.json();
    let names: Vec<&str> = listed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["10-route", "20-version"]);
}

#[tokio::test]
async fn the_admin_api_shows_versions_and_forces_and_lifts_quarantine() {
    let (_backend, _setup, gw) = process_with_canary("0.5").await;
    for i in 0..40 {
        get_with(&gw.url("/"), ("x-user", &format!("user-{i}"))).await;
    }
    let listed = get(&gw.admin_url("/admin/plugins")).await.json();
    let stable = &listed["plugins"][1];
    assert_eq!(stable["name"], "20-version");
    let governance = &stable["governance"];
    let canary = &governance["canary"];
    assert_eq!(canary["name"], "20-version.canary");
    assert_eq!(canary["state"], "serving");
    assert_eq!(canary["share"], 0.5);
    let (stable_calls, canary_calls) = (
        governance["record"]["calls"].as_u64().unwrap(),
        canary["record"]["calls"].as_u64().unwrap(),
    );
    // Each request calls one version's two hooks.
    assert_eq!(stable_calls + canary_calls, 80);
    assert!(canary_calls > 0 && stable_calls > 0);
    assert_eq!(canary["record"]["failure_rate"], 0.0);
    assert!(canary["record"]["hook_mean_us"].as_u64().is_some());
    assert_eq!(
        listed["plugins"][2]["governance"]["canary_of"],
        "20-version"
    );

    let quarantine = gw.admin_url("/admin/plugins/10-route/quarantine");
    let forced = send(&client::http1(), request(Method::POST, &quarantine, "")).await;
    assert_eq!(forced.status, 200, "{}", forced.text());
    assert_eq!(forced.json()["record"]["state"], "forced");
    let reply = get(&gw.url("/")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["cause"], "quarantined");
    let metrics = get(&gw.admin_url("/metrics")).await.text();
    assert!(
        metrics.contains("weir_plugin_quarantined{plugin=\"10-route\"} 1"),
        "{metrics}"
    );
    let lifted = send(&client::http1(), request(Method::DELETE, &quarantine, "")).await;
    assert_eq!(lifted.json()["record"]["state"], "serving");
    assert_eq!(get(&gw.url("/")).await.status, 200);
}
