//! A reload applies the listeners' settings too, completely: the connection
//! cap, the header limits hyper reads with, the header timeout and the drain
//! timeout change for what comes after the reload. Restart-only keys are
//! covered by the unit tests of `config/reloading.rs`, which walk the
//! whole schema.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::reload::Reloader;

use crate::support::raw;
use crate::support::*;

/// A gateway routing everything to `backend`, with these `[limits]` lines.
fn routed(backend: &Backend, limits: &[&str]) -> Setup {
    let mut setup = Setup::new().upstream("backend", &[backend.url()]).scripted(
        "10-route",
        json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
    );
    for line in limits {
        setup = setup.limit(line);
    }
    setup
}

/// Serve `setup` with a reloader on its `weir.toml`, as `weir run` does.
async fn reloadable(setup: &Setup) -> (Running, Arc<Reloader>) {
    let config = setup.config();
    let gateway = Arc::new(setup.gateway().await);
    let running = Running::start(gateway.clone()).await;
    let reloader = Reloader::new(gateway, &setup.dir.path().join("weir.toml"), config, None);
    (running, reloader)
}

/// Change `from` to `to` in `weir.toml` and reload.
async fn reload_with(setup: &Setup, reloader: &Reloader, from: &str, to: &str) {
    let path = setup.dir.path().join("weir.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} is not in weir.toml");
    std::fs::write(&path, text.replace(from, to)).unwrap();
    reloader.reload("test").await.unwrap();
}

/// A GET with `count` extra headers of `size` bytes each, on a new
/// connection; the status.
async fn get_with_headers(gw: &Running, count: usize, size: usize) -> u16 {
    let mut request = String::from("GET /json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
    for i in 0..count {
        request.push_str(&format!("x-h{i}: {}\r\n", "v".repeat(size)));
    }
    request.push_str("\r\n");
    raw::status(&raw::exchange(gw.addr, request).await)
}

#[tokio::test]
async fn a_reload_applies_the_header_limits_hyper_reads_with() {
    let backend = Backend::start().await;
    let setup = routed(
        &backend,
        &["max_header_bytes = 8192", "max_header_count = 20"],
    );
    let (gw, reloader) = reloadable(&setup).await;
    // 12 KiB of headers: past hyper's buffer for 8 KiB, not past 64 KiB.
    assert_eq!(get_with_headers(&gw, 3, 4000).await, 431);
    reload_with(
        &setup,
        &reloader,
        "max_header_bytes = 8192",
        "max_header_bytes = 65536",
    )
    .await;
    assert_eq!(get_with_headers(&gw, 3, 4000).await, 200);
    // 30 fields: past 20, not past 50.
    assert_eq!(get_with_headers(&gw, 30, 10).await, 431);
    reload_with(
        &setup,
        &reloader,
        "max_header_count = 20",
        "max_header_count = 50",
    )
    .await;
    assert_eq!(get_with_headers(&gw, 30, 10).await, 200);
}

#[tokio::test]
async fn a_reload_that_raises_the_connection_cap_lets_a_waiting_client_in() {
    let backend = Backend::start().await;
    let setup = routed(&backend, &["max_connections = 2"]);
    let (gw, reloader) = reloadable(&setup).await;
    let _held = [
        tokio::net::TcpStream::connect(gw.addr).await.unwrap(),
        tokio::net::TcpStream::connect(gw.addr).await.unwrap(),
    ];
    let third = tokio::spawn({
        let url = gw.url("/json");
        async move { get(&url).await.status }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "served past the cap of 2");
    reload_with(
        &setup,
        &reloader,
        "max_connections = 2",
        "max_connections = 3",
    )
    .await;
    let status = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("the raised cap did not let the waiting client in")
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_reload_that_shortens_the_header_timeout_closes_idle_connections_sooner() {
    let backend = Backend::start().await;
    let setup = routed(&backend, &["header_read_timeout_ms = 30000"]);
    let (gw, reloader) = reloadable(&setup).await;
    reload_with(
        &setup,
        &reloader,
        "header_read_timeout_ms = 30000",
        "header_read_timeout_ms = 300",
    )
    .await;
    let started = Instant::now();
    let mut idle = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut idle, &mut byte),
    )
    .await
    .expect("an idle connection was held past the reloaded header timeout");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_millis(300 + 700),
        "closed after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_drain_timeout_is_the_one_current_at_shutdown() {
    let backend = Backend::start().await;
    let setup = routed(&backend, &[]).top("drain_timeout_ms = 60000");
    let config = setup.config();
    let gateway = Arc::new(setup.gateway().await);
    let reloader = Reloader::new(
        gateway.clone(),
        &setup.dir.path().join("weir.toml"),
        config,
        None,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(weir::server::serve(listener, gateway, async move {
        let _ = stopped.await;
    }));
    reload_with(
        &setup,
        &reloader,
        "drain_timeout_ms = 60000",
        "drain_timeout_ms = 200",
    )
    .await;
    // A request that would take 10 s is in flight when shutdown begins.
    let slow = tokio::spawn(async move { get(&format!("http://{addr}/slow?ms=10000")).await });
    while backend.hits() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("the drain waited past the reloaded drain timeout")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(200 + 800),
        "drained in {:?}",
        started.elapsed()
    );
    slow.abort();
}
