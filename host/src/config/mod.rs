//! `weir.toml`: the gateway's configuration, parsed strictly (unknown keys
//! are errors) and validated up front, so a bad value is reported with the
//! file and key before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod clients;
mod compression;
mod discovery;
pub mod grants;
mod limits;
mod operations;
mod plugins;
pub mod reloading;
#[cfg(test)]
mod reloading_tests;
mod server;
#[cfg(test)]
mod tests;
mod tls;
mod upstream;

pub use clients::ListenerClients;
pub use compression::CompressionConfig;
pub use discovery::DiscoveryConfig;
pub use limits::{Budgets, Limits, RuntimeSettings};
use operations::validate_tracing;
pub use operations::{
    AdminConfig, LogFormat, LogSettings, MetricsConfig, OtlpProtocol, ReloadConfig, StateBackend,
    StateConfig, TracingConfig,
};
pub use plugins::{CanaryConfig, OnFailure, PluginPolicy, PluginRole, QuarantineConfig, Sticky};
pub use server::ServerSettings;
pub use tls::{
    AcmeChallenge, AcmeConfig, CertificateFiles, ClientAuth, TlsConfig, TlsVersion, UpstreamTls,
};
use upstream::validate_upstream;
pub use upstream::{
    BalanceConfig, HashOn, HealthConfig, PassiveConfig, Protocol, TargetSpec, UpstreamConfig,
    parse_target, parse_target_spec,
};

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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the proxy listens on. Restart-only: the sockets are bound
    /// at start.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Peers (CIDRs or addresses) whose `forwarded_header` is believed, on
    /// `listen` and on the TLS listener unless `[tls]` lists its own: the
    /// client is the first address not trusted, read from the right. None
    /// by default: the header is ignored and the peer is the client
    /// (`client_ip/`).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies list the chain in: `"x-forwarded-for"`
    /// (default) or `"forwarded"` (RFC 7239). Only that one is read.
    #[serde(default = "clients::default_forwarded_header")]
    pub forwarded_header: String,
    /// Every connection to `listen` starts with a PROXY protocol header (v1
    /// or v2) naming the client: for a TCP load balancer in front. A
    /// connection without one is closed.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Directory holding the plugins (`*.wasm` plus optional `*.json`),
    /// relative to the config file. Restart-only: the watcher watches the
    /// directory the gateway started with.
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
    /// The admin API. Restart-only: its listener, token and limits are
    /// set up at start.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Reloading on changes. Restart-only: the watcher is started once.
    #[serde(default)]
    pub reload: ReloadConfig,
    /// Where the `rate` and `kv` capabilities keep their state.
    /// Restart-only: limiter counts and kv entries live in the stores
    /// opened at start, and must outlive reloads.
    #[serde(default)]
    pub state: StateConfig,
    /// What each plugin may consume of shared resources.
    #[serde(default)]
    pub budgets: Budgets,
    /// Named upstreams that plugins route to and call.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// How targets named by DNS (`http://name:port`, `srv:…`) are resolved.
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// Per plugin (by file stem): capability grants, the routes and hosts
    /// it runs for, and its failure policy (`config/plugins.rs`).
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginPolicy>,
    /// An HTTPS listener; none when absent. Restart-only: the socket is
    /// bound at start (the certificate and key files themselves are
    /// reloaded when they change).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Response compression (`compression/`); off by default.
    #[serde(default)]
    pub compression: CompressionConfig,
    /// The gateway's own metrics (`/metrics` on the admin listener).
    /// Restart-only: the registry is made at start, so counters survive
    /// reloads.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// OpenTelemetry traces. Restart-only: the exporter starts with the
    /// process.
    #[serde(default)]
    pub tracing: TracingConfig,
    /// Directory of the config file; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file this was read from (for messages).
    #[serde(skip)]
    pub source: PathBuf,
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
        self.listener_clients()?;
        self.compression.validate()?;
        self.discovery.validate()?;
        for (name, policy) in &self.plugins {
            policy.validate(name)?;
            grants::Grants::from_policy(name, Some(policy), |u| self.upstreams.contains_key(u))?;
        }
        let positive = [
            (
                "limits.max_header_bytes",
                self.limits.max_header_bytes as u64,
            ),
            ("limits.max_body_bytes", self.limits.max_body_bytes),
            ("limits.hook_deadline_ms", self.limits.hook_deadline_ms),
            ("limits.wait_max_ms", self.limits.wait_max_ms),
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
            ("admin.max_connections", self.admin.max_connections as u64),
            (
                "admin.header_read_timeout_ms",
                self.admin.header_read_timeout_ms,
            ),
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
        validate_state(&self.state)?;
        for (name, upstream) in &self.upstreams {
            validate_upstream(name, upstream)?;
        }
        if let Some(tls) = &self.tls {
            tls.validate()?;
            if tls.listen == self.listen {
                return Err("`tls.listen` must differ from `listen`".into());
            }
        }
        Ok(())
    }

    /// This config, just read for a reload, with the values `started` (the
    /// config the gateway started with) has for every restart-only key
    /// ([`reloading::RULES`]); returns the keys whose new values were
    /// set aside. The result is validated again: a restart-only value put
    /// back may not fit with a new one (`runtime.pool_instances` under a
    /// raised `runtime.max_instances_per_plugin`).
    pub fn keep_restart_only(
        &mut self,
        started: &Config,
    ) -> Result<Vec<&'static str>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            file: self.source.clone(),
            message,
        };
        let as_value = |config: &Config| {
            serde_json::to_value(config).map_err(|e| format!("cannot compare configs: {e}"))
        };
        let started = as_value(started).map_err(invalid)?;
        let mut kept = as_value(self).map_err(invalid)?;
        let changed = reloading::keep_restart_only(&started, &mut kept);
        if changed.is_empty() {
            return Ok(changed);
        }
        let mut config: Config = serde_json::from_value(kept)
            .map_err(|e| invalid(format!("cannot keep the restart-only settings: {e}")))?;
        config.base_dir = std::mem::take(&mut self.base_dir);
        config.source = std::mem::take(&mut self.source);
        let checked = config.validate();
        *self = config;
        checked.map_err(|message| ConfigError::Invalid {
            file: self.source.clone(),
            message: format!("{message} (with the restart-only settings the gateway started with)"),
        })?;
        Ok(changed)
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

