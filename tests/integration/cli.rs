//! The `weir` binary: started on port 0 (it prints the address), refusing
//! bad plugins and config with a message and a non-zero exit, `init` and
//! `check`, and a clean exit on SIGTERM.

use std::process::Stdio;

use crate::support::process::{Process, run_to_end};

use crate::support::*;

#[tokio::test]
async fn weir_run_prints_its_address_serves_and_exits_zero_on_sigterm() {
    let backend = Backend::start().await;
    let setup = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin("20-hello", "hello_header", None);
    let mut process = Process::start(&setup.write()).await;
    let reply = get(&process.url("/")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-hello"), Some("weir"));
    assert_eq!(reply.text(), "hello from backend");
    let status = process.terminate().await;
    assert!(status.success(), "{status:?}");
}

/// `weir run` on `setup` must fail at start with all of `expected` in stderr.
async fn refused_at_start(setup: &Setup, expected: &[&str]) {
    let config = setup.write();
    let (ok, out, err) = run_to_end(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
    ])
    .await;
    assert!(!ok, "weir run should have failed; stdout: {out}");
    assert!(!out.contains("listening on"), "{out}");
    for text in expected {
        assert!(err.contains(text), "stderr lacks {text:?}:\n{err}");
    }
}

#[tokio::test]
async fn weir_run_refuses_a_plugin_whose_init_rejects_its_config() {
    let setup = Setup::new().scripted("20-picky", json!({"init_error": "need at least one route"}));
    refused_at_start(
        &setup,
        &[
            "20-picky.wasm",
            "init rejected the config: need at least one route",
        ],
    )
    .await;
}

#[tokio::test]
async fn weir_run_refuses_a_file_that_is_not_a_component() {
    let setup = Setup::new().raw_file("20-core.wasm", b"\0asm\x01\0\0\0");
    refused_at_start(&setup, &["20-core.wasm", "not a component"]).await;
    let setup = Setup::new().raw_file("20-junk.wasm", b"junk");
    refused_at_start(&setup, &["20-junk.wasm", "is not a WebAssembly file"]).await;
}

#[tokio::test]
async fn weir_run_refuses_a_component_of_another_world() {
    let setup = Setup::new().plugin("20-wrong", "fixture_wrong_world", None);
    refused_at_start(
        &setup,
        &[
            "20-wrong.wasm",
            "does not implement the weir:plugin/plugin@0.5.0 world (nor @0.4.0, @0.3.0, @0.2.0 or @0.1.0)",
        ],
    )
    .await;
}

#[tokio::test]
async fn weir_run_refuses_an_unknown_config_key() {
    let setup = Setup::new().limit("max_header_byte = 10");
    refused_at_start(&setup, &["weir.toml", "unknown field `max_header_byte`"]).await;
    let setup = Setup::new().upstream_with(
        "users",
        "targets = [\"http://127.0.0.1:1\"]\nretry_budget = 2",
    );
    refused_at_start(&setup, &["weir.toml", "unknown field `retry_budget`"]).await;
}

