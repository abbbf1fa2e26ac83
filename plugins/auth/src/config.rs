//! The auth plugin's JSON config, parsed strictly and checked in `init`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The rule for routes without their own; by default any configured
    /// method is accepted.
    #[serde(default)]
    pub default: Option<Rule>,
    /// Rules by route name (the router's `route` context value).
    #[serde(default)]
    pub routes: BTreeMap<String, Rule>,
    /// Header carrying the consumer id to the upstream; `null` disables it.
    /// Any value the client sent in it is removed.
    #[serde(default = "default_consumer_header")]
    pub consumer_header: Option<String>,
    /// Realm in `WWW-Authenticate` challenges.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// API keys.
    #[serde(default)]
    pub api_key: Option<ApiKeyConfig>,
    /// JSON Web Tokens.
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
}

/// What a route requires.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// No credential needed.
    #[serde(default)]
    pub public: bool,
    /// Accepted credentials; any one is enough.
    #[serde(default)]
    pub methods: Vec<Method>,
    /// Scopes a JWT must carry (all of them).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A kind of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// An API key.
    ApiKey,
    /// A bearer JWT.
    Jwt,
}

/// `api_key`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Header holding the key.
    #[serde(default = "default_key_header")]
    pub header: String,
    /// Query parameter holding the key, if keys may come that way.
    #[serde(default)]
    pub query: Option<String>,
    /// Forward the key to the upstream (by default it is removed).
    #[serde(default)]
    pub keep_credential: bool,
    /// Accept `key` (plaintext) entries; for development only.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Who may call.
    pub consumers: Vec<ConsumerKey>,
}

/// One consumer's key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerKey {
    /// The consumer id passed on.
    pub id: String,
    /// Hex SHA-256 of the key.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The key itself (only with `allow_plaintext`).
    #[serde(default)]
    pub key: Option<String>,
    /// Scopes granted to this consumer, for routes that require scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `jwt`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Required `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values (one must be present); none: `aud` unchecked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_s: u64,
    /// Longest token accepted.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Accepted algorithms; default all supported.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Claims that must be present.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Claim naming the consumer.
    #[serde(default = "default_consumer_claim")]
    pub consumer_claim: String,
    /// Claims copied to request headers: claim name → header name.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
    /// Forward the `Authorization` header to the upstream.
    #[serde(default)]
    pub keep_credential: bool,
    /// Inline keys (JWKs).
    #[serde(default)]
    pub keys: Vec<serde_json::Value>,
    /// A JWKS document: an object, or its text (e.g. `{"$file": "jwks.json"}`).
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// A JWKS fetched from an upstream.
    #[serde(default)]
    pub jwks_upstream: Option<JwksUpstream>,
}

/// `jwt.jwks_upstream`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksUpstream {
    /// The `[upstreams.NAME]` serving it.
    pub upstream: String,
    /// Its path.
    pub path: String,
    /// How long a fetched set is used.
    #[serde(default = "default_ttl")]
    pub ttl_s: u64,
    /// Least time between fetches caused by unknown `kid`s.
    #[serde(default = "default_refetch")]
    pub min_refetch_interval_s: u64,
    /// Limit on one fetch.
    #[serde(default = "default_fetch_timeout")]
    pub timeout_ms: u32,
}

fn default_consumer_header() -> Option<String> {
    Some("x-consumer-id".to_string())
}
fn default_realm() -> String {
    "weir".to_string()
}
fn default_key_header() -> String {
    "x-api-key".to_string()
}
fn default_leeway() -> u64 {
    60
}
fn default_max_token_bytes() -> usize {
    8 * 1024
}
fn default_consumer_claim() -> String {
    "sub".to_string()
}
fn default_ttl() -> u64 {
    300
}
fn default_refetch() -> u64 {
    10
}
fn default_fetch_timeout() -> u32 {
    2_000
}
