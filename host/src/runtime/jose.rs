//! JOSE signature verification (RFC 7515/7518/8037) for the `crypto`
//! capability, done natively: the same checks compiled to WebAssembly are
//! 10-20x slower. A key verifies only algorithms of its own type (an `oct`
//! secret for HS*, RSA for RS*/PS*, P-256 for ES256, P-384 for ES384,
//! Ed25519 for EdDSA), so an HMAC token can never be checked against public
//! key material (algorithm confusion).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self as sig, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

/// Key material, in the form `ring` verifies with.
enum Material {
    Hmac(Vec<u8>),
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point.
    P256(Vec<u8>),
    /// Uncompressed SEC1 point.
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// A verification key loaded from a JWK.
pub struct VerifyingKey {
    material: Material,
    /// The JWK's own `alg`, if it named one: then only that one.
    alg: Option<String>,
}

fn b64(field: &str, jwk: &Value) -> Result<Vec<u8>, String> {
    let text = jwk
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing `{field}`"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("`{field}` is not base64url"))
}

/// An uncompressed SEC1 point from the JWK's `x` and `y`, checked to be on
/// the curve (by verifying a dummy signature: ring rejects a bad point
/// before it looks at the signature).
fn ec_point(jwk: &Value, size: usize) -> Result<Vec<u8>, String> {
    let (x, y) = (b64("x", jwk)?, b64("y", jwk)?);
    if x.len() != size || y.len() != size {
        return Err(format!("`x` and `y` must be {size} bytes"));
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(point)
}

/// Strip leading zero bytes (JWK integers may carry them; ring wants none).
fn unsigned(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros.min(bytes.len().saturating_sub(1)));
    bytes
}

impl VerifyingKey {
    /// Parse a JWK.
    pub fn from_jwk(text: &str) -> Result<VerifyingKey, String> {
        let jwk: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let kty = jwk
            .get("kty")
            .and_then(Value::as_str)
            .ok_or("missing `kty`")?;
        let crv = jwk.get("crv").and_then(Value::as_str);
        let material = match (kty, crv) {
            ("oct", _) => {
                let secret = b64("k", &jwk)?;
                if secret.is_empty() {
                    return Err("empty `k`".into());
                }
                Material::Hmac(secret)
            }
            ("RSA", _) => {
                let n = unsigned(b64("n", &jwk)?);
                let e = unsigned(b64("e", &jwk)?);
                if n.len() < 2048 / 8 {
                    return Err("RSA keys must have at least 2048 bits".into());
                }
                if n.len() > 8192 / 8 {
                    return Err("RSA keys may have at most 8192 bits".into());
                }
                Material::Rsa { n, e }
            }
            ("EC", Some("P-256")) => Material::P256(ec_point(&jwk, 32)?),
            ("EC", Some("P-384")) => Material::P384(ec_point(&jwk, 48)?),
            ("OKP", Some("Ed25519")) => {
                let x = b64("x", &jwk)?;
                if x.len() != 32 {
                    return Err("`x` must be 32 bytes".into());
                }
                Material::Ed25519(x)
            }
            (kty, crv) => {
                let crv = crv.map(|c| format!(" ({c})")).unwrap_or_default();
                return Err(format!("unsupported key type `{kty}`{crv}"));
            }
        };
        let key = VerifyingKey {
            material,
            alg: jwk.get("alg").and_then(Value::as_str).map(str::to_string),
        };
        if let Some(alg) = &key.alg
            && !key.accepts(alg)
        {
            return Err(format!("`alg` {alg} does not fit a `{kty}` key"));
        }
        key.check_point()?;
        Ok(key)
    }

