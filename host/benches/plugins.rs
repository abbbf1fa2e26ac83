//! What the default `cache` and `validate` plugins cost.
//!
//! - Cache: the latency of a cache hit against the same request proxied to
//!   a loopback backend (and against the backend called directly), the
//!   three taking turns one request each over keep-alive connections; then
//!   the cache's `on-request` hook alone answering a hit, with the in-memory
//!   `kv` and, when `redis-server` is installed, with Redis.
//! - Validate: the `on-request` hook on a warm instance checking a 1 KB
//!   JSON body (valid with 80 or 16 JSON values, and invalid with 20
//!   errors) against a JSON Schema and against an OpenAPI 3.1 operation,
//!   beside the same hook on a request no rule applies to.
//!
//! Run: `cargo bench -p weir --bench plugins`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use weir::Gateway;
use weir::exchange::{HeldRequest, RequestState};
use weir::http::body::{self, BodyState};
use weir::server::serve;

const WARMUP: usize = 2_000;
const SAMPLES: usize = 20_000;
const LATENCY_SAMPLES: usize = 5_000;

/// A 1 KB JSON document of 80 values (18 items): the upstream's answer,
/// and the body validated.
fn order(qty: &str, sku: &str, extra: &str) -> String {
    order_of(
        18,
        qty,
        sku,
        "leave it with the neighbour if nobody answers the door",
        extra,
    )
}

/// A 1 KB document of few values: 2 items and a long note.
fn sparse_order() -> String {
    order_of(2, "2", "SKU-0001", &"ring twice. ".repeat(63), "")
}

fn order_of(items: usize, qty: &str, sku: &str, note: &str, extra: &str) -> String {
    let items: Vec<String> = (0..items)
        .map(|i| format!(r#"{{"sku": "SKU-{i:04}", "qty": {qty}, "price": 9.5}}"#))
        .collect();
    let body = format!(
        r#"{{"customer": {{"id": 42, "name": "Ada Lovelace", "email": "ada@example.com"}}, "items": [{}], "first_sku": "{sku}", "note": "{note}"{extra}}}"#,
        items.join(", ")
    );
    assert!((950..=1100).contains(&body.len()), "{} bytes", body.len());
    body
}

const ORDER_SCHEMA: &str = r#"{
    "type": "object",
    "required": ["customer", "items"],
    "additionalProperties": false,
    "properties": {
        "customer": {"type": "object", "required": ["id", "email"], "properties": {
            "id": {"type": "integer"}, "name": {"type": "string", "maxLength": 100},
            "email": {"type": "string", "format": "email"}}},
        "items": {"type": "array", "minItems": 1, "maxItems": 100, "items": {
            "type": "object", "required": ["sku", "qty"], "additionalProperties": false,
            "properties": {"sku": {"type": "string", "pattern": "^SKU-[0-9]{4}$"},
                           "qty": {"type": "integer", "minimum": 1}, "price": {"type": "number"}}}},
        "first_sku": {"type": "string", "pattern": "^SKU-[0-9]{4}$"},
        "note": {"type": "string", "maxLength": 1000}
    }
}"#;

/// One keep-alive connection per target; the targets take turns, one
/// request each per round, so a drift in the machine's speed hits them all
/// alike. Median and p99 per target. After the warm-up each answer must
/// carry `x-cache: EXPECT` when a target gives one.
async fn latencies(targets: &[(SocketAddr, &str, Option<&str>)]) -> Vec<(f64, f64)> {
    let mut senders = Vec::new();
    for (addr, _, _) in targets {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        senders.push(sender);
    }
    let mut samples = vec![Vec::with_capacity(LATENCY_SAMPLES); targets.len()];
    for round in 0..(LATENCY_SAMPLES + 500) {
        for (i, (_, path, expect)) in targets.iter().enumerate() {
            let req = hyper::Request::builder()
                .uri(*path)
                .header("host", "bench")
                .body(Full::new(Bytes::new()))
                .expect("request");
            let started = Instant::now();
            senders[i].ready().await.expect("ready");
            let resp = senders[i].send_request(req).await.expect("response");
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            let outcome = resp.headers().get("x-cache").cloned();
            resp.into_body().collect().await.expect("body");
            let elapsed = started.elapsed();
            if round >= 500 {
                if let Some(expect) = expect {
                    assert_eq!(
                        outcome.as_ref().and_then(|v| v.to_str().ok()),
                        Some(*expect)
                    );
                }
                samples[i].push(elapsed);
            }
        }
    }
    samples.iter_mut().map(|s| common::summary(s)).collect()
}

fn request(method: &str, path: &str, body: BodyState) -> HeldRequest {
    let (head, ()) = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "api.example.com")
        .header("content-type", "application/json")
        .body(())
        .expect("request")
        .into_parts();
    let client: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    Box::new(RequestState::new(head, body, client))
}

