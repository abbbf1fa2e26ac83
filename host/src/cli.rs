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
use crate::server::ServerSettings;

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
    /// Run one plugin outside a gateway: feed it a request (and a
    /// response), with stubbed capabilities, and print what it did.
    TestPlugin {
        /// The plugin (`.wasm`).
        plugin: PathBuf,
        /// Its JSON config (`{}` when absent).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The request, as JSON: method, path, headers, body, client, context.
        #[arg(long)]
        request: Option<PathBuf>,
        /// A response to run `on-response` with, as JSON: status, headers, body.
        #[arg(long)]
        response: Option<PathBuf>,
        /// Canned answers: upstreams, outbound calls, rate decisions.
        #[arg(long)]
        stubs: Option<PathBuf>,
        /// Expected outcome (a subset of the output); exit 1 on a mismatch.
        #[arg(long)]
        expect: Option<PathBuf>,
    },
    /// Create a new project.
    New {
        #[command(subcommand)]
        what: NewCommand,
    },
    /// Validate the configuration and load every plugin, then exit.
    Check {
        /// The configuration file.
        #[arg(long, short, default_value = "weir.toml")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum NewCommand {
    /// A plugin project with a config, a test and a README.
    Plugin {
        /// The plugin's name (also the directory created).
        name: String,
        /// The language.
        #[arg(long, value_enum)]
        lang: crate::scaffold::Lang,
        /// Where to create the project directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// For Rust: path to the `weir-sdk` crate (default: this checkout's).
        #[arg(long)]
        sdk: Option<PathBuf>,
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
        Command::TestPlugin {
            plugin,
            config,
            request,
            response,
            stubs,
            expect,
        } => test_plugin(
            &plugin,
            config.as_deref(),
            request.as_deref(),
            response.as_deref(),
            stubs.as_deref(),
            expect.as_deref(),
        ),
        Command::New {
            what:
                NewCommand::Plugin {
                    name,
                    lang,
                    dir,
                    sdk,
                },
        } => new_plugin(&dir, &name, lang, sdk.as_deref()),
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

/// The control runtime: loading, reloads, the admin API, health checks and
/// signals. Requests are served by the worker threads (`server/workers.rs`).
fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("weir-control")
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
    let tls = match &config.tls {
        Some(settings) => Some(
            crate::server::tls::TlsState::load(&config, settings)
                .map_err(|e| anyhow::anyhow!("[tls]: {e}"))?,
        ),
        None => None,
    };
    let workers = crate::server::workers::worker_count(config.runtime.worker_threads);
    let listeners = bind_listeners(&config, tls.as_ref(), workers)?;
    let admin_listener = match config.admin.enabled {
        true => Some(bind(config.admin.listen, "admin API").await?),
        false => None,
    };
    // Tests and scripts read these lines to find the ports.
    println!("listening on http://{}", listeners.plain_addr);
    if let Some(addr) = listeners.tls_addr {
        println!("listening on https://{addr}");
    }
    if let Some(admin) = &admin_listener {
        println!("admin listening on http://{}", admin.local_addr()?);
    }
    std::io::stdout().flush()?;

    let reloader = Reloader::new(gateway.clone(), path, from_file, tls.clone());
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
    let settings = ServerSettings::from_config(&config);
    let traces = gateway.stores().tracing.clone();
    let serving = crate::server::workers::Workers::start(listeners.per_worker, gateway, settings)?;
    tracing::info!(workers, "serving");
    shutdown_signal().await;
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

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn test_plugin(
    plugin: &Path,
    config: Option<&Path>,
    request: Option<&Path>,
    response: Option<&Path>,
    stubs: Option<&Path>,
    expect: Option<&Path>,
) -> anyhow::Result<()> {
    use crate::testkit::{PluginUnderTest, TestAction, TestRequest, TestResponse};
    crate::logging::init(LogFormat::Text, "warn");
    let config_text = match config {
        Some(path) => {
            let mut value: serde_json::Value = read_json(path)?;
            let dir = path.parent().unwrap_or(Path::new("."));
            crate::plugin_config::include_files(&mut value, dir)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            value.to_string()
        }
        None => "{}".to_string(),
    };
    let stubs = stubs.map(read_json).transpose()?.unwrap_or_default();
    let request: TestRequest = request.map(read_json).transpose()?.unwrap_or_default();
    let response: Option<TestResponse> = response.map(read_json).transpose()?;
    let cache = std::env::temp_dir().join("weir-test-plugin-cache");
    let output = tokio_runtime()?.block_on(async {
        let kit = PluginUnderTest::load_with_config_file(
            plugin,
            &config_text,
            config,
            stubs,
            Some(&cache),
        )
        .await?;
        let on_request = kit.on_request(&request).await?;
        let mut output = serde_json::Map::new();
        output.insert("on_request".into(), serde_json::to_value(&on_request)?);
        if let (TestAction::Continue, Some(response)) = (&on_request.action, &response) {
            let on_response = kit.on_response(&on_request.request, response).await?;
            output.insert("on_response".into(), serde_json::to_value(&on_response)?);
        }
        output.insert("calls".into(), serde_json::to_value(kit.take_calls())?);
        output.insert("logs".into(), serde_json::to_value(kit.take_logs())?);
        // Metrics as `name{label=value,...}: value`, so an expect file can
        // name just the series it cares about.
        let metrics: serde_json::Map<String, serde_json::Value> = kit
            .metrics()
            .iter()
            .map(|sample| (sample.key(), serde_json::json!(sample.value)))
            .collect();
        output.insert("metrics".into(), serde_json::Value::Object(metrics));
        Ok::<_, anyhow::Error>(serde_json::Value::Object(output))
    })?;
    println!("{}", serde_json::to_string_pretty(&output)?);
    if let Some(expect) = expect {
        let expected: serde_json::Value = read_json(expect)?;
        if let Some(difference) = crate::testkit::subset_mismatch(&expected, &output, "") {
            anyhow::bail!("{} does not match: {difference}", expect.display());
        }
        eprintln!("ok: matches {}", expect.display());
    }
    Ok(())
}

fn new_plugin(
    dir: &Path,
    name: &str,
    lang: crate::scaffold::Lang,
    sdk: Option<&Path>,
) -> anyhow::Result<()> {
    let files = crate::scaffold::new_plugin(dir, name, lang, sdk)?;
    for file in &files {
        println!("wrote {}", file.display());
    }
    println!(
        "next: see {} for how to build, test and deploy it",
        dir.join(name).join("README.md").display()
    );
    Ok(())
}
