//! The default `ip-filter` plugin in a real gateway: allow and deny lists,
//! per route through the real router, IPv4 and IPv6 clients, and the
//! client address as the gateway resolved it through trusted proxies.

use std::sync::Arc;

use serde_json::Value;

use crate::support::client::{Reply, call};
use crate::support::*;

/// The router (`/admin` is route `admin`, `/internal` route `internal`,
/// everything else route `api`, all to `backend`), then the filter, with
/// no capability granted: it needs none.
fn filtered(backend: &Backend, config: Value) -> Setup {
    let to_backend = |name: &str, prefix: &str| json!({"name": name, "match": {"path_prefix": prefix}, "upstream": "backend"});
    Setup::new()
        .upstream("backend", &[backend.url()])
        .router(json!({"routes": [
            to_backend("admin", "/admin"),
            to_backend("internal", "/internal"),
            to_backend("api", "/"),
        ]}))
        .plugin("52-ip-filter", "weir_plugin_ip_filter", Some(config))
        .section("[plugins.52-ip-filter]\ncapabilities = []")
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    call(url, http::Method::GET, headers, "").await
}

/// Assert `reply` is the filter's 403 problem; returns its `detail`.
fn assert_refused(reply: &Reply) -> String {
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let body = reply.json();
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["title"], "Forbidden");
    assert_eq!(body["status"], 403);
    body["detail"].as_str().expect("a detail").to_string()
}

