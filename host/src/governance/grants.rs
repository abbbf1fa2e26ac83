//! Capability grants: which `weir:plugin` capability interfaces a plugin may
//! import (`[plugins.NAME] capabilities` in `weir.toml`), and which upstreams
//! its `outbound` calls may reach.
//!
//! Enforced twice: at load, a component importing an interface its grant
//! does not include is refused before any of its code runs (`check_component`);
//! at call time, an `outbound` call to an upstream outside an
//! `outbound:a,b` grant fails with `not-granted` (`Grants::allows_upstream`).
//!
//! Only the capability interfaces are governed. The core interfaces (`types`
//! with the request and response resources, `handler`) are what a plugin
//! is, and the WASI interfaces are linked as stubs with nothing preopened
//! (no files, environment or sockets), so neither gives anything to grant.
//! A plugin without a `capabilities` list gets everything, as before grants
//! existed, so existing gateways keep working.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::Config;
pub use crate::config::grants::{Capability, Grants, list};

/// The grants of every plugin of a pipeline, by file stem.
#[derive(Debug, Clone, Default)]
pub struct GrantTable {
    listed: BTreeMap<String, Arc<Grants>>,
    all: Arc<Grants>,
}

impl GrantTable {
    /// The grants `config`'s `[plugins.NAME]` tables give.
    pub fn from_config(config: &Config) -> Result<GrantTable, String> {
        let mut listed = BTreeMap::new();
        for (name, policy) in &config.plugins {
            let grants =
                Grants::from_policy(name, Some(policy), |u| config.upstreams.contains_key(u))?;
            listed.insert(name.clone(), Arc::new(grants));
        }
        Ok(GrantTable {
            listed,
            all: Arc::new(Grants::all()),
        })
    }

    /// The grants of the plugin named `plugin`. A canary (`NAME.canary`)
    /// without a table of its own has its stable version's grants, so
    /// dropping in a canary cannot widen what the plugin may use.
    pub fn for_plugin(&self, plugin: &str) -> Arc<Grants> {
        let stable = plugin.strip_suffix(".canary");
        self.listed
            .get(plugin)
            .or_else(|| stable.and_then(|s| self.listed.get(s)))
            .unwrap_or(&self.all)
            .clone()
    }
}

/// Check a compiled component's imports against `grants` (see
/// [`Grants::check_imports`]).
pub fn check_component(
    component: &wasmtime::component::Component,
    engine: &wasmtime::Engine,
    plugin: &str,
    grants: &Grants,
) -> Result<BTreeSet<Capability>, String> {
    let ty = component.component_type();
    grants.check_imports(plugin, ty.imports(engine).map(|(name, _)| name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PluginPolicy;

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
            Capability::of_import("weir:plugin/outbound@0.3.0"),
            Some(Capability::Outbound)
        );
        assert_eq!(Capability::of_import("weir:plugin/types@0.3.0"), None);
        assert_eq!(Capability::of_import("wasi:cli/stdout@0.2.6"), None);
        assert_eq!(Capability::of_import("other:pkg/log@1.0.0"), None);
        let imports = [
            "weir:plugin/log@0.3.0",
            "weir:plugin/outbound@0.3.0",
            "weir:plugin/types@0.3.0",
            "wasi:io/streams@0.2.6",
        ];
        let g = parse(&["log"]).unwrap();
        let e = g.check_imports("60-auth", imports).unwrap_err();
        assert!(e.contains("weir:plugin/outbound@0.3.0"), "{e}");
        assert!(
            e.contains("add \"outbound\" to [plugins.60-auth] capabilities in weir.toml"),
            "{e}"
        );
        let imported = parse(&["log", "outbound:users"])
            .unwrap()
            .check_imports("x", imports);
        assert_eq!(list(&imported.unwrap()), "log, outbound");
    }

    #[test]
    fn a_canary_has_its_stable_versions_grants() {
        let mut table = GrantTable::default();
        let grants = Arc::new(parse(&["log"]).unwrap());
        table.listed.insert("60-auth".into(), grants.clone());
        assert_eq!(table.for_plugin("60-auth.canary"), grants);
        assert_eq!(*table.for_plugin("70-other"), Grants::all());
    }
}
