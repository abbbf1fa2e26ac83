//! Keys for JWT verification. Parsing the key material and checking
//! signatures happens in the host (`weir:plugin/crypto`), natively; this
//! module knows the algorithms and which key a token may use.

use serde_json::Value;
use weir_sdk::crypto::VerifyingKey;

/// A signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    /// Every supported algorithm.
    pub const ALL: [Alg; 12] = [
        Alg::Hs256,
        Alg::Hs384,
        Alg::Hs512,
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
        Alg::Es256,
        Alg::Es384,
        Alg::EdDsa,
    ];

    /// By its JOSE name.
    pub fn parse(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Hs384 => "HS384",
            Alg::Hs512 => "HS512",
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }
}

/// A key held by the host, with its `kid`.
pub struct Key {
    /// `kid`, if given.
    pub kid: Option<String>,
    handle: VerifyingKey,
}

impl Key {
    /// Load one JWK into the host.
    pub fn from_jwk(jwk: &Value) -> Result<Key, String> {
        if let Some(usage) = jwk.get("use").and_then(Value::as_str)
            && usage != "sig"
        {
            return Err(format!("`use` is `{usage}`, not `sig`"));
        }
        let handle = VerifyingKey::from_jwk(&jwk.to_string())?;
        Ok(Key {
            kid: jwk.get("kid").and_then(Value::as_str).map(str::to_string),
            handle,
        })
    }

    /// Whether this key may verify tokens of `alg`: the key's type must
    /// fit (no HMAC check against a public key) and its own `alg`, if any,
    /// must match.
    pub fn fits(&self, alg: Alg) -> bool {
        self.handle.accepts(alg.name())
    }

    /// Check `signature` over `message` (the `header.payload` text).
    pub fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        self.handle.verify(alg.name(), message, signature)
    }
}

/// Parse a JWKS document (`{"keys": [...]}`), skipping keys this plugin
/// cannot use (an identity provider may publish encryption keys too).
pub fn parse_set(doc: &Value) -> Result<Vec<Key>, String> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("a JWKS must be an object with a `keys` array")?;
    Ok(keys.iter().filter_map(|k| Key::from_jwk(k).ok()).collect())
}
