//! Listeners: accept TCP connections and serve HTTP/1.1 and HTTP/2 on them
//! with [`Gateway::handle`] — in the clear (h2c by prior knowledge), over
//! TLS (`tls.rs`, HTTP/2 by ALPN), or as a plain listener that redirects to
//! HTTPS — until told to shut down; then stop accepting and let open
//! connections and WebSocket tunnels finish, up to a drain timeout
//! (`drain.rs`). At most `max_connections` are open at once (further ones
//! wait in the kernel's backlog), and a client has `header_read_timeout`
//! to send each request head (and to finish a TLS handshake), so
//! slowloris-style clients hold little. `weir run` serves from one thread
//! per core (`workers.rs`).

pub mod drain;
pub mod tls;
pub mod workers;

pub use drain::Drain;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::gateway::{Gateway, Peer};

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

/// What a listener speaks.
#[derive(Clone)]
pub enum Mode {
    /// HTTP/1.1 and h2c.
    Plain,
    /// HTTPS: TLS first, then HTTP/1.1 or HTTP/2 by ALPN.
    Tls(Arc<tls::TlsState>),
    /// Plain HTTP that answers every request with 308 to HTTPS on this port.
    RedirectToHttps(u16),
}

/// Serve `gateway` on `listener` until `shutdown` resolves, then drain.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()>,
) {
    serve_mode(listener, Mode::Plain, gateway, settings, shutdown).await;
}

/// Serve `gateway` on `listener` in `mode` until `shutdown` resolves; then
/// stop accepting, let open connections and tunnels finish, up to the
/// drain timeout.
pub async fn serve_mode(
    listener: TcpListener,
    mode: Mode,
    gateway: Arc<Gateway>,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(http_builder(&settings));
    let drain = gateway.drain().clone();
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
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment
                    // rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (gateway, builder, mode, drain) = (
            gateway.clone(),
            builder.clone(),
            mode.clone(),
            drain.clone(),
        );
        let handshake_timeout = settings.header_read_timeout;
        tokio::spawn(async move {
            let _counted = drain.track();
            let _slot = slot;
            match mode {
                Mode::Plain => {
                    let peer = Peer {
                        addr: client,
                        tls: None,
                    };
                    serve_io(stream, peer, gateway, &builder, &drain).await;
                }
                Mode::Tls(state) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(state.server_config());
                    let handshake =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                    let stream = match handshake.await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%client, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%client, "TLS handshake timed out");
                            return;
                        }
                    };
                    let facts = tls::facts(stream.get_ref().1);
                    let peer = Peer {
                        addr: client,
                        tls: Some(Arc::new(facts)),
                    };
                    serve_io(stream, peer, gateway, &builder, &drain).await;
                }
                Mode::RedirectToHttps(port) => serve_redirect(stream, port, &builder).await,
            }
        });
    }
    drop(listener);
    tracing::debug!("no new connections; draining in-flight requests");
    drain.start();
    if tokio::time::timeout(settings.drain_timeout, drain.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "drain timeout of {} ms reached; closing the remaining connections",
            settings.drain_timeout.as_millis()
        );
    }
}

fn http_builder(settings: &ServerSettings) -> auto::Builder<TokioExecutor> {
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
    builder
}

/// Serve HTTP on one connection (plain or TLS), with upgrades (WebSocket),
/// closing gracefully when the drain starts.
async fn serve_io<I>(
    io: I,
    peer: Peer,
    gateway: Arc<Gateway>,
    builder: &auto::Builder<TokioExecutor>,
    drain: &Drain,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let client = peer.addr;
    let service = service_fn(move |request| {
        let (gateway, peer) = (gateway.clone(), peer.clone());
        async move { Ok::<_, Infallible>(gateway.handle_from(request, peer).await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        () = drain.stopping() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = outcome {
        tracing::debug!(%client, "connection ended with an error: {e}");
    }
}

/// The plain listener of an HTTPS gateway: 308 to the same host and path
/// on the HTTPS port, for every request.
async fn serve_redirect(
    stream: tokio::net::TcpStream,
    port: u16,
    builder: &auto::Builder<TokioExecutor>,
) {
    let service = service_fn(
        move |request: http::Request<hyper::body::Incoming>| async move {
            Ok::<_, Infallible>(redirect_response(&request, port))
        },
    );
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

fn redirect_response<B>(
    request: &http::Request<B>,
    port: u16,
) -> http::Response<crate::http::body::Body> {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host());
    let Some(host) = host else {
        return crate::error::json_response(
            http::StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "bad request", "cause": "missing Host header"}),
        );
    };
    // The host without its port (an IPv6 literal keeps its brackets).
    let name = match host.rsplit_once(':') {
        Some((name, p)) if p.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let authority = if port == 443 {
        name.to_string()
    } else {
        format!("{name}:{port}")
    };
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = format!("https://{authority}{path}");
    let mut response = http::Response::new(crate::http::body::empty());
    *response.status_mut() = http::StatusCode::PERMANENT_REDIRECT;
    match http::HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(http::header::LOCATION, value);
        }
        Err(_) => *response.status_mut() = http::StatusCode::BAD_REQUEST,
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_host_and_path_and_change_the_port() {
        let request = http::Request::builder()
            .uri("/a/b?c=1")
            .header("host", "api.example.com:8080")
            .body(())
            .unwrap();
        let response = redirect_response(&request, 8443);
        assert_eq!(response.status(), 308);
        assert_eq!(
            response.headers()["location"],
            "https://api.example.com:8443/a/b?c=1"
        );
        let response = redirect_response(&request, 443);
        assert_eq!(
            response.headers()["location"],
            "https://api.example.com/a/b?c=1"
        );
        let no_host = http::Request::builder().uri("/").body(()).unwrap();
        assert_eq!(redirect_response(&no_host, 443).status(), 400);
    }
}