#[tokio::test]
async fn weir_init_writes_a_gateway_that_check_accepts_and_run_serves() {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway_dir = dir.path().join("gw");
    let (ok, out, err) = run_to_end(&["init", gateway_dir.to_str().unwrap()]).await;
    assert!(ok, "{out}{err}");
    assert!(gateway_dir.join("plugins/50-router.wasm").exists());
    assert!(gateway_dir.join("plugins/50-router.json").exists());
    assert!(gateway_dir.join("plugins/60-auth.wasm").exists());
    assert!(gateway_dir.join("plugins/70-rate-limit.wasm").exists());
    assert!(gateway_dir.join("plugins/80-aggregate.wasm").exists());
    // The operators' plugins ship too, harmless until configured: the
    // requests below pass through them unchanged.
    for stem in ["52-ip-filter", "55-cors", "62-forward-auth"] {
        assert!(gateway_dir.join(format!("plugins/{stem}.wasm")).exists());
        assert!(gateway_dir.join(format!("plugins/{stem}.json")).exists());
    }

    // Point the sample upstreams at our backends (the sample uses 8001/8002).
    let users = Backend::start().await;
    let config = gateway_dir.join("weir.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("http://127.0.0.1:8001") && text.contains("http://127.0.0.1:8002"));
    let cache = crate::support::gateway::shared_cache_dir();
    let text = text
        .replace("http://127.0.0.1:8001", &users.url())
        .replace("http://127.0.0.1:8002", &backend.url())
        .replace(
            "cache_dir = \".weir-cache\"",
            &format!("cache_dir = {:?}", cache.display().to_string()),
        );
    std::fs::write(&config, text).unwrap();

    let (ok, out, err) = run_to_end(&["check", "--config", config.to_str().unwrap()]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("plugin 50-router ok"), "{out}");

    // The sample routes: /users/{id} → users as /{id}.json, public;
    // /orders/* → orders with the prefix stripped, API key required;
    // anything else → 404 "no route".
    assert!(out.contains("plugin 60-auth ok"), "{out}");
    assert!(out.contains("plugin 70-rate-limit ok"), "{out}");
    assert!(out.contains("plugin 80-aggregate ok"), "{out}");
    for stem in ["52-ip-filter", "55-cors", "62-forward-auth"] {
        assert!(out.contains(&format!("plugin {stem} ok")), "{out}");
    }
    let mut process = Process::start(&config).await;
    assert_eq!(get(&process.url("/users/7")).await.status, 200);
    assert_eq!(users.last().unwrap().path_and_query, "/7.json");
    let reply = get(&process.url("/orders/42?full=1")).await;
    assert_eq!(reply.status, 401);
    assert_eq!(backend.hits(), 0);
    let req = http::Request::builder()
        .uri(process.url("/orders/42?full=1"))
        .header("x-api-key", "weir-demo-key")
        .body(weir::http::body::empty())
        .unwrap();
    let reply = send(&crate::support::client::http1(), req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "hello from backend");
    let seen = backend.last().unwrap();
    assert_eq!(seen.path_and_query, "/42?full=1");
    assert_eq!(seen.headers["x-routed-by"], "weir");
    assert_eq!(seen.headers["x-consumer-id"], "demo");
    assert!(seen.headers.get("x-api-key").is_none());
    let reply = get(&process.url("/elsewhere")).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "no route");
    // The sample aggregate endpoint merges the user and the orders.
    users.serve_json(
        "/7.json",
        &json!({"id": 7, "name": "Ada", "email": "ada@example.com"}),
    );
    backend.serve_json("/index.json", &json!([{"id": 42}]));
    let reply = get(&process.url("/users/7/summary")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"user": {"id": 7, "name": "Ada"}, "orders": [{"id": 42}]})
    );
    assert!(process.terminate().await.success());

    // A second init does not overwrite.
    let (ok, _, err) = run_to_end(&["init", gateway_dir.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");
}

#[tokio::test]
async fn weir_check_reports_a_broken_plugin() {
    let setup = Setup::new().raw_file("20-junk.wasm", b"junk");
    let config = setup.write();
    let (ok, _, err) = run_to_end(&["check", "--config", config.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(
        err.contains("20-junk.wasm: is not a WebAssembly file"),
        "{err}"
    );
}

#[tokio::test]
async fn json_logs_have_one_access_line_per_request_without_the_query() {
    let backend = Backend::start().await;
    let setup = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .log(&["format = \"json\"", "access_log = true"]);
    let process = Process::start_with(&setup.write(), &[], Stdio::piped()).await;
    assert_eq!(
        get(&process.url("/users/7?api_key=s3cr3t")).await.status,
        200
    );
    assert_eq!(get(&process.url("/missing/route")).await.status, 200);
    let (status, stderr) = process.terminate_and_read_stderr().await;
    assert!(status.success());
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
        })
        .collect();
    let access: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "weir::access")
        .collect();
    assert_eq!(access.len(), 2, "{stderr}");
    assert_eq!(access[0]["path"], "/users/7");
    assert_eq!(access[0]["status"], 200);
    assert_eq!(access[0]["method"], "GET");
    assert_eq!(access[0]["upstream"], "backend");
    assert!(
        !stderr.contains("s3cr3t"),
        "a query string reached the log: {stderr}"
    );
}

#[tokio::test]
async fn weir_run_refuses_a_public_admin_listener_without_a_token() {
    let setup = Setup::new();
    let config = setup.write();
    let (ok, out, err) = run_to_end(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "0.0.0.0:0",
        "--config",
        config.to_str().unwrap(),
    ])
    .await;
    assert!(!ok, "weir run should have refused; stdout: {out}");
    assert!(!out.contains("listening on"), "{out}");
    for text in [
        "[admin] listen",
        "0.0.0.0:0",
        "token",
        "allow_public_without_token",
    ] {
        assert!(err.contains(text), "stderr lacks {text:?}:\n{err}");
    }
}

#[tokio::test]
async fn an_admin_token_from_a_file_guards_metrics_and_every_admin_path() {
    let setup = Setup::new().admin("token_file = \"admin-token\"");
    std::fs::write(setup.dir.path().join("admin-token"), "from-a-secret\n").unwrap();
    let mut process = Process::start(&setup.write()).await;
    let call = |method: http::Method, path: &str, token: Option<&str>| {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(process.admin_url(path));
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let request = builder.body(weir::http::body::empty()).unwrap();
        async move {
            send(&crate::support::client::http1(), request)
                .await
                .status
                .as_u16()
        }
    };
    for (method, path) in [
        (http::Method::GET, "/metrics"),
        (http::Method::GET, "/admin/plugins"),
        (http::Method::GET, "/admin/upstreams"),
        (http::Method::POST, "/admin/reload"),
        (http::Method::POST, "/admin/plugins/x/kv/purge?pattern=*"),
    ] {
        assert_eq!(
            call(method.clone(), path, None).await,
            401,
            "{path} without a token"
        );
        assert_eq!(
            call(method.clone(), path, Some("wrong")).await,
            401,
            "{path} with a wrong one"
        );
    }
    assert_eq!(
        call(http::Method::GET, "/metrics", Some("from-a-secret")).await,
        200
    );
    assert_eq!(
        call(http::Method::GET, "/admin/plugins", Some("from-a-secret")).await,
        200
    );
    // Probes need no token.
    assert_eq!(call(http::Method::GET, "/healthz", None).await, 200);
    assert!(process.terminate().await.success());
}