fn print(label: &str, (median, p99): (f64, f64)) {
    println!("  {label:<44} median {median:>8.2} µs  p99 {p99:>8.2} µs");
}

/// The gateway: router (`cached` and `proxied` routes to the backend) and
/// the cache, which keeps `cached` only.
fn cache_gateway(backend: SocketAddr, state: &str) -> (tempfile::TempDir, weir::Config) {
    let router = r#"{"routes": [
        {"name": "cached", "match": {"path_prefix": "/cached"}, "upstream": "u"},
        {"name": "proxied", "match": {"path_prefix": "/proxied"}, "upstream": "u"}]}"#;
    let cache = r#"{"routes": {"cached": {"default_ttl_s": 3600}}}"#;
    let toml = format!(
        "[log]\naccess_log = false\n{state}\n[upstreams.u]\ntargets = [\"http://{backend}\"]\n"
    );
    common::gateway_dir(
        &[
            ("50-router", "weir_plugin_router", Some(router)),
            ("75-cache", "weir_plugin_cache", Some(cache)),
        ],
        &toml,
    )
}

async fn measure_cache_latency() {
    let body: &'static str = Box::leak(order("2", "SKU-0001", "").into_boxed_str());
    let backend = common::backend(Duration::ZERO, body.as_bytes()).await;
    let (_dir, config) = cache_gateway(backend, "");
    let gateway = Arc::new(Gateway::new(&config).await.expect("gateway loads"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gw = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, gateway, std::future::pending()));
    println!(
        "cache, a {} byte JSON response, {LATENCY_SAMPLES} rounds of one request to each:",
        body.len()
    );
    let measured = latencies(&[
        (backend, "/x", None),
        (gw, "/proxied/x", None),
        (gw, "/cached/x", Some("HIT")),
    ])
    .await;
    let (direct, proxied, hit) = (measured[0], measured[1], measured[2]);
    print("backend, direct", direct);
    print("proxied through router + cache (no rule)", proxied);
    print("cache hit (memory kv)", hit);
    println!(
        "  a hit saves {:.1} µs median over proxying ({:.0}% of its latency)",
        proxied.0 - hit.0,
        100.0 * (proxied.0 - hit.0) / proxied.0
    );
}

/// The cache's `on-request` answering a hit, on a warm instance.
async fn measure_cache_hook(label: &str, state: &str) {
    let body = order("2", "SKU-0001", "");
    let (_dir, config) = cache_gateway("127.0.0.1:9".parse().expect("addr"), state);
    let gateway = Gateway::new(&config).await.expect("gateway loads");
    let pipeline = gateway.pipeline();
    let cache = &pipeline.plugins()[1];
    let routed = || {
        let mut req = request("GET", "/cached/x", BodyState::streaming(body::empty()));
        req.context.insert("route".into(), "cached".into());
        req.upstream = Some("u".into());
        req
    };
    // Fill the entry: a miss, then the response.
    let (req, _) = common::on_request(cache, routed()).await;
    let mut response = common::response();
    response.body = BodyState::buffered(body.clone());
    common::on_response(cache, req, response).await;
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..(WARMUP + SAMPLES) {
        let req = routed();
        let started = Instant::now();
        let (_, action) = common::on_request(cache, req).await;
        let elapsed = started.elapsed();
        assert!(
            matches!(action, weir::runtime::bindings::Action::Respond(_)),
            "not a hit"
        );
        if i >= WARMUP {
            samples.push(elapsed);
        }
    }
    print(label, common::summary(&mut samples));
}

