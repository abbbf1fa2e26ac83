//! Response compression by the gateway: gzip, brotli and zstd chosen by
//! `Accept-Encoding` q-values (RFC 9110 §12.5.3), decoded by real clients
//! (curl `--compressed`, headless Chromium), streamed as the upstream
//! sends, and never applied twice.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;

use crate::support::browser::Browser;
use crate::support::*;

/// A JSON document big enough to compress, and the same each time.
fn document() -> String {
    let items: Vec<_> = (0..400)
        .map(|i| json!({"id": i, "name": format!("item {i}"), "tags": ["a", "b", "c"]}))
        .collect();
    json!({ "items": items }).to_string()
}

fn compressing(backend: &Backend, extra: &str) -> Setup {
    Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .section(&format!("[compression]\nenabled = true\n{extra}"))
}

/// `curl -sS --compressed` with `accept` as the Accept-Encoding; the
/// response head (lower-cased) and the decoded body.
async fn curl(url: &str, accept: Option<&str>) -> (String, String) {
    let mut args = vec![
        "-sS".to_string(),
        "--compressed".into(),
        "-D".into(),
        "-".into(),
    ];
    if let Some(accept) = accept {
        args.push("-H".into());
        args.push(format!("Accept-Encoding: {accept}"));
    }
    args.push(url.to_string());
    let out = tokio::process::Command::new("curl")
        .args(&args)
        .output()
        .await
        .expect("curl is installed (tools/setup-test-machine)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn curl_decodes_each_coding_the_gateway_chose_by_q_value() {
    let backend = Backend::start().await;
    let doc = document();
    let etag = "\"v7\"";
    backend.serve_http(
        "/doc",
        200,
        &[("content-type", "application/json"), ("etag", etag)],
        &doc,
    );
    let gw = compressing(&backend, "").serve().await;
    let url = gw.url("/doc");
    let cases = [
        // curl's own list (deflate, gzip, br, zstd): the gateway's order.
        (None, "zstd"),
        (Some("gzip, br;q=0.9"), "gzip"),
        (Some("br;q=1.0, gzip;q=0.5"), "br"),
        (Some("zstd;q=0, br;q=0, *;q=0.1"), "gzip"),
    ];
    for (accept, coding) in cases {
        let (head, body) = curl(&url, accept).await;
        assert!(
            head.contains(&format!("\r\ncontent-encoding: {coding}")),
            "{accept:?}: {head}"
        );
        assert!(head.contains("\r\nvary: accept-encoding"), "{head}");
        assert!(!head.contains("\r\ncontent-length:"), "{head}");
        // RFC 9110 §8.8.3: the encoded bytes differ, so the ETag is weak.
        assert!(head.contains("\r\netag: w/\"v7\""), "{head}");
        assert_eq!(body, doc, "{accept:?}");
    }
    // Identity when nothing offered is acceptable, still marked Vary.
    let (head, body) = curl(&url, Some("identity")).await;
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(head.contains("\r\nvary: accept-encoding"), "{head}");
    assert!(
        head.contains(&format!("\r\ncontent-length: {}", doc.len())),
        "{head}"
    );
    assert_eq!(body, doc);
}

#[tokio::test]
async fn encoded_small_or_unlisted_responses_are_left_alone() {
    let backend = Backend::start().await;
    // Already gzip (the bytes are whatever the origin sent): not twice.
    backend.serve_http(
        "/encoded",
        200,
        &[("content-type", "text/plain"), ("content-encoding", "gzip")],
        &"x".repeat(4000),
    );
    backend.serve_http("/small", 200, &[("content-type", "text/plain")], "tiny");
    backend.serve_http(
        "/png",
        200,
        &[("content-type", "image/png")],
        &"x".repeat(4000),
    );
    backend.serve_http(
        "/no-transform",
        200,
        &[
            ("content-type", "text/plain"),
            ("cache-control", "no-transform"),
        ],
        &"x".repeat(4000),
    );
    let gw = compressing(&backend, "").serve().await;
    let client = client::http1();
    for path in ["/encoded", "/small", "/png", "/no-transform"] {
        let request = http::Request::builder()
            .uri(gw.url(path))
            .header("accept-encoding", "br, gzip, zstd")
            .body(weir::http::body::empty())
            .unwrap();
        let reply = send(&client, request).await;
        assert_eq!(reply.status, 200);
        let expected = (path == "/encoded").then_some("gzip");
        assert_eq!(reply.header("content-encoding"), expected, "{path}");
        assert!(reply.header("content-length").is_some(), "{path}");
    }
}

/// An upstream that sends `first`, then waits for the test before the
/// rest: the compressed first part must reach the client before then.
#[tokio::test]
async fn a_streamed_body_is_compressed_as_it_arrives() {
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let release = std::sync::Mutex::new(Some(release_rx));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let release = release.lock().unwrap().take().unwrap();
        let release = std::sync::Mutex::new(Some(release));
        let service = hyper::service::service_fn(move |_req| {
            let release = release.lock().unwrap().take();
            async move {
                let (tx, rx) =
                    tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Infallible>>(4);
                tokio::spawn(async move {
                    let first = Bytes::from("first part of a long stream\n".repeat(20));
                    tx.send(Ok(http_body::Frame::data(first))).await.unwrap();
                    if let Some(release) = release {
                        let _ = release.await;
                    }
                    tx.send(Ok(http_body::Frame::data(Bytes::from("the rest\n"))))
                        .await
                        .unwrap();
                });
                let body =
                    http_body_util::StreamBody::new(futures::stream::unfold(rx, |mut rx| async {
                        rx.recv().await.map(|frame| (frame, rx))
                    }));
                Ok::<_, Infallible>(
                    http::Response::builder()
                        .header("content-type", "text/plain")
                        .body(body)
                        .unwrap(),
                )
            }
        });
        let io = hyper_util::rt::TokioIo::new(stream);
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await;
    });
    let gw = Setup::new()
        .upstream("origin", &[format!("http://{origin}")])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "origin"}]}),
        )
        .section("[compression]\nenabled = true")
        .serve()
        .await;
    let request = http::Request::builder()
        .uri(gw.url("/stream"))
        .header("accept-encoding", "gzip")
        .body(weir::http::body::empty())
        .unwrap();
    let response = client::http1().request(request).await.unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let mut body = response.into_body();
    let mut compressed = Vec::new();
    let mut decoder = gzip::Stream::default();
    // The first part decodes while the origin still holds the rest.
    let expected_first = "first part of a long stream\n".repeat(20);
    while decoder.text.len() < expected_first.len() {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the first part came before the origin finished")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            compressed.extend_from_slice(&data);
            decoder.feed(&data);
        }
    }
    assert_eq!(decoder.text, expected_first);
    release_tx.send(()).unwrap();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            decoder.feed(&data);
        }
    }
    assert_eq!(decoder.text, format!("{expected_first}the rest\n"));
}

