//! The default `auth` plugin through the real gateway: API keys, JWTs signed
//! with real keys for every algorithm, the RFC 7515 examples, key rotation
//! through a JWKS served by a real backend, per-route rules and scopes.

use http::Method;
use serde_json::Value;
use sha2::Digest;

use crate::support::jwt::{self, claims, sign};
use crate::support::*;

const KEY: &str = "alice-key-0123456789";

/// Routes by path: `/public/*` → route `public`, `/admin/*` → `admin`,
/// anything else has no route (the default rule); all go to `backend`.
fn gateway(backend: &Backend, auth: Value) -> Setup {
    Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted("10-route", json!({"on_request": [
            {"op": "set_upstream", "name": "backend"},
            {"op": "when_path", "path": "/public", "then": [{"op": "set_context", "key": "route", "value": "public"}]},
            {"op": "when_path", "path": "/admin", "then": [{"op": "set_context", "key": "route", "value": "admin"}]}]}))
        .plugin("60-auth", "weir_plugin_auth", Some(auth))
        .scripted("70-after", json!({"on_request": [
            {"op": "context_to_header", "key": "consumer", "header": "x-seen-consumer"},
            {"op": "context_to_header", "key": "auth.method", "header": "x-seen-method"}]}))
}

fn api_key_config() -> Value {
    json!({
        "api_key": {"query": "api_key", "consumers": [
            {"id": "alice", "sha256": hex::encode(sha2::Sha256::digest(KEY.as_bytes())), "scopes": ["orders:read"]}
        ]},
        "routes": {"public": {"public": true}, "admin": {"methods": ["api_key"], "scopes": ["admin"]}}
    })
}

fn jwt_config(extra: Value) -> Value {
    let mut jwt = json!({
        "issuer": "https://idp.test",
        "audiences": ["weir-api"],
        "jwks": jwt::jwks(),
        "forward_claims": {"email": "x-user-email"}
    });
    for (k, v) in extra.as_object().unwrap() {
        jwt[k] = v.clone();
    }
    json!({"jwt": jwt, "routes": {"public": {"public": true}, "admin": {"methods": ["jwt"], "scopes": ["admin"]}}})
}

fn with_header(url: &str, name: &str, value: &str) -> http::Request<weir::http::body::Body> {
    http::Request::builder()
        .uri(url)
        .header(name, value)
        .body(weir::http::body::empty())
        .unwrap()
}

async fn get_with(url: &str, name: &str, value: &str) -> crate::support::client::Reply {
    send(
        &crate::support::client::http1(),
        with_header(url, name, value),
    )
    .await
}

async fn bearer(url: &str, token: &str) -> crate::support::client::Reply {
    get_with(url, "authorization", &format!("Bearer {token}")).await
}

// ---- API keys ----

#[tokio::test]
async fn a_valid_api_key_passes_and_the_upstream_gets_the_consumer_not_the_key() {
    let backend = Backend::start().await;
    let gw = gateway(&backend, api_key_config()).serve().await;
    let reply = get_with(&gw.url("/orders"), "x-api-key", KEY).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = backend.last().unwrap();
    assert_eq!(seen.headers["x-consumer-id"], "alice");
    assert_eq!(seen.headers["x-seen-consumer"], "alice");
    assert_eq!(seen.headers["x-seen-method"], "api_key");
    assert!(
        seen.headers.get("x-api-key").is_none(),
        "the key reached the upstream"
    );
}

