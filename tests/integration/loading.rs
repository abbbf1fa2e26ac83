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
    // The smallest valid core module: just the preamble. A core module
    // loads only as a proxy-wasm filter, which this is not.
    let err = load_error(Setup::new().raw_file("30-core.wasm", b"\0asm\x01\0\0\0")).await;
    assert!(
        err.contains("30-core.wasm: is a core WebAssembly module, not a component")
            && err.contains("not a proxy-wasm filter"),
        "{err}"
    );
}

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let err = load_error(Setup::new().plugin("30-wrong", "fixture_wrong_world", None)).await;
    assert!(
        err.contains(
            "30-wrong.wasm: does not implement the weir:plugin/plugin@0.5.0 world (nor @0.4.0, @0.3.0, @0.2.0 or @0.1.0)"
        ),
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

#[tokio::test]
async fn a_plugin_built_for_contract_0_1_0_loads_and_runs_unchanged() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin("20-old", "fixture_v0_1_plugin", None)
        .serve()
        .await;
    let pipeline = gw.gateway.pipeline();
    assert_eq!(pipeline.plugins()[1].info().contract, "0.1.0");
    assert_eq!(pipeline.plugins()[0].info().contract, "0.5.0");

    // Its request edit reaches the upstream, its response edit the client,
    // and its kv counter works through the adapted capability.
    for n in 1..=2 {
        let reply = get(&gw.url("/json")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-v01-contract"), Some("0.1.0"));
        assert_eq!(reply.header("x-v01-hits"), Some(n.to_string().as_str()));
        assert_eq!(backend.last().unwrap().headers["x-v01"], "seen");
    }
    // Paths it sets follow the same normalization as a current plugin's.
    let mut path_request = request(http::Method::GET, &gw.url("/json"), bytes::Bytes::new());
    path_request
        .headers_mut()
        .insert("x-v01-path", "/a/../json/./x".parse().unwrap());
    let reply = send(&crate::support::client::http1(), path_request).await;
    assert_eq!(reply.status, 200);
    assert_eq!(backend.last().unwrap().path_and_query, "/json/x");
    // A reply it builds is answered as such.
    let mut reply_request = request(http::Method::GET, &gw.url("/json"), bytes::Bytes::new());
    reply_request
        .headers_mut()
        .insert("x-v01-reply", "1".parse().unwrap());
    let reply = send(&crate::support::client::http1(), reply_request).await;
    assert_eq!(reply.status, 418);
    assert_eq!(reply.text(), "answered by a 0.1.0 plugin");
}

#[tokio::test]
async fn a_plugin_built_for_contract_0_2_0_loads_and_runs_unchanged() {
    use crate::support::plugin_metrics::{expected, samples};
    use weir::runtime::bindings::Hooks;

    let backend = Backend::start().await;
    let setup = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin("20-old", "fixture_v0_2_plugin", None);
    let gw = setup.serve().await;
    let pipeline = gw.gateway.pipeline();
    assert_eq!(pipeline.plugins()[1].info().contract, "0.2.0");
    assert_eq!(pipeline.plugins()[0].info().contract, "0.5.0");
    assert_eq!(pipeline.plugins()[1].hooks(), Hooks::all());

    // Its imports work through the adapter: `set-headers` on the request
    // (seen upstream) and the response, `set-response-headers`, `kv`,
    // `rate` and a `metrics` counter.
    let mut remaining = Vec::new();
    for n in 1..=2 {
        let reply = get(&gw.url("/json")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-v02-contract"), Some("0.2.0"));
        assert_eq!(reply.header("x-v02-on-response"), Some("called"));
        assert_eq!(reply.header("x-v02-hits"), Some(n.to_string().as_str()));
        let seen = backend.last().unwrap();
        assert_eq!(seen.headers["x-v02"], "seen");
        remaining.push(
            seen.headers["x-v02-remaining"]
                .to_str()
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    assert_eq!(remaining[0], remaining[1] + 1, "{remaining:?}");
    assert_eq!(
        samples(&gw, "weir_plugin_old_requests_total"),
        expected(&[(r#"{plugin="20-old",path="/json"}"#, 2.0)])
    );
    // A reply it builds is answered as such.
    let mut reply_request = request(http::Method::GET, &gw.url("/json"), bytes::Bytes::new());
    reply_request
        .headers_mut()
        .insert("x-v02-reply", "1".parse().unwrap());
    let reply = send(&crate::support::client::http1(), reply_request).await;
    assert_eq!(reply.status, 418);
    assert_eq!(reply.header("x-v02-replied"), Some("yes"));
    assert_eq!(reply.text(), "answered by a 0.2.0 plugin");

    // `weir check` names its contract.
    let config = setup.write();
    let (ok, out, err) =
        crate::support::process::run_to_end(&["check", "--config", config.to_str().unwrap()]).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("plugin 20-old ok (") && out.contains(", weir:plugin@0.2.0) imports: "),
        "{out}"
    );
    assert!(out.contains(", weir:plugin@0.5.0) imports: "), "{out}");

    // The hooks its `init` declares are the ones called.
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin(
            "20-old",
            "fixture_v0_2_plugin",
            Some(json!("on-request-only")),
        )
        .serve()
        .await;
    let pipeline = gw.gateway.pipeline();
    assert_eq!(pipeline.plugins()[1].hooks(), Hooks::ON_REQUEST);
    assert_eq!(pipeline.response_chain(), &[0]);
    let reply = get(&gw.url("/json")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-v02-contract"), Some("0.2.0"));
    assert_eq!(reply.header("x-v02-on-response"), None);
}

/// A plugin built for 0.3.0 (from `host/wit-0.3.0`, not the SDK) loads
/// beside current ones; what 0.3.0 added over 0.2.0 (`kv.set-if-absent`, the
/// `wait` action) works through the adapter, and its `client-addr` is the
/// connection's peer, as it was, while a current plugin on the same request
/// reads the resolved `client-ip`.
#[tokio::test]
async fn a_plugin_built_for_contract_0_3_0_loads_and_runs_unchanged() {
    let backend = Backend::start().await;
    let setup = Setup::new()
        .top(r#"trusted_proxies = ["127.0.0.1"]"#)
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [
                {"op": "set_upstream", "name": "backend"},
                {"op": "client_to_headers"}]}),
        )
        .plugin("20-old", "fixture_v0_3_plugin", None);
    let gw = setup.serve().await;
    let pipeline = gw.gateway.pipeline();
    assert_eq!(pipeline.plugins()[1].info().contract, "0.3.0");
    assert_eq!(pipeline.plugins()[0].info().contract, "0.5.0");

    let from = |wait: bool| {
        let mut builder = http::Request::builder()
            .uri(gw.url("/json"))
            .header("x-forwarded-for", "203.0.113.5");
        if wait {
            builder = builder.header("x-v03-wait", "1");
        }
        builder.body(weir::http::body::empty()).unwrap()
    };
    let client = crate::support::client::http1();
    let reply = send(&client, from(false)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-v03-contract"), Some("0.3.0"));
    let seen = backend.last().unwrap();
    assert_eq!(seen.headers["x-v03-first"], "true");
    assert_eq!(seen.headers["x-v03-waited"], "no");
    assert_eq!(seen.headers["x-v03-peer"], "127.0.0.1");
    assert_eq!(seen.headers["x-resolved-client-ip"], "203.0.113.5");

    let reply = send(&client, from(true)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = backend.last().unwrap();
    assert_eq!(seen.headers["x-v03-first"], "false");
    assert_eq!(seen.headers["x-v03-waited"], "yes");

    let config = setup.write();
    let (ok, out, err) =
        crate::support::process::run_to_end(&["check", "--config", config.to_str().unwrap()]).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("plugin 20-old ok (") && out.contains(", weir:plugin@0.3.0) imports: "),
        "{out}"
    );
}

/// A plugin built for 0.4.0 (from `host/wit-0.4.0`, not the SDK) loads
/// beside 0.5.0 ones; what 0.4.0 added over 0.3.0 (`request.client-ip`)
/// works through the adapter, and, having no way to declare routes, it runs
/// on every route, both hooks.
#[tokio::test]
async fn a_plugin_built_for_contract_0_4_0_loads_and_runs_unchanged() {
    let backend = Backend::start().await;
    let setup = Setup::new()
        .top(r#"trusted_proxies = ["127.0.0.1"]"#)
        .upstream("backend", &[backend.url()])
        .router(json!({"routes": [
            {"name": "users", "match": {"path": "/users/{id}"}, "upstream": "backend"},
            {"name": "orders", "match": {"path_prefix": "/orders"}, "upstream": "backend"}
        ]}))
        .plugin("60-old", "fixture_v0_4_plugin", None);
    let gw = setup.serve().await;
    let pipeline = gw.gateway.pipeline();
    assert_eq!(pipeline.plugins()[1].info().contract, "0.4.0");
    assert_eq!(pipeline.plugins()[0].info().contract, "0.5.0");
    assert_eq!(pipeline.plugins()[1].routes(), None);

    let client = crate::support::client::http1();
    for path in ["/users/1", "/orders/1"] {
        let req = http::Request::builder()
            .uri(gw.url(path))
            .header("x-forwarded-for", "203.0.113.9")
            .body(weir::http::body::empty())
            .unwrap();
        let reply = send(&client, req).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_eq!(reply.header("x-v04-contract"), Some("0.4.0"), "{path}");
        assert_eq!(reply.header("x-v04-seen"), Some("yes"), "{path}");
        let seen = backend.last().unwrap();
        assert_eq!(seen.headers["x-v04-client-ip"], "203.0.113.9");
        assert_eq!(seen.headers["x-v04-peer"], "127.0.0.1");
    }

    let config = setup.write();
    let (ok, out, err) =
        crate::support::process::run_to_end(&["check", "--config", config.to_str().unwrap()]).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("plugin 60-old ok (") && out.contains(", weir:plugin@0.4.0) imports: "),
        "{out}"
    );
}

#[tokio::test]
async fn hooks_a_plugin_does_not_declare_are_never_called() {
    let setup = Setup::new()
        .router(json!({"routes": []}))
        .plugin("60-hello", "hello_header", None)
        .scripted("70-both", json!({}));
    let gw = setup.gateway().await;
    let pipeline = gw.pipeline();
    let names = |chain: &[usize]| -> Vec<String> {
        chain
            .iter()
            .map(|&i| pipeline.plugins()[i].name().to_string())
            .collect()
    };
    // The router declares only `on-request`, hello-header only `on-response`.
    assert_eq!(names(pipeline.request_chain()), ["50-router", "70-both"]);
    assert_eq!(names(pipeline.response_chain()), ["70-both", "60-hello"]);
}
