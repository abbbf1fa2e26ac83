//! Plugins that misbehave cost one request a clean 5xx, never the process,
//! and the next request is served normally.

use std::time::{Duration, Instant};

use crate::support::*;

const DEADLINE_MS: u64 = 200;

/// A gateway whose plugin `20-bad` runs `step` only for `/bad`, so the same
/// plugin serves ordinary requests before and after each failure.
async fn gateway_with(step: serde_json::Value, backend: &Backend) -> Running {
    Setup::new()
        .limit(&format!("hook_deadline_ms = {DEADLINE_MS}"))
        .limit("plugin_memory_mb = 16")
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .scripted(
            "20-bad",
            json!({"on_request": [{"op": "when_path", "path": "/bad", "then": [step]}]}),
        )
        .serve()
        .await
}

async fn assert_contained(step: serde_json::Value, cause: &str) {
    let backend = Backend::start().await;
    let gw = gateway_with(step, &backend).await;
    assert_eq!(get(&gw.url("/")).await.status, 200);
    for round in 1..=3 {
        let started = Instant::now();
        let reply = get(&gw.url("/bad")).await;
        let took = started.elapsed();
        assert_eq!(reply.status, 500, "{}", reply.text());
        let body = reply.json();
        assert_eq!(body["error"], "plugin failed");
        assert_eq!(body["plugin"], "20-bad");
        assert_eq!(body["cause"], cause);
        // The deadline plus a generous margin for a loaded machine.
        assert!(
            took < Duration::from_millis(DEADLINE_MS + 1500),
            "took {took:?}"
        );
        // The very next request through the same plugin succeeds.
        let next = get(&gw.url("/")).await;
        assert_eq!(next.status, 200, "{}", next.text());
        assert_eq!(backend.hits(), 1 + round);
    }
}

#[tokio::test]
async fn a_trapping_plugin_gives_500_and_the_next_request_succeeds() {
    assert_contained(json!({"op": "trap"}), "trap").await;
}

#[tokio::test]
async fn a_looping_plugin_is_stopped_at_its_deadline() {
    assert_contained(json!({"op": "loop"}), "deadline exceeded").await;
}

#[tokio::test]
async fn a_plugin_growing_memory_past_the_cap_is_stopped() {
    assert_contained(json!({"op": "grow_memory"}), "memory limit exceeded").await;
}

#[tokio::test]
async fn a_spinning_plugin_does_not_stall_other_requests() {
    // While one request spins in a plugin until its deadline, requests on
    // another pipeline sharing the engine and the runtime threads complete.
    let backend = Backend::start().await;
    let spinning = gateway_with(json!({"op": "loop"}), &backend).await;
    let healthy = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .serve()
        .await;
    let bad = tokio::spawn(async move { get(&spinning.url("/bad")).await.status });
    for _ in 0..5 {
        assert_eq!(get(&healthy.url("/")).await.status, 200);
    }
    assert_eq!(bad.await.unwrap(), 500);
}

#[tokio::test]
async fn a_slow_but_finite_hook_within_its_deadline_is_fine() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .limit("hook_deadline_ms = 2000")
        .upstream("backend", &[backend.url()])
        .scripted("10-route", json!({"on_request": [{"op": "spin", "ms": 50}, {"op": "set_upstream", "name": "backend"}]}))
        .serve()
        .await;
    assert_eq!(get(&gw.url("/")).await.status, 200);
}
