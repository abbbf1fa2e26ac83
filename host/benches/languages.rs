//! Per-hook cost by plugin language: the Rust, Python, JavaScript (built by
//! `weir build-js`, and the same source by ComponentizeJS) and C examples, each on a warm (reused) instance and on a fresh instance per
//! call, plus the cost of loading each plugin with a cold and a warm
//! compiled-plugin cache.
//!
//! Run: `tools/setup-plugin-toolchains && cargo bench -p weir --bench languages`.
//! The examples are built with their real toolchains first (as the
//! integration tests do); a missing toolchain stops the run saying what to
//! install.

mod common;

#[allow(dead_code)]
#[path = "../../tests/integration/support/toolchains.rs"]
mod toolchains;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use weir::Gateway;
use weir::exchange::{HeldRequest, RequestState};
use weir::http::body::{self, BodyState};
use weir::runtime::bindings::Action;

const WARM_WARMUP: usize = 500;
const WARM_SAMPLES: usize = 5_000;
const FRESH_WARMUP: usize = 10;
const FRESH_SAMPLES: usize = 300;

/// One example plugin and the traffic that exercises it.
struct Case {
    label: &'static str,
    /// Builds the plugin (once) and says where it is.
    build: fn() -> PathBuf,
    wasm: PathBuf,
    config: Option<String>,
    /// What the request is, for the report.
    work: &'static str,
    request: fn() -> HeldRequest,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn example_config(dir: &str) -> Option<String> {
    let path = workspace().join("examples").join(dir).join("config.json");
    Some(std::fs::read_to_string(path).expect("example config"))
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> HeldRequest {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "api.example.com")
        .header("user-agent", "bench");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let (head, ()) = builder.body(()).expect("request").into_parts();
    let body = match body {
        Some(text) => BodyState::buffered(text.to_string()),
        None => BodyState::streaming(body::empty()),
    };
    let client: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    Box::new(RequestState::new(head, body, client))
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            label: "Rust (hello-header)",
            build: || Path::new(weir::BUILT_WASM_DIR).join("hello_header.wasm"),
            wasm: PathBuf::new(),
            config: None,
            work: "GET; on-response sets a header",
            request: || request("GET", "/users/7", &[], None),
        },
        Case {
            label: "Python (python-validator)",
            build: || toolchains::python_validator().to_path_buf(),
            wasm: PathBuf::new(),
            config: example_config("python-validator"),
            work: "POST, 40-byte JSON body validated against the schema",
            request: || {
                request(
                    "POST",
                    "/orders",
                    &[("content-type", "application/json")],
                    Some(r#"{"item": "tea", "quantity": 2, "note": "x"}"#),
                )
            },
        },
        Case {
            label: "JavaScript (js-security-headers)",
            build: || toolchains::js_security_headers().to_path_buf(),
            wasm: PathBuf::new(),
            config: example_config("js-security-headers"),
            work: "GET with an allowed Origin; on-response adds CORS + 3 security headers",
            request: || {
                request(
                    "GET",
                    "/users/7",
                    &[("origin", "https://app.example.com")],
                    None,
                )
            },
        },
        Case {
            label: "JavaScript, ComponentizeJS build",
            build: || toolchains::js_security_headers_componentize().to_path_buf(),
            wasm: PathBuf::new(),
            config: example_config("js-security-headers"),
            work: "the same source built with ComponentizeJS 0.23 (SpiderMonkey)",
            request: || {
                request(
                    "GET",
                    "/users/7",
                    &[("origin", "https://app.example.com")],
                    None,
                )
            },
        },
        Case {
            label: "C (c-method-guard)",
            build: || toolchains::c_method_guard().to_path_buf(),
            wasm: PathBuf::new(),
            config: example_config("c-method-guard"),
            work: "GET, an allowed method",
            request: || request("GET", "/users/7", &[], None),
        },
    ]
}

fn toml(max_calls_per_instance: u64) -> String {
    format!(
        "[runtime]\nmax_calls_per_instance = {max_calls_per_instance}\n[log]\naccess_log = false\n"
    )
}

