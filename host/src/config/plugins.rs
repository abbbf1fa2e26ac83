//! `[plugins.NAME]` in `weir.toml`: one plugin's grants, scope and failure
//! policy. A plugin without a table keeps the defaults: every capability
//! (as before grants existed, so existing gateways keep working), every
//! route and host, and `on_failure = "reject"`.

use serde::{Deserialize, Serialize};

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

/// `[plugins.NAME.quarantine]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuarantineConfig {
    /// Share of failed calls (0–1) that quarantines the plugin.
    pub failure_rate: f64,
    /// Fewest calls in a window before the rate counts.
    pub min_calls: u32,
    /// The window, in seconds.
    pub window_s: u64,
    /// First back-off before a probe, in seconds.
    pub backoff_s: u64,
    /// Longest back-off, in seconds.
    pub max_backoff_s: u64,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        QuarantineConfig {
            failure_rate: 0.5,
            min_calls: 20,
            window_s: 10,
            backoff_s: 5,
            max_backoff_s: 60,
        }
    }
}

impl QuarantineConfig {
    /// Check the values; `name` is the plugin's table.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            return Err(format!(
                "[plugins.{name}.quarantine] failure_rate must be above 0 and at most 1"
            ));
        }
        if self.window_s == 0 || self.backoff_s == 0 || self.max_backoff_s < self.backoff_s {
            return Err(format!(
                "[plugins.{name}.quarantine] window_s and backoff_s must be positive, \
                 and max_backoff_s at least backoff_s"
            ));
        }
        Ok(())
    }
}

/// `[plugins.NAME.canary]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CanaryConfig {
    /// Share of requests (0–1) the canary gets.
    pub share: f64,
    /// What keeps a client on one version: `client_ip`, or `header:NAME`
    /// (the client address when the header is absent).
    pub sticky: String,
    /// Roll back when the canary's failure rate passes the stable
    /// version's by more than this (0–1).
    pub rollback_margin: f64,
    /// Fewest canary calls before it is judged.
    pub min_calls: u64,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig {
            share: 0.1,
            sticky: "client_ip".into(),
            rollback_margin: 0.05,
            min_calls: 20,
        }
    }
}

impl CanaryConfig {
    /// Check the values; `name` is the plugin's table.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.share) || !(0.0..=1.0).contains(&self.rollback_margin) {
            return Err(format!(
                "[plugins.{name}.canary] share and rollback_margin are between 0 and 1"
            ));
        }
        Sticky::parse(&self.sticky).map(|_| ()).ok_or_else(|| {
            format!(
                "[plugins.{name}.canary] sticky = {:?}: use \"client_ip\" or \"header:NAME\"",
                self.sticky
            )
        })
    }
}

/// What keeps a client on one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    /// The client's IP address.
    ClientIp,
    /// A request header (lower case).
    Header(String),
}

impl Sticky {
    /// `client_ip` or `header:NAME`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Sticky> {
        match text.split_once(':') {
            None if text == "client_ip" => Some(Sticky::ClientIp),
            Some(("header", name)) if http::HeaderName::try_from(name).is_ok() => {
                Some(Sticky::Header(name.to_ascii_lowercase()))
            }
            _ => None,
        }
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
