//! What a `[plugins.NAME] capabilities` list means: the grantable
//! capabilities (one per `weir:plugin` capability interface) and the
//! [`Grants`] a list parses into. Parsed with the configuration, so a bad
//! entry is a config error naming it; `governance/grants.rs` enforces them.

use std::collections::BTreeSet;

use super::PluginPolicy;

/// One grantable capability: a `weir:plugin` interface of that name (in
/// every contract version), ordered as messages list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// `log`: lines in the gateway's log.
    Log,
    /// `kv`: the host's key-value store.
    Kv,
    /// `rate`: the host's rate limiter.
    Rate,
    /// `crypto`: signature verification.
    Crypto,
    /// `metrics`: plugin-defined metrics.
    Metrics,
    /// `outbound`: HTTP calls to upstreams.
    Outbound,
}

impl Capability {
    /// Every capability, in the order messages list them.
    pub const ALL: [Capability; 6] = [
        Capability::Log,
        Capability::Kv,
        Capability::Rate,
        Capability::Crypto,
        Capability::Metrics,
        Capability::Outbound,
    ];

    /// The grant's name, which is also the interface's.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Outbound => "outbound",
            Capability::Rate => "rate",
            Capability::Kv => "kv",
            Capability::Crypto => "crypto",
            Capability::Metrics => "metrics",
        }
    }

    fn from_name(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The capability a component import stands for: `weir:plugin/kv@0.5.0`
    /// (or any older version's) is `kv`. `None` for the core interfaces and for other packages.
    pub fn of_import(import: &str) -> Option<Capability> {
        let interface = import.strip_prefix("weir:plugin/")?;
        let interface = interface.split('@').next().unwrap_or(interface);
        Capability::from_name(interface)
    }
}

/// Which upstreams `outbound` may call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Upstreams {
    /// Any configured upstream (`"outbound"`).
    Any,
    /// Only these (`"outbound:users,billing"`).
    Only(BTreeSet<String>),
}

/// What one plugin may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    capabilities: BTreeSet<Capability>,
    upstreams: Upstreams,
    /// Whether a `capabilities` list set these (else: the default, all).
    listed: bool,
}

impl Default for Grants {
    fn default() -> Self {
        Grants::all()
    }
}

impl Grants {
    /// Everything: the default for a plugin without a `capabilities` list.
    pub fn all() -> Grants {
        Grants {
            capabilities: Capability::ALL.into_iter().collect(),
            upstreams: Upstreams::Any,
            listed: false,
        }
    }

    /// The grants of plugin `plugin` under `policy` (its `[plugins.NAME]`
    /// table, if any); `is_upstream` says which upstreams exist.
    pub fn from_policy(
        plugin: &str,
        policy: Option<&PluginPolicy>,
        is_upstream: impl Fn(&str) -> bool,
    ) -> Result<Grants, String> {
        match policy.and_then(|p| p.capabilities.as_deref()) {
            Some(list) => Grants::parse(plugin, list, is_upstream),
            None => Ok(Grants::all()),
        }
    }

    /// Parse a `capabilities` list. Errors name the table, the key and the
    /// entry at fault.
    pub fn parse(
        plugin: &str,
        list: &[String],
        is_upstream: impl Fn(&str) -> bool,
    ) -> Result<Grants, String> {
        let at =
            |entry: &str, why: String| format!("[plugins.{plugin}] capabilities: {entry:?} {why}");
        let mut capabilities = BTreeSet::new();
        // Any once a bare "outbound" is seen; else the union of the lists.
        let mut any_upstream = false;
        let mut only = BTreeSet::new();
        for entry in list {
            let entry = entry.trim();
            if let Some(names) = entry.strip_prefix("outbound:") {
                let names: Vec<&str> = names.split(',').map(str::trim).collect();
                if names.iter().any(|n| n.is_empty()) {
                    return Err(at(
                        entry,
                        "has an empty upstream name; use \"outbound\" for any upstream".into(),
                    ));
                }
                if let Some(unknown) = names.iter().find(|n| !is_upstream(n)) {
                    return Err(at(
                        entry,
                        format!("names the upstream \"{unknown}\", which is not in [upstreams]"),
                    ));
                }
                only.extend(names.into_iter().map(str::to_string));
                capabilities.insert(Capability::Outbound);
            } else if let Some(capability) = Capability::from_name(entry) {
                any_upstream |= capability == Capability::Outbound;
                capabilities.insert(capability);
            } else {
                return Err(at(
                    entry,
                    "is not a capability (known: log, kv, rate, crypto, metrics, \
                     outbound, outbound:UPSTREAM,...)"
                        .into(),
                ));
            }
        }
        Ok(Grants {
            capabilities,
            upstreams: match any_upstream {
                true => Upstreams::Any,
                false => Upstreams::Only(only),
            },
            listed: true,
        })
    }

