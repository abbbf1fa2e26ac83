//! Raw bytes as one HTTP/1.1 client connection, served the way the plain
//! listener serves it (`weir::server::serve_stream`: hyper's parser with the
//! gateway's header limits and timeouts, then admission: header limits,
//! `Host` rules, path normalisation), by a gateway with no plugins. Whatever
//! arrives, the connection ends, the answer is an HTTP/1.x response with a
//! client-error status (or the 404 of "no upstream"), and never the 500 of
//! a caught panic.

#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Harness {
    runtime: tokio::runtime::Runtime,
    gateway: Arc<weir::gateway::Gateway>,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("weir-fuzz-http1-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    let text = "[limits]\nmax_header_bytes = 8192\nmax_header_count = 32\n\
                header_read_timeout_ms = 1000\n[runtime]\npool_instances = 8\n\
                max_instances_per_plugin = 8\n[metrics]\nenabled = false\n";
    let config =
        weir::config::Config::parse(text, &dir.join("weir.toml"), &dir).expect("the config");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let gateway = runtime
        .block_on(weir::gateway::Gateway::new(&config))
        .expect("the gateway");
    Harness {
        runtime,
        gateway: Arc::new(gateway),
    }
});

fuzz_target!(|data: &[u8]| {
    let harness = &*HARNESS;
    let answer = harness.runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let serving = tokio::spawn(weir::server::serve_stream(
            server,
            "127.0.0.1:1".parse().unwrap(),
            harness.gateway.clone(),
        ));
        client.write_all(data).await.unwrap();
        client.shutdown().await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer))
            .await
            .expect("the connection never ended")
            .unwrap();
        serving.await.expect("the connection's task panicked");
        answer
    });
    // The HTTP/2 preface selects HTTP/2 (h2c by prior knowledge): still
    // served to its end above, but its answer is frames, not a status line.
    if !data.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") {
        check(&answer);
    }
});

/// The first response's status line, and no caught panic anywhere.
fn check(answer: &[u8]) {
    if answer.is_empty() {
        return;
    }
    // HTTP/1.0 requests are answered in HTTP/1.0.
    assert!(
        answer.starts_with(b"HTTP/1.1 ") || answer.starts_with(b"HTTP/1.0 "),
        "{:?}",
        String::from_utf8_lossy(answer)
    );
    let status: u16 = std::str::from_utf8(&answer[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {:?}", String::from_utf8_lossy(answer)));
    assert!(
        (400..500).contains(&status) || status == 501 || status == 505,
        "status {status}: {:?}",
        String::from_utf8_lossy(answer)
    );
    let panic_body = b"{\"error\":\"internal error\"}";
    assert!(
        !answer.windows(panic_body.len()).any(|w| w == panic_body),
        "a caught panic: {:?}",
        String::from_utf8_lossy(answer)
    );
}
