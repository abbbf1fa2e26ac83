//! Shared by the benchmarks: building a gateway directory and summarising
//! timings.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A temp gateway dir with the given plugins (`(stem, artifact, config)`),
/// artifacts being the workspace's built wasm crates.
pub fn gateway_dir(
    plugins: &[(&str, &str, Option<&str>)],
    toml: &str,
) -> (tempfile::TempDir, weir::Config) {
    let plugins: Vec<(&str, PathBuf, Option<&str>)> = plugins
        .iter()
        .map(|(stem, artifact, config)| {
            let wasm = Path::new(weir::BUILT_WASM_DIR).join(format!("{artifact}.wasm"));
            (*stem, wasm, *config)
        })
        .collect();
    gateway_dir_from(&plugins, toml, &default_cache())
}

/// The compiled-plugin cache the benchmarks share across runs.
pub fn default_cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-plugin-cache")
}

/// A temp gateway dir with the given plugins (`(stem, wasm file, config)`)
/// and compiled-plugin cache.
pub fn gateway_dir_from(
    plugins: &[(&str, PathBuf, Option<&str>)],
    toml: &str,
    cache: &Path,
) -> (tempfile::TempDir, weir::Config) {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins_dir = dir.path().join("plugins");
    std::fs::create_dir(&plugins_dir).expect("plugins dir");
    for (stem, wasm, config) in plugins {
        std::fs::copy(wasm, plugins_dir.join(format!("{stem}.wasm"))).expect("copy plugin");
        if let Some(config) = config {
            std::fs::write(plugins_dir.join(format!("{stem}.json")), config).expect("write config");
        }
    }
    let path = dir.path().join("weir.toml");
    let text = format!("cache_dir = {:?}\n{toml}", cache.display().to_string());
    std::fs::write(&path, text).expect("write weir.toml");
    let config = weir::Config::load(&path).expect("valid config");
    (dir, config)
}

/// Percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// `median / p99` in microseconds.
pub fn summary(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    (
        percentile(samples, 0.5).as_secs_f64() * 1e6,
        percentile(samples, 0.99).as_secs_f64() * 1e6,
    )
}

/// A 200 JSON response for `on-response` hooks.
pub fn response() -> weir::exchange::HeldResponse {
    let (head, ()) = http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(())
        .expect("response")
        .into_parts();
    Box::new(weir::exchange::ResponseState {
        head,
        body: weir::http::body::BodyState::buffered("{}"),
    })
}

/// A loopback backend answering every request with `body` after `delay`.
pub async fn backend(delay: Duration, body: &'static [u8]) -> std::net::SocketAddr {
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        bytes::Bytes::from_static(body),
                    )))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// One `on-request` call, as the gateway makes it (without governance):
/// the request back and the action.
pub async fn on_request(
    plugin: &weir::plugin::LoadedPlugin,
    req: weir::exchange::HeldRequest,
) -> (weir::exchange::HeldRequest, weir::runtime::bindings::Action) {
    let (ex, action) = match plugin
        .call(weir::exchange::Exchange::request(req))
        .await
        .outcome
    {
        Ok(done) => done,
        Err(failed) => panic!("on_request: {}", failed.error),
    };
    (ex.req, action)
}

/// One `on-response` call: the request, the response and the action.
pub async fn on_response(
    plugin: &weir::plugin::LoadedPlugin,
    req: weir::exchange::HeldRequest,
    resp: weir::exchange::HeldResponse,
) -> (
    weir::exchange::HeldRequest,
    weir::exchange::HeldResponse,
    weir::runtime::bindings::Action,
) {
    let exchange = weir::exchange::Exchange::response(req, resp);
    let (ex, action) = match plugin.call(exchange).await.outcome {
        Ok(done) => done,
        Err(failed) => panic!("on_response: {}", failed.error),
    };
    let resp = ex.resp.expect("on-response gives the response back");
    (ex.req, resp, action)
}
