//! The `cache` plugin against the standards, one test per behaviour, each
//! naming its section: RFC 9111 (HTTP caching), RFC 5861 (stale
//! extensions), RFC 9211 (`Cache-Status`), RFC 9213 (targeted cache
//! control) and RFC 9110 §14 (ranges), plus request collapsing. Real
//! gateway, router and backend; the backend's hit counter proves what the
//! cache served. Staleness comes from `Age` and `Date`, not from waiting.

use std::time::{Duration, Instant, SystemTime};

use http::Method;
use serde_json::Value;

use crate::support::client::{Reply, http1};
use crate::support::plugin_metrics;
use crate::support::redis::RedisServer;
use crate::support::*;

/// Router (`api` for everything) → cache with `rule` for `api`.
fn cached(backend: &Backend, rule: Value) -> Setup {
    Setup::new()
        .upstream("backend", &[backend.url()])
        .router(json!({"routes": [
            {"name": "api", "match": {"path_prefix": "/"}, "upstream": "backend"}
        ]}))
        .plugin(
            "75-cache",
            "weir_plugin_cache",
            Some(json!({"routes": {"api": rule}})),
        )
}

async fn send_with(method: Method, url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(&http1(), builder.body(weir::http::body::empty()).unwrap()).await
}

async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    send_with(Method::GET, url, headers).await
}

fn outcome(reply: &Reply) -> &str {
    reply.header("x-cache").unwrap_or("(none)")
}

/// An HTTP-date `offset_s` seconds from now (negative: in the past).
fn date(offset_s: i64) -> String {
    let now = SystemTime::now();
    let at = if offset_s < 0 {
        now - Duration::from_secs(offset_s.unsigned_abs())
    } else {
        now + Duration::from_secs(offset_s.unsigned_abs())
    };
    weir::http::timefmt::http_date(at)
}

/// Whether a second GET of `path` is answered from the cache.
async fn reused(gw: &Running, backend: &Backend, path: &str) -> bool {
    let before = backend.hits();
    let _ = get(&gw.url(path), &[]).await;
    let second = get(&gw.url(path), &[]).await;
    let hits = backend.hits() - before;
    assert!(hits == 1 || hits == 2, "{path}: {hits} upstream hits");
    if hits == 1 {
        assert_eq!(outcome(&second), "HIT", "{path}");
    }
    hits == 1
}

#[tokio::test]
async fn heuristic_freshness_applies_only_to_heuristically_cacheable_statuses() {
    // RFC 9111 §4.2.2: 10% of the time since Last-Modified, for statuses
    // RFC 9110 §15.1 calls heuristically cacheable (or `public`); nothing
    // without Last-Modified or explicit freshness.
    let backend = Backend::start().await;
    let (modified, now) = (date(-10_000), date(0));
    // (5xx would be retried by the upstream policy, muddling the count;
    // the plugin's unit tests cover 502-504.)
    for (path, status) in [
        ("/h200", 200),
        ("/h404", 404),
        ("/h403", 403),
        ("/h202", 202),
    ] {
        backend.serve_http(
            path,
            status,
            &[("last-modified", &modified), ("date", &now)],
            "h",
        );
    }
    backend.serve_http(
        "/h599-public",
        599,
        &[("last-modified", &modified), ("cache-control", "public")],
        "h",
    );
    backend.serve_http("/none", 200, &[], "no freshness, no validator");
    let gw = cached(&backend, json!({})).serve().await;
    assert!(reused(&gw, &backend, "/h200").await);
    assert!(reused(&gw, &backend, "/h404").await);
    assert!(reused(&gw, &backend, "/h599-public").await);
    for path in ["/h403", "/h202", "/none"] {
        assert!(!reused(&gw, &backend, path).await, "{path}");
    }
    let first = get(&gw.url("/h200"), &[]).await;
    assert_eq!(outcome(&first), "HIT");

    // A fixed heuristic is the route's explicit choice.
    let fixed = cached(&backend, json!({"default_ttl_s": 30})).serve().await;
    assert!(reused(&fixed, &backend, "/none").await);
    assert!(!reused(&fixed, &backend, "/h202").await);
}

