//! A real headless Chromium, driven over the DevTools protocol (CDP) from
//! the test: launched with `--remote-debugging-port=0`, reached over the
//! WebSocket it prints, with one page (a flattened target session) that
//! navigates, evaluates JavaScript and takes screenshots. Debian's
//! `chromium` is required; a missing browser fails the test with what to
//! install, as missing plugin toolchains do (`toolchains.rs`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// How long one protocol command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// The browser: `$WEIR_CHROMIUM`, `/usr/bin/chromium`, or `chromium` on
/// `PATH`.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("WEIR_CHROMIUM") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    [PathBuf::from("/usr/bin")]
        .into_iter()
        .chain(on_path)
        .flat_map(|dir| [dir.join("chromium"), dir.join("chromium-browser")])
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium is not installed. The web dashboard is tested in a real headless \
                 browser: run `apt-get install chromium` (or set WEIR_CHROMIUM to a Chromium \
                 or Chrome binary)"
            )
        })
}

/// Where screenshots go: `$CARGO_TARGET_DIR/web-ui`, or `target/web-ui`.
pub fn screenshot_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        // The target directory this test binary was built in.
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .to_path_buf(),
    };
    target.join("web-ui")
}

/// A headless Chromium with one page; killed (with its helper processes)
/// when dropped.
pub struct Browser {
    child: Child,
    pid: u32,
    socket: Socket,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Launch the browser and open a blank page, `width` x `height`.
    pub async fn launch(width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                // Nothing but the pages the test opens: no update checks,
                // sync or other background traffic.
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-sync",
                &format!("--window-size={width},{height}"),
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own group, so dropping it kills the renderers too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromium: {e}"));
        let pid = child.id().unwrap();
        let url = devtools_url(&mut child).await;
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to chromium at {url}: {e}"));
        let mut browser = Browser {
            child,
            pid,
            socket,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = browser
            .browser_call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = browser
            .browser_call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await;
        browser
    }

    /// Go to `url` (returns once the navigation is committed, not loaded:
    /// wait for what the page should show with [`Browser::wait_for`]).
    pub async fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({"url": url})).await;
        if let Some(error) = result["errorText"].as_str().filter(|e| !e.is_empty()) {
            panic!("navigating to {url} failed: {error}");
        }
    }

    /// Evaluate `expression` in the page (promises awaited) and return its
    /// value as JSON.
    pub async fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression)
            .await
            .unwrap_or_else(|e| panic!("`{expression}`: {e}"))
    }

    /// [`Browser::eval`], with a thrown exception (or a page between two
    /// documents) as an error.
    async fn try_eval(&mut self, expression: &str) -> Result<Value, String> {
        let session = self.session.clone();
        let result = self
            .request(
                Some(&session),
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        match result.get("exceptionDetails") {
            Some(exception) => Err(format!("threw {exception}")),
            None => Ok(result["result"]["value"].clone()),
        }
    }

    /// Evaluate `expression` until it is truthy (not null, false, 0 or ""),
    /// for up to `within`, and return that value. The page updates itself
    /// on its own schedule; this polls what it shows.
    pub async fn wait_for(&mut self, expression: &str, within: Duration, what: &str) -> Value {
        let deadline = Instant::now() + within;
        loop {
            // While a form submission navigates, the old document is gone
            // and the new one not there yet: not an answer either way.
            let value = self.try_eval(expression).await.unwrap_or(Value::Null);
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let text = self
                    .try_eval("document.body && document.body.innerText")
                    .await;
                panic!(
                    "{what}: not seen within {within:?} (last {value}); the page shows:\n{text:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Save a PNG of the page as `name` under [`screenshot_dir`].
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    /// A command to the page's session.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params).await
    }

    /// A command to the browser itself.
    async fn browser_call(&mut self, method: &str, params: Value) -> Value {
        self.send(None, method, params).await
    }

    async fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.request(session, method, params)
            .await
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// Send one command and read until its reply, skipping events (the
    /// test sends one command at a time); the protocol's error as `Err`.
    async fn request(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{method}: the browser connection failed: {e}"));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no reply within {COMMAND_TIMEOUT:?}"))
                .unwrap_or_else(|| panic!("{method}: the browser closed the connection"))
                .unwrap_or_else(|e| panic!("{method}: {e}"));
            let Message::Text(text) = frame else {
                continue;
            };
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            if reply["id"] != json!(id) {
                continue;
            }
            return match reply.get("error") {
                Some(error) => Err(error.to_string()),
                None => Ok(reply["result"].clone()),
            };
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: the browser and the renderer, GPU and utility
        // processes it started.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pid)])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.start_kill();
    }
}

/// Read the browser's stderr until it prints its DevTools WebSocket URL,
/// then keep draining it so the pipe never fills.
async fn devtools_url(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("DevTools listening on")
                && let Some(at) = line.find("ws://")
            {
                return Some(line[at..].trim().to_string());
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        None
    })
    .await;
    match found {
        Ok(Some(url)) => {
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            url
        }
        Ok(None) => panic!("chromium exited without a DevTools URL:\n{seen}"),
        Err(_) => panic!("chromium printed no DevTools URL within 30 s:\n{seen}"),
    }
}
