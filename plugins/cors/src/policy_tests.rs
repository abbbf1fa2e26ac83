//! Unit tests of `policy.rs`: each names the Fetch standard section whose
//! requirement it checks.

use super::*;

const APP: &str = "https://app.example.com";

fn rule(json: serde_json::Value) -> Rule {
    let config = crate::config::rule("test", json).unwrap();
    Rule::compile("test", config)
        .unwrap()
        .expect("origins listed")
}

fn compile_error(json: serde_json::Value) -> String {
    let config = crate::config::rule("default", json).unwrap();
    Rule::compile("default", config).unwrap_err()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn listed() -> Rule {
    rule(serde_json::json!({
        "origins": [APP, "https://*.example.org"],
        "methods": ["PUT", "delete"],
        "headers": ["Content-Type", "X-Request-Id"],
        "expose_headers": ["X-Total"],
        "max_age": 600
    }))
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn no_origins_means_the_rule_is_off() {
    let config = crate::config::rule("default", serde_json::json!({"methods": ["PUT"]})).unwrap();
    assert!(Rule::compile("default", config).unwrap().is_none());
}

/// §3.3.3: an allowed preflight gets the origin, methods, headers and
/// max-age; §3.3.3 requires an ok status (the plugin answers 204).
#[test]
fn an_allowed_preflight_gets_every_header_it_needs() {
    let answer = listed().preflight(APP, "PUT", "content-type,x-request-id");
    assert_eq!(answer.outcome, Outcome::Allowed);
    let h = &answer.headers;
    assert_eq!(header(h, "access-control-allow-origin"), Some(APP));
    assert_eq!(
        header(h, "access-control-allow-methods"),
        Some("PUT, DELETE")
    );
    assert_eq!(
        header(h, "access-control-allow-headers"),
        Some("content-type, x-request-id")
    );
    assert_eq!(header(h, "access-control-max-age"), Some("600"));
    assert_eq!(header(h, "access-control-allow-credentials"), None);
    assert_eq!(header(h, "vary"), Some(PREFLIGHT_VARY));
}

/// §4.10 CORS check step 2: no `Access-Control-Allow-Origin` fails the
/// preflight, so a refusal carries none of the CORS headers.
#[test]
fn refused_preflights_carry_no_cors_header_and_say_why() {
    let rule = listed();
    let cases = [
        (
            "https://evil.example.net",
            "PUT",
            "",
            Outcome::OriginRefused,
        ),
        ("https://example.org", "PUT", "", Outcome::OriginRefused),
        (APP, "PATCH", "", Outcome::MethodRefused),
        (APP, "put", "", Outcome::MethodRefused),
        (APP, "PUT", "x-other", Outcome::HeadersRefused),
        (
            APP,
            "PUT",
            "content-type, bad header",
            Outcome::HeadersRefused,
        ),
    ];
    for (origin, method, headers, outcome) in cases {
        let answer = rule.preflight(origin, method, headers);
        assert_eq!(answer.outcome, outcome, "{origin} {method} {headers}");
        assert_eq!(answer.headers, pairs(&[("vary", PREFLIGHT_VARY)]));
    }
}

/// §4.8 step 7.5: a CORS-safelisted method passes whatever
/// `Access-Control-Allow-Methods` says, and a wildcard subdomain matches.
#[test]
fn safelisted_methods_need_no_listing() {
    let answer = listed().preflight("https://a.b.example.org", "GET", "X-Request-Id");
    assert_eq!(answer.outcome, Outcome::Allowed);
}

/// §3.3.4 and §3.3.5: `*` in `Access-Control-Allow-Methods` or `-Headers`
/// is literal with credentials, and §4.8 step 7.6: it never covers
/// `Authorization`; mirroring what was asked works in every case.
#[test]
fn star_methods_and_headers_mirror_the_request_even_with_credentials() {
    let rule = rule(serde_json::json!({
        "origins": [APP], "methods": ["*"], "headers": ["*"], "allow_credentials": true
    }));
    let answer = rule.preflight(APP, "PATCH", "authorization,x-anything");
    assert_eq!(answer.outcome, Outcome::Allowed);
    let h = &answer.headers;
    assert_eq!(header(h, "access-control-allow-methods"), Some("PATCH"));
    assert_eq!(
        header(h, "access-control-allow-headers"),
        Some("authorization, x-anything")
    );
    assert_eq!(header(h, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(h, "access-control-allow-origin"), Some(APP));
}

/// §3.3.5: with credentials `Access-Control-Allow-Origin` cannot be `*`:
/// a config asking for both is refused, naming the field.
#[test]
fn any_origin_with_credentials_is_a_config_error() {
    let why = compile_error(serde_json::json!({"origins": ["*"], "allow_credentials": true}));
    assert!(
        why.starts_with("default.origins: `*` cannot be combined"),
        "{why}"
    );
    let why = compile_error(serde_json::json!({"origins": ["*", APP]}));
    assert!(why.contains("list it alone"), "{why}");
    let why = compile_error(serde_json::json!({"origins": [APP, "https://x.example/"]}));
    assert!(why.starts_with("default.origins[1]: "), "{why}");
    let why = compile_error(serde_json::json!({"origins": [APP], "methods": ["GET POST"]}));
    assert!(why.starts_with("default.methods[0]: "), "{why}");
    let why = compile_error(serde_json::json!({"origins": [APP], "headers": ["*", "x-a"]}));
    assert!(why.starts_with("default.headers: "), "{why}");
}

/// "CORS protocol and HTTP caches": `*` for all is sent to every request,
/// CORS or not, and without `Vary`.
#[test]
fn any_origin_without_credentials_is_a_static_star() {
    let rule = rule(serde_json::json!({"origins": ["*"], "expose_headers": ["*"]}));
    for origin in [Some(APP), Some("null"), None] {
        let edits = rule.response(origin, &[]);
        assert_eq!(
            edits.set,
            pairs(&[
                ("access-control-allow-origin", "*"),
                ("access-control-expose-headers", "*")
            ])
        );
        assert!(!edits.vary_origin);
    }
    let answer = rule.preflight("https://anyone.example", "GET", "");
    assert_eq!(
        header(&answer.headers, "access-control-allow-origin"),
        Some("*")
    );
}

/// §3.3.3 and §4.10 step 4: the echoed origin is the request's, byte for
/// byte; "CORS protocol and HTTP caches": `Vary: Origin` on every answer
/// that depends on it, CORS request or not.
#[test]
fn a_listed_origin_is_echoed_with_vary_and_others_get_only_vary() {
    let rule = listed();
    let edits = rule.response(Some(APP), &[]);
    assert_eq!(
        edits.set,
        pairs(&[
            ("access-control-allow-origin", APP),
            ("access-control-expose-headers", "x-total")
        ])
    );
    assert!(edits.vary_origin);
    for origin in [Some("https://evil.example.net"), Some("null"), None] {
        let edits = rule.response(origin, &[]);
        assert!(edits.set.is_empty(), "{origin:?}");
        assert!(edits.vary_origin);
    }
}

/// `Vary` is appended to, not replaced: an upstream's `Vary` that
/// already covers `Origin` (or `*`) needs nothing more.
#[test]
fn vary_is_added_only_when_the_response_does_not_vary_on_origin_already() {
    let rule = listed();
    let given = |vary: &str| {
        rule.response(Some(APP), &pairs(&[("Vary", vary)]))
            .vary_origin
    };
    assert!(given("Accept-Encoding"));
    assert!(!given("accept-encoding, ORIGIN"));
    assert!(!given("*"));
    assert!(given("Origins"));
}

/// On a covered route the gateway's CORS answer is the only one: an
/// upstream's CORS headers are replaced when allowed, removed when not.
#[test]
fn upstream_cors_headers_are_replaced_or_removed() {
    let rule = listed();
    let upstream = pairs(&[
        ("access-control-allow-origin", "*"),
        ("Access-Control-Allow-Credentials", "true"),
        ("access-control-expose-headers", "x-secret"),
        ("content-type", "text/plain"),
    ]);
    let allowed = rule.response(Some(APP), &upstream);
    assert_eq!(
        header(&allowed.set, "access-control-allow-origin"),
        Some(APP)
    );
    assert_eq!(
        header(&allowed.set, "access-control-expose-headers"),
        Some("x-total")
    );
    assert_eq!(allowed.remove, vec!["access-control-allow-credentials"]);
    let refused = rule.response(Some("https://evil.example.net"), &upstream);
    assert!(refused.set.is_empty());
    assert_eq!(
        refused.remove,
        vec![
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "access-control-expose-headers"
        ]
    );
}

/// §3.3.5: with credentials, `Access-Control-Allow-Credentials: true`
/// (case-sensitive), the origin echoed, and `*` in
/// `Access-Control-Expose-Headers` would name a header `*`: the
/// response's own header names are listed instead.
#[test]
fn credentials_echo_the_origin_and_list_exposed_names() {
    let rule = rule(serde_json::json!({
        "origins": [APP], "allow_credentials": true, "expose_headers": ["*"]
    }));
    let response = pairs(&[
        ("x-total", "3"),
        ("Content-Type", "text/plain"),
        ("set-cookie", "a=b"),
        ("access-control-allow-origin", "*"),
        ("x-total", "4"),
    ]);
    let edits = rule.response(Some(APP), &response);
    assert_eq!(
        edits.set,
        pairs(&[
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "content-type, x-total")
        ])
    );
    assert!(edits.vary_origin);
}

/// A configured `null` allows opaque origins (sandboxed frames, `file:`),
/// which `*`-free lists otherwise refuse.
#[test]
fn null_is_allowed_only_when_listed() {
    let with_null = rule(serde_json::json!({"origins": ["null"]}));
    assert_eq!(
        with_null.preflight("null", "GET", "").outcome,
        Outcome::Allowed
    );
    assert_eq!(
        listed().preflight("null", "GET", "").outcome,
        Outcome::OriginRefused
    );
    // Any page can be `null`: never with credentials, as `*` (Fetch §3.2.5).
    let err = compile_error(serde_json::json!({"origins": ["null"], "allow_credentials": true}));
    assert!(
        err.contains("`null` cannot be combined with `allow_credentials`"),
        "{err}"
    );
}
