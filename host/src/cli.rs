//! The `weir` command line: `run`, `init`, `check`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::gateway::Gateway;
use crate::reload::Reloader;
use crate::server::{ServerSettings, serve};

/// Weir: a WebAssembly-pluggable API gateway.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// The configuration file.
        #[arg(long, short, default_value = "weir.toml")]
        config: PathBuf,
        /// Listen here instead of the configured address (port 0 picks one).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve the admin API here instead of `[admin] listen`.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// If the configuration file does not exist, first write the default
        /// gateway there (as `weir init` does).
        #[arg(long)]
        init: bool,
        /// Log format, overriding `[log] format`.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Write a runnable gateway directory: weir.toml and the default plugins.
    Init {
        /// The directory to create.
        dir: PathBuf,
        /// Overwrite files that exist.
        #[arg(long)]
        force: bool,
    },
    /// Validate the configuration and load every plugin, then exit.
    Check {
        /// The configuration file.
        #[arg(long, short, default_value = "weir.toml")]
        config: PathBuf,
    },
}

/// Run the command line; the exit code says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            listen,
            admin_listen,
            init,
            log_format,
        } => run(&config, listen, admin_listen, init, log_format),
        Command::Init { dir, force } => init(&dir, force),
        Command::Check { config } => check(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(
    path: &Path,
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    init: bool,
    log_format: Option<LogFormat>,
) -> anyhow::Result<()> {
    if init && !path.exists() {
        for file in crate::init::write_gateway(path, false)? {
            eprintln!("wrote {}", file.display());
        }
    }
    let from_file = Config::load(path)?;
    let mut config = from_file.clone();
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(admin_listen) = admin_listen {
        config.admin.listen = admin_listen;
    }
    crate::logging::init(log_format.unwrap_or(config.log.format), &config.log.level);
    tokio_runtime()?.block_on(serve_until_stopped(path, config, from_file))
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({what}): {e}"))
}

async fn serve_until_stopped(path: &Path, config: Config, from_file: Config) -> anyhow::Result<()> {
    let gateway = Arc::new(Gateway::new(&config).await?);
    for plugin in gateway.pipeline().plugins() {
        let info = plugin.info();
        tracing::info!(plugin = info.name, sha256 = %&info.sha256[..12], "loaded {}", info.file.display());
    }
    let listener = bind(config.listen, "proxy").await?;
    let admin_listener = match config.admin.enabled {
        true => Some(bind(config.admin.listen, "admin API").await?),
        false => None,
    };
    // Tests and scripts read these lines to find the ports.
    println!("listening on http://{}", listener.local_addr()?);
    if let Some(admin) = &admin_listener {
        println!("admin listening on http://{}", admin.local_addr()?);
    }
    std::io::stdout().flush()?;

    let reloader = Reloader::new(gateway.clone(), path, from_file);
    let _watcher = match config.reload.watch {
        true => match reloader.watch(
            &config.plugins_dir(),
            Duration::from_millis(config.reload.debounce_ms),
        ) {
            Ok(watcher) => Some(watcher),
            Err(e) => {
                tracing::warn!(
                    "cannot watch for changes ({e}); reload with SIGHUP or POST /admin/reload"
                );
                None
            }
        },
        false => None,
    };
    spawn_sighup_reloads(reloader.clone());
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(listener) = admin_listener {
        let admin = crate::admin::Admin::new(reloader.clone(), config.admin.token.clone());
        tokio::spawn(crate::admin::serve(listener, admin, async move {
            let _ = admin_stopped.await;
        }));
    }
    let settings = ServerSettings {
        max_header_bytes: config.limits.max_header_bytes,
        drain_timeout: Duration::from_millis(config.drain_timeout_ms),
    };
    serve(listener, gateway, settings, shutdown_signal()).await;
    let _ = stop_admin.send(());
    tracing::info!("stopped");
    Ok(())
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

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
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
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init(dir: &Path, force: bool) -> anyhow::Result<()> {
    for file in crate::init::write_gateway(&dir.join("weir.toml"), force)? {
        println!("wrote {}", file.display());
    }
    println!(
        "start it with: weir run --config {}",
        dir.join("weir.toml").display()
    );
    Ok(())
}

fn check(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    crate::logging::init(config.log.format, "warn");
    tokio_runtime()?.block_on(async {
        let gateway = Gateway::new(&config).await?;
        let pipeline = gateway.pipeline();
        for plugin in pipeline.plugins() {
            println!(
                "plugin {} ok ({})",
                plugin.name(),
                plugin.info().file.display()
            );
        }
        for upstream in pipeline.upstreams().iter() {
            let targets: Vec<String> = upstream
                .targets()
                .iter()
                .map(|t| t.authority().to_string())
                .collect();
            println!("upstream {} -> {}", upstream.name(), targets.join(", "));
        }
        println!("{}: ok", path.display());
        Ok(())
    })
}
