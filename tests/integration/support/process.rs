//! The `weir` binary as a child process, started on port 0.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// What a child wrote to stderr, read as it comes so the pipe never fills.
#[derive(Clone)]
pub struct Output {
    bytes: Arc<AtomicU64>,
    text: Arc<Mutex<String>>,
    /// Becomes true when the stream ends (the child closed it or exited).
    ended: tokio::sync::watch::Receiver<bool>,
}

impl Output {
    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }
    /// The text kept so far (the first 16 MiB).
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }
    /// Wait until the stream has ended: everything written has been read.
    pub async fn ended(&self) {
        let mut ended = self.ended.clone();
        let _ = ended.wait_for(|ended| *ended).await;
    }
}

/// Read `stream` (a child's stderr) as it comes into an [`Output`], so
/// the pipe never fills.
pub fn capture(mut stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Output {
    let (end, ended) = tokio::sync::watch::channel(false);
    let output = Output {
        bytes: Arc::default(),
        text: Arc::default(),
        ended,
    };
    let sink = output.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    sink.bytes.fetch_add(n as u64, Ordering::SeqCst);
                    let mut text = sink.text.lock().unwrap();
                    if text.len() < 16 << 20 {
                        text.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            }
        }
        let _ = end.send(true);
    });
    output
}

/// Run `weir ARGS` to completion, without an admin token from the
/// environment: (success, stdout, stderr).
pub async fn run_to_end(args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new(WEIR)
        .args(args)
        .env_remove("WEIR_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (status, _, _) = tokio::time::timeout(Duration::from_secs(120), async {
        tokio::join!(
            child.wait(),
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        )
    })
    .await
    .expect("weir did not finish");
    (status.unwrap().success(), out, err)
}

/// A running `weir run`; killed when dropped.
pub struct Process {
    child: Child,
    pub addr: String,
    /// The HTTPS listener's address, with a `[tls]` section.
    pub tls_addr: Option<String>,
    /// The admin API's address, when it is enabled.
    pub admin: Option<String>,
}

impl Process {
    pub async fn start(config: &Path) -> Process {
        Process::start_with(config, &[], Stdio::inherit()).await
    }

    pub async fn start_with(config: &Path, extra: &[&str], stderr: Stdio) -> Process {
        Process::start_listening(config, "127.0.0.1:0", extra, stderr).await
    }

    /// Start with the proxy on `listen` (a fixed port, e.g. the one an
    /// ACME server validates on).
    pub async fn start_listening(
        config: &Path,
        listen: &str,
        extra: &[&str],
        stderr: Stdio,
    ) -> Process {
        let mut child = Command::new(WEIR)
            .args([
                "run",
                "--listen",
                listen,
                "--admin-listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(config)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let has_tls = std::fs::read_to_string(config)
            .unwrap_or_default()
            .contains("[tls]");
        let (addr, tls_addr, admin) = tokio::time::timeout(Duration::from_secs(60), async {
            let (mut addr, mut tls_addr) = (None, None);
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(a) = line.strip_prefix("listening on http://") {
                    addr = Some(a.to_string());
                } else if let Some(a) = line.strip_prefix("listening on https://") {
                    tls_addr = Some(a.to_string());
                } else if let Some(a) = line.strip_prefix("admin listening on http://") {
                    return (
                        addr.expect("proxy address first"),
                        tls_addr,
                        Some(a.to_string()),
                    );
                }
                if let Some(a) = &addr
                    && !config_has_admin(config)
                    && (tls_addr.is_some() || !has_tls)
                {
                    return (a.clone(), tls_addr, None);
                }
            }
            panic!("weir exited without printing its address");
        })
        .await
        .expect("weir did not start within 60 s");
        Process {
            child,
            addr,
            tls_addr,
            admin,
        }
    }

    /// Start with stderr read continuously into the returned [`Output`].
    pub async fn start_capturing(config: &Path) -> (Process, Output) {
        let mut process = Process::start_with(config, &[], Stdio::piped()).await;
        let output = capture(process.child.stderr.take().unwrap());
        (process, output)
    }

    /// Resident memory of the process, in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }

    /// Whether the process is still running.
    /// Kill it and wait until it has exited (its ports are free again).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A URL on the admin API.
    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.admin.as_deref().expect("the admin API is enabled")
        )
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Send SIGTERM, wait for the exit, and return what it wrote to stderr
    /// (when piped).
    pub async fn terminate_and_read_stderr(mut self) -> (std::process::ExitStatus, String) {
        let mut stderr = self.child.stderr.take().unwrap();
        let reader = tokio::spawn(async move {
            let mut text = String::new();
            stderr.read_to_string(&mut text).await.unwrap();
            text
        });
        let status = self.terminate().await;
        (status, reader.await.unwrap())
    }

    /// Send SIGTERM and wait for the exit code.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("weir did not exit after SIGTERM")
            .unwrap()
    }
}

/// Whether the config at `path` leaves the admin API enabled (it prints a
/// second address line then).
fn config_has_admin(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let config: toml::Table = text.parse().unwrap_or_default();
    config
        .get("admin")
        .and_then(|admin| admin.get("enabled"))
        .and_then(toml::Value::as_bool)
        .unwrap_or(true)
}
