//! `weir run` and `weir demo`: load the config, bind the listeners, serve
//! until a signal, then drain.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, LogFormat};
use crate::gateway::Gateway;
use crate::reload::Reloader;

use super::tokio_runtime;

pub(super) fn run(
    path: &Path,
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    init: bool,
    log_format: Option<LogFormat>,
) -> anyhow::Result<()> {
    if init && !path.exists() {
        for file in crate::tooling::init::write_gateway(path, false)? {
            eprintln!("wrote {}", file.display());
        }
    }
    let (config, from_file) = startup_config(path, listen, admin_listen, log_format)?;
    tokio_runtime()?.block_on(serve_until_stopped(path, config, from_file, None))
}

/// `weir demo`: `run --init` plus the demo upstreams and the walk-through.
pub(super) fn demo(
    dir: &Path,
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let (path, written) = crate::tooling::demo::prepare(dir)?;
    for file in written {
        eprintln!("wrote {}", file.display());
    }
    let (mut config, from_file) = startup_config(&path, listen, admin_listen, None)?;
    tokio_runtime()?.block_on(async {
        let demo = crate::tooling::demo::Demo::start().await?;
        demo.apply(&mut config);
        let shown = DemoShown {
            demo,
            dir: dir.to_path_buf(),
        };
        serve_until_stopped(&path, config, from_file, Some(shown)).await
    })
}

/// A demo being served, and where its files are.
struct DemoShown {
    demo: crate::tooling::demo::Demo,
    dir: PathBuf,
}

