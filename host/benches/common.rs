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
pub fn response() -> weir::exchange::ResponseState {
    let (head, ()) = http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(())
        .expect("response")
        .into_parts();
    weir::exchange::ResponseState {
        head,
        body: weir::body::BodyState::buffered("{}"),
    }
}
