//! The default `cache` plugin through the real gateway and router, against
//! a real backend whose hit counter proves what was served from the cache:
//! freshness and `Age`, `no-store` / `private`, `Vary`, revalidation with
//! 304s, clients' conditional requests, size limits and quotas, purge
//! through the admin API, and one cache shared by two gateways on Redis.

use std::time::Duration;

use http::Method;
use serde_json::Value;

use crate::support::client::{Reply, http1};
use crate::support::process::Process;
use crate::support::redis::RedisServer;
use crate::support::*;

/// Router (`api` for everything) → optional scripted consumer → cache.
fn cached(backend: &Backend, cache: Value) -> Setup {
    Setup::new()
        .upstream("backend", &[backend.url()])
        .router(json!({"routes": [
            {"name": "api", "match": {"path_prefix": "/"}, "upstream": "backend"}
        ]}))
        .scripted(
            "60-consumer",
            json!({"on_request": [{"op": "header_to_context", "header": "x-consumer", "key": "consumer"}]}),
        )
        .plugin("75-cache", "weir_plugin_cache", Some(cache))
}

fn api(rule: Value) -> Value {
    json!({"routes": {"api": rule}})
}

async fn fetch(url: &str, headers: &[(&str, &str)]) -> Reply {
    fetch_with(Method::GET, url, headers).await
}

async fn fetch_with(method: Method, url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(&http1(), builder.body(weir::http::body::empty()).unwrap()).await
}

fn outcome(reply: &Reply) -> &str {
    reply.header("x-cache").unwrap_or("(none)")
}

#[tokio::test]
async fn a_cacheable_get_is_served_from_the_cache_the_second_time_with_age() {
    let backend = Backend::start().await;
    backend.serve_http(
        "/doc",
        200,
        &[
            ("cache-control", "max-age=60"),
            ("content-type", "text/plain"),
        ],
        "cached body",
    );
    let gw = cached(&backend, api(json!({}))).serve().await;

    let first = fetch(&gw.url("/doc"), &[]).await;
    assert_eq!((first.status.as_u16(), outcome(&first)), (200, "MISS"));
    assert_eq!(first.text(), "cached body");
    let second = fetch(&gw.url("/doc"), &[]).await;
    assert_eq!((second.status.as_u16(), outcome(&second)), (200, "HIT"));
    assert_eq!(second.text(), "cached body");
    assert_eq!(second.header("content-type"), Some("text/plain"));
    assert_eq!(second.header("content-length"), Some("11"));
    let age: u64 = second.header("age").expect("Age on a hit").parse().unwrap();
    assert!(age < 60, "{age}");
    // HEAD is answered from the stored GET, without a body.
    let head = fetch_with(Method::HEAD, &gw.url("/doc"), &[]).await;
    assert_eq!((head.status.as_u16(), outcome(&head)), (200, "HIT"));
    assert!(head.body.is_empty());
    assert_eq!(backend.hits(), 1);
    // Another query string is another entry.
    assert_eq!(outcome(&fetch(&gw.url("/doc?v=2"), &[]).await), "MISS");
    assert_eq!(backend.hits(), 2);
}

#[tokio::test]
async fn no_store_private_and_set_cookie_are_not_cached_by_default() {
    let backend = Backend::start().await;
    backend.serve_http(
        "/no-store",
        200,
        &[("cache-control", "no-store, max-age=60")],
        "a",
    );
    backend.serve_http(
        "/private",
        200,
        &[("cache-control", "private, max-age=60")],
        "b",
    );
    backend.serve_http(
        "/cookie",
        200,
        &[("cache-control", "max-age=60"), ("set-cookie", "s=1")],
        "d",
    );
    let gw = cached(&backend, api(json!({}))).serve().await;
    for path in ["/no-store", "/private", "/cookie"] {
        for _ in 0..2 {
            let reply = fetch(&gw.url(path), &[]).await;
            assert_eq!(outcome(&reply), "BYPASS", "{path}");
        }
    }
    assert_eq!(backend.hits(), 6);
    // A client's no-store is honoured too.
    backend.serve_http("/ok", 200, &[("cache-control", "max-age=60")], "e");
    let bypass = fetch(&gw.url("/ok"), &[("cache-control", "no-store")]).await;
    assert_eq!(outcome(&bypass), "BYPASS");
    assert_eq!(outcome(&fetch(&gw.url("/ok"), &[]).await), "MISS");
}

