//! The kit, used as a library, against a real plugin built by the
//! workspace (`hello-header`, a Rust example).

use std::path::Path;

use weir_testkit::{PluginUnderTest, Stubs, TestAction, TestRequest, TestResponse};

fn hello_header() -> std::path::PathBuf {
    Path::new(weir::BUILT_WASM_DIR).join("hello_header.wasm")
}

#[tokio::test]
async fn the_kit_runs_both_hooks_of_a_real_plugin() {
    let plugin = PluginUnderTest::load(&hello_header(), "{}", Stubs::default(), None)
        .await
        .expect("hello-header loads");
    let outcome = plugin
        .on_request(&TestRequest::default())
        .await
        .expect("on-request runs");
    assert_eq!(outcome.action, TestAction::Continue);

    let outcome = plugin
        .on_response(&TestRequest::default(), &TestResponse::default())
        .await
        .expect("on-response runs");
    assert_eq!(outcome.action, TestAction::Continue);
    assert_eq!(outcome.response.headers.get("x-hello"), Some("weir"));
}

#[tokio::test]
async fn the_kit_names_the_file_when_a_plugin_cannot_load() {
    let missing = Path::new("no/such/plugin.wasm");
    let error = PluginUnderTest::load(missing, "{}", Stubs::default(), None)
        .await
        .err()
        .expect("a missing file is an error");
    let text = error.to_string();
    assert!(text.contains("no/such/plugin.wasm"), "{text}");
}