#[tokio::test]
async fn a_key_in_the_query_works_and_is_removed_from_the_query() {
    let backend = Backend::start().await;
    let gw = gateway(&backend, api_key_config()).serve().await;
    let reply = get(&gw.url(&format!("/orders?page=2&api_key={KEY}&sort=asc"))).await;
    assert_eq!(reply.status, 200);
    let seen = backend.last().unwrap();
    assert_eq!(seen.path_and_query, "/orders?page=2&sort=asc");
    assert_eq!(seen.headers["x-consumer-id"], "alice");
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_401_and_never_reaches_the_backend() {
    let backend = Backend::start().await;
    let gw = gateway(&backend, api_key_config()).serve().await;

    let reply = get_with(&gw.url("/orders"), "x-api-key", "not-the-key").await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"], "invalid_api_key");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"ApiKey realm="weir", header="x-api-key""#)
    );
    assert!(
        !reply.text().contains("not-the-key"),
        "the body echoes the key"
    );

    let reply = get(&gw.url("/orders")).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"], "unauthorized");

    let reply = get(&gw.url("/orders?api_key=wrong")).await;
    assert_eq!(reply.status, 401);
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn a_forged_consumer_header_never_reaches_the_upstream() {
    let backend = Backend::start().await;
    let gw = gateway(&backend, api_key_config()).serve().await;
    // On a public route, no consumer: the client's claim is dropped.
    let reply = get_with(&gw.url("/public"), "x-consumer-id", "admin").await;
    assert_eq!(reply.status, 200);
    assert!(
        backend
            .last()
            .unwrap()
            .headers
            .get("x-consumer-id")
            .is_none()
    );
    // Authenticated: the consumer is the key's, not the client's claim.
    let req = http::Request::builder()
        .uri(gw.url("/orders"))
        .header("x-api-key", KEY)
        .header("x-consumer-id", "admin")
        .body(weir::http::body::empty())
        .unwrap();
    assert_eq!(
        send(&crate::support::client::http1(), req).await.status,
        200
    );
    let ids: Vec<_> = backend
        .last()
        .unwrap()
        .headers
        .get_all("x-consumer-id")
        .iter()
        .cloned()
        .collect();
    assert_eq!(ids, ["alice"]);
}

#[tokio::test]
async fn per_route_rules_public_and_scopes() {
    let backend = Backend::start().await;
    let gw = gateway(&backend, api_key_config()).serve().await;
    assert_eq!(get(&gw.url("/public")).await.status, 200);
    // alice lacks the `admin` scope: authenticated, but forbidden.
    let reply = get_with(&gw.url("/admin"), "x-api-key", KEY).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"], "insufficient_scope");
    assert_eq!(backend.hits(), 1);
}

// ---- JWT ----

#[tokio::test]
async fn tokens_of_every_algorithm_signed_with_real_keys_are_accepted() {
    let backend = Backend::start().await;
    let gw = gateway(&backend, jwt_config(json!({}))).serve().await;
    for alg in jwt::ALGS {
        let mut c = claims(&format!("user-{alg}"));
        c["email"] = json!(format!("{alg}@example.com"));
        let reply = bearer(&gw.url("/orders"), &sign(alg, &c)).await;
        assert_eq!(reply.status, 200, "{alg}: {}", reply.text());
        let seen = backend.last().unwrap();
        assert_eq!(
            seen.headers["x-consumer-id"],
            format!("user-{alg}").as_str()
        );
        assert_eq!(
            seen.headers["x-user-email"],
            format!("{alg}@example.com").as_str()
        );
        assert_eq!(seen.headers["x-seen-method"], "jwt");
        assert!(
            seen.headers.get("authorization").is_none(),
            "{alg}: the token reached the upstream"
        );
    }
    assert_eq!(backend.hits(), jwt::ALGS.len());
}

/// Expect 401 `invalid_token` with this description, and an RFC 6750 challenge.
async fn refused(gw: &Running, token: &str, description: &str) {
    let reply = bearer(&gw.url("/orders"), token).await;
    assert_eq!(reply.status, 401, "{description}: {}", reply.text());
    assert_eq!(reply.json()["error"], "invalid_token");
    assert_eq!(reply.json()["message"], description);
    let challenge = reply.header("www-authenticate").unwrap();
    assert_eq!(
        challenge,
        format!(r#"Bearer realm="weir", error="invalid_token", error_description="{description}""#)
    );
}

#[tokio::test]
async fn invalid_tokens_are_refused_with_the_reason() {
    let backend = Backend::start().await;
    let gw = gateway(
        &backend,
        jwt_config(json!({"leeway_s": 5, "required_claims": ["sub"]})),
    )
    .serve()
    .await;
    let now = jwt::now();

    let mut c = claims("u");
    c["exp"] = json!(now - 60);
    refused(&gw, &sign("RS256", &c), "token expired").await;

    let mut c = claims("u");
    c["nbf"] = json!(now + 600);
    refused(&gw, &sign("ES256", &c), "token not yet valid").await;

    let mut c = claims("u");
    c["iss"] = json!("https://evil.test");
    refused(&gw, &sign("RS256", &c), "wrong issuer").await;

    let mut c = claims("u");
    c["aud"] = json!(["someone-else"]);
    refused(&gw, &sign("EdDSA", &c), "wrong audience").await;

    let mut c = claims("u");
    c.as_object_mut().unwrap().remove("sub");
    refused(&gw, &sign("HS256", &c), "missing claim `sub`").await;

    // Tampered payload: the signature no longer matches.
    let token = sign("RS256", &claims("u"));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = jwt::b64(claims("admin").to_string().as_bytes());
    refused(
        &gw,
        &format!("{}.{forged}.{}", parts[0], parts[2]),
        "invalid signature",
    )
    .await;

    // Tampered signature.
    let mut sig = base64_decode(parts[2]);
    sig[10] ^= 0x01;
    refused(
        &gw,
        &format!("{}.{}.{}", parts[0], parts[1], jwt::b64(&sig)),
        "invalid signature",
    )
    .await;

    // Malformed: not base64url, not JSON, wrong number of parts.
    refused(&gw, "abc.def", "malformed token: not three parts").await;
    refused(
        &gw,
        &format!("{}.!!!.{}", parts[0], parts[2]),
        "malformed token: payload encoding",
    )
    .await;
    let not_json = jwt::b64(b"not json");
    refused(
        &gw,
        &format!("{}.{not_json}.{}", parts[0], parts[2]),
        "malformed token: payload is not a JSON object",
    )
    .await;

    // Oversized.
    let mut c = claims("u");
    c["padding"] = json!("x".repeat(10_000));
    refused(&gw, &sign("HS256", &c), "token too large").await;

    assert_eq!(backend.hits(), 0);
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

#[tokio::test]
async fn alg_none_unknown_crit_and_algorithm_confusion_are_refused() {
    let backend = Backend::start().await;
    let gw = gateway(&backend, jwt_config(json!({}))).serve().await;
    let payload = jwt::b64(claims("u").to_string().as_bytes());

    let none = jwt::b64(br#"{"alg":"none"}"#);
    refused(&gw, &format!("{none}.{payload}."), "unsupported algorithm").await;

    let crit = json!({"alg": "HS256", "kid": "hmac-1", "crit": ["exp"], "exp": 1});
    let token = jwt::sign_with("HS256", &crit, &claims("u"), &jwt::keys().rsa);
    refused(&gw, &token, "unsupported critical header").await;

    // HS/RS confusion: an HS256 token whose HMAC secret is the RSA public
    // key's modulus, naming the RSA key's kid. The RSA key may only verify
    // RS*/PS*, so the token is refused.
    let rsa_n = {
        use rsa::traits::PublicKeyParts;
        jwt::keys().rsa.to_public_key().n().to_bytes_be()
    };
    let header = jwt::b64(br#"{"alg":"HS256","kid":"rsa-1"}"#);
    let input = format!("{header}.{payload}");
    let mac = {
        use hmac::Mac;
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(&rsa_n).unwrap();
        mac.update(input.as_bytes());
        mac.finalize().into_bytes()
    };
    refused(
        &gw,
        &format!("{input}.{}", jwt::b64(&mac)),
        "invalid signature",
    )
    .await;

    // An algorithm outside the configured allow-list.
    let gw = gateway(&backend, jwt_config(json!({"algorithms": ["ES256"]})))
        .serve()
        .await;
    refused(&gw, &sign("RS256", &claims("u")), "unsupported algorithm").await;
    assert_eq!(
        bearer(&gw.url("/orders"), &sign("ES256", &claims("u")))
            .await
            .status,
        200
    );
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn scopes_per_route_give_403_with_an_insufficient_scope_challenge() {
    let backend = Backend::start().await;
    let gw = gateway(&backend, jwt_config(json!({}))).serve().await;
    let mut c = claims("u");
    c["scope"] = json!("orders:read");
    let reply = bearer(&gw.url("/admin"), &sign("RS256", &c)).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer realm="weir", error="insufficient_scope", scope="admin""#)
    );
    c["scope"] = json!("orders:read admin");
    assert_eq!(
        bearer(&gw.url("/admin"), &sign("RS256", &c)).await.status,
        200
    );
    // No credential at all: 401 with a bearer challenge.
    let reply = get(&gw.url("/admin")).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer realm="weir""#)
    );
    assert_eq!(backend.hits(), 1);
}

// ---- RFC 7515 appendix A ----

const RFC_PAYLOAD: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

fn rfc_a1() -> (String, Value) {
    let token = format!(
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.{RFC_PAYLOAD}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    );
    let key = json!({"kty": "oct", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"});
    (token, key)
}

fn rfc_a2() -> (String, Value) {
    let token = format!(
        "eyJhbGciOiJSUzI1NiJ9.{RFC_PAYLOAD}.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
    );
    let key = json!({"kty": "RSA", "e": "AQAB", "n": concat!(
        "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs",
        "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV",
        "MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ")});
    (token, key)
}

fn rfc_a3() -> (String, Value) {
    let token = format!(
        "eyJhbGciOiJFUzI1NiJ9.{RFC_PAYLOAD}.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
    );
    let key = json!({"kty": "EC", "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    (token, key)
}

fn rfc_config(key: &Value, leeway_s: u64) -> Value {
    json!({"jwt": {"keys": [key], "consumer_claim": "iss", "leeway_s": leeway_s}})
}

#[tokio::test]
async fn rfc_7515_examples_verify_and_their_2011_expiry_is_enforced() {
    let backend = Backend::start().await;
    for (name, (token, key)) in [
        ("A.1 HS256", rfc_a1()),
        ("A.2 RS256", rfc_a2()),
        ("A.3 ES256", rfc_a3()),
    ] {
        // As published: valid signature, expired in 2011.
        let gw = gateway(&backend, rfc_config(&key, 60)).serve().await;
        refused(&gw, &token, "token expired").await;
        // With enough leeway to reach back to 2011, the signature alone decides.
        let gw = gateway(&backend, rfc_config(&key, 100 * 365 * 86_400))
            .serve()
            .await;
        let reply = bearer(&gw.url("/orders"), &token).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.text());
        assert_eq!(backend.last().unwrap().headers["x-consumer-id"], "joe");
        // One flipped signature bit: refused.
        let mut tampered: Vec<char> = token.chars().collect();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == 'A' { 'B' } else { 'A' };
        let tampered: String = tampered.into_iter().collect();
        refused(&gw, &tampered, "invalid signature").await;
    }
    // A.5: the unsecured JWS.
    let (_, key) = rfc_a1();
    let gw = gateway(&backend, rfc_config(&key, 100 * 365 * 86_400))
        .serve()
        .await;
    refused(
        &gw,
        &format!("eyJhbGciOiJub25lIn0.{RFC_PAYLOAD}."),
        "unsupported algorithm",
    )
    .await;
    assert_eq!(backend.hits(), 3);
}

// ---- JWKS from an upstream, rotation ----

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_and_rotation_works() {
    let backend = Backend::start().await;
    let idp = Backend::start().await;
    idp.serve_json(
        "/jwks.json",
        &json!({"keys": [jwt::rsa_jwk(&jwt::keys().rsa, "rsa-1")]}),
    );
    let config = json!({"jwt": {
        "issuer": "https://idp.test",
        "jwks_upstream": {"upstream": "idp", "path": "/jwks.json", "ttl_s": 3600, "min_refetch_interval_s": 1}
    }});
    let gw = gateway(&backend, config)
        .upstream("idp", &[idp.url()])
        .serve()
        .await;

    let token = sign("RS256", &claims("before"));
    assert_eq!(bearer(&gw.url("/orders"), &token).await.status, 200);
    assert_eq!(idp.hits(), 1);
    assert_eq!(bearer(&gw.url("/orders"), &token).await.status, 200);
    assert_eq!(idp.hits(), 1, "the JWKS was fetched again within its TTL");

    // The issuer rotates to a new key, published under a new kid.
    idp.serve_json(
        "/jwks.json",
        &json!({"keys": [jwt::rsa_jwk(jwt::other_rsa(), "rsa-2")]}),
    );
    let rotated = jwt::sign_with(
        "RS256",
        &json!({"alg": "RS256", "kid": "rsa-2"}),
        &claims("after"),
        jwt::other_rsa(),
    );
    let reply = bearer(&gw.url("/orders"), &rotated).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(backend.last().unwrap().headers["x-consumer-id"], "after");
    assert_eq!(idp.hits(), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_does_not_hammer_the_issuer() {
    let backend = Backend::start().await;
    let idp = Backend::start().await;
    idp.serve_json(
        "/jwks.json",
        &json!({"keys": [jwt::rsa_jwk(&jwt::keys().rsa, "rsa-1")]}),
    );
    let config = json!({"jwt": {
        "jwks_upstream": {"upstream": "idp", "path": "/jwks.json", "ttl_s": 3600, "min_refetch_interval_s": 3600}
    }});
    let gw = gateway(&backend, config)
        .upstream("idp", &[idp.url()])
        .serve()
        .await;
    for i in 0..30 {
        let token = jwt::sign_with(
            "RS256",
            &json!({"alg": "RS256", "kid": format!("made-up-{i}")}),
            &claims("x"),
            &jwt::keys().rsa,
        );
        refused(&gw, &token, "unknown key id").await;
    }
    // One fetch to start, at most one refetch for unknown kids per interval.
    assert!(idp.hits() <= 2, "the issuer was asked {} times", idp.hits());
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn a_jwks_file_is_included_by_the_host() {
    let backend = Backend::start().await;
    let setup = gateway(&backend, json!({"jwt": {"jwks": {"$file": "jwks.json"}}}));
    std::fs::write(
        setup.plugins_dir().join("jwks.json"),
        jwt::jwks().to_string(),
    )
    .unwrap();
    let gw = setup.serve().await;
    assert_eq!(
        bearer(&gw.url("/orders"), &sign("ES384", &claims("filed")))
            .await
            .status,
        200
    );
    assert_eq!(backend.last().unwrap().headers["x-consumer-id"], "filed");
}

#[tokio::test]
async fn either_method_on_a_route_that_accepts_both() {
    let backend = Backend::start().await;
    let mut config = jwt_config(json!({}));
    config["api_key"] = api_key_config()["api_key"].clone();
    let gw = gateway(&backend, config).serve().await;
    assert_eq!(
        get_with(&gw.url("/orders"), "x-api-key", KEY).await.status,
        200
    );
    assert_eq!(
        bearer(&gw.url("/orders"), &sign("ES256", &claims("bob")))
            .await
            .status,
        200
    );
    let reply = get(&gw.url("/orders")).await;
    assert_eq!(reply.status, 401);
    let challenges: Vec<&str> = reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    // POST with a body: auth does not need or consume it.
    let req = http::Request::builder()
        .method(Method::POST)
        .uri(gw.url("/echo"))
        .header("x-api-key", KEY)
        .body(weir::http::body::full("payload"))
        .unwrap();
    let reply = send(&crate::support::client::http1(), req).await;
    assert_eq!(reply.text(), "payload");
}

#[tokio::test]
async fn bad_auth_configs_are_refused_at_load() {
    let backend = Backend::start().await;
    let bad = |config: Value| {
        let setup = gateway(&backend, config);
        async move {
            setup
                .try_gateway()
                .await
                .err()
                .expect("config should be refused")
                .to_string()
        }
    };
    let err = bad(json!({"api_key": {"consumers": [{"id": "a", "key": "plain"}]}})).await;
    assert!(err.contains("allow_plaintext"), "{err}");
    let err = bad(json!({"api_key": {"consumers": [{"id": "a", "sha256": "xyz"}]}})).await;
    assert!(err.contains("64 hex digits"), "{err}");
    let err = bad(json!({"jwt": {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}})).await;
    assert!(err.contains("jwt.keys[0]"), "{err}");
    let err =
        bad(json!({"api_key": {"consumers": []}, "routes": {"x": {"methods": ["jwt"]}}})).await;
    assert!(err.contains("rule `x`"), "{err}");
    let err = bad(json!({"jwt": {"jwks": {"$file": "../outside.json"}}})).await;
    assert!(err.contains("inside the plugin directory"), "{err}");
}
