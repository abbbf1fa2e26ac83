//! The cache plugin's JSON config, parsed strictly and checked in `init`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::key::QuerySpec;

/// The whole config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The rule for requests whose route has none of its own (and requests
    /// with no route). Without it, only the routes listed are cached.
    #[serde(default)]
    pub default: Option<RuleConfig>,
    /// Rules by route name (the router's `route` context value).
    #[serde(default)]
    pub routes: BTreeMap<String, RuleConfig>,
    /// Response header saying what the cache did; `null` for none.
    #[serde(default = "default_status_header")]
    pub status_header: Option<String>,
    /// This cache's name in the `Cache-Status` response field (RFC 9211);
    /// `null` for no `Cache-Status`.
    #[serde(default = "default_cache_status")]
    pub cache_status: Option<String>,
}

/// How one route is cached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A fixed freshness, in seconds, for responses that state none but
    /// may be given one heuristically (RFC 9111 §4.2.2: heuristically
    /// cacheable statuses, or `public`), in place of the heuristic below.
    #[serde(default)]
    pub default_ttl_s: Option<u64>,
    /// The heuristic: this percentage of the time since `Last-Modified`.
    #[serde(default = "default_heuristic_percent")]
    pub heuristic_percent: u64,
    /// ... at most this many seconds.
    #[serde(default = "default_heuristic_max")]
    pub heuristic_max_s: u64,
    /// Bodies larger than this stream through uncached.
    #[serde(default = "default_max_object")]
    pub max_object_bytes: u64,
    /// How long an entry with validators is kept past its freshness, so it
    /// can be revalidated with a conditional request instead of fetched.
    #[serde(default = "default_keep_stale")]
    pub keep_stale_s: u64,
    /// Query parameters in the key: `"all"` (default), `"none"`, or a list.
    #[serde(default)]
    pub query: Option<QueryConfig>,
    /// Request headers whose values are part of the key.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Keep one entry per consumer (the `consumer` context value from auth).
    #[serde(default)]
    pub per_consumer: bool,
    /// Only these statuses are stored; by default any RFC 9111 §3 allows.
    #[serde(default)]
    pub statuses: Option<Vec<u16>>,
    /// Honour the client's `Cache-Control` (`no-store`, `no-cache`,
    /// `max-age`, `min-fresh`, `max-stale`, `only-if-cached`) and
    /// `Pragma: no-cache`.
    #[serde(default = "yes")]
    pub request_directives: bool,
    /// Seconds past freshness a response without `stale-while-revalidate`
    /// may be served while it is revalidated in the background.
    #[serde(default)]
    pub stale_while_revalidate_s: u64,
    /// Seconds past freshness a response without `stale-if-error` may be
    /// served when the upstream fails (5xx, or unreachable).
    #[serde(default)]
    pub stale_if_error_s: u64,
    /// Concurrent misses for one key send one request upstream; the others
    /// wait for its answer (at most `collapse_timeout_ms`).
    #[serde(default = "yes")]
    pub collapse: bool,
    /// How long a collapsed request waits before going upstream itself.
    #[serde(default = "default_collapse_timeout")]
    pub collapse_timeout_ms: u32,
    /// Responses with `Set-Cookie`: `"refuse"` (not stored), `"strip"`
    /// (stored without it; the client that caused the miss still gets its
    /// cookie) or `"store"` (stored and replayed to every client, as RFC
    /// 9111 §3 allows).
    #[serde(default)]
    pub set_cookie: SetCookie,
    /// Targeted cache-control fields (RFC 9213) this cache obeys, in order
    /// of preference; the first one present and valid replaces
    /// `Cache-Control` and `Expires`.
    #[serde(default = "default_targeted")]
    pub targeted_fields: Vec<String>,
}

/// `set_cookie`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetCookie {
    #[default]
    Refuse,
    Strip,
    Store,
}

/// `query`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum QueryConfig {
    /// `"all"` or `"none"`.
    Word(String),
    /// These parameter names.
    Names(Vec<String>),
}

/// A checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub default_ttl_s: Option<u64>,
    pub heuristic_percent: u64,
    pub heuristic_max_s: u64,
    pub max_object_bytes: u64,
    pub keep_stale_s: u64,
    pub query: QuerySpec,
    pub headers: Vec<String>,
    pub per_consumer: bool,
    pub statuses: Option<Vec<u16>>,
    pub request_directives: bool,
    pub stale_while_revalidate_s: u64,
    pub stale_if_error_s: u64,
    pub collapse: bool,
    pub collapse_timeout_ms: u32,
    pub set_cookie: SetCookie,
    pub targeted_fields: Vec<String>,
}

