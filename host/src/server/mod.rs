//! Listeners: accept TCP connections and serve HTTP/1.1 and HTTP/2 on them
//! with [`Gateway::handle`] — in the clear (h2c by prior knowledge), over
//! TLS (`tls.rs`, HTTP/2 by ALPN), or as a plain listener that redirects to
//! HTTPS — until told to shut down; then stop accepting and let open
//! connections and WebSocket tunnels finish, up to a drain timeout
//! (`lifecycle/drain.rs`). At most `max_connections` are open at once (further ones
//! wait in the kernel's backlog: `lifecycle/slots.rs`), and a client has
//! `header_read_timeout` to send each request head (and to finish a TLS
//! handshake), so slowloris-style clients hold little. ACME validations
//! (`acme/challenge.rs`) are answered here, before the gateway. `weir run` serves
//! from one thread per core (`workers.rs`).
//!
//! These settings are the gateway's current pipeline's, read for each new
//! connection: a reload that changes them applies to every connection
//! accepted after it (open ones keep the settings they were accepted
//! with), and the drain timeout is the one current at shutdown.

pub mod accept;
pub mod tls;
pub mod workers;

pub use crate::config::ServerSettings;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::acme::challenge::Http01;
use crate::client_ip::{ClientAddressing, proxy_protocol};
use crate::gateway::{Gateway, Peer};
use crate::lifecycle::Drain;

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
    shutdown: impl Future<Output = ()>,
) {
    serve_mode(listener, Mode::Plain, gateway, shutdown).await;
}

/// Serve `gateway` on `listener` in `mode` until `shutdown` resolves; then
/// stop accepting, let open connections and tunnels finish, up to the
/// drain timeout.
pub async fn serve_mode(
    listener: TcpListener,
    mode: Mode,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) {
    let drain = gateway.drain().clone();
    let slots = gateway.slots().clone();
    let mut acceptor = accept::Acceptor::new(listener, "proxy");
    let mut builder = Builders::default();
    tokio::pin!(shutdown);
    loop {
        // Take a slot before accepting: at the cap, new connections wait in
        // the backlog rather than cost memory here.
        let slot = tokio::select! {
            slot = slots.acquire() => slot,
            () = &mut shutdown => break,
        };
        let (stream, client) = tokio::select! {
            accepted = acceptor.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (settings, builder) = builder.current(&gateway);
        let (gateway, mode, drain) = (gateway.clone(), mode.clone(), drain.clone());
        tokio::spawn(async move {
            let _counted = drain.track();
            let _slot = slot;
            let clients = match mode {
                Mode::Tls(_) => settings.clients.tls.clone(),
                _ => settings.clients.plain.clone(),
            };
            let mut stream = stream;
            let Some((client, clients)) = proxied(&mut stream, client, clients, &settings).await
            else {
                return;
            };
            let peer = Peer {
                addr: client,
                tls: None,
                clients,
            };
            serve_accepted(stream, peer, mode, gateway, (&settings, &builder), &drain).await;
        });
    }
    drop(acceptor);
    tracing::debug!("no new connections; draining in-flight requests");
    drain.start();
    // The drain timeout current now, after any reloads.
    let drain_timeout = gateway.pipeline().server().drain_timeout;
    if tokio::time::timeout(drain_timeout, drain.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "drain timeout of {} ms reached; closing the remaining connections",
            drain_timeout.as_millis()
        );
    }
}

