//! One plugin file loaded: read, hashed, compiled (or taken from the cache),
//! checked against the `weir:plugin/plugin` world, and initialised with its
//! config, all before it can serve a request.

mod call;
pub mod config;

pub use call::Ran;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::Config;
use crate::error::PluginFailure;
use crate::exchange::{HeldRequest, HeldResponse};
use crate::governance::grants::{self, Capability, Grants};
use crate::runtime::bindings::Hooks;
use crate::runtime::pool::{InstancePool, PoolSettings};
use crate::runtime::world::PluginPre;
use crate::runtime::{Capabilities, Runtime, compile};

/// Why a plugin (or the plugin directory) could not be loaded. Names the file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct LoadError {
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

impl LoadError {
    fn new(file: &Path, message: impl Into<String>) -> Self {
        LoadError {
            file: file.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Facts about a loaded plugin, for logs and the admin API.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// Name: the file stem, e.g. `20-auth`.
    pub name: String,
    /// The `.wasm` file.
    pub file: PathBuf,
    /// Its config file, if there is one.
    pub config_file: Option<PathBuf>,
    /// SHA-256 of the `.wasm`, hex.
    pub sha256: String,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// The contract version it implements, e.g. `0.5.0`, or the ABI of a
    /// proxy-wasm filter, e.g. `proxy-wasm 0.2.1`.
    pub contract: &'static str,
    /// The capability interfaces its component imports.
    pub imports: BTreeSet<Capability>,
    /// What it is granted (`[plugins.NAME] capabilities`).
    pub grants: Arc<Grants>,
}

/// A request and its response, as a failed `on-response` hands them back.
type States = (HeldRequest, HeldResponse);

/// A plugin ready to run hooks.
pub struct LoadedPlugin {
    info: PluginInfo,
    runner: Runner,
}

/// What runs a plugin's hooks: a pool of component instances, or a
/// proxy-wasm filter's instances. (One per loaded plugin, so its size does
/// not matter, and boxing would add a pointer chase to every hook call.)
#[allow(clippy::large_enum_variant)]
enum Runner {
    Component(InstancePool),
    ProxyWasm(crate::proxy_wasm::Filter),
    WasiHttp(crate::wasi_http::Handler),
}

/// Whether `component` exports `wasi:http/incoming-handler` (any 0.2.x).
fn exports_wasi_http(
    component: &wasmtime::component::Component,
    engine: &wasmtime::Engine,
) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name.starts_with("wasi:http/incoming-handler@0.2"))
}

/// How a plugin is run: its pool's limits and where compiled code is cached.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    /// Deadlines, memory and instance limits.
    pub pool: PoolSettings,
    /// The compiled-code cache, if any.
    pub cache_dir: Option<PathBuf>,
}

impl PluginSettings {
    /// The settings `config` gives.
    pub fn from_config(config: &Config) -> Self {
        PluginSettings {
            pool: PoolSettings {
                deadline: std::time::Duration::from_millis(config.limits.hook_deadline_ms),
                max_memory: config.limits.plugin_memory_bytes(),
                max_instances: config.runtime.max_instances_per_plugin,
                max_calls: config.runtime.max_calls_per_instance,
                idle_lists: config.runtime.worker_count() + 1,
            },
            cache_dir: Some(config.cache_dir()),
        }
    }
}

impl LoadedPlugin {
    /// Load `file` (and the `.json` beside it) for a pipeline of `config`.
    pub async fn load(
        runtime: &Arc<Runtime>,
        file: &Path,
        config: &Config,
        caps: Arc<Capabilities>,
    ) -> Result<LoadedPlugin, LoadError> {
        let bytes = tokio::fs::read(file)
            .await
            .map_err(|e| LoadError::new(file, format!("cannot be read: {e}")))?;
        let settings = PluginSettings::from_config(config);
        if compile::classify(&bytes) == compile::WasmKind::CoreModule {
            let (plugin_config, config_file) = read_raw_config(file).await?;
            return LoadedPlugin::from_module(
                runtime,
                file,
                bytes,
                plugin_config,
                config_file,
                &settings,
                caps,
            )
            .await;
        }
        let (plugin_config, config_file) = read_plugin_config(file).await?;
        LoadedPlugin::from_bytes(
            runtime,
            file,
            bytes,
            plugin_config,
            config_file,
            &settings,
            caps,
        )
        .await
    }

