//! The plugin kit: `weir test-plugin` and the test-kit library on plugins
//! of every language, and `weir new plugin` scaffolds that build and pass
//! their own test with the real toolchains.

use std::path::{Path, PathBuf};
use std::process::Command;

use weir::tooling::testkit::{PluginUnderTest, Stubs, TestAction, TestRequest, TestResponse};

use crate::support::process::WEIR;
use crate::support::toolchains;
use crate::support::*;

fn weir_command(args: &[&str], dir: &Path) -> (bool, String, String) {
    let output = Command::new(WEIR)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn cache() -> PathBuf {
    crate::support::gateway::shared_cache_dir()
}

#[tokio::test]
async fn the_kit_runs_a_python_plugin_and_shows_its_reply_and_logs() {
    let config = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python-validator/config.json"),
    )
    .unwrap();
    let kit = PluginUnderTest::load(
        toolchains::python_validator(),
        &config,
        Stubs::default(),
        Some(&cache()),
    )
    .await
    .unwrap();
    let request = TestRequest {
        method: "POST".into(),
        path: "/orders".into(),
        body: weir::tooling::testkit::BodyText::Text(r#"{"item": "tea"}"#.into()),
        ..TestRequest::default()
    };
    let outcome = kit.on_request(&request).await.unwrap();
    let TestAction::Respond { reply } = outcome.action else {
        panic!("the request was not refused")
    };
    assert_eq!(reply.status, 422);
    assert_eq!(reply.headers.get("content-type"), Some("application/json"));
    let logs = kit.take_logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].level, "info");
    assert!(logs[0].message.contains("1 validation error"), "{logs:?}");
}

