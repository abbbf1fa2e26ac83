//! Weir's JavaScript runtime (`weir build-js`, QuickJS): the API
//! ComponentizeJS defines, served by native functions. One fixture
//! (`tests/fixtures/js-api`) exercises the request and response methods,
//! `kv`, `rate`, `metrics` and `log`, errors thrown as `ComponentError`,
//! the web globals and a relative import from a sub-directory.

use http::Method;

use crate::support::client::call;
use crate::support::process::run_to_end;
use crate::support::toolchains;
use crate::support::*;

async fn gateway() -> (Backend, Running) {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin_file("40-js", toolchains::js_api(), Some(json!({"prefix": "t"})))
        .serve()
        .await;
    (backend, gw)
}

#[tokio::test]
async fn the_js_runtime_serves_the_componentize_js_api() {
    let (backend, gw) = gateway().await;
    let reply = call(
        &gw.url("/api"),
        Method::POST,
        &[("x-test", "one"), ("content-type", "application/json")],
        r#"{"name": "ada"}"#,
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/api");
    assert_eq!(body["header"], "one");
    assert_eq!(body["headerCount"], 1);
    // kv round trip (Uint8Array in and out), an absent key is `undefined`.
    assert_eq!(body["stored"], "ada");
    assert_eq!(body["view"], "view");
    // A method called on an object its class did not make throws; a
    // forged handle finds nothing.
    assert_eq!(
        body["misuse"],
        json!({"name": "TypeError", "message": "not a Counter", "payload": null})
    );
    assert_eq!(body["missing"], true);
    assert_eq!(body["context"], "ada");
    // rate: a decision record, u64 fields as BigInt.
    assert_eq!(body["allowed"], true);
    let limit = body["limit"].as_u64().unwrap();
    assert!(limit >= 5, "{body}");
    assert_eq!(body["remaining"].as_u64(), Some(limit - 1));
    assert_eq!(body["retryType"], "bigint");
    // A `result` error is thrown as ComponentError with the enum case.
    assert_eq!(
        body["editError"],
        json!({"name": "ComponentError", "message": "invalid-header-name", "payload": "invalid-header-name"})
    );
    assert_eq!(body["isRequest"], true);
    assert_eq!(body["basic"], "user:pass");
    assert_eq!(body["bytes"], json!([0xC3, 0xA9]));
    // The contract: a plugin's on-response runs only after its on-request
    // continued, not after its own reply.
    assert_eq!(reply.header("x-js-seen"), None);
    assert_eq!(backend.hits(), 0);

    // Traffic the plugin does not answer goes through, decorated.
    let passed = get(&gw.url("/json")).await;
    assert_eq!(passed.status, 200);
    assert_eq!(passed.header("x-js-seen"), Some("200"));

    // The counter the plugin defined in `init` counted the call.
    let metrics = crate::support::plugin_metrics::text(&gw);
    assert!(
        metrics.lines().any(|l| l.contains("js_api_calls")
            && l.contains("method=\"POST\"")
            && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_object_kept_past_its_hook_fails_cleanly() {
    let (_backend, gw) = gateway().await;
    assert_eq!(get(&gw.url("/keep")).await.status, 200);
    let reply = get(&gw.url("/stale")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["error"],
        json!({"name": "TypeError", "message": "this request belongs to a hook call that has returned", "payload": null})
    );
}

#[tokio::test]
async fn build_js_writes_a_plugin_and_refuses_what_is_not_a_module() {
    let dir = tempfile::tempdir().unwrap();
    let entry = dir.path().join("plugin.js");
    std::fs::write(
        &entry,
        // An `async` hook whose promise settles without I/O, and no
        // `onResponse`, since `init` declares none.
        "export const handler = { init() { return { onRequest: true }; }, \
         async onRequest() { await null; return { tag: 'respond', val: { status: 418 } }; } };",
    )
    .unwrap();
    let out = dir.path().join("teapot.wasm");
    let (ok, stdout, stderr) = run_to_end(&[
        "build-js",
        entry.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("teapot.wasm (1 module,"), "{stdout}");
    let request = dir.path().join("request.json");
    std::fs::write(&request, r#"{"method": "GET", "path": "/"}"#).unwrap();
    let (ok, stdout, stderr) = run_to_end(&[
        "test-plugin",
        out.to_str().unwrap(),
        "--request",
        request.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{stdout}{stderr}");
    let output: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(output["on_request"]["reply"]["status"], 418);

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello").unwrap();
    let (ok, _, stderr) = run_to_end(&["build-js", notes.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(
        stderr.contains("notes.txt: not a JavaScript module"),
        "{stderr}"
    );
}

/// What `init` returns or throws is read as ComponentizeJS reads it: an
/// `{tag: 'ok' | 'err', val}` result, hook flags by truth, a thrown
/// object's `payload`.
#[tokio::test]
async fn init_results_are_read_as_componentize_js_reads_them() {
    let respond = "onRequest() { return { tag: 'respond', val: { status: 418 } }; }";
    let cases = [
        (
            format!(
                "export const handler = {{ init() {{ return {{ tag: 'ok', val: {{ onRequest: 1 }} }}; }}, {respond} }};"
            ),
            Ok(418),
        ),
        (
            format!(
                "export const handler = {{ init() {{ return {{ tag: 'err', val: 'refused by result' }}; }}, {respond} }};"
            ),
            Err("refused by result"),
        ),
        (
            format!(
                "export const handler = {{ init() {{ throw {{ payload: 'refused by payload' }}; }}, {respond} }};"
            ),
            Err("refused by payload"),
        ),
        (
            // No hooks at all: the plugin loads and is never called.
            format!("export const handler = {{ init() {{}}, {respond} }};"),
            Ok(0),
        ),
    ];
    for (source, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("plugin.js");
        std::fs::write(&entry, &source).unwrap();
        let out = dir.path().join("p.wasm");
        weir::tooling::js_build::build(&entry, &out).unwrap();
        let request = dir.path().join("request.json");
        std::fs::write(&request, r#"{"method": "GET", "path": "/"}"#).unwrap();
        let (ok, stdout, stderr) = run_to_end(&[
            "test-plugin",
            out.to_str().unwrap(),
            "--request",
            request.to_str().unwrap(),
        ])
        .await;
        match expected {
            Ok(0) => {
                assert!(ok, "{source}: {stderr}");
                let output: serde_json::Value = serde_json::from_str(&stdout).unwrap();
                assert_eq!(output["on_request"]["action"], "continue", "{source}");
            }
            Ok(status) => {
                assert!(ok, "{source}: {stderr}");
                let output: serde_json::Value = serde_json::from_str(&stdout).unwrap();
                assert_eq!(output["on_request"]["reply"]["status"], status, "{source}");
            }
            Err(why) => {
                assert!(!ok, "{source}: {stdout}");
                assert!(stderr.contains(why), "{source}: {stderr}");
            }
        }
    }
}

/// A syntax error, a missing import and a missing `handler` are load
/// errors naming the module and the cause.
#[tokio::test]
async fn a_broken_js_plugin_is_refused_at_load_naming_the_module_and_cause() {
    let cases = [
        ("export const handler = {", "SyntaxError"),
        (
            "import { x } from './nowhere.js'; export const handler = {};",
            "./nowhere.js",
        ),
        (
            "export const other = 1;",
            "the module must export `handler`",
        ),
        (
            "export const handler = { init() { throw 'invalid config: no'; } };",
            "invalid config: no",
        ),
    ];
    for (source, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("plugin.js");
        std::fs::write(&entry, source).unwrap();
        let out = dir.path().join("broken.wasm");
        weir::tooling::js_build::build(&entry, &out).unwrap();
        let request = dir.path().join("request.json");
        std::fs::write(&request, r#"{"method": "GET", "path": "/"}"#).unwrap();
        let (ok, stdout, stderr) = run_to_end(&[
            "test-plugin",
            out.to_str().unwrap(),
            "--request",
            request.to_str().unwrap(),
        ])
        .await;
        assert!(!ok, "{source}: {stdout}");
        assert!(stderr.contains(expected), "{source}: {stderr}");
    }
}
