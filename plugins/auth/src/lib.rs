//! Weir's default auth plugin: API keys and JWTs, per route.
//!
//! It runs after the router (it reads the `route` context value) and before
//! rate limiting. On success it puts the consumer in the context
//! (`consumer`, and `auth.method`), sends it to the upstream in a header
//! (`x-consumer-id` by default), forwards configured JWT claims as headers,
//! and removes the credential. Headers it sets are first removed from the
//! client's request, on every route, so they cannot be forged.
//!
//! Missing or invalid credentials → 401 with `WWW-Authenticate` (RFC 6750
//! for bearer tokens); valid credentials without a required scope → 403.
//!
//! Every decision is counted in the `outcomes` metric
//! (`weir_plugin_auth_outcomes_total{method, outcome}`).

mod apikey;
mod config;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod jwk;
mod jwt;
mod keyset;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use apikey::{ApiKeys, Consumer};
use config::{Config, JwtConfig, Method, Rule};
use jwk::{Alg, Key};
use jwt::{ClaimRules, TokenError};
use keyset::KeySet;
use weir_sdk::metrics::Counter;
use weir_sdk::{Action, Hooks, Plugin, Reply, Request, export_plugin};

/// The plugin.
pub struct Auth {
    default: Rule,
    routes: BTreeMap<String, Rule>,
    consumer_header: Option<String>,
    realm: String,
    api_keys: Option<ApiKeys>,
    jwt: Option<Jwt>,
    outcomes: Counter,
}

/// What the plugin decided about a request, in the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A credential checked out and carried every required scope.
    Allowed,
    /// The route is public; nothing was checked.
    Public,
    /// No credential of an accepted kind: 401.
    Missing,
    /// A credential was presented and is wrong: 401.
    Invalid,
    /// A valid credential without a required scope: 403.
    Forbidden,
    /// Token keys could not be obtained: 503.
    Unavailable,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Public => "public",
            Outcome::Missing => "missing",
            Outcome::Invalid => "invalid",
            Outcome::Forbidden => "forbidden",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// The `method` label: the credential's kind, or `none` when none was
/// checked (public routes, missing credentials).
fn method_label(method: Option<Method>) -> &'static str {
    match method {
        Some(Method::ApiKey) => "api_key",
        Some(Method::Jwt) => "jwt",
        None => "none",
    }
}

struct Jwt {
    config: JwtConfig,
    algorithms: Vec<Alg>,
    keys: KeySet,
    /// Tokens whose signature this instance already verified, with the key
    /// set of that generation: clients reuse a token for many requests, and
    /// the claims (expiry included) are still checked every time.
    verified: std::collections::HashSet<String>,
    verified_generation: u64,
}

/// Bound on remembered tokens per instance; the set is emptied when full.
const VERIFIED_CACHE: usize = 1024;

/// Who is calling, once a credential checked out.
struct Authenticated {
    consumer: String,
    method: Method,
    scopes: Vec<String>,
    /// Claim headers to set (JWT only).
    headers: Vec<(String, String)>,
}

