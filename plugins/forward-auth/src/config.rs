//! The forward-auth plugin's JSON config, parsed strictly and checked in
//! `init`, so a mistake stops the load with the field's name instead of
//! turning into a per-request failure.

use serde::Deserialize;

/// The whole config, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The `[upstreams.NAME]` of `weir.toml` that answers the checks.
    pub upstream: String,
    /// The path (and query) called on it.
    #[serde(default = "default_path")]
    pub path: String,
    /// The method of the check.
    #[serde(default = "default_method")]
    pub method: String,
    /// Client request headers sent along (all their values).
    #[serde(default)]
    pub request_headers: Vec<String>,
    /// Headers of a 2xx answer copied onto the request to the upstream.
    #[serde(default)]
    pub response_headers: Vec<String>,
    /// Longest wait for the auth service.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u32,
    /// Only these routes are checked; absent: every request.
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    /// Routes never checked (public), even when `routes` names them.
    #[serde(default)]
    pub skip_routes: Vec<String>,
    /// How long an allowing decision is reused from `kv`; 0: never.
    #[serde(default)]
    pub cache_ttl_ms: u64,
}

fn default_path() -> String {
    "/".to_string()
}

fn default_method() -> String {
    "GET".to_string()
}

fn default_timeout() -> u32 {
    500
}

/// The config, checked and normalised (header names lower-case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub upstream: String,
    pub path: String,
    pub method: String,
    pub request_headers: Vec<String>,
    pub response_headers: Vec<String>,
    pub timeout_ms: u32,
    pub routes: Option<Vec<String>>,
    pub skip_routes: Vec<String>,
    pub cache_ttl_ms: u64,
}

