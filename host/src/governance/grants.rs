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

    #[test]
    fn a_canary_has_its_stable_versions_grants() {
        let mut table = GrantTable::default();
        let grants = Arc::new(Grants::parse("60-auth", &["log".to_string()], |_| false).unwrap());
        table.listed.insert("60-auth".into(), grants.clone());
        assert_eq!(table.for_plugin("60-auth.canary"), grants);
        assert_eq!(*table.for_plugin("70-other"), Grants::all());
    }
}
