//! What aggregation costs: the latency of one request that the `aggregate`
//! plugin answers with three upstream calls, against one proxied call to the
//! slowest of those upstreams, and against calling it directly. Requests are
//! sent one at a time over a keep-alive connection, so these are latencies,
//! not throughput.
//!
//! Run: `cargo bench -p weir --bench aggregate`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use weir::Gateway;
use weir::server::serve;

const SAMPLES: usize = 2_000;

/// Median and p99 latency of `SAMPLES` sequential GETs of `path` on `addr`.
async fn latency(addr: SocketAddr, path: &str) -> (f64, f64) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..(SAMPLES + 200) {
        let req = hyper::Request::builder()
            .uri(path)
            .header("host", "bench")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let started = Instant::now();
        sender.ready().await.expect("ready");
        let resp = sender.send_request(req).await.expect("response");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.into_body().collect().await.expect("body");
        if i >= 200 {
            samples.push(started.elapsed());
        }
    }
    common::summary(&mut samples)
}

async fn run(delays_ms: [u64; 3]) {
    let mut addrs = Vec::new();
    for ms in delays_ms {
        addrs.push(
            common::backend(
                Duration::from_millis(ms),
                br#"{"id":7,"name":"Ada","plan_id":"gold"}"#,
            )
            .await,
        );
    }
    let slowest = delays_ms
        .iter()
        .enumerate()
        .max_by_key(|(_, d)| **d)
        .map_or(0, |(i, _)| i);
    let toml = format!(
        "[log]\naccess_log = false\n[limits]\nhook_deadline_ms = 5000\n\
         [upstreams.a]\ntargets = [\"http://{}\"]\n[upstreams.b]\ntargets = [\"http://{}\"]\n\
         [upstreams.c]\ntargets = [\"http://{}\"]\n",
        addrs[0], addrs[1], addrs[2]
    );
    let slowest_name = ["a", "b", "c"][slowest];
    let router = format!(
        r#"{{"routes": [{{"name": "one", "match": {{"path": "/one"}}, "upstream": "{slowest_name}"}}]}}"#
    );
    let aggregate = r#"{"endpoints": [{"path": "/three", "calls": {
        "a": {"upstream": "a", "path": "/a"},
        "b": {"upstream": "b", "path": "/b"},
        "c": {"upstream": "c", "path": "/c"}}}]}"#;
    let (_dir, config) = common::gateway_dir(
        &[
            ("40-aggregate", "weir_plugin_aggregate", Some(aggregate)),
            ("50-router", "weir_plugin_router", Some(&router)),
        ],
        &toml,
    );
    let gateway = Arc::new(Gateway::new(&config).await.expect("gateway loads"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gw = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, gateway, std::future::pending()));

    let direct = latency(addrs[slowest], "/").await;
    let one = latency(gw, "/one").await;
    let three = latency(gw, "/three").await;
    println!("backend delays {delays_ms:?} ms, {SAMPLES} sequential requests each:");
    println!(
        "  slowest backend, direct          median {:>8.1} µs  p99 {:>8.1} µs",
        direct.0, direct.1
    );
    println!(
        "  slowest backend, via the gateway median {:>8.1} µs  p99 {:>8.1} µs",
        one.0, one.1
    );
    println!(
        "  three-call aggregation           median {:>8.1} µs  p99 {:>8.1} µs",
        three.0, three.1
    );
    println!(
        "  aggregation over one proxied call to the slowest: +{:.1} µs median",
        three.0 - one.0
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        run([0, 0, 0]).await;
        run([2, 4, 6]).await;
    });
}
