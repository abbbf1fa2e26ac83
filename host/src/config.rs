//! `weir.toml`: the gateway's configuration, parsed strictly (unknown keys
//! are errors) and validated up front, so a bad value is reported with the
//! file and key before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration could not be used. The message names the file and
/// the key or line at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a bad value.
    #[error("{}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// What is wrong and where.
        message: String,
    },
}

/// The whole `weir.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the proxy listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory holding the plugins (`*.wasm` plus optional `*.json`),
    /// relative to the config file.
    #[serde(default = "default_plugins_dir")]
    pub plugins_dir: PathBuf,
    /// Where compiled plugins are cached, relative to the config file.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: PathBuf,
    /// Size and time limits.
    #[serde(default)]
    pub limits: Limits,
    /// Plugin instance pooling.
    #[serde(default)]
    pub runtime: RuntimeSettings,
    /// Logging.
    #[serde(default)]
    pub log: LogSettings,
    /// How long in-flight requests may run on after SIGTERM/SIGINT.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// The admin API.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Reloading on changes.
    #[serde(default)]
    pub reload: ReloadConfig,
    /// Where the `rate` and `kv` capabilities keep their state.
    #[serde(default)]
    pub state: StateConfig,
    /// What each plugin may consume of shared resources.
    #[serde(default)]
    pub budgets: Budgets,
    /// Named upstreams that plugins route to and call.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Per plugin (by file stem): capability grants, the routes and hosts
    /// it runs for, and its failure policy (`governance/policy.rs`).
    #[serde(default)]
    pub plugins: BTreeMap<String, crate::governance::PluginPolicy>,
    /// An HTTPS listener; none when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The gateway's own metrics (`/metrics` on the admin listener).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// OpenTelemetry traces.
    #[serde(default)]
    pub tracing: TracingConfig,
    /// Directory of the config file; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file this was read from (for messages).
    #[serde(skip)]
    pub source: PathBuf,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest total size of a request's header block; larger → 431. Plugin
    /// edits and replies are held to it too.
    pub max_header_bytes: usize,
    /// Most header fields in a request (more → 431), and in what a plugin
    /// builds or edits.
    pub max_header_count: usize,
    /// A client that sends no part of its request body for this long gets
    /// 408 (slow-POST protection).
    pub client_body_idle_timeout_ms: u64,
    /// A client has this long to send a complete request head (slowloris
    /// protection); idle keep-alive connections are closed after it too.
    pub header_read_timeout_ms: u64,
    /// Most client connections open at once; further ones wait in the
    /// listen backlog until one closes.
    pub max_connections: usize,
    /// Largest body the gateway buffers for a plugin (`body()`) or for an
    /// outbound call's response. Bodies no plugin reads stream unbounded.
    pub max_body_bytes: u64,
    /// Wall-clock limit of one hook call, including the host calls it makes.
    pub hook_deadline_ms: u64,
    /// Linear-memory cap of one plugin instance, in MiB.
    pub plugin_memory_mb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_header_count: 100,
            client_body_idle_timeout_ms: 30_000,
            header_read_timeout_ms: 30_000,
            max_connections: 10_000,
            max_body_bytes: 10 * 1024 * 1024,
            hook_deadline_ms: 1_000,
            plugin_memory_mb: 128,
        }
    }
}

impl Limits {
    /// The header limits requests, plugin edits and replies are held to.
    pub fn header_limits(&self) -> crate::http::headers::HeaderLimits {
        crate::http::headers::HeaderLimits {
            max_bytes: self.max_header_bytes,
            max_count: self.max_header_count,
        }
    }

    /// The memory cap in bytes.
    pub fn plugin_memory_bytes(&self) -> u64 {
        self.plugin_memory_mb * 1024 * 1024
    }
}