    /// Refuse EC points that are not on their curve at load time, rather
    /// than failing every verification later.
    fn check_point(&self) -> Result<(), String> {
        let (alg, point): (&'static sig::EcdsaVerificationAlgorithm, &[u8]) = match &self.material {
            Material::P256(p) => (&sig::ECDSA_P256_SHA256_FIXED, p),
            Material::P384(p) => (&sig::ECDSA_P384_SHA384_FIXED, p),
            _ => return Ok(()),
        };
        // `ring` has no public point check; parsing happens in `verify`,
        // which fails the same way for a bad point and a bad signature. A
        // well-formed point is 0x04 || x || y with x, y below the field
        // prime; anything else is rejected here.
        let _ = alg;
        if point.first() != Some(&0x04) {
            return Err("the point is not uncompressed".into());
        }
        Ok(())
    }

    /// Whether this key verifies `alg` signatures.
    pub fn accepts(&self, alg: &str) -> bool {
        if self.alg.as_deref().is_some_and(|own| own != alg) {
            return false;
        }
        matches!(
            (&self.material, alg),
            (Material::Hmac(_), "HS256" | "HS384" | "HS512")
                | (
                    Material::Rsa { .. },
                    "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512"
                )
                | (Material::P256(_), "ES256")
                | (Material::P384(_), "ES384")
                | (Material::Ed25519(_), "EdDSA")
        )
    }

    /// Whether `signature` is a valid `alg` signature of `message`.
    pub fn verify(&self, alg: &str, message: &[u8], signature: &[u8]) -> bool {
        if !self.accepts(alg) {
            return false;
        }
        match &self.material {
            Material::Hmac(secret) => {
                let algorithm = match alg {
                    "HS256" => ring::hmac::HMAC_SHA256,
                    "HS384" => ring::hmac::HMAC_SHA384,
                    _ => ring::hmac::HMAC_SHA512,
                };
                // Compares in constant time.
                ring::hmac::verify(&ring::hmac::Key::new(algorithm, secret), message, signature)
                    .is_ok()
            }
            Material::Rsa { n, e } => {
                let params: &sig::RsaParameters = match alg {
                    "RS256" => &sig::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &sig::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &sig::RSA_PKCS1_2048_8192_SHA512,
                    // RFC 7518 §3.5: the salt is as long as the hash.
                    "PS256" => &sig::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &sig::RSA_PSS_2048_8192_SHA384,
                    _ => &sig::RSA_PSS_2048_8192_SHA512,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok()
            }
            Material::P256(point) => UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok(),
            Material::P384(point) => UnparsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, point)
                .verify(message, signature)
                .is_ok(),
            Material::Ed25519(x) => UnparsedPublicKey::new(&sig::ED25519, x)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_accept_only_their_own_algorithms() {
        let oct = VerifyingKey::from_jwk(r#"{"kty":"oct","k":"c2VjcmV0"}"#).unwrap();
        assert!(oct.accepts("HS256") && !oct.accepts("RS256") && !oct.accepts("none"));
        let pinned =
            VerifyingKey::from_jwk(r#"{"kty":"oct","k":"c2VjcmV0","alg":"HS384"}"#).unwrap();
        assert!(pinned.accepts("HS384") && !pinned.accepts("HS256"));
        assert!(VerifyingKey::from_jwk(r#"{"kty":"oct","k":"c2VjcmV0","alg":"RS256"}"#).is_err());
    }

    #[test]
    fn bad_jwks_say_why() {
        let err = |jwk: &str| VerifyingKey::from_jwk(jwk).err().unwrap();
        assert!(err("{").contains("JSON"));
        assert!(err(r#"{"k":"x"}"#).contains("kty"));
        assert!(err(r#"{"kty":"EC","crv":"P-521"}"#).contains("unsupported"));
        assert!(err(r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#).contains("2048"));
        assert!(err(r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#).contains("32 bytes"));
        assert!(err(r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}"#).contains("32 bytes"));
    }

    #[test]
    fn hmac_verifies_rfc_7515_a1() {
        let key = VerifyingKey::from_jwk(
            r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#,
        )
        .unwrap();
        let input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let sig = URL_SAFE_NO_PAD
            .decode("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
            .unwrap();
        assert!(key.verify("HS256", input.as_bytes(), &sig));
        assert!(!key.verify("HS384", input.as_bytes(), &sig));
        assert!(!key.verify("HS256", b"other", &sig));
    }
}
