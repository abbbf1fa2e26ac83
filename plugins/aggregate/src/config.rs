//! The aggregate plugin's config.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Composite endpoints this plugin answers.
    pub endpoints: Vec<EndpointConfig>,
}

/// One composite endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Path template, e.g. `/users/{id}/summary`.
    pub path: String,
    /// Method (default `GET`).
    #[serde(default = "get")]
    pub method: String,
    /// The router's route for this path (its `route` context value). When
    /// set, the endpoint answers only requests the router sent to it; when
    /// every endpoint names one, the gateway calls this plugin on those
    /// routes only, and no other request pays for it.
    #[serde(default)]
    pub route: Option<String>,
    /// The calls, by name; each name is a key of the result.
    pub calls: BTreeMap<String, CallConfig>,
    /// Request headers copied to every call; no others are.
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// JSON pointers narrowing a call's result, by call name.
    #[serde(default)]
    pub select: BTreeMap<String, Vec<String>>,
    /// Largest response body accepted from a call.
    #[serde(default = "max_body")]
    pub max_body_bytes: usize,
}

/// One upstream call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallConfig {
    /// The `[upstreams.NAME]` to call.
    pub upstream: String,
    /// Path and query, with `{capture}` from the request path and
    /// `{call.field}` from an earlier call's JSON.
    pub path: String,
    /// Method (default `GET`).
    #[serde(default = "get")]
    pub method: String,
    /// A failure leaves `null` and an `_errors` entry instead of failing the
    /// request.
    #[serde(default)]
    pub optional: bool,
    /// Give up after this long (capped by the upstream's own timeout).
    #[serde(default)]
    pub timeout_ms: Option<u32>,
    /// Calls that must finish first (also implied by `{call.field}`).
    #[serde(default)]
    pub after: After,
}

/// `after`: one call name or several.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum After {
    /// None.
    #[default]
    None,
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl After {
    /// The names.
    pub fn names(&self) -> Vec<String> {
        match self {
            After::None => Vec::new(),
            After::One(name) => vec![name.clone()],
            After::Many(names) => names.clone(),
        }
    }
}

fn get() -> String {
    "GET".to_string()
}

fn max_body() -> usize {
    1024 * 1024
}