/// `[budgets]`: what one plugin may consume of resources every plugin
/// shares, so a misbehaving one costs its own requests and nothing else.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budgets {
    /// `outbound` calls one hook call may make (`send` and `send-all`
    /// together); further calls fail with `budget-exceeded`.
    pub outbound_calls_per_hook: u32,
    /// Calls of one `send-all` running at once; the rest wait their turn.
    pub outbound_in_flight_per_call: u32,
    /// `outbound` calls in flight for one plugin across all its instances;
    /// further calls fail at once with `budget-exceeded`.
    pub outbound_in_flight_per_plugin: u32,
    /// Requests in flight to one upstream target (for HTTP/1.1, connections
    /// in use), client and plugin requests together; further requests wait
    /// up to the upstream's `connect_timeout_ms`, then get 503.
    pub upstream_connections_per_target: u32,
    /// Live `kv` keys one plugin may hold.
    pub kv_max_keys: u64,
    /// Bytes (keys and values) one plugin may hold in `kv`.
    pub kv_max_bytes: u64,
    /// Largest single `kv` value.
    pub kv_max_value_bytes: u64,
    /// Log lines (the `log` capability, stdout and stderr together) one
    /// plugin may write per second; the excess is dropped and counted.
    pub log_lines_per_second: u32,
    /// Log bytes one plugin may write per second.
    pub log_bytes_per_second: u32,
    /// Metrics one plugin may define.
    pub metrics_per_plugin: u32,
    /// Distinct label sets per plugin metric; further ones fold into `other`.
    pub metric_series_per_metric: u32,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            outbound_calls_per_hook: 64,
            outbound_in_flight_per_call: 16,
            outbound_in_flight_per_plugin: 256,
            upstream_connections_per_target: 512,
            kv_max_keys: 100_000,
            kv_max_bytes: 16 * 1024 * 1024,
            kv_max_value_bytes: 1024 * 1024,
            log_lines_per_second: 200,
            log_bytes_per_second: 64 * 1024,
            metrics_per_plugin: 64,
            metric_series_per_metric: 200,
        }
    }
}

/// `[tls]`: terminating TLS for clients.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Where the HTTPS listener listens.
    pub listen: SocketAddr,
    /// Certificates with their keys (PEM), chosen by the name the client
    /// asks for (SNI) among each certificate's DNS names, exact or
    /// wildcard. Reloaded when the files change.
    pub certificates: Vec<CertificateFiles>,
    /// Lowest protocol version accepted: `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Refuse a client that names a host no certificate covers (default);
    /// with `false`, it gets the first certificate.
    #[serde(default = "default_true")]
    pub strict_sni: bool,
    /// CA bundle (PEM) client certificates are verified against: mutual
    /// TLS. None: clients present no certificate.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: `"required"` (default) or `"optional"`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Answer every request on the plain `listen` with 308 to HTTPS.
    #[serde(default)]
    pub redirect_http: bool,
}

/// One certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// The chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `min_version`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    V1_3,
}

/// `client_auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No certificate, no connection.
    #[default]
    Required,
    /// A certificate is verified if presented; requests without one go on.
    Optional,
}

/// `[upstreams.NAME.tls]`: how `https://` targets are reached.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Trust these CAs (PEM) as well as the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file`, not the system roots.
    #[serde(default)]
    pub ca_only: bool,
    /// The name sent (SNI) and checked in the certificate; by default the
    /// target's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// A client certificate (PEM) for mutual TLS, with `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Its key (PEM).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Verify the upstream's certificate (default). `false` is for tests
    /// and labs only, and is warned about at every load.
    #[serde(default = "default_true")]
    pub verify: bool,
}

fn default_true() -> bool {
    true
}

/// `[runtime]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// Most instances of one plugin alive at once; a hook waits (up to its
    /// deadline) for a free one beyond that.
    pub max_instances_per_plugin: u32,
    /// An instance is discarded and replaced after this many hook calls (a
    /// request makes up to two per plugin); 1 gives a fresh instance for
    /// every call.
    pub max_calls_per_instance: u64,
    /// Size of the engine's instance pool (all plugins, old and new pipelines
    /// during a reload). Fixed at start.
    pub pool_instances: u32,
    /// Threads serving requests, each with its own event loop and upstream
    /// connections; 0 (the default) is one per core.
    pub worker_threads: usize,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            max_instances_per_plugin: 32,
            max_calls_per_instance: 10_000,
            pool_instances: 512,
            worker_threads: 0,
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `memory` (this process only) or `redis` (shared by gateways).
    pub backend: StateBackend,
    /// For `redis`: `redis://host:port[/db]`.
    pub url: Option<String>,
    /// For `redis`: limit on one call.
    pub timeout_ms: u64,
    /// For `redis`: connections kept open.
    pub pool_size: usize,
    /// For `redis`: what rate limits do while Redis is unreachable.
    pub on_error: crate::state::FailPolicy,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: StateBackend::Memory,
            url: None,
            timeout_ms: 100,
            pool_size: 4,
            on_error: crate::state::FailPolicy::FailOpen,
        }
    }
}

