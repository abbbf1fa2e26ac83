//! How the gateway is run and watched: `[admin]`, `[reload]`, `[metrics]`,
//! `[tracing]`, `[state]` and `[log]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the admin API at all.
    pub enabled: bool,
    /// Its own listener; loopback by default.
    pub listen: SocketAddr,
    /// If set, `/metrics` and every `/admin/*` request need
    /// `Authorization: Bearer <token>`. Better kept out of the file:
    /// `token_file` or `token_env`.
    pub token: Option<String>,
    /// Read the token from this file (a mounted secret; surrounding
    /// whitespace trimmed), relative to the config file.
    pub token_file: Option<PathBuf>,
    /// Read the token from this environment variable.
    pub token_env: Option<String>,
    /// Serve a listener other hosts can reach without a token. Off, such a
    /// listener is refused at start: an open admin API lets anyone who
    /// reaches the port read the pipeline and force reloads.
    pub allow_public_without_token: bool,
    /// Most admin connections open at once. At the cap, the oldest idle
    /// one is closed to let a new one in.
    pub max_connections: usize,
    /// Time allowed for each admin request head; idle keep-alive
    /// connections are closed after it too.
    pub header_read_timeout_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
            token: None,
            token_file: None,
            token_env: None,
            allow_public_without_token: false,
            max_connections: 256,
            header_read_timeout_ms: 10_000,
        }
    }
}

impl AdminConfig {
    /// The token, from whichever of `token`, `token_file` and `token_env`
    /// is set (at most one may be). `base` resolves a relative file.
    pub fn resolve_token(&self, base: &Path) -> Result<Option<String>, String> {
        let sources = [
            self.token.is_some(),
            self.token_file.is_some(),
            self.token_env.is_some(),
        ];
        if sources.iter().filter(|set| **set).count() > 1 {
            return Err(
                "[admin]: set only one of `token`, `token_file` and `token_env`".to_string(),
            );
        }
        let token = if let Some(token) = &self.token {
            token.clone()
        } else if let Some(file) = &self.token_file {
            let path = base.join(file);
            std::fs::read_to_string(&path)
                .map_err(|e| format!("[admin] token_file {}: {e}", path.display()))?
                .trim()
                .to_string()
        } else if let Some(var) = &self.token_env {
            std::env::var(var).map_err(|_| {
                format!("[admin] token_env: the environment variable {var} is not set")
            })?
        } else {
            return Ok(None);
        };
        if token.is_empty() {
            return Err("[admin]: the admin token is empty".to_string());
        }
        Ok(Some(token))
    }

    /// Refuse an admin listener other hosts can reach with nothing
    /// guarding it, unless `allow_public_without_token` says so.
    pub fn check_exposure(&self, token: Option<&str>) -> Result<(), String> {
        if !self.enabled
            || token.is_some()
            || self.listen.ip().is_loopback()
            || self.allow_public_without_token
        {
            return Ok(());
        }
        Err(format!(
            "[admin] listen = \"{}\" is reachable from other hosts and no admin token is set: \
             set [admin] token_file, token_env or token (then /metrics and /admin/* need \
             `Authorization: Bearer <token>`), listen on loopback, or set \
             [admin] allow_public_without_token = true to serve it open",
            self.listen
        ))
    }
}

/// `[reload]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Watch the plugin directory and this file, and reload on changes.
    pub watch: bool,
    /// Quiet time after the last change before reloading, so a file being
    /// copied or an editor's save-and-rename is taken as one change.
    pub debounce_ms: u64,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: true,
            debounce_ms: 250,
        }
    }
}

/// `[metrics]`. Fixed at start.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Count requests, upstream calls, hooks and reloads. Off, nothing is
    /// recorded and `/metrics` answers 404 (plugin metrics included).
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true }
    }
}

/// How spans are exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum OtlpProtocol {
    /// OTLP over HTTP with protobuf bodies (`/v1/traces`), port 4318.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP over gRPC, port 4317.
    #[serde(rename = "grpc")]
    Grpc,
}

/// `[tracing]`: OpenTelemetry traces, off unless `otlp_endpoint` is set.
/// Fixed at start.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// Where spans go, e.g. `http://127.0.0.1:4318` (HTTP) or
    /// `http://127.0.0.1:4317` (gRPC). None: tracing is off.
    pub otlp_endpoint: Option<String>,
    /// The OTLP transport.
    pub protocol: OtlpProtocol,
    /// Share of new traces recorded, 0.0 to 1.0. A request that arrives
    /// with a sampled `traceparent` is recorded whatever the ratio (the
    /// caller's decision is kept, as the W3C and OpenTelemetry specify).
    pub sample_ratio: f64,
    /// `service.name` of the spans.
    pub service_name: String,
    /// More resource attributes, e.g. `{ "deployment.environment" = "prod" }`.
    pub resource: BTreeMap<String, String>,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            otlp_endpoint: None,
            protocol: OtlpProtocol::HttpProtobuf,
            sample_ratio: 1.0,
            service_name: "weir".to_string(),
            resource: BTreeMap::new(),
        }
    }
}

/// `[state]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `memory` (this process only), `redis` (one Redis shared by
    /// gateways) or `redis_cluster` (a Redis Cluster shared by gateways).
    pub backend: StateBackend,
    /// For `redis`: `redis://host:port[/db]`.
    pub url: Option<String>,
    /// For `redis_cluster`: seed nodes (`redis://host:port`), at least one;
    /// the rest of the cluster is discovered from them.
    pub nodes: Vec<String>,
    /// For `redis` and `redis_cluster`: limit on one call (retries and
    /// redirections included).
    pub timeout_ms: u64,
    /// For `redis`: connections kept open. `redis_cluster` ignores it (one
    /// multiplexed connection per node).
    pub pool_size: usize,
    /// For `redis` and `redis_cluster`: what rate limits do while the store
    /// is unreachable.
    pub on_error: crate::state::FailPolicy,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: StateBackend::Memory,
            url: None,
            nodes: Vec::new(),
            timeout_ms: 100,
            pool_size: 4,
            on_error: crate::state::FailPolicy::FailOpen,
        }
    }
}

/// `[state] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateBackend {
    /// In this process.
    Memory,
    /// In one Redis.
    Redis,
    /// In a Redis Cluster.
    RedisCluster,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` or `json`. Restart-only: the log writer is set up at start.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `weir=debug`; `WEIR_LOG`
    /// overrides it. Restart-only: the log filter is set up at start.
    pub level: String,
    /// One line per request on target `weir::access`.
    pub access_log: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".to_string(),
            access_log: true,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

pub(super) fn validate_tracing(tracing: &TracingConfig) -> Result<(), String> {
    if !(0.0..=1.0).contains(&tracing.sample_ratio) {
        return Err(format!(
            "`tracing.sample_ratio` must be between 0.0 and 1.0, not {}",
            tracing.sample_ratio
        ));
    }
    if let Some(endpoint) = &tracing.otlp_endpoint {
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| format!("`tracing.otlp_endpoint` `{endpoint}` is not a URL: {e}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(format!(
                "`tracing.otlp_endpoint` `{endpoint}` must be an http:// or https:// URL"
            ));
        }
    }
    if tracing.service_name.is_empty() {
        return Err("`tracing.service_name` must not be empty".into());
    }
    Ok(())
}
