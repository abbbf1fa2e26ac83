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
}

/// How one route is cached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Freshness, in seconds, of responses that state none (no `max-age`,
    /// `s-maxage` or `Expires`); 0 stores them only to revalidate.
    #[serde(default = "default_ttl")]
    pub default_ttl_s: u64,
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
    /// Statuses that may be stored.
    #[serde(default = "default_statuses")]
    pub statuses: Vec<u16>,
    /// Honour the client's `Cache-Control` (`no-store`, `no-cache`,
    /// `max-age`, `min-fresh`, `only-if-cached`) and `Pragma: no-cache`.
    #[serde(default = "yes")]
    pub request_directives: bool,
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
    pub default_ttl_s: u64,
    pub max_object_bytes: u64,
    pub keep_stale_s: u64,
    pub query: QuerySpec,
    pub headers: Vec<String>,
    pub per_consumer: bool,
    pub statuses: Vec<u16>,
    pub request_directives: bool,
}

/// RFC 9111 §4.2.2's heuristically cacheable statuses, without 206 (this
/// cache does not store partial content).
const CACHEABLE: &[u16] = &[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

fn default_status_header() -> Option<String> {
    Some("x-cache".to_string())
}
fn default_ttl() -> u64 {
    60
}
fn default_max_object() -> u64 {
    1024 * 1024
}
fn default_keep_stale() -> u64 {
    300
}
fn default_statuses() -> Vec<u16> {
    CACHEABLE.to_vec()
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
        for status in &self.statuses {
            if !(200..=599).contains(status) || matches!(status, 206 | 304) {
                return Err(format!(
                    "statuses: {status} cannot be stored (200-599, not 206 or 304)"
                ));
            }
        }
        if self.max_object_bytes == 0 {
            return Err("max_object_bytes must be greater than 0".into());
        }
        Ok(Rule {
            default_ttl_s: self.default_ttl_s,
            max_object_bytes: self.max_object_bytes,
            keep_stale_s: self.keep_stale_s,
            query,
            headers,
            per_consumer: self.per_consumer,
            statuses: self.statuses,
            request_directives: self.request_directives,
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
        assert_eq!((r.default_ttl_s, r.max_object_bytes), (60, 1 << 20));
        assert!(r.statuses.contains(&200) && !r.statuses.contains(&206));
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
            (r#"{"ttl": 5}"#, "unknown field"),
        ] {
            let err = rule(json).unwrap_err();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