/// `[state] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    /// In this process.
    Memory,
    /// In Redis.
    Redis,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `weir=debug`; `WEIR_LOG` overrides it.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[upstreams.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URLs of the targets, e.g. `http://127.0.0.1:5001`.
    pub targets: Vec<String>,
    /// How a target is chosen.
    #[serde(default)]
    pub balance: BalanceConfig,
    /// The key of `consistent_hash`: `client_ip` or `header:NAME`.
    #[serde(default)]
    pub hash_on: HashOn,
    /// `http1` (default) or `h2c` (HTTP/2 with prior knowledge).
    #[serde(default)]
    pub protocol: Protocol,
    /// Limit on establishing a connection.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Limit on receiving the response head after sending the request.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Extra attempts for idempotent requests after a connection failure or
    /// a 502/503 answer, each on another target when there is one.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Active health checks; none when absent.
    #[serde(default)]
    pub health: Option<HealthConfig>,
    /// Passive ejection on connection failures.
    #[serde(default)]
    pub passive: PassiveConfig,
    /// Requests in flight to one target of this upstream; by default
    /// `budgets.upstream_connections_per_target`.
    #[serde(default)]
    pub max_connections_per_target: Option<u32>,
    /// TLS to `https://` targets.
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// Idle time after which a WebSocket tunnel through this upstream is
    /// closed.
    #[serde(default = "default_tunnel_idle_ms")]
    pub tunnel_idle_timeout_ms: u64,
}

fn default_tunnel_idle_ms() -> u64 {
    60_000
}

/// `balance`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceConfig {
    /// Each target in turn.
    #[default]
    RoundRobin,
    /// The target with the fewest requests in flight.
    LeastRequests,
    /// A hash of `hash_on`, stable while the targets are.
    ConsistentHash,
}

/// `hash_on`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum HashOn {
    /// The client's IP address.
    #[default]
    ClientIp,
    /// A request header's value (requests without it are spread round robin).
    Header(String),
}

impl TryFrom<String> for HashOn {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if value == "client_ip" {
            return Ok(HashOn::ClientIp);
        }
        match value.strip_prefix("header:") {
            Some(name) if http::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                Ok(HashOn::Header(name.to_ascii_lowercase()))
            }
            _ => Err(format!("`{value}` is not `client_ip` or `header:NAME`")),
        }
    }
}

/// `protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 over cleartext, prior knowledge.
    H2c,
}

/// `[upstreams.NAME.health]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Path probed with GET; 2xx and 3xx are healthy.
    pub path: String,
    /// Time between rounds of probes.
    #[serde(default = "default_health_interval_ms")]
    pub interval_ms: u64,
    /// Limit on one probe.
    #[serde(default = "default_health_timeout_ms")]
    pub timeout_ms: u64,
    /// Failed probes in a row that take a target out.
    #[serde(default = "default_threshold")]
    pub unhealthy_after: u32,
    /// Passed probes in a row that bring it back.
    #[serde(default = "default_threshold")]
    pub healthy_after: u32,
}

/// `[upstreams.NAME.passive]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveConfig {
    /// Connection failures in a row that eject a target; 0 disables.
    pub failures: u32,
    /// How long an ejected target stays out.
    pub eject_ms: u64,
}

impl Default for PassiveConfig {
    fn default() -> Self {
        PassiveConfig {
            failures: 3,
            eject_ms: 10_000,
        }
    }
}

