//! A pipeline: the ordered plugins and the upstreams they route to, built
//! completely (every plugin compiled and initialised) before it serves, and
//! immutable afterwards, so every request sees one consistent set.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Budgets, Config, Limits};
use crate::plugin::{LoadError, LoadedPlugin};
use crate::runtime::bindings::Hooks;
use crate::runtime::{Capabilities, Runtime};
use crate::state::{KvStore, RateStore};
use crate::telemetry::host_metrics::HostMetrics;
use crate::telemetry::plugin_metrics::PluginMetrics;
use crate::telemetry::traces::Tracing;
use crate::upstream::Upstreams;

/// The shared stores that outlive pipelines (limiter counts, kv entries and
/// plugin metrics survive reloads).
#[derive(Clone)]
pub struct Stores {
    /// For `rate`.
    pub rate: Arc<dyn RateStore>,
    /// For `kv`.
    pub kv: Arc<dyn KvStore>,
    /// For `metrics`.
    pub metrics: Arc<PluginMetrics>,
    /// The gateway's own metrics (not a store, but shared by every
    /// pipeline like them, so counters survive reloads).
    pub telemetry: Arc<HostMetrics>,
    /// OpenTelemetry traces, when `[tracing]` has an endpoint.
    pub tracing: Option<Arc<Tracing>>,
}

impl Stores {
    /// In-process stores.
    pub fn in_memory() -> Self {
        let budgets = Budgets::default();
        Stores {
            rate: Arc::new(crate::state::MemoryRateStore::new()),
            kv: Arc::new(crate::state::MemoryKvStore::new()),
            metrics: PluginMetrics::new(
                budgets.metrics_per_plugin as usize,
                budgets.metric_series_per_metric as usize,
            ),
            telemetry: HostMetrics::new(),
            tracing: None,
        }
    }

    /// The stores `[state]` asks for.
    pub fn from_config(config: &Config) -> Result<Self, LoadError> {
        let state = &config.state;
        let telemetry = HostMetrics::with_enabled(config.metrics.enabled);
        let tracing = Tracing::start(&config.tracing).map_err(|message| LoadError {
            file: config.source.clone(),
            message,
        })?;
        match state.backend {
            crate::config::StateBackend::Memory => Ok(Stores {
                telemetry,
                tracing,
                ..Stores::in_memory()
            }),
            crate::config::StateBackend::Redis => {
                let url = state.url.as_deref().unwrap_or_default();
                let timeout = std::time::Duration::from_millis(state.timeout_ms);
                let store =
                    crate::state::RedisStore::new(url, state.pool_size, timeout, state.on_error)
                        .map_err(|message| LoadError {
                            file: config.source.clone(),
                            message,
                        })?;
                let store = Arc::new(store.with_metrics(telemetry.clone()));
                Ok(Stores {
                    rate: store.clone(),
                    kv: store,
                    metrics: Stores::in_memory().metrics,
                    telemetry,
                    tracing,
                })
            }
        }
    }
}

/// Plugins in order plus the upstreams and limits they run with.
pub struct Pipeline {
    plugins: Vec<LoadedPlugin>,
    /// Indices of the plugins with an `on-request` hook, in order.
    request_chain: Vec<usize>,
    /// Indices of the plugins with an `on-response` hook, in reverse order.
    response_chain: Vec<usize>,
    upstreams: Arc<Upstreams>,
    limits: Limits,
    access_log: bool,
}

impl Pipeline {
    /// Load every `*.wasm` in the config's plugin directory, in file-name order.
    pub async fn load(
        runtime: &Arc<Runtime>,
        config: &Config,
        stores: &Stores,
    ) -> Result<Pipeline, LoadError> {
        if config.limits.plugin_memory_bytes() > runtime.max_memory_bytes() {
            return Err(LoadError {
                file: config.source.clone(),
                message: "`limits.plugin_memory_mb` was raised above the value the gateway started with; \
                          restart to apply it"
                    .into(),
            });
        }
        let workers = crate::server::workers::worker_count(config.runtime.worker_threads);
        let upstreams = Arc::new(
            Upstreams::new(
                &config.upstreams,
                &config.budgets,
                workers,
                &config.base_dir,
                &stores.telemetry,
            )
            .map_err(|message| LoadError {
                file: config.source.clone(),
                message,
            })?,
        );
        stores.metrics.set_limits(
            config.budgets.metrics_per_plugin as usize,
            config.budgets.metric_series_per_metric as usize,
        );
        let caps = Arc::new(Capabilities {
            outbound: upstreams.clone(),
            rate: stores.rate.clone(),
            kv: stores.kv.clone(),
            metrics: stores.metrics.clone(),
            telemetry: stores.telemetry.clone(),
            max_body_bytes: config.limits.max_body_bytes,
            header_limits: config.limits.header_limits(),
            budgets: config.budgets.clone(),
            log_sink: None,
        });
        let mut plugins = Vec::new();
        for file in plugin_files(&config.plugins_dir())? {
            plugins.push(LoadedPlugin::load(runtime, &file, config, caps.clone()).await?);
        }
        let with_hook = |hook: Hooks| -> Vec<usize> {
            plugins
                .iter()
                .enumerate()
                .filter(|(_, p)| p.hooks().contains(hook))
                .map(|(i, _)| i)
                .collect()
        };
        let request_chain = with_hook(Hooks::ON_REQUEST);
        let mut response_chain = with_hook(Hooks::ON_RESPONSE);
        response_chain.reverse();
        Ok(Pipeline {
            plugins,
            request_chain,
            response_chain,
            upstreams,
            limits: config.limits.clone(),
            access_log: config.log.access_log,
        })
    }

    /// The plugins in request order.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// Indices of the plugins whose `on-request` runs, in order. Plugins
    /// that did not declare the hook are not in it, so they cost nothing.
    pub fn request_chain(&self) -> &[usize] {
        &self.request_chain
    }

    /// Indices of the plugins whose `on-response` runs, in running (reverse)
    /// order.
    pub fn response_chain(&self) -> &[usize] {
        &self.response_chain
    }

    /// The upstreams.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether to write access-log lines.
    pub fn access_log(&self) -> bool {
        self.access_log
    }
}

/// The `*.wasm` files of `dir`, sorted by file name.
pub fn plugin_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LoadError {
        file: dir.to_path_buf(),
        message: format!("plugin directory cannot be read: {e}"),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "wasm") && path.is_file())
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}
