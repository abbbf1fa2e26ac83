//! The CORS plugin's JSON config, parsed strictly: every error names the
//! field (`routes.orders.origins[1]: ...`), so `init` can say where.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, de};
use serde_json::Value;

/// The whole config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The rule for requests whose route has none of its own, a
    /// [`RuleConfig`]; parsed by [`rule`] so errors name it.
    #[serde(default, deserialize_with = "default_rule")]
    pub default: Option<Value>,
    /// Rules by route name (the router's `route` context value); each
    /// replaces `default` entirely for its route.
    #[serde(default, deserialize_with = "routes")]
    pub routes: BTreeMap<String, Value>,
}

/// Parse the rule at `at` (`default`, `routes.NAME`), naming it in errors.
pub fn rule(at: &str, value: Value) -> Result<RuleConfig, String> {
    RuleConfig::deserialize(value).map_err(|e| format!("{at}: {e}"))
}

/// One rule: what a cross-origin caller may do on the routes it covers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Allowed origins: exact (`https://app.example.com`), patterns
    /// (`https://*.example.com`, `http://localhost:*`), or `["*"]`. Empty:
    /// the rule is off and the plugin leaves these routes alone.
    #[serde(default, deserialize_with = "origins")]
    pub origins: Vec<String>,
    /// Methods a preflight may ask for, besides GET, HEAD and POST (always
    /// allowed by browsers); `["*"]` allows whatever is asked.
    #[serde(default, deserialize_with = "methods")]
    pub methods: Vec<String>,
    /// Request headers a preflight may ask for; `["*"]` allows whatever
    /// is asked.
    #[serde(default, deserialize_with = "headers")]
    pub headers: Vec<String>,
    /// Response headers the page's script may read, besides the
    /// CORS-safelisted ones; `["*"]` exposes all.
    #[serde(default, deserialize_with = "expose_headers")]
    pub expose_headers: Vec<String>,
    /// Let the page send cookies and HTTP authentication and read the
    /// answer (`Access-Control-Allow-Credentials: true`).
    #[serde(default, deserialize_with = "allow_credentials")]
    pub allow_credentials: bool,
    /// Seconds a browser may cache a preflight's answer; absent: no
    /// `Access-Control-Max-Age`, and browsers keep it 5 s.
    #[serde(default, deserialize_with = "max_age")]
    pub max_age: Option<u32>,
}

/// `deserialize_with` functions that put the field's name in front of a
/// type error (serde's own message names the type, not the field).
macro_rules! named {
    ($($name:ident),*) => {$(
        fn $name<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
            T::deserialize(d).map_err(|e| de::Error::custom(format!("`{}`: {e}", stringify!($name))))
        }
    )*};
}

named!(
    default_rule,
    routes,
    origins,
    methods,
    headers,
    expose_headers,
    allow_credentials,
    max_age
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of parsing `json` and every rule in it.
    fn error(json: &str) -> String {
        let config = match serde_json::from_str::<Config>(json) {
            Ok(config) => config,
            Err(e) => return e.to_string(),
        };
        let rules = config.default.map(|v| rule("default", v));
        let routes = config
            .routes
            .into_iter()
            .map(|(name, v)| rule(&format!("routes.{name}"), v));
        match rules.into_iter().chain(routes).find_map(Result::err) {
            Some(e) => e,
            None => panic!("{json} parsed"),
        }
    }

    #[test]
    fn an_empty_config_has_no_rules() {
        let config: Config = serde_json::from_str("{}").unwrap();
        assert!(config.default.is_none() && config.routes.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let unknown = error(r#"{"default": {"origin": []}}"#);
        assert!(
            unknown.starts_with("default: unknown field `origin`"),
            "{unknown}"
        );
        let typed = error(r#"{"routes": {"a": {"origins": "x"}}}"#);
        assert!(
            typed.starts_with("routes.a: `origins`: invalid type"),
            "{typed}"
        );
        assert!(error(r#"{"default": {"max_age": -1}}"#).contains("default: `max_age`"));
        let flag = error(r#"{"default": {"allow_credentials": "yes"}}"#);
        assert!(flag.contains("`allow_credentials`"), "{flag}");
        assert!(error(r#"{"routes": []}"#).contains("`routes`"));
        assert!(error(r#"{"cors": {}}"#).contains("unknown field `cors`"));
    }
}
