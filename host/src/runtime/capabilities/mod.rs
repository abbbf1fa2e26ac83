//! The host capabilities plugins import, one file each: `log`, `kv`,
//! `rate`, `crypto`, `metrics`, `outbound`. Each is a thin adapter from the
//! WIT types to the host's mechanism, held to the plugin's grants and
//! budgets. [`Capabilities`] is what they draw on for one pipeline; the
//! pipeline and the plugin test kit build it the same way
//! ([`Capabilities::new`]), so a capability added here reaches both.
//!
//! Adding a capability: see "Adding a capability" in docs/architecture.md.

mod crypto;
mod kv;
mod log;
mod metrics;
pub(crate) mod outbound;
mod rate;

use std::sync::Arc;

use super::bindings::weir::plugin::outbound as wit_outbound;
use crate::config::{Budgets, Limits};
use crate::governance::grants::GrantTable;
use crate::http::headers::HeaderLimits;
use crate::state::{KvQuota, KvStore, MemoryKvStore, MemoryRateStore, RateStore};
use crate::telemetry::host_metrics::HostMetrics;
use crate::telemetry::plugin_metrics::PluginMetrics;

/// Where `outbound` calls go: the pipeline's upstreams, or stubs in the
/// plugin test kit.
#[async_trait::async_trait]
pub trait OutboundCalls: Send + Sync + 'static {
    /// Whether `name` is an upstream (`set-upstream` accepts only those).
    fn knows(&self, name: &str) -> bool;

    /// Make one call; the response body is read up to `max_body` bytes.
    async fn call(
        &self,
        call: wit_outbound::Call,
        max_body: u64,
    ) -> Result<wit_outbound::CallResponse, wit_outbound::CallError>;
}

/// A log line a plugin wrote, kept when the host is asked to (test kit).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    /// `trace` .. `error`.
    pub level: String,
    /// The message.
    pub message: String,
}

/// What the host offers plugins of one pipeline.
pub struct Capabilities {
    /// Upstreams for `set-upstream` and `outbound`.
    pub outbound: Arc<dyn OutboundCalls>,
    /// Limiter state for `rate`.
    pub rate: Arc<dyn RateStore>,
    /// Store for `kv`.
    pub kv: Arc<dyn KvStore>,
    /// The process's plugin metrics.
    pub metrics: Arc<PluginMetrics>,
    /// The gateway's own metrics.
    pub telemetry: Arc<crate::telemetry::host_metrics::HostMetrics>,
    /// Largest body buffered for a plugin.
    pub max_body_bytes: u64,
    /// The limits plugin header edits and replies are held to.
    pub header_limits: HeaderLimits,
    /// Each plugin's share of shared resources.
    pub budgets: Budgets,
    /// If set, plugin log lines are also kept here.
    pub log_sink: Option<Arc<std::sync::Mutex<Vec<LogLine>>>>,
    /// What each plugin may use (`[plugins.NAME] capabilities`).
    pub grants: GrantTable,
}

impl Capabilities {
    /// The `kv` quota of one plugin.
    pub fn kv_quota(&self) -> KvQuota {
        KvQuota {
            max_keys: self.budgets.kv_max_keys,
            max_bytes: self.budgets.kv_max_bytes,
            max_value_bytes: self.budgets.kv_max_value_bytes,
        }
    }
}

impl Capabilities {
    /// What plugins of a pipeline with `limits` and `budgets` get: calls
    /// through `outbound`, everything else from fresh in-memory stores and
    /// registries, every plugin granted everything, and no log sink. The
    /// gateway replaces the stores with its own (`with_stores`), the test
    /// kit its limiter and log sink.
    pub fn new(outbound: Arc<dyn OutboundCalls>, limits: &Limits, budgets: &Budgets) -> Self {
        Capabilities {
            outbound,
            rate: Arc::new(MemoryRateStore::new()),
            kv: Arc::new(MemoryKvStore::new()),
            metrics: PluginMetrics::new(
                budgets.metrics_per_plugin as usize,
                budgets.metric_series_per_metric as usize,
            ),
            telemetry: HostMetrics::new(),
            max_body_bytes: limits.max_body_bytes,
            header_limits: limits.header_limits(),
            budgets: budgets.clone(),
            log_sink: None,
            grants: GrantTable::default(),
        }
    }

    /// The same, drawing on the gateway's shared stores and registries.
    pub fn with_stores(
        mut self,
        rate: Arc<dyn RateStore>,
        kv: Arc<dyn KvStore>,
        metrics: Arc<PluginMetrics>,
        telemetry: Arc<HostMetrics>,
    ) -> Self {
        self.rate = rate;
        self.kv = kv;
        self.metrics = metrics;
        self.telemetry = telemetry;
        self
    }

    /// The same, with another limiter.
    pub fn with_rate(mut self, rate: Arc<dyn RateStore>) -> Self {
        self.rate = rate;
        self
    }

    /// The same, with each plugin's grants.
    pub fn with_grants(mut self, grants: GrantTable) -> Self {
        self.grants = grants;
        self
    }

    /// The same, also keeping every plugin log line in `sink`.
    pub fn with_log_sink(mut self, sink: Arc<std::sync::Mutex<Vec<LogLine>>>) -> Self {
        self.log_sink = Some(sink);
        self
    }
}
