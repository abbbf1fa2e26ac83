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

/// Scaffold `lang`, build it with the real toolchain, run its own test.
fn scaffold_builds_and_passes(lang: &str, build: impl FnOnce(&Path) -> PathBuf) {
    let parent = tempfile::tempdir().unwrap();
    let name = format!("my-{lang}-plugin");
    let (ok, out, err) = weir_command(&["new", "plugin", &name, "--lang", lang], parent.path());
    assert!(ok, "{out}{err}");
    let dir = parent.path().join(&name);
    assert!(dir.join("README.md").exists());
    let wasm = build(&dir);
    let wasm = wasm.to_str().unwrap();
    let (ok, out, err) = weir_command(
        &[
            "test-plugin",
            wasm,
            "--config",
            "config.json",
            "--request",
            "test/request.json",
            "--response",
            "test/response.json",
            "--expect",
            "test/expect.json",
        ],
        &dir,
    );
    assert!(ok, "the {lang} scaffold failed its own test:\n{out}\n{err}");
    assert!(err.contains("ok: matches test/expect.json"), "{err}");
}

#[test]
fn a_rust_scaffold_builds_and_passes_its_test() {
    scaffold_builds_and_passes("rust", |dir| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target");
        let output = Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("wasm32-wasip2/release/my_rust_plugin.wasm")
    });
}

#[test]
fn a_python_scaffold_builds_and_passes_its_test() {
    scaffold_builds_and_passes("python", |dir| {
        let out = dir.join("my_python_plugin.wasm");
        toolchains::build_python(dir, &dir.join("wit"), &out);
        out
    });
}

#[test]
fn a_js_scaffold_builds_and_passes_its_test() {
    scaffold_builds_and_passes("js", |dir| {
        std::os::unix::fs::symlink(
            toolchains::componentize_js_modules(),
            dir.join("node_modules"),
        )
        .unwrap();
        toolchains::build_js(dir, &[]);
        dir.join("my_js_plugin.wasm")
    });
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
