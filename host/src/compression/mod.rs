//! Response compression, as host mechanism: gzip, brotli and zstd, chosen
//! by the client's `Accept-Encoding` (`negotiate.rs`), applied after every
//! plugin's `on-response` (plugins see plain bodies) and streamed
//! (`body.rs`), never buffering a whole body.
//!
//! A response is compressible when compression is on (`[compression]`),
//! its status carries content (not 1xx, 204, 206 or 304), it is not encoded
//! already (RFC 9110 §8.4), not a range, not marked `Cache-Control:
//! no-transform` (RFC 9111 §5.2.2.6), its media type is listed, and its
//! `Content-Length`, when known, is at least `min_bytes`. A compressible
//! response always gets `Vary: Accept-Encoding` (RFC 9110 §12.5.5), so a
//! cache keeps the encodings apart, whether or not this client takes one.
//! A compressed one loses `Content-Length` and `Accept-Ranges` (both were
//! about the identity bytes), and a strong `ETag` becomes weak: the bytes
//! differ from the identity representation's (RFC 9110 §8.8.3), and
//! `Content-Digest`/`Repr-Digest` (RFC 9530) go. A request that says
//! `Cache-Control: no-transform` (RFC 9111 §5.2.1.6), gRPC and server-sent
//! events are never compressed.

mod body;
pub mod negotiate;

use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, HeaderMap, HeaderValue, VARY,
};
use http::{Method, Response};

use crate::config::CompressionConfig;
use crate::http::body::{self as http_body_mod, Body};

/// A content coding the gateway can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `gzip` (RFC 9110 §8.4.1.3).
    Gzip,
    /// `br` (RFC 7932).
    Brotli,
    /// `zstd` (RFC 8878).
    Zstd,
}

impl Coding {
    /// The coding's name in `Content-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// Names a client may use for it (`x-gzip` is gzip, RFC 9110 §8.4.1.3).
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Coding::Gzip => &["gzip", "x-gzip"],
            Coding::Brotli => &["br"],
            Coding::Zstd => &["zstd"],
        }
    }

    /// Parse a `weir.toml` name.
    pub fn parse(text: &str) -> Option<Coding> {
        [Coding::Gzip, Coding::Brotli, Coding::Zstd]
            .into_iter()
            .find(|c| c.name() == text)
    }
}

/// What the gateway compresses, and how hard (from `[compression]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    /// The codings offered, the gateway's preference first.
    pub codings: Vec<Coding>,
    /// Smallest `Content-Length` compressed.
    pub min_bytes: u64,
    /// Media types compressed: `type/subtype`, or `type/*`.
    pub content_types: Vec<String>,
    /// gzip level, 1..=9.
    pub gzip_level: u32,
    /// brotli quality, 0..=11.
    pub brotli_level: u32,
    /// zstd level, 1..=19.
    pub zstd_level: i32,
}

/// What a request asked for: whether compression is on, and the coding
/// its `Accept-Encoding` chose (`None`: identity).
#[derive(Debug, Clone, Copy)]
pub struct Asked(Option<Coding>);

impl Compression {
    /// The settings `[compression]` gives, `None` when it is off.
    pub fn from_config(config: &CompressionConfig) -> Option<Compression> {
        config.enabled.then(|| Compression {
            codings: config
                .algorithms
                .iter()
                .filter_map(|a| Coding::parse(a))
                .collect(),
            min_bytes: config.min_bytes,
            content_types: config
                .content_types
                .iter()
                .map(|t| t.to_ascii_lowercase())
                .collect(),
            gzip_level: config.gzip_level,
            brotli_level: config.brotli_level,
            zstd_level: config.zstd_level,
        })
    }

    /// Read what a request accepts, before it is handed on. `HEAD` gets
    /// identity: it has no body to compress.
    pub fn asked(&self, method: &Method, headers: &HeaderMap) -> Asked {
        // A client's `no-transform` asks intermediaries to leave the
        // content alone (RFC 9111 §5.2.1.6).
        if method == Method::HEAD || no_transform(headers) {
            return Asked(None);
        }
        Asked(negotiate::choose(headers, &self.codings))
    }

