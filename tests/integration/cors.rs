//! The default `cors` plugin through the real gateway: preflights answered
//! (or refused) by the gateway and never reaching the upstream, CORS
//! headers on every other answer, `Vary` appended, credentials never with
//! `*`; then the same from a real headless Chromium, whose `fetch()` is
//! what the headers are for.

use http::Method;
use serde_json::Value;

use crate::support::browser::Browser;
use crate::support::client::{Reply, call};
use crate::support::plugin_metrics::samples;
use crate::support::*;

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example.net";

/// `/api`, `/creds`, `/open` and `/off` are routes of those names (any
/// other path has none); `/denied` is route `api` and answered 401 by a
/// plugin after cors. Every request goes to `upstream`.
fn gateway(upstream: &str, cors: Value) -> Setup {
    let route = |path: &str, name: &str| {
        json!({"op": "when_path", "path": path,
               "then": [{"op": "set_context", "key": "route", "value": name}]})
    };
    Setup::new()
        .upstream("backend", &[upstream.to_string()])
        .scripted(
            "10-route",
            json!({"on_request": [
                {"op": "set_upstream", "name": "backend"},
                route("/api", "api"), route("/creds", "creds"), route("/open", "open"),
                route("/off", "off"), route("/denied", "api")]}),
        )
        .plugin("55-cors", "weir_plugin_cors", Some(cors))
        .scripted(
            "60-deny",
            json!({"on_request": [{"op": "when_path", "path": "/denied",
                "then": [{"op": "respond", "status": 401, "body": "who are you"}]}]}),
        )
}

/// Route `api` allows `origin` (and `*.example.org`) to PUT and DELETE
/// with two headers; `creds` allows `origin` with credentials and any
/// method and header; `open` allows anyone without credentials; `off`
/// lists no origin. No default rule.
fn config(origin: &str) -> Value {
    json!({"routes": {
        "api": {"origins": [origin, "https://*.example.org"], "methods": ["PUT", "DELETE"],
                "headers": ["content-type", "x-request-id"], "expose_headers": ["x-total"],
                "max_age": 600},
        "creds": {"origins": [origin], "allow_credentials": true,
                  "methods": ["*"], "headers": ["*"]},
        "open": {"origins": ["*"]},
        "off": {"origins": []}
    }})
}

async fn preflight(url: &str, origin: &str, method: &str, headers: Option<&str>) -> Reply {
    let mut ask = vec![
        ("origin", origin),
        ("access-control-request-method", method),
    ];
    ask.extend(headers.map(|h| ("access-control-request-headers", h)));
    call(url, Method::OPTIONS, &ask, "").await
}

/// The `access-control-*` headers of a reply.
fn cors_headers(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .keys()
        .map(|n| n.as_str().to_string())
        .filter(|n| n.starts_with("access-control-"))
        .collect()
}

/// Every `Vary` value, joined.
fn vary(reply: &Reply) -> String {
    let values: Vec<&str> = reply
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    values.join(", ")
}

/// Preflights the gateway answered with `outcome`, by its metric.
fn preflights(gw: &Running, outcome: &str) -> f64 {
    samples(gw, "weir_plugin_cors_preflights_total")
        .iter()
        .filter(|(labels, _)| labels.contains(&format!("outcome=\"{outcome}\"")))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn an_allowed_preflight_is_answered_by_the_gateway_with_every_header() {
    let backend = Backend::start().await;
    let gw = gateway(&backend.url(), config(APP)).serve().await;
    let asked = Some("content-type,x-request-id");
    let reply = preflight(&gw.url("/api"), APP, "PUT", asked).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    // RFC 9110 §8.6: no `Content-Length` on a 204.
    assert_eq!(reply.header("content-length"), None);
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some("PUT, DELETE")
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("content-type, x-request-id")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
    assert_eq!(reply.header("access-control-allow-credentials"), None);
    assert_eq!(
        vary(&reply),
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
    );
    // A wildcard subdomain too.
    let reply = preflight(&gw.url("/api"), "https://a.b.example.org", "DELETE", None).await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://a.b.example.org")
    );
    assert_eq!(backend.hits(), 0, "a preflight reached the upstream");
    assert_eq!(preflights(&gw, "allowed"), 2.0);
}

