//! Host capabilities as plugins use them: outbound calls to named upstreams
//! (single and parallel), the rate limiter and the key-value store (its
//! `set-if-absent` atomic in memory and on Redis).

use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test]
async fn outbound_results_come_back_to_the_plugin() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("api", &[backend.url()])
        .upstream("backend", &[backend.url()])
        .scripted("10-call", json!({"on_request": [
            {"op": "set_upstream", "name": "backend"},
            {"op": "call", "upstream": "api", "path": "/status/418", "header": "x-call"},
            {"op": "call", "upstream": "nowhere", "path": "/", "header": "x-call-unknown"},
            {"op": "call", "upstream": "api", "path": "/slow?ms=2000", "header": "x-call-slow", "timeout_ms": 50}]}))
        .serve()
        .await;
    let reply = get(&gw.url("/headers")).await;
    assert_eq!(reply.status, 200);
    let seen = backend.last().unwrap();
    assert_eq!(seen.headers["x-call"], "418 status 418");
    assert_eq!(
        seen.headers["x-call-unknown"],
        "error: CallError::UnknownUpstream(\"nowhere\")"
    );
    assert_eq!(seen.headers["x-call-slow"], "error: CallError::Timeout");
}

#[tokio::test]
async fn send_all_runs_calls_concurrently() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .limit("hook_deadline_ms = 5000")
        .upstream("api", &[backend.url()])
        .scripted("10-fanout", json!({"on_request": [
            {"op": "call_all", "header": "x-statuses", "calls": [
                ["api", "/slow?ms=300"], ["api", "/slow?ms=300"], ["api", "/slow?ms=300"], ["api", "/status/404"]]},
            {"op": "respond", "status": 200}]}))
        .serve()
        .await;
    let started = Instant::now();
    let reply = get(&gw.url("/")).await;
    let took = started.elapsed();
    assert_eq!(reply.status, 200);
    assert_eq!(backend.hits(), 4);
    // Sequential would take at least 900 ms.
    assert!(took < Duration::from_millis(800), "send-all took {took:?}");
}

#[tokio::test]
async fn rate_limits_are_exact_across_instances_and_requests() {
    let backend = Backend::start().await;
    let gw = std::sync::Arc::new(
        Setup::new()
            .upstream("backend", &[backend.url()])
            .scripted("10-limit", json!({"on_request": [
                {"op": "rate", "key": "all", "rate": 20, "period_ms": 3_600_000, "header": "x-remaining"},
                {"op": "set_upstream", "name": "backend"}]}))
            .serve()
            .await,
    );
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let url = gw.url("/");
            tokio::spawn(async move { get(&url).await.status.as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 20);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 40);
    assert_eq!(backend.hits(), 20);
}

#[tokio::test]
async fn kv_state_is_shared_by_instances_and_private_to_the_plugin() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-count",
            json!({"on_request": [{"op": "kv_incr", "key": "hits", "header": "x-count-a"}]}),
        )
        .scripted(
            "20-count",
            json!({"on_request": [
            {"op": "kv_incr", "key": "hits", "header": "x-count-b"},
            {"op": "set_upstream", "name": "backend"}]}),
        )
        .serve()
        .await;
    for expected in 1..=3 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
        let seen = backend.last().unwrap();
        // Same key, separate namespaces: each plugin counts on its own.
        assert_eq!(seen.headers["x-count-a"], expected.to_string().as_str());
        assert_eq!(seen.headers["x-count-b"], expected.to_string().as_str());
    }
}

/// A plugin that takes the kv key `leader` with `set-if-absent` and says
/// in `x-won` whether it got it.
fn leader_election(backend: &Backend) -> Setup {
    Setup::new().upstream("backend", &[backend.url()]).scripted(
        "10-lock",
        json!({
            "on_request": [
                {"op": "kv_set_if_absent", "key": "leader", "value": "me",
                 "ttl_ms": 60_000, "header": "x-won"},
                {"op": "set_upstream", "name": "backend"}],
            "on_response": [{"op": "context_to_header", "key": "x-won", "header": "x-won"}]
        }),
    )
}

/// Send `count` requests at once, spread over `urls`; the `x-won` values.
async fn race(urls: &[String], count: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let url = urls[i % urls.len()].clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        won.push(reply.header("x-won").unwrap().to_string());
    }
    won
}

#[tokio::test]
async fn kv_set_if_absent_lets_exactly_one_of_concurrent_callers_win() {
    let backend = Backend::start().await;
    let gw = leader_election(&backend).serve().await;
    let won = race(&[gw.url("/")], 24).await;
    assert_eq!(won.iter().filter(|w| *w == "true").count(), 1, "{won:?}");
    assert_eq!(won.iter().filter(|w| *w == "false").count(), 23, "{won:?}");
    // Held: a later caller loses too.
    assert_eq!(get(&gw.url("/")).await.header("x-won"), Some("false"));
}

#[tokio::test]
async fn kv_set_if_absent_lets_exactly_one_caller_win_across_gateways_on_one_redis() {
    let redis = crate::support::redis::RedisServer::start();
    let backend = Backend::start().await;
    let setup = leader_election(&backend)
        .state("backend = \"redis\"")
        .state(&format!("url = {:?}", redis.url()))
        .state("timeout_ms = 500");
    let (one, two) = (setup.serve().await, setup.serve().await);
    let won = race(&[one.url("/"), two.url("/")], 40).await;
    assert_eq!(won.iter().filter(|w| *w == "true").count(), 1, "{won:?}");
    assert_eq!(won.iter().filter(|w| *w == "false").count(), 39, "{won:?}");
}

#[tokio::test]
async fn plugins_have_no_filesystem_environment_or_sockets() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted("10-probe", json!({"on_request": [
            {"op": "set_upstream", "name": "backend"},
            {"op": "probe_sandbox", "header": "x-sandbox", "connect": backend.addr.to_string()},
            {"op": "call", "upstream": backend.addr.to_string(), "path": "/", "header": "x-direct"}]}))
        .serve()
        .await;
    assert_eq!(get(&gw.url("/")).await.status, 200);
    let seen = backend.last().unwrap();
    assert_eq!(
        seen.headers["x-sandbox"],
        "fs=denied cwd=denied env=0 net=denied"
    );
    // Outbound calls go to named upstreams only, not to addresses.
    assert!(
        seen.headers["x-direct"]
            .to_str()
            .unwrap()
            .starts_with("error: CallError::UnknownUpstream")
    );
    // Only the proxied request reached the backend.
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn outbound_calls_carry_their_path_and_headers() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("api", &[backend.url()])
        .scripted(
            "10-call",
            json!({"on_request": [
            {"op": "call", "upstream": "api", "path": "/json?from=plugin", "header": "x-call"},
            {"op": "respond", "status": 204}]}),
        )
        .serve()
        .await;
    let reply = get(&gw.url("/")).await;
    assert_eq!(reply.status, 204);
    assert_eq!(backend.hits(), 1);
    let seen = backend.last().unwrap();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path_and_query, "/json?from=plugin");
    assert_eq!(seen.headers["x-from-plugin"], "yes");
}
