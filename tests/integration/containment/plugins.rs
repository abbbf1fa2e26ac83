//! Hostile plugins: header, outbound, kv and log floods, each cut at its
//! budget within the hook deadline while good requests beside them succeed.

use std::time::{Duration, Instant};

use super::*;

#[tokio::test]
async fn a_flood_of_distinct_header_names_is_refused_past_the_count_limit() {
    let backend = Backend::start().await;
    let gw = hostile(
        &backend,
        "on_request",
        json!([{"op": "append_flood", "count": 100000, "distinct": true, "header": "x-report"}]),
    )
    .serve()
    .await;
    let (reply, took) = bad_beside_good(&gw).await;
    assert_within_deadline(took);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let report_line = reply.header("x-report").unwrap().to_string();
    assert!(report_line.contains("limit-exceeded"), "{report_line}");
    assert!(report(&report_line, "refused") > 99_000, "{report_line}");
    // What reached the upstream: the flood cut at the count limit (plus the
    // X-Forwarded-* headers the proxy adds).
    let seen = backend.last_at("/bad").unwrap();
    assert!(seen.headers.contains_key("x-flood-50"));
    assert!(
        seen.headers.len() <= 100 + 3,
        "{} headers",
        seen.headers.len()
    );
}

#[tokio::test]
async fn a_flood_of_one_header_name_stays_under_max_header_bytes() {
    let backend = Backend::start().await;
    let gw = hostile(
        &backend,
        "on_request",
        json!([{"op": "append_flood", "count": 20000, "distinct": false,
                "value": "v".repeat(700), "header": "x-report"}]),
    )
    .serve()
    .await;
    let (reply, took) = bad_beside_good(&gw).await;
    assert_within_deadline(took);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.header("x-report").unwrap().contains("limit-exceeded"));
    let seen = backend.last_at("/bad").unwrap();
    assert!(seen.headers.contains_key("x-flood"));
    let bytes = weir::http::headers::block_size(&seen.headers);
    // The limit, plus what the proxy adds (X-Forwarded-*).
    assert!(
        bytes <= 64 * 1024 + 256,
        "{bytes} bytes reached the upstream"
    );
}

#[tokio::test]
async fn a_flood_of_one_small_header_is_cut_at_the_count_limit() {
    // The case that once sent a 1.5 MB header block upstream.
    let backend = Backend::start().await;
    let gw = hostile(
        &backend,
        "on_request",
        json!([{"op": "append_flood", "count": 100000, "distinct": false, "header": "x-report"}]),
    )
    .serve()
    .await;
    let (reply, took) = bad_beside_good(&gw).await;
    assert_within_deadline(took);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = backend.last_at("/bad").unwrap();
    let floods = seen.headers.get_all("x-flood").iter().count();
    assert!((90..=100).contains(&floods), "{floods} x-flood values");
}