#[tokio::test]
async fn refused_preflights_get_no_cors_headers_and_never_reach_the_upstream() {
    let backend = Backend::start().await;
    let gw = gateway(&backend.url(), config(APP)).serve().await;
    let url = gw.url("/api");
    let cases = [
        (EVIL, "PUT", None, "origin_refused"),
        ("https://example.org", "PUT", None, "origin_refused"),
        (APP, "PATCH", None, "method_refused"),
        (APP, "PUT", Some("x-request-id,x-other"), "headers_refused"),
    ];
    for (origin, method, headers, outcome) in cases {
        let reply = preflight(&url, origin, method, headers).await;
        assert_eq!(reply.status, 204, "{outcome}");
        assert_eq!(cors_headers(&reply), Vec::<String>::new(), "{outcome}");
        assert!(vary(&reply).starts_with("Origin"), "{outcome}");
    }
    assert_eq!(
        backend.hits(),
        0,
        "a refused preflight reached the upstream"
    );
    assert_eq!(preflights(&gw, "origin_refused"), 2.0);
    assert_eq!(preflights(&gw, "method_refused"), 1.0);
    assert_eq!(preflights(&gw, "headers_refused"), 1.0);
    assert_eq!(preflights(&gw, "allowed"), 0.0);
}

#[tokio::test]
async fn options_that_is_not_a_preflight_and_routes_without_a_rule_go_on() {
    let backend = Backend::start().await;
    let gw = gateway(&backend.url(), config(APP)).serve().await;
    // No `Access-Control-Request-Method`: an OPTIONS request like any other,
    // and still a CORS request (it has an `Origin`).
    let reply = call(&gw.url("/api"), Method::OPTIONS, &[("origin", APP)], "").await;
    assert_eq!(reply.header("x-backend"), Some("yes"));
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    // A route whose rule lists no origin, and a request with no route: the
    // upstream answers the preflight, untouched.
    for path in ["/off", "/elsewhere"] {
        let reply = preflight(&gw.url(path), APP, "PUT", None).await;
        assert_eq!(reply.header("x-backend"), Some("yes"), "{path}");
        assert_eq!(cors_headers(&reply), Vec::<String>::new(), "{path}");
        assert_eq!(vary(&reply), "", "{path}");
    }
    assert_eq!(backend.hits(), 3);
}

#[tokio::test]
async fn answers_echo_the_origin_replace_upstream_cors_headers_and_append_vary() {
    let backend = Backend::start().await;
    let upstream_cors = [
        ("vary", "Accept-Encoding"),
        ("access-control-allow-origin", "*"),
        ("access-control-allow-credentials", "true"),
        ("x-total", "42"),
    ];
    backend.serve_http("/api", 200, &upstream_cors, "listed");
    let gw = gateway(&backend.url(), config(APP)).serve().await;

    let reply = call(&gw.url("/api"), Method::GET, &[("origin", APP)], "").await;
    assert_eq!(reply.text(), "listed");
    let origins: Vec<_> = reply
        .headers
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(origins, [APP], "the upstream's `*` was not replaced");
    assert_eq!(
        reply.header("access-control-expose-headers"),
        Some("x-total")
    );
    assert_eq!(reply.header("access-control-allow-credentials"), None);
    assert_eq!(vary(&reply), "Accept-Encoding, Origin");

    // Refused, or no `Origin`: none of the upstream's CORS headers, and
    // `Vary: Origin` still, since the answer depends on it.
    for origin in [Some(EVIL), None] {
        let headers: Vec<_> = origin.map(|o| ("origin", o)).into_iter().collect();
        let reply = call(&gw.url("/api"), Method::GET, &headers, "").await;
        assert_eq!(cors_headers(&reply), Vec::<String>::new(), "{origin:?}");
        assert_eq!(vary(&reply), "Accept-Encoding, Origin", "{origin:?}");
    }
}