/// `[state]`: the keys its backend needs, and no keys of another backend.
fn validate_state(state: &StateConfig) -> Result<(), String> {
    match state.backend {
        StateBackend::Memory => return Ok(()),
        StateBackend::Redis => {
            match &state.url {
                None => return Err("`state.url` is required with `backend = \"redis\"`".into()),
                Some(url) if !url.starts_with("redis://") => {
                    return Err(format!(
                        "`state.url` `{}` must start with `redis://`",
                        crate::state::redacted(url)
                    ));
                }
                Some(_) => {}
            }
            if !state.nodes.is_empty() {
                return Err("`state.nodes` is for `backend = \"redis_cluster\"`; \
                     with `backend = \"redis\"` give one `state.url`"
                    .into());
            }
            if state.pool_size == 0 {
                return Err("`state.pool_size` must be greater than 0".into());
            }
        }
        StateBackend::RedisCluster => {
            if state.url.is_some() {
                return Err("`state.url` is for `backend = \"redis\"`; \
                     with `backend = \"redis_cluster\"` list the seed nodes in `state.nodes`"
                    .into());
            }
            if state.nodes.is_empty() {
                return Err("`state.nodes` must list at least one seed node \
                     with `backend = \"redis_cluster\"`"
                    .into());
            }
            for (i, url) in state.nodes.iter().enumerate() {
                let node = crate::state::redacted(url);
                if !url.starts_with("redis://") {
                    return Err(format!(
                        "`state.nodes[{i}]` `{node}` must start with `redis://`"
                    ));
                }
                let path = url.trim_start_matches("redis://").split_once('/');
                if path.is_some_and(|(_, db)| !db.is_empty() && db != "0") {
                    return Err(format!(
                        "`state.nodes[{i}]` `{node}` names a database: a Redis Cluster has only database 0"
                    ));
                }
                if let Err(e) = redis::Client::open(url.as_str()) {
                    return Err(format!(
                        "`state.nodes[{i}]` `{node}` is not a Redis URL: {e}"
                    ));
                }
            }
        }
    }
    if state.timeout_ms == 0 {
        return Err("`state.timeout_ms` must be greater than 0".into());
    }
    Ok(())
}
