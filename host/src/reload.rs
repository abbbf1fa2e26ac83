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

/// A change applied to every config read from disk before it is used (e.g.
/// `weir demo` points the demo upstreams at its own servers).
pub type ConfigAdjustment = Arc<dyn Fn(&mut Config) + Send + Sync>;

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
    /// Applied to each config read, before anything else looks at it.
    adjust: Option<ConfigAdjustment>,
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
        Reloader::adjusted(gateway, config_path, started_with, tls, None)
    }

    /// [`Reloader::new`], with `adjust` applied to every config it reads.
    pub fn adjusted(
        gateway: Arc<Gateway>,
        config_path: &Path,
        started_with: Config,
        tls: Option<Arc<TlsState>>,
        adjust: Option<ConfigAdjustment>,
    ) -> Arc<Reloader> {
        Arc::new(Reloader {
            gateway,
            tls,
            config_path: config_path.to_path_buf(),
            started_with,
            adjust,
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
        let config_error = |e| config_error(&self.config_path, e);
        let mut config = Config::load(&self.config_path).map_err(config_error)?;
        if let Some(adjust) = &self.adjust {
            adjust(&mut config);
        }
        let set_aside = config
            .keep_restart_only(&self.started_with)
            .map_err(config_error)?;
        if !set_aside.is_empty() {
            tracing::warn!(
                "{}: {} changed; restart the gateway to apply {} (the rest of the reload is applied)",
                self.config_path.display(),
                set_aside.join(", "),
                if set_aside.len() == 1 { "it" } else { "them" }
            );
        }
        self.gateway.reload(&config).await?;
        Ok(self.gateway.pipeline().plugins().len())
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
        let certs = self.tls.as_ref().map(|t| t.files()).unwrap_or_default();
        let watched = Watched::new(plugins_dir, &self.config_path, &certs);
        let folders = watched.folders();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if matches!(event.kind, notify::EventKind::Access(_)) {
                    return;
                }
                if event.paths.iter().any(|p| watched.is_certificate(p)) {
                    let _ = tls_tx.send(());
                }
                if event.paths.iter().any(|p| watched.is_pipeline(p)) {
                    let _ = tx.send(());
                }
            })?;
        for folder in &folders {
            watcher.watch(folder, RecursiveMode::NonRecursive)?;
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

/// A config that cannot be used, as the reload's error on `file`.
fn config_error(file: &Path, e: crate::config::ConfigError) -> LoadError {
    LoadError {
        file: file.to_path_buf(),
        message: match e {
            crate::config::ConfigError::Invalid { message, .. } => message,
            other => other.to_string(),
        },
    }
}

/// What the watcher looks at, as canonical paths: file events name absolute
/// paths, and a relative `--config demo/weir.toml` must still match them.
/// Folders are resolved, file names kept, because a file may itself be a
/// symlink (a ConfigMap's) whose target changes.
struct Watched {
    plugins: PathBuf,
    config_dir: PathBuf,
    config_name: Option<std::ffi::OsString>,
    certs: Vec<PathBuf>,
}

impl Watched {
    fn new(plugins_dir: &Path, config_path: &Path, certs: &[PathBuf]) -> Watched {
        Watched {
            plugins: canonical(plugins_dir),
            config_dir: canonical(parent_or_here(config_path)),
            config_name: config_path.file_name().map(|n| n.to_os_string()),
            certs: certs
                .iter()
                .map(|f| match f.file_name() {
                    Some(name) => canonical(parent_or_here(f)).join(name),
                    None => f.clone(),
                })
                .collect(),
        }
    }

    /// The folders to watch, each once.
    fn folders(&self) -> Vec<PathBuf> {
        let mut folders = vec![self.plugins.clone(), self.config_dir.clone()];
        folders.extend(self.certs.iter().map(|f| parent_or_here(f).to_path_buf()));
        folders.sort();
        folders.dedup();
        folders
    }

    /// A change to a certificate or key file (or the ConfigMap swap of the
    /// folder holding one).
    fn is_certificate(&self, path: &Path) -> bool {
        self.certs
            .iter()
            .any(|f| f == path || (is_swap(path) && path.parent() == Some(parent_or_here(f))))
    }

    /// A change to the plugin directory, to the config file (or the
    /// ConfigMap swap of its folder), or to a JSON file beside the config:
    /// plugin configs kept there are reached through symlinks in the plugin
    /// directory (the container image's layout), whose own entries see no
    /// event when the target changes.
    fn is_pipeline(&self, path: &Path) -> bool {
        let beside_config = path.parent() == Some(self.config_dir.as_path());
        path.starts_with(&self.plugins)
            || (beside_config
                && (path.file_name() == self.config_name.as_deref()
                    || is_swap(path)
                    || path.extension().is_some_and(|e| e == "json")))
    }
}

fn parent_or_here(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// `dir` made absolute with symlinks resolved, or as given if it cannot be.
fn canonical(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Events name canonical paths; the gateway may have been given a path
    /// through a symlink (or a relative one, resolved the same way).
    #[test]
    fn given_paths_match_the_canonical_paths_events_name() {
        let dir = std::env::temp_dir().join(format!("weir-watched-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("real/plugins")).unwrap();
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(dir.join("real"), &link).unwrap();
        let watched = Watched::new(
            &link.join("plugins"),
            &link.join("weir.toml"),
            &[link.join("cert.pem")],
        );
        let real = std::fs::canonicalize(dir.join("real")).unwrap();
        assert!(watched.is_pipeline(&real.join("plugins/90-hello.wasm")));
        assert!(watched.is_pipeline(&real.join("weir.toml")));
        assert!(watched.is_pipeline(&real.join("..data")));
        assert!(!watched.is_pipeline(&real.join("other.toml")));
        assert!(watched.is_pipeline(&real.join("50-router.json")));
        assert!(watched.is_certificate(&real.join("cert.pem")));
        assert!(!watched.is_certificate(&real.join("weir.toml")));
        assert_eq!(watched.folders(), vec![real.clone(), real.join("plugins")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
