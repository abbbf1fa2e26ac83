//! Plugins that wait: every wait a hook can start ends at the hook's
//! deadline, whether it is one of Weir's capabilities or WASI's own (a
//! clock subscription under `poll`, which is what `sleep` is in Rust,
//! Python and C), and the instance that overran is never used again.

use std::time::Instant;

use super::*;

/// `/bad` sleeps 10 s in `plugin`; `/good` passes. Both are routed.
fn sleeper(backend: &Backend, plugin: &std::path::Path, config: serde_json::Value) -> Setup {
    Setup::new()
        .limit(&format!("hook_deadline_ms = {DEADLINE_MS}"))
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin_file("20-sleeper", plugin, Some(config))
}

/// `path` sleeps; it must be cut at the deadline with the deadline's
/// answer while good requests beside it succeed.
async fn cut_at_the_deadline(gw: &Running, path: &str) {
    let (reply, took) = bad_beside_good_at(gw, path).await;
    assert_within_deadline(took);
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert_eq!(
        reply.json()["cause"],
        "deadline exceeded",
        "{}",
        reply.text()
    );
}

#[tokio::test]
async fn a_rust_plugin_that_sleeps_is_answered_at_its_deadline() {
    let backend = Backend::start().await;
    let gw = hostile(
        &backend,
        "on_request",
        json!([{"op": "sleep", "ms": 10_000}]),
    )
    .serve()
    .await;
    cut_at_the_deadline(&gw, "/bad").await;
}

#[tokio::test]
async fn a_sleep_in_on_response_is_cut_at_the_deadline_too() {
    let backend = Backend::start().await;
    let gw = hostile(
        &backend,
        "on_response",
        json!([{"op": "sleep", "ms": 10_000}]),
    )
    .serve()
    .await;
    cut_at_the_deadline(&gw, "/bad").await;
}

#[tokio::test]
async fn the_instance_that_overslept_is_discarded_not_reused() {
    // One instance at most: after `/bad` overran on it, `/good` is served
    // by a fresh one (its first call), never by the interrupted one (which
    // would count a second call, or fail on a store left mid-call).
    let backend = Backend::start().await;
    let counter = json!({"op": "instance_counter", "header": "x-calls"});
    let gw = Setup::new()
        .limit(&format!("hook_deadline_ms = {DEADLINE_MS}"))
        .runtime("max_instances_per_plugin = 1")
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [
                {"op": "set_upstream", "name": "backend"},
                counter,
                {"op": "when_path", "path": "/bad", "then": [{"op": "sleep", "ms": 10_000}]},
            ]}),
        )
        .serve()
        .await;
    let started = Instant::now();
    let reply = get(&gw.url("/bad")).await;
    assert_within_deadline(started.elapsed());
    assert_eq!(
        reply.json()["cause"],
        "deadline exceeded",
        "{}",
        reply.text()
    );
    // The plugin's instance counts both hooks of a request: 1, 3, 5 on a
    // fresh instance; 2 first on the interrupted one.
    for calls in [1, 3, 5] {
        let reply = get(&gw.url("/good")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let seen = backend.last_at("/good").unwrap();
        assert_eq!(seen.headers["x-calls"], calls.to_string().as_str());
    }
}

#[tokio::test]
async fn sleepers_do_not_hold_the_instances_past_their_deadline() {
    // Eight sleepers on a pool of four instances: each is cut at the
    // deadline (the later four after waiting up to a deadline for an
    // instance, then "busy"), and afterwards every instance is free again.
    let backend = Backend::start().await;
    let gw = hostile(
        &backend,
        "on_request",
        json!([{"op": "sleep", "ms": 3_600_000}]),
    )
    .runtime("max_instances_per_plugin = 4")
    .serve()
    .await;
    let started = Instant::now();
    let sleepers: Vec<_> = (0..8)
        .map(|_| tokio::spawn(get_owned(gw.url("/bad"))))
        .collect();
    for sleeper in sleepers {
        let reply = sleeper.await.unwrap();
        assert!(
            [500, 503].contains(&reply.status.as_u16()),
            "{}: {}",
            reply.status,
            reply.text()
        );
    }
    // Two deadlines at most: one waiting for an instance, one sleeping.
    assert!(
        started.elapsed() < Duration::from_millis(2 * DEADLINE_MS + MARGIN_MS),
        "took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let good: Vec<_> = (0..4)
        .map(|_| tokio::spawn(get_owned(gw.url("/good"))))
        .collect();
    for reply in good {
        assert_eq!(reply.await.unwrap().status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_millis(MARGIN_MS * 5),
        "good requests waited {:?} for instances",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_python_plugin_that_sleeps_is_answered_at_its_deadline() {
    let backend = Backend::start().await;
    let plugin = crate::support::toolchains::python_sleeper();
    let gw = sleeper(&backend, plugin, json!({"path": "/bad", "seconds": 10}))
        .serve()
        .await;
    cut_at_the_deadline(&gw, "/bad").await;
}

#[tokio::test]
async fn a_c_plugin_that_sleeps_is_answered_at_its_deadline() {
    let backend = Backend::start().await;
    let plugin = crate::support::toolchains::c_sleeper();
    let gw = sleeper(&backend, plugin, json!({})).serve().await;
    // nanosleep(), then poll_oneoff() on a clock, both through wasi-libc.
    cut_at_the_deadline(&gw, "/bad").await;
    cut_at_the_deadline(&gw, "/bad-poll").await;
}

#[tokio::test]
async fn a_plugin_reading_stdin_gets_the_end_of_input_at_once() {
    // stdin is empty and closed: a blocking read returns at once rather
    // than wait for input that never comes.
    let backend = Backend::start().await;
    let gw = hostile(
        &backend,
        "on_request",
        json!([{"op": "read_stdin", "key": "x-report"}]),
    )
    .serve()
    .await;
    let (reply, took) = bad_beside_good_at(&gw, "/bad").await;
    assert!(took < Duration::from_millis(MARGIN_MS * 5), "took {took:?}");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-report"), Some("read=0"));
}

async fn get_owned(url: String) -> crate::support::client::Reply {
    get(&url).await
}
