//! A real HTTP backend on `127.0.0.1:0` that counts hits and remembers the
//! last request, with a few routes for the tests:
//!
//! - `/echo`: the request body streamed back.
//! - `/collect`: reads the whole request body, then answers its length.
//! - `/chunked?n=N`: N chunks of "chunk-i\n", no content-length.
//! - `/slow?ms=N`: waits N ms, then answers.
//! - `/status/N`: answers status N with `x-custom: 1`.
//! - `/json?...`: a JSON document naming the path.
//! - `/healthz`: 200, or 503 after `set_healthy(false)` (not counted in hits).
//! - paths given to `serve_json` or `serve_http`: what was given.
//! - anything else: 200 "hello from backend" with `x-backend: yes`.
//!
//! Every counted route first waits `set_delay` ms and answers
//! `set_failing(status)` instead, when set. `kill` closes the listener and
//! every open connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use weir::http::body::{self, Body, BoxError};

/// What the backend saw of a request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub version: http::Version,
    pub headers: HeaderMap,
}

struct Shared {
    hits: AtomicUsize,
    last: Mutex<Option<Seen>>,
    last_by_path: Mutex<std::collections::HashMap<String, Seen>>,
    healthy: AtomicBool,
    delay_ms: AtomicU64,
    failing: AtomicU16,
    connections: Mutex<Vec<tokio::task::AbortHandle>>,
    documents: Mutex<std::collections::HashMap<String, String>>,
    canned: Mutex<std::collections::HashMap<String, Canned>>,
}

/// A response given to `serve_http`.
#[derive(Clone)]
struct Canned {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// A running backend; stops when dropped.
pub struct Backend {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Backend {
    pub async fn start() -> Backend {
        Backend::start_with(None).await
    }

    /// A backend speaking HTTPS with `pair`; with `client_ca`, it demands a
    /// client certificate signed by it. ALPN offers `h2` and `http/1.1`.
    pub async fn start_tls(pair: &super::certs::Pair, client_ca: Option<&str>) -> Backend {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pair.cert.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots.add(cert.unwrap()).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Backend::start_with(Some(Arc::new(config))).await
    }

    async fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Backend::serve(listener, tls)
    }

    /// A plain backend on `addr` (any of 127/8 works on Linux, so backends
    /// told apart only by their IP can share a port, as DNS A records
    /// need); an error if the address is taken.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Backend> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        Ok(Backend::serve(listener, None))
    }