#[tokio::test]
async fn vary_accept_language_keeps_one_entry_per_language() {
    let backend = Backend::start().await;
    backend.serve_http(
        "/greeting",
        200,
        &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
        "lang={h:accept-language}",
    );
    let gw = cached(&backend, api(json!({}))).serve().await;
    let mut seen = Vec::new();
    for lang in ["en", "fr", "en", "fr"] {
        let reply = fetch(&gw.url("/greeting"), &[("accept-language", lang)]).await;
        seen.push((reply.text(), outcome(&reply).to_string()));
    }
    let expected = [
        ("lang=en", "MISS"),
        ("lang=fr", "MISS"),
        ("lang=en", "HIT"),
        ("lang=fr", "HIT"),
    ];
    let seen: Vec<(&str, &str)> = seen.iter().map(|(b, o)| (b.as_str(), o.as_str())).collect();
    assert_eq!(seen, expected);
    assert_eq!(backend.hits(), 2);
}

#[tokio::test]
async fn a_stale_entry_is_revalidated_with_if_none_match_and_a_304_refreshes_it() {
    let backend = Backend::start().await;
    backend.serve_http(
        "/v",
        200,
        &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
        "version one",
    );
    let gw = cached(&backend, api(json!({}))).serve().await;
    assert_eq!(outcome(&fetch(&gw.url("/v"), &[]).await), "MISS");
    // Past max-age (a real wait: the plugin reads the wall clock).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    // The origin now says the same version is good for a minute.
    backend.serve_http(
        "/v",
        200,
        &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
        "not sent: the cache asks conditionally",
    );
    let revalidated = fetch(&gw.url("/v"), &[]).await;
    assert_eq!(
        (revalidated.status.as_u16(), outcome(&revalidated)),
        (200, "REVALIDATED")
    );
    assert_eq!(revalidated.text(), "version one");
    let asked = backend.last_at("/v").unwrap();
    assert_eq!(asked.headers["if-none-match"], "\"v1\"");
    assert_eq!(backend.hits(), 2);
    // The 304 refreshed the entry: fresh again, for the new max-age.
    let hit = fetch(&gw.url("/v"), &[]).await;
    assert_eq!((outcome(&hit), hit.text().as_str()), ("HIT", "version one"));
    assert_eq!(backend.hits(), 2);
}

#[tokio::test]
async fn revalidation_uses_if_modified_since_without_an_etag_and_a_200_replaces_the_entry() {
    let backend = Backend::start().await;
    let modified = "Sun, 06 Nov 1994 08:49:37 GMT";
    backend.serve_http(
        "/lm",
        200,
        &[("cache-control", "max-age=0"), ("last-modified", modified)],
        "old",
    );
    let gw = cached(&backend, api(json!({}))).serve().await;
    assert_eq!(outcome(&fetch(&gw.url("/lm"), &[]).await), "MISS");
    // max-age=0: stale at once, kept to be revalidated.
    assert_eq!(outcome(&fetch(&gw.url("/lm"), &[]).await), "REVALIDATED");
    let asked = backend.last_at("/lm").unwrap();
    assert_eq!(asked.headers["if-modified-since"], modified);
    assert!(asked.headers.get("if-none-match").is_none());
    // Changed upstream: the 200 is passed on and stored in place.
    backend.serve_http(
        "/lm",
        200,
        &[
            ("cache-control", "max-age=60"),
            ("last-modified", "Mon, 07 Nov 1994 08:49:37 GMT"),
        ],
        "new",
    );
    let changed = fetch(&gw.url("/lm"), &[]).await;
    assert_eq!(
        (outcome(&changed), changed.text().as_str()),
        ("MISS", "new")
    );
    let hit = fetch(&gw.url("/lm"), &[]).await;
    assert_eq!((outcome(&hit), hit.text().as_str()), ("HIT", "new"));
    assert_eq!(backend.hits(), 3);
}