#[tokio::test]
async fn the_kit_stubs_outbound_calls_and_records_them() {
    let stubs: Stubs = serde_json::from_value(json!({
        "upstreams": ["users", "orders", "billing"],
        "outbound": [
            {"upstream": "users", "path": "/users/7", "body": "{\"id\": 7, \"plan_id\": \"gold\"}"},
            {"upstream": "orders", "path": "/orders?user=7&limit=5", "error": "timeout"},
            {"upstream": "billing", "path": "/plans/gold", "status": 200, "body": "{\"price\": 10}"}
        ]
    }))
    .unwrap();
    let config = json!({"endpoints": [{"path": "/users/{id}/summary", "calls": {
        "user": {"upstream": "users", "path": "/users/{id}"},
        "orders": {"upstream": "orders", "path": "/orders?user={id}&limit=5", "optional": true},
        "plan": {"upstream": "billing", "path": "/plans/{user.plan_id}"}
    }}]});
    let kit = PluginUnderTest::load(
        &wasm("weir_plugin_aggregate"),
        &config.to_string(),
        stubs,
        Some(&cache()),
    )
    .await
    .unwrap();
    let request = TestRequest {
        path: "/users/7/summary".into(),
        ..TestRequest::default()
    };
    let outcome = kit.on_request(&request).await.unwrap();
    let TestAction::Respond { reply } = outcome.action else {
        panic!("aggregate did not answer")
    };
    let body: serde_json::Value = match &reply.body {
        weir::tooling::testkit::BodyText::Text(text) => serde_json::from_str(text).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(body["plan"]["price"], 10);
    assert_eq!(body["_errors"]["orders"], "timed out");
    let paths: Vec<String> = kit.take_calls().into_iter().map(|c| c.path).collect();
    assert_eq!(paths.len(), 3);
    assert!(paths.contains(&"/plans/gold".to_string()));
}

/// The kit sets the resolved client (`client-ip`) apart from the peer, so
/// a plugin judging clients behind proxies is testable without a gateway.
#[tokio::test]
async fn the_kit_gives_a_plugin_the_resolved_client_ip() {
    let kit = PluginUnderTest::load(
        &wasm("weir_plugin_ip_filter"),
        r#"{"default": {"deny": ["203.0.113.0/24"]}}"#,
        Stubs::default(),
        Some(&cache()),
    )
    .await
    .unwrap();
    let behind_proxy = TestRequest {
        client_ip: Some("203.0.113.9".parse().unwrap()),
        ..TestRequest::default()
    };
    let outcome = kit.on_request(&behind_proxy).await.unwrap();
    let TestAction::Respond { reply } = outcome.action else {
        panic!("the denied client went on: {:?}", outcome.action)
    };
    assert_eq!(reply.status, 403);
    // The peer alone (127.0.0.1) is not denied.
    let outcome = kit.on_request(&TestRequest::default()).await.unwrap();
    assert!(
        matches!(outcome.action, TestAction::Continue),
        "{:?}",
        outcome.action
    );
}

#[tokio::test]
async fn the_kit_reports_respond_then_continue_and_wait_as_returned() {
    let load = |script: serde_json::Value| async move {
        PluginUnderTest::load(
            &wasm("fixture_scripted"),
            &script.to_string(),
            Stubs::default(),
            Some(&cache()),
        )
        .await
        .unwrap()
    };
    let kit = load(json!({"on_request": [
        {"op": "respond_then_continue", "status": 203, "body": "stale"}]}))
    .await;
    let outcome = kit.on_request(&TestRequest::default()).await.unwrap();
    let TestAction::RespondThenContinue { reply } = &outcome.action else {
        panic!("{:?}", outcome.action)
    };
    assert_eq!(reply.status, 203);
    let json = serde_json::to_value(&outcome).unwrap();
    assert_eq!(json["action"], "respond_then_continue");
    assert_eq!(json["reply"]["body"], "stale");

    let kit = load(json!({"on_request": [{"op": "wait", "key": "fill", "timeout_ms": 250}]})).await;
    let outcome = kit.on_request(&TestRequest::default()).await.unwrap();
    assert_eq!(
        outcome.action,
        TestAction::Wait {
            key: "fill".into(),
            timeout_ms: 250
        }
    );
    let json = serde_json::to_value(&outcome).unwrap();
    assert_eq!(json["action"], "wait");
    assert_eq!(json["timeout_ms"], 250);
}

#[tokio::test]
async fn test_plugin_on_the_command_line_checks_an_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, value: serde_json::Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path
    };
    write(
        "config.json",
        json!({"allow_origins": ["https://a.example"]}),
    );
    write(
        "request.json",
        json!({"method": "GET", "path": "/", "headers": {"origin": "https://a.example"}}),
    );
    write("response.json", json!({"status": 200, "body": "ok"}));
    write(
        "expect.json",
        json!({"on_response": {"response": {"headers": {"access-control-allow-origin": "https://a.example", "x-frame-options": "DENY"}}}}),
    );
    write(
        "wrong.json",
        json!({"on_response": {"response": {"status": 201}}}),
    );
    let plugin = toolchains::js_security_headers()
        .to_str()
        .unwrap()
        .to_string();
    let args = |expect: &str| {
        vec![
            "test-plugin".to_string(),
            plugin.clone(),
            "--config".into(),
            "config.json".into(),
            "--request".into(),
            "request.json".into(),
            "--response".into(),
            "response.json".into(),
            "--expect".into(),
            expect.into(),
        ]
    };
    let run = |expect: &str| {
        let a = args(expect);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        weir_command(&a, dir.path())
    };
    let (ok, out, err) = run("expect.json");
    assert!(ok, "{out}{err}");
    let output: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(output["on_request"]["action"], "continue");
    assert_eq!(
        output["on_response"]["response"]["headers"]["referrer-policy"],
        "no-referrer"
    );
    let (ok, _, err) = run("wrong.json");
    assert!(!ok);
    assert!(
        err.contains("/on_response/response/status: expected 201, found 200"),
        "{err}"
    );
}

/// `weir test-plugin` shows the routes a plugin declared from `init`
/// (contract 0.5.0), `null` for a plugin that runs on every request.
#[tokio::test]
async fn test_plugin_shows_the_routes_a_plugin_declares() {
    let dir = tempfile::tempdir().unwrap();
    let sample = include_str!("../../plugins/validate/sample.json");
    std::fs::write(dir.path().join("config.json"), sample).unwrap();
    let validate = wasm("weir_plugin_validate");
    let (ok, out, err) = weir_command(
        &[
            "test-plugin",
            validate.to_str().unwrap(),
            "--config",
            "config.json",
        ],
        dir.path(),
    );
    assert!(ok, "{out}{err}");
    let output: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(output["routes"], json!(["orders"]));
    let hello = wasm("hello_header");
    let (ok, out, err) = weir_command(&["test-plugin", hello.to_str().unwrap()], dir.path());
    assert!(ok, "{out}{err}");
    let output: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(output["routes"], serde_json::Value::Null);
}