/// Headers that describe one connection, never an end-to-end fact: not
/// sent to, nor copied from, the auth service (RFC 9110 §7.6.1), with the
/// framing the host sets itself.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// A token (RFC 9110 §5.6.2): what a header name or a method is made of.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn header_names(field: &str, names: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let name = name.to_ascii_lowercase();
        if !is_token(&name) {
            return Err(format!("{field}[{i}]: `{name}` is not a header name"));
        }
        if HOP_BY_HOP.contains(&name.as_str()) || name == "host" {
            return Err(format!(
                "{field}[{i}]: `{name}` belongs to one connection and cannot be passed on"
            ));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

impl Settings {
    /// Check `config`.
    pub fn from_config(config: Config) -> Result<Settings, String> {
        if config.upstream.trim().is_empty() {
            return Err("upstream: name the `[upstreams.NAME]` of the auth service".into());
        }
        if !config.path.starts_with('/') {
            return Err(format!("path: `{}` must start with `/`", config.path));
        }
        let method = config.method.to_ascii_uppercase();
        if !is_token(&method) {
            return Err(format!("method: `{}` is not an HTTP method", config.method));
        }
        if config.timeout_ms == 0 {
            return Err("timeout_ms: must be greater than 0".into());
        }
        let request_headers = header_names("request_headers", &config.request_headers)?;
        // Checked against the list as written, so the index is the user's.
        for (i, name) in config.request_headers.iter().enumerate() {
            let name = name.to_ascii_lowercase();
            if crate::call::FORWARDED.contains(&name.as_str()) {
                return Err(format!(
                    "request_headers[{i}]: `{name}` is set by the plugin itself"
                ));
            }
        }
        Ok(Settings {
            upstream: config.upstream,
            path: config.path,
            method,
            request_headers,
            response_headers: header_names("response_headers", &config.response_headers)?,
            timeout_ms: config.timeout_ms,
            routes: config.routes,
            skip_routes: config.skip_routes,
            cache_ttl_ms: config.cache_ttl_ms,
        })
    }

    /// Whether the route must be known to decide if a request is checked.
    pub fn needs_route(&self) -> bool {
        self.routes.is_some() || !self.skip_routes.is_empty()
    }

    /// What the plugin does on `route`.
    pub fn scope(&self, route: Option<&str>) -> Scope {
        let listed = |list: &[String]| route.is_some_and(|r| list.iter().any(|l| l == r));
        if listed(&self.skip_routes) {
            return Scope::Public;
        }
        match &self.routes {
            Some(routes) if !listed(routes) => Scope::Untouched,
            _ => Scope::Checked,
        }
    }
}

/// What the plugin does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Ask the auth service.
    Checked,
    /// A `skip_routes` route: no check, but the headers the auth service
    /// vouches for are removed, so a client cannot forge them there.
    Public,
    /// A route outside `routes`: the plugin leaves the request alone.
    Untouched,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Result<Settings, String> {
        let config: Config = serde_json::from_value(json).map_err(|e| e.to_string())?;
        Settings::from_config(config)
    }

    #[test]
    fn defaults_are_get_on_the_root_within_500_ms_without_cache() {
        let s = settings(serde_json::json!({"upstream": "auth"})).unwrap();
        assert_eq!((s.method.as_str(), s.path.as_str()), ("GET", "/"));
        assert_eq!((s.timeout_ms, s.cache_ttl_ms), (500, 0));
        assert!(s.request_headers.is_empty() && s.response_headers.is_empty());
        assert!(!s.needs_route());
        assert_eq!(s.scope(None), Scope::Checked);
        assert_eq!(s.scope(Some("any")), Scope::Checked);
    }

    #[test]
    fn header_names_are_lower_cased_and_deduplicated() {
        let s = settings(serde_json::json!({
            "upstream": "auth", "method": "post",
            "request_headers": ["Authorization", "authorization", "Cookie"],
            "response_headers": ["X-User-Id"]
        }))
        .unwrap();
        assert_eq!(s.method, "POST");
        assert_eq!(s.request_headers, ["authorization", "cookie"]);
        assert_eq!(s.response_headers, ["x-user-id"]);
    }

    #[test]
    fn mistakes_are_refused_naming_the_field() {
        let err = |json| settings(json).unwrap_err();
        assert!(err(serde_json::json!({})).contains("missing field `upstream`"));
        assert!(err(serde_json::json!({"upstream": " "})).starts_with("upstream:"));
        assert!(err(serde_json::json!({"upstream": "a", "path": "verify"})).starts_with("path:"));
        assert!(err(serde_json::json!({"upstream": "a", "method": "GE T"})).starts_with("method:"));
        assert!(
            err(serde_json::json!({"upstream": "a", "timeout_ms": 0})).starts_with("timeout_ms:")
        );
        assert_eq!(
            err(serde_json::json!({"upstream": "a", "request_headers": ["ok", "bad name"]})),
            "request_headers[1]: `bad name` is not a header name"
        );
        assert!(
            err(serde_json::json!({"upstream": "a", "response_headers": ["Transfer-Encoding"]}))
                .starts_with("response_headers[0]: `transfer-encoding` belongs to one connection")
        );
        assert!(
            err(serde_json::json!({"upstream": "a", "cache_ttl": 5})).contains("unknown field")
        );
        assert_eq!(
            err(serde_json::json!({"upstream": "a", "request_headers": ["X-Forwarded-For"]})),
            "request_headers[0]: `x-forwarded-for` is set by the plugin itself"
        );
    }

    #[test]
    fn routes_and_skip_routes_choose_what_is_checked() {
        let s = settings(serde_json::json!({
            "upstream": "a", "routes": ["admin", "orders"], "skip_routes": ["orders"]
        }))
        .unwrap();
        assert!(s.needs_route());
        assert_eq!(s.scope(Some("admin")), Scope::Checked);
        // skip_routes wins over routes.
        assert_eq!(s.scope(Some("orders")), Scope::Public);
        assert_eq!(s.scope(Some("users")), Scope::Untouched);
        assert_eq!(s.scope(None), Scope::Untouched);
        let s = settings(serde_json::json!({"upstream": "a", "skip_routes": ["health"]})).unwrap();
        assert_eq!(s.scope(Some("health")), Scope::Public);
        assert_eq!(s.scope(Some("users")), Scope::Checked);
        assert_eq!(s.scope(None), Scope::Checked);
    }

    #[test]
    fn the_sample_config_checks_no_route() {
        let s = settings(serde_json::from_str(include_str!("../sample.json")).unwrap()).unwrap();
        assert_eq!(s.scope(None), Scope::Untouched);
        assert_eq!(s.scope(Some("user")), Scope::Untouched);
        assert_eq!(s.scope(Some("orders")), Scope::Untouched);
    }
}