/// `(on-request median, p99, on-response median, p99)` in µs.
async fn measure_hooks(
    case: &Case,
    max_calls_per_instance: u64,
    warmup: usize,
    samples: usize,
) -> [f64; 4] {
    let plugins = [("10-plugin", case.wasm.clone(), case.config.as_deref())];
    let (_dir, config) = common::gateway_dir_from(
        &plugins,
        &toml(max_calls_per_instance),
        &common::default_cache(),
    );
    let gateway = Gateway::new(&config).await.expect("gateway loads");
    let pipeline = gateway.pipeline();
    let plugin = &pipeline.plugins()[0];
    let mut on_request = Vec::with_capacity(samples);
    let mut on_response = Vec::with_capacity(samples);
    for i in 0..(warmup + samples) {
        let req = (case.request)();
        let started = Instant::now();
        let (req, outcome) = common::on_request(plugin, req).await;
        let t1 = started.elapsed();
        assert!(
            matches!(outcome, Action::Continue),
            "{}: the bench request must continue",
            case.label
        );
        let started = Instant::now();
        let _ = common::on_response(plugin, req, common::response()).await;
        let t2 = started.elapsed();
        if i >= warmup {
            on_request.push(t1);
            on_response.push(t2);
        }
    }
    let (req_med, req_p99) = common::summary(&mut on_request);
    let (resp_med, resp_p99) = common::summary(&mut on_response);
    [req_med, req_p99, resp_med, resp_p99]
}

/// Seconds to load the plugin into a new gateway: with an empty compiled
/// cache (compiles), then again with the cache it filled (a restart or
/// reload).
async fn measure_load(case: &Case) -> (f64, f64) {
    let cache = tempfile::tempdir().expect("cache dir");
    let plugins = [("10-plugin", case.wasm.clone(), case.config.as_deref())];
    let mut seconds = Vec::new();
    for _ in 0..2 {
        let (_dir, config) = common::gateway_dir_from(&plugins, &toml(10_000), cache.path());
        let started = Instant::now();
        let gateway = Gateway::new(&config).await.expect("gateway loads");
        seconds.push(started.elapsed().as_secs_f64());
        drop(gateway);
    }
    (seconds[0], seconds[1])
}

fn main() {
    // `cargo bench -p weir --bench languages -- Python` runs only the cases
    // whose label contains one of the words given.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // Build the examples before timing anything.
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| only.is_empty() || only.iter().any(|word| c.label.contains(word.as_str())))
        .map(|c| Case {
            wasm: (c.build)(),
            ..c
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        println!(
            "per-hook cost by language, µs: warm = reused instance ({WARM_SAMPLES} samples after \
             {WARM_WARMUP}), fresh = new instance + init per call ({FRESH_SAMPLES} samples)"
        );
        println!(
            "{:<34} {:>21} {:>21} {:>21} {:>21} {:>9} {:>9} {:>7}",
            "plugin",
            "warm on-req med/p99",
            "warm on-resp med/p99",
            "fresh on-req med/p99",
            "fresh on-resp med/p99",
            "load cold",
            "cached",
            "size"
        );
        for case in &cases {
            let warm = measure_hooks(case, 1_000_000, WARM_WARMUP, WARM_SAMPLES).await;
            let fresh = measure_hooks(case, 1, FRESH_WARMUP, FRESH_SAMPLES).await;
            let (cold, cached) = measure_load(case).await;
            let size = std::fs::metadata(&case.wasm).expect("wasm").len() as f64 / 1e6;
            let pair = |med: f64, p99: f64| format!("{med:.1} / {p99:.1}");
            println!(
                "{:<34} {:>21} {:>21} {:>21} {:>21} {:>8.2}s {:>8.3}s {:>5.1}MB",
                case.label,
                pair(warm[0], warm[1]),
                pair(warm[2], warm[3]),
                pair(fresh[0], fresh[1]),
                pair(fresh[2], fresh[3]),
                cold,
                cached,
                size
            );
        }
        println!();
        for case in &cases {
            println!("{:<34} {}", case.label, case.work);
        }
    });
    std::thread::sleep(Duration::from_millis(10));
}