    /// Load a plugin from its bytes and config text; `file` names it (the
    /// name is its stem) in messages.
    pub async fn from_bytes(
        runtime: &Arc<Runtime>,
        file: &Path,
        bytes: Vec<u8>,
        plugin_config: String,
        config_file: Option<PathBuf>,
        settings: &PluginSettings,
        caps: Arc<Capabilities>,
    ) -> Result<LoadedPlugin, LoadError> {
        if compile::classify(&bytes) == compile::WasmKind::CoreModule {
            return LoadedPlugin::from_module(
                runtime,
                file,
                bytes,
                plugin_config.into_bytes(),
                config_file,
                settings,
                caps,
            )
            .await;
        }
        let name = plugin_name(file)?;
        let sha256 = compile::sha256_hex(&bytes);
        let engine = runtime.engine().clone();
        let cache_dir = settings.cache_dir.clone();
        let hash = sha256.clone();
        let component = tokio::task::spawn_blocking(move || {
            compile::compile(&engine, &bytes, &hash, cache_dir.as_deref())
        })
        .await
        .map_err(|e| LoadError::new(file, format!("compilation crashed: {e}")))?
        .map_err(|message| LoadError::new(file, message))?;

        crate::runtime::perf_map::record(&name, component.image_range());
        if exports_wasi_http(&component, runtime.engine()) {
            return LoadedPlugin::from_wasi_http(
                runtime,
                file,
                &component,
                (name, sha256, config_file),
                settings,
                caps,
            )
            .await;
        }
        let pre = PluginPre::new(runtime.linker(), &component)
            .map_err(|message| LoadError::new(file, message))?;
        let contract = pre.version();
        // Before any of its code runs: a plugin importing a capability it
        // was not granted never starts.
        let grants = caps.grants.for_plugin(&name);
        let imports = grants::check_component(&component, runtime.engine(), &name, &grants)
            .map_err(|message| LoadError::new(file, message))?;

        let pool = InstancePool::start(
            runtime.clone(),
            pre,
            &name,
            plugin_config,
            caps,
            settings.pool.clone(),
        )
        .await
        .map_err(|failure| {
            start_error(
                file,
                failure,
                config_file.as_deref(),
                "no config file; `{}` was used",
            )
        })?;

        Ok(LoadedPlugin {
            info: PluginInfo {
                name,
                file: file.to_path_buf(),
                config_file,
                sha256,
                loaded_at: SystemTime::now(),
                contract,
                imports,
                grants,
            },
            runner: Runner::Component(pool),
        })
    }

    /// Load a `wasi:http/proxy` component (it takes no configuration).
    async fn from_wasi_http(
        runtime: &Arc<Runtime>,
        file: &Path,
        component: &wasmtime::component::Component,
        (name, sha256, config_file): (String, String, Option<PathBuf>),
        settings: &PluginSettings,
        caps: Arc<Capabilities>,
    ) -> Result<LoadedPlugin, LoadError> {
        let pre = crate::wasi_http::check(runtime, component).map_err(|why| {
            LoadError::new(
                file,
                format!("exports wasi:http/incoming-handler but cannot run: {why}"),
            )
        })?;
        let grants = caps.grants.for_plugin(&name);
        let imports = component
            .component_type()
            .imports(runtime.engine())
            .any(|(import, _)| import.starts_with("wasi:http/outgoing-handler"))
            .then_some(Capability::Outbound)
            .into_iter()
            .collect();
        let handler = crate::wasi_http::Handler::start(
            runtime.clone(),
            pre,
            &name,
            caps,
            settings.pool.clone(),
        )
        .await
        .map_err(|failure| LoadError::new(file, format!("failed while starting: {failure}")))?;
        Ok(LoadedPlugin {
            info: PluginInfo {
                name,
                file: file.to_path_buf(),
                config_file,
                sha256,
                loaded_at: SystemTime::now(),
                contract: crate::wasi_http::CONTRACT,
                imports,
                grants,
            },
            runner: Runner::WasiHttp(handler),
        })
    }

    /// Load a proxy-wasm filter (a core module) from its bytes and its
    /// configuration's bytes, given to it unchanged.
    pub async fn from_module(
        runtime: &Arc<Runtime>,
        file: &Path,
        bytes: Vec<u8>,
        plugin_config: Vec<u8>,
        config_file: Option<PathBuf>,
        settings: &PluginSettings,
        caps: Arc<Capabilities>,
    ) -> Result<LoadedPlugin, LoadError> {
        let name = plugin_name(file)?;
        let sha256 = compile::sha256_hex(&bytes);
        let engine = runtime.engine().clone();
        let module = tokio::task::spawn_blocking(move || compile::compile_module(&engine, &bytes))
            .await
            .map_err(|e| LoadError::new(file, format!("compilation crashed: {e}")))?
            .map_err(|message| LoadError::new(file, message))?;
        let contract =
            crate::proxy_wasm::abi_of(&module).map_err(|message| LoadError::new(file, message))?;
        let grants = caps.grants.for_plugin(&name);
        let imports = crate::proxy_wasm::capabilities_of(&module);
        let filter = crate::proxy_wasm::Filter::start(
            runtime.clone(),
            &module,
            &name,
            plugin_config,
            caps,
            settings.pool.clone(),
        )
        .await
        .map_err(|failure| start_error(file, failure, config_file.as_deref(), "no config file"))?;
        Ok(LoadedPlugin {
            info: PluginInfo {
                name,
                file: file.to_path_buf(),
                config_file,
                sha256,
                loaded_at: SystemTime::now(),
                contract,
                imports,
                grants,
            },
            runner: Runner::ProxyWasm(filter),
        })
    }