/// The validate plugin's `on-request` with `rule` as its default rule.
async fn measure_validate(label: &str, config: &str, files: &[(&str, &str)]) {
    let (dir, config) = common::gateway_dir(
        &[("65-validate", "weir_plugin_validate", Some(config))],
        "[log]\naccess_log = false\n",
    );
    for (name, text) in files {
        std::fs::write(dir.path().join("plugins").join(name), text).expect("write file");
    }
    let gateway = Gateway::new(&config).await.expect("gateway loads");
    let pipeline = gateway.pipeline();
    let plugin = &pipeline.plugins()[0];
    let valid = order("2", "SKU-0001", "");
    let invalid = order("0", "sku-1", r#", "gift": true"#);
    let sparse = sparse_order();
    println!("{label}:");
    for (case, method, body, status) in [
        ("no rule for the method (GET)", "GET", "", None),
        ("valid 1 KB body, 80 values", "POST", valid.as_str(), None),
        ("valid 1 KB body, 16 values", "POST", sparse.as_str(), None),
        (
            "invalid 1 KB body (20 errors) -> 422",
            "POST",
            invalid.as_str(),
            Some(422),
        ),
    ] {
        let mut samples = Vec::with_capacity(SAMPLES);
        for i in 0..(WARMUP + SAMPLES) {
            let req = request(method, "/orders", BodyState::buffered(body.to_string()));
            let started = Instant::now();
            let (_, action) = common::on_request(plugin, req).await;
            let elapsed = started.elapsed();
            let got = match action {
                weir::runtime::bindings::Action::Respond(reply) => Some(reply.status),
                _ => None,
            };
            assert_eq!(got, status, "{case}");
            if i >= WARMUP {
                samples.push(elapsed);
            }
        }
        print(case, common::summary(&mut samples));
    }
}

fn openapi() -> String {
    format!(
        r##"{{"openapi": "3.1.0", "info": {{"title": "orders", "version": "1"}},
            "paths": {{"/orders": {{"post": {{
                "requestBody": {{"required": true, "content": {{"application/json": {{"schema": {{"$ref": "#/components/schemas/Order"}}}}}}}},
                "responses": {{"201": {{"description": "created"}}}}}}}}}},
            "components": {{"schemas": {{"Order": {ORDER_SCHEMA}}}}}}}"##
    )
}

/// A `redis-server` on a free port, if one is installed.
fn redis() -> Option<(std::process::Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((child, format!("redis://127.0.0.1:{port}")))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        measure_cache_latency().await;
        println!("cache on-request answering a hit ({SAMPLES} samples):");
        measure_cache_hook("hit, memory kv", "").await;
        match redis() {
            Some((mut child, url)) => {
                let state = format!("[state]\nbackend = \"redis\"\nurl = \"{url}\"\n");
                measure_cache_hook("hit, Redis kv (loopback)", &state).await;
                let _ = child.kill();
                let _ = child.wait();
            }
            None => println!("  (redis-server not installed: Redis row skipped)"),
        }
        println!();
        let schema = format!(r#"{{"default": {{"methods": ["POST"], "body": {ORDER_SCHEMA}}}}}"#);
        measure_validate("validate, JSON Schema (draft 2020-12)", &schema, &[]).await;
        let doc = openapi();
        let with_doc = r#"{"default": {"methods": ["POST"], "openapi": {"$file": "orders.json"}}}"#;
        measure_validate(
            "validate, OpenAPI 3.1 operation",
            with_doc,
            &[("orders.json", &doc)],
        )
        .await;
    });
    std::thread::sleep(Duration::from_millis(10));
}
