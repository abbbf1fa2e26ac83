//! End-to-end throughput: requests per second through the gateway (default
//! router + hello_header: two plugins, four hook calls per request) against
//! calling the backend directly, measured in the same run, on loopback, with
//! keep-alive HTTP/1.1 connections.
//!
//! Run: `cargo bench -p weir --bench proxy`. Environment knobs:
//! `WEIR_BENCH_SECONDS` (per round, default 5), `WEIR_BENCH_CONNECTIONS`
//! (default 32).

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use weir::Gateway;
use weir::server::serve;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A bare hyper reverse proxy to `backend` (same client and pool as the
/// gateway, no plugins, no header work): the floor any proxy pays here.
async fn start_bare_proxy(backend: SocketAddr) -> SocketAddr {
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client: Client<HttpConnector, weir::http::body::Body> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let client = client.clone();
                    async move {
                        let (mut head, body) = req.into_parts();
                        let path = head
                            .uri
                            .path_and_query()
                            .map_or("/", |p| p.as_str())
                            .to_string();
                        head.uri = format!("http://{backend}{path}").parse().expect("uri");
                        let req = hyper::Request::from_parts(head, weir::http::body::boxed(body));
                        let resp = client.request(req).await.expect("upstream");
                        Ok::<_, Infallible>(resp.map(weir::http::body::boxed))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Drive `addr` with `connections` keep-alive connections for `duration`:
/// (requests per second, median µs, p99 µs).
async fn load(addr: SocketAddr, connections: u64, duration: Duration) -> (f64, f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let _ = stream.set_nodelay(true);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let req = hyper::Request::builder()
                    .uri("/users/7")
                    .header("host", "api.example.com")
                    .body(Full::new(Bytes::new()))
                    .expect("request");
                let started = Instant::now();
                sender.ready().await.expect("ready");
                let resp = sender.send_request(req).await.expect("response");
                assert!(resp.status().is_success(), "status {}", resp.status());
                resp.into_body().collect().await.expect("body");
                samples.push(started.elapsed());
            }
            samples
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    let rps = all.len() as f64 / duration.as_secs_f64();
    let (median, p99) = common::summary(&mut all);
    (rps, median, p99)
}

fn main() {
    let seconds = env_number("WEIR_BENCH_SECONDS", 2);
    let connections = env_number("WEIR_BENCH_CONNECTIONS", 32);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let backend = common::backend(Duration::ZERO, b"{\"id\":7,\"name\":\"ada\"}").await;
        let router = r#"{"routes": [{"name": "user", "match": {"path": "/users/{id}"}, "upstream": "backend"}]}"#;
        let toml = format!(
            "[log]\naccess_log = false\n[upstreams.backend]\ntargets = [\"http://{backend}\"]\n"
        );
        let (_dir, config) = common::gateway_dir(
            &[
                ("10-router", "weir_plugin_router", Some(router)),
                ("20-hello", "hello_header", None),
            ],
            &toml,
        );
        let gateway = Arc::new(Gateway::new(&config).await.expect("gateway loads"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let gateway_addr = listener.local_addr().expect("addr");
        tokio::spawn(serve(listener, gateway, std::future::pending()));

        let bare = start_bare_proxy(backend).await;
        let all = [("direct", backend), ("bare hyper proxy", bare), ("weir gateway", gateway_addr)];
        // `WEIR_BENCH_ONLY=gateway` (or `direct`, `bare`) drives one target, for profiling.
        let only = std::env::var("WEIR_BENCH_ONLY").unwrap_or_default();
        let targets: Vec<(&str, SocketAddr)> = all.into_iter().filter(|(name, _)| name.contains(only.as_str())).collect();

        // Warm every path (connection pools, instances).
        for (_, addr) in &targets {
            load(*addr, connections, Duration::from_secs(1)).await;
        }

        println!("{connections} connections, {seconds} s per round, targets alternating");
        let round = Duration::from_secs(seconds);
        // The machine's speed drifts by tens of percent over seconds, so
        // targets take short turns and ratios are taken within each round;
        // the report gives the median of those per-round ratios.
        let rounds = env_number("WEIR_BENCH_ROUNDS", 6);
        let mut per_round: Vec<Vec<f64>> = Vec::new();
        for i in 1..=rounds {
            let mut this_round = Vec::new();
            for (name, addr) in &targets {
                let (rps, median, p99) = load(*addr, connections, round).await;
                println!("round {i} {name:<17}: {rps:>9.0} req/s  median {median:>7.1} µs  p99 {p99:>7.1} µs");
                this_round.push(rps);
            }
            per_round.push(this_round);
        }
        if targets.len() == 3 {
            let median = |f: &dyn Fn(&[f64]) -> f64| {
                let mut values: Vec<f64> = per_round.iter().map(|r| f(r)).collect();
                values.sort_by(f64::total_cmp);
                values[values.len() / 2]
            };
            println!(
                "median of per-round ratios: gateway/direct = {:.2}, bare/direct = {:.2}, gateway/bare = {:.2}",
                median(&|r| r[2] / r[0]),
                median(&|r| r[1] / r[0]),
                median(&|r| r[2] / r[1]),
            );
        }
    });
}