#[tokio::test]
async fn a_client_if_none_match_on_a_fresh_entry_gets_304_from_the_gateway() {
    let backend = Backend::start().await;
    backend.serve_http(
        "/e",
        200,
        &[
            ("cache-control", "max-age=60"),
            ("etag", "\"e1\""),
            ("content-type", "text/plain"),
        ],
        "entity",
    );
    let gw = cached(&backend, api(json!({}))).serve().await;
    // A miss with a matching condition: the upstream is asked for the whole
    // response (to store it) and the gateway answers the condition.
    let first = fetch(&gw.url("/e"), &[("if-none-match", "\"e1\"")]).await;
    assert_eq!((first.status.as_u16(), outcome(&first)), (304, "MISS"));
    assert!(
        backend
            .last_at("/e")
            .unwrap()
            .headers
            .get("if-none-match")
            .is_none()
    );
    let not_modified = fetch(&gw.url("/e"), &[("if-none-match", "W/\"x\", \"e1\"")]).await;
    assert_eq!(
        (not_modified.status.as_u16(), outcome(&not_modified)),
        (304, "HIT")
    );
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some("\"e1\""));
    assert!(not_modified.header("content-type").is_none());
    let other = fetch(&gw.url("/e"), &[("if-none-match", "\"e0\"")]).await;
    assert_eq!(
        (
            other.status.as_u16(),
            outcome(&other),
            other.text().as_str()
        ),
        (200, "HIT", "entity")
    );
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn credentials_are_cached_only_when_the_response_allows_or_per_consumer() {
    let backend = Backend::start().await;
    backend.serve_http(
        "/mine",
        200,
        &[("cache-control", "max-age=60")],
        "for {h:x-consumer}",
    );
    backend.serve_http(
        "/shared",
        200,
        &[("cache-control", "public, max-age=60")],
        "all",
    );
    let gw = cached(&backend, api(json!({}))).serve().await;
    let bearer = [("authorization", "Bearer t")];
    assert_eq!(outcome(&fetch(&gw.url("/mine"), &bearer).await), "BYPASS");
    assert_eq!(outcome(&fetch(&gw.url("/mine"), &bearer).await), "BYPASS");
    assert_eq!(outcome(&fetch(&gw.url("/shared"), &bearer).await), "MISS");
    assert_eq!(outcome(&fetch(&gw.url("/shared"), &bearer).await), "HIT");
    // An authenticated consumer counts as a credential...
    let alice = [("x-consumer", "alice")];
    assert_eq!(outcome(&fetch(&gw.url("/mine"), &alice).await), "BYPASS");
    assert_eq!(backend.hits(), 4);

    // ...unless entries are kept per consumer.
    let gw = cached(&backend, api(json!({"per_consumer": true})))
        .serve()
        .await;
    let bob = [("x-consumer", "bob")];
    for (who, expected) in [
        (&alice, "MISS"),
        (&bob, "MISS"),
        (&alice, "HIT"),
        (&bob, "HIT"),
    ] {
        let reply = fetch(&gw.url("/mine"), who).await;
        assert_eq!(outcome(&reply), expected);
        assert_eq!(reply.text(), format!("for {}", who[0].1));
    }
    assert_eq!(backend.hits(), 6);
}

#[tokio::test]
async fn the_key_holds_only_the_configured_query_parameters_and_headers() {
    let backend = Backend::start().await;
    backend.serve_http("/k", 200, &[("cache-control", "max-age=60")], "k");
    let rule = json!({"query": ["id"], "headers": ["x-tenant"]});
    let gw = cached(&backend, api(rule)).serve().await;
    let t = |v| [("x-tenant", v)];
    assert_eq!(
        outcome(&fetch(&gw.url("/k?id=1&utm=a"), &t("a")).await),
        "MISS"
    );
    assert_eq!(
        outcome(&fetch(&gw.url("/k?utm=b&id=1"), &t("a")).await),
        "HIT"
    );
    assert_eq!(outcome(&fetch(&gw.url("/k?id=2"), &t("a")).await), "MISS");
    assert_eq!(outcome(&fetch(&gw.url("/k?id=1"), &t("b")).await), "MISS");
    assert_eq!(backend.hits(), 3);
}

#[tokio::test]
async fn a_body_over_the_size_limit_streams_through_uncached() {
    let backend = Backend::start().await;
    let large = "x".repeat(5_000);
    backend.serve_http("/large", 200, &[("cache-control", "max-age=60")], &large);
    let gw = cached(&backend, api(json!({"max_object_bytes": 4096})))
        .serve()
        .await;
    for _ in 0..2 {
        let reply = fetch(&gw.url("/large"), &[]).await;
        assert_eq!((outcome(&reply), reply.body.len()), ("BYPASS", 5_000));
    }
    // Chunked, without content-length, past the gateway's max_body_bytes:
    // the body cannot be buffered, so it streams on whole.
    let gw = cached(&backend, api(json!({})))
        .limit("max_body_bytes = 1000")
        .serve()
        .await;
    let chunked = fetch(&gw.url("/chunked?n=200"), &[]).await;
    assert_eq!(
        (chunked.status.as_u16(), outcome(&chunked)),
        (200, "BYPASS")
    );
    assert_eq!(chunked.text().lines().count(), 200);
    assert_eq!(backend.hits(), 3);
}

#[tokio::test]
async fn entries_count_against_the_kv_quota_and_past_it_are_not_stored() {
    let backend = Backend::start().await;
    backend.serve_http("/small", 200, &[("cache-control", "max-age=60")], "small");
    backend.serve_http(
        "/big",
        200,
        &[("cache-control", "max-age=60")],
        &"y".repeat(3_000),
    );
    let gw = cached(&backend, api(json!({})))
        .budget("kv_max_value_bytes = 2048")
        .serve()
        .await;
    for _ in 0..2 {
        let reply = fetch(&gw.url("/big"), &[]).await;
        assert_eq!(
            (reply.status.as_u16(), outcome(&reply), reply.body.len()),
            (200, "MISS", 3_000)
        );
    }
    assert_eq!(outcome(&fetch(&gw.url("/small"), &[]).await), "MISS");
    assert_eq!(outcome(&fetch(&gw.url("/small"), &[]).await), "HIT");
    assert_eq!(backend.hits(), 3);
}

