//! The client's real address behind proxies, as host mechanism:
//! `trusted_proxies` with `X-Forwarded-For` or `Forwarded` (RFC 7239), and
//! the PROXY protocol v1 and v2 on a listener that asks for it. Plugins
//! read the result as `request.client-ip` (contract 0.4.0); rate limits,
//! `consistent_hash` on `client_ip` and the access log use it.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::*;

/// Every request goes to `backend`, with the peer and the resolved client
/// copied into headers the backend sees.
fn echoing(backend: &Backend, top: &[&str]) -> Setup {
    let mut setup = Setup::new().upstream("backend", &[backend.url()]).scripted(
        "10-echo",
        json!({"on_request": [
            {"op": "set_upstream", "name": "backend"},
            {"op": "client_to_headers"}]}),
    );
    for line in top {
        setup = setup.top(line);
    }
    setup
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> u16 {
    let mut builder = http::Request::builder().uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(weir::http::body::empty()).unwrap();
    send(&client::http1(), request).await.status.as_u16()
}

fn seen(backend: &Backend, name: &str) -> String {
    backend.last().unwrap().headers[name]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let backend = Backend::start().await;
    let chain = [("x-forwarded-for", "198.51.100.1, 203.0.113.9")];

    // Not trusted: the header names nobody, the peer is the client.
    let gw = echoing(&backend, &[]).serve().await;
    assert_eq!(get_with(&gw.url("/"), &chain).await, 200);
    assert_eq!(seen(&backend, "x-resolved-client-ip"), "127.0.0.1");

    // Trusted: read from the right, the first untrusted hop is the client;
    // the forged leftmost entry is never used. `client-addr` stays the
    // peer, and the upstream's X-Forwarded-For gets the peer appended.
    let gw = echoing(&backend, &[r#"trusted_proxies = ["127.0.0.0/8"]"#])
        .serve()
        .await;
    assert_eq!(get_with(&gw.url("/"), &chain).await, 200);
    assert_eq!(seen(&backend, "x-resolved-client-ip"), "203.0.113.9");
    assert_eq!(seen(&backend, "x-client-ip"), "127.0.0.1");
    assert_eq!(
        seen(&backend, "x-forwarded-for"),
        "198.51.100.1, 203.0.113.9, 127.0.0.1"
    );
    // A trusted proxy naming no further hop is itself the client.
    assert_eq!(get_with(&gw.url("/"), &[]).await, 200);
    assert_eq!(seen(&backend, "x-resolved-client-ip"), "127.0.0.1");
}

/// RFC 7239 §4, §6: `for` nodes, IPv6 in quotes and brackets, with a port.
#[tokio::test]
async fn forwarded_is_read_when_configured_and_then_only_it() {
    let backend = Backend::start().await;
    let gw = echoing(
        &backend,
        &[
            r#"trusted_proxies = ["127.0.0.1"]"#,
            r#"forwarded_header = "forwarded""#,
        ],
    )
    .serve()
    .await;
    let forwarded = (
        "forwarded",
        r#"for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711""#,
    );
    assert_eq!(get_with(&gw.url("/"), &[forwarded]).await, 200);
    assert_eq!(seen(&backend, "x-resolved-client-ip"), "2001:db8:cafe::17");
    // X-Forwarded-For is no proof when Forwarded is the configured header.
    let xff = ("x-forwarded-for", "203.0.113.9");
    assert_eq!(get_with(&gw.url("/"), &[xff]).await, 200);
    assert_eq!(seen(&backend, "x-resolved-client-ip"), "127.0.0.1");
    // An obfuscated node stops the walk at the last trusted hop.
    let hidden = ("forwarded", "for=_hidden");
    assert_eq!(get_with(&gw.url("/"), &[hidden]).await, 200);
    assert_eq!(seen(&backend, "x-resolved-client-ip"), "127.0.0.1");
}

/// Write `preface` then a GET on one connection; the raw answer.
async fn through_proxy_protocol(addr: SocketAddr, preface: Vec<u8>) -> String {
    through_proxy_protocol_with(addr, preface, "").await
}

/// The same, with `headers` (CRLF-terminated lines) in the GET.
async fn through_proxy_protocol_with(
    addr: SocketAddr,
    preface: Vec<u8>,
    headers: &'static str,
) -> String {
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut bytes = preface;
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        bytes.extend_from_slice(headers.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        stream.write_all(&bytes).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap()
}

fn v2_ipv6(source: &str, port: u16) -> Vec<u8> {
    let mut bytes = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    bytes.extend_from_slice(&[0x21, 0x21, 0, 36]);
    bytes.extend_from_slice(&source.parse::<std::net::Ipv6Addr>().unwrap().octets());
    bytes.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    bytes.extend_from_slice(&port.to_be_bytes());
    bytes.extend_from_slice(&443u16.to_be_bytes());
    bytes
}

/// HAProxy's PROXY protocol specification, §2.1 (v1) and §2.2 (v2).
#[tokio::test]
async fn the_proxy_protocol_names_the_client_in_v1_and_v2() {
    let backend = Backend::start().await;
    let gw = echoing(
        &backend,
        &[
            "proxy_protocol = true",
            r#"trusted_proxies = ["127.0.0.1"]"#,
        ],
    )
    .serve()
    .await;

    let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n".to_vec();
    let answer = through_proxy_protocol(gw.addr, v1).await;
    assert_eq!(raw::status(&answer), 200, "{answer}");
    assert_eq!(seen(&backend, "x-client-ip"), "203.0.113.7");
    assert_eq!(seen(&backend, "x-client-port"), "40000");
    assert_eq!(seen(&backend, "x-resolved-client-ip"), "203.0.113.7");
    assert_eq!(seen(&backend, "x-forwarded-for"), "203.0.113.7");

    let answer = through_proxy_protocol(gw.addr, v2_ipv6("2001:db8::9", 51000)).await;
    assert_eq!(raw::status(&answer), 200, "{answer}");
    assert_eq!(seen(&backend, "x-client-ip"), "2001:db8::9");
    assert_eq!(seen(&backend, "x-client-port"), "51000");

    // v2 LOCAL (a balancer's health check): the real peer stands, and,
    // though it is a trusted proxy, a forwarding header on that connection
    // is the client's own (an L4 balancer writes none), so it is ignored.
    let local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec();
    let answer =
        through_proxy_protocol_with(gw.addr, local, "X-Forwarded-For: 198.51.100.66\r\n").await;
    assert_eq!(raw::status(&answer), 200, "{answer}");
    assert_eq!(seen(&backend, "x-client-ip"), "127.0.0.1");
    assert_eq!(seen(&backend, "x-resolved-client-ip"), "127.0.0.1");

    // No header, or a malformed one: closed without an answer, and the
    // backend never sees it.
    let hits = backend.hits();
    for preface in [Vec::new(), b"PROXY TCP4 nonsense\r\n".to_vec()] {
        let answer = through_proxy_protocol(gw.addr, preface).await;
        assert_eq!(answer, "", "answered a connection without a valid header");
    }
    assert_eq!(backend.hits(), hits);
}

#[tokio::test]
async fn the_proxy_protocol_is_refused_from_peers_outside_trusted_proxies() {
    let backend = Backend::start().await;
    let gw = echoing(
        &backend,
        &[
            "proxy_protocol = true",
            r#"trusted_proxies = ["10.0.0.0/8"]"#,
        ],
    )
    .serve()
    .await;
    let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n".to_vec();
    assert_eq!(through_proxy_protocol(gw.addr, v1).await, "");
    assert_eq!(backend.hits(), 0);
}

/// After a PROXY header the chain is walked from the named source: a load
/// balancer's address is trusted, so its X-Forwarded-For is believed.
#[tokio::test]
async fn a_proxy_protocol_source_can_be_a_trusted_proxy_in_turn() {
    let backend = Backend::start().await;
    let gw = echoing(
        &backend,
        &[
            "proxy_protocol = true",
            r#"trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]"#,
        ],
    )
    .serve()
    .await;
    let preface = b"PROXY TCP4 10.1.2.3 127.0.0.1 40000 80\r\n".to_vec();
    let answer =
        through_proxy_protocol_with(gw.addr, preface, "X-Forwarded-For: 198.51.100.4\r\n").await;
    assert_eq!(raw::status(&answer), 200, "{answer}");
    assert_eq!(seen(&backend, "x-client-ip"), "10.1.2.3");
    assert_eq!(seen(&backend, "x-resolved-client-ip"), "198.51.100.4");
}

#[tokio::test]
async fn rate_limits_count_the_resolved_client() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .top(r#"trusted_proxies = ["127.0.0.1"]"#)
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin(
            "70-rate-limit",
            "weir_plugin_rate_limit",
            Some(json!({"limits": [{"key": "client_ip", "rate": 1, "per": "1h"}]})),
        )
        .serve()
        .await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    assert_eq!(get_with(&gw.url("/"), &from("203.0.113.1")).await, 200);
    // Another client behind the same proxy has its own limit.
    assert_eq!(get_with(&gw.url("/"), &from("203.0.113.2")).await, 200);
    assert_eq!(get_with(&gw.url("/"), &from("203.0.113.1")).await, 429);
}

#[tokio::test]
async fn consistent_hash_on_client_ip_spreads_clients_behind_a_proxy() {
    let (a, b) = (Backend::start().await, Backend::start().await);
    let api = format!(
        "targets = [{:?}, {:?}]\nbalance = \"consistent_hash\"\nhash_on = \"client_ip\"",
        a.url(),
        b.url()
    );
    let gw = Setup::new()
        .top(r#"trusted_proxies = ["127.0.0.1"]"#)
        .upstream_with("api", &api)
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "api"}]}),
        )
        .serve()
        .await;
    // One client behind the proxy stays on one target...
    for _ in 0..5 {
        assert_eq!(
            get_with(&gw.url("/"), &[("x-forwarded-for", "203.0.113.50")]).await,
            200
        );
    }
    assert!(
        [a.hits(), b.hits()].contains(&5),
        "{} {}",
        a.hits(),
        b.hits()
    );
    // ...and clients spread, though every connection comes from 127.0.0.1.
    for i in 0..40 {
        let ip = format!("198.51.100.{i}");
        get_with(&gw.url("/"), &[("x-forwarded-for", &ip)]).await;
    }
    assert!(a.hits() > 0 && b.hits() > 0, "{} {}", a.hits(), b.hits());
}
