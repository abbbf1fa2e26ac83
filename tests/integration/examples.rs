//! The example plugins, built with their real toolchains (Rust by the build
//! script, Python with componentize-py, JavaScript with `weir build-js`
//! and with ComponentizeJS, C
//! with clang + wit-bindgen + wasm-tools), run through the real host: each
//! changes traffic as its README says.

use http::Method;
use serde_json::Value;

use crate::support::toolchains;
use crate::support::*;

fn with_headers(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Request<weir::http::body::Body> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(weir::http::body::full(body.to_string()))
        .unwrap()
}

fn example_config(dir: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(dir)
        .join("config.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

// ---- Python ----

#[tokio::test]
async fn python_validator_answers_422_with_every_error_and_passes_valid_bodies() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin_file(
            "30-validate",
            toolchains::python_validator(),
            Some(example_config("python-validator")),
        )
        .serve()
        .await;
    let client = crate::support::client::http1();
    let json = [("content-type", "application/json")];

    let bad = send(
        &client,
        with_headers(
            Method::POST,
            &gw.url("/orders"),
            &json,
            r#"{"item": "", "quantity": 0, "colour": "red"}"#,
        ),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text());
    assert_eq!(
        bad.json(),
        json!({"error": "validation failed", "errors": [
            {"path": "/item", "message": "must be at least 1 characters"},
            {"path": "/quantity", "message": "must be >= 1"},
            {"path": "/colour", "message": "is not allowed"}
        ]})
    );
    let missing = send(
        &client,
        with_headers(Method::POST, &gw.url("/orders"), &json, "{}"),
    )
    .await;
    assert_eq!(missing.status, 422);
    assert_eq!(
        missing.json()["errors"][0],
        json!({"path": "/item", "message": "is required"})
    );
    let garbage = send(
        &client,
        with_headers(Method::PUT, &gw.url("/orders/1"), &json, "not json"),
    )
    .await;
    assert_eq!(garbage.status, 422);
    assert!(
        garbage.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON")
    );
    assert_eq!(backend.hits(), 0, "an invalid request reached the upstream");

    let good = send(
        &client,
        with_headers(
            Method::POST,
            &gw.url("/echo"),
            &json,
            r#"{"item": "tea", "quantity": 2}"#,
        ),
    )
    .await;
    assert_eq!(good.status, 200, "{}", good.text());
    // Other paths and methods are not checked.
    assert_eq!(
        send(
            &client,
            with_headers(
                Method::POST,
                &gw.url("/orders"),
                &json,
                r#"{"item": "tea", "quantity": 2}"#
            )
        )
        .await
        .status,
        200
    );
    assert_eq!(get(&gw.url("/orders")).await.status, 200);
    assert_eq!(backend.hits(), 3);
}

// ---- JavaScript ----

#[tokio::test]
async fn js_security_headers_answers_preflights_and_decorates_responses() {
    security_headers_behaviour(toolchains::js_security_headers()).await;
}

/// The same source built with ComponentizeJS behaves the same: Weir's
/// runtime serves ComponentizeJS's JavaScript API.
#[tokio::test]
async fn js_security_headers_built_with_componentize_js_behaves_the_same() {
    security_headers_behaviour(toolchains::js_security_headers_componentize()).await;
}

async fn security_headers_behaviour(plugin: &std::path::Path) {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .plugin_file(
            "20-headers",
            plugin,
            Some(example_config("js-security-headers")),
        )
        // Responses pass 30 before 20: this stands in for an upstream that
        // sets its own framing policy, which the plugin must keep.
        .scripted(
            "30-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}],
                   "on_response": [{"op": "set_header", "name": "X-Frame-Options", "value": "SAMEORIGIN"},
                                   {"op": "set_header", "name": "Vary", "value": "Accept-Encoding"}]}),
        )
        .serve()
        .await;
    let client = crate::support::client::http1();
    let allowed = "https://app.example.com";

    let preflight = send(
        &client,
        with_headers(
            Method::OPTIONS,
            &gw.url("/orders"),
            &[
                ("origin", allowed),
                ("access-control-request-method", "POST"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(allowed)
    );
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("GET, POST")
    );
    assert_eq!(preflight.header("access-control-max-age"), Some("600"));
    assert_eq!(backend.hits(), 0, "a preflight reached the upstream");

    let reply = send(
        &client,
        with_headers(Method::GET, &gw.url("/"), &[("origin", allowed)], ""),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), Some(allowed));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(
        reply.header("x-frame-options"),
        Some("SAMEORIGIN"),
        "a header the upstream set was overwritten"
    );
    // RFC 9110 section 12.5.5: the upstream's Vary stays, and Origin joins
    // it (the field's lines may be one comma-joined line or several).
    let vary: Vec<&str> = reply
        .headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(vary.join(", "), "Accept-Encoding, Origin");

    let other = send(
        &client,
        with_headers(
            Method::GET,
            &gw.url("/"),
            &[("origin", "https://evil.example")],
            "",
        ),
    )
    .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    assert_eq!(other.header("x-content-type-options"), Some("nosniff"));
    let refused = send(
        &client,
        with_headers(
            Method::OPTIONS,
            &gw.url("/"),
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "GET"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(refused.status, 204);
    assert_eq!(refused.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn plugins_in_four_languages_share_one_pipeline() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .plugin_file(
            "10-methods",
            toolchains::c_method_guard(),
            Some(json!({"allow": ["GET", "POST"]})),
        )
        .plugin_file(
            "20-headers",
            toolchains::js_security_headers(),
            Some(example_config("js-security-headers")),
        )
        .plugin_file(
            "30-validate",
            toolchains::python_validator(),
            Some(example_config("python-validator")),
        )
        .scripted(
            "40-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin("50-hello", "hello_header", None)
        .serve()
        .await;
    let client = crate::support::client::http1();
    // Refused by Python, decorated by JavaScript on the way out.
    let bad = send(
        &client,
        with_headers(Method::POST, &gw.url("/orders"), &[], "{}"),
    )
    .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        bad.header("x-hello"),
        None,
        "a later plugin ran after the reply"
    );
    // Passed by Python, stamped by Rust and JavaScript.
    let good = get(&gw.url("/")).await;
    assert_eq!(good.status, 200);
    assert_eq!(good.header("x-hello"), Some("weir"));
    assert_eq!(good.header("x-content-type-options"), Some("nosniff"));
    // Refused by C before anything else ran.
    let delete = send(
        &client,
        with_headers(Method::DELETE, &gw.url("/orders/1"), &[], ""),
    )
    .await;
    assert_eq!(delete.status, 405);
    assert_eq!(delete.header("x-frame-options"), None);
    assert_eq!(backend.hits(), 1, "only the valid GET reached the upstream");
}

// ---- C ----

#[tokio::test]
async fn c_method_guard_answers_405_with_allow_and_passes_listed_methods() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .plugin_file(
            "10-methods",
            toolchains::c_method_guard(),
            Some(example_config("c-method-guard")),
        )
        .scripted(
            "30-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .serve()
        .await;
    let client = crate::support::client::http1();

    for method in [
        Method::DELETE,
        Method::POST,
        Method::from_bytes(b"PURGE").unwrap(),
    ] {
        let reply = send(
            &client,
            with_headers(method.clone(), &gw.url("/x"), &[], ""),
        )
        .await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("GET, HEAD, OPTIONS"));
        assert_eq!(reply.text(), "method not allowed\n");
    }
    assert_eq!(backend.hits(), 0, "a refused method reached the upstream");

    for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
        let reply = send(
            &client,
            with_headers(method.clone(), &gw.url("/x"), &[], ""),
        )
        .await;
        assert_eq!(reply.status, 200, "{method}");
    }
    assert_eq!(backend.hits(), 3);
}

#[tokio::test]
async fn c_method_guard_refuses_a_bad_config_naming_the_problem() {
    let kit = weir::tooling::testkit::PluginUnderTest::load(
        toolchains::c_method_guard(),
        r#"{"allow": "GET"}"#,
        weir::tooling::testkit::Stubs::default(),
        None,
    )
    .await;
    let Err(error) = kit else {
        panic!("a bad config was accepted")
    };
    assert!(
        error
            .to_string()
            .contains("`allow` must be a list of methods"),
        "{error}"
    );
}

#[tokio::test]
async fn c_method_guard_logs_each_refusal_through_the_log_capability() {
    let kit = weir::tooling::testkit::PluginUnderTest::load(
        toolchains::c_method_guard(),
        r#"{"allow": ["get"]}"#,
        weir::tooling::testkit::Stubs::default(),
        None,
    )
    .await
    .expect("the guard loads");
    let delete = weir::tooling::testkit::TestRequest {
        method: "DELETE".into(),
        ..Default::default()
    };
    let outcome = kit.on_request(&delete).await.expect("on-request runs");
    let weir::tooling::testkit::TestAction::Respond { reply } = outcome.action else {
        panic!("DELETE was not refused: {:?}", outcome.action)
    };
    // The config's methods are upper-cased.
    assert_eq!(
        (reply.status, reply.headers.get("allow")),
        (405, Some("GET"))
    );
    let logs = kit.take_logs();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(
        (logs[0].level.as_str(), logs[0].message.as_str()),
        ("info", "refused method DELETE")
    );

    let get = weir::tooling::testkit::TestRequest::default();
    let outcome = kit.on_request(&get).await.expect("on-request runs");
    assert_eq!(outcome.action, weir::tooling::testkit::TestAction::Continue);
    assert!(kit.take_logs().is_empty(), "an allowed method was logged");
}

// ---- Rust ----

#[tokio::test]
async fn ab_split_pins_by_header_and_keeps_users_sticky() {
    let (a, b) = (Backend::start().await, Backend::start().await);
    let gw = Setup::new()
        .upstream("users", &[a.url()])
        .upstream("users-v2", &[b.url()])
        .plugin(
            "40-ab",
            "ab_split",
            Some(json!({"upstream_a": "users", "upstream_b": "users-v2", "percent_b": 50, "sticky_header": "x-user"})),
        )
        .serve()
        .await;
    let client = crate::support::client::http1();
    let pinned = send(
        &client,
        with_headers(
            Method::GET,
            &gw.url("/"),
            &[("x-variant", "b"), ("x-user", "u1")],
            "",
        ),
    )
    .await;
    assert_eq!(pinned.header("x-variant"), Some("b"));
    assert_eq!((a.hits(), b.hits()), (0, 1));
    assert_eq!(b.last().unwrap().headers["x-variant"], "b");

    // Without a pin: each user always gets the same variant, and users spread.
    let mut seen = std::collections::BTreeSet::new();
    for user in 0..40 {
        let user = format!("user-{user}");
        let first = send(
            &client,
            with_headers(Method::GET, &gw.url("/"), &[("x-user", &user)], ""),
        )
        .await;
        let again = send(
            &client,
            with_headers(Method::GET, &gw.url("/"), &[("x-user", &user)], ""),
        )
        .await;
        assert_eq!(
            first.header("x-variant"),
            again.header("x-variant"),
            "{user} switched variants"
        );
        seen.insert(first.header("x-variant").unwrap().to_string());
    }
    assert_eq!(seen.len(), 2, "40 users all got one variant");
}

#[tokio::test]
async fn json_redactor_rewrites_json_bodies_only() {
    let backend = Backend::start().await;
    backend.serve_json("/account", &json!({"name": "ada", "password": "hunter2", "cards": [{"number": "4111", "exp": "12/30"}]}));
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .plugin(
            "50-redact",
            "json_redactor",
            Some(json!({"keys": ["password", "number"]})),
        )
        .serve()
        .await;
    let reply = get(&gw.url("/account")).await;
    assert_eq!(
        reply.json(),
        json!({"name": "ada", "password": "[redacted]", "cards": [{"number": "[redacted]", "exp": "12/30"}]})
    );
    assert_eq!(
        reply.header("content-length"),
        Some(reply.body.len().to_string().as_str())
    );
    // Not JSON: untouched.
    assert_eq!(get(&gw.url("/plain")).await.text(), "hello from backend");
}