/// The connection's peer and how to find its clients: the TCP peer, or,
/// on a listener with `proxy_protocol`, the source its PROXY header names.
/// When a PROXY header names no address (`LOCAL`, `UNKNOWN`, a UNIX
/// socket), the peer is the load balancer itself, which writes no
/// forwarding header: any such header came from the client, so none is
/// believed on that connection. `None` when the connection is to be
/// closed: no valid header in time, or a header from a peer outside
/// `trusted_proxies`.
async fn proxied(
    stream: &mut tokio::net::TcpStream,
    peer: SocketAddr,
    clients: ClientAddressing,
    settings: &ServerSettings,
) -> Option<(SocketAddr, ClientAddressing)> {
    if !clients.proxy_protocol {
        return Some((peer, clients));
    }
    // Config validation requires a list with `proxy_protocol`.
    if !clients.trusts(peer.ip()) {
        tracing::debug!(%peer, "PROXY protocol from a peer outside trusted_proxies; closed");
        return None;
    }
    let header = proxy_protocol::read_header(stream);
    match tokio::time::timeout(settings.header_read_timeout, header).await {
        Ok(Ok(Some(named))) => Some((named, clients)),
        Ok(Ok(None)) => Some((
            peer,
            ClientAddressing {
                trusted_proxies: Arc::from([]),
                ..clients
            },
        )),
        Ok(Err(e)) => {
            tracing::debug!(%peer, "closed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "no PROXY protocol header within the header timeout; closed");
            None
        }
    }
}

/// Serve one accepted connection in `mode`: TLS first if it is a TLS
/// listener.
async fn serve_accepted(
    stream: tokio::net::TcpStream,
    mut peer: Peer,
    mode: Mode,
    gateway: Arc<Gateway>,
    (settings, builder): (&ServerSettings, &auto::Builder<TokioExecutor>),
    drain: &Drain,
) {
    let client = peer.addr;
    match mode {
        Mode::Plain => serve_io(stream, peer, gateway, (settings, builder), drain).await,
        Mode::Tls(state) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(state.server_config());
            let handshake =
                tokio::time::timeout(settings.header_read_timeout, acceptor.accept(stream));
            let mut stream = match handshake.await {
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
            if stream.get_ref().1.alpn_protocol() == Some(tls::ACME_TLS_ALPN) {
                // A tls-alpn-01 validation: the handshake was the answer,
                // and no HTTP follows (RFC 8737 §3).
                tracing::debug!(%client, "ACME tls-alpn-01 validation answered");
                let close = tokio::io::AsyncWriteExt::shutdown(&mut stream);
                let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
                return;
            }
            peer.tls = Some(Arc::new(tls::facts(stream.get_ref().1)));
            serve_io(stream, peer, gateway, (settings, builder), drain).await;
        }
        Mode::RedirectToHttps(port) => {
            let acme = gateway.acme_http01().cloned();
            serve_redirect(stream, port, acme, (settings, builder)).await;
        }
    }
}

/// hyper's connection builder for the current settings, built again only
/// when a reload changed them.
#[derive(Default)]
struct Builders {
    built: Option<(Arc<ServerSettings>, Arc<auto::Builder<TokioExecutor>>)>,
}

impl Builders {
    fn current(
        &mut self,
        gateway: &Gateway,
    ) -> (Arc<ServerSettings>, Arc<auto::Builder<TokioExecutor>>) {
        let settings = gateway.pipeline().server().clone();
        match &self.built {
            Some((built_for, builder)) if **built_for == *settings => {
                (built_for.clone(), builder.clone())
            }
            _ => {
                let builder = Arc::new(http_builder(&settings));
                self.built = Some((settings.clone(), builder.clone()));
                (settings, builder)
            }
        }
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

/// Serve one connection that is already open, any byte stream (a socket,
/// an in-memory pipe), with the settings of `gateway`'s current pipeline,
/// as the plain listener would. No listener, no connection cap: for tests
/// and fuzzing that drive the HTTP layer without sockets.
pub async fn serve_stream<I>(io: I, client: std::net::SocketAddr, gateway: Arc<Gateway>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let settings = gateway.pipeline().server().clone();
    let builder = http_builder(&settings);
    let drain = gateway.drain().clone();
    let peer = Peer {
        addr: client,
        tls: None,
        clients: settings.clients.plain.clone(),
    };
    serve_io(io, peer, gateway, (&settings, &builder), &drain).await;
}

/// Serve HTTP on one connection (plain or TLS), with upgrades (WebSocket),
/// closing gracefully when the drain starts.
async fn serve_io<I>(
    io: I,
    peer: Peer,
    gateway: Arc<Gateway>,
    (settings, builder): (&ServerSettings, &auto::Builder<TokioExecutor>),
    drain: &Drain,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let client = peer.addr;
    let first = FirstRequest::new(settings.header_read_timeout);
    let asked = first.asked.clone();
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        asked.store(true, Ordering::Relaxed);
        let (gateway, peer) = (gateway.clone(), peer.clone());
        async move {
            // ACME's http-01 validation of a name Weir orders, on plain
            // HTTP only, before any plugin.
            if peer.tls.is_none()
                && let Some(acme) = gateway.acme_http01().filter(|a| a.claims(&request))
            {
                return Ok::<_, Infallible>(acme.answer(request.uri().path()).await);
            }
            Ok::<_, Infallible>(gateway.handle_from(request, peer).await)
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        () = drain.stopping() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = first.missed() => {
            tracing::debug!(%client, "no request within the header timeout; closed");
            return;
        }
    };
    if let Err(e) = outcome {
        tracing::debug!(%client, "connection ended with an error: {e}");
    }
}

/// Whether a connection has started a request in time. hyper times each
/// HTTP/1 request head once it reads one, but the version detection in
/// front of it (HTTP/1 or HTTP/2?) waits for the first bytes without a
/// limit, and HTTP/2 has no head timer at all: a client that connects and
/// sends nothing, or only part of the HTTP/2 preface, would hold its
/// connection slot for ever. The connection is closed when no request has
/// started within the header timeout.
struct FirstRequest {
    asked: Arc<AtomicBool>,
    deadline: tokio::time::Instant,
}

impl FirstRequest {
    fn new(timeout: Duration) -> Self {
        FirstRequest {
            asked: Arc::new(AtomicBool::new(false)),
            deadline: tokio::time::Instant::now() + timeout,
        }
    }

    /// Resolves at the deadline if no request has started by then; never
    /// otherwise.
    async fn missed(&self) {
        tokio::time::sleep_until(self.deadline).await;
        if self.asked.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }
}

/// The plain listener of an HTTPS gateway: 308 to the same host and path
/// on the HTTPS port, for every request.
async fn serve_redirect(
    stream: tokio::net::TcpStream,
    port: u16,
    acme: Option<Http01>,
    (settings, builder): (&ServerSettings, &auto::Builder<TokioExecutor>),
) {
    let first = FirstRequest::new(settings.header_read_timeout);
    let asked = first.asked.clone();
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        asked.store(true, Ordering::Relaxed);
        let acme = acme.clone();
        async move {
            // ACME's http-01 validation is answered, not redirected (other
            // hosts' challenge paths are redirected like any request).
            if let Some(acme) = acme.filter(|a| a.claims(&request)) {
                return Ok::<_, Infallible>(acme.answer(request.uri().path()).await);
            }
            Ok::<_, Infallible>(redirect_response(&request, port))
        }
    });
    tokio::select! {
        _ = builder.serve_connection(TokioIo::new(stream), service) => {}
        () = first.missed() => {}
    }
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
mod tls_tests;

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