#[tokio::test]
async fn any_final_status_with_explicit_freshness_is_stored_and_not_reused_stale() {
    // RFC 9111 §3 (explicit freshness makes any final status storable) and
    // §4.2 (a stale one is not reused).
    let backend = Backend::start().await;
    for status in [500, 302, 404, 599] {
        backend.serve_http(
            &format!("/fresh{status}"),
            status,
            &[
                ("cache-control", "max-age=3600"),
                ("location", "/elsewhere"),
            ],
            "x",
        );
        backend.serve_http(
            &format!("/stale{status}"),
            status,
            &[("cache-control", "max-age=3600"), ("age", "7200")],
            "x",
        );
    }
    let gw = cached(&backend, json!({})).serve().await;
    for status in [500, 302, 404, 599] {
        assert!(
            reused(&gw, &backend, &format!("/fresh{status}")).await,
            "{status}"
        );
        assert!(
            !reused(&gw, &backend, &format!("/stale{status}")).await,
            "{status}"
        );
    }
}

#[tokio::test]
async fn age_counts_by_its_first_member_and_an_invalid_one_is_ignored() {
    // RFC 9111 §5.1: a list-based Age (one line or several) counts by its
    // first member; a value that is not a non-negative integer is ignored
    // (the age then comes from Date, §4.2.3); §1.2.2: too large is 2^31.
    let backend = Backend::start().await;
    let cases: &[(&str, &[&str], bool)] = &[
        ("/zero", &["0"], true),
        ("/young", &["10"], true),
        ("/old", &["7200"], false),
        ("/nonnumeric", &["abc"], true),
        ("/negative", &["-7200"], true),
        ("/float", &["7200.0"], true),
        ("/old-then-0", &["7200, 0"], false),
        ("/0-then-old", &["0, 7200"], true),
        ("/dup-0", &["0, 0"], true),
        ("/two-lines-0", &["0", "0"], true),
        ("/two-lines-old-first", &["7200", "0"], false),
        ("/two-lines-0-first", &["0", "7200"], true),
        ("/parameter", &["7200;foo=bar"], false),
        ("/huge", &["2147483648"], false),
        ("/larger", &["99999999999999999999"], false),
    ];
    for (path, ages, _) in cases {
        let mut headers = vec![("cache-control", "max-age=3600")];
        headers.extend(ages.iter().map(|a| ("age", *a)));
        backend.serve_http(path, 200, &headers, "aged");
    }
    let gw = cached(&backend, json!({})).serve().await;
    for (path, ages, expected) in cases {
        assert_eq!(
            reused(&gw, &backend, path).await,
            *expected,
            "Age: {ages:?}"
        );
    }
}

#[tokio::test]
async fn an_expires_off_the_http_date_grammar_is_in_the_past() {
    // RFC 9111 §5.3 (an invalid Expires is a time in the past) with the
    // HTTP-date grammar of RFC 9110 §5.6.7; names are case-insensitive.
    let backend = Backend::start().await;
    let cases: &[(&str, &[&str], bool)] = &[
        ("/imf", &["Thu, 18 Aug 2050 02:01:18 GMT"], true),
        ("/rfc850", &["Thursday, 18-Aug-50 02:01:18 GMT"], true),
        ("/asctime", &["Thu Aug  8 02:01:18 2050"], true),
        ("/upper", &["THU, 18 AUG 2050 02:01:18 GMT"], true),
        ("/utc", &["Thu, 18 Aug 2050 02:01:18 UTC"], false),
        ("/two-digit-year", &["Thu, 18 Aug 50 02:01:18 GMT"], false),
        ("/no-comma", &["Thu 18 Aug 2050 02:01:18 GMT"], false),
        ("/spaces", &["Thu, 18  Aug  2050 02:01:18 GMT"], false),
        ("/dashes", &["Thu, 18-Aug-2050 02:01:18 GMT"], false),
        ("/periods", &["Thu, 18 Aug 2050 02.01.18 GMT"], false),
        ("/one-digit-hour", &["Thu, 18 Aug 2050 2:01:18 GMT"], false),
        (
            "/two-lines",
            &[
                "Thu, 18 Aug 2050 02:01:18 GMT",
                "Thu, 18 Aug 2050 02:01:19 GMT",
            ],
            false,
        ),
        ("/zero", &["0"], false),
    ];
    for (path, expires, _) in cases {
        let headers: Vec<_> = expires.iter().map(|e| ("expires", *e)).collect();
        backend.serve_http(path, 200, &headers, "expiring");
    }
    let gw = cached(&backend, json!({})).serve().await;
    for (path, expires, expected) in cases {
        assert_eq!(
            reused(&gw, &backend, path).await,
            *expected,
            "Expires: {expires:?}"
        );
    }
}