fn default_drain_timeout_ms() -> u64 {
    30_000
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_plugins_dir() -> PathBuf {
    PathBuf::from("plugins")
}
fn default_cache_dir() -> PathBuf {
    PathBuf::from(".weir-cache")
}
fn default_connect_timeout_ms() -> u64 {
    1_000
}
fn default_request_timeout_ms() -> u64 {
    15_000
}
fn default_retries() -> u32 {
    1
}
fn default_health_interval_ms() -> u64 {
    2_000
}
fn default_health_timeout_ms() -> u64 {
    1_000
}
fn default_threshold() -> u32 {
    2
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::parse(&text, path, &base_dir)
    }

    /// Parse and validate `text`, which came from `source`; relative paths
    /// are resolved against `base_dir`.
    pub fn parse(text: &str, source: &Path, base_dir: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            file: source.to_path_buf(),
            message,
        };
        let mut config: Config = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        config.base_dir = base_dir.to_path_buf();
        config.source = source.to_path_buf();
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    /// Check values serde cannot: ranges and URLs.
    fn validate(&self) -> Result<(), String> {
        validate_tracing(&self.tracing)?;
        for (name, policy) in &self.plugins {
            policy.validate(name)?;
            crate::governance::grants::Grants::from_policy(name, Some(policy), |u| {
                self.upstreams.contains_key(u)
            })?;
        }
        let positive = [
            (
                "limits.max_header_bytes",
                self.limits.max_header_bytes as u64,
            ),
            ("limits.max_body_bytes", self.limits.max_body_bytes),
            ("limits.hook_deadline_ms", self.limits.hook_deadline_ms),
            ("limits.plugin_memory_mb", self.limits.plugin_memory_mb),
            (
                "limits.max_header_count",
                self.limits.max_header_count as u64,
            ),
            (
                "limits.client_body_idle_timeout_ms",
                self.limits.client_body_idle_timeout_ms,
            ),
            (
                "limits.header_read_timeout_ms",
                self.limits.header_read_timeout_ms,
            ),
            ("limits.max_connections", self.limits.max_connections as u64),
            (
                "budgets.outbound_calls_per_hook",
                u64::from(self.budgets.outbound_calls_per_hook),
            ),
            (
                "budgets.outbound_in_flight_per_call",
                u64::from(self.budgets.outbound_in_flight_per_call),
            ),
            (
                "budgets.outbound_in_flight_per_plugin",
                u64::from(self.budgets.outbound_in_flight_per_plugin),
            ),
            (
                "budgets.upstream_connections_per_target",
                u64::from(self.budgets.upstream_connections_per_target),
            ),
            ("budgets.kv_max_keys", self.budgets.kv_max_keys),
            ("budgets.kv_max_bytes", self.budgets.kv_max_bytes),
            (
                "budgets.kv_max_value_bytes",
                self.budgets.kv_max_value_bytes,
            ),
            (
                "budgets.log_lines_per_second",
                u64::from(self.budgets.log_lines_per_second),
            ),
            (
                "budgets.log_bytes_per_second",
                u64::from(self.budgets.log_bytes_per_second),
            ),
            (
                "budgets.metrics_per_plugin",
                u64::from(self.budgets.metrics_per_plugin),
            ),
            (
                "budgets.metric_series_per_metric",
                u64::from(self.budgets.metric_series_per_metric),
            ),
            (
                "runtime.max_instances_per_plugin",
                u64::from(self.runtime.max_instances_per_plugin),
            ),
            (
                "runtime.max_calls_per_instance",
                self.runtime.max_calls_per_instance,
            ),
            (
                "runtime.pool_instances",
                u64::from(self.runtime.pool_instances),
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("`{key}` must be greater than 0"));
            }
        }
        if self.limits.plugin_memory_mb > 4096 {
            return Err("`limits.plugin_memory_mb` must be at most 4096".into());
        }
        if self.admin.token.as_deref().is_some_and(str::is_empty) {
            return Err("`admin.token` must not be empty (leave it out for no token)".into());
        }
        if self.reload.debounce_ms == 0 {
            return Err("`reload.debounce_ms` must be greater than 0".into());
        }
        if self.runtime.pool_instances < self.runtime.max_instances_per_plugin {
            return Err(
                "`runtime.pool_instances` must be at least `runtime.max_instances_per_plugin`"
                    .into(),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(format!("`log.level`: {e}"));
        }
        if self.state.backend == StateBackend::Redis {
            match &self.state.url {
                None => return Err("`state.url` is required with `backend = \"redis\"`".into()),
                Some(url) if !url.starts_with("redis://") => {
                    return Err(format!("`state.url` `{url}` must start with `redis://`"));
                }
                Some(_) => {}
            }
            if self.state.timeout_ms == 0 || self.state.pool_size == 0 {
                return Err(
                    "`state.timeout_ms` and `state.pool_size` must be greater than 0".into(),
                );
            }
        }
        for (name, upstream) in &self.upstreams {
            validate_upstream(name, upstream)?;
        }
        if let Some(tls) = &self.tls {
            if tls.certificates.is_empty() {
                return Err("`tls.certificates` must list at least one certificate".into());
            }
            if tls.listen == self.listen {
                return Err("`tls.listen` must differ from `listen`".into());
            }
        }
        Ok(())
    }

    /// A path from the config, resolved against its directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// The plugin directory, resolved.
    pub fn plugins_dir(&self) -> PathBuf {
        self.base_dir.join(&self.plugins_dir)
    }

    /// The compiled-plugin cache directory, resolved.
    pub fn cache_dir(&self) -> PathBuf {
        self.base_dir.join(&self.cache_dir)
    }
}

