//! `[plugins.NAME]` in `weir.toml`: one plugin's grants, scope and failure
//! policy. A plugin without a table keeps the defaults: every capability
//! (as before grants existed, so existing gateways keep working), every
//! route and host, and `on_failure = "reject"`.

use serde::{Deserialize, Serialize};

use super::canary::CanaryConfig;
use super::health::QuarantineConfig;

/// `[plugins.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginPolicy {
    /// What the plugin may use, e.g. `["log", "kv", "outbound:users,billing"]`;
    /// absent: everything.
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// The plugin's role in the chain; `auth` forbids `on_failure = "skip"`.
    #[serde(default)]
    pub role: Option<PluginRole>,
    /// Route names (the `route` the router sets in the context) the plugin
    /// runs for; absent: all. A route-scoped plugin ordered before the
    /// router never runs (no route is known yet).
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    /// Host names (the request's `Host`, without the port, any case) the
    /// plugin runs for; absent: all.
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    /// What a failure of this plugin (trap, deadline, memory, bad answer)
    /// does to the request.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Quarantine after repeated failures (`[plugins.NAME.quarantine]`);
    /// absent: never by itself (an operator still can).
    #[serde(default)]
    pub quarantine: Option<QuarantineConfig>,
    /// How a canary `NAME.canary.wasm` is tried (`[plugins.NAME.canary]`);
    /// absent: the defaults (10% of clients, sticky by address).
    #[serde(default)]
    pub canary: Option<CanaryConfig>,
}

/// `on_failure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// The request gets a 500 naming the plugin (fail closed).
    #[default]
    Reject,
    /// The request goes on as if the plugin had returned `continue`; the
    /// failure is counted and logged (fail open).
    Skip,
}

/// `role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginRole {
    /// Decides who may pass: failing open would let everyone through.
    Auth,
}

impl PluginPolicy {
    /// Check what can be checked without the plugin: `name` is the table's
    /// key.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if self.on_failure == OnFailure::Skip && self.role == Some(PluginRole::Auth) {
            return Err(format!(
                "[plugins.{name}] has role = \"auth\" and on_failure = \"skip\": \
                 a failing auth plugin would let every request through; use \"reject\""
            ));
        }
        if let Some(quarantine) = &self.quarantine {
            quarantine.validate(name)?;
        }
        if let Some(canary) = &self.canary {
            canary.validate(name)?;
        }
        for (key, list) in [("routes", &self.routes), ("hosts", &self.hosts)] {
            if list.as_ref().is_some_and(|l| l.is_empty()) {
                return Err(format!(
                    "[plugins.{name}] {key} is empty: the plugin would never run; \
                     remove the key to run it everywhere"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> PluginPolicy {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_are_everything_everywhere_fail_closed() {
        let p = parse("");
        assert_eq!(p, PluginPolicy::default());
        assert_eq!(p.on_failure, OnFailure::Reject);
        assert!(p.capabilities.is_none() && p.routes.is_none() && p.hosts.is_none());
    }

    #[test]
    fn skip_is_refused_for_auth() {
        let p = parse("role = \"auth\"\non_failure = \"skip\"");
        let error = p.validate("60-auth").unwrap_err();
        assert!(
            error.contains("[plugins.60-auth]") && error.contains("skip"),
            "{error}"
        );
        assert!(parse("on_failure = \"skip\"").validate("x").is_ok());
        assert!(parse("routes = []").validate("x").is_err());
    }

    #[test]
    fn unknown_keys_and_values_are_refused() {
        assert!(toml::from_str::<PluginPolicy>("rotues = [\"a\"]").is_err());
        assert!(toml::from_str::<PluginPolicy>("on_failure = \"ignore\"").is_err());
    }
}
