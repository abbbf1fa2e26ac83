//! Reloading: a new pipeline is built completely from the files on disk
//! (config, plugins, their configs), off the request path, and swapped in
//! only if all of it loads. Anything invalid leaves the serving pipeline in
//! place; the error is logged with its file and cause and kept for the admin
//! API until a valid version appears.
//!
//! Triggers: changes in the plugin directory or the config file (watched,
//! then debounced so a copy in progress or an editor's save-and-rename is
//! one change), SIGHUP, and `POST /admin/reload`. Reloads run one at a time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::plugin::LoadError;
use crate::server::tls::TlsState;

/// The outcome of the latest reload attempt.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// Reloads attempted since start.
    pub attempts: u64,
    /// When the last attempt finished.
    pub last_attempt: Option<SystemTime>,
    /// When a pipeline was last swapped in.
    pub last_success: Option<SystemTime>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<LoadError>,
}

/// Rebuilds the gateway's pipeline from disk.
pub struct Reloader {
    gateway: Arc<Gateway>,
    /// The HTTPS listener's certificates, reloaded with everything else and
    /// when their files change.
    tls: Option<Arc<TlsState>>,
    config_path: PathBuf,
    /// The config the process started with: parts that need a restart
    /// keep these values.
    started_with: Config,
    status: Mutex<ReloadStatus>,
    /// One reload at a time.
    running: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader for `gateway`, built from the config at `config_path`.
    pub fn new(
        gateway: Arc<Gateway>,
        config_path: &Path,
        started_with: Config,
        tls: Option<Arc<TlsState>>,
    ) -> Arc<Reloader> {
        Arc::new(Reloader {
            gateway,
            tls,
            config_path: config_path.to_path_buf(),
            started_with,
            status: Mutex::new(ReloadStatus::default()),
            running: tokio::sync::Mutex::new(()),
        })
    }

    /// The gateway.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// The HTTPS listener's TLS state, if there is one.
    pub fn tls(&self) -> Option<&Arc<TlsState>> {
        self.tls.as_ref()
    }

    /// The latest outcome.
    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Read everything again and swap in the new pipeline if it all loads.
    pub async fn reload(&self, reason: &str) -> Result<usize, LoadError> {
        let _one_at_a_time = self.running.lock().await;
        // Certificates first: their failure is reported on its own and
        // never holds back the pipeline.
        if let Some(tls) = &self.tls {
            let _ = tls.reload();
        }
        let outcome = self.build().await;
        self.gateway.stores().telemetry.reloaded(outcome.is_ok());
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.attempts += 1;
        status.last_attempt = Some(SystemTime::now());
        match &outcome {
            Ok(plugins) => {
                status.last_success = status.last_attempt;
                status.last_error = None;
                tracing::info!(reason, plugins, "reloaded");
            }
            Err(e) => {
                status.last_error = Some(e.clone());
                tracing::error!(
                    reason,
                    "reload failed, the previous pipeline keeps serving: {e}"
                );
            }
        }
        outcome
    }

    async fn build(&self) -> Result<usize, LoadError> {
        let mut config = Config::load(&self.config_path).map_err(|e| LoadError {
            file: self.config_path.clone(),
            message: match e {
                crate::config::ConfigError::Invalid { message, .. } => message,
                other => other.to_string(),
            },
        })?;
        self.keep_restart_only_settings(&mut config);
        self.gateway.reload(&config).await?;
        Ok(self.gateway.pipeline().plugins().len())
    }

