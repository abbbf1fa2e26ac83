//! The router's JSON config, parsed strictly: unknown keys are errors.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Routes; among equally specific matches the earlier one wins.
    pub routes: Vec<RouteConfig>,
}

/// One route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name, put in the request context as `route`.
    pub name: String,
    /// What the request must look like.
    #[serde(rename = "match")]
    pub matcher: MatchConfig,
    /// The `[upstreams.NAME]` to send matching requests to. Without one the
    /// route only names the request (for auth and rate limits) and a later
    /// plugin answers it, e.g. `aggregate`.
    #[serde(default)]
    pub upstream: Option<String>,
    /// New path, with `{param}` / `{*rest}` / regex `{1}` or `{name}` captures.
    #[serde(default)]
    pub rewrite: Option<String>,
    /// Remove the matched `path_prefix` from the path.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Header edits applied to matching requests.
    #[serde(default)]
    pub request_headers: HeaderEdits,
}

/// Conditions; all given ones must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Exact path, or a template with `{param}` segments and a final `{*rest}`.
    pub path: Option<String>,
    /// Path prefix, on segment boundaries (`/api` matches `/api/x`, not `/apix`).
    pub path_prefix: Option<String>,
    /// Regular expression over the whole path (anchor it yourself).
    pub path_regex: Option<String>,
    /// Allowed methods; any when absent.
    pub methods: Option<Vec<String>>,
    /// Host, exact (`api.example.com`) or wildcard (`*.example.com`).
    pub host: Option<String>,
    /// Headers that must have exactly these values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameters that must have exactly these values.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
}

/// Request-header edits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderEdits {
    /// Appended, keeping existing values.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Replacing existing values.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Removed.
    #[serde(default)]
    pub remove: Vec<String>,
}