#[tokio::test]
async fn test_plugin_reports_a_plugin_that_refuses_its_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{\"schema\": 3}").unwrap();
    let plugin = toolchains::python_validator().to_str().unwrap().to_string();
    let (ok, _, err) = weir_command(
        &["test-plugin", &plugin, "--config", "config.json"],
        dir.path(),
    );
    assert!(!ok);
    assert!(
        err.contains("init rejected the config: invalid config: `schema` (an object) is required"),
        "{err}"
    );
    assert!(err.contains("(config file config.json)"), "{err}");
}

/// The `weir` binary copied into an empty directory and run from there,
/// as an author who got the binary alone (a release, the Docker image)
/// runs it: `PATH` holds that copy, the language's toolchain and the
/// system's directories, and nothing under this checkout.
struct Elsewhere {
    root: tempfile::TempDir,
    path: String,
}

impl Elsewhere {
    /// A fresh directory with `bin/weir`; `tools` are linked into `tools/`.
    fn new(tools: &[&Path]) -> Elsewhere {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin");
        let linked = root.path().join("tools");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&linked).unwrap();
        std::fs::copy(WEIR, bin.join("weir")).unwrap();
        for tool in tools {
            // A bare name is found on this process's PATH.
            let found = match tool.is_absolute() {
                true => tool.to_path_buf(),
                false => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                    .map(|dir| dir.join(tool))
                    .find(|candidate| candidate.exists())
                    .unwrap_or_else(|| panic!("{} is not on PATH", tool.display())),
            };
            std::os::unix::fs::symlink(&found, linked.join(tool.file_name().unwrap())).unwrap();
        }
        // Rust's toolchain: the directory of the cargo running these tests.
        let cargo_bin = Path::new(env!("CARGO")).parent().unwrap();
        let path = format!(
            "{}:{}:{}:/usr/local/bin:/usr/bin:/bin",
            bin.display(),
            linked.display(),
            cargo_bin.display()
        );
        Elsewhere { root, path }
    }

    /// Where projects go.
    fn work(&self) -> PathBuf {
        let work = self.root.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        work
    }

    /// `sh -c script` in `dir`, with only this `PATH` and the variables the
    /// toolchains need to find their homes.
    fn sh(&self, script: &str, dir: &Path) -> (bool, String, String) {
        let mut command = Command::new("/bin/sh");
        command
            .args(["-c", script])
            .current_dir(dir)
            .env_clear()
            .env("PATH", &self.path);
        for var in [
            "HOME",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "TMPDIR",
        ] {
            if let Some(value) = std::env::var_os(var) {
                command.env(var, value);
            }
        }
        let output = command.output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// The shell block under `## heading` in a scaffold's README.
fn readme_block(readme: &str, heading: &str) -> String {
    let section = readme
        .split(&format!("## {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no `## {heading}` in the README:\n{readme}"));
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("no sh block under `## {heading}`"));
    block.to_string()
}

/// Scaffold `lang` with a copy of the binary away from this checkout,
/// build it with the README's own commands and the real toolchain (`tools`
/// on `PATH`), and run the README's test, which must pass.
fn scaffold_builds_and_passes_elsewhere(lang: &str, tools: &[&Path]) {
    let elsewhere = Elsewhere::new(tools);
    let work = elsewhere.work();
    let name = format!("my-{lang}-plugin");
    let (ok, out, err) = elsewhere.sh(&format!("weir new plugin {name} --lang {lang}"), &work);
    assert!(ok, "{out}{err}");
    let dir = work.join(&name);
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for entry in walk(&dir) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(
            !text.contains(checkout.to_str().unwrap()),
            "{} names the checkout",
            entry.display()
        );
    }
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let (ok, out, err) = elsewhere.sh(&readme_block(&readme, "Build"), &dir);
    assert!(
        ok,
        "the {lang} scaffold's README build failed:\n{out}\n{err}"
    );
    let (ok, out, err) = elsewhere.sh(&readme_block(&readme, "Test"), &dir);
    assert!(ok, "the {lang} scaffold failed its own test:\n{out}\n{err}");
    assert!(err.contains("ok: matches test/expect.json"), "{err}");
}

