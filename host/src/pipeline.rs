//! A pipeline: the ordered plugins and the upstreams they route to, built
//! completely (every plugin compiled and initialised) before it serves, and
//! immutable afterwards, so every request sees one consistent set.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Budgets, Config, Limits};
use crate::governance::canary::{self, Canary};
use crate::governance::health::Health;
use crate::governance::registry::Registry;
use crate::governance::scope::{Place, Scoped, Scopes};
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
    /// Each plugin version's record: quarantines, canary rollbacks.
    pub governance: Arc<Registry>,
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
            governance: Arc::default(),
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
            crate::config::StateBackend::Redis | crate::config::StateBackend::RedisCluster => {
                let timeout = std::time::Duration::from_millis(state.timeout_ms);
                let store = if state.backend == crate::config::StateBackend::RedisCluster {
                    crate::state::RedisStore::cluster(&state.nodes, timeout, state.on_error)
                } else {
                    let url = state.url.as_deref().unwrap_or_default();
                    crate::state::RedisStore::new(url, state.pool_size, timeout, state.on_error)
                }
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
                    governance: Arc::default(),
                })
            }
        }
    }
}

/// A plugin's governance in a pipeline.
pub struct Governed {
    /// Its record (kept per file version across reloads).
    pub health: Arc<Health>,
    /// Its canary, for a stable version that has one.
    pub canary: Option<Canary>,
    /// For a canary: the index of its stable version.
    pub canary_of: Option<usize>,
}

/// Load the plugin directory: the stable versions in file-name order, then
/// each canary (`NAME.canary.wasm`) tied to its `NAME.wasm`.
async fn load_plugins(
    runtime: &Arc<Runtime>,
    config: &Config,
    caps: Arc<Capabilities>,
    stores: &Stores,
) -> Result<(Vec<LoadedPlugin>, Vec<Governed>), LoadError> {
    let (canaries, stables): (Vec<PathBuf>, Vec<PathBuf>) = plugin_files(&config.plugins_dir())?
        .into_iter()
        .partition(|file| stem(file).ends_with(canary::SUFFIX));
    let mut plugins = Vec::new();
    let mut governed = Vec::new();
    for file in &stables {
        let plugin = LoadedPlugin::load(runtime, file, config, caps.clone()).await?;
        let policy = config.plugins.get(plugin.name());
        let health = stores.governance.health(
            plugin.name(),
            &plugin.info().sha256,
            policy.and_then(|p| p.quarantine.as_ref()),
        );
        plugins.push(plugin);
        governed.push(Governed {
            health,
            canary: None,
            canary_of: None,
        });
    }
    for file in &canaries {
        let name = stem(file);
        let stable_name = name.trim_end_matches(canary::SUFFIX);
        let Some(stable) = plugins.iter().position(|p| p.name() == stable_name) else {
            return Err(LoadError {
                file: file.clone(),
                message: format!("a canary needs its stable version {stable_name}.wasm beside it"),
            });
        };
        let plugin = LoadedPlugin::load(runtime, file, config, caps.clone()).await?;
        let policy = config.plugins.get(stable_name);
        let health = stores.governance.health(
            &name,
            &plugin.info().sha256,
            policy.and_then(|p| p.quarantine.as_ref()),
        );
        let settings = policy.and_then(|p| p.canary.clone()).unwrap_or_default();
        let index = plugins.len();
        if let Some(slot) = governed.get_mut(stable) {
            slot.canary = Some(Canary::new(index, &settings, health.clone(), &slot.health));
        }
        plugins.push(plugin);
        governed.push(Governed {
            health,
            canary: None,
            canary_of: Some(stable),
        });
    }
    let kept: Vec<String> = plugins
        .iter()
        .map(|p| format!("{}@{}", p.name(), p.info().sha256))
        .collect();
    stores.governance.retain(&kept);
    Ok((plugins, governed))
}

fn stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The chains of `plugins` under `config`'s `[plugins.NAME]` tables. A
/// canary is in no chain: its stable version's
/// place in the chain calls it (with the hooks of both).
fn scopes(config: &Config, plugins: &[LoadedPlugin], governed: &[Governed]) -> Scopes {
    // Removing a plugin's file is how a plugin is taken out, so its table
    // left behind is no error; but it may be a typo that leaves a plugin
    // ungoverned, so say so.
    for name in config
        .plugins
        .keys()
        .filter(|name| !plugins.iter().any(|p| p.name() == name.as_str()))
    {
        tracing::warn!(
            "{}: [plugins.{name}] names no plugin in {} (tables are named by file stem, e.g. 60-auth)",
            config.source.display(),
            config.plugins_dir().display()
        );
    }
    // The routes each place acts on: the plugin's declared routes, and its
    // canary's with them, since that place calls either (a version that
    // declares fewer still sees the others, and lets them pass).
    let declared: Vec<Option<Vec<String>>> = plugins
        .iter()
        .zip(governed)
        .map(|(p, g)| {
            let canary = g.canary.as_ref().and_then(|c| plugins.get(c.index));
            match (p.routes(), canary.map(|c| c.routes())) {
                (None, _) | (_, Some(None)) => None,
                (Some(own), None) => Some(own.to_vec()),
                (Some(own), Some(Some(theirs))) => {
                    let mut both = own.to_vec();
                    both.extend(theirs.iter().filter(|r| !own.contains(r)).cloned());
                    Some(both)
                }
            }
        })
        .collect();
    let scoped: Vec<Scoped<'_>> = plugins
        .iter()
        .zip(governed)
        .enumerate()
        .map(|(index, (p, g))| {
            let canary_hooks = g
                .canary
                .as_ref()
                .and_then(|c| plugins.get(c.index))
                .map_or(Hooks::empty(), |c| c.hooks());
            Scoped {
                hooks: match g.canary_of {
                    Some(_) => Hooks::empty(),
                    None => p.hooks() | canary_hooks,
                },
                policy: config.plugins.get(p.name()),
                declared: declared.get(index).and_then(|d| d.as_deref()),
            }
        })
        .collect();
    Scopes::build(&scoped)
}