#[tokio::test]
async fn credentials_are_never_answered_with_a_star() {
    let backend = Backend::start().await;
    let gw = gateway(&backend.url(), config(APP)).serve().await;
    let reply = call(&gw.url("/creds"), Method::GET, &[("origin", APP)], "").await;
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );
    let reply = preflight(&gw.url("/creds"), APP, "PATCH", Some("authorization")).await;
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert_eq!(reply.header("access-control-allow-methods"), Some("PATCH"));
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("authorization")
    );
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );

    // Anyone without credentials: `*` on every answer, no `Vary`.
    for headers in [vec![("origin", EVIL)], vec![]] {
        let reply = call(&gw.url("/open"), Method::GET, &headers, "").await;
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
        assert_eq!(reply.header("access-control-allow-credentials"), None);
        assert_eq!(vary(&reply), "");
    }

    // Anyone with credentials is refused at load, naming the field.
    let star = json!({"routes": {"creds": {"origins": ["*"], "allow_credentials": true}}});
    let err = match gateway(&backend.url(), star).try_gateway().await {
        Ok(_) => panic!("`*` with credentials loaded"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("55-cors"), "{err}");
    assert!(
        err.contains("routes.creds.origins: `*` cannot be combined with `allow_credentials`"),
        "{err}"
    );
}

#[tokio::test]
async fn replies_of_later_plugins_and_the_gateways_errors_carry_cors_headers() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let backend = Backend::start().await;
    let gw = gateway(&backend.url(), config(APP)).serve().await;
    // Auth placed after cors answers 401: the page can read it.
    let reply = call(&gw.url("/denied"), Method::GET, &[("origin", APP)], "").await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));

    let gw = gateway(&dead, config(APP)).serve().await;
    let reply = call(&gw.url("/api"), Method::GET, &[("origin", APP)], "").await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert_eq!(vary(&reply), "Origin");
}