#[tokio::test]
async fn a_denied_client_gets_a_403_problem_and_the_backend_is_not_reached() {
    let backend = Backend::start().await;
    let gw = filtered(&backend, json!({"default": {"deny": ["127.0.0.1"]}}))
        .serve()
        .await;
    let reply = get_with(&gw.url("/anything"), &[]).await;
    let detail = assert_refused(&reply);
    assert_eq!(detail, "client address 127.0.0.1 is not allowed");
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn an_allow_list_lets_through_the_clients_it_names_and_only_those() {
    let backend = Backend::start().await;
    let naming_us = filtered(
        &backend,
        json!({"default": {"allow": ["10.0.0.0/8", "127.0.0.0/8"]}}),
    )
    .serve()
    .await;
    let reply = get_with(&naming_us.url("/users/7"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "hello from backend");
    assert_eq!(backend.hits(), 1);

    let not_naming_us = filtered(&backend, json!({"default": {"allow": ["10.0.0.0/8"]}}))
        .serve()
        .await;
    assert_refused(&get_with(&not_naming_us.url("/users/7"), &[]).await);
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn a_route_rule_replaces_the_default_for_its_route() {
    let backend = Backend::start().await;
    let config = json!({
        "default": {"deny": ["127.0.0.0/8"]},
        "routes": {
            // The default's deny list is not inherited: loopback may use /admin.
            "admin": {"allow": ["127.0.0.1", "::1"]},
            "internal": {"allow": ["10.0.0.0/8"]}
        }
    });
    let gw = filtered(&backend, config).serve().await;
    let admin = get_with(&gw.url("/admin/stats"), &[]).await;
    assert_eq!(admin.status, 200, "{}", admin.text());
    assert_eq!(backend.hits(), 1);
    // `api` has no rule of its own: the default refuses loopback.
    let detail = assert_refused(&get_with(&gw.url("/users/7"), &[]).await);
    assert_eq!(detail, "client address 127.0.0.1 is not allowed");
    // `internal`'s own allow list does not name loopback.
    let detail = assert_refused(&get_with(&gw.url("/internal/jobs"), &[]).await);
    assert_eq!(
        detail,
        "client address 127.0.0.1 is not allowed on route `internal`"
    );
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn deny_wins_over_allow() {
    let backend = Backend::start().await;
    let config = json!({"default": {"allow": ["127.0.0.0/8"], "deny": ["127.0.0.1/32"]}});
    let gw = filtered(&backend, config).serve().await;
    assert_refused(&get_with(&gw.url("/"), &[]).await);
    assert_eq!(backend.hits(), 0);
}

/// Serve `setup` on `[::1]:0`, or `None` when this machine has no IPv6
/// loopback. Stops when the returned sender is dropped.
async fn serve_on_ipv6_loopback(
    setup: &Setup,
) -> Option<(std::net::SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    let listener = match tokio::net::TcpListener::bind("[::1]:0").await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("SKIPPED: IPv6 loopback is not available here ({e})");
            return None;
        }
    };
    let addr = listener.local_addr().unwrap();
    let gateway = Arc::new(setup.gateway().await);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(weir::server::serve(listener, gateway, async move {
        let _ = stopped.await;
    }));
    Some((addr, stop))
}

#[tokio::test]
async fn ipv6_clients_are_judged_by_ipv6_rules() {
    let backend = Backend::start().await;
    let config = json!({
        "default": {"deny": ["::1"]},
        "routes": {
            "admin": {"allow": ["2001:db8::/32", "::1/128"]},
            // IPv4 blocks never match an IPv6 client.
            "internal": {"allow": ["127.0.0.0/8", "0.0.0.0/0"]}
        }
    });
    let setup = filtered(&backend, config);
    let Some((addr, _stop)) = serve_on_ipv6_loopback(&setup).await else {
        return;
    };
    let url = |path: &str| format!("http://{addr}{path}");
    let detail = assert_refused(&get_with(&url("/users/7"), &[]).await);
    assert_eq!(detail, "client address ::1 is not allowed");
    let admin = get_with(&url("/admin"), &[]).await;
    assert_eq!(admin.status, 200, "{}", admin.text());
    let detail = assert_refused(&get_with(&url("/internal"), &[]).await);
    assert_eq!(
        detail,
        "client address ::1 is not allowed on route `internal`"
    );
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn a_forwarded_for_header_from_an_untrusted_peer_is_ignored() {
    let backend = Backend::start().await;
    // No trusted_proxies: a client claiming an allowed address stays itself.
    let gw = filtered(&backend, json!({"default": {"allow": ["203.0.113.0/24"]}}))
        .serve()
        .await;
    let claims = [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9"),
    ];
    let detail = assert_refused(&get_with(&gw.url("/"), &claims).await);
    assert_eq!(detail, "client address 127.0.0.1 is not allowed");
    assert_eq!(backend.hits(), 0);
}

/// Needs the host's `trusted_proxies` and `request.client-ip` (contract
/// 0.4.0): the filter judges the client a trusted proxy forwarded for.
#[tokio::test]
async fn the_client_address_is_the_one_resolved_through_trusted_proxies() {
    let backend = Backend::start().await;
    let gw = filtered(&backend, json!({"default": {"deny": ["203.0.113.0/24"]}}))
        .top(r#"trusted_proxies = ["127.0.0.1/32"]"#)
        .serve()
        .await;
    let forwarded = get_with(&gw.url("/"), &[("x-forwarded-for", "203.0.113.9")]).await;
    let detail = assert_refused(&forwarded);
    assert_eq!(detail, "client address 203.0.113.9 is not allowed");
    assert_eq!(backend.hits(), 0);
    // The proxy itself (no header) is not in the deny list.
    let direct = get_with(&gw.url("/"), &[]).await;
    assert_eq!(direct.status, 200, "{}", direct.text());
    let other = get_with(&gw.url("/"), &[("x-forwarded-for", "198.51.100.4")]).await;
    assert_eq!(other.status, 200, "{}", other.text());
    assert_eq!(backend.hits(), 2);
}

#[tokio::test]
async fn an_invalid_entry_stops_the_load_naming_it() {
    let backend = Backend::start().await;
    let config = json!({"routes": {"admin": {"allow": ["10.0.0.0/8", "10.0.0.0/33"]}}});
    let error = filtered(&backend, config)
        .try_gateway()
        .await
        .err()
        .expect("an invalid CIDR must be refused")
        .to_string();
    assert!(error.contains("52-ip-filter"), "{error}");
    assert!(
        error.contains("routes.admin.allow[1]: `10.0.0.0/33`: the prefix must be 0..=32"),
        "{error}"
    );
}

#[tokio::test]
async fn the_shipped_sample_config_lets_everyone_through() {
    let backend = Backend::start().await;
    let sample: Value =
        serde_json::from_str(include_str!("../../plugins/ip-filter/sample.json")).unwrap();
    let gw = filtered(&backend, sample).serve().await;
    let reply = get_with(&gw.url("/admin"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(backend.hits(), 1);
}
