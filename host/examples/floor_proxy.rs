//! The floor under Weir's benchmarks: a reverse proxy built from the same
//! parts as the gateway (hyper's server, hyper-util's pooled client,
//! mimalloc, one single-threaded tokio runtime per worker thread) and
//! nothing else: no plugins, no header checks, no metrics, no access log.
//! `bench/peers.sh` runs it beside nginx and Weir as `hyper-floor`, so what
//! Weir spends above it is Weir's own (docs/benchmarks.md).
//!
//!   floor_proxy LISTEN BACKEND PREFIX [WORKERS]
//!
//! Every request's path loses PREFIX and goes to BACKEND (`host:port`).
//!
//! Run as `floor_proxy_pinned` (a link to it) or with `FLOOR_PINNED=1`,
//! each client connection gets its own upstream
//! connection (`hyper::client::conn::http1`, opened on its first request)
//! instead of hyper-util's shared pool: what a pool checkout and return
//! cost per request (docs/benchmarks.md).

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Body = UnsyncBoxBody<Bytes, hyper::Error>;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, backend, prefix, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: floor_proxy LISTEN BACKEND PREFIX [WORKERS]");
    };
    let listen: SocketAddr = listen.parse()?;
    let pinned =
        std::env::var_os("FLOOR_PINNED").is_some() || args[0].ends_with("floor_proxy_pinned");
    let workers: usize = rest.first().map_or(Ok(1), |w| w.parse())?;
    let listeners = weir::server::workers::bind_reuseport(listen, workers)?;
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let (backend, prefix) = (backend.clone(), prefix.clone());
            std::thread::spawn(move || worker(listener, backend, prefix, pinned))
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    Ok(())
}

/// One worker: its own runtime, listener and connection pool.
fn worker(
    listener: std::net::TcpListener,
    backend: String,
    prefix: String,
    pinned_mode: bool,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build(http);
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let (client, backend, prefix) = (client.clone(), backend.clone(), prefix.clone());
            let builder = builder.clone();
            let pinned: Pinned = Default::default();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let (client, backend, prefix, pinned) = (
                        client.clone(),
                        backend.clone(),
                        prefix.clone(),
                        pinned.clone(),
                    );
                    async move {
                        if pinned_mode {
                            proxy_pinned(pinned, backend, prefix, request).await
                        } else {
                            proxy(client, backend, prefix, request).await
                        }
                    }
                });
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// The request's target without `prefix`: absolute, on `authority`, for
/// the pooled client; origin-form for a connection of its own.
fn target(uri: &Uri, prefix: &str, authority: Option<&str>) -> Option<Uri> {
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let path = path.strip_prefix(prefix).unwrap_or(path);
    match authority {
        Some(authority) => format!("http://{authority}{path}").parse().ok(),
        None => path.parse().ok(),
    }
}

async fn proxy(
    client: Client<HttpConnector, Incoming>,
    backend: String,
    prefix: String,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let Some(uri) = target(&parts.uri, &prefix, Some(&backend)) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    parts.uri = uri;
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => Ok(response.map(BodyExt::boxed_unsync)),
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

/// A client connection's own upstream connection (`FLOOR_PINNED=1`).
type Pinned =
    std::sync::Arc<tokio::sync::Mutex<Option<hyper::client::conn::http1::SendRequest<Incoming>>>>;

async fn proxy_pinned(
    pinned: Pinned,
    backend: String,
    prefix: String,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let Some(uri) = target(&parts.uri, &prefix, None) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    parts.uri = uri;
    let mut slot = pinned.lock().await;
    if slot.as_ref().is_none_or(|s| s.is_closed()) {
        let Ok(stream) = tokio::net::TcpStream::connect(&backend).await else {
            return Ok(status(StatusCode::BAD_GATEWAY));
        };
        let _ = stream.set_nodelay(true);
        let Ok((sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            return Ok(status(StatusCode::BAD_GATEWAY));
        };
        tokio::spawn(conn);
        *slot = Some(sender);
    }
    let Some(sender) = slot.as_mut() else {
        return Ok(status(StatusCode::BAD_GATEWAY));
    };
    if sender.ready().await.is_err() {
        *slot = None;
        return Ok(status(StatusCode::BAD_GATEWAY));
    }
    let sent = sender.send_request(Request::from_parts(parts, body));
    drop(slot);
    match sent.await {
        Ok(response) => Ok(response.map(BodyExt::boxed_unsync)),
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = code;
    response
}
