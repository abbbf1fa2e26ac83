//! The soak's clients: HTTP requests at a fixed offered rate (1% of them
//! asking the trap plugin to trap), WebSocket and gRPC streams kept open,
//! one message a second each; and what they saw.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::backends::Raw;

/// The API key every client sends.
pub const KEY: &str = "soak-key";

/// Counts, shared by every client.
#[derive(Default)]
pub struct Stats {
    pub good_ok: AtomicU64,
    pub good_failed: AtomicU64,
    pub trapped: AtomicU64,
    pub trap_unexpected: AtomicU64,
    pub ws_ok: AtomicU64,
    pub ws_failed: AtomicU64,
    pub grpc_ok: AtomicU64,
    pub grpc_failed: AtomicU64,
    /// Latencies of good requests in the current window, in µs.
    pub window: Mutex<Vec<u32>>,
    /// The first failures, described.
    pub failures: Mutex<Vec<String>>,
}

impl Stats {
    fn failed(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 50 {
            failures.push(what);
        }
    }

    /// The window's latencies, sorted, and a fresh window.
    pub fn take_window(&self) -> Vec<u32> {
        let mut window = std::mem::take(&mut *self.window.lock().unwrap());
        window.sort_unstable();
        window
    }
}

/// A cheap deterministic generator: which requests trap.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Requests at `per_second` on one keep-alive connection until `stop`.
pub async fn http_worker(
    gateway: SocketAddr,
    per_second: f64,
    seed: u64,
    stats: &Stats,
    mut stop: watch::Receiver<bool>,
) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = seed | 1;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let trap = next(&mut state).is_multiple_of(100);
        let mut request =
            http::Request::get(format!("http://{gateway}/service1/hello")).header("x-api-key", KEY);
        if trap {
            request = request.header("x-trap", "1");
        }
        let request = request.body(Empty::new()).unwrap();
        let started = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(10), async {
            let response = client.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        })
        .await
        .unwrap_or_else(|_| Err("no answer in 10 s".into()));
        let took = started.elapsed();
        match (trap, outcome) {
            (false, Ok((200, _))) => {
                stats.good_ok.fetch_add(1, Ordering::Relaxed);
                let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
                stats.window.lock().unwrap().push(micros);
            }
            (false, Ok((status, body))) => stats.failed(
                &stats.good_failed,
                format!("good request: {status} {}", String::from_utf8_lossy(&body)),
            ),
            (false, Err(e)) => stats.failed(&stats.good_failed, format!("good request: {e}")),
            (true, Ok((500, body))) if body.windows(13).any(|w| w == b"plugin failed") => {
                stats.trapped.fetch_add(1, Ordering::Relaxed);
            }
            (true, other) => {
                stats.failed(&stats.trap_unexpected, format!("trap request: {other:?}"))
            }
        }
    }
}

/// One WebSocket through the gateway, a message a second, echoed; opened
/// again after a failure.
pub async fn websocket_stream(gateway: SocketAddr, stats: &Stats, mut stop: watch::Receiver<bool>) {
    let mut n = 0u64;
    'connect: loop {
        let mut request = format!("ws://{gateway}/ws").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("x-api-key", http::HeaderValue::from_static(KEY));
        let mut ws = match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => ws,
            Err(e) => {
                stats.failed(&stats.ws_failed, format!("websocket connect: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
            n += 1;
            let text = format!("message {n}");
            let echoed = tokio::time::timeout(Duration::from_secs(5), async {
                ws.send(Message::text(text.clone())).await.ok()?;
                loop {
                    match ws.next().await? {
                        Ok(Message::Text(reply)) => return Some(reply.to_string()),
                        Ok(_) => continue,
                        Err(_) => return None,
                    }
                }
            })
            .await;
            match echoed {
                Ok(Some(reply)) if reply == text => {
                    stats.ws_ok.fetch_add(1, Ordering::Relaxed);
                }
                other => {
                    stats.failed(
                        &stats.ws_failed,
                        format!("websocket message {n}: {other:?}"),
                    );
                    continue 'connect;
                }
            }
        }
    }
}

/// One gRPC bidirectional stream through the gateway, a message a second,
/// answered upper-cased; opened again after a failure.
pub async fn grpc_stream(gateway: SocketAddr, stats: &Stats, mut stop: watch::Receiver<bool>) {
    let mut n = 0u64;
    loop {
        let opened =
            async {
                let channel = tonic::transport::Channel::from_shared(format!("http://{gateway}"))
                    .map_err(|e| e.to_string())?
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                let mut grpc = tonic::client::Grpc::new(channel);
                grpc.ready().await.map_err(|e| e.to_string())?;
                let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
                let outgoing = futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|m| (m, rx))
                });
                let mut request = tonic::Request::new(outgoing);
                request
                    .metadata_mut()
                    .insert("x-api-key", KEY.parse().unwrap());
                let path = http::uri::PathAndQuery::from_static("/echo.Echo/Bidi");
                let response = grpc
                    .streaming(request, path, Raw)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((tx, response.into_inner()))
            };
        let (tx, mut replies) = match opened.await {
            Ok(stream) => stream,
            Err(e) => {
                stats.failed(&stats.grpc_failed, format!("grpc open: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
            n += 1;
            let message = format!("message {n}").into_bytes();
            let answered = tokio::time::timeout(Duration::from_secs(5), async {
                tx.send(message.clone()).await.ok()?;
                replies.message().await.ok()?
            })
            .await;
            match answered {
                Ok(Some(reply)) if reply == message.to_ascii_uppercase() => {
                    stats.grpc_ok.fetch_add(1, Ordering::Relaxed);
                }
                other => {
                    stats.failed(
                        &stats.grpc_failed,
                        format!(
                            "grpc message {n}: {:?}",
                            other.map(|r| r.map(String::from_utf8))
                        ),
                    );
                    break;
                }
            }
        }
    }
}
