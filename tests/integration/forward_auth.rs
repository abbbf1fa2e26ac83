//! The default `forward-auth` plugin in a real gateway, asking a real auth
//! service (a small hyper server here) about each request: allowing with
//! headers copied onto the request, denials passed to the client as the
//! service gave them, failing closed when it is slow or gone, per-route
//! scope, and the decision cache.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use weir::http::body::{self, Body};

use crate::support::client::{Reply, call};
use crate::support::*;

/// An auth service on `127.0.0.1:0`: `Authorization: Bearer good` is
/// allowed (200 with `x-user-id: 42`), `Bearer login` is sent to a login
/// page (302), anything else gets 401 with `WWW-Authenticate` and a JSON
/// body. It counts the checks and keeps the headers of each.
struct AuthService {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    checks: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl AuthService {
    async fn start() -> AuthService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let checks = Arc::new(AtomicUsize::new(0));
        let (seen_by_task, checks_by_task) = (seen.clone(), checks.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, checks) = (seen_by_task.clone(), checks_by_task.clone());
                let service = service_fn(move |req: Request<Incoming>| {
                    checks.fetch_add(1, Ordering::SeqCst);
                    seen.lock().unwrap().push(req.headers().clone());
                    async move { Ok::<_, Infallible>(decide(&req)) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        AuthService {
            addr,
            seen,
            checks,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn checks(&self) -> usize {
        self.checks.load(Ordering::SeqCst)
    }

    /// The headers of the last check.
    fn last(&self) -> HeaderMap {
        self.seen.lock().unwrap().last().cloned().expect("a check")
    }
}

impl Drop for AuthService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn decide(req: &Request<Incoming>) -> Response<Body> {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let builder = Response::builder();
    let response = match authorization {
        Some("Bearer good") => builder
            .status(200)
            .header("x-user-id", "42")
            .header("x-not-copied", "1")
            .body(body::full("ok")),
        Some("Bearer login") => builder
            .status(302)
            .header("location", "https://login.example.com/?rd=%2Forders")
            .header("set-cookie", "state=abc; HttpOnly")
            .body(body::full("")),
        _ => builder
            .status(401)
            .header(
                "www-authenticate",
                r#"Bearer realm="weir-test", error="invalid_token""#,
            )
            .header("content-type", "application/json")
            .header("x-auth-reason", "bad token")
            .body(body::full(r#"{"error":"who are you?"}"#)),
    };
    response.unwrap()
}

/// Every request goes to `backend`; the router names `/admin` route
/// `admin`, `/public` route `public`, the rest `api`. The plugin gets the
/// grants the docs prescribe: `log`, `kv` and `outbound` to `auth` only.
fn guarded(backend: &Backend, auth_url: &str, config: Value) -> Setup {
    let to_backend = |name: &str, prefix: &str| json!({"name": name, "match": {"path_prefix": prefix}, "upstream": "backend"});
    Setup::new()
        .upstream("backend", &[backend.url()])
        .upstream("auth", &[auth_url.to_string()])
        .router(json!({"routes": [
            to_backend("admin", "/admin"),
            to_backend("public", "/public"),
            to_backend("api", "/"),
        ]}))
        .plugin("62-forward-auth", "weir_plugin_forward_auth", Some(config))
        .section("[plugins.62-forward-auth]\ncapabilities = [\"log\", \"kv\", \"outbound:auth\"]")
}

fn config() -> Value {
    json!({
        "upstream": "auth",
        "path": "/verify",
        "request_headers": ["authorization"],
        "response_headers": ["x-user-id"],
        "timeout_ms": 300
    })
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    call(url, http::Method::GET, headers, "").await
}

/// Assert `reply` is the plugin's fail-closed 503; returns its `detail`.
fn assert_unavailable(reply: &Reply) -> String {
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let body = reply.json();
    assert_eq!(body["title"], "Service Unavailable");
    assert_eq!(body["status"], 503);
    assert_eq!(body["type"], "about:blank");
    body["detail"].as_str().expect("a detail").to_string()
}

#[tokio::test]
async fn an_allowed_request_reaches_the_upstream_with_the_auth_services_headers() {
    let (backend, auth) = (Backend::start().await, AuthService::start().await);
    let gw = guarded(&backend, &auth.url(), config()).serve().await;
    let client_headers = [
        ("authorization", "Bearer good"),
        ("x-user-id", "999"),
        ("cookie", "session=s3cret"),
        ("x-forwarded-for", "6.6.6.6"),
    ];
    let reply = get_with(&gw.url("/orders/7?x=1"), &client_headers).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "hello from backend");
    // The upstream got the auth service's x-user-id and not the forged one.
    let upstream = backend.last().expect("the upstream was reached");
    let ids: Vec<_> = upstream.headers.get_all("x-user-id").iter().collect();
    assert_eq!(ids, ["42"]);
    assert!(upstream.headers.get("x-not-copied").is_none());
    // The auth service saw the chosen header and the original request.
    let check = auth.last();
    let seen = |name: &str| check.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(seen("authorization"), Some("Bearer good"));
    assert_eq!(seen("cookie"), None, "not in request_headers");
    assert_eq!(seen("x-forwarded-method"), Some("GET"));
    assert_eq!(seen("x-forwarded-uri"), Some("/orders/7?x=1"));
    assert_eq!(seen("x-forwarded-host"), Some(gw.addr.to_string().as_str()));
    assert_eq!(seen("x-forwarded-proto"), Some("http"));
    // The client's own claim is not believed: no trusted proxies.
    assert_eq!(seen("x-forwarded-for"), Some("127.0.0.1"));
    // Without a cache, every request is checked.
    let again = get_with(&gw.url("/orders/7?x=1"), &client_headers).await;
    assert_eq!(again.status, 200);
    assert_eq!(auth.checks(), 2);
}

#[tokio::test]
async fn a_401_is_passed_to_the_client_exactly_as_the_auth_service_gave_it() {
    let (backend, auth) = (Backend::start().await, AuthService::start().await);
    let gw = guarded(&backend, &auth.url(), config()).serve().await;
    let reply = get_with(&gw.url("/orders"), &[("authorization", "Bearer bad")]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer realm="weir-test", error="invalid_token""#)
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-auth-reason"), Some("bad token"));
    assert_eq!(reply.text(), r#"{"error":"who are you?"}"#);
    assert_eq!(backend.hits(), 0);
    // No credential at all is the auth service's call too.
    let none = get_with(&gw.url("/orders"), &[]).await;
    assert_eq!(none.status, 401);
    assert_eq!(auth.checks(), 2);
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn a_302_to_a_login_page_is_passed_on_with_its_location() {
    let (backend, auth) = (Backend::start().await, AuthService::start().await);
    let gw = guarded(&backend, &auth.url(), config()).serve().await;
    let reply = get_with(&gw.url("/orders"), &[("authorization", "Bearer login")]).await;
    assert_eq!(reply.status, 302);
    assert_eq!(
        reply.header("location"),
        Some("https://login.example.com/?rd=%2Forders")
    );
    assert_eq!(reply.header("set-cookie"), Some("state=abc; HttpOnly"));
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn an_auth_service_slower_than_timeout_ms_fails_closed_with_a_503() {
    let backend = Backend::start().await;
    // A stand-in that would allow (200), but only after 5 s.
    let slow_auth = Backend::start().await;
    slow_auth.set_delay(5_000);
    let gw = guarded(&backend, &slow_auth.url(), config()).serve().await;
    let started = Instant::now();
    let reply = get_with(&gw.url("/orders"), &[("authorization", "Bearer good")]).await;
    let detail = assert_unavailable(&reply);
    assert_eq!(detail, "the authorization service did not answer in time");
    // Cut at the 300 ms timeout, not after the service's 5 s.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(slow_auth.hits(), 1);
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn an_unreachable_auth_service_fails_closed_with_a_503() {
    let backend = Backend::start().await;
    let gone = Backend::start().await;
    let gw = guarded(&backend, &gone.url(), config()).serve().await;
    gone.kill();
    let reply = get_with(&gw.url("/orders"), &[("authorization", "Bearer good")]).await;
    let detail = assert_unavailable(&reply);
    assert_eq!(detail, "the authorization service is unreachable");
    // The cause (with the address) is for the log, not for the client.
    assert!(!reply.text().contains("127.0.0.1"), "{}", reply.text());
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn only_the_listed_routes_are_checked_and_skipped_routes_lose_vouched_headers() {
    let (backend, auth) = (Backend::start().await, AuthService::start().await);
    let mut config = config();
    config["routes"] = json!(["admin", "public"]);
    config["skip_routes"] = json!(["public"]);
    let gw = guarded(&backend, &auth.url(), config).serve().await;
    let forged = [("x-user-id", "999")];
    // `admin` is checked: no token, the auth service's 401.
    assert_eq!(get_with(&gw.url("/admin"), &forged).await.status, 401);
    assert_eq!((auth.checks(), backend.hits()), (1, 0));
    // `public` is skipped, and a client cannot claim an identity there.
    let public = get_with(&gw.url("/public"), &forged).await;
    assert_eq!(public.status, 200);
    assert!(backend.last().unwrap().headers.get("x-user-id").is_none());
    // `api` is not the plugin's: nothing is checked, but the vouched
    // header is still never the client's.
    let api = get_with(&gw.url("/users/7"), &forged).await;
    assert_eq!(api.status, 200);
    assert!(backend.last().unwrap().headers.get("x-user-id").is_none());
    assert_eq!((auth.checks(), backend.hits()), (1, 2));
}

#[tokio::test]
async fn with_a_cache_identical_requests_ask_the_auth_service_once() {
    let (backend, auth) = (Backend::start().await, AuthService::start().await);
    let mut config = config();
    config["cache_ttl_ms"] = json!(60_000);
    let gw = guarded(&backend, &auth.url(), config).serve().await;
    let good = [("authorization", "Bearer good")];
    for _ in 0..2 {
        let reply = get_with(&gw.url("/orders"), &good).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        // The cached decision carries the copied header too.
        assert_eq!(backend.last().unwrap().headers["x-user-id"], "42");
    }
    assert_eq!((auth.checks(), backend.hits()), (1, 2));
    // Another path is another question for the auth service.
    assert_eq!(get_with(&gw.url("/invoices"), &good).await.status, 200);
    assert_eq!(auth.checks(), 2);
    // Denials are not cached: each is asked again.
    let bad = [("authorization", "Bearer bad")];
    assert_eq!(get_with(&gw.url("/orders"), &bad).await.status, 401);
    assert_eq!(get_with(&gw.url("/orders"), &bad).await.status, 401);
    assert_eq!(auth.checks(), 4);
}

/// Needs the host's `trusted_proxies` and `request.client-ip` (contract
/// 0.4.0): the auth service is told the client a trusted proxy forwarded
/// for, not the proxy.
#[tokio::test]
async fn the_auth_service_is_told_the_client_resolved_through_trusted_proxies() {
    let (backend, auth) = (Backend::start().await, AuthService::start().await);
    let gw = guarded(&backend, &auth.url(), config())
        .top(r#"trusted_proxies = ["127.0.0.1/32"]"#)
        .serve()
        .await;
    let headers = [
        ("authorization", "Bearer good"),
        ("x-forwarded-for", "203.0.113.9"),
    ];
    assert_eq!(get_with(&gw.url("/"), &headers).await.status, 200);
    assert_eq!(auth.last()["x-forwarded-for"], "203.0.113.9");
}

#[tokio::test]
async fn the_shipped_sample_config_checks_nothing() {
    let backend = Backend::start().await;
    let sample: Value =
        serde_json::from_str(include_str!("../../plugins/forward-auth/sample.json")).unwrap();
    // As `weir init` ships it: no `auth` upstream exists, and none is asked.
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .router(json!({"routes": [{"name": "api", "match": {"path_prefix": "/"}, "upstream": "backend"}]}))
        .plugin("62-forward-auth", "weir_plugin_forward_auth", Some(sample))
        .serve()
        .await;
    let reply = get_with(
        &gw.url("/orders"),
        &[("x-user-id", "7"), ("x-other", "kept")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Only a forged vouched header goes; the rest passes unchanged.
    assert!(backend.last().unwrap().headers.get("x-user-id").is_none());
    assert_eq!(backend.last().unwrap().headers["x-other"], "kept");
}