#[tokio::test]
async fn a_successful_unsafe_request_invalidates_the_entry() {
    let backend = Backend::start().await;
    backend.serve_http("/item", 200, &[("cache-control", "max-age=60")], "item");
    let gw = cached(&backend, api(json!({}))).serve().await;
    assert_eq!(outcome(&fetch(&gw.url("/item"), &[]).await), "MISS");
    assert_eq!(outcome(&fetch(&gw.url("/item"), &[]).await), "HIT");
    let put = fetch_with(Method::PUT, &gw.url("/item"), &[]).await;
    assert_eq!(outcome(&put), "BYPASS");
    assert_eq!(outcome(&fetch(&gw.url("/item"), &[]).await), "MISS");
    assert_eq!(backend.hits(), 3);
}

#[tokio::test]
async fn routes_without_a_rule_are_not_touched() {
    let backend = Backend::start().await;
    backend.serve_http("/doc", 200, &[("cache-control", "max-age=60")], "doc");
    let gw = cached(&backend, json!({"routes": {"other": {}}}))
        .serve()
        .await;
    for _ in 0..2 {
        assert!(
            fetch(&gw.url("/doc"), &[])
                .await
                .header("x-cache")
                .is_none()
        );
    }
    assert_eq!(backend.hits(), 2);
}

#[tokio::test]
async fn purge_through_the_admin_api_empties_the_cache() {
    let backend = Backend::start().await;
    backend.serve_http("/p", 200, &[("cache-control", "max-age=60")], "p");
    backend.serve_http("/q", 200, &[("cache-control", "max-age=60")], "q");
    let setup = cached(&backend, api(json!({})));
    let process = Process::start(&setup.write()).await;
    for path in ["/p", "/q", "/p", "/q"] {
        fetch(&process.url(path), &[]).await;
    }
    assert_eq!(backend.hits(), 2);
    // One entry by its path, then everything of the route.
    let purge = |pattern: &str| {
        let url = process.admin_url(&format!(
            "/admin/plugins/75-cache/kv/purge?pattern={pattern}"
        ));
        async move { fetch_with(Method::POST, &url, &[]).await }
    };
    let one = purge("api%7Cbackend%7C%7C/p?*").await;
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(one.json()["purged"], 1);
    assert_eq!(outcome(&fetch(&process.url("/p"), &[]).await), "MISS");
    assert_eq!(outcome(&fetch(&process.url("/q"), &[]).await), "HIT");
    assert_eq!(purge("api%7C*").await.json()["purged"], 2);
    assert_eq!(outcome(&fetch(&process.url("/q"), &[]).await), "MISS");
    assert_eq!(backend.hits(), 4);
}

#[tokio::test]
async fn two_gateways_on_one_redis_share_one_cache_entry() {
    let redis = RedisServer::start();
    let backend = Backend::start().await;
    backend.serve_http(
        "/shared",
        200,
        &[("cache-control", "max-age=60"), ("etag", "\"s\"")],
        "one copy",
    );
    let setup = || {
        cached(&backend, api(json!({})))
            .state("backend = \"redis\"")
            .state(&format!("url = {:?}", redis.url()))
    };
    let (one, two) = (setup().serve().await, setup().serve().await);
    let first = fetch(&one.url("/shared"), &[]).await;
    assert_eq!(outcome(&first), "MISS");
    let second = fetch(&two.url("/shared"), &[]).await;
    assert_eq!(
        (outcome(&second), second.text().as_str()),
        ("HIT", "one copy")
    );
    assert!(second.header("age").is_some());
    let conditional = fetch(&two.url("/shared"), &[("if-none-match", "\"s\"")]).await;
    assert_eq!(conditional.status, 304);
    assert_eq!(backend.hits(), 1);
}

/// The cache declares the routes it has rules for (contract 0.5.0's
/// `interest.only-routes`), so the gateway does not call it for the rest;
/// a `default` rule covers every route, so it then declares none. (The
/// other tests here run with the declaration: `api` only.)
#[tokio::test]
async fn the_cache_declares_its_routes_unless_a_default_rule_covers_all() {
    let backend = Backend::start().await;
    let backend = &backend;
    let routes = |cache: Value| async move {
        let gw = cached(backend, cache).gateway().await;
        let pipeline = gw.pipeline();
        let plugin = pipeline.plugins().iter().find(|p| p.name() == "75-cache");
        plugin.unwrap().routes().map(<[String]>::to_vec)
    };
    assert_eq!(routes(api(json!({}))).await, Some(vec!["api".to_string()]));
    let all = json!({"default": {}, "routes": {"api": {}}});
    assert_eq!(routes(all).await, None);
}