/// The config at `path` with the command line's overrides, the admin token
/// resolved and checked, and logging set up; and the config as the file
/// says (what reloads compare restart-only settings with).
fn startup_config(
    path: &Path,
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    log_format: Option<LogFormat>,
) -> anyhow::Result<(Config, Config)> {
    let from_file = Config::load(path)?;
    let mut config = from_file.clone();
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(admin_listen) = admin_listen {
        config.admin.listen = admin_listen;
    }
    // The token resolved from wherever it is kept; checked against the
    // final listen address, `--admin-listen` included.
    config.admin.token = config
        .admin
        .resolve_token(&config.base_dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    config
        .admin
        .check_exposure(config.admin.token.as_deref())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    crate::logging::init(log_format.unwrap_or(config.log.format), &config.log.level);
    if config.admin.enabled
        && config.admin.token.is_none()
        && !config.admin.listen.ip().is_loopback()
    {
        tracing::warn!(
            listen = %config.admin.listen,
            "the admin API is open to other hosts without a token (allow_public_without_token)"
        );
    }
    Ok((config, from_file))
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({what}): {e}"))
}

/// Load, bind, announce the addresses, then serve until SIGTERM/SIGINT and
/// drain.
async fn serve_until_stopped(
    path: &Path,
    config: Config,
    from_file: Config,
    demo: Option<DemoShown>,
) -> anyhow::Result<()> {
    let gateway = Arc::new(Gateway::new(&config).await?);
    for plugin in gateway.pipeline().plugins() {
        let info = plugin.info();
        tracing::info!(plugin = info.name, sha256 = %&info.sha256[..12], "loaded {}", info.file.display());
    }
    let tls = match &config.tls {
        Some(settings) => Some(
            crate::server::tls::TlsState::load(&config, settings)
                .map_err(|e| anyhow::anyhow!("[tls]: {e}"))?,
        ),
        None => None,
    };
    let workers = config.runtime.worker_count();
    let listeners = bind_listeners(&config, tls.as_ref(), workers)?;
    if let (Some(state), Some(acme)) = (&tls, config.tls.as_ref().and_then(|t| t.acme.as_ref())) {
        crate::acme::start(acme, state.clone(), &gateway, &config)
            .await
            .map_err(|e| anyhow::anyhow!("[tls.acme]: {e}"))?;
    }
    let admin_listener = match config.admin.enabled {
        true => Some(bind(config.admin.listen, "admin API").await?),
        false => None,
    };
    let admin_addr = match &admin_listener {
        Some(admin) => Some(admin.local_addr()?),
        None => None,
    };
    // Signal handlers before the ports are announced: a SIGHUP or SIGTERM
    // sent as soon as the gateway answers must reload or drain it, never
    // meet the default action (which ends the process and resets the
    // connections the listeners already hold).
    let shutdown = shutdown_signal();
    let adjust = demo.as_ref().map(|shown| shown.demo.adjustment());
    let reloader = Reloader::adjusted(gateway.clone(), path, from_file, tls.clone(), adjust);
    let _watcher = watch(&reloader, &config);
    spawn_sighup_reloads(reloader.clone());
    announce(&listeners, admin_addr, demo.as_ref())?;
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(listener) = admin_listener {
        let admin = crate::admin::Admin::new(reloader.clone(), config.admin.token.clone());
        let limits = crate::admin::AdminLimits::from_config(&config.admin);
        tokio::spawn(crate::admin::serve(listener, admin, limits, async move {
            let _ = admin_stopped.await;
        }));
    }
    let traces = gateway.stores().tracing.clone();
    let serving = crate::server::workers::Workers::start(listeners.per_worker, gateway)?;
    tracing::info!(workers, "serving");
    shutdown.await;
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    serving.stop().await;
    let _ = stop_admin.send(());
    if let Some(traces) = traces {
        // Sends the spans still queued; blocks until the collector answers
        // (or the export times out).
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Print where the gateway listens (tests and scripts read these lines to
/// find the ports) and, for a demo, what to try.
fn announce(
    listeners: &Listeners,
    admin: Option<SocketAddr>,
    demo: Option<&DemoShown>,
) -> anyhow::Result<()> {
    println!("listening on http://{}", listeners.plain_addr);
    if let Some(addr) = listeners.tls_addr {
        println!("listening on https://{addr}");
    }
    if let Some(admin) = admin {
        println!("admin listening on http://{admin}");
    }
    if let Some(shown) = demo {
        let banner = shown.demo.banner(&shown.dir, listeners.plain_addr, admin);
        println!("{banner}");
    }
    std::io::stdout().flush()?;
    Ok(())
}

/// Watch the files when `[reload] watch` says so; a watcher that cannot
/// start is a warning, since SIGHUP and the admin API still reload.
fn watch(reloader: &Arc<Reloader>, config: &Config) -> Option<notify::RecommendedWatcher> {
    if !config.reload.watch {
        return None;
    }
    let debounce = Duration::from_millis(config.reload.debounce_ms);
    match reloader.watch(&config.plugins_dir(), debounce) {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(
                "cannot watch for changes ({e}); reload with SIGHUP or POST /admin/reload"
            );
            None
        }
    }
}

/// The proxy's sockets, one set per worker.
struct Listeners {
    per_worker: Vec<crate::server::workers::WorkerListeners>,
    plain_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
}

/// Bind `listen` (and `[tls] listen`) once per worker with `SO_REUSEPORT`.
fn bind_listeners(
    config: &Config,
    tls: Option<&Arc<crate::server::tls::TlsState>>,
    workers: usize,
) -> anyhow::Result<Listeners> {
    use crate::server::Mode;
    use crate::server::workers::bind_reuseport;
    let plain = bind_reuseport(config.listen, workers)
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (proxy): {e}", config.listen))?;
    let plain_addr = first_addr(&plain)?.unwrap_or(config.listen);
    let secure = match (&config.tls, tls) {
        (Some(settings), Some(state)) => {
            let sockets = bind_reuseport(settings.listen, workers).map_err(|e| {
                anyhow::anyhow!("cannot listen on {} (tls.listen): {e}", settings.listen)
            })?;
            Some((sockets, state.clone(), settings.redirect_http))
        }
        _ => None,
    };
    let tls_addr = match &secure {
        Some((sockets, _, _)) => first_addr(sockets)?,
        None => None,
    };
    let plain_mode = match (&secure, tls_addr) {
        (Some((_, _, true)), Some(addr)) => Mode::RedirectToHttps(addr.port()),
        _ => Mode::Plain,
    };
    let mut per_worker: Vec<crate::server::workers::WorkerListeners> = plain
        .into_iter()
        .map(|l| vec![(l, plain_mode.clone())])
        .collect();
    if let Some((sockets, state, _)) = secure {
        for (worker, socket) in per_worker.iter_mut().zip(sockets) {
            worker.push((socket, Mode::Tls(state.clone())));
        }
    }
    Ok(Listeners {
        per_worker,
        plain_addr,
        tls_addr,
    })
}

fn first_addr(sockets: &[std::net::TcpListener]) -> anyhow::Result<Option<SocketAddr>> {
    Ok(sockets
        .first()
        .map(std::net::TcpListener::local_addr)
        .transpose()?)
}

/// Reload on every SIGHUP.
fn spawn_sighup_reloads(reloader: Arc<Reloader>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        let _ = reloader.reload("SIGHUP").await;
                    }
                });
            }
            Err(e) => tracing::warn!("cannot handle SIGHUP ({e}); reload through the admin API"),
        }
    }
    #[cfg(not(unix))]
    let _ = reloader;
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when it is first awaited.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match handlers {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    tracing::warn!("cannot install signal handlers; stop with SIGKILL");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