/// Why a credential was refused.
enum Refusal {
    Missing,
    BadKey,
    BadToken(TokenError),
    KeysUnavailable(String),
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Plugin for Auth {
    type Config = Config;
    const HOOKS: Hooks = Hooks::ON_REQUEST;

    fn new(config: Config) -> Result<Self, String> {
        let api_keys = config.api_key.map(ApiKeys::new).transpose()?;
        let jwt = config.jwt.map(Jwt::new).transpose()?;
        let mut configured = Vec::new();
        if api_keys.is_some() {
            configured.push(Method::ApiKey);
        }
        if jwt.is_some() {
            configured.push(Method::Jwt);
        }
        let default = config.default.unwrap_or(Rule {
            public: false,
            methods: configured.clone(),
            scopes: Vec::new(),
        });
        for (name, rule) in std::iter::once(("default", &default))
            .chain(config.routes.iter().map(|(n, r)| (n.as_str(), r)))
        {
            if rule.public {
                continue;
            }
            if rule.methods.is_empty() {
                return Err(format!(
                    "rule `{name}`: list `methods`, or set `public: true`"
                ));
            }
            if let Some(m) = rule.methods.iter().find(|m| !configured.contains(m)) {
                return Err(format!(
                    "rule `{name}` accepts {m:?}, which is not configured"
                ));
            }
        }
        let outcomes = Counter::define(
            "outcomes",
            "Auth decisions by credential method (api_key, jwt, none) and outcome \
             (allowed, public, missing, invalid, forbidden, unavailable)",
            &["method", "outcome"],
        )?;
        Ok(Auth {
            default,
            routes: config.routes,
            consumer_header: config.consumer_header.map(|h| h.to_ascii_lowercase()),
            realm: config.realm,
            api_keys,
            jwt,
            outcomes,
        })
    }

    fn on_request(&mut self, req: &Request) -> Action {
        // The route is asked of the host only when some route has its own
        // rule: a host call saved per request otherwise.
        let route = match self.routes.is_empty() {
            true => None,
            false => req.get_context("route"),
        };
        let rule = match route {
            Some(route) => self.routes.get(&route).unwrap_or(&self.default),
            None => &self.default,
        }
        .clone();
        if rule.public {
            self.remove_vouched_headers(req);
            self.count(None, Outcome::Public);
            return Action::Continue;
        }

        let mut first_refusal = None;
        for method in &rule.methods {
            let outcome = match method {
                Method::ApiKey => self.check_api_key(req),
                Method::Jwt => self.check_jwt(req),
            };
            match outcome {
                Ok(who) => return self.admit(req, &rule, who),
                Err(Refusal::Missing) => {}
                Err(refusal) => {
                    if first_refusal.is_none() {
                        first_refusal = Some(refusal);
                    }
                }
            }
        }
        self.refuse(&rule, first_refusal.unwrap_or(Refusal::Missing))
    }
}

impl Jwt {
    fn new(config: JwtConfig) -> Result<Jwt, String> {
        let algorithms = match &config.algorithms {
            Some(names) => names
                .iter()
                .map(|n| {
                    Alg::parse(n).ok_or_else(|| format!("jwt.algorithms: `{n}` is not supported"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Alg::ALL.to_vec(),
        };
        let mut fixed = Vec::new();
        for (i, jwk) in config.keys.iter().enumerate() {
            fixed.push(Key::from_jwk(jwk).map_err(|e| format!("jwt.keys[{i}]: {e}"))?);
        }
        if let Some(doc) = &config.jwks {
            // The document itself, or its text (as `{"$file": ...}` gives).
            let doc = match doc {
                serde_json::Value::String(text) => {
                    serde_json::from_str(text).map_err(|e| format!("jwt.jwks is not JSON: {e}"))?
                }
                other => other.clone(),
            };
            fixed.extend(jwk::parse_set(&doc).map_err(|e| format!("jwt.jwks: {e}"))?);
        }
        if fixed.is_empty() && config.jwks_upstream.is_none() {
            return Err("jwt needs `keys`, `jwks` or `jwks_upstream`".into());
        }
        let keys = KeySet::new(fixed, config.jwks_upstream.clone());
        Ok(Jwt {
            config,
            algorithms,
            keys,
            verified: std::collections::HashSet::new(),
            verified_generation: 0,
        })
    }

    fn validate(&mut self, token: &str) -> Result<Authenticated, Refusal> {
        let parsed = jwt::parse(token, self.config.max_token_bytes, &self.algorithms)
            .map_err(Refusal::BadToken)?;
        let now = now_s();
        let (generation, keys) = self
            .keys
            .keys(parsed.kid.as_deref(), now)
            .map_err(|e| Refusal::KeysUnavailable(e.0))?;
        if generation != self.verified_generation {
            self.verified.clear();
            self.verified_generation = generation;
        }
        if !self.verified.contains(token) {
            jwt::verify_signature(&parsed, &keys).map_err(Refusal::BadToken)?;
            if self.verified.len() >= VERIFIED_CACHE {
                self.verified.clear();
            }
            self.verified.insert(token.to_string());
        }
        let rules = ClaimRules {
            now: i64::try_from(now).unwrap_or(i64::MAX),
            leeway: i64::try_from(self.config.leeway_s).unwrap_or(i64::MAX),
            issuer: self.config.issuer.as_deref(),
            audiences: &self.config.audiences,
            required: &self.config.required_claims,
        };
        jwt::check_claims(&parsed.claims, &rules).map_err(Refusal::BadToken)?;
        let consumer = match parsed.claims.get(&self.config.consumer_claim) {
            Some(value) => jwt::claim_text(value),
            None => {
                return Err(Refusal::BadToken(TokenError::MissingClaim(
                    self.config.consumer_claim.clone(),
                )));
            }
        };
        let headers = self
            .config
            .forward_claims
            .iter()
            .filter_map(|(claim, header)| {
                parsed
                    .claims
                    .get(claim)
                    .map(|v| (header.clone(), jwt::claim_text(v)))
            })
            .collect();
        Ok(Authenticated {
            consumer,
            method: Method::Jwt,
            scopes: jwt::scopes(&parsed.claims),
            headers,
        })
    }
}

/// The bearer token of `Authorization`, if it is one.
fn bearer(req: &Request) -> Option<String> {
    let value = req.header("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

impl Auth {
    fn count(&self, method: Option<Method>, outcome: Outcome) {
        self.outcomes.inc(&[method_label(method), outcome.label()]);
    }

    fn check_api_key(&self, req: &Request) -> Result<Authenticated, Refusal> {
        let Some(keys) = &self.api_keys else {
            return Err(Refusal::Missing);
        };
        let from_query = || {
            let name = keys.query.as_deref()?;
            req.query()?.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k == name).then(|| apikey::decode_query_value(v))
            })
        };
        let presented = req
            .header(&keys.header)
            .or_else(from_query)
            .ok_or(Refusal::Missing)?;
        let Consumer { id, scopes } = keys.find(&presented).ok_or(Refusal::BadKey)?.clone();
        Ok(Authenticated {
            consumer: id,
            method: Method::ApiKey,
            scopes,
            headers: Vec::new(),
        })
    }

    fn check_jwt(&mut self, req: &Request) -> Result<Authenticated, Refusal> {
        let Some(jwt) = &mut self.jwt else {
            return Err(Refusal::Missing);
        };
        let token = bearer(req).ok_or(Refusal::Missing)?;
        jwt.validate(&token)
    }

    /// Headers this plugin vouches for never come from the client: removed
    /// on public routes; on admitted requests `admit` replaces them.
    fn remove_vouched_headers(&self, req: &Request) {
        if let Some(header) = &self.consumer_header {
            req.remove_header(header);
        }
        if let Some(jwt) = &self.jwt {
            for header in jwt.config.forward_claims.values() {
                req.remove_header(header);
            }
        }
    }

    fn admit(&self, req: &Request, rule: &Rule, who: Authenticated) -> Action {
        let missing: Vec<&String> = rule
            .scopes
            .iter()
            .filter(|s| !who.scopes.contains(s))
            .collect();
        if !missing.is_empty() {
            self.count(Some(who.method), Outcome::Forbidden);
            let scope = rule.scopes.join(" ");
            let challenge = format!(
                r#"Bearer realm="{}", error="insufficient_scope", scope="{scope}""#,
                self.realm
            );
            let body =
                serde_json::json!({"error": "insufficient_scope", "required_scopes": rule.scopes});
            return Reply::json(403, &body)
                .header("www-authenticate", &challenge)
                .into();
        }
        self.count(Some(who.method), Outcome::Allowed);
        req.set_context("consumer", &who.consumer);
        req.set_context("auth.method", method_label(Some(who.method)));
        // One call sets the consumer header and every forwarded claim,
        // replacing whatever the client sent under those names; claims the
        // token lacks are removed.
        let mut vouched: Vec<(String, String)> = Vec::new();
        if let Some(header) = &self.consumer_header {
            vouched.push((header.clone(), who.consumer.clone()));
        }
        vouched.extend(who.headers.iter().cloned());
        if !vouched.is_empty() {
            let _ = req.set_headers(&vouched);
        }
        if let Some(jwt) = &self.jwt {
            for header in jwt.config.forward_claims.values() {
                if !vouched.iter().any(|(name, _)| name == header) {
                    req.remove_header(header);
                }
            }
        }
        self.remove_credential(req, who.method);
        Action::Continue
    }

    fn remove_credential(&self, req: &Request, method: Method) {
        match method {
            Method::Jwt => {
                if self.jwt.as_ref().is_some_and(|j| !j.config.keep_credential) {
                    req.remove_header("authorization");
                }
            }
            Method::ApiKey => {
                let Some(keys) = self.api_keys.as_ref().filter(|k| !k.keep_credential) else {
                    return;
                };
                req.remove_header(&keys.header);
                if let (Some(name), Some(query)) = (&keys.query, req.query()) {
                    let rest = apikey::without_param(&query, name);
                    let path = req.path();
                    let target = if rest.is_empty() {
                        path
                    } else {
                        format!("{path}?{rest}")
                    };
                    let _ = req.set_path_with_query(&target);
                }
            }
        }
    }

    fn challenge(&self, method: Method) -> String {
        match method {
            Method::Jwt => format!(r#"Bearer realm="{}""#, self.realm),
            Method::ApiKey => {
                let header = self
                    .api_keys
                    .as_ref()
                    .map_or("x-api-key", |k| k.header.as_str());
                format!(r#"ApiKey realm="{}", header="{header}""#, self.realm)
            }
        }
    }

    fn refuse(&self, rule: &Rule, refusal: Refusal) -> Action {
        let (method, outcome) = match &refusal {
            Refusal::Missing => (None, Outcome::Missing),
            Refusal::BadKey => (Some(Method::ApiKey), Outcome::Invalid),
            Refusal::BadToken(_) => (Some(Method::Jwt), Outcome::Invalid),
            Refusal::KeysUnavailable(_) => (Some(Method::Jwt), Outcome::Unavailable),
        };
        self.count(method, outcome);
        let (status, body, challenges) = match refusal {
            Refusal::Missing => (
                401,
                serde_json::json!({"error": "unauthorized", "message": "credentials required"}),
                rule.methods
                    .iter()
                    .map(|m| self.challenge(*m))
                    .collect::<Vec<_>>(),
            ),
            Refusal::BadKey => (
                401,
                serde_json::json!({"error": "invalid_api_key", "message": "unknown API key"}),
                vec![self.challenge(Method::ApiKey)],
            ),
            Refusal::BadToken(e) => {
                let description = e.describe();
                let challenge = format!(
                    r#"Bearer realm="{}", error="invalid_token", error_description="{description}""#,
                    self.realm
                );
                (
                    401,
                    serde_json::json!({"error": "invalid_token", "message": description}),
                    vec![challenge],
                )
            }
            Refusal::KeysUnavailable(why) => {
                weir_sdk::error!("JWT keys unavailable: {why}");
                (
                    503,
                    serde_json::json!({"error": "jwks_unavailable", "message": "token keys are unavailable"}),
                    Vec::new(),
                )
            }
        };
        let mut reply = Reply::json(status, &body);
        for challenge in challenges {
            reply = reply.header("www-authenticate", &challenge);
        }
        reply.into()
    }
}

export_plugin!(Auth);