#[tokio::test]
async fn a_response_header_flood_reaches_the_client_bounded() {
    let backend = Backend::start().await;
    let gw = hostile(
        &backend,
        "on_response",
        json!([{"op": "append_flood", "count": 100000, "distinct": true, "header": "x-report"}]),
    )
    .serve()
    .await;
    // A raw client: hyper's own client would refuse more than 100 fields,
    // and that would not tell whether the gateway bounded them.
    let good = GoodTraffic::start(gw.url("/good"), 2);
    let started = Instant::now();
    let answer = raw::exchange(
        gw.addr,
        "GET /bad HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_within_deadline(started.elapsed());
    let (_, failed) = good.finish().await;
    assert_eq!(failed, 0);
    assert_eq!(raw::status(&answer), 200, "{answer}");
    let head = answer.split("\r\n\r\n").next().unwrap();
    let fields = head.lines().count() - 1;
    // The plugin's limit, plus `date`, which the server adds on the way out.
    assert!(fields <= 101, "{fields} header fields reached the client");
    assert!(head.contains("x-flood-50"), "{head}");
    assert!(head.contains("limit-exceeded"), "{head}");
}

#[tokio::test]
async fn a_send_all_of_5000_calls_is_cut_to_the_per_hook_budget() {
    let backend = Backend::start().await;
    let gw = hostile(
        &backend,
        "on_request",
        json!([{"op": "call_flood", "upstream": "backend", "path": "/json",
                "count": 5000, "header": "x-report"}]),
    )
    .serve()
    .await;
    let (reply, took) = bad_beside_good(&gw).await;
    assert_within_deadline(took);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let line = reply.header("x-report").unwrap();
    assert_eq!(report(line, "ok"), 64, "{line}");
    assert_eq!(report(line, "budget"), 5000 - 64, "{line}");
    assert_eq!(report(line, "other"), 0, "{line}");
}

#[tokio::test]
async fn a_send_all_flood_to_a_slow_upstream_ends_at_the_hook_deadline() {
    let backend = Backend::start().await;
    let gw = hostile(
        &backend,
        "on_request",
        json!([{"op": "call_flood", "upstream": "backend", "path": "/slow?ms=5000",
                "count": 5000, "header": "x-report"}]),
    )
    .serve()
    .await;
    let (reply, took) = bad_beside_good(&gw).await;
    assert_within_deadline(took);
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert_eq!(reply.json()["cause"], "deadline exceeded");
}

#[tokio::test]
async fn plugin_set_paths_follow_the_client_path_rule() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [
                {"op": "set_upstream", "name": "backend"},
                {"op": "header_to_context", "header": "x-set-path", "key": "path"},
                {"op": "when_header", "name": "x-mode", "value": "set", "then": []},
            ]}),
        )
        .scripted(
            "20-paths",
            json!({"on_request": [
                {"op": "when_path", "path": "/passwd", "then": [{"op": "set_path", "path": "/../../etc/passwd"}]},
                {"op": "when_path", "path": "/metadata", "then": [{"op": "set_path", "path": "//169.254.169.254/latest?x=/../y"}]},
                {"op": "when_path", "path": "/call", "then": [
                    {"op": "call_path", "upstream": "backend", "path": "//json/../json/./x", "header": "x-called"}]},
            ]}),
        )
        .serve()
        .await;
    assert_eq!(get(&gw.url("/passwd")).await.status, 200);
    assert_eq!(backend.last().unwrap().path_and_query, "/etc/passwd");
    assert_eq!(get(&gw.url("/metadata")).await.status, 200);
    assert_eq!(
        backend.last().unwrap().path_and_query,
        "/169.254.169.254/latest?x=/../y"
    );
    assert_eq!(get(&gw.url("/call")).await.status, 200);
    let seen = backend.last_at("/call").unwrap();
    let called = seen.headers["x-called"].to_str().unwrap();
    assert!(called.contains(r#""path":"/json/x""#), "{called}");
}

#[tokio::test]
async fn a_kv_flood_hits_the_quota_and_memory_stays_bounded() {
    let backend = Backend::start().await;
    let (_setup, mut process, _output) = hostile_process(
        &backend,
        json!([{"op": "kv_fill", "count": 8000, "size": 4096, "header": "x-report"}]),
    )
    .await;
    let before = process.rss();
    let mut quota = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let reply = get(&process.url("/bad")).await;
        assert_within_deadline(started.elapsed());
        assert_eq!(reply.status, 200, "{}", reply.text());
        quota += report(reply.header("x-report").unwrap(), "quota");
        assert_eq!(get(&process.url("/good")).await.status, 200);
    }
    assert!(quota > 0, "the kv quota never refused a write");
    let grown = process.rss().saturating_sub(before);
    assert!(grown < RSS_BOUND, "RSS grew by {} MiB", grown >> 20);
    assert!(process.alive());
}

#[tokio::test]
async fn a_log_flood_is_cut_to_the_log_budget() {
    let backend = Backend::start().await;
    let (_setup, mut process, output) = hostile_process(
        &backend,
        json!([
            {"op": "log_flood", "count": 10000, "size": 1000},
            {"op": "log_flood", "count": 10000, "size": 1000, "stdout": true},
        ]),
    )
    .await;
    let before = output.bytes();
    // Five requests: 100 MB of log lines offered.
    for _ in 0..5 {
        let started = Instant::now();
        let reply = get(&process.url("/bad")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_within_deadline(started.elapsed());
    }
    // A second later, the next line reports what was dropped.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&process.url("/bad")).await.status, 200);
    let written = output.bytes() - before;
    // 64 KiB a second, for the few seconds this took, plus the warnings.
    assert!(written < 1024 * 1024, "{written} bytes of log written");
    assert!(
        output.text().contains("plugin log over budget"),
        "no warning about dropped lines"
    );
    assert!(process.alive());
}

#[tokio::test]
async fn eight_good_clients_and_a_flooding_plugin_for_ten_seconds_lose_nothing() {
    let backend = Backend::start().await;
    let (_setup, mut process, _output) = hostile_process(
        &backend,
        json!([{"op": "call_flood", "upstream": "backend", "path": "/json",
                "count": 5000, "header": "x-report"}]),
    )
    .await;
    let before = process.rss();
    let good = GoodTraffic::start(process.url("/good"), 8);
    let flood = GoodTraffic::start(process.url("/bad"), 1);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (flooded, flood_failed) = flood.finish().await;
    let (ok, failed) = good.finish().await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} good requests failed",
        ok + failed
    );
    assert!(ok > 100, "only {ok} good requests in 10 s");
    assert!(
        flooded > 0,
        "the flood never got through ({flood_failed} failed)"
    );
    let grown = process.rss().saturating_sub(before);
    assert!(grown < RSS_BOUND, "RSS grew by {} MiB", grown >> 20);
    assert!(process.alive());
}

