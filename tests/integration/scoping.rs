//! Plugin governance in the request path: plugins limited to routes or
//! hosts (`[plugins.NAME] routes`, `hosts`, and the routes a plugin's
//! `init` declares through `interest.only-routes`) and the failure policy
//! (`on_failure = "skip"` or `"reject"`).

use bytes::Bytes;

use crate::support::*;

/// The default router: `/users/{id}` is route `users`, `/orders...` route
/// `orders`, both to `backend`.
fn routes() -> serde_json::Value {
    json!({"routes": [
        {"name": "users", "match": {"path": "/users/{id}"}, "upstream": "backend"},
        {"name": "orders", "match": {"path_prefix": "/orders"}, "upstream": "backend"}
    ]})
}

/// A counter in the plugin's `kv`, sent upstream as `x-calls`: the number
/// of times the plugin has run, across instances.
fn counter() -> serde_json::Value {
    json!({"on_request": [{"op": "kv_incr", "key": "calls", "header": "x-calls"}]})
}

#[tokio::test]
async fn a_plugin_scoped_to_orders_is_never_called_for_users() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .router(routes())
        .scripted("60-count", counter())
        .section("[plugins.60-count]\nroutes = [\"orders\"]")
        .serve()
        .await;
    for i in 0..5 {
        let reply = get(&gw.url(&format!("/users/{i}"))).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let seen = backend.last().unwrap();
        assert!(seen.headers.get("x-calls").is_none(), "called for /users");
    }
    for expected in ["1", "2"] {
        let reply = get(&gw.url("/orders/7")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        // The count kept in kv: the five /users requests never reached it.
        assert_eq!(backend.last().unwrap().headers["x-calls"], expected);
    }
    // An unknown path has no route: a route-scoped plugin does not run.
    assert_eq!(get(&gw.url("/nowhere")).await.status, 404);
    get(&gw.url("/orders/8")).await;
    assert_eq!(backend.last().unwrap().headers["x-calls"], "3");
}

/// `counter()` that also marks the response, declaring `routes` from
/// `init` (contract 0.5.0's `interest.only-routes`).
fn declaring(routes: serde_json::Value) -> serde_json::Value {
    json!({
        "routes": routes,
        "on_request": [{"op": "kv_incr", "key": "calls", "header": "x-calls"}],
        "on_response": [{"op": "set_header", "name": "x-declared", "value": "seen"}]
    })
}

#[tokio::test]
async fn a_plugin_that_declares_its_routes_is_called_on_them_only() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .router(routes())
        .scripted("60-count", declaring(json!(["orders"])))
        .serve()
        .await;
    let pipeline = gw.gateway.pipeline();
    assert_eq!(
        pipeline.plugins()[1].routes(),
        Some(&["orders".to_string()][..])
    );
    // Neither hook runs off its routes, nor where no route is known.
    assert_eq!(pipeline.request_chain(), &[0]);
    assert!(pipeline.response_chain().is_empty());
    for i in 0..5 {
        let reply = get(&gw.url(&format!("/users/{i}"))).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-declared"), None, "on-response for /users");
        let seen = backend.last().unwrap();
        assert!(seen.headers.get("x-calls").is_none(), "called for /users");
    }
    assert_eq!(get(&gw.url("/nowhere")).await.status, 404);
    for expected in ["1", "2"] {
        let reply = get(&gw.url("/orders/7")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-declared"), Some("seen"));
        // The count kept in kv: no other request reached the plugin.
        assert_eq!(backend.last().unwrap().headers["x-calls"], expected);
    }
}

