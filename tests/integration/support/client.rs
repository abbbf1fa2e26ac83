//! A real HTTP client (hyper's), HTTP/1.1 or HTTP/2 with prior knowledge.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use weir::http::body::{self, Body};

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body as JSON, or `null` when it is not JSON.
    pub fn json_or_null(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

pub fn http1() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub fn http2() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

/// Send and collect the whole response.
pub async fn send(client: &Client<HttpConnector, Body>, request: Request<Body>) -> Reply {
    let response = client.request(request).await.expect("request failed");
    let (head, body) = response.into_parts();
    let body = body.collect().await.expect("body failed").to_bytes();
    Reply {
        status: head.status,
        headers: head.headers,
        body,
    }
}

pub async fn get(url: &str) -> Reply {
    send(&http1(), request(Method::GET, url, Bytes::new())).await
}

pub fn request(method: Method, url: &str, body_bytes: impl Into<Bytes>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(url)
        .body(body::full(body_bytes.into()))
        .unwrap()
}

/// `method url` over HTTP/1.1 with these headers and body.
pub async fn call(url: &str, method: Method, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(
        &http1(),
        builder
            .body(weir::http::body::full(body.to_string()))
            .unwrap(),
    )
    .await
}