#[tokio::test]
async fn budgets_in_weir_toml_set_the_limits() {
    let backend = Backend::start().await;
    let gw = hostile(
        &backend,
        "on_request",
        json!([{"op": "call_flood", "upstream": "backend", "path": "/json",
                "count": 50, "header": "x-report"}]),
    )
    .budget("outbound_calls_per_hook = 10")
    .serve()
    .await;
    let reply = get(&gw.url("/bad")).await;
    let line = reply.header("x-report").unwrap();
    assert_eq!(report(line, "ok"), 10, "{line}");
    assert_eq!(report(line, "budget"), 40, "{line}");
}

#[tokio::test]
async fn kv_quotas_hold_with_the_redis_backend_too() {
    let redis = crate::support::redis::RedisServer::start();
    let backend = Backend::start().await;
    let gw = hostile(
        &backend,
        "on_request",
        json!([{"op": "kv_fill", "count": 40, "size": 1000, "header": "x-report"}]),
    )
    .state("backend = \"redis\"")
    .state(&format!("url = \"{}\"", redis.url()))
    .budget("kv_max_keys = 25")
    .budget("kv_max_bytes = 1000000")
    .serve()
    .await;
    let reply = get(&gw.url("/bad")).await;
    let line = reply.header("x-report").unwrap();
    assert_eq!(report(line, "ok"), 25, "{line}");
    assert_eq!(report(line, "quota"), 15, "{line}");
    // The bytes quota: 25 keys of ~1 KB fit in 1 MB, but not in 20 KB.
    let gw = hostile(
        &backend,
        "on_request",
        json!([{"op": "kv_fill", "count": 40, "size": 1000, "header": "x-report"}]),
    )
    .state("backend = \"redis\"")
    .state(&format!("url = \"{}\"", redis.url()))
    .budget("kv_max_bytes = 20000")
    .serve()
    .await;
    let reply = get(&gw.url("/bad")).await;
    let line = reply.header("x-report").unwrap();
    // The same plugin's 25 keys, stored through the first gateway, already
    // hold more than 20 KB: the quota is shared through Redis.
    assert_eq!(report(line, "ok"), 0, "{line}");
    assert_eq!(report(line, "quota"), 40, "{line}");
}

#[tokio::test]
async fn a_plugin_trapping_on_every_request_is_logged_within_its_log_budget() {
    // Found in the soak benchmark: each trap wrote a multi-line warning
    // (the message and its wasm backtrace) outside any budget, so a plugin
    // trapping on every request wrote the gateway's log at the request rate.
    let backend = Backend::start().await;
    let setup = hostile(&backend, "on_request", json!([{"op": "trap"}]))
        .budget("log_lines_per_second = 10")
        .log(&["access_log = false"]);
    let (mut process, output) = Process::start_capturing(&setup.write()).await;
    let started = Instant::now();
    for _ in 0..300 {
        let reply = get(&process.url("/bad")).await;
        assert_eq!(reply.status, 500, "{}", reply.text());
        assert_eq!(reply.json()["cause"], "trap");
    }
    let windows = started.elapsed().as_secs() as usize + 2;
    process.terminate().await;
    output.ended().await;
    let logged = output
        .text()
        .lines()
        .filter(|l| l.contains("plugin `20-hostile` trapped"))
        .count();
    assert!(
        (1..=10 * windows).contains(&logged),
        "{logged} failure lines for 300 traps in at most {windows} one-second windows"
    );
}