/// A route that may serve stale on upstream errors for ten minutes, and
/// resources made stale at once (`Age` past `max-age`), each with a
/// validator so they are kept.
async fn stale_setup(backend: &Backend) -> Running {
    let strict = [
        ("/must-revalidate", "max-age=1, must-revalidate"),
        ("/proxy-revalidate", "max-age=1, proxy-revalidate"),
        ("/no-cache", "max-age=1, no-cache"),
        ("/s-maxage", "s-maxage=1"),
        ("/allowed", "max-age=1"),
    ];
    for (path, cc) in strict {
        backend.serve_http(
            path,
            200,
            &[("cache-control", cc), ("age", "5"), ("etag", "\"v1\"")],
            "stale copy",
        );
    }
    let gw = cached(backend, json!({"stale_if_error_s": 600}))
        .serve()
        .await;
    for (path, _) in strict {
        assert_eq!(outcome(&get(&gw.url(path), &[]).await), "MISS", "{path}");
    }
    gw
}

const FORBIDDING: [&str; 4] = [
    "/must-revalidate",
    "/proxy-revalidate",
    "/no-cache",
    "/s-maxage",
];

#[tokio::test]
async fn stale_is_never_served_for_an_erroring_origin_when_a_directive_forbids_it() {
    // RFC 9111 §4.2.4, with §5.2.2.2, §5.2.2.4, §5.2.2.8 and §5.2.2.10.
    let backend = Backend::start().await;
    let gw = stale_setup(&backend).await;
    backend.set_failing(503);
    for path in FORBIDDING {
        let reply = get(&gw.url(path), &[]).await;
        assert_eq!(reply.status.as_u16(), 503, "{path}");
    }
    // Where nothing forbids it, the configured window serves the stale
    // copy (RFC 5861 §4 semantics, granted by configuration).
    let allowed = get(&gw.url("/allowed"), &[]).await;
    assert_eq!(
        (
            allowed.status.as_u16(),
            allowed.text().as_str(),
            outcome(&allowed)
        ),
        (200, "stale copy", "STALE")
    );
    let status = allowed.header("cache-status").unwrap();
    for part in [
        "; hit",
        "; fwd=stale",
        "; fwd-status=503",
        "; detail=stale-if-error",
    ] {
        assert!(status.contains(part), "{status}");
    }
}

#[tokio::test]
async fn stale_is_never_served_for_an_unreachable_origin_when_a_directive_forbids_it() {
    // RFC 9111 §4.2.4: the origin cannot be reached at all.
    let backend = Backend::start().await;
    let gw = stale_setup(&backend).await;
    backend.kill();
    for path in FORBIDDING {
        // 502 (refused) at first, then 503 once the target is marked down.
        let reply = get(&gw.url(path), &[]).await;
        assert!(
            matches!(reply.status.as_u16(), 502 | 503),
            "{path}: {} {}",
            reply.status,
            reply.text()
        );
    }
    let allowed = get(&gw.url("/allowed"), &[]).await;
    assert_eq!(
        (allowed.status.as_u16(), allowed.text().as_str()),
        (200, "stale copy")
    );
}

#[tokio::test]
async fn stale_if_error_from_the_response_holds_only_within_its_window() {
    // RFC 5861 §4.
    let backend = Backend::start().await;
    backend.serve_http(
        "/within",
        200,
        &[
            ("cache-control", "max-age=1, stale-if-error=600"),
            ("age", "5"),
        ],
        "kept",
    );
    backend.serve_http(
        "/past",
        200,
        &[
            ("cache-control", "max-age=1, stale-if-error=2"),
            ("age", "5"),
            ("etag", "\"p\""),
        ],
        "expired",
    );
    let gw = cached(&backend, json!({})).serve().await;
    for path in ["/within", "/past"] {
        assert_eq!(outcome(&get(&gw.url(path), &[]).await), "MISS");
    }
    backend.set_failing(500);
    let within = get(&gw.url("/within"), &[]).await;
    assert_eq!(
        (within.status.as_u16(), within.text().as_str()),
        (200, "kept")
    );
    assert_eq!(get(&gw.url("/past"), &[]).await.status.as_u16(), 500);
}

