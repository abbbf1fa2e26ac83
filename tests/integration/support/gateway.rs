//! Building a gateway directory (weir.toml + plugins) in a temp dir, and
//! running it in-process on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use weir::config::{Config, Limits, RuntimeSettings};
use weir::server::serve;
use weir::{Gateway, Runtime, Stores};

/// A built wasm artifact of this workspace, e.g. `hello_header`.
pub fn wasm(artifact: &str) -> PathBuf {
    let path = Path::new(weir::BUILT_WASM_DIR).join(format!("{artifact}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: the build script should have built it",
        path.display()
    );
    path
}

/// Compiled plugins are cached across tests (and test runs).
pub fn shared_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("weir-plugin-cache")
}

/// One engine for all in-process tests, as in production one per process.
pub fn shared_runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let settings = RuntimeSettings {
                pool_instances: 1000,
                ..RuntimeSettings::default()
            };
            Runtime::new(&Limits::default(), &settings).unwrap()
        })
        .clone()
}

/// A gateway directory under construction.
pub struct Setup {
    pub dir: tempfile::TempDir,
    top: Vec<String>,
    limits: Vec<String>,
    runtime: Vec<String>,
    state: Vec<String>,
    budgets: Vec<String>,
    tls: Vec<String>,
    admin: Vec<String>,
    reload: Vec<String>,
    log: Vec<String>,
    upstreams: Vec<String>,
    /// Whole sections, e.g. `[tracing]` with its lines.
    sections: Vec<String>,
}

