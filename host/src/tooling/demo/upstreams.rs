//! The demo's two upstreams, `users` and `orders`, served by the `weir`
//! process itself on loopback so `weir demo` answers on its own. They exist
//! only in `weir demo`; `weir run` never starts them.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use sha2::Digest;
use tokio::net::TcpListener;

use crate::http::body::{Body, full};

/// Which demo upstream a server plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `GET /{id}.json`: one user.
    Users,
    /// `GET /` or `/index.json`: the orders; `POST /`: a new order.
    Orders,
}

impl Role {
    /// The upstream's name in the demo `weir.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Users => "users",
            Role::Orders => "orders",
        }
    }
}

/// The demo users, by id.
const USERS: &[(u32, &str)] = &[(1, "Grace"), (7, "Ada"), (42, "Linus")];

/// Bind `role`'s server on a free loopback port and serve it in the
/// background for the life of the runtime.
pub async fn start(role: Role) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(move |request| async move {
                    Ok::<_, Infallible>(answer(role, request).await)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// When the demo data was last changed: never, so the process's start.
fn last_modified() -> &'static str {
    static STARTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STARTED.get_or_init(|| crate::http::timefmt::http_date(std::time::SystemTime::now()))
}

async fn answer(role: Role, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let if_none_match = request
        .headers()
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let (status, document) = route(role, &method, &path, &body);
    let text = document.to_string();
    // Validators so the cache plugin can revalidate (its REVALIDATED).
    let etag = format!("\"{}\"", &hex::encode(sha2::Sha256::digest(&text))[..16]);
    let not_modified = status == StatusCode::OK
        && if_none_match.is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag));
    let mut response = match not_modified {
        true => {
            let mut response = Response::new(full(""));
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        }
        false => {
            let mut response = Response::new(full(text));
            *response.status_mut() = status;
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "x-demo-upstream",
        http::HeaderValue::from_static(role.name()),
    );
    if status == StatusCode::OK {
        // The origin says how long its answers stay fresh: the cache
        // stores nothing for long on a guess (RFC 9111 §4.2.2's heuristic
        // would give a user document a tenth of its age).
        if role == Role::Users {
            headers.insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("max-age=30"),
            );
        }
        for (name, value) in [
            (http::header::ETAG, etag.as_str()),
            (http::header::LAST_MODIFIED, last_modified()),
        ] {
            if let Ok(value) = http::HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
    }
    response
}

/// The demo data: what `role` answers to `method path`.
fn route(role: Role, method: &Method, path: &str, body: &[u8]) -> (StatusCode, Value) {
    if path == "/healthz" {
        return (StatusCode::OK, json!({"status": "ok"}));
    }
    match (role, method) {
        (Role::Users, &Method::GET | &Method::HEAD) => {
            let user = path
                .strip_prefix('/')
                .and_then(|p| p.strip_suffix(".json"))
                .and_then(|id| id.parse::<u32>().ok())
                .and_then(|id| USERS.iter().find(|(known, _)| *known == id));
            match user {
                Some((id, name)) => (StatusCode::OK, json!({"id": id, "name": name})),
                None => (StatusCode::NOT_FOUND, json!({"error": "no such user"})),
            }
        }
        (Role::Orders, &Method::GET | &Method::HEAD) if matches!(path, "/" | "/index.json") => {
            (StatusCode::OK, json!([{"id": 42}]))
        }
        (Role::Orders, &Method::POST) if path == "/" => {
            let order: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            (StatusCode::CREATED, json!({"id": 43, "order": order}))
        }
        _ => (
            StatusCode::NOT_FOUND,
            json!({"error": "not found", "upstream": role.name()}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_served_by_id() {
        let (status, doc) = route(Role::Users, &Method::GET, "/7.json", b"");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc, json!({"id": 7, "name": "Ada"}));
        let (status, _) = route(Role::Users, &Method::GET, "/8.json", b"");
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = route(Role::Users, &Method::GET, "/7", b"");
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn orders_list_and_create() {
        let (status, doc) = route(Role::Orders, &Method::GET, "/index.json", b"");
        assert_eq!((status, doc), (StatusCode::OK, json!([{"id": 42}])));
        let (status, doc) = route(Role::Orders, &Method::POST, "/", br#"{"item":"tea"}"#);
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(doc["order"]["item"], "tea");
    }
}