/// Plugins in order plus the upstreams and limits they run with.
pub struct Pipeline {
    plugins: Vec<LoadedPlugin>,
    /// Each plugin's record and canary, by index.
    governed: Vec<Governed>,
    /// Which plugins run where, and what their failures do.
    scopes: Scopes,
    upstreams: Arc<Upstreams>,
    limits: Limits,
    /// What the listeners use for connections accepted while this
    /// pipeline serves.
    server: Arc<crate::config::ServerSettings>,
    access_log: bool,
    /// Response compression; `None` when off.
    compression: Option<Arc<crate::compression::Compression>>,
    /// The `kv` store, for requests parked until a plugin's key goes.
    kv: Arc<dyn KvStore>,
    /// Each plugin's requests in the background (`respond-then-continue`),
    /// by index, and how many it may have.
    background: Vec<crate::gateway::deferred::Background>,
    background_limit: u32,
}

impl Pipeline {
    /// Load every `*.wasm` in the config's plugin directory, in file-name
    /// order. `previous` is the pipeline this one replaces: its upstreams'
    /// DNS answers (and targets) are where the new ones start.
    pub async fn load(
        runtime: &Arc<Runtime>,
        config: &Config,
        stores: &Stores,
        previous: Option<&Pipeline>,
    ) -> Result<Pipeline, LoadError> {
        if config.limits.plugin_memory_bytes() > runtime.max_memory_bytes() {
            return Err(LoadError {
                file: config.source.clone(),
                message: "`limits.plugin_memory_mb` was raised above the value the gateway started with; \
                          restart to apply it"
                    .into(),
            });
        }
        let workers = config.runtime.worker_count();
        let upstreams = Arc::new(
            Upstreams::new(
                &config.upstreams,
                &config.budgets,
                workers,
                &config.base_dir,
                &stores.telemetry,
                &config.discovery,
                previous.map(|p| p.upstreams()),
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
        let grants =
            crate::governance::grants::GrantTable::from_config(config).map_err(|message| {
                LoadError {
                    file: config.source.clone(),
                    message,
                }
            })?;
        let caps = Arc::new(
            Capabilities::new(upstreams.clone(), &config.limits, &config.budgets)
                .with_stores(
                    stores.rate.clone(),
                    stores.kv.clone(),
                    stores.metrics.clone(),
                    stores.telemetry.clone(),
                )
                .with_grants(grants),
        );
        let (plugins, governed) = load_plugins(runtime, config, caps, stores).await?;
        let scopes = scopes(config, &plugins, &governed);
        let background = plugins.iter().map(|_| Default::default()).collect();
        Ok(Pipeline {
            plugins,
            governed,
            scopes,
            upstreams,
            limits: config.limits.clone(),
            server: Arc::new(crate::config::ServerSettings::from_config(config)),
            access_log: config.log.access_log,
            compression: crate::compression::Compression::from_config(&config.compression)
                .map(Arc::new),
            kv: stores.kv.clone(),
            background,
            background_limit: config.budgets.background_per_plugin,
        })
    }

    /// The `kv` store plugins use.
    pub fn kv(&self) -> &Arc<dyn KvStore> {
        &self.kv
    }

    /// A background slot for plugin `index`, if it has one free.
    pub fn background_slot(
        &self,
        index: usize,
    ) -> Option<crate::gateway::deferred::BackgroundSlot> {
        self.background.get(index)?.try_take(self.background_limit)
    }

    /// The plugins in request order.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// Indices of the plugins whose `on-request` runs for a request outside
    /// every route and host scope, in order. Plugins that did not declare
    /// the hook are not in it, so they cost nothing.
    pub fn request_chain(&self) -> &[usize] {
        self.scopes.request_chain(Place::default())
    }

    /// Indices of the plugins whose `on-response` runs for a request outside
    /// every scope, in running (reverse) order.
    pub fn response_chain(&self) -> &[usize] {
        self.scopes.response_chain(Place::default())
    }

    /// Which plugins run where, and what their failures do.
    pub fn scopes(&self) -> &Scopes {
        &self.scopes
    }

    /// Plugin `index`'s record and canary.
    pub fn governed(&self, index: usize) -> Option<&Governed> {
        self.governed.get(index)
    }

    /// The upstreams.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The listeners' settings.
    pub fn server(&self) -> &Arc<crate::config::ServerSettings> {
        &self.server
    }

    /// Response compression, when on.
    pub fn compression(&self) -> Option<&Arc<crate::compression::Compression>> {
        self.compression.as_ref()
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