#[tokio::test]
async fn a_successful_unsafe_request_invalidates_its_uri_location_and_content_location() {
    // RFC 9111 §4.4: the target URI, and same-origin Location and
    // Content-Location; unknown methods are unsafe; errors invalidate
    // nothing; other origins are left alone.
    let backend = Backend::start().await;
    let gw = cached(&backend, json!({})).serve().await;
    let host = gw.url("").trim_start_matches("http://").to_string();
    let fresh = [("cache-control", "max-age=3600")];
    for path in ["/b", "/c", "/d", "/e"] {
        backend.serve_http(path, 200, &fresh, path);
    }
    let content_location = format!("http://{host}/c");
    backend.serve_http(
        "/a",
        200,
        &[
            ("cache-control", "max-age=3600"),
            ("location", "/b"),
            ("content-location", &content_location),
        ],
        "a",
    );
    backend.serve_http(
        "/x",
        200,
        &[
            ("cache-control", "max-age=3600"),
            ("location", "http://other.example/d"),
        ],
        "x",
    );
    let warm = |paths: &'static [&'static str]| {
        let gw = &gw;
        async move {
            for path in paths {
                let _ = get(&gw.url(path), &[]).await;
                assert_eq!(outcome(&get(&gw.url(path), &[]).await), "HIT", "{path}");
            }
        }
    };
    warm(&["/a", "/b", "/c", "/d", "/e"]).await;

    // A failed POST invalidates nothing.
    backend.set_failing(500);
    let failed = send_with(Method::POST, &gw.url("/a"), &[]).await;
    assert_eq!(failed.status.as_u16(), 500);
    backend.set_failing(0);
    for path in ["/a", "/b", "/c"] {
        assert_eq!(outcome(&get(&gw.url(path), &[]).await), "HIT", "{path}");
    }

    let posted = send_with(Method::POST, &gw.url("/a"), &[]).await;
    assert_eq!(posted.status.as_u16(), 200);
    for path in ["/a", "/b", "/c"] {
        assert_eq!(outcome(&get(&gw.url(path), &[]).await), "MISS", "{path}");
    }
    // Another origin's URI in Location stays.
    let _ = send_with(Method::PUT, &gw.url("/x"), &[]).await;
    assert_eq!(outcome(&get(&gw.url("/d"), &[]).await), "HIT");
    // An unknown method is unsafe.
    let m_search = Method::from_bytes(b"M-SEARCH").unwrap();
    let _ = send_with(m_search, &gw.url("/e"), &[]).await;
    assert_eq!(outcome(&get(&gw.url("/e"), &[]).await), "MISS");
}

#[tokio::test]
async fn a_304_replaces_the_stored_headers_but_not_content_length() {
    // RFC 9111 §4.3.4 and §3.2.
    let backend = Backend::start().await;
    backend.serve_http(
        "/u",
        200,
        &[
            ("cache-control", "max-age=0"),
            ("etag", "\"v1\""),
            ("x-test", "one"),
            ("content-type", "text/plain"),
        ],
        "stored body",
    );
    let gw = cached(&backend, json!({})).serve().await;
    assert_eq!(outcome(&get(&gw.url("/u"), &[]).await), "MISS");
    backend.serve_http(
        "/u",
        200,
        &[
            ("cache-control", "max-age=3600"),
            ("etag", "\"v1\""),
            ("x-test", "two"),
            ("content-type", "text/html"),
        ],
        "a longer body the 304 does not carry",
    );
    let revalidated = get(&gw.url("/u"), &[]).await;
    assert_eq!(outcome(&revalidated), "REVALIDATED");
    assert_eq!(revalidated.text(), "stored body");
    assert_eq!(revalidated.header("x-test"), Some("two"));
    assert_eq!(revalidated.header("content-type"), Some("text/html"));
    assert_eq!(revalidated.header("content-length"), Some("11"));
    let hit = get(&gw.url("/u"), &[]).await;
    assert_eq!(
        (
            outcome(&hit),
            hit.header("x-test"),
            hit.header("cache-control")
        ),
        ("HIT", Some("two"), Some("max-age=3600"))
    );
}

#[tokio::test]
async fn must_understand_stores_understood_statuses_despite_no_store() {
    // RFC 9111 §5.2.2.3.
    let backend = Backend::start().await;
    let cc = [("cache-control", "max-age=3600, no-store, must-understand")];
    backend.serve_http("/known", 200, &cc, "k");
    backend.serve_http("/unknown", 599, &cc, "u");
    let gw = cached(&backend, json!({})).serve().await;
    assert!(reused(&gw, &backend, "/known").await);
    assert!(!reused(&gw, &backend, "/unknown").await);
}

