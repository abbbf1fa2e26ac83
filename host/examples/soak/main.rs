//! The soak benchmark (`bench/soak.sh` builds and runs it): the `weir`
//! binary with the default chain (router, auth, rate-limit in Redis) and a
//! plugin that traps on 1% of requests, under a steady offered load for a
//! long time, with a reload every 10 s, one Redis crash and restart half
//! way, and WebSocket and gRPC streams open throughout.
//!
//!   soak WEIR [MINUTES=30] [RATE=2000]
//!
//! Every 10 s it prints the gateway's RSS and open descriptors, the good
//! requests' p50, p99 and worst latency in that window, and the running
//! counts; at the end, a summary. It exits non-zero when a good request,
//! a WebSocket or gRPC message, or a reload failed. Rate limits fail open
//! while Redis is down (`[state] on_error = "fail_open"`), so the Redis
//! crash must cost no request either.

mod backends;
mod clients;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;

use clients::{KEY, Stats};

/// HTTP client connections sharing the offered rate.
const CONNECTIONS: u64 = 16;
/// WebSocket and gRPC streams each.
const STREAMS: usize = 4;
/// Reloads, samples and report lines.
const EVERY: Duration = Duration::from_secs(10);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(weir) = args.get(1) else {
        anyhow::bail!("usage: soak WEIR [MINUTES=30] [RATE=2000]");
    };
    let minutes: f64 = args.get(2).map_or(Ok(30.0), |m| m.parse())?;
    let rate: f64 = args.get(3).map_or(Ok(2000.0), |r| r.parse())?;
    let total = Duration::from_secs_f64(minutes * 60.0);

    let mut redis = backends::Redis::start()?;
    let upstreams = Upstreams {
        http: backends::http_service().await?,
        ws: backends::websocket_echo().await?,
        grpc: backends::grpc_echo().await?,
    };
    let dir = tempfile::tempdir()?;
    write_gateway(weir, dir.path(), &upstreams, redis.port)?;
    let (mut child, gateway, admin) = start(weir, dir.path()).await?;
    let pid = child.id().unwrap_or_default();
    println!(
        "# soak: {minutes} min at {rate} req/s over {CONNECTIONS} connections, {STREAMS} WebSocket \
         and {STREAMS} gRPC streams, a reload every {} s, Redis killed and restarted at {:.1} min",
        EVERY.as_secs(),
        minutes / 2.0
    );
    println!(
        "t_s\trss_mib\tfds\treq_s\tp50_ms\tp99_ms\tmax_ms\tgood_failed\ttrapped\tws_ok\tgrpc_ok\treloads"
    );

    let stats = Arc::new(Stats::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for i in 0..CONNECTIONS {
        let (stats, stopped) = (stats.clone(), stopped.clone());
        let per_second = rate / CONNECTIONS as f64;
        tasks.push(tokio::spawn(async move {
            clients::http_worker(gateway, per_second, 0x9e37_79b9 + i, &stats, stopped).await
        }));
    }
    for _ in 0..STREAMS {
        let (ws_stats, ws_stopped) = (stats.clone(), stopped.clone());
        tasks.push(tokio::spawn(async move {
            clients::websocket_stream(gateway, &ws_stats, ws_stopped).await
        }));
        let (grpc_stats, grpc_stopped) = (stats.clone(), stopped.clone());
        tasks.push(tokio::spawn(async move {
            clients::grpc_stream(gateway, &grpc_stats, grpc_stopped).await
        }));
    }

    let started = Instant::now();
    let (mut reloads, mut reloads_failed, mut restarted) = (0u64, 0u64, false);
    let (mut last_ok, mut worst_p99, mut most_rss, mut most_fds) = (0u64, 0u32, 0u64, 0usize);
    let http = admin_client();
    while started.elapsed() < total {
        tokio::time::sleep(EVERY).await;
        match http.request(reload_request(admin)).await {
            Ok(response) if response.status() == 200 => reloads += 1,
            other => {
                reloads_failed += 1;
                println!("# reload failed: {:?}", other.map(|r| r.status()));
            }
        }
        if !restarted && started.elapsed() >= total / 2 {
            redis.down();
            println!("# t={}s: Redis killed", started.elapsed().as_secs());
            tokio::time::sleep(Duration::from_secs(2)).await;
            redis.up()?;
            println!("# t={}s: Redis started again", started.elapsed().as_secs());
            restarted = true;
        }
        let window = stats.take_window();
        let at = |q: f64| {
            window
                .get(((window.len() as f64 * q) as usize).min(window.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        let ok = stats.good_ok.load(Ordering::Relaxed);
        let (rss, fds) = (rss_mib(pid), descriptors(pid));
        (worst_p99, most_rss, most_fds) = (
            worst_p99.max(at(0.99)),
            most_rss.max(rss),
            most_fds.max(fds),
        );
        println!(
            "{}\t{rss}\t{fds}\t{:.0}\t{:.2}\t{:.2}\t{:.2}\t{}\t{}\t{}\t{}\t{reloads}",
            started.elapsed().as_secs(),
            (ok - last_ok) as f64 / EVERY.as_secs_f64(),
            f64::from(at(0.5)) / 1000.0,
            f64::from(at(0.99)) / 1000.0,
            f64::from(window.last().copied().unwrap_or(0)) / 1000.0,
            stats.good_failed.load(Ordering::Relaxed),
            stats.trapped.load(Ordering::Relaxed),
            stats.ws_ok.load(Ordering::Relaxed),
            stats.grpc_ok.load(Ordering::Relaxed),
        );
        last_ok = ok;
    }
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let _ = child.kill().await;

    let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let failed = count(&stats.good_failed) + count(&stats.ws_failed) + count(&stats.grpc_failed);
    println!("# summary");
    println!(
        "good requests\t{} ok, {} failed",
        count(&stats.good_ok),
        count(&stats.good_failed)
    );
    println!(
        "trap requests\t{} answered 500 as documented, {} otherwise",
        count(&stats.trapped),
        count(&stats.trap_unexpected)
    );
    println!(
        "websocket\t{} messages echoed, {} failed",
        count(&stats.ws_ok),
        count(&stats.ws_failed)
    );
    println!(
        "grpc\t{} messages echoed, {} failed",
        count(&stats.grpc_ok),
        count(&stats.grpc_failed)
    );
    println!("reloads\t{reloads} ok, {reloads_failed} failed");
    println!(
        "most RSS\t{most_rss} MiB; most descriptors {most_fds}; worst window p99 {:.2} ms",
        f64::from(worst_p99) / 1000.0
    );
    let log = std::fs::read_to_string(dir.path().join("weir.log")).unwrap_or_default();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    println!(
        "gateway log\t{} lines, {} at ERROR",
        log.lines().count(),
        errors.len()
    );
    for line in errors.iter().take(5) {
        println!("error\t{line}");
    }
    for (count, kind) in commonest(&log, 5) {
        println!("log line\t{count} × {kind}");
    }
    for failure in stats.failures.lock().unwrap().iter() {
        println!("failure\t{failure}");
    }
    if failed > 0 || reloads_failed > 0 {
        anyhow::bail!("{failed} failed requests or messages, {reloads_failed} failed reloads");
    }
    Ok(())
}

/// Where the upstreams listen.
struct Upstreams {
    http: SocketAddr,
    ws: SocketAddr,
    grpc: SocketAddr,
}

/// `weir init DIR`, then the soak's config: the default chain without the
/// plugins that pass through (validate, cache, aggregate), state in Redis,
/// and the trap plugin (the scripted test fixture) before auth.
fn write_gateway(weir: &str, dir: &Path, up: &Upstreams, redis: u16) -> anyhow::Result<()> {
    let status = std::process::Command::new(weir)
        .arg("init")
        .arg(dir)
        .arg("--force")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "weir init failed");
    let key_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(KEY.as_bytes()))
    };
    let toml = format!(
        r#"plugins_dir = "plugins"
cache_dir = ".weir-cache"
[log]
access_log = false
level = "warn"
[reload]
watch = false
[state]
backend = "redis"
url = "redis://127.0.0.1:{redis}"
on_error = "fail_open"
[upstreams.service1]
targets = ["http://{}"]
[upstreams.ws]
targets = ["http://{}"]
[upstreams.grpc]
targets = ["http://{}"]
protocol = "h2c"
"#,
        up.http, up.ws, up.grpc
    );
    std::fs::write(dir.join("weir.toml"), toml)?;
    let plugins = dir.join("plugins");
    for stale in ["65-validate", "75-cache", "80-aggregate"] {
        for ext in ["wasm", "json"] {
            let _ = std::fs::remove_file(plugins.join(format!("{stale}.{ext}")));
        }
    }
    let json = |name: &str, value: serde_json::Value| {
        std::fs::write(plugins.join(name), value.to_string())
    };
    json(
        "50-router.json",
        serde_json::json!({"routes": [
            {"name": "service1", "match": {"path_prefix": "/service1"}, "upstream": "service1", "strip_prefix": true},
            {"name": "ws", "match": {"path": "/ws"}, "upstream": "ws"},
            {"name": "grpc", "match": {"path_prefix": "/echo.Echo/"}, "upstream": "grpc"},
        ]}),
    )?;
    json(
        "60-auth.json",
        serde_json::json!({
            "api_key": {"header": "x-api-key", "consumers": [{"id": "soak", "sha256": key_sha}]},
            "default": {"methods": ["api_key"]},
        }),
    )?;
    json(
        "70-rate-limit.json",
        serde_json::json!({"limits": [
            {"name": "per-consumer", "key": "consumer", "rate": 100_000_000, "per": "1s"},
        ]}),
    )?;
    std::fs::copy(
        Path::new(weir::BUILT_WASM_DIR).join("fixture_scripted.wasm"),
        plugins.join("55-trap.wasm"),
    )?;
    json(
        "55-trap.json",
        serde_json::json!({"on_request": [
            {"op": "when_header", "name": "x-trap", "value": "1", "then": [{"op": "trap"}]},
        ]}),
    )?;
    Ok(())
}