#[tokio::test]
async fn config_errors_name_the_field() {
    let backend = Backend::start().await;
    let cases = [
        (
            json!({"default": {"origins": [APP, "https://x.example/"]}}),
            "default.origins[1]: `https://x.example/`",
        ),
        (
            json!({"routes": {"api": {"origins": [APP], "methods": ["GET POST"]}}}),
            "routes.api.methods[0]",
        ),
        (
            json!({"routes": {"api": {"origins": "everyone"}}}),
            "routes.api: `origins`: invalid type",
        ),
        (
            json!({"default": {"origins": [APP], "max_age": "1h"}}),
            "default: `max_age`",
        ),
        (
            json!({"default": {"origin": [APP]}}),
            "default: unknown field `origin`",
        ),
    ];
    for (config, expected) in cases {
        let err = match gateway(&backend.url(), config).try_gateway().await {
            Ok(_) => panic!("loaded, expecting {expected}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(expected), "{err}");
    }
}

#[tokio::test]
async fn the_shipped_sample_config_changes_nothing() {
    let backend = Backend::start().await;
    let sample: Value =
        serde_json::from_str(include_str!("../../plugins/cors/sample.json")).unwrap();
    let gw = gateway(&backend.url(), sample).serve().await;
    let reply = preflight(&gw.url("/api"), APP, "PUT", None).await;
    assert_eq!(reply.header("x-backend"), Some("yes"));
    let reply = call(&gw.url("/api"), Method::GET, &[("origin", APP)], "").await;
    assert_eq!(cors_headers(&reply), Vec::<String>::new());
    assert_eq!(vary(&reply), "");
    assert_eq!(backend.hits(), 2);
}

// ---- a real browser ----

/// How long a page may take to load.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A page on a loopback origin of its own (`http://127.0.0.1:PORT`, not the
/// gateway's port): `/` is HTML and sets a cookie, which the browser sends
/// to the gateway too (cookies ignore ports) when credentials are included.
async fn page_server() -> Backend {
    let page = Backend::start().await;
    let headers = [
        ("content-type", "text/html; charset=utf-8"),
        ("set-cookie", "session=s3cret; Path=/"),
    ];
    page.serve_http(
        "/",
        200,
        &headers,
        "<!doctype html><title>cors page</title>",
    );
    page
}

async fn open(browser: &mut Browser, page: &Backend) {
    browser.navigate(&format!("{}/", page.url())).await;
    let loaded = "document.readyState === 'complete' && document.title === 'cors page'";
    browser.wait_for(loaded, WAIT, "the page").await;
}

/// `fetch(url, init)` run by the page: what its script can read of the
/// answer, or the error it rejected with.
async fn fetch(browser: &mut Browser, url: &str, init: &str) -> Value {
    let script = format!(
        "fetch({url:?}, {init}).then(async r => ({{status: r.status, \
         total: r.headers.get('x-total'), hidden: r.headers.get('x-hidden'), \
         body: await r.text()}}), e => ({{error: e.name}}))"
    );
    browser.eval(&script).await
}

#[tokio::test]
async fn a_real_browser_fetches_across_origins_only_as_configured() {
    let (page, other_page) = (page_server().await, page_server().await);
    let backend = Backend::start().await;
    backend.serve_http("/api", 200, &[("x-total", "42"), ("x-hidden", "1")], "api");
    let gw = gateway(&backend.url(), config(&page.url())).serve().await;
    let mut browser = Browser::launch(800, 600).await;
    let rejected = json!({"error": "TypeError"});

    // (a) An allowed origin; a PUT with a custom header needs a preflight,
    // which the gateway answers: the upstream sees only the PUT. The
    // script reads the exposed header, not the other.
    open(&mut browser, &page).await;
    let put = "{method: 'PUT', headers: {'content-type': 'application/json', \
               'x-request-id': 'r1'}, body: '{}'}";
    let answer = fetch(&mut browser, &gw.url("/api"), put).await;
    let read = json!({"status": 200, "total": "42", "hidden": null, "body": "api"});
    assert_eq!(answer, read);
    assert_eq!(
        preflights(&gw, "allowed"),
        1.0,
        "no preflight reached the gateway"
    );
    assert_eq!(backend.hits(), 1, "the preflight reached the upstream");
    let seen = backend.last_at("/api").unwrap();
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.headers["x-request-id"], "r1");

    // (c) With credentials, on the route that allows them: the cookie goes
    // with the request and the script reads the answer.
    let with_credentials =
        "{method: 'PUT', credentials: 'include', headers: {'x-request-id': 'c1'}}";
    let answer = fetch(&mut browser, &gw.url("/creds"), with_credentials).await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(preflights(&gw, "allowed"), 2.0);
    let seen = backend.last_at("/creds").unwrap();
    assert_eq!(seen.headers["cookie"], "session=s3cret");

    // (d) `*` without credentials: readable without them, refused by the
    // browser with them, though the gateway answered both.
    let answer = fetch(&mut browser, &gw.url("/open"), "{}").await;
    assert_eq!(answer["status"], 200, "{answer}");
    let answer = fetch(&mut browser, &gw.url("/open"), "{credentials: 'include'}").await;
    assert_eq!(
        answer, rejected,
        "a credentialed answer with `*` was shared"
    );
    assert_eq!(backend.hits(), 4);

    // (b) Another origin: a simple GET reaches the upstream but the script
    // cannot read the answer; a PUT is stopped at the refused preflight.
    open(&mut browser, &other_page).await;
    let answer = fetch(&mut browser, &gw.url("/api"), "{}").await;
    assert_eq!(answer, rejected, "a refused origin read the answer");
    assert_eq!(backend.hits(), 5);
    let answer = fetch(&mut browser, &gw.url("/api"), put).await;
    assert_eq!(answer, rejected);
    assert_eq!(preflights(&gw, "origin_refused"), 1.0);
    assert_eq!(backend.hits(), 5, "a refused preflight let the PUT through");
}