    /// Whether the plugin may import `capability`.
    pub fn allows(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// Whether the plugin's `outbound` calls may reach `upstream`.
    pub fn allows_upstream(&self, upstream: &str) -> bool {
        self.allows(Capability::Outbound)
            && match &self.upstreams {
                Upstreams::Any => true,
                Upstreams::Only(names) => names.contains(upstream),
            }
    }

    /// Refuse a component whose `imports` (import names) include a
    /// capability interface these grants do not; the error names the
    /// interfaces and the grants to add. Returns the capabilities imported.
    pub fn check_imports<'a>(
        &self,
        plugin: &str,
        imports: impl IntoIterator<Item = &'a str>,
    ) -> Result<BTreeSet<Capability>, String> {
        let mut imported = BTreeSet::new();
        let mut refused: Vec<(&str, Capability)> = Vec::new();
        for import in imports {
            if let Some(capability) = Capability::of_import(import) {
                imported.insert(capability);
                if !self.allows(capability) {
                    refused.push((import, capability));
                }
            }
        }
        if refused.is_empty() {
            return Ok(imported);
        }
        refused.sort_by_key(|(import, capability)| (*capability, *import));
        let interfaces: Vec<&str> = refused.iter().map(|(import, _)| *import).collect();
        let mut missing: Vec<String> = refused
            .iter()
            .map(|(_, c)| format!("{:?}", c.name()))
            .collect();
        missing.dedup();
        Err(format!(
            "imports {}, which its capability grant does not include (grants: {}): \
             add {} to [plugins.{plugin}] capabilities in weir.toml",
            interfaces.join(" and "),
            self.describe(plugin),
            missing.join(", "),
        ))
    }

    /// The grants as `weir check` shows them: `log, kv, outbound:users`, or
    /// `all (no [plugins.NAME] capabilities)`.
    pub fn describe(&self, plugin: &str) -> String {
        if !self.listed {
            return format!("all (no [plugins.{plugin}] capabilities)");
        }
        let names: Vec<String> = Capability::ALL
            .into_iter()
            .filter(|c| self.allows(*c))
            .map(|c| match (c, &self.upstreams) {
                (Capability::Outbound, Upstreams::Only(names)) => {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    format!("outbound:{}", names.join(","))
                }
                _ => c.name().to_string(),
            })
            .collect();
        match names.is_empty() {
            true => "none".to_string(),
            false => names.join(", "),
        }
    }
}

/// Capabilities as a list for messages: `log, kv, crypto` (`none` if empty).
pub fn list(capabilities: &BTreeSet<Capability>) -> String {
    let names: Vec<&str> = Capability::ALL
        .into_iter()
        .filter(|c| capabilities.contains(c))
        .map(Capability::name)
        .collect();
    match names.is_empty() {
        true => "none".to_string(),
        false => names.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Grants, String> {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        Grants::parse("60-auth", &list, |u| ["users", "billing"].contains(&u))
    }

    #[test]
    fn names_map_to_capabilities_and_upstreams() {
        let g = parse(&["log", "kv", "outbound:users, billing"]).unwrap();
        assert!(g.allows(Capability::Log) && g.allows(Capability::Kv));
        assert!(g.allows(Capability::Outbound) && !g.allows(Capability::Rate));
        assert!(g.allows_upstream("users") && g.allows_upstream("billing"));
        assert!(!g.allows_upstream("orders"));
        assert_eq!(g.describe("60-auth"), "log, kv, outbound:billing,users");
        let any = parse(&["outbound:users", "outbound"]).unwrap();
        assert!(any.allows_upstream("orders"));
        assert_eq!(any.describe("x"), "outbound");
        assert_eq!(parse(&[]).unwrap().describe("x"), "none");
        assert!(!parse(&["log"]).unwrap().allows_upstream("users"));
    }

    #[test]
    fn no_list_grants_everything() {
        let g = Grants::from_policy("x", None, |_| false).unwrap();
        assert_eq!(g, Grants::all());
        assert!(Capability::ALL.iter().all(|c| g.allows(*c)));
        assert!(g.allows_upstream("anything"));
        assert_eq!(g.describe("x"), "all (no [plugins.x] capabilities)");
        let policy = PluginPolicy::default();
        assert_eq!(Grants::from_policy("x", Some(&policy), |_| false), Ok(g));
    }

    #[test]
    fn bad_entries_are_named() {
        let e = parse(&["log", "filesystem"]).unwrap_err();
        assert!(
            e.contains("[plugins.60-auth] capabilities") && e.contains("\"filesystem\""),
            "{e}"
        );
        let e = parse(&["outbound:users,orders"]).unwrap_err();
        assert!(e.contains("\"orders\"") && e.contains("[upstreams]"), "{e}");
        assert!(parse(&["outbound:"]).is_err());
        assert!(parse(&["outbound:users,"]).is_err());
        assert!(parse(&["Log"]).is_err());
    }

    #[test]
    fn imports_are_checked_against_the_grants() {
        assert_eq!(
            Capability::of_import("weir:plugin/kv@0.1.0"),
            Some(Capability::Kv)
        );
        assert_eq!(
            Capability::of_import("weir:plugin/metrics@0.2.0"),
            Some(Capability::Metrics)
        );
        assert_eq!(
            Capability::of_import("weir:plugin/outbound@0.4.0"),
            Some(Capability::Outbound)
        );
        assert_eq!(Capability::of_import("weir:plugin/types@0.4.0"), None);
        // Declaring routes gives nothing to grant.
        assert_eq!(Capability::of_import("weir:plugin/interest@0.5.0"), None);
        assert_eq!(Capability::of_import("wasi:cli/stdout@0.2.6"), None);
        assert_eq!(Capability::of_import("other:pkg/log@1.0.0"), None);
        let imports = [
            "weir:plugin/log@0.4.0",
            "weir:plugin/outbound@0.4.0",
            "weir:plugin/types@0.4.0",
            "wasi:io/streams@0.2.6",
        ];
        let g = parse(&["log"]).unwrap();
        let e = g.check_imports("60-auth", imports).unwrap_err();
        assert!(e.contains("weir:plugin/outbound@0.4.0"), "{e}");
        assert!(
            e.contains("add \"outbound\" to [plugins.60-auth] capabilities in weir.toml"),
            "{e}"
        );
        let imported = parse(&["log", "outbound:users"])
            .unwrap()
            .check_imports("x", imports);
        assert_eq!(list(&imported.unwrap()), "log, outbound");
    }
}
