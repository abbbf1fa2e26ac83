//! Which responses are compressed, what their headers become, and that
//! the streamed bytes decode to the original.

use super::*;
use bytes::Bytes;
use compression_codecs::Decode;
use http_body_util::BodyExt;

fn settings() -> Compression {
    Compression::from_config(&CompressionConfig {
        enabled: true,
        ..CompressionConfig::default()
    })
    .unwrap()
}

fn response(status: u16, headers: &[(&str, &str)], body: &'static [u8]) -> Response<Body> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(http_body_mod::full(Bytes::from_static(body)))
        .unwrap()
}

const TEXT: &[u8] = include_bytes!("mod.rs");

fn asked(coding: Option<Coding>) -> Asked {
    Asked(coding)
}

async fn bytes(response: Response<Body>) -> Vec<u8> {
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

fn decode(coding: Coding, data: &[u8]) -> Vec<u8> {
    let mut decoder: Box<DecodeStep> = match coding {
        Coding::Gzip => {
            let mut d = compression_codecs::GzipDecoder::new();
            Box::new(move |i, o| d.decode(i, o).unwrap())
        }
        Coding::Brotli => {
            let mut d = compression_codecs::BrotliDecoder::new();
            Box::new(move |i, o| d.decode(i, o).unwrap())
        }
        Coding::Zstd => {
            let mut d = compression_codecs::ZstdDecoder::new();
            Box::new(move |i, o| d.decode(i, o).unwrap())
        }
    };
    let mut input = compression_core::util::PartialBuffer::new(data);
    let mut out = Vec::new();
    loop {
        let mut buf = compression_core::util::PartialBuffer::new(vec![0u8; 64 * 1024]);
        let done = decoder(&mut input, &mut buf);
        out.extend_from_slice(buf.written());
        if done {
            return out;
        }
    }
}

type PartialBuf<'a> = compression_core::util::PartialBuffer<&'a [u8]>;
type DecodeStep = dyn FnMut(&mut PartialBuf<'_>, &mut PartialOut) -> bool;
type PartialOut = compression_core::util::PartialBuffer<Vec<u8>>;

#[tokio::test]
async fn each_coding_round_trips_and_rewrites_the_headers() {
    for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
        let mut resp = response(
            200,
            &[
                ("content-type", "text/plain; charset=utf-8"),
                ("content-length", &TEXT.len().to_string()),
                ("etag", "\"v1\""),
                ("accept-ranges", "bytes"),
                ("vary", "origin"),
                ("content-digest", "sha-256=:x:"),
            ],
            TEXT,
        );
        settings().apply(asked(Some(coding)), &mut resp);
        let h = resp.headers().clone();
        assert_eq!(h["content-encoding"], coding.name());
        assert!(!h.contains_key("content-length") && !h.contains_key("accept-ranges"));
        assert!(!h.contains_key("content-digest"));
        // RFC 9110 §8.8.3: other bytes, so a weak validator.
        assert_eq!(h["etag"], "W/\"v1\"");
        let vary: Vec<_> = h.get_all("vary").iter().collect();
        assert_eq!(vary, ["origin", "accept-encoding"]);
        let compressed = bytes(resp).await;
        assert!(compressed.len() < TEXT.len() / 2, "{coding:?}");
        assert_eq!(decode(coding, &compressed), TEXT, "{coding:?}");
    }
}

#[tokio::test]
async fn a_compressible_response_varies_even_when_sent_as_identity() {
    let mut resp = response(200, &[("content-type", "application/json")], TEXT);
    settings().apply(asked(None), &mut resp);
    assert_eq!(resp.headers()["vary"], "accept-encoding");
    assert!(!resp.headers().contains_key("content-encoding"));
    assert_eq!(bytes(resp).await, TEXT);
}

#[test]
fn what_is_never_compressed() {
    let s = settings();
    let left_alone = |status: u16, headers: &[(&str, &str)]| {
        let mut resp = response(status, headers, TEXT);
        s.apply(asked(Some(Coding::Gzip)), &mut resp);
        !resp.headers().contains_key("vary")
            && resp
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap())
                == headers
                    .iter()
                    .find(|(n, _)| *n == "content-encoding")
                    .map(|(_, v)| *v)
    };
    let text = ("content-type", "text/html");
    // Already encoded (RFC 9110 §8.4): not twice.
    assert!(left_alone(200, &[text, ("content-encoding", "br")]));
    // no-transform (RFC 9111 §5.2.2.6).
    assert!(left_alone(
        200,
        &[text, ("cache-control", "public, No-Transform")]
    ));
    // Ranges, no-content statuses.
    assert!(left_alone(206, &[text, ("content-range", "bytes 0-9/100")]));
    assert!(left_alone(200, &[text, ("content-range", "bytes 0-9/100")]));
    assert!(left_alone(204, &[text]));
    assert!(left_alone(304, &[text]));
    // Below the minimum size; unlisted types; event streams.
    assert!(left_alone(200, &[text, ("content-length", "100")]));
    assert!(left_alone(200, &[("content-type", "image/png")]));
    assert!(left_alone(200, &[]));
    assert!(left_alone(200, &[("content-type", "text/event-stream")]));
    assert!(left_alone(
        200,
        &[("content-type", "application/grpc+proto")]
    ));
    // Listed by wildcard and exactly, with parameters.
    assert!(!left_alone(200, &[("content-type", "text/css")]));
    assert!(!left_alone(
        200,
        &[("content-type", "Application/JSON; charset=utf-8")]
    ));
}

