//! Per-hook overhead of a trivial Rust plugin: a warm, reused instance
//! against a fresh instance per request (instantiate + `init` + call + drop).
//!
//! Run: `cargo bench -p weir --bench hooks`. Prints median and p99 per hook
//! call, measured one call at a time through the same path requests take
//! (`LoadedPlugin::call`, `on-request` then `on-response`).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use weir::Gateway;
use weir::exchange::{HeldRequest, RequestState};
use weir::http::body::{self, BodyState};

const WARMUP: usize = 2_000;
const SAMPLES: usize = 20_000;

fn request() -> HeldRequest {
    request_to("/users/7?full=1")
}

fn request_to(path: &str) -> HeldRequest {
    let (head, ()) = http::Request::builder()
        .uri(path)
        .header("host", "api.example.com")
        .header("user-agent", "bench")
        .body(())
        .expect("request")
        .into_parts();
    let client: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    Box::new(RequestState::new(
        head,
        BodyState::streaming(body::empty()),
        client,
    ))
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
        let (req, _) = common::on_request(plugin, req).await;
        let t1 = started.elapsed();
        let started = Instant::now();
        let (_, resp, _) = common::on_response(plugin, req, common::response()).await;
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

/// `n` routes, a quarter each exact, template, prefix and regex.
fn routes(n: usize) -> String {
    let mut routes = Vec::new();
    for i in 0..n {
        let (kind, value) = match i % 4 {
            0 => ("path", format!("/exact/{i}")),
            1 => ("path", format!("/svc{i}/{{id}}/items/{{item}}")),
            2 => ("path_prefix", format!("/prefix{i}")),
            _ => ("path_regex", format!("^/re{i}/[0-9]+$")),
        };
        routes.push(
            serde_json::json!({"name": format!("r{i}"), "match": {kind: value}, "upstream": "u"}),
        );
    }
    serde_json::json!({ "routes": routes }).to_string()
}

/// Routing cost: the router's on-request hook (matching, set-upstream,
/// set-context, rewrite) on a warm instance.
async fn measure_router(n: usize) {
    let config = routes(n);
    let toml = "[log]\naccess_log = false\n[upstreams.u]\ntargets = [\"http://127.0.0.1:9\"]\n";
    let (_dir, config) =
        common::gateway_dir(&[("50-router", "weir_plugin_router", Some(&config))], toml);
    let gateway = Gateway::new(&config).await.expect("gateway loads");
    let pipeline = gateway.pipeline();
    let plugin = &pipeline.plugins()[0];
    // The last route of each kind, so every stage sees all its routes.
    let last = |kind: usize| {
        (0..n)
            .rev()
            .find(|i| i % 4 == kind)
            .expect("a route of each kind")
    };
    let paths = [
        ("exact", format!("/exact/{}", last(0))),
        ("template", format!("/svc{}/7/items/9", last(1))),
        ("prefix", format!("/prefix{}/deep/path", last(2))),
        ("regex", format!("/re{}/42", last(3))),
        ("no route (404)", "/nowhere/at/all".to_string()),
    ];
    for (label, path) in paths {
        let mut samples = Vec::with_capacity(SAMPLES);
        for i in 0..(WARMUP + SAMPLES) {
            let req = request_to(&path);
            let started = Instant::now();
            let (_, _) = common::on_request(plugin, req).await;
            if i >= WARMUP {
                samples.push(started.elapsed());
            }
        }
        let (median, p99) = common::summary(&mut samples);
        println!("router, {n:>4} routes, {label:<15} median {median:>7.2} µs  p99 {p99:>7.2} µs");
    }
}

/// Whole-request overhead without a network: `Gateway::handle` for a
/// request that the router answers itself (404), so every cost is the
/// host's pipeline plus one hook.
async fn measure_handle() {
    let router = r#"{"routes": [{"name": "r", "match": {"path": "/only"}, "upstream": "u"}]}"#;
    let toml = "[log]\naccess_log = false\n[upstreams.u]\ntargets = [\"http://127.0.0.1:9\"]\n";
    let (_dir, config) =
        common::gateway_dir(&[("50-router", "weir_plugin_router", Some(router))], toml);
    let gateway = Gateway::new(&config).await.expect("gateway loads");
    let client: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..(WARMUP + SAMPLES) {
        let req = http::Request::builder()
            .uri("/users/7?full=1")
            .header("host", "api.example.com")
            .header("user-agent", "bench")
            .body(body::empty())
            .expect("request");
        let started = Instant::now();
        let response = gateway.handle(req, client).await;
        if i >= WARMUP {
            samples.push(started.elapsed());
        }
        assert_eq!(response.status(), 404);
    }
    let (median, p99) = common::summary(&mut samples);
    println!("Gateway::handle, router answers 404 median {median:>7.2} µs  p99 {p99:>7.2} µs");
}

/// Auth cost: the auth plugin's on-request hook checking an API key, an
/// RS256 token (2048-bit key) and an ES256 token.
async fn measure_auth() {
    use base64::Engine;
    use rsa::signature::{SignatureEncoding, Signer};
    use rsa::traits::PublicKeyParts;
    use sha2::Digest;

    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let rsa_key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("rsa key");
    let p256_key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let point = p256_key.verifying_key().to_encoded_point(false);
    let public = rsa_key.to_public_key();
    let jwks = serde_json::json!({"keys": [
        {"kty": "RSA", "kid": "r", "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())},
        {"kty": "EC", "kid": "e", "crv": "P-256", "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y"))},
    ]});
    let config = serde_json::json!({
        "api_key": {"consumers": [{"id": "alice", "sha256": hex::encode(sha2::Sha256::digest(b"the-key"))}]},
        "jwt": {"jwks": jwks, "issuer": "idp"},
    });
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        + 3600;
    let rs_signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa_key);
    // Token `i` differs by its `jti`, so each is new to the verified-token cache.
    let token = |alg: &str, i: usize| {
        let claims = serde_json::json!({"sub": "bob", "iss": "idp", "exp": exp, "jti": i});
        let kid = if alg == "RS256" { "r" } else { "e" };
        let header = serde_json::json!({"alg": alg, "kid": kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = if alg == "RS256" {
            rs_signer.sign(input.as_bytes()).to_vec()
        } else {
            let sig: p256::ecdsa::Signature = p256_key.sign(input.as_bytes());
            sig.to_bytes().to_vec()
        };
        format!("Bearer {input}.{}", b64(&sig))
    };
    const FRESH: usize = 1_000;
    let rs_fresh: Vec<String> = (0..FRESH).map(|i| token("RS256", i)).collect();
    let es_fresh: Vec<String> = (0..FRESH).map(|i| token("ES256", i)).collect();

    let toml = "[log]\naccess_log = false\n";
    let text = config.to_string();
    let (_dir, config) = common::gateway_dir(&[("60-auth", "weir_plugin_auth", Some(&text))], toml);
    let gateway = Gateway::new(&config).await.expect("gateway loads");
    let pipeline = gateway.pipeline();
    let plugin = &pipeline.plugins()[0];
    let cases: [(&str, &str, Vec<String>); 5] = [
        ("API key", "x-api-key", vec!["the-key".to_string()]),
        ("JWT RS256, new token", "authorization", rs_fresh),
        ("JWT ES256, new token", "authorization", es_fresh),
        (
            "JWT RS256, reused token",
            "authorization",
            vec![token("RS256", FRESH)],
        ),
        (
            "JWT ES256, reused token",
            "authorization",
            vec![token("ES256", FRESH)],
        ),
    ];
    for (label, header, values) in cases {
        let rounds = if values.len() > 1 {
            values.len()
        } else {
            SAMPLES / 10
        };
        let warmup = if values.len() > 1 { 0 } else { WARMUP / 10 };
        let mut samples = Vec::with_capacity(rounds);
        for i in 0..(warmup + rounds) {
            let mut req = request();
            let value = &values[i % values.len()];
            req.head.headers.insert(
                http::HeaderName::from_static(header),
                value.parse().expect("header value"),
            );
            let started = Instant::now();
            let (req, action) = common::on_request(plugin, req).await;
            if i >= warmup {
                samples.push(started.elapsed());
            }
            assert!(
                matches!(action, weir::runtime::bindings::Action::Continue),
                "{label} was refused"
            );
            assert!(req.context.contains_key("consumer"));
        }
        let (median, p99) = common::summary(&mut samples);
        println!("auth, {label:<24} median {median:>8.2} µs  p99 {p99:>8.2} µs");
    }
}

/// Rate-limit cost: the rate-limit plugin's on-request hook with one and
/// with three limits, in memory and with Redis on loopback (a
/// `redis-server` started here, if installed).
async fn measure_rate_limit() {
    let one = r#"{"headers": false, "limits": [{"name": "a", "key": "client_ip", "rate": 1000000000, "per": "1s"}]}"#;
    let three = r#"{"headers": false, "limits": [
        {"name": "a", "key": "client_ip", "rate": 1000000000, "per": "1s"},
        {"name": "b", "key": "header:user-agent", "rate": 1000000000, "per": "1s"},
        {"name": "c", "key": ["client_ip", "header:host"], "rate": 1000000000, "per": "1s"}]}"#;
    let redis = RedisForBench::start();
    let mut backends = vec![("memory", "[log]\naccess_log = false\n".to_string())];
    match &redis {
        Some(r) => backends.push((
            "redis",
            format!("[log]\naccess_log = false\n[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\n", r.port),
        )),
        None => println!("rate limit with Redis: skipped (redis-server is not installed)"),
    }
    for (store, toml) in &backends {
        for (label, config) in [("1 limit", one), ("3 limits", three)] {
            let (_dir, config) = common::gateway_dir(
                &[("70-rate-limit", "weir_plugin_rate_limit", Some(config))],
                toml,
            );
            let gateway = Gateway::new(&config).await.expect("gateway loads");
            let pipeline = gateway.pipeline();
            let plugin = &pipeline.plugins()[0];
            let samples_n = SAMPLES / 4;
            let mut samples = Vec::with_capacity(samples_n);
            for i in 0..(WARMUP + samples_n) {
                let started = Instant::now();
                let (_, action) = common::on_request(plugin, request()).await;
                if i >= WARMUP {
                    samples.push(started.elapsed());
                }
                assert!(matches!(action, weir::runtime::bindings::Action::Continue));
            }
            let (median, p99) = common::summary(&mut samples);
            println!(
                "rate limit, {store:<6} {label:<9} median {median:>8.2} µs  p99 {p99:>8.2} µs"
            );
        }
    }
}

/// A throwaway `redis-server` on a free port.
struct RedisForBench {
    port: u16,
    child: std::process::Child,
}

impl RedisForBench {
    fn start() -> Option<RedisForBench> {
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
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(RedisForBench { port, child })
    }
}

impl Drop for RedisForBench {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        println!(
            "per-hook cost, hello_header plugin, {SAMPLES} samples after {WARMUP} warm-up calls"
        );
        measure("warm instance (reused)", 1_000_000, SAMPLES).await;
        // A budget of one call: every hook call gets a new instance
        // (instantiate + init + call + drop).
        measure("fresh instance per call", 1, SAMPLES / 4).await;
        println!();
        measure_router(10).await;
        measure_router(1000).await;
        println!();
        measure_handle().await;
        println!();
        measure_auth().await;
        println!();
        measure_rate_limit().await;
    });
    std::thread::sleep(Duration::from_millis(10));
}
