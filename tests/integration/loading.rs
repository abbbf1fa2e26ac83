//! Loading refuses anything that would not work, before serving, with a
//! message naming the file and the cause; the compiled cache makes reloads
//! and restarts cheap.

use crate::support::*;

async fn load_error(setup: Setup) -> String {
    match setup.try_gateway().await {
        Ok(_) => panic!("the gateway loaded, but it should have refused"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn init_rejecting_its_config_is_refused_naming_file_and_message() {
    let setup = Setup::new().scripted(
        "20-picky",
        json!({"init_error": "routes must not be empty"}),
    );
    let err = load_error(setup).await;
    assert!(err.contains("20-picky.wasm"), "{err}");
    assert!(
        err.contains("init rejected the config: routes must not be empty"),
        "{err}"
    );
    assert!(err.contains("20-picky.json"), "{err}");
}

#[tokio::test]
async fn an_unknown_key_in_a_plugin_config_is_refused() {
    let setup = Setup::new().plugin(
        "20-hello",
        "hello_header",
        Some(json!({"name": "x", "colour": "red"})),
    );
    let err = load_error(setup).await;
    assert!(err.contains("20-hello.wasm"), "{err}");
    assert!(err.contains("unknown field `colour`"), "{err}");
}

#[tokio::test]
async fn a_plugin_config_that_is_not_json_names_the_json_file() {
    let setup = Setup::new()
        .plugin("20-hello", "hello_header", None)
        .raw_file("20-hello.json", b"{name: 'x'");
    let err = load_error(setup).await;
    assert!(err.contains("20-hello.json: is not valid JSON"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_webassembly_is_refused() {
    let err =
        load_error(Setup::new().raw_file("30-garbage.wasm", b"this is not wasm at all")).await;
    assert!(
        err.contains("30-garbage.wasm: is not a WebAssembly file"),
        "{err}"
    );
}

#[tokio::test]
async fn a_truncated_component_is_refused() {
    let bytes = std::fs::read(wasm("hello_header")).unwrap();
    let err = load_error(Setup::new().raw_file("30-cut.wasm", &bytes[..bytes.len() / 2])).await;
    assert!(err.contains("30-cut.wasm: cannot be compiled"), "{err}");
}

#[tokio::test]
async fn a_core_module_is_refused_as_not_a_component() {
    // The smallest valid core module: just the preamble.
    let err = load_error(Setup::new().raw_file("30-core.wasm", b"\0asm\x01\0\0\0")).await;
    assert!(
        err.contains("30-core.wasm: is a core WebAssembly module, not a component"),
        "{err}"
    );
}

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let err = load_error(Setup::new().plugin("30-wrong", "fixture_wrong_world", None)).await;
    assert!(
        err.contains("30-wrong.wasm: does not implement the weir:plugin/plugin@0.1.0 world"),
        "{err}"
    );
    assert!(err.contains("weir:plugin/handler"), "{err}");
}

#[tokio::test]
async fn other_files_in_the_plugin_directory_are_ignored() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .raw_file("README.md", b"notes")
        .raw_file("orphan.json", b"{}")
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .gateway()
        .await;
    assert_eq!(gw.pipeline().plugins().len(), 1);
}

#[tokio::test]
async fn compiled_plugins_are_cached_by_content_hash_and_bad_entries_recompiled() {
    use std::os::unix::fs::MetadataExt;

    let cache = tempfile::tempdir().unwrap();
    let setup = Setup::new()
        .cache_dir(cache.path())
        .plugin("20-hello", "hello_header", None);
    let sha = setup.gateway().await.pipeline().plugins()[0]
        .info()
        .sha256
        .clone();
    let entries: Vec<std::path::PathBuf> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = entries[0].clone();
    let name = entry.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&sha) && name.ends_with(".cwasm"), "{name}");

    // A second load uses the entry: a miss would compile and replace the
    // file (a rename, so a new inode).
    let inode = std::fs::metadata(&entry).unwrap().ino();
    setup.gateway().await;
    assert_eq!(
        std::fs::metadata(&entry).unwrap().ino(),
        inode,
        "the cache entry was rewritten"
    );

    // A corrupt entry is ignored, the plugin recompiled, the entry repaired.
    std::fs::write(&entry, b"not compiled code").unwrap();
    let gw = setup.gateway().await;
    assert_eq!(gw.pipeline().plugins().len(), 1);
    assert!(std::fs::metadata(&entry).unwrap().len() > 1000);
}