    /// Compress `response` if it is compressible and the request asked for
    /// a coding; mark it `Vary: Accept-Encoding` if it is compressible.
    pub fn apply(&self, asked: Asked, response: &mut Response<Body>) {
        if !self.compressible(response) {
            return;
        }
        add_vary(response.headers_mut());
        let Some(coding) = asked.0 else { return };
        let headers = response.headers_mut();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.name()));
        headers.remove(CONTENT_LENGTH);
        headers.remove(ACCEPT_RANGES);
        // Digests of the identity bytes (RFC 9530) no longer hold.
        headers.remove("content-digest");
        headers.remove("repr-digest");
        weaken_etag(headers);
        let size = http_body::Body::size_hint(response.body()).exact();
        let inner = std::mem::replace(response.body_mut(), http_body_mod::empty());
        *response.body_mut() =
            http_body_mod::boxed(body::Compressed::new(inner, self.encoder(coding, size)));
    }

    fn compressible(&self, response: &Response<Body>) -> bool {
        let status = response.status().as_u16();
        if status < 200 || matches!(status, 204 | 206 | 304) {
            return false;
        }
        let headers = response.headers();
        let encoded = headers
            .get(CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        if encoded || no_transform(headers) || headers.contains_key(CONTENT_RANGE) {
            return false;
        }
        let length = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if length.is_some_and(|n| n < self.min_bytes)
            || http_body::Body::is_end_stream(response.body())
        {
            return false;
        }
        headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| self.listed(t))
    }

    /// Whether the media type of `content_type` is listed.
    fn listed(&self, content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        // Server-sent events are flushed event by event; compressing them
        // would hold events in the encoder. gRPC has its own message
        // compression (`grpc-encoding`), and its clients do not decode a
        // content coding.
        if essence == "text/event-stream" || essence.starts_with("application/grpc") {
            return false;
        }
        let top = essence.split('/').next().unwrap_or("");
        self.content_types
            .iter()
            .any(|listed| *listed == essence || listed.strip_suffix("/*").is_some_and(|t| t == top))
    }

    /// An encoder for a body of `size` bytes, when known. The window and
    /// match tables are sized to the body: brotli's and zstd's high levels
    /// otherwise set up (and zero) tens of megabytes per response, which
    /// made a 12 KB response cost 30 to 85 ms at brotli 11 and zstd 19.
    /// Unknown sizes (a stream) get a 1 MiB window.
    fn encoder(
        &self,
        coding: Coding,
        size: Option<u64>,
    ) -> Box<dyn compression_codecs::EncodeV2 + Send> {
        use compression_codecs::zstd::params::CParameter;
        use compression_core::Level;
        let log = window_log(size);
        match coding {
            Coding::Gzip => Box::new(compression_codecs::GzipEncoder::new(
                Level::Precise(self.gzip_level as i32).into(),
            )),
            Coding::Brotli => {
                let mut params = compression_codecs::brotli::params::EncoderParams::default()
                    .quality(Level::Precise(self.brotli_level as i32))
                    .window_size(log as i32);
                if let Some(size) = size {
                    params = params.size_hint(usize::try_from(size).unwrap_or(usize::MAX));
                }
                Box::new(compression_codecs::BrotliEncoder::new(params))
            }
            Coding::Zstd => Box::new(compression_codecs::ZstdEncoder::new_with_params(
                self.zstd_level,
                &[
                    CParameter::window_log(log.max(ZSTD_MIN_WINDOW_LOG)),
                    CParameter::hash_log((log + 1).min(ZSTD_MAX_TABLE_LOG)),
                    CParameter::chain_log((log + 1).min(ZSTD_MAX_TABLE_LOG)),
                ],
            )),
        }
    }
}

/// zstd's smallest window.
const ZSTD_MIN_WINDOW_LOG: u32 = 10;
/// zstd's match tables: at most 2^20 entries each.
const ZSTD_MAX_TABLE_LOG: u32 = 20;

/// log2 of the window for a body of `size` bytes: just covering it, from
/// 1 KiB (brotli's smallest window) to 1 MiB (also for unknown sizes).
fn window_log(size: Option<u64>) -> u32 {
    const MIN: u32 = 10;
    const MAX: u32 = 20;
    match size {
        None => MAX,
        Some(size) => (u64::BITS - size.max(1).saturating_sub(1).leading_zeros()).clamp(MIN, MAX),
    }
}

/// Whether `Cache-Control` says `no-transform`.
fn no_transform(headers: &HeaderMap) -> bool {
    headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
        })
    })
}

/// Add `Accept-Encoding` to `Vary` unless it is there (or `*`).
fn add_vary(headers: &mut HeaderMap) {
    let present = headers.get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|f| {
                let f = f.trim();
                f == "*" || f.eq_ignore_ascii_case("accept-encoding")
            })
        })
    });
    if !present {
        headers.append(VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// `"x"` → `W/"x"` (RFC 9110 §8.8.3).
fn weaken_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(ETAG) else {
        return;
    };
    if etag.as_bytes().starts_with(b"W/") {
        return;
    }
    let mut weak = b"W/".to_vec();
    weak.extend_from_slice(etag.as_bytes());
    if let Ok(value) = HeaderValue::from_bytes(&weak) {
        headers.insert(ETAG, value);
    }
}

#[cfg(test)]
mod tests;
