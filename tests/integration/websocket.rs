//! WebSocket through the gateway: a real echo server (tokio-tungstenite)
//! behind it, a real client in front; the handshake goes through the
//! plugins, then a tunnel carries messages both ways until idle.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

/// An echo server: every text or binary message comes back.
async fn echo_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                while let Some(Ok(message)) = rx.next().await {
                    if (message.is_text() || message.is_binary()) && tx.send(message).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A gateway routing `/ws` to the echo server through the real auth plugin
/// (API key `ws-key`), with a tunnel idle timeout of `idle_ms`.
async fn gateway(echo: SocketAddr, idle_ms: u64) -> Running {
    let key_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"ws-key"))
    };
    Setup::new()
        .upstream_with(
            "echo",
            &format!("targets = [\"http://{echo}\"]\ntunnel_idle_timeout_ms = {idle_ms}"),
        )
        .router(json!({"routes": [{"name": "ws", "match": {"path": "/ws"}, "upstream": "echo"}]}))
        .plugin(
            "60-auth",
            "weir_plugin_auth",
            Some(json!({
                "api_key": {"header": "x-api-key", "consumers": [{"id": "ws-user", "sha256": key_sha}]},
                "default": {"methods": ["api_key"]}
            })),
        )
        .serve()
        .await
}

fn request(gw: &Running, key: Option<&str>) -> http::Request<()> {
    let mut request = format!("ws://{}/ws", gw.addr)
        .into_client_request()
        .unwrap();
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("x-api-key", key.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn messages_cross_the_tunnel_both_ways() {
    let gw = gateway(echo_server().await, 30_000).await;
    let (mut ws, response) = tokio_tungstenite::connect_async(request(&gw, Some("ws-key")))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..20 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text(format!("hello {i}"))
        );
    }
    let blob = vec![7u8; 100_000];
    ws.send(Message::binary(blob.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(blob));
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn the_handshake_is_refused_with_401_when_auth_says_so() {
    let gw = gateway(echo_server().await, 30_000).await;
    match tokio_tungstenite::connect_async(request(&gw, None)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    let wrong = tokio_tungstenite::connect_async(request(&gw, Some("nope"))).await;
    assert!(matches!(
        wrong,
        Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 401
    ));
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_after_its_timeout() {
    let gw = gateway(echo_server().await, 300).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(request(&gw, Some("ws-key")))
        .await
        .unwrap();
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("ping"));
    let quiet_since = Instant::now();
    // Nothing more is sent: the gateway closes the connection.
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the idle tunnel was never closed");
    assert!(!matches!(next, Some(Ok(Message::Text(_)))), "{next:?}");
    let idle = quiet_since.elapsed();
    assert!(
        idle >= Duration::from_millis(300),
        "closed after only {idle:?}"
    );
}

#[tokio::test]
async fn a_shutdown_waits_for_open_tunnels() {
    let gw = gateway(echo_server().await, 30_000).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(request(&gw, Some("ws-key")))
        .await
        .unwrap();
    ws.send(Message::text("one")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    // The tunnel counts as open.
    assert!(gw.gateway.drain().open() >= 1);
    ws.close(None).await.unwrap();
    drop(ws);
    tokio::time::timeout(Duration::from_secs(5), gw.gateway.drain().wait())
        .await
        .expect("the tunnel was still counted after both sides closed");
}
