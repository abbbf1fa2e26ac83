//! What the gateway's telemetry adds to one request, measured on the code
//! that runs per request, natively, without sockets (so without the noise
//! of a loaded machine that makes a few-percent difference invisible in
//! end-to-end CPU figures; `bench/observability.sh` measures end to end).
//!
//! Per request with the default chain (3 plugins, 3 `on-request` and 1
//! `on-response` hook calls, one upstream call), metrics do: one request
//! record (a counter and a histogram), the body-byte counters and one
//! response body frame counted, 4 hook histogram observations with their
//! clock reads, and 1 upstream histogram observation. Tracing does: the
//! request span (reading `traceparent`), 4 hook spans, the upstream span
//! with `traceparent` written, attributes, and the trace id for the log.
//!
//! Run: `cargo bench -p weir --bench telemetry`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::config::TracingConfig;
use weir::telemetry::counted::Tally;
use weir::telemetry::host_metrics::{AnsweredBy, HostMetrics, RequestRecord};
use weir::telemetry::traces::Tracing;

const ROUNDS: usize = 200_000;

/// Median of 5 runs of `f` over `ROUNDS`, in ns per round.
fn measure(mut f: impl FnMut(usize)) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            for i in 0..ROUNDS {
                f(i);
            }
            started.elapsed().as_nanos() as f64 / ROUNDS as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

fn metrics_per_request(metrics: &Arc<HostMetrics>) -> impl FnMut(usize) + '_ {
    let plugins: Vec<_> = ["50-router", "60-auth", "70-rate-limit"]
        .iter()
        .map(|name| metrics.plugin(name))
        .collect();
    let upstream = metrics.upstream("service1");
    move |_| {
        for plugin in &plugins {
            let started = Instant::now();
            plugin
                .on_request
                .observe(black_box(started.elapsed().as_secs_f64()));
        }
        let started = Instant::now();
        plugins[0]
            .on_response
            .observe(black_box(started.elapsed().as_secs_f64()));
        upstream.duration.observe(black_box(0.000_2));
        let (request_bytes, response_bytes) = metrics
            .request(RequestRecord {
                route: Some("service1"),
                upstream: Some("service1"),
                status: 200,
                answered_by: AnsweredBy::Upstream,
                duration: Duration::from_micros(60),
            })
            .expect("metrics are on");
        let tally = Tally::default();
        tally.settle(request_bytes);
        response_bytes.inc_by(black_box(64));
    }
}

fn tracing_per_request(tracing: &Arc<Tracing>) -> impl FnMut(usize) + '_ {
    let headers = http::HeaderMap::new();
    move |_| {
        let request = tracing.request(&http::Method::GET, "/service1/hello", &headers);
        for plugin in ["50-router", "60-auth", "70-rate-limit"] {
            let hook = request.hook(plugin, "on_request");
            hook.set(opentelemetry::KeyValue::new("weir.outcome", "continue"));
            hook.end();
        }
        let hook = request.hook("50-router", "on_response");
        hook.end();
        let upstream = request.client("upstream", "service1", &http::Method::GET);
        let mut out = http::HeaderMap::new();
        upstream.inject(&mut out);
        upstream.set(opentelemetry::KeyValue::new(
            "http.response.status_code",
            200_i64,
        ));
        upstream.end();
        request.set(opentelemetry::KeyValue::new(
            "http.response.status_code",
            200_i64,
        ));
        request.end();
        black_box(request.trace_id());
        black_box(out);
    }
}

fn tracing_at(ratio: f64) -> Arc<Tracing> {
    // Spans that are sampled go to a collector that does not exist; the
    // batch processor drops what it cannot send, off this thread.
    Tracing::start(&TracingConfig {
        otlp_endpoint: Some("http://127.0.0.1:9".into()),
        sample_ratio: ratio,
        ..TracingConfig::default()
    })
    .expect("tracing")
    .expect("configured")
}

fn main() {
    // With metrics off none of this runs (one branch per record site).
    let metrics = HostMetrics::new();
    let ns = measure(metrics_per_request(&metrics));
    println!("metrics, per request (default chain): {ns:.0} ns");
    for ratio in [0.0, 0.01, 1.0] {
        let tracing = tracing_at(ratio);
        let ns = measure(tracing_per_request(&tracing));
        println!(
            "tracing at {:>3}%, per request (7 spans): {ns:.0} ns",
            ratio * 100.0
        );
        tracing.shutdown();
    }
}
