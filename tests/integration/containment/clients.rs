//! Hostile clients: requests without a proper `Host`, malformed and stalled
//! bodies, connections past the cap, and a host bug reached from a request.

use std::time::{Duration, Instant};

use super::*;

#[tokio::test]
async fn a_request_without_host_or_with_two_is_a_400() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .serve()
        .await;
    let no_host = raw::exchange(gw.addr, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(raw::status(&no_host), 400, "{no_host}");
    let two = raw::exchange(
        gw.addr,
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw::status(&two), 400, "{two}");
    let disagree = raw::exchange(
        gw.addr,
        "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw::status(&disagree), 400, "{disagree}");
    let fine = raw::exchange(
        gw.addr,
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw::status(&fine), 200, "{fine}");
    assert_eq!(backend.hits(), 1, "a refused request reached the upstream");
}

#[tokio::test]
async fn a_malformed_client_body_is_a_400_and_never_ejects_the_target() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        // One failure would eject the target, if it were counted.
        .upstream_with(
            "backend",
            &format!(
                "targets = [\"{}\"]\nretries = 0\n[upstreams.backend.passive]\nfailures = 1\neject_ms = 60000",
                backend.url()
            ),
        )
        .scripted("10-route", json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}))
        .serve()
        .await;
    for _ in 0..3 {
        let answer = raw::exchange(
            gw.addr,
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\nnot a chunk\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(raw::status(&answer), 400, "{answer}");
        assert!(answer.contains("bad request body"), "{answer}");
    }
    // The target stayed in rotation: a good request still goes through.
    let reply = get(&gw.url("/json")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let pipeline = gw.gateway.pipeline();
    let target = &pipeline.upstreams().get("backend").unwrap().targets()[0];
    assert!(target.available(tokio::time::Instant::now()));
}

#[tokio::test]
async fn a_stalled_request_body_gets_408_after_the_idle_timeout() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .limit("client_body_idle_timeout_ms = 300")
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .serve()
        .await;
    let started = Instant::now();
    // Promises 100 bytes, sends 5, then waits (the helper only reads); the
    // backend's `/collect` reads the whole body before it answers.
    let answer = raw::exchange(
        gw.addr,
        "POST /collect HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nhello",
    )
    .await;
    let took = started.elapsed();
    assert_eq!(raw::status(&answer), 408, "{answer}");
    assert!(answer.contains("request body timed out"), "{answer}");
    assert!(took < Duration::from_millis(300 + 1000), "{took:?}");
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .limit("max_connections = 2")
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .serve()
        .await;
    // Two idle connections take both slots.
    let held: Vec<tokio::net::TcpStream> = vec![
        tokio::net::TcpStream::connect(gw.addr).await.unwrap(),
        tokio::net::TcpStream::connect(gw.addr).await.unwrap(),
    ];
    let third = tokio::spawn({
        let url = gw.url("/json");
        async move { get(&url).await.status }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past the cap"
    );
    drop(held);
    let status = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("the waiting connection was never served")
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_panic_while_handling_becomes_that_requests_500() {
    /// A body that panics when the gateway first looks at it: a stand-in
    /// for a host bug reached from client input.
    struct Boom;
    impl http_body::Body for Boom {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
            std::task::Poll::Ready(None)
        }
        fn is_end_stream(&self) -> bool {
            panic!("boom: a bug in the host");
        }
    }
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .gateway()
        .await;
    let request = http::Request::builder()
        .uri("/json")
        .header("host", "a")
        .body(Boom)
        .unwrap();
    let response = gw
        .handle(
            request,
            "127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap(),
        )
        .await;
    assert_eq!(response.status(), 500);
    // The gateway keeps serving.
    let request = http::Request::builder()
        .uri("/json")
        .header("host", "a")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = gw
        .handle(
            request,
            "127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap(),
        )
        .await;
    assert_eq!(response.status(), 200);
}
