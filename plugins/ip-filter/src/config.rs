//! The ip-filter plugin's JSON config, parsed strictly: a typo in a key is
//! an error at load, never a rule silently left out.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The rule for requests whose route has none of its own, and for
    /// requests with no route.
    #[serde(default)]
    pub default: RuleConfig,
    /// Rules by route name (the router's `route` context value); each
    /// replaces `default` for its route.
    #[serde(default)]
    pub routes: BTreeMap<String, RuleConfig>,
}

/// One rule: addresses or CIDRs, IPv4 or IPv6.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// When not empty, only these may pass.
    #[serde(default)]
    pub allow: Vec<String>,
    /// These never pass, even when also allowed.
    #[serde(default)]
    pub deny: Vec<String>,
}