#[tokio::test]
async fn a_range_is_served_from_a_stored_complete_response() {
    // RFC 9110 §14.1.1, §14.2, §15.3.7 (206), §15.5.17 (416), §13.1.5
    // (If-Range); RFC 9111 §3.4's use of a stored complete response.
    let backend = Backend::start().await;
    backend.serve_http(
        "/r",
        200,
        &[
            ("cache-control", "max-age=3600"),
            ("etag", "\"r1\""),
            ("a", "1"),
        ],
        "01234567890",
    );
    let gw = cached(&backend, json!({})).serve().await;
    let _ = get(&gw.url("/r"), &[]).await;
    let part = get(&gw.url("/r"), &[("range", "bytes=0-1")]).await;
    assert_eq!((part.status.as_u16(), part.text().as_str()), (206, "01"));
    assert_eq!(part.header("content-range"), Some("bytes 0-1/11"));
    assert_eq!(part.header("a"), Some("1"));
    let suffix = get(&gw.url("/r"), &[("range", "bytes=-3")]).await;
    assert_eq!(
        (suffix.status.as_u16(), suffix.text().as_str()),
        (206, "890")
    );
    let open = get(&gw.url("/r"), &[("range", "bytes=9-")]).await;
    assert_eq!(open.text(), "90");
    let beyond = get(&gw.url("/r"), &[("range", "bytes=20-")]).await;
    assert_eq!(beyond.status.as_u16(), 416);
    assert_eq!(beyond.header("content-range"), Some("bytes */11"));
    let stale_validator = get(
        &gw.url("/r"),
        &[("range", "bytes=0-1"), ("if-range", "\"old\"")],
    )
    .await;
    assert_eq!(
        (
            stale_validator.status.as_u16(),
            stale_validator.text().len()
        ),
        (200, 11)
    );
    assert_eq!(backend.hits(), 1);
    // A miss with a Range goes upstream as is and stores nothing.
    backend.serve_http("/cold", 200, &[("cache-control", "max-age=3600")], "abcdef");
    let _ = get(&gw.url("/cold"), &[("range", "bytes=0-1")]).await;
    assert_eq!(
        backend.last_at("/cold").unwrap().headers["range"],
        "bytes=0-1"
    );
    assert_eq!(outcome(&get(&gw.url("/cold"), &[]).await), "MISS");
}

#[tokio::test]
async fn set_cookie_is_refused_by_default_and_per_route_stripped_or_stored() {
    // RFC 9111 §3 allows storing it; the default refuses (a cookie is
    // meant for one client), `strip` keeps the response without it, and
    // `store` follows the RFC.
    let backend = Backend::start().await;
    backend.serve_http(
        "/c",
        200,
        &[("cache-control", "max-age=3600"), ("set-cookie", "s=1")],
        "cookie",
    );
    let refuse = cached(&backend, json!({})).serve().await;
    assert!(!reused(&refuse, &backend, "/c").await);
    let strip = cached(&backend, json!({"set_cookie": "strip"}))
        .serve()
        .await;
    let miss = get(&strip.url("/c"), &[]).await;
    assert_eq!(
        (outcome(&miss), miss.header("set-cookie")),
        ("MISS", Some("s=1"))
    );
    let hit = get(&strip.url("/c"), &[]).await;
    assert_eq!((outcome(&hit), hit.header("set-cookie")), ("HIT", None));
    let store = cached(&backend, json!({"set_cookie": "store"}))
        .serve()
        .await;
    let _ = get(&store.url("/c"), &[]).await;
    let hit = get(&store.url("/c"), &[]).await;
    assert_eq!(
        (outcome(&hit), hit.header("set-cookie")),
        ("HIT", Some("s=1"))
    );
}

#[tokio::test]
async fn cache_status_says_what_happened_and_cdn_cache_control_wins() {
    // RFC 9211 §2 (Cache-Status parameters), RFC 9213 §2.1 (a valid
    // targeted field replaces Cache-Control; an invalid one is ignored).
    let backend = Backend::start().await;
    backend.serve_http(
        "/cdn",
        200,
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=600"),
        ],
        "cdn",
    );
    backend.serve_http(
        "/bad-cdn",
        200,
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age= 600"),
        ],
        "bad",
    );
    let gw = cached(&backend, json!({})).serve().await;
    let miss = get(&gw.url("/cdn"), &[]).await;
    assert_eq!(
        miss.header("cache-status"),
        Some("weir; fwd=uri-miss; fwd-status=200; stored")
    );
    let hit = get(&gw.url("/cdn"), &[]).await;
    let status = hit.header("cache-status").unwrap();
    // The CDN field's 600 s, not Cache-Control's no-store, less the
    // whole seconds the entry has aged.
    let ttl: u64 = status
        .strip_prefix("weir; hit; ttl=")
        .and_then(|ttl| ttl.parse().ok())
        .unwrap_or_else(|| panic!("{status}"));
    assert!((590..=600).contains(&ttl), "{status}");
    assert!(!reused(&gw, &backend, "/bad-cdn").await);
    let post = send_with(Method::POST, &gw.url("/cdn"), &[]).await;
    assert_eq!(post.header("cache-status"), Some("weir; fwd=method"));
}