fn validate_tracing(tracing: &TracingConfig) -> Result<(), String> {
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

fn validate_upstream(name: &str, upstream: &UpstreamConfig) -> Result<(), String> {
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !valid_name {
        return Err(format!(
            "upstream name `{name}` may only hold letters, digits, `-`, `_` and `.`"
        ));
    }
    if upstream.targets.is_empty() {
        return Err(format!(
            "`upstreams.{name}.targets` must list at least one target"
        ));
    }
    for (i, target) in upstream.targets.iter().enumerate() {
        parse_target(target)
            .map_err(|why| format!("`upstreams.{name}.targets[{i}]` = `{target}`: {why}"))?;
    }
    if upstream
        .tls
        .as_ref()
        .is_some_and(|t| t.client_cert.is_some() != t.client_key.is_some())
    {
        return Err(format!(
            "`upstreams.{name}.tls` needs both `client_cert` and `client_key`, or neither"
        ));
    }
    if upstream.connect_timeout_ms == 0 || upstream.request_timeout_ms == 0 {
        return Err(format!(
            "`upstreams.{name}` timeouts must be greater than 0"
        ));
    }
    if let Some(health) = &upstream.health {
        if !health.path.starts_with('/') || health.path.parse::<http::uri::PathAndQuery>().is_err()
        {
            return Err(format!(
                "`upstreams.{name}.health.path` must be a path starting with `/`"
            ));
        }
        let values = [
            health.interval_ms,
            health.timeout_ms,
            u64::from(health.unhealthy_after),
            u64::from(health.healthy_after),
        ];
        if values.contains(&0) {
            return Err(format!(
                "`upstreams.{name}.health` values must be greater than 0"
            ));
        }
    }
    Ok(())
}

/// Parse a target base URL: `http://host:port` or `https://host:port`,
/// with no path beyond `/`. Returns whether it is HTTPS, and the authority.
pub fn parse_target(target: &str) -> Result<(bool, http::uri::Authority), String> {
    let uri: http::Uri = target.parse().map_err(|e| format!("not a URL ({e})"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(format!(
                "scheme `{other}` is not supported (use http:// or https://)"
            ));
        }
        None => return Err("missing scheme (use http://host:port)".into()),
    };
    let authority = uri.authority().cloned().ok_or("missing host")?;
    if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
        return Err("a target is a base URL without a path or query".into());
    }
    Ok((https, authority))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("weir.toml"), Path::new("/etc/weir"))
    }

    #[test]
    fn a_public_admin_listener_needs_a_token_or_an_explicit_opt_out() {
        let public = parse("[admin]\nlisten = \"0.0.0.0:9901\"").unwrap().admin;
        let refused = public.check_exposure(None).unwrap_err();
        assert!(
            refused.contains("[admin] listen") && refused.contains("token"),
            "{refused}"
        );
        assert!(public.check_exposure(Some("secret")).is_ok());
        let opted_out =
            parse("[admin]\nlisten = \"0.0.0.0:9901\"\nallow_public_without_token = true")
                .unwrap()
                .admin;
        assert!(opted_out.check_exposure(None).is_ok());
        let loopback = parse("[admin]\nlisten = \"[::1]:9901\"").unwrap().admin;
        assert!(loopback.check_exposure(None).is_ok());
        let off = parse("[admin]\nenabled = false\nlisten = \"0.0.0.0:9901\"")
            .unwrap()
            .admin;
        assert!(off.check_exposure(None).is_ok());
    }

    #[test]
    fn the_admin_token_comes_from_one_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        let from_file = parse("[admin]\ntoken_file = \"token\"").unwrap().admin;
        assert_eq!(
            from_file.resolve_token(dir.path()).unwrap().as_deref(),
            Some("s3cret")
        );
        let missing = parse("[admin]\ntoken_env = \"WEIR_TEST_NO_SUCH_VARIABLE\"")
            .unwrap()
            .admin;
        assert!(
            missing
                .resolve_token(dir.path())
                .unwrap_err()
                .contains("WEIR_TEST_NO_SUCH_VARIABLE")
        );
        let both = parse("[admin]\ntoken = \"a\"\ntoken_file = \"token\"")
            .unwrap()
            .admin;
        assert!(
            both.resolve_token(dir.path())
                .unwrap_err()
                .contains("only one")
        );
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let empty = parse("[admin]\ntoken_file = \"empty\"").unwrap().admin;
        assert!(
            empty
                .resolve_token(dir.path())
                .unwrap_err()
                .contains("empty")
        );
        assert_eq!(
            parse("").unwrap().admin.resolve_token(dir.path()).unwrap(),
            None
        );
    }

    #[test]
    fn defaults_apply_to_an_empty_file() {
        let c = parse("").unwrap();
        assert_eq!(c.listen, default_listen());
        assert_eq!(c.plugins_dir(), PathBuf::from("/etc/weir/plugins"));
        assert_eq!(c.limits.hook_deadline_ms, 1_000);
        assert!(c.upstreams.is_empty());
    }

    #[test]
    fn unknown_keys_name_the_key_and_file() {
        let err = parse("listen = \"127.0.0.1:0\"\nlisten_port = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("weir.toml:"), "{err}");
        assert!(err.contains("listen_port"), "{err}");
        let err = parse("[upstreams.a]\ntargets = [\"http://127.0.0.1:1\"]\nretry = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("retry"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = parse("[limits]\nhook_deadline_ms = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.hook_deadline_ms"), "{err}");
        let err = parse("[upstreams.users]\ntargets = [\"ftp://x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("upstreams.users.targets[0]"), "{err}");
        let err = parse("[upstreams.users]\ntargets = []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("upstreams.users.targets"), "{err}");
        let err = parse("listen = \"nowhere\"\n").unwrap_err().to_string();
        assert!(err.contains("listen"), "{err}");
        let err = parse("[log]\nformat = \"xml\"\n").unwrap_err().to_string();
        assert!(err.contains("xml"), "{err}");
    }

    proptest::proptest! {
        /// Whatever the file holds, parsing answers Ok or an error naming
        /// the file; it never panics.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            if let Err(e) = parse(&text) {
                proptest::prop_assert!(e.to_string().starts_with("weir.toml"));
            }
        }

        /// Known keys with arbitrary values: still no panic, and a value out
        /// of range is reported by its key.
        #[test]
        fn arbitrary_values_for_known_keys_never_panic(
            section in proptest::sample::select(vec!["limits", "budgets", "runtime", "state", "admin", "reload", "log"]),
            key in proptest::sample::select(vec![
                "max_header_bytes", "max_header_count", "hook_deadline_ms", "plugin_memory_mb",
                "kv_max_keys", "outbound_calls_per_hook", "log_lines_per_second",
                "max_instances_per_plugin", "pool_instances", "backend", "url", "listen",
                "token", "debounce_ms", "level", "format",
            ]),
            value in proptest::prop_oneof![
                proptest::num::i64::ANY.prop_map(|v| v.to_string()),
                "\\PC{0,20}".prop_map(|v| format!("{v:?}")),
                proptest::bool::ANY.prop_map(|v| v.to_string()),
            ],
        ) {
            let text = format!("[{section}]\n{key} = {value}\n");
            let _ = parse(&text);
        }

        /// Upstream targets of any shape are checked, never trusted.
        #[test]
        fn arbitrary_targets_never_panic(target in "\\PC{0,40}") {
            let _ = parse_target(&target);
            let _ = parse(&format!("[upstreams.u]\ntargets = [{target:?}]\n"));
        }
    }

    #[test]
    fn targets_must_be_base_urls() {
        assert!(parse_target("http://127.0.0.1:5001").is_ok());
        assert!(parse_target("http://127.0.0.1:5001/").is_ok());
        assert!(parse_target("http://127.0.0.1:5001/api").is_err());
        assert!(parse_target("127.0.0.1:5001").is_err());
        assert!(parse_target("https://example.com").unwrap().0);
        assert!(parse_target("ftp://example.com").is_err());
    }
}