/// Start `weir run` on free ports; its addresses. Its log goes to
/// `DIR/weir.log`.
async fn start(
    weir: &str,
    dir: &Path,
) -> anyhow::Result<(tokio::process::Child, SocketAddr, SocketAddr)> {
    let log = std::fs::File::create(dir.join("weir.log"))?;
    let mut child = tokio::process::Command::new(weir)
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(dir.join("weir.toml"))
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut gateway, mut admin) = (None, None);
    while let Some(line) = lines.next_line().await? {
        if let Some(addr) = line.strip_prefix("listening on http://") {
            gateway = Some(addr.parse()?);
        } else if let Some(addr) = line.strip_prefix("admin listening on http://") {
            admin = Some(addr.parse()?);
            break;
        }
    }
    match (gateway, admin) {
        (Some(gateway), Some(admin)) => Ok((child, gateway, admin)),
        _ => anyhow::bail!(
            "weir exited before listening; see {}",
            dir.join("weir.log").display()
        ),
    }
}

type AdminClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

/// A new connection for every reload: a kept-alive one would be closed by
/// the admin listener after its header timeout (10 s, the reload interval),
/// and a request sent as it closes would fail on the client's side.
fn admin_client() -> AdminClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

fn reload_request(admin: SocketAddr) -> http::Request<http_body_util::Empty<bytes::Bytes>> {
    http::Request::post(format!("http://{admin}/admin/reload"))
        .body(http_body_util::Empty::new())
        .unwrap()
}

/// The `n` commonest kinds of log line (level, target and the message's
/// first words), with their counts.
fn commonest(log: &str, n: usize) -> Vec<(usize, String)> {
    let mut kinds = std::collections::HashMap::<String, usize>::new();
    for line in log.lines() {
        // Drop the timestamp; keep what says which line this is.
        let kind: String = line
            .split_whitespace()
            .skip(1)
            .take(6)
            .collect::<Vec<_>>()
            .join(" ");
        *kinds.entry(kind).or_default() += 1;
    }
    let mut kinds: Vec<(usize, String)> = kinds.into_iter().map(|(k, c)| (c, k)).collect();
    kinds.sort_unstable_by(|a, b| b.cmp(a));
    kinds.truncate(n);
    kinds
}

fn rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}
