//! What a trap looks like in the log: the backtrace names each frame's
//! function (from the plugin's name section) and, when the plugin carries
//! DWARF, its source file and line; the client sees none of it. A C plugin
//! traps on a null write, a Rust plugin overflows its stack.

use std::path::Path;

use crate::support::process::{Process, run_to_end};
use crate::support::toolchains;
use crate::support::*;

/// The gateway's log after `plugin` (as `60-trap`) trapped on `path`.
async fn log_of_trap(plugin: &Path, path: &str) -> String {
    let backend = Backend::start().await;
    let setup = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin_file("60-trap", plugin, None);
    let (process, stderr) = Process::start_capturing(&setup.write()).await;
    let reply = get(&process.url(path)).await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(
        !reply.text().contains("backtrace"),
        "the client sees the backtrace: {}",
        reply.text()
    );
    // Another request still succeeds: the trap cost its request only.
    assert_eq!(get(&process.url("/json")).await.status, 200);
    process.stop().await;
    stderr.ended().await;
    let log = stderr.text();
    assert!(log.contains("60-trap") && log.contains("trapped"), "{log}");
    log
}

#[tokio::test]
async fn a_c_trap_names_the_function_and_with_dwarf_the_file_and_line() {
    let log = log_of_trap(toolchains::c_trap(true), "/null").await;
    assert!(log.contains("store_through"), "no function name:\n{log}");
    // `write_null`'s call of `store_through`, line 19 of the fixture.
    assert!(
        log.contains("tests/fixtures/c-trap/plugin.c:19:3"),
        "no file and line:\n{log}"
    );
}

#[tokio::test]
async fn a_c_trap_without_dwarf_still_names_the_function() {
    let log = log_of_trap(toolchains::c_trap(false), "/null").await;
    assert!(log.contains("write_null"), "no function name:\n{log}");
    assert!(!log.contains("plugin.c:"), "a line without DWARF?\n{log}");
}

#[tokio::test]
async fn a_rust_stack_overflow_names_the_recursing_function_and_its_line() {
    let log = log_of_trap(&wasm("fixture_stack_overflow"), "/deep").await;
    assert!(
        log.contains("fixture_stack_overflow::descend"),
        "no (demangled) function name:\n{log}"
    );
    assert!(
        log.contains("tests/fixtures/stack-overflow/src/lib.rs:"),
        "no file and line:\n{log}"
    );
}

#[tokio::test]
async fn test_plugin_shows_the_same_backtrace() {
    let plugin = toolchains::c_trap(true).to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.json");
    std::fs::write(&request, r#"{"method": "GET", "path": "/null"}"#).unwrap();
    let (ok, out, err) = run_to_end(&[
        "test-plugin",
        &plugin,
        "--request",
        request.to_str().unwrap(),
    ])
    .await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("store_through") && err.contains("write_null"),
        "{err}"
    );
    assert!(err.contains("tests/fixtures/c-trap/plugin.c:19:3"), "{err}");
}

#[tokio::test]
async fn a_js_exception_reaches_the_log_with_its_stack_tagged_with_the_plugin() {
    let log = log_of_trap(toolchains::js_api(), "/raise").await;
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("stderr") && l.contains("60-trap"))
        .collect();
    let text = lines.join("\n");
    assert!(
        text.contains("JavaScript exception in onRequest: Error: boom from js on /raise"),
        "{log}"
    );
    assert!(
        text.contains("at explode (plugin.js:"),
        "the throwing frame:\n{log}"
    );
    // `console` (defined on first use) writes into the same log.
    assert!(
        text.contains(r#"about to explode on /raise {"code":7}"#),
        "{log}"
    );
}

#[tokio::test]
async fn a_python_exception_reaches_the_log_as_a_whole_traceback_tagged_with_the_plugin() {
    let log = log_of_trap(toolchains::python_sleeper(), "/raise").await;
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("stderr") && l.contains("60-trap"))
        .collect();
    let text = lines.join("\n");
    assert!(text.contains("Traceback (most recent call last):"), "{log}");
    assert!(text.contains("in explode"), "the raising frame:\n{log}");
    assert!(
        text.contains("ValueError: boom from the sleeper on /raise"),
        "{log}"
    );
}