impl Setup {
    pub fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        Setup {
            dir,
            top: vec![format!(
                "cache_dir = {:?}",
                shared_cache_dir().display().to_string()
            )],
            limits: Vec::new(),
            runtime: Vec::new(),
            state: Vec::new(),
            budgets: Vec::new(),
            tls: Vec::new(),
            // Never a fixed port: several gateways run at once.
            admin: vec!["listen = \"127.0.0.1:0\"".to_string()],
            reload: Vec::new(),
            log: vec!["access_log = false".to_string()],
            upstreams: Vec::new(),
            sections: Vec::new(),
        }
    }

    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// Add a plugin: a copy of a built artifact as `STEM.wasm`, and its config.
    pub fn plugin(self, stem: &str, artifact: &str, config: Option<serde_json::Value>) -> Setup {
        self.plugin_file(stem, &wasm(artifact), config)
    }

    /// Add a plugin from any built file, with its config.
    pub fn plugin_file(self, stem: &str, wasm: &Path, config: Option<serde_json::Value>) -> Setup {
        std::fs::copy(wasm, self.plugins_dir().join(format!("{stem}.wasm"))).unwrap();
        if let Some(config) = config {
            std::fs::write(
                self.plugins_dir().join(format!("{stem}.json")),
                config.to_string(),
            )
            .unwrap();
        }
        self
    }

    /// Add the scripted test plugin with this script.
    pub fn scripted(self, stem: &str, script: serde_json::Value) -> Setup {
        self.plugin(stem, "fixture_scripted", Some(script))
    }

    /// Add the default router as `50-router` with this config.
    pub fn router(self, config: serde_json::Value) -> Setup {
        self.plugin("50-router", "weir_plugin_router", Some(config))
    }

    /// Add a file as-is to the plugin directory.
    pub fn raw_file(self, name: &str, bytes: &[u8]) -> Setup {
        std::fs::write(self.plugins_dir().join(name), bytes).unwrap();
        self
    }

    pub fn upstream(mut self, name: &str, targets: &[String]) -> Setup {
        let targets: Vec<String> = targets.iter().map(|t| format!("{t:?}")).collect();
        self.upstreams.push(format!(
            "[upstreams.{name}]\ntargets = [{}]",
            targets.join(", ")
        ));
        self
    }

    /// Add a raw upstream section body (after `[upstreams.NAME]`).
    pub fn upstream_with(mut self, name: &str, body: &str) -> Setup {
        self.upstreams.push(format!("[upstreams.{name}]\n{body}"));
        self
    }

    /// A top-level line (before any table), e.g. `drain_timeout_ms = 100`.
    pub fn top(mut self, line: &str) -> Setup {
        self.top.push(line.to_string());
        self
    }

    pub fn limit(mut self, line: &str) -> Setup {
        self.limits.push(line.to_string());
        self
    }

    /// An `[admin]` line.
    pub fn admin(mut self, line: &str) -> Setup {
        self.admin.push(line.to_string());
        self
    }

    /// A `[reload]` line.
    pub fn reload(mut self, line: &str) -> Setup {
        self.reload.push(line.to_string());
        self
    }

    /// A `[state]` line.
    pub fn state(mut self, line: &str) -> Setup {
        self.state.push(line.to_string());
        self
    }

    /// A `[tls]` line (`listen` defaults to a free loopback port).
    pub fn tls(mut self, line: &str) -> Setup {
        if self.tls.is_empty() {
            self.tls.push("listen = \"127.0.0.1:0\"".to_string());
        }
        self.tls.push(line.to_string());
        self
    }

    /// A `[budgets]` line.
    pub fn budget(mut self, line: &str) -> Setup {
        self.budgets.push(line.to_string());
        self
    }

    pub fn runtime(mut self, line: &str) -> Setup {
        self.runtime.push(line.to_string());
        self
    }

    /// Use this compiled-plugin cache instead of the shared one.
    pub fn cache_dir(mut self, dir: &Path) -> Setup {
        self.top[0] = format!("cache_dir = {:?}", dir.display().to_string());
        self
    }

    /// A whole section, header included (`"[tracing]\nsample_ratio = 1.0"`).
    pub fn section(mut self, text: &str) -> Setup {
        self.sections.push(text.to_string());
        self
    }

    /// Replace the `[log]` section's lines.
    pub fn log(mut self, lines: &[&str]) -> Setup {
        self.log = lines.iter().map(|l| l.to_string()).collect();
        self
    }

    pub fn toml(&self) -> String {
        let mut text = self.top.join("\n");
        text.push_str(&format!("\n[log]\n{}\n", self.log.join("\n")));
        text.push_str(&format!("[limits]\n{}\n", self.limits.join("\n")));
        text.push_str(&format!("[runtime]\n{}\n", self.runtime.join("\n")));
        text.push_str(&format!("[state]\n{}\n", self.state.join("\n")));
        text.push_str(&format!("[budgets]\n{}\n", self.budgets.join("\n")));
        text.push_str(&format!("[admin]\n{}\n", self.admin.join("\n")));
        text.push_str(&format!("[reload]\n{}\n", self.reload.join("\n")));
        if !self.tls.is_empty() {
            text.push_str(&format!("[tls]\n{}\n", self.tls.join("\n")));
        }
        for section in &self.sections {
            text.push_str(section);
            text.push('\n');
        }
        for upstream in &self.upstreams {
            text.push_str(upstream);
            text.push('\n');
        }
        text
    }

    /// Write `weir.toml` and return its path.
    pub fn write(&self) -> PathBuf {
        let path = self.dir.path().join("weir.toml");
        std::fs::write(&path, self.toml()).unwrap();
        path
    }

    pub fn config(&self) -> Config {
        Config::load(&self.write()).unwrap()
    }

    /// Load the gateway (on the shared engine), or the load error.
    pub async fn try_gateway(&self) -> Result<Gateway, weir::plugin::LoadError> {
        let config = self.config();
        let stores = Stores::from_config(&config)?;
        Gateway::with_runtime(shared_runtime(), &config, stores).await
    }

    pub async fn gateway(&self) -> Gateway {
        self.try_gateway().await.unwrap()
    }

    /// Load and serve plain HTTP (or the redirect, with `redirect_http`)
    /// and HTTPS, each on a free loopback port.
    pub async fn serve_tls(&self) -> Running {
        use weir::server::{Mode, serve_mode};
        let config = self.config();
        let tls_config = config.tls.clone().expect("a [tls] section");
        let tls = weir::server::tls::TlsState::load(&config, &tls_config).unwrap();
        let gateway = Arc::new(self.gateway().await);
        let secure = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_addr = secure.local_addr().unwrap();
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = plain.local_addr().unwrap();
        let plain_mode = match tls_config.redirect_http {
            true => Mode::RedirectToHttps(tls_addr.port()),
            false => Mode::Plain,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (stop_tls, stopped_tls) = tokio::sync::watch::channel(false);
        tokio::spawn(serve_mode(plain, plain_mode, gateway.clone(), async move {
            let _ = stopped.await;
            let _ = stop_tls.send(true);
        }));
        let mut stopped_tls = stopped_tls;
        tokio::spawn(serve_mode(
            secure,
            Mode::Tls(tls.clone()),
            gateway.clone(),
            async move {
                let _ = stopped_tls.changed().await;
            },
        ));
        Running {
            addr,
            gateway,
            tls_addr: Some(tls_addr),
            tls: Some(tls),
            stop: Some(stop),
        }
    }

    /// Load and serve on `127.0.0.1:0`.
    pub async fn serve(&self) -> Running {
        Running::start(Arc::new(self.gateway().await)).await
    }
}

/// A gateway served in-process; stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    /// The HTTPS listener, when served with [`Setup::serve_tls`].
    pub tls_addr: Option<SocketAddr>,
    pub tls: Option<Arc<weir::server::tls::TlsState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    pub async fn start(gateway: Arc<Gateway>) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, gateway.clone(), async move {
            let _ = stopped.await;
        }));
        Running {
            addr,
            gateway,
            tls_addr: None,
            tls: None,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
