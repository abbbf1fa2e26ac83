//! Path normalization before routing: traversal and encoding tricks reach
//! the route their normal form names (and its policy), never a route the
//! raw text would have matched; malformed paths get 400.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::*;

/// `/public` → public; `/admin` → admin, which a later plugin guards
/// (standing in for auth): it answers 403 for the `admin` route.
async fn guarded() -> (Backend, Backend, Running) {
    let public = Backend::start().await;
    let admin = Backend::start().await;
    let gw = Setup::new()
        .upstream("public", &[public.url()])
        .upstream("admin", &[admin.url()])
        .router(json!({"routes": [
            {"name": "public", "match": {"path_prefix": "/public"}, "upstream": "public"},
            {"name": "admin", "match": {"path_prefix": "/admin"}, "upstream": "admin"}
        ]}))
        .scripted("60-guard", json!({"on_request": [
            {"op": "context_to_header", "key": "route", "header": "x-route"}]}))
        .scripted("70-deny-admin", json!({"on_request": [
            {"op": "when_header", "name": "x-route", "value": "admin", "then": [{"op": "respond", "status": 403}]}]}))
        .serve()
        .await;
    (public, admin, gw)
}

/// Send a raw request target (so the client does not normalize it).
fn raw_get(addr: std::net::SocketAddr, target: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

async fn status_of(gw: &Running, target: &'static str) -> u16 {
    let addr = gw.addr;
    let answer = tokio::task::spawn_blocking(move || raw_get(addr, target))
        .await
        .unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

#[tokio::test]
async fn dot_segments_cannot_escape_to_another_route() {
    let (public, admin, gw) = guarded().await;
    assert_eq!(status_of(&gw, "/public/../admin").await, 403);
    assert_eq!(status_of(&gw, "/public/./../admin/users").await, 403);
    assert_eq!(public.hits() + admin.hits(), 0);
}

#[tokio::test]
async fn encoded_dots_cannot_escape_to_another_route() {
    let (public, admin, gw) = guarded().await;
    assert_eq!(status_of(&gw, "/public/%2e%2e/admin").await, 403);
    assert_eq!(status_of(&gw, "/public/%2E%2E/admin").await, 403);
    assert_eq!(status_of(&gw, "/public/.%2e/admin").await, 403);
    assert_eq!(public.hits() + admin.hits(), 0);
}

#[tokio::test]
async fn doubled_slashes_and_encoded_letters_are_the_plain_path() {
    let (public, admin, gw) = guarded().await;
    assert_eq!(status_of(&gw, "//admin").await, 403);
    assert_eq!(status_of(&gw, "/%61dmin").await, 403);
    assert_eq!(public.hits() + admin.hits(), 0);
}

#[tokio::test]
async fn the_upstream_receives_the_normalized_path() {
    let (public, _admin, gw) = guarded().await;
    assert_eq!(status_of(&gw, "/public/./a//b/../c?q=../x").await, 200);
    assert_eq!(public.last().unwrap().path_and_query, "/public/a/c?q=../x");
    // An encoded slash is data, not a separator: kept encoded.
    assert_eq!(status_of(&gw, "/public/a%2fb").await, 200);
    assert_eq!(public.last().unwrap().path_and_query, "/public/a%2Fb");
}

#[tokio::test]
async fn nul_crlf_and_bad_escapes_are_400() {
    let (public, admin, gw) = guarded().await;
    assert_eq!(status_of(&gw, "/public/a%00b").await, 400);
    assert_eq!(status_of(&gw, "/public/a%0d%0aX-Injected:%201").await, 400);
    assert_eq!(status_of(&gw, "/public/a%0Ab").await, 400);
    assert_eq!(status_of(&gw, "/public/a%zz").await, 400);
    assert_eq!(status_of(&gw, "/public/a%2").await, 400);
    assert_eq!(public.hits() + admin.hits(), 0);
}
