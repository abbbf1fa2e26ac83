//! Plugin governance: capability grants (what a plugin may import and
//! call), enforced at load, at call time, on reload, and shown by
//! `weir check`.

use std::time::Duration;

use weir::reload::Reloader;

use crate::support::process::{Process, WEIR};
use crate::support::*;

// --- grants

/// `[plugins.NAME] capabilities = [...]`, as a whole `weir.toml` section.
fn grants(plugin: &str, capabilities: &[&str]) -> String {
    format!("[plugins.{plugin}]\ncapabilities = {capabilities:?}")
}

/// The aggregate plugin's sample config (calls `users` and `orders`).
fn aggregate_config() -> serde_json::Value {
    let text = include_str!("../../plugins/aggregate/sample.json");
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn a_plugin_importing_outbound_without_the_grant_is_refused_at_load() {
    let base = || {
        Setup::new()
            .upstream("users", &["http://127.0.0.1:1".to_string()])
            .upstream("orders", &["http://127.0.0.1:1".to_string()])
            .plugin(
                "80-aggregate",
                "weir_plugin_aggregate",
                Some(aggregate_config()),
            )
    };
    let setup = base().section(&grants("80-aggregate", &["log", "metrics"]));
    let error = setup
        .try_gateway()
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("80-aggregate.wasm"), "{error}");
    assert!(error.contains("weir:plugin/outbound@0.5.0"), "{error}");
    assert!(
        error.contains("add \"outbound\" to [plugins.80-aggregate] capabilities in weir.toml"),
        "{error}"
    );
    // Granted (even to the named upstreams only), it loads.
    let setup = base().section(&grants(
        "80-aggregate",
        &["log", "metrics", "outbound:users,orders"],
    ));
    setup.try_gateway().await.unwrap();
    // A 0.1.0 plugin is held to the same grants, by interface name.
    let setup = Setup::new()
        .plugin("10-old", "fixture_v0_1_plugin", None)
        .section(&grants("10-old", &["log"]));
    let error = setup
        .try_gateway()
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("weir:plugin/kv@0.1.0"), "{error}");
    assert!(error.contains("add \"kv\""), "{error}");
    // And a 0.2.0 one.
    let setup = Setup::new()
        .plugin("10-old", "fixture_v0_2_plugin", None)
        .section(&grants("10-old", &["log", "rate", "metrics"]));
    let error = setup
        .try_gateway()
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("weir:plugin/kv@0.2.0"), "{error}");
    assert!(error.contains("add \"kv\""), "{error}");
}

#[tokio::test]
async fn bad_grants_are_config_errors_naming_the_entry() {
    let setup = Setup::new().section(&grants("60-auth", &["log", "filesystem"]));
    let error = weir::config::Config::load(&setup.write()).unwrap_err();
    let error = format!("{error:#}");
    assert!(error.contains("[plugins.60-auth] capabilities"), "{error}");
    assert!(error.contains("\"filesystem\""), "{error}");
    let setup = Setup::new()
        .upstream("users", &["http://127.0.0.1:1".to_string()])
        .section(&grants("60-auth", &["outbound:users,billing"]));
    let error = format!(
        "{:#}",
        weir::config::Config::load(&setup.write()).unwrap_err()
    );
    assert!(
        error.contains("\"billing\"") && error.contains("not in [upstreams]"),
        "{error}"
    );
}

/// Plugin `10-caller` running `script`, granted `outbound:users` only, with
/// upstreams `users` and `billing` and warnings logged as text.
fn caller(users: &Backend, billing: &Backend, script: serde_json::Value) -> Setup {
    Setup::new()
        .log(&[
            "access_log = false",
            "format = \"text\"",
            "level = \"warn\"",
        ])
        .upstream("users", &[users.url()])
        .upstream("billing", &[billing.url()])
        .scripted("10-caller", script)
        .section(&grants(
            "10-caller",
            &["log", "kv", "rate", "metrics", "outbound:users"],
        ))
}

