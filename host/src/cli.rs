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
            init,
            log_format,
        } => run(&config, listen, init, log_format),
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
    init: bool,
    log_format: Option<LogFormat>,
) -> anyhow::Result<()> {
    if init && !path.exists() {
        for file in crate::init::write_gateway(path, false)? {
            eprintln!("wrote {}", file.display());
        }
    }
    let mut config = Config::load(path)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    crate::logging::init(log_format.unwrap_or(config.log.format), &config.log.level);
    tokio_runtime()?.block_on(async {
        let gateway = Arc::new(Gateway::new(&config).await?);
        let pipeline = gateway.pipeline();
        for plugin in pipeline.plugins() {
            let info = plugin.info();
            tracing::info!(plugin = info.name, sha256 = %&info.sha256[..12], "loaded {}", info.file.display());
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr()?;
        // Tests and scripts read this line to find the port.
        println!("listening on http://{addr}");
        std::io::stdout().flush()?;
        let settings = ServerSettings {
            max_header_bytes: config.limits.max_header_bytes,
            drain_timeout: Duration::from_secs(30),
        };
        serve(listener, gateway, settings, shutdown_signal()).await;
        Ok(())
    })
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
