//! Instances are reused across requests (init once per instance), replaced
//! after `max_calls_per_instance` hook calls, and fresh per call when that
//! is 1. Each request makes two calls per plugin: on-request, on-response.

use crate::support::*;

fn counting(backend: &Backend, max_calls: u64) -> Setup {
    Setup::new()
        .runtime(&format!("max_calls_per_instance = {max_calls}"))
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-count",
            json!({"on_request": [
            {"op": "instance_counter", "header": "x-instance-calls"},
            {"op": "set_upstream", "name": "backend"}]}),
        )
}

async fn calls_seen(gw: &Running, n: usize, backend: &Backend) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..n {
        assert_eq!(get(&gw.url("/")).await.status, 200);
        seen.push(
            backend.last().unwrap().headers["x-instance-calls"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    seen
}

#[tokio::test]
async fn a_warm_instance_serves_request_after_request() {
    let backend = Backend::start().await;
    let gw = counting(&backend, 10_000).serve().await;
    // Sequential requests reuse the one warm instance: its call count grows
    // by two per request.
    assert_eq!(
        calls_seen(&gw, 5, &backend).await,
        ["1", "3", "5", "7", "9"]
    );
}

#[tokio::test]
async fn instances_are_recycled_after_their_call_budget() {
    let backend = Backend::start().await;
    // Four calls: two requests' worth, then a new instance.
    let gw = counting(&backend, 4).serve().await;
    assert_eq!(
        calls_seen(&gw, 5, &backend).await,
        ["1", "3", "1", "3", "1"]
    );
}

#[tokio::test]
async fn a_budget_of_one_gives_a_fresh_instance_per_call() {
    let backend = Backend::start().await;
    let gw = counting(&backend, 1).serve().await;
    assert_eq!(calls_seen(&gw, 4, &backend).await, ["1", "1", "1", "1"]);
}

#[tokio::test]
async fn concurrency_is_bounded_by_max_instances() {
    // Two instances at most; each request holds one for ~100 ms in a call to
    // a slow upstream. Six concurrent requests all succeed (they queue for an
    // instance within the deadline) and never more than two run at once.
    let backend = Backend::start().await;
    let gw = std::sync::Arc::new(
        Setup::new()
            .limit("hook_deadline_ms = 5000")
            .runtime("max_instances_per_plugin = 2")
            .upstream("api", &[backend.url()])
            .scripted(
                "10-hold",
                json!({"on_request": [
                {"op": "call", "upstream": "api", "path": "/slow?ms=100", "header": "x-call"},
                {"op": "respond", "status": 200}]}),
            )
            .serve()
            .await,
    );
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let url = gw.url("/");
            tokio::spawn(async move { get(&url).await.status.as_u16() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let plugin = &gw.gateway.pipeline();
    assert!(plugin.plugins()[0].idle_instances() <= 2);
}

#[tokio::test]
async fn no_free_instance_within_the_deadline_is_a_503() {
    // One instance; each request holds it for ~250 ms of a 300 ms deadline.
    // Of three concurrent requests, the first two get the instance in turn
    // (the second waits ~250 ms), the third would wait ~500 ms: busy.
    let backend = Backend::start().await;
    let gw = std::sync::Arc::new(
        Setup::new()
            .limit("hook_deadline_ms = 300")
            .runtime("max_instances_per_plugin = 1")
            .upstream("api", &[backend.url()])
            .scripted(
                "10-hold",
                json!({"on_request": [
                {"op": "call", "upstream": "api", "path": "/slow?ms=250", "header": "x-call"},
                {"op": "respond", "status": 200}]}),
            )
            .serve()
            .await,
    );
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let url = gw.url("/");
            tokio::spawn(async move {
                let reply = get(&url).await;
                (reply.status.as_u16(), reply.json_or_null()["cause"].clone())
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results.sort_by_key(|(status, _)| *status);
    assert_eq!(results[0].0, 200, "{results:?}");
    assert_eq!(results[1].0, 200, "{results:?}");
    assert_eq!(results[2], (503, json!("busy")), "{results:?}");
}