    /// Facts about the plugin.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The hooks the plugin implements; the gateway calls only these.
    pub fn hooks(&self) -> Hooks {
        match &self.runner {
            Runner::Component(pool) => pool.hooks(),
            Runner::ProxyWasm(filter) => filter.hooks(),
            Runner::WasiHttp(handler) => handler.hooks(),
        }
    }

    /// The routes the plugin acts on, as its `init` declared them
    /// (`interest.only-routes`); `None`: every route. proxy-wasm filters
    /// and `wasi:http` components declare none.
    pub fn routes(&self) -> Option<&[String]> {
        match &self.runner {
            Runner::Component(pool) => pool.routes(),
            Runner::ProxyWasm(_) | Runner::WasiHttp(_) => None,
        }
    }

    /// What kind of plugin it is: `component` (the weir:plugin world),
    /// `proxy-wasm` or `wasi-http`.
    pub fn kind(&self) -> &'static str {
        match self.runner {
            Runner::Component(_) => "component",
            Runner::ProxyWasm(_) => "proxy-wasm",
            Runner::WasiHttp(_) => "wasi-http",
        }
    }

    fn budget(&self) -> &Arc<crate::runtime::budget::PluginBudget> {
        match &self.runner {
            Runner::Component(pool) => pool.budget(),
            Runner::ProxyWasm(filter) => filter.budget(),
            Runner::WasiHttp(handler) => handler.budget(),
        }
    }

    fn metrics(&self) -> &crate::telemetry::host_metrics::PluginMetricsHandles {
        match &self.runner {
            Runner::Component(pool) => pool.metrics(),
            Runner::ProxyWasm(filter) => filter.metrics(),
            Runner::WasiHttp(handler) => handler.metrics(),
        }
    }

    /// Log lines of this plugin dropped over its budget.
    pub fn log_lines_dropped(&self) -> u64 {
        self.budget().log_lines_dropped()
    }

    /// Warm instances waiting for work.
    pub fn idle_instances(&self) -> usize {
        match &self.runner {
            Runner::Component(pool) => pool.idle_count(),
            Runner::ProxyWasm(filter) => filter.idle_count(),
            // A fresh instance per request: none waits.
            Runner::WasiHttp(_) => 0,
        }
    }

    /// Hook calls running now (for a filter: streams holding an instance).
    pub fn busy_instances(&self) -> usize {
        match &self.runner {
            Runner::Component(pool) => pool.busy_count(),
            Runner::ProxyWasm(filter) => filter.busy_count(),
            Runner::WasiHttp(handler) => handler.busy_count(),
        }
    }
}

/// Why a plugin's first instance did not start, naming its config file.
fn start_error(
    file: &Path,
    failure: PluginFailure,
    config: Option<&Path>,
    none: &str,
) -> LoadError {
    let message = match (&failure, config) {
        (PluginFailure::Instantiate(why), Some(json)) => {
            format!("{why} (config file {})", json.display())
        }
        (PluginFailure::Instantiate(why), None) => format!("{why} ({none})"),
        (other, _) => format!("failed while starting: {other}"),
    };
    LoadError::new(file, message)
}

/// The file name's stem, which names the plugin.
fn plugin_name(file: &Path) -> Result<String, LoadError> {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .ok_or_else(|| LoadError::new(file, "has no file name"))
}

/// A proxy-wasm filter's configuration: `NAME.json`'s bytes, unchanged and
/// not required to be JSON (proxy-wasm configurations are opaque bytes);
/// empty when there is none, as Envoy gives a filter without one.
async fn read_raw_config(wasm: &Path) -> Result<(Vec<u8>, Option<PathBuf>), LoadError> {
    let json = wasm.with_extension("json");
    match tokio::fs::read(&json).await {
        Ok(bytes) => Ok((bytes, Some(json))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), None)),
        Err(e) => Err(LoadError::new(&json, format!("cannot be read: {e}"))),
    }
}

/// The plugin's JSON config (`NAME.json` beside `NAME.wasm`), checked to be
/// JSON so syntax errors name the config file; `{}` when there is none.
/// `{"$file": "PATH"}` anywhere in it is replaced by the text of that file
/// (see [`plugin_config::include_files`]).
async fn read_plugin_config(wasm: &Path) -> Result<(String, Option<PathBuf>), LoadError> {
    let json = wasm.with_extension("json");
    let text = match tokio::fs::read_to_string(&json).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(("{}".to_string(), None)),
        Err(e) => return Err(LoadError::new(&json, format!("cannot be read: {e}"))),
    };
    let mut value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| LoadError::new(&json, format!("is not valid JSON: {e}")))?;
    let dir = json.parent().unwrap_or(Path::new("."));
    if crate::plugin::config::include_files(&mut value, dir)
        .map_err(|message| LoadError::new(&json, message))?
    {
        return Ok((value.to_string(), Some(json)));
    }
    Ok((text, Some(json)))
}