    /// Settings fixed at start: a change is logged and not applied, rather
    /// than half-applied.
    fn keep_restart_only_settings(&self, config: &mut Config) {
        let old = &self.started_with;
        let mut ignored = Vec::new();
        if config.listen != old.listen {
            ignored.push("listen");
            config.listen = old.listen;
        }
        if config.admin != old.admin {
            ignored.push("[admin]");
            config.admin = old.admin.clone();
        }
        if config.runtime != old.runtime {
            ignored.push("[runtime]");
            config.runtime = old.runtime.clone();
        }
        if config.state != old.state {
            ignored.push("[state]");
            config.state = old.state.clone();
        }
        if config.limits.plugin_memory_mb != old.limits.plugin_memory_mb {
            ignored.push("limits.plugin_memory_mb");
            config.limits.plugin_memory_mb = old.limits.plugin_memory_mb;
        }
        if config.reload != old.reload {
            ignored.push("[reload]");
            config.reload = old.reload.clone();
        }
        if config.tls != old.tls {
            ignored.push("[tls]");
            config.tls = old.tls.clone();
        }
        if config.metrics != old.metrics {
            ignored.push("[metrics]");
            config.metrics = old.metrics.clone();
        }
        if config.tracing != old.tracing {
            ignored.push("[tracing]");
            config.tracing = old.tracing.clone();
        }
        if !ignored.is_empty() {
            tracing::warn!(
                "{}: {} changed; restart the gateway to apply {}",
                self.config_path.display(),
                ignored.join(", "),
                if ignored.len() == 1 { "it" } else { "them" }
            );
        }
    }

    /// Watch the plugin directory and the config file; reload after
    /// `debounce` of quiet following a change. The returned watcher must be
    /// kept alive.
    pub fn watch(
        self: &Arc<Self>,
        plugins_dir: &Path,
        debounce: Duration,
    ) -> notify::Result<RecommendedWatcher> {
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let (tls_tx, mut tls_rx) = mpsc::unbounded_channel::<()>();
        let plugins = plugins_dir.to_path_buf();
        let config = self.config_path.clone();
        let config_name = config.file_name().map(|n| n.to_os_string());
        let cert_files = self.tls.as_ref().map(|t| t.files()).unwrap_or_default();
        let certs = cert_files.clone();
        let cert_parents: Vec<PathBuf> = cert_files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if matches!(event.kind, notify::EventKind::Access(_)) {
                    return;
                }
                if event.paths.iter().any(|p| {
                    certs.contains(p)
                        || (is_swap(p) && cert_parents.iter().any(|d| p.parent() == Some(d)))
                }) {
                    let _ = tls_tx.send(());
                }
                let relevant = event.paths.iter().any(|p| {
                    p.parent() == Some(plugins.as_path())
                        || p.starts_with(&plugins)
                        || ((p.file_name().map(|n| n.to_os_string()) == config_name || is_swap(p))
                            && p.parent() == config.parent())
                });
                if relevant {
                    let _ = tx.send(());
                }
            })?;
        watcher.watch(plugins_dir, RecursiveMode::NonRecursive)?;
        let mut cert_dirs: Vec<PathBuf> = cert_files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        cert_dirs.sort();
        cert_dirs.dedup();
        for dir in &cert_dirs {
            if dir != plugins_dir {
                watcher.watch(dir, RecursiveMode::NonRecursive)?;
            }
        }
        if let Some(tls) = self.tls.clone() {
            tokio::spawn(async move {
                while tls_rx.recv().await.is_some() {
                    if !quiet_for(&mut tls_rx, debounce).await {
                        return;
                    }
                    let _ = tls.reload();
                }
            });
        }
        let config_dir = match self.config_path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        watcher.watch(&config_dir, RecursiveMode::NonRecursive)?;

        let reloader = Arc::clone(self);
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                if !quiet_for(&mut rx, debounce).await {
                    return;
                }
                let _ = reloader.reload("files changed").await;
            }
        });
        Ok(watcher)
    }
}

/// Wait until `rx` has been quiet for `debounce` (every further change
/// restarts the wait); false when the sender is gone.
async fn quiet_for(rx: &mut mpsc::UnboundedReceiver<()>, debounce: Duration) -> bool {
    loop {
        match tokio::time::timeout(debounce, rx.recv()).await {
            Ok(Some(())) => continue,
            Ok(None) => return false,
            Err(_) => return true,
        }
    }
}

/// Whether `path` is the `..data` symlink of a Kubernetes ConfigMap or
/// Secret volume. The kubelet updates such a volume by writing a new
/// directory and renaming a new `..data` symlink over the old one, so the
/// files themselves (symlinks through `..data`) see no event at all.
fn is_swap(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name == "..data")
}
