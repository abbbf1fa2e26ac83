//! Real keys, generated once per test run, for signing test tokens with
//! every algorithm the auth plugin accepts, and their public JWKs.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Sha256, Sha384, Sha512};

pub struct Keys {
    pub rsa: rsa::RsaPrivateKey,
    pub p256: p256::ecdsa::SigningKey,
    pub p384: p384::ecdsa::SigningKey,
    pub ed25519: ed25519_dalek::SigningKey,
    pub secret: Vec<u8>,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap(),
        p256: p256::ecdsa::SigningKey::random(&mut OsRng),
        p384: p384::ecdsa::SigningKey::random(&mut OsRng),
        ed25519: ed25519_dalek::SigningKey::generate(&mut OsRng),
        secret: b"a shared secret of at least 32 bytes!!".to_vec(),
    })
}

/// A second RSA key, for rotation.
pub fn other_rsa() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap())
}

pub const ALGS: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// The `kid` the test JWKS gives the key `alg` uses.
pub fn kid_for(alg: &str) -> &'static str {
    match alg {
        "HS256" | "HS384" | "HS512" => "hmac-1",
        "ES256" => "p256-1",
        "ES384" => "p384-1",
        "EdDSA" => "ed-1",
        _ => "rsa-1",
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Sign `header` + `claims` with the key for `alg` (RSA from `rsa`).
pub fn sign_with(
    alg: &str,
    header: &Value,
    claims: &Value,
    rsa_key: &rsa::RsaPrivateKey,
) -> String {
    let k = keys();
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let msg = signing_input.as_bytes();
    let signature: Vec<u8> = match alg {
        "HS256" => hmac_sign::<Hmac<Sha256>>(&k.secret, msg),
        "HS384" => hmac_sign::<Hmac<Sha384>>(&k.secret, msg),
        "HS512" => hmac_sign::<Hmac<Sha512>>(&k.secret, msg),
        "RS256" => rsa::pkcs1v15::SigningKey::<Sha256>::new(rsa_key.clone())
            .sign(msg)
            .to_vec(),
        "RS384" => rsa::pkcs1v15::SigningKey::<Sha384>::new(rsa_key.clone())
            .sign(msg)
            .to_vec(),
        "RS512" => rsa::pkcs1v15::SigningKey::<Sha512>::new(rsa_key.clone())
            .sign(msg)
            .to_vec(),
        "PS256" => rsa::pss::BlindedSigningKey::<Sha256>::new(rsa_key.clone())
            .sign_with_rng(&mut OsRng, msg)
            .to_vec(),
        "PS384" => rsa::pss::BlindedSigningKey::<Sha384>::new(rsa_key.clone())
            .sign_with_rng(&mut OsRng, msg)
            .to_vec(),
        "PS512" => rsa::pss::BlindedSigningKey::<Sha512>::new(rsa_key.clone())
            .sign_with_rng(&mut OsRng, msg)
            .to_vec(),
        "ES256" => {
            let sig: p256::ecdsa::Signature = k.p256.sign(msg);
            sig.to_bytes().to_vec()
        }
        "ES384" => {
            let sig: p384::ecdsa::Signature = k.p384.sign(msg);
            sig.to_bytes().to_vec()
        }
        "EdDSA" => ed25519_dalek::Signer::sign(&k.ed25519, msg)
            .to_bytes()
            .to_vec(),
        other => panic!("no signer for {other}"),
    };
    format!("{signing_input}.{}", b64(&signature))
}

fn hmac_sign<M: Mac + hmac::digest::KeyInit>(secret: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret).unwrap();
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// A token for `alg` with the usual header (`alg`, `kid`).
pub fn sign(alg: &str, claims: &Value) -> String {
    sign_with(
        alg,
        &json!({"alg": alg, "kid": kid_for(alg), "typ": "JWT"}),
        claims,
        &keys().rsa,
    )
}

/// Claims valid now: `sub`, `iss`, `aud`, `iat`, `exp` in an hour.
pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": "https://idp.test", "aud": "weir-api", "iat": now(), "exp": now() + 3600})
}

pub fn rsa_jwk(key: &rsa::RsaPrivateKey, kid: &str) -> Value {
    let public = key.to_public_key();
    json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())})
}

/// The public JWKS for all test keys.
pub fn jwks() -> Value {
    let k = keys();
    let p256 = k.p256.verifying_key().to_encoded_point(false);
    let p384 = k.p384.verifying_key().to_encoded_point(false);
    json!({"keys": [
        {"kty": "oct", "kid": "hmac-1", "k": b64(&k.secret)},
        rsa_jwk(&k.rsa, "rsa-1"),
        {"kty": "EC", "kid": "p256-1", "crv": "P-256", "x": b64(p256.x().unwrap()), "y": b64(p256.y().unwrap())},
        {"kty": "EC", "kid": "p384-1", "crv": "P-384", "x": b64(p384.x().unwrap()), "y": b64(p384.y().unwrap())},
        {"kty": "OKP", "kid": "ed-1", "crv": "Ed25519", "x": b64(k.ed25519.verifying_key().as_bytes())},
    ]})
}