#[test]
fn head_requests_and_unaccepting_clients_get_identity() {
    let s = settings();
    let mut headers = HeaderMap::new();
    headers.insert("accept-encoding", HeaderValue::from_static("gzip"));
    assert!(s.asked(&Method::HEAD, &headers).0.is_none());
    let mut no_transform = headers.clone();
    no_transform.insert("cache-control", HeaderValue::from_static("no-transform"));
    assert!(s.asked(&Method::GET, &no_transform).0.is_none());
    assert_eq!(s.asked(&Method::GET, &headers).0, Some(Coding::Gzip));
}

/// A stream that pauses is flushed at the pause: what arrived so far
/// reaches the client without waiting for the encoder's window to fill.
#[tokio::test]
async fn a_paused_stream_is_flushed_at_the_pause() {
    use futures::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, BoxErr>>(1);
    let stream = tokio_stream_of(rx);
    let inner = http_body_mod::boxed(http_body_util::StreamBody::new(stream));
    let mut resp = Response::builder()
        .header("content-type", "text/plain")
        .body(inner)
        .unwrap();
    settings().apply(asked(Some(Coding::Gzip)), &mut resp);
    let mut body = resp.into_body().into_data_stream();
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(
        b"first event\n",
    ))))
    .await
    .unwrap();
    // The sender is still open: without the flush this would never come.
    let mut got = Vec::new();
    while !got.ends_with(&[0, 0, 0xff, 0xff]) {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), body.next())
            .await
            .expect("flushed without waiting for more input")
            .unwrap()
            .unwrap();
        got.extend_from_slice(&chunk);
    }
    drop(tx);
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(decode(Coding::Gzip, &got), b"first event\n");
}

type BoxErr = crate::http::body::BoxError;

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Trailers after a compressed body still reach the client, after the
/// encoder's last bytes.
#[tokio::test]
async fn trailers_follow_the_compressed_body() {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("42"));
    let frames = vec![
        Ok::<_, BoxErr>(http_body::Frame::data(Bytes::from_static(TEXT))),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    let inner = http_body_mod::boxed(http_body_util::StreamBody::new(futures::stream::iter(
        frames,
    )));
    let mut resp = Response::builder()
        .header("content-type", "text/plain")
        .body(inner)
        .unwrap();
    settings().apply(asked(Some(Coding::Zstd)), &mut resp);
    let collected = resp.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-checksum"], "42");
    assert_eq!(decode(Coding::Zstd, &collected.to_bytes()), TEXT);
}

#[test]
fn windows_just_cover_the_body() {
    assert_eq!(window_log(Some(0)), 10);
    assert_eq!(window_log(Some(1024)), 10);
    assert_eq!(window_log(Some(1025)), 11);
    assert_eq!(window_log(Some(12_867)), 14);
    assert_eq!(window_log(Some(1 << 30)), 20);
    assert_eq!(window_log(None), 20);
}

/// High levels round-trip with the sized windows too, and a body larger
/// than its stated size (a lying `Content-Length` upstream) still decodes.
#[tokio::test]
async fn high_levels_round_trip_with_sized_windows() {
    let s = Compression {
        brotli_level: 11,
        zstd_level: 19,
        gzip_level: 9,
        ..settings()
    };
    for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
        let mut resp = response(200, &[("content-type", "text/plain")], TEXT);
        s.apply(asked(Some(coding)), &mut resp);
        assert_eq!(decode(coding, &bytes(resp).await), TEXT, "{coding:?}");
    }
}
