//! Per-hook overhead of a trivial Rust plugin: a warm, reused instance
//! against a fresh instance per request (instantiate + `init` + call + drop).
//!
//! Run: `cargo bench -p weir --bench hooks`. Prints median and p99 per hook
//! call, measured one call at a time through the same path requests take
//! (`LoadedPlugin::on_request` / `on_response`).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use weir::body::{self, BodyState};
use weir::exchange::{RequestState, ResponseState};
use weir::{Gateway, Stores};

const WARMUP: usize = 2_000;
const SAMPLES: usize = 20_000;

fn request() -> RequestState {
    let (head, ()) = http::Request::builder()
        .uri("/users/7?full=1")
        .header("host", "api.example.com")
        .header("user-agent", "bench")
        .body(())
        .expect("request")
        .into_parts();
    let client: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    RequestState::new(head, BodyState::streaming(body::empty()), client)
}

fn response() -> ResponseState {
    let (head, ()) = http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(())
        .expect("response")
        .into_parts();
    ResponseState {
        head,
        body: BodyState::buffered("{}"),
    }
}

async fn measure(label: &str, max_calls_per_instance: u64, samples: usize) -> (f64, f64, f64, f64) {
    let toml = format!(
        "[runtime]\nmax_calls_per_instance = {max_calls_per_instance}\n[log]\naccess_log = false\n"
    );
    let (_dir, config) = common::gateway_dir(&[("10-hello", "hello_header", None)], &toml);
    let gateway = Gateway::new(&config).await.expect("gateway loads");
    let pipeline = gateway.pipeline();
    let plugin = &pipeline.plugins()[0];

    let mut on_request = Vec::with_capacity(samples);
    let mut on_response = Vec::with_capacity(samples);
    for i in 0..(WARMUP + samples) {
        let req = request();
        let started = Instant::now();
        let (req, _) = plugin.on_request(req).await.expect("on_request");
        let t1 = started.elapsed();
        let started = Instant::now();
        let (_, resp, _) = plugin
            .on_response(req, response())
            .await
            .expect("on_response");
        let t2 = started.elapsed();
        assert_eq!(resp.head.headers["x-hello"], "weir");
        if i >= WARMUP {
            on_request.push(t1);
            on_response.push(t2);
        }
    }
    let (req_med, req_p99) = common::summary(&mut on_request);
    let (resp_med, resp_p99) = common::summary(&mut on_response);
    println!(
        "{label:<28} on-request median {req_med:>8.2} µs  p99 {req_p99:>8.2} µs | \
         on-response (sets a header) median {resp_med:>8.2} µs  p99 {resp_p99:>8.2} µs"
    );
    (req_med, req_p99, resp_med, resp_p99)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let _ = Stores::in_memory();
    runtime.block_on(async {
        println!(
            "per-hook cost, hello_header plugin, {SAMPLES} samples after {WARMUP} warm-up calls"
        );
        measure("warm instance (reused)", 1_000_000, SAMPLES).await;
        // A budget of one call: every hook call gets a new instance
        // (instantiate + init + call + drop).
        measure("fresh instance per call", 1, SAMPLES / 4).await;
    });
    std::thread::sleep(Duration::from_millis(10));
}
