//! The listener: accepts TCP connections and serves HTTP/1.1 and HTTP/2
//! (prior knowledge, h2c) on them with [`Gateway::handle`], until told to
//! shut down; then stops accepting and lets open requests finish, up to a
//! drain timeout.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::gateway::Gateway;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Largest request head hyper buffers (HTTP/1); larger → 431.
    pub max_header_bytes: usize,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub drain_timeout: Duration,
}

/// Serve `gateway` on `listener` until `shutdown` resolves, then drain.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper needs at least 8 KiB of read buffer; the gateway checks the
    // exact header limit itself.
    builder
        .http1()
        .max_buf_size(settings.max_header_bytes.max(8 * 1024) + 1024)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder.http2().timer(hyper_util::rt::TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a moment
                        // rather than spin.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let gateway = gateway.clone();
                let service = service_fn(move |request| {
                    let gateway = gateway.clone();
                    async move { Ok::<_, Infallible>(gateway.handle(request, client).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%client, "connection ended with an error: {e}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    if tokio::time::timeout(settings.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "drain timeout of {} ms reached; closing the remaining connections",
            settings.drain_timeout.as_millis()
        );
    }
}
