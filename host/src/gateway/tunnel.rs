//! WebSocket (and any HTTP/1.1 `Upgrade`) through the gateway: the upgrade
//! request goes through the `on-request` hooks like any other, so auth and
//! rate limits apply to the handshake; if the upstream answers 101, the
//! client's connection and the upstream's are joined into a tunnel that
//! copies bytes both ways until either side closes or nothing moves for
//! the upstream's `tunnel_idle_timeout_ms`. A tunnel is counted like a
//! connection, so a shutdown waits for it (up to the drain timeout).
//!
//! HTTP/2 extended CONNECT (RFC 8441) is not supported yet: WebSocket runs
//! over HTTP/1.1 connections.

use std::time::Duration;

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::lifecycle::drain::Guard;

/// The protocol an HTTP/1.1 request asks to upgrade to, if it does.
pub fn requested(headers: &HeaderMap, version: http::Version) -> Option<HeaderValue> {
    if version != http::Version::HTTP_11 {
        return None;
    }
    let asks = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(UPGRADE).cloned()).flatten()
}

/// Put back the headers that ask for an upgrade (stripping hop-by-hop
/// headers removed them).
pub fn ask_for(headers: &mut HeaderMap, protocol: HeaderValue) {
    let _ = headers.try_insert(CONNECTION, HeaderValue::from_static("upgrade"));
    let _ = headers.try_insert(UPGRADE, protocol);
}

/// Join the client and the upstream once both upgrades complete, copying
/// until a side closes or nothing moves for `idle`.
pub fn spawn(client: OnUpgrade, upstream: OnUpgrade, idle: Duration, counted: Guard) {
    tokio::spawn(async move {
        let _counted = counted;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!("upgrade did not complete: {e}");
                return;
            }
        };
        match relay(TokioIo::new(client), TokioIo::new(upstream), idle).await {
            Ok(Ended::Closed) => tracing::debug!("tunnel closed"),
            Ok(Ended::Idle) => tracing::debug!("tunnel closed after {} ms idle", idle.as_millis()),
            Err(e) => tracing::debug!("tunnel ended with an error: {e}"),
        }
    });
}

/// Why a tunnel ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Both sides closed.
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
}

/// Copy both ways until both sides have closed, or nothing moves for
/// `idle`. A side that closes has its peer's write half shut down.
pub async fn relay<A, B>(a: A, b: B, idle: Duration) -> std::io::Result<Ended>
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let (mut from_a, mut from_b) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        tokio::select! {
            read = a_read.read(&mut from_a), if a_open => match read? {
                0 => {
                    a_open = false;
                    let _ = b_write.shutdown().await;
                }
                n => b_write.write_all(from_a.get(..n).unwrap_or_default()).await?,
            },
            read = b_read.read(&mut from_b), if b_open => match read? {
                0 => {
                    b_open = false;
                    let _ = a_write.shutdown().await;
                }
                n => a_write.write_all(from_b.get(..n).unwrap_or_default()).await?,
            },
            () = tokio::time::sleep(idle) => return Ok(Ended::Idle),
        }
    }
    Ok(Ended::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bytes_flow_both_ways_and_idle_ends_the_tunnel() {
        let (client, mut client_end) = tokio::io::duplex(1024);
        let (upstream, mut upstream_end) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay(client, upstream, Duration::from_secs(5)));
        client_end.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        upstream_end.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        upstream_end.write_all(b"pong").await.unwrap();
        client_end.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        // Nothing more: the idle timeout ends it.
        assert_eq!(relay.await.unwrap().unwrap(), Ended::Idle);
    }

    #[tokio::test]
    async fn closing_both_sides_ends_the_tunnel() {
        let (client, client_end) = tokio::io::duplex(64);
        let (upstream, upstream_end) = tokio::io::duplex(64);
        drop((client_end, upstream_end));
        assert_eq!(
            relay(client, upstream, Duration::from_secs(60))
                .await
                .unwrap(),
            Ended::Closed
        );
    }

    #[test]
    fn only_http11_requests_with_connection_upgrade_ask() {
        let mut headers = HeaderMap::new();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(requested(&headers, http::Version::HTTP_11), None);
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert_eq!(
            requested(&headers, http::Version::HTTP_11).unwrap(),
            "websocket"
        );
        assert_eq!(requested(&headers, http::Version::HTTP_2), None);
    }
}
