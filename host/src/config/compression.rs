//! `[compression]`: response compression by the gateway (`compression/`).

use serde::{Deserialize, Serialize};

/// `[compression]`. Off by default, as in nginx, Envoy and Traefik: an
/// operator turns it on knowing what it costs (docs/benchmarks.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    /// Compress responses whose client accepts it.
    #[serde(default)]
    pub enabled: bool,
    /// The codings offered, preferred first among equal client weights:
    /// `zstd`, `br`, `gzip`.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Responses with a smaller `Content-Length` are sent as they are.
    #[serde(default = "default_min_bytes")]
    pub min_bytes: u64,
    /// Media types compressed: `type/subtype` or `type/*`.
    #[serde(default = "default_content_types")]
    pub content_types: Vec<String>,
    /// gzip level, 1 (fastest) to 9 (smallest).
    #[serde(default = "default_gzip_level")]
    pub gzip_level: u32,
    /// brotli quality, 0 (fastest) to 11 (smallest).
    #[serde(default = "default_brotli_level")]
    pub brotli_level: u32,
    /// zstd level, 1 (fastest) to 19 (smallest).
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: false,
            algorithms: default_algorithms(),
            min_bytes: default_min_bytes(),
            content_types: default_content_types(),
            gzip_level: default_gzip_level(),
            brotli_level: default_brotli_level(),
            zstd_level: default_zstd_level(),
        }
    }
}

impl CompressionConfig {
    /// Check the names and ranges.
    pub fn validate(&self) -> Result<(), String> {
        if self.algorithms.is_empty() {
            return Err("`compression.algorithms` must name at least one of zstd, br, gzip".into());
        }
        for (i, a) in self.algorithms.iter().enumerate() {
            if !matches!(a.as_str(), "zstd" | "br" | "gzip") {
                return Err(format!(
                    "`compression.algorithms` {a:?}: use \"zstd\", \"br\" or \"gzip\""
                ));
            }
            if self.algorithms.iter().take(i).any(|b| b == a) {
                return Err(format!("`compression.algorithms` lists {a:?} twice"));
            }
        }
        for t in &self.content_types {
            let valid = t.split_once('/').is_some_and(|(a, b)| {
                !a.is_empty() && !b.is_empty() && !t.contains(';') && !t.contains(' ')
            });
            if !valid {
                return Err(format!(
                    "`compression.content_types` {t:?}: use `type/subtype` or `type/*`"
                ));
            }
        }
        let ranges = [
            ("gzip_level", i64::from(self.gzip_level), 1, 9),
            ("brotli_level", i64::from(self.brotli_level), 0, 11),
            ("zstd_level", i64::from(self.zstd_level), 1, 19),
        ];
        for (key, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return Err(format!(
                    "`compression.{key}` must be {low}..={high}, not {value}"
                ));
            }
        }
        Ok(())
    }
}

fn default_algorithms() -> Vec<String> {
    ["zstd", "br", "gzip"].map(String::from).to_vec()
}
fn default_min_bytes() -> u64 {
    1024
}
fn default_content_types() -> Vec<String> {
    [
        "text/*",
        "application/json",
        "application/problem+json",
        "application/javascript",
        "application/xml",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/wasm",
        "image/svg+xml",
    ]
    .map(String::from)
    .to_vec()
}
// nginx's default gzip level is 1, Caddy's 5; 5 keeps most of the ratio
// for two thirds of 9's CPU (docs/benchmarks.md has the figures).
fn default_gzip_level() -> u32 {
    5
}
// brotli's own default (11) costs ~23 ms per 12 KB response (docs/
// benchmarks.md): fine for assets compressed once, not for every proxied
// response.
fn default_brotli_level() -> u32 {
    4
}
fn default_zstd_level() -> i32 {
    3
}
