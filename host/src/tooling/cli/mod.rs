//! The `weir` command line: `run`, `demo`, `init`, `check`, `test-plugin`,
//! `new`, `build-js`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod serve;

use crate::config::{Config, LogFormat};
use crate::gateway::Gateway;

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
    /// Run a demo gateway that works alone: writes DIR (as `init` does) if
    /// it does not exist, serves the demo upstreams `users` and `orders`
    /// from this process, and prints the commands to try.
    Demo {
        /// The demo's directory.
        #[arg(long, default_value = "demo")]
        dir: PathBuf,
        /// Listen here instead of the configured address (port 0 picks one).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve the admin API here instead of `[admin] listen`.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
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
    /// Build a JavaScript plugin into a component with the JavaScript
    /// runtime this binary carries (QuickJS): no other toolchain needed.
    /// The entry module, and the other .js/.mjs files under its directory,
    /// are bundled in.
    BuildJs {
        /// The entry module: it exports `handler`.
        entry: PathBuf,
        /// The component to write (default: the entry with `.wasm`).
        #[arg(long, short)]
        out: Option<PathBuf>,
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
        lang: crate::tooling::scaffold::Lang,
        /// Where to create the project directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// For Rust: path to another `weir-sdk` crate (default: the copy
        /// this binary carries, written into the project as `weir-sdk/`).
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
        } => serve::run(&config, listen, admin_listen, init, log_format),
        Command::Demo {
            dir,
            listen,
            admin_listen,
        } => serve::demo(&dir, listen, admin_listen),
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
        Command::BuildJs { entry, out } => build_js(&entry, out.as_deref()),
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
pub(crate) fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("weir-control")
        .enable_all()
        .build()?)
}

fn init(dir: &Path, force: bool) -> anyhow::Result<()> {
    for file in crate::tooling::init::write_gateway(&dir.join("weir.toml"), force)? {
        println!("wrote {}", file.display());
    }
    println!(
        "start it with: weir run --config {}",
        dir.join("weir.toml").display()
    );
    Ok(())
}

fn build_js(entry: &Path, out: Option<&Path>) -> anyhow::Result<()> {
    let out = out.map_or_else(|| entry.with_extension("wasm"), Path::to_path_buf);
    let modules = crate::tooling::js_build::build(entry, &out)?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({modules} module{}, {size} bytes)",
        out.display(),
        if modules == 1 { "" } else { "s" }
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
            // What the plugin imports against what it is granted, so a
            // grant wider than the plugin needs is visible.
            let info = plugin.info();
            println!(
                "plugin {} ok ({}, {}) imports: {}; grants: {}",
                plugin.name(),
                info.file.display(),
                contract_label(info.contract),
                crate::governance::grants::list(&info.imports),
                info.grants.describe(plugin.name())
            );
        }
        for upstream in pipeline.upstreams().iter() {
            // Targets named by DNS: show what they resolve to now.
            upstream.first_answer().await;
            let targets: Vec<String> = upstream
                .targets()
                .iter()
                .map(|t| match t.origin() {
                    Some(origin) => format!("{} (from {origin})", t.authority()),
                    None => t.authority().to_string(),
                })
                .collect();
            println!("upstream {} -> {}", upstream.name(), targets.join(", "));
            if let Some(error) = upstream.discovery().and_then(|d| d.last_error) {
                println!("upstream {}: DNS: {error}", upstream.name());
            }
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
    use crate::tooling::testkit::{PluginUnderTest, TestAction, TestRequest, TestResponse};
    crate::logging::init(LogFormat::Text, "warn");
    let proxy_wasm = std::fs::read(plugin).is_ok_and(|bytes| {
        crate::runtime::compile::classify(&bytes) == crate::runtime::compile::WasmKind::CoreModule
    });
    let config_text = match config {
        // A proxy-wasm filter's configuration is opaque bytes, given as
        // they are (text here); it need not be JSON.
        Some(path) if proxy_wasm => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot be read: {e}", path.display()))?,
        None if proxy_wasm => String::new(),
        Some(path) => {
            let mut value: serde_json::Value = read_json(path)?;
            let dir = path.parent().unwrap_or(Path::new("."));
            crate::plugin::config::include_files(&mut value, dir)
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
        // What the plugin declared from `init`: a gateway calls it only
        // for requests routed to one of these (null: every request). The
        // kit calls the hooks whatever the request's route, so a test can
        // still exercise them.
        output.insert("routes".into(), serde_json::to_value(kit.routes())?);
        output.insert("on_request".into(), serde_json::to_value(&on_request)?);
        // `respond-then-continue` carries on to this plugin's `on-response`
        // (in the background, in a gateway); `respond` and `wait` do not.
        if let (TestAction::Continue | TestAction::RespondThenContinue { .. }, Some(response)) =
            (&on_request.action, &response)
        {
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
        if let Some(difference) = crate::tooling::testkit::subset_mismatch(&expected, &output, "") {
            anyhow::bail!("{} does not match: {difference}", expect.display());
        }
        eprintln!("ok: matches {}", expect.display());
    }
    Ok(())
}

/// How `weir check` names what a plugin implements: `weir:plugin@0.5.0`,
/// or the proxy-wasm ABI a filter declares.
fn contract_label(contract: &str) -> String {
    if contract.starts_with("proxy-wasm") {
        format!("{contract} filter")
    } else if contract.starts_with("wasi:http") {
        contract.to_string()
    } else {
        format!("weir:plugin@{contract}")
    }
}

fn new_plugin(
    dir: &Path,
    name: &str,
    lang: crate::tooling::scaffold::Lang,
    sdk: Option<&Path>,
) -> anyhow::Result<()> {
    let files = crate::tooling::scaffold::new_plugin(dir, name, lang, sdk)?;
    let sdk_dir = dir.join(name).join("weir-sdk");
    let (carried, own): (Vec<_>, Vec<_>) = files.iter().partition(|f| f.starts_with(&sdk_dir));
    for file in &own {
        println!("wrote {}", file.display());
    }
    if !carried.is_empty() {
        println!(
            "wrote {} (the Rust SDK and the contract's WIT, {} files)",
            sdk_dir.display(),
            carried.len()
        );
    }
    println!(
        "next: see {} for how to build, test and deploy it",
        dir.join(name).join("README.md").display()
    );
    Ok(())
}