fn default_status_header() -> Option<String> {
    Some("x-cache".to_string())
}
fn default_cache_status() -> Option<String> {
    Some("weir".to_string())
}
fn default_heuristic_percent() -> u64 {
    10
}
fn default_heuristic_max() -> u64 {
    86_400
}
fn default_collapse_timeout() -> u32 {
    5_000
}
fn default_targeted() -> Vec<String> {
    vec!["cdn-cache-control".to_string()]
}
fn default_max_object() -> u64 {
    1024 * 1024
}
fn default_keep_stale() -> u64 {
    300
}
fn yes() -> bool {
    true
}

/// Whether `name` is an HTTP field name (a token).
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl RuleConfig {
    /// Check the rule; errors name the field.
    pub fn check(self) -> Result<Rule, String> {
        let query = match self.query {
            None => QuerySpec::All,
            Some(QueryConfig::Word(w)) if w == "all" => QuerySpec::All,
            Some(QueryConfig::Word(w)) if w == "none" => QuerySpec::None,
            Some(QueryConfig::Word(w)) => {
                return Err(format!(
                    "query: `{w}` is not \"all\", \"none\" or a list of names"
                ));
            }
            Some(QueryConfig::Names(names)) => QuerySpec::Only(names),
        };
        let mut headers = Vec::new();
        for name in self.headers {
            if !is_token(&name) {
                return Err(format!("headers: `{name}` is not a header name"));
            }
            headers.push(name.to_ascii_lowercase());
        }
        for status in self.statuses.iter().flatten() {
            if !(200..=999).contains(status) || matches!(status, 206 | 304) {
                return Err(format!(
                    "statuses: {status} cannot be stored (200-999, not 206 or 304)"
                ));
            }
        }
        if self.max_object_bytes == 0 {
            return Err("max_object_bytes must be greater than 0".into());
        }
        if self.heuristic_percent > 100 {
            return Err("heuristic_percent must be at most 100".into());
        }
        let mut targeted_fields = Vec::new();
        for name in self.targeted_fields {
            if !is_token(&name) {
                return Err(format!("targeted_fields: `{name}` is not a header name"));
            }
            targeted_fields.push(name.to_ascii_lowercase());
        }
        Ok(Rule {
            default_ttl_s: self.default_ttl_s,
            heuristic_percent: self.heuristic_percent,
            heuristic_max_s: self.heuristic_max_s,
            max_object_bytes: self.max_object_bytes,
            keep_stale_s: self.keep_stale_s,
            query,
            headers,
            per_consumer: self.per_consumer,
            statuses: self.statuses,
            request_directives: self.request_directives,
            stale_while_revalidate_s: self.stale_while_revalidate_s,
            stale_if_error_s: self.stale_if_error_s,
            collapse: self.collapse,
            collapse_timeout_ms: self.collapse_timeout_ms,
            set_cookie: self.set_cookie,
            targeted_fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> Result<Rule, String> {
        serde_json::from_str::<RuleConfig>(json)
            .map_err(|e| e.to_string())?
            .check()
    }

    #[test]
    fn defaults_and_query_forms() {
        let r = rule("{}").unwrap();
        assert_eq!(r.query, QuerySpec::All);
        assert_eq!((r.default_ttl_s, r.max_object_bytes), (None, 1 << 20));
        assert_eq!((r.heuristic_percent, r.heuristic_max_s), (10, 86_400));
        assert_eq!(r.statuses, None);
        assert_eq!(r.set_cookie, SetCookie::Refuse);
        assert!(r.collapse);
        assert_eq!(r.targeted_fields, vec!["cdn-cache-control"]);
        assert_eq!(rule(r#"{"query": "none"}"#).unwrap().query, QuerySpec::None);
        assert_eq!(
            rule(r#"{"query": ["id"]}"#).unwrap().query,
            QuerySpec::Only(vec!["id".into()])
        );
        assert_eq!(
            rule(r#"{"headers": ["Accept"]}"#).unwrap().headers,
            vec!["accept"]
        );
    }

    #[test]
    fn bad_rules_are_refused_naming_the_field() {
        for (json, expected) in [
            (r#"{"query": "some"}"#, "query"),
            (r#"{"headers": ["bad name"]}"#, "headers"),
            (r#"{"statuses": [206]}"#, "statuses"),
            (r#"{"statuses": [304]}"#, "statuses"),
            (r#"{"max_object_bytes": 0}"#, "max_object_bytes"),
            (r#"{"heuristic_percent": 101}"#, "heuristic_percent"),
            (r#"{"set_cookie": "keep"}"#, "unknown variant"),
            (r#"{"targeted_fields": ["a b"]}"#, "targeted_fields"),
            (r#"{"ttl": 5}"#, "unknown field"),
        ] {
            let err = rule(json).unwrap_err();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
