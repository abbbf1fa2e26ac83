//! Containment under hostile plugins and hostile clients: each misbehaving
//! request gets its documented answer within the hook deadline (+100 ms),
//! well-behaved requests on another route keep succeeding meanwhile, the
//! process stays up, and its memory stays bounded.

mod clients;
mod plugins;
mod waits;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::client::Reply;
use crate::support::process::{self, Process};
use crate::support::raw;
use crate::support::*;

/// The hook deadline of these gateways.
pub(super) const DEADLINE_MS: u64 = 1000;
/// How late past the deadline an answer may come.
pub(super) const MARGIN_MS: u64 = 100;

/// A gateway routing `/good` and `/bad` to the backend, with plugin
/// `20-hostile` running `steps` (in `hook`) on `/bad` only. The plugin's
/// report (`x-report`, see the scripted fixture) comes back to the client.
pub(super) fn hostile(backend: &Backend, hook: &str, steps: serde_json::Value) -> Setup {
    let mut script = json!({
        "on_request": [],
        "on_response": [{"op": "context_to_header", "key": "x-report", "header": "x-report"}],
    });
    let bad = json!({"op": "when_path", "path": "/bad", "then": steps});
    script[hook].as_array_mut().unwrap().insert(0, bad);
    Setup::new()
        .limit(&format!("hook_deadline_ms = {DEADLINE_MS}"))
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .scripted("20-hostile", script)
}

/// Keeps sending `/good` until dropped; counts successes and failures.
pub(super) struct GoodTraffic {
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl GoodTraffic {
    pub(super) fn start(url: String, clients: usize) -> GoodTraffic {
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|_| {
                let (ok, failed, stop, url) =
                    (ok.clone(), failed.clone(), stop.clone(), url.clone());
                tokio::spawn(async move {
                    let client = crate::support::client::http1();
                    while !stop.load(Ordering::SeqCst) {
                        let request = request(http::Method::GET, &url, bytes::Bytes::new());
                        let outcome =
                            tokio::time::timeout(Duration::from_secs(5), client.request(request))
                                .await;
                        match outcome {
                            Ok(Ok(response)) if response.status() == 200 => {
                                let _ =
                                    http_body_util::BodyExt::collect(response.into_body()).await;
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            _ => {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                })
            })
            .collect();
        GoodTraffic {
            ok,
            failed,
            stop,
            tasks,
        }
    }

    /// Stop and return (succeeded, failed).
    pub(super) async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

/// Send `/bad` while good traffic runs on `/good`: the bad request's reply
/// and how long it took; every good request must have succeeded.
pub(super) async fn bad_beside_good(gw: &Running) -> (Reply, Duration) {
    bad_beside_good_at(gw, "/bad").await
}

/// [`bad_beside_good`] with the bad request sent to `path`.
pub(super) async fn bad_beside_good_at(gw: &Running, path: &str) -> (Reply, Duration) {
    let good = GoodTraffic::start(gw.url("/good"), 2);
    // Let the good traffic get going first.
    while good.ok.load(Ordering::SeqCst) < 5 {
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    let reply = get(&gw.url(path)).await;
    let took = started.elapsed();
    let (ok, failed) = good.finish().await;
    assert_eq!(failed, 0, "{failed} good requests failed ({ok} succeeded)");
    (reply, took)
}

pub(super) fn assert_within_deadline(took: Duration) {
    assert!(
        took < Duration::from_millis(DEADLINE_MS + MARGIN_MS),
        "answered after {took:?}"
    );
}

pub(super) fn report(reply: &str, key: &str) -> u64 {
    reply
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {reply:?}"))
}

/// A `weir` process with a hostile plugin, for the memory and log bounds,
/// which are only meaningful for a process of its own.
pub(super) async fn hostile_process(
    backend: &Backend,
    steps: serde_json::Value,
) -> (Setup, Process, process::Output) {
    let setup = hostile(backend, "on_request", steps).log(&["access_log = false"]);
    let (process, output) = Process::start_capturing(&setup.write()).await;
    (setup, process, output)
}

/// How much the process may grow under each flood: above the 16 MiB kv
/// quota, far below what an unbounded flood takes (~470 MB for the kv flood
/// before budgets existed).
pub(super) const RSS_BOUND: u64 = 50 * 1024 * 1024;