#[tokio::test]
async fn a_hundred_concurrent_misses_for_one_key_send_one_request_upstream() {
    // Request collapsing (nginx `proxy_cache_lock`, Varnish's waiting
    // list): one request fetches, the others wait for it and share its
    // stored answer.
    let backend = Backend::start().await;
    backend.serve_http(
        "/hot",
        200,
        &[("cache-control", "max-age=3600")],
        "hot body",
    );
    backend.set_delay(300);
    let gw = cached(&backend, json!({})).serve().await;
    let url = gw.url("/hot");
    let replies = futures::future::join_all((0..100).map(|_| get(&url, &[]))).await;
    for reply in &replies {
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, "hot body")
        );
    }
    assert_eq!(backend.hits(), 1);
    let collapsed = replies
        .iter()
        .filter(|r| {
            r.header("cache-status")
                .is_some_and(|s| s.contains("collapsed"))
        })
        .count();
    assert!(collapsed > 0, "no reply says it was collapsed");
}

#[tokio::test]
async fn gateways_sharing_redis_collapse_misses_into_one_fetch() {
    // The lock is a `kv.set-if-absent` in the shared store, so collapsing
    // holds across the fleet.
    let redis = RedisServer::start();
    let backend = Backend::start().await;
    backend.serve_http(
        "/fleet",
        200,
        &[("cache-control", "max-age=3600")],
        "one fetch",
    );
    backend.set_delay(300);
    let setup = cached(&backend, json!({}))
        .state("backend = \"redis\"")
        .state(&format!("url = {:?}", redis.url()));
    let (one, two) = (setup.serve().await, setup.serve().await);
    let urls = [one.url("/fleet"), two.url("/fleet")];
    let replies = futures::future::join_all((0..40).map(|i| get(&urls[i % 2], &[]))).await;
    assert!(replies.iter().all(|r| r.text() == "one fetch"));
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_revalidates_once_in_the_background() {
    // RFC 5861 §3.
    let backend = Backend::start().await;
    backend.serve_http(
        "/swr",
        200,
        &[
            ("cache-control", "max-age=1, stale-while-revalidate=600"),
            ("age", "5"),
            ("etag", "\"s1\""),
        ],
        "stale but fine",
    );
    let gw = cached(&backend, json!({})).serve().await;
    assert_eq!(outcome(&get(&gw.url("/swr"), &[]).await), "MISS");
    // The revalidation takes a while; the clients must not wait for it.
    backend.set_delay(1_000);
    let started = Instant::now();
    let url = gw.url("/swr");
    let replies = futures::future::join_all((0..20).map(|_| get(&url, &[]))).await;
    let took = started.elapsed();
    for reply in &replies {
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str(), outcome(reply)),
            (200, "stale but fine", "STALE")
        );
        assert!(
            reply
                .header("cache-status")
                .unwrap()
                .contains("detail=stale-while-revalidate")
        );
    }
    assert!(
        took < Duration::from_millis(900),
        "stale answers took {took:?}"
    );
    // The background revalidation finishes (the plugin counts it), and it
    // was the only request upstream: any other would have reached the
    // backend before the first one's delay ran out.
    let deadline = Instant::now() + Duration::from_secs(10);
    let revalidated = |gw: &Running| {
        plugin_metrics::samples(gw, "weir_plugin_cache_requests_total")
            .iter()
            .any(|(labels, v)| labels.contains("REVALIDATED") && *v >= 1.0)
    };
    while !revalidated(&gw) {
        assert!(Instant::now() < deadline, "no background revalidation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(backend.hits(), 2);
    let asked = backend.last_at("/swr").unwrap();
    assert_eq!(asked.headers["if-none-match"], "\"s1\"");
}