#[tokio::test]
async fn an_outbound_call_outside_the_grant_fails_with_not_granted_and_is_logged() {
    let (users, billing) = (Backend::start().await, Backend::start().await);
    let setup = caller(
        &users,
        &billing,
        json!({
            "on_request": [{"op": "set_upstream", "name": "users"}],
            "on_response": [
                {"op": "call", "upstream": "users", "path": "/a", "header": "x-users"},
                {"op": "call", "upstream": "billing", "path": "/b", "header": "x-billing"},
                {"op": "call_all", "header": "x-all",
                 "calls": [["billing", "/c"], ["users", "/d"], ["nope", "/e"]]}
            ]
        }),
    );
    let (process, stderr) = Process::start_capturing(&setup.write()).await;
    let reply = get(&process.url("/")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("x-users"),
        Some("200 hello from backend"),
        "{reply:?}"
    );
    let refused = reply.header("x-billing").unwrap_or_default();
    assert!(refused.contains("NotGranted(\"billing\")"), "{refused}");
    // In a batch, only the ungranted call is refused; order is kept, and an
    // upstream that does not exist stays `unknown-upstream`.
    let all = reply.header("x-all").unwrap_or_default();
    let all: Vec<&str> = all.split(',').collect();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all[0].contains("NotGranted(\"billing\")"), "{all:?}");
    assert_eq!(all[1], "200", "{all:?}");
    assert!(all[2].contains("UnknownUpstream(\"nope\")"), "{all:?}");
    assert_eq!(billing.hits(), 0, "a refused call reached its upstream");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !stderr.text().contains("not in the plugin's grant") {
        assert!(tokio::time::Instant::now() < deadline, "{}", stderr.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = stderr.text();
    let line = log
        .lines()
        .find(|l| l.contains("not in the plugin's grant"))
        .unwrap();
    assert!(
        line.contains("WARN") && line.contains("10-caller") && line.contains("billing"),
        "{line}"
    );
}

/// A plugin that calls outside its grant in a loop gets `not-granted` for
/// every call, but the warnings come out of its own log budget: 2,000
/// refusals cannot write 2,000 lines.
#[tokio::test]
async fn refusals_outside_the_grant_are_logged_within_the_plugins_log_budget() {
    let (users, billing) = (Backend::start().await, Backend::start().await);
    let setup = caller(
        &users,
        &billing,
        json!({
            "on_request": [
                {"op": "set_upstream", "name": "users"},
                {"op": "call_flood", "upstream": "billing", "path": "/b",
                 "count": 500, "header": "x-report"}
            ],
            "on_response": [{"op": "context_to_header", "key": "x-report", "header": "x-report"}]
        }),
    )
    .budget("log_lines_per_second = 10");
    let (mut process, output) = Process::start_capturing(&setup.write()).await;
    let started = tokio::time::Instant::now();
    for _ in 0..4 {
        let reply = get(&process.url("/")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(
            reply.header("x-report"),
            Some("ok=0 budget=0 other=500"),
            "every call is refused"
        );
    }
    let windows = started.elapsed().as_secs() as usize + 2;
    // Log lines are written before the answer goes out; once the process
    // has exited and its stderr is read to the end, all of them are here.
    process.terminate().await;
    output.ended().await;
    let logged = output
        .text()
        .lines()
        .filter(|l| l.contains("not in the plugin's grant"))
        .count();
    assert!(
        (1..=10 * windows).contains(&logged),
        "{logged} refusal lines for 2,000 refusals in at most {windows} one-second windows"
    );
    assert_eq!(billing.hits(), 0, "a refused call reached its upstream");
}

#[tokio::test]
async fn a_reload_adding_an_ungranted_import_is_refused_and_the_old_pipeline_serves() {
    let backend = Backend::start().await;
    let setup = Setup::new()
        .upstream("backend", &[backend.url()])
        .upstream("users", &[backend.url()])
        .upstream("orders", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin(
            "20-stamp",
            "hello_header",
            Some(json!({"name": "x-version", "value": "v0"})),
        )
        .section(&grants("20-stamp", &["log"]));
    let config = setup.config();
    let gateway = std::sync::Arc::new(setup.gateway().await);
    let running = Running::start(gateway.clone()).await;
    let reloader = Reloader::new(gateway, &setup.write(), config, None);
    assert_eq!(get(&running.url("/")).await.header("x-version"), Some("v0"));

    // The same stem now holds a plugin that imports `outbound`.
    std::fs::copy(
        wasm("weir_plugin_aggregate"),
        setup.plugins_dir().join("20-stamp.wasm"),
    )
    .unwrap();
    std::fs::write(
        setup.plugins_dir().join("20-stamp.json"),
        aggregate_config().to_string(),
    )
    .unwrap();
    let error = reloader.reload("test").await.unwrap_err().to_string();
    assert!(error.contains("20-stamp.wasm"), "{error}");
    assert!(error.contains("weir:plugin/outbound@0.5.0"), "{error}");
    assert!(error.contains("add \"metrics\", \"outbound\""), "{error}");
    let status = reloader.status();
    assert!(status.last_error.is_some());
    let reply = get(&running.url("/")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-version"), Some("v0"));
}

/// `weir check` on `dir/weir.toml`: stdout, after asserting it succeeded.
async fn weir_check(config: &std::path::Path) -> String {
    let out = tokio::process::Command::new(WEIR)
        .args(["check", "--config"])
        .arg(config)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The `imports:` and `grants:` of `plugin`'s line in `weir check` output.
fn imports_and_grants<'a>(checked: &'a str, plugin: &str) -> (&'a str, &'a str) {
    let line = checked
        .lines()
        .find(|l| l.starts_with(&format!("plugin {plugin} ok ")))
        .unwrap_or_else(|| panic!("no line for {plugin}: {checked}"));
    let (_, rest) = line.split_once(" imports: ").unwrap();
    rest.split_once("; grants: ").unwrap()
}

#[tokio::test]
async fn weir_check_shows_imports_against_grants_and_init_grants_exactly_the_imports() {
    let dir = tempfile::tempdir().unwrap();
    let gateway_dir = dir.path().join("gw");
    let out = std::process::Command::new(WEIR)
        .arg("init")
        .arg(&gateway_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let config = gateway_dir.join("weir.toml");
    let cache = crate::support::gateway::shared_cache_dir();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "cache_dir = \".weir-cache\"",
        &format!("cache_dir = {:?}", cache.display().to_string()),
    );
    std::fs::write(&config, text).unwrap();
    let checked = weir_check(&config).await;
    for plugin in weir::tooling::init::DEFAULT_PLUGINS {
        let (imports, grants) = imports_and_grants(&checked, plugin.stem);
        // Each default plugin is granted what it imports, no more (the
        // upstreams of an `outbound:` grant aside).
        let granted: Vec<&str> = grants
            .split(", ")
            .map(|g| g.split(':').next().unwrap())
            .collect();
        assert_eq!(imports, granted.join(", "), "{}: {checked}", plugin.stem);
    }
    assert_eq!(
        imports_and_grants(&checked, "80-aggregate").1,
        "log, metrics, outbound:orders,users"
    );
    assert_eq!(
        imports_and_grants(&checked, "60-auth").0,
        "log, kv, rate, crypto, metrics, outbound"
    );

    // A plugin without a table: everything, and said so.
    let setup = Setup::new().plugin("20-hello", "hello_header", None);
    let checked = weir_check(&setup.write()).await;
    assert_eq!(
        imports_and_grants(&checked, "20-hello"),
        ("log", "all (no [plugins.20-hello] capabilities)")
    );
}