#[tokio::test]
async fn declared_routes_and_operator_routes_meet() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .router(routes())
        // Declares orders and carts; the operator allows users and orders.
        .scripted("60-count", declaring(json!(["orders", "carts"])))
        .section("[plugins.60-count]\nroutes = [\"users\", \"orders\"]")
        // Declares no route at all: never called.
        .scripted(
            "70-none",
            json!({"routes": [], "on_request": [
                {"op": "set_header", "name": "x-none", "value": "called"}]}),
        )
        .serve()
        .await;
    let reply = get(&gw.url("/users/1")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-declared"), None);
    assert!(backend.last().unwrap().headers.get("x-calls").is_none());
    let reply = get(&gw.url("/orders/1")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = backend.last().unwrap();
    assert_eq!(seen.headers["x-calls"], "1");
    assert!(seen.headers.get("x-none").is_none(), "70-none was called");
    assert_eq!(
        gw.gateway.pipeline().plugins()[2].routes(),
        Some(&[][..]),
        "an empty declaration is kept as no route"
    );
    let reply = get(&gw.url("/users/2")).await;
    assert_eq!(reply.status, 200);
    let seen = backend.last().unwrap();
    assert!(seen.headers.get("x-calls").is_none() && seen.headers.get("x-none").is_none());
    let reply = get(&gw.url("/orders/2")).await;
    assert_eq!(backend.last().unwrap().headers["x-calls"], "2");
    assert_eq!(reply.header("x-declared"), Some("seen"));
}

#[tokio::test]
async fn routes_declared_from_a_hook_are_ignored() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .router(routes())
        .scripted(
            "60-count",
            json!({"on_request": [
                {"op": "declare_routes", "routes": ["orders"]},
                {"op": "kv_incr", "key": "calls", "header": "x-calls"}]}),
        )
        .serve()
        .await;
    for (path, expected) in [("/orders/1", "1"), ("/users/1", "2"), ("/users/2", "3")] {
        let reply = get(&gw.url(path)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(backend.last().unwrap().headers["x-calls"], expected);
    }
    assert_eq!(gw.gateway.pipeline().plugins()[1].routes(), None);
}

#[tokio::test]
async fn a_plugin_scoped_to_a_host_runs_only_for_it() {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .router(routes())
        .scripted(
            "60-mark",
            json!({"on_request": [{"op": "set_header", "name": "x-marked", "value": "yes"}]}),
        )
        .section("[plugins.60-mark]\nhosts = [\"API.example.com\"]")
        .gateway()
        .await;
    for (host, marked) in [
        ("api.example.com", true),
        ("api.example.com:8443", true),
        ("www.example.com", false),
    ] {
        let req = http::Request::builder()
            .uri("/users/1")
            .header("host", host)
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let peer: std::net::SocketAddr = "192.0.2.7:4242".parse().unwrap();
        let response = gw.handle(req, peer).await;
        assert_eq!(response.status(), 200, "{host}");
        let seen = backend.last().unwrap();
        assert_eq!(seen.headers.get("x-marked").is_some(), marked, "{host}");
    }
}

/// `10-route` picks the backend, `20-bad` traps on `/bad` (in `hook`), and
/// `30-mark` marks what passes, with `table` in `weir.toml`.
async fn trapping(hook: &str, table: &str) -> (Backend, Running) {
    let backend = Backend::start().await;
    let gw = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .scripted(
            "20-bad",
            json!({
                hook: [{"op": "when_path", "path": "/bad", "then": [{"op": "trap"}]}]
            }),
        )
        .scripted(
            "30-mark",
            json!({"on_response": [{"op": "set_header", "name": "x-passed", "value": "30"}]}),
        )
        .section(table)
        .serve()
        .await;
    (backend, gw)
}

#[tokio::test]
async fn skip_lets_requests_through_a_trapping_plugin() {
    for hook in ["on_request", "on_response"] {
        let (backend, gw) = trapping(hook, "[plugins.20-bad]\non_failure = \"skip\"").await;
        for _ in 0..3 {
            let reply = get(&gw.url("/bad")).await;
            assert_eq!(reply.status, 200, "{hook}: {}", reply.text());
            assert_eq!(reply.header("x-passed"), Some("30"), "{hook}");
        }
        assert_eq!(backend.hits(), 3, "{hook}");
    }
}

#[tokio::test]
async fn reject_answers_500_naming_the_plugin() {
    for (hook, table) in [
        ("on_request", "[plugins.20-bad]\non_failure = \"reject\""),
        // No table: reject is the default.
        ("on_response", ""),
    ] {
        let (backend, gw) = trapping(hook, table).await;
        let reply = get(&gw.url("/bad")).await;
        assert_eq!(reply.status, 500, "{hook}: {}", reply.text());
        assert_eq!(reply.json()["plugin"], "20-bad", "{hook}");
        let hits = backend.hits();
        assert_eq!(hits, usize::from(hook == "on_response"), "{hook}");
        // The next request through the same plugins is served.
        assert_eq!(get(&gw.url("/good")).await.status, 200, "{hook}");
    }
}

#[tokio::test]
async fn skip_is_refused_for_a_plugin_with_the_auth_role() {
    let setup = Setup::new()
        .scripted("60-auth", json!({}))
        .section("[plugins.60-auth]\nrole = \"auth\"\non_failure = \"skip\"");
    let error = weir::Config::load(&setup.write()).unwrap_err().to_string();
    assert!(error.contains("weir.toml"), "{error}");
    assert!(
        error.contains("[plugins.60-auth]") && error.contains("skip"),
        "{error}"
    );
}

/// Deleting a plugin's file takes it out; its table left behind is only
/// warned about (it may be a typo).
#[tokio::test]
async fn a_plugins_table_naming_no_plugin_is_warned_about() {
    let backend = Backend::start().await;
    let setup = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        )
        .section("[plugins.10-rotue]\non_failure = \"skip\"");
    let (gw, stderr) = crate::support::process::Process::start_capturing(&setup.write()).await;
    assert_eq!(get(&gw.url("/")).await.status, 200);
    let logged = stderr.text();
    assert!(
        logged.contains("[plugins.10-rotue] names no plugin"),
        "{logged}"
    );
}