/// A gzip stream decoded as its bytes arrive.
mod gzip {
    use compression_codecs::Decode;
    use compression_core::util::PartialBuffer;

    #[derive(Default)]
    pub struct Stream {
        decoder: Option<compression_codecs::GzipDecoder>,
        pub text: String,
    }

    impl Stream {
        pub fn feed(&mut self, bytes: &[u8]) {
            let decoder = self
                .decoder
                .get_or_insert_with(compression_codecs::GzipDecoder::new);
            let mut input = PartialBuffer::new(bytes);
            while !input.unwritten().is_empty() {
                let mut out = PartialBuffer::new(vec![0u8; 64 * 1024]);
                decoder.decode(&mut input, &mut out).unwrap();
                let _ = decoder.flush(&mut out);
                self.text
                    .push_str(std::str::from_utf8(out.written()).unwrap());
            }
        }
    }
}

/// Chromium fetches a page and a JSON document through the gateway, says
/// which coding it got, and reads both decoded.
#[tokio::test]
async fn chromium_reads_compressed_pages_and_json() {
    let backend = Backend::start().await;
    let doc = document();
    let page = format!(
        "<!doctype html><html><head><title>compressed</title></head><body><pre id=p>{}</pre></body></html>",
        "lorem ipsum dolor sit amet ".repeat(400)
    );
    backend.serve_http(
        "/page",
        200,
        &[("content-type", "text/html; charset=utf-8")],
        &page,
    );
    backend.serve_http("/doc", 200, &[("content-type", "application/json")], &doc);
    let gw = compressing(&backend, "").serve().await;
    let mut browser = Browser::launch(800, 600).await;
    browser.navigate(&gw.url("/page")).await;
    let text_length = browser
        .wait_for(
            "document.getElementById('p') && document.getElementById('p').textContent.length",
            Duration::from_secs(10),
            "the page",
        )
        .await;
    assert_eq!(
        text_length,
        json!("lorem ipsum dolor sit amet ".len() * 400)
    );
    // What the browser offered, and that the page came encoded, smaller.
    let offered = backend.last_at("/page").unwrap().headers["accept-encoding"]
        .to_str()
        .unwrap()
        .to_string();
    let sizes = browser
        .eval(
            "(() => { const n = performance.getEntriesByType('navigation')[0]; \
             return [n.encodedBodySize, n.decodedBodySize]; })()",
        )
        .await;
    let (encoded, decoded) = (sizes[0].as_u64().unwrap(), sizes[1].as_u64().unwrap());
    assert_eq!(decoded, page.len() as u64);
    assert!(encoded * 4 < decoded, "{offered}: {encoded} of {decoded}");

    browser
        .eval(
            "window.got = null; fetch('/doc').then(async r => { window.got = \
             [r.headers.get('content-encoding'), (await r.json()).items.length]; })",
        )
        .await;
    let got = browser
        .wait_for("window.got", Duration::from_secs(10), "the JSON")
        .await;
    let expected = [("zstd", "zstd"), ("br", "br"), ("gzip", "gzip")]
        .iter()
        .find(|(name, _)| offered.split(',').any(|o| o.trim() == *name))
        .map(|(_, coding)| *coding)
        .expect("Chromium offers gzip at least");
    assert_eq!(got, json!([expected, 400]), "offered {offered}");
}