/// Every file under `dir`, outside `target/` and `node_modules/`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let skip = path
            .file_name()
            .is_some_and(|n| n == "target" || n == "node_modules");
        if path.is_dir() && !skip {
            files.extend(walk(&path));
        } else if path.is_file() {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_rust_scaffold_builds_and_passes_its_test_away_from_the_checkout() {
    scaffold_builds_and_passes_elsewhere("rust", &[]);
}

#[test]
fn a_python_scaffold_builds_and_passes_its_test_away_from_the_checkout() {
    scaffold_builds_and_passes_elsewhere("python", &[&toolchains::componentize_py()]);
}

#[test]
fn a_js_scaffold_builds_and_passes_its_test_away_from_the_checkout() {
    scaffold_builds_and_passes_elsewhere("js", &[]);
    // It builds with the binary alone: no Node.js project to install.
    let parent = tempfile::tempdir().unwrap();
    let (ok, _, err) = weir_command(&["new", "plugin", "solo", "--lang", "js"], parent.path());
    assert!(ok, "{err}");
    let dir = parent.path().join("solo");
    assert!(!dir.join("package.json").exists());
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert_eq!(
        readme_block(&readme, "Build").trim(),
        "weir build-js plugin.js -o solo.wasm"
    );
}

#[test]
fn scaffolding_refuses_bad_names_and_existing_directories() {
    let parent = tempfile::tempdir().unwrap();
    let (ok, _, err) = weir_command(
        &["new", "plugin", "Bad Name", "--lang", "rust"],
        parent.path(),
    );
    assert!(!ok);
    assert!(err.contains("a plugin name is lower-case"), "{err}");
    std::fs::create_dir(parent.path().join("taken")).unwrap();
    let (ok, _, err) = weir_command(&["new", "plugin", "taken", "--lang", "js"], parent.path());
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn test_response_defaults() {
    let r: TestResponse = serde_json::from_value(json!({})).unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn the_kit_shows_the_metrics_a_plugin_emits() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("40-counting.wasm");
    std::fs::copy(wasm("fixture_scripted"), &plugin).unwrap();
    let script = json!({"on_request": [{"op": "count_metric", "name": "seen",
        "labels": ["method"], "values": ["GET"]}]});
    let kit = PluginUnderTest::load(
        &plugin,
        &script.to_string(),
        Stubs::default(),
        Some(&cache()),
    )
    .await
    .unwrap();
    assert_eq!(
        kit.metric("seen", &[("method", "GET")]),
        None,
        "nothing yet"
    );
    for _ in 0..3 {
        kit.on_request(&TestRequest::default()).await.unwrap();
    }
    assert_eq!(kit.metric("seen", &[("method", "GET")]), Some(3.0));
    assert_eq!(kit.metric("seen", &[("method", "POST")]), None);
    assert_eq!(kit.metrics().len(), 1, "{:?}", kit.metrics());

    // The command line prints them, and an expect file can check them.
    std::fs::write(dir.path().join("config.json"), script.to_string()).unwrap();
    std::fs::write(
        dir.path().join("expect.json"),
        json!({"metrics": {"seen{method=GET}": 1.0}}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("wrong.json"),
        json!({"metrics": {"seen{method=GET}": 2.0}}).to_string(),
    )
    .unwrap();
    let plugin = plugin.to_str().unwrap();
    let run = |expect: &str| {
        weir_command(
            &[
                "test-plugin",
                plugin,
                "--config",
                "config.json",
                "--expect",
                expect,
            ],
            dir.path(),
        )
    };
    let (ok, out, err) = run("expect.json");
    assert!(ok, "{out}{err}");
    let (ok, _, err) = run("wrong.json");
    assert!(!ok);
    assert!(err.contains("seen{method=GET}"), "{err}");
}

/// `weir-sdk` is ready to publish: `cargo package` builds it from the
/// packaged files alone (the WIT included), and its docs build without a
/// warning.
#[test]
fn the_sdk_packages_and_its_docs_build_without_warnings() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-package");
    let cargo = |args: &[&str]| {
        let output = Command::new(env!("CARGO"))
            .args(args)
            .current_dir(workspace)
            .env("CARGO_TARGET_DIR", &target)
            .env("RUSTDOCFLAGS", "-D warnings")
            .env_remove("RUSTFLAGS")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "cargo {args:?}:\n{stderr}");
        stderr
    };
    let listed = Command::new(env!("CARGO"))
        .args(["package", "--list", "-p", "weir-sdk", "--allow-dirty"])
        .current_dir(workspace)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for file in [
        "wit/types.wit",
        "wit/world.wit",
        "README.md",
        "LICENSE",
        "src/lib.rs",
    ] {
        assert!(
            listed.lines().any(|l| l == file),
            "{file} not packaged:\n{listed}"
        );
    }
    let packaged = cargo(&["package", "-p", "weir-sdk", "--allow-dirty"]);
    assert!(!packaged.contains("warning: manifest has no"), "{packaged}");
    cargo(&["doc", "-p", "weir-sdk", "--no-deps"]);
}
