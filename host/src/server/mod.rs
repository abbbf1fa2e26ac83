//! The listener: accepts TCP connections and serves HTTP/1.1 and HTTP/2
//! (prior knowledge, h2c) on them with [`Gateway::handle`], until told to
//! shut down; then stops accepting and lets open requests finish, up to a
//! drain timeout. At most `max_connections` are open at once (further ones
//! wait in the kernel's backlog), and a client has `header_read_timeout`
//! to send each request head, so slowloris-style clients hold little.
//! `weir run` serves from one thread per core (`workers.rs`).

pub mod workers;

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
    /// Most header fields hyper parses (HTTP/1); more → 431.
    pub max_header_count: usize,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub drain_timeout: Duration,
    /// Most client connections open at once.
    pub max_connections: usize,
    /// Time allowed for a request head to arrive.
    pub header_read_timeout: Duration,
    /// Connection slots shared by several `serve` loops (the workers);
    /// `None` gives each loop `max_connections` of its own.
    pub shared_slots: Option<Arc<tokio::sync::Semaphore>>,
}

impl ServerSettings {
    /// The settings `config` gives.
    pub fn from_config(config: &crate::config::Config) -> Self {
        ServerSettings::from_limits(
            &config.limits,
            Duration::from_millis(config.drain_timeout_ms),
        )
    }

    /// The settings these limits give, with this drain timeout.
    pub fn from_limits(limits: &crate::config::Limits, drain_timeout: Duration) -> Self {
        ServerSettings {
            max_header_bytes: limits.max_header_bytes,
            max_header_count: limits.max_header_count,
            drain_timeout,
            max_connections: limits.max_connections,
            header_read_timeout: Duration::from_millis(limits.header_read_timeout_ms),
            shared_slots: None,
        }
    }

    /// These settings with one pool of `max_connections` slots for every
    /// loop that uses them.
    pub fn with_shared_slots(mut self) -> Self {
        self.shared_slots = Some(Arc::new(tokio::sync::Semaphore::new(self.max_connections)));
        self
    }
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
        .max_headers(settings.max_header_count.max(1))
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    let slots = settings
        .shared_slots
        .clone()
        .unwrap_or_else(|| Arc::new(tokio::sync::Semaphore::new(settings.max_connections)));
    tokio::pin!(shutdown);
    loop {
        // Take a slot before accepting: at the cap, new connections wait in
        // the backlog rather than cost memory here.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
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
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::debug!("no new connections; draining in-flight requests");
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