    /// Backends on each of `ips`, all on one free port.
    pub async fn on_one_port(ips: &[&str]) -> Vec<Backend> {
        'retry: for _ in 0..50 {
            let first_ip: std::net::IpAddr = ips[0].parse().unwrap();
            let first = Backend::start_on(SocketAddr::new(first_ip, 0))
                .await
                .unwrap();
            let port = first.addr.port();
            let mut all = vec![first];
            for ip in &ips[1..] {
                match Backend::start_on(SocketAddr::new(ip.parse().unwrap(), port)).await {
                    Ok(backend) => all.push(backend),
                    Err(_) => continue 'retry,
                }
            }
            return all;
        }
        panic!("no port free on all of {ips:?}");
    }

    fn serve(listener: tokio::net::TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> Backend {
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            hits: AtomicUsize::new(0),
            last: Mutex::new(None),
            last_by_path: Mutex::new(std::collections::HashMap::new()),
            healthy: AtomicBool::new(true),
            delay_ms: AtomicU64::new(0),
            failing: AtomicU16::new(0),
            connections: Mutex::new(Vec::new()),
            documents: Mutex::new(std::collections::HashMap::new()),
            canned: Mutex::new(std::collections::HashMap::new()),
        });
        let state = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let conn_state = state.clone();
                let tls = tls.clone();
                let connection = tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = conn_state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, req).await) }
                    });
                    // Generous header limits: tests look at what reaches here.
                    let mut builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    builder.http1().max_headers(1000).max_buf_size(1 << 20);
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
                state
                    .connections
                    .lock()
                    .unwrap()
                    .push(connection.abort_handle());
            }
        });
        Backend { addr, shared, task }
    }

    /// Stop listening and close every open connection.
    pub fn kill(&self) {
        self.task.abort();
        for connection in self.shared.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// What `/healthz` answers: 200 when healthy, 503 when not.
    pub fn set_healthy(&self, healthy: bool) {
        self.shared.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Wait this long before answering counted routes.
    pub fn set_delay(&self, ms: u64) {
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Answer counted routes with this status (0: behave normally).
    pub fn set_failing(&self, status: u16) {
        self.shared.failing.store(status, Ordering::SeqCst);
    }

    /// Answer GET `path` with this JSON document (replacing any before).
    pub fn serve_json(&self, path: &str, document: &serde_json::Value) {
        self.shared
            .documents
            .lock()
            .unwrap()
            .insert(path.to_string(), document.to_string());
    }

    /// Answer `path` with this status, headers and body (replacing any
    /// before), as an origin server that caches can talk to: `{h:NAME}` in
    /// the body becomes the request's header NAME, and a conditional
    /// request gets 304 with the same headers and no body when its
    /// `If-None-Match` names the `etag` given, or (without one) its
    /// `If-Modified-Since` is the `last-modified` given.
    pub fn serve_http(&self, path: &str, status: u16, headers: &[(&str, &str)], body: &str) {
        let canned = Canned {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_string(),
        };
        self.shared
            .canned
            .lock()
            .unwrap()
            .insert(path.to_string(), canned);
    }

    /// Requests received so far (health probes not counted).
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// The last request received.
    pub fn last(&self) -> Option<Seen> {
        self.shared.last.lock().unwrap().clone()
    }

    /// The last request received for `path` (without the query).
    pub fn last_at(&self, path: &str) -> Option<Seen> {
        self.shared.last_by_path.lock().unwrap().get(path).cloned()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn query_number(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok())?
    })
}

async fn answer(state: &Shared, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        let mut response = Response::new(body::full("health"));
        if !state.healthy.load(Ordering::SeqCst) {
            *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        }
        return response;
    }
    state.hits.fetch_add(1, Ordering::SeqCst);
    let seen = Seen {
        method: req.method().to_string(),
        path_and_query: req
            .uri()
            .path_and_query()
            .map_or("/".into(), |p| p.to_string()),
        version: req.version(),
        headers: req.headers().clone(),
    };
    state
        .last_by_path
        .lock()
        .unwrap()
        .insert(path.clone(), seen.clone());
    *state.last.lock().unwrap() = Some(seen);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let failing = state.failing.load(Ordering::SeqCst);
    if failing != 0 {
        let mut response = Response::new(body::full("failing on purpose"));
        *response.status_mut() = http::StatusCode::from_u16(failing).unwrap();
        return response;
    }
    let canned = state.canned.lock().unwrap().get(&path).cloned();
    if let Some(canned) = canned {
        return answer_canned(&canned, req.headers());
    }
    let document = state.documents.lock().unwrap().get(&path).cloned();
    if let Some(document) = document {
        let mut response = Response::new(body::full(document));
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        return response;
    }
    if path == "/collect" {
        return match req.into_body().collect().await {
            Ok(body) => Response::new(body::full(body.to_bytes().len().to_string())),
            Err(e) => {
                let mut response = Response::new(body::full(format!("body failed: {e}")));
                *response.status_mut() = http::StatusCode::BAD_REQUEST;
                response
            }
        };
    }
    if path == "/echo" {
        let mut response = Response::new(body::boxed(req.into_body()));
        response
            .headers_mut()
            .insert("x-echo", "1".parse().unwrap());
        return response;
    }
    if path == "/chunked" {
        let n = query_number(&req, "n").unwrap_or(5);
        let frames =
            (0..n).map(|i| Ok::<_, BoxError>(Frame::data(Bytes::from(format!("chunk-{i}\n")))));
        return Response::new(StreamBody::new(futures::stream::iter(frames)).boxed_unsync());
    }
    if path == "/slow" {
        let ms = query_number(&req, "ms").unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Response::new(body::full("slow done"));
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let mut response = Response::new(body::full(format!("status {code}")));
        *response.status_mut() = code.parse().unwrap_or(http::StatusCode::IM_A_TEAPOT);
        response
            .headers_mut()
            .insert("x-custom", "1".parse().unwrap());
        return response;
    }
    if path.starts_with("/json") {
        let doc = serde_json::json!({"path": req.uri().to_string()});
        let mut response = Response::new(body::full(doc.to_string()));
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        return response;
    }
    let mut response = Response::new(body::full("hello from backend"));
    response
        .headers_mut()
        .insert("x-backend", "yes".parse().unwrap());
    response
}

/// What `serve_http` promised for a request with these headers.
fn answer_canned(canned: &Canned, request: &HeaderMap) -> Response<Body> {
    let given = |name: &str| {
        canned
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let asked = |name: &str| request.get(name).and_then(|v| v.to_str().ok());
    let not_modified = match (asked("if-none-match"), asked("if-modified-since")) {
        (Some(tags), _) => given("etag").is_some_and(|etag| tags.contains(etag)),
        (None, Some(since)) => given("last-modified") == Some(since),
        (None, None) => false,
    };
    let (status, body) = if not_modified {
        (304, String::new())
    } else {
        let mut body = canned.body.clone();
        while let Some(start) = body.find("{h:") {
            let Some(len) = body[start..].find('}') else {
                break;
            };
            let name = body[start + 3..start + len].to_string();
            body.replace_range(start..=start + len, asked(&name).unwrap_or(""));
        }
        (canned.status, body)
    };
    let mut response = Response::new(body::full(body));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    for (name, value) in &canned.headers {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}
