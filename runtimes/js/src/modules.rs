//! Resolving and loading `import`s: the contract's interfaces
//! (`weir:plugin/NAME`, with or without a version this runtime implements)
//! and the plugin's own modules from the bundle, by path relative to the
//! importing module. Nothing else: there is no file system or network to
//! load from, so a bare package name must be bundled by a bundler first.

use std::collections::HashMap;

use rquickjs::loader::{Loader, Resolver};
use rquickjs::module::{Declared, ModuleDef};
use rquickjs::{Ctx, Error, Module, Result};

use crate::api::TypesModule;
use crate::api::crypto::CryptoModule;
use crate::api::interest::InterestModule;
use crate::api::kv::KvModule;
use crate::api::log::LogModule;
use crate::api::metrics::MetricsModule;
use crate::api::outbound::OutboundModule;
use crate::api::rate::RateModule;

/// Versions of the contract whose interfaces this runtime serves: the
/// interfaces grew, never changed, so each older import is a subset.
const VERSIONS: &[&str] = &["0.2.0", "0.3.0", "0.4.0", "0.5.0"];

/// The interface an import names, if it is one of the contract's.
pub fn interface(specifier: &str) -> Option<&str> {
    let rest = specifier.strip_prefix("weir:plugin/")?;
    let name = match rest.split_once('@') {
        Some((name, version)) if VERSIONS.contains(&version) => name,
        Some(_) => return None,
        None => rest,
    };
    matches!(
        name,
        "log" | "outbound" | "rate" | "kv" | "crypto" | "metrics" | "interest" | "types"
    )
    .then_some(name)
}

/// `specifier` imported from module `base`, as a bundle path; `None` when
/// it climbs above the entry's directory.
pub fn join(base: &str, specifier: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop();
    for part in specifier.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// The plugin's modules, by bundle path.
pub struct Bundle {
    modules: HashMap<String, String>,
}

impl Bundle {
    pub fn new(modules: impl IntoIterator<Item = (String, String)>) -> Self {
        Bundle {
            modules: modules.into_iter().collect(),
        }
    }
}

impl Resolver for Bundle {
    fn resolve<'js>(&mut self, _ctx: &Ctx<'js>, base: &str, name: &str) -> Result<String> {
        if let Some(interface) = interface(name) {
            return Ok(format!("weir:plugin/{interface}"));
        }
        let not_found = || Error::new_resolving_message(base, name, bundle_hint(name));
        if !(name.starts_with("./") || name.starts_with("../")) {
            return Err(not_found());
        }
        let path = join(base, name).ok_or_else(not_found)?;
        if self.modules.contains_key(&path) {
            Ok(path)
        } else {
            Err(not_found())
        }
    }
}

fn bundle_hint(name: &str) -> String {
    if name.starts_with("weir:") {
        format!(
            "`{name}` is not an interface of the weir:plugin contract this runtime serves \
             (versions {})",
            VERSIONS.join(", ")
        )
    } else if name.starts_with('.') {
        format!(
            "`{name}` is not in the bundle (`weir build-js` bundles the .js and .mjs files under the entry's directory)"
        )
    } else {
        format!(
            "`{name}` is a package: bundle it into your plugin first (e.g. with esbuild), as there is no node_modules at run time"
        )
    }
}

fn declare<'js, M: ModuleDef>(ctx: &Ctx<'js>, name: &str) -> Result<Module<'js, Declared>> {
    Module::declare_def::<M, _>(ctx.clone(), name)
}

impl Loader for Bundle {
    fn load<'js>(&mut self, ctx: &Ctx<'js>, name: &str) -> Result<Module<'js, Declared>> {
        match name.strip_prefix("weir:plugin/") {
            Some("log") => declare::<LogModule>(ctx, name),
            Some("outbound") => declare::<OutboundModule>(ctx, name),
            Some("rate") => declare::<RateModule>(ctx, name),
            Some("kv") => declare::<KvModule>(ctx, name),
            Some("crypto") => declare::<CryptoModule>(ctx, name),
            Some("metrics") => declare::<MetricsModule>(ctx, name),
            Some("interest") => declare::<InterestModule>(ctx, name),
            Some("types") => declare::<TypesModule>(ctx, name),
            _ => match self.modules.get(name) {
                Some(source) => Module::declare(ctx.clone(), name, source.clone()),
                None => Err(Error::new_loading_message(name, "not in the bundle")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_imports_name_an_interface_at_a_served_version() {
        assert_eq!(interface("weir:plugin/log@0.5.0"), Some("log"));
        assert_eq!(interface("weir:plugin/metrics@0.2.0"), Some("metrics"));
        assert_eq!(interface("weir:plugin/kv"), Some("kv"));
        assert_eq!(interface("weir:plugin/log@9.0.0"), None);
        assert_eq!(interface("weir:plugin/handler@0.5.0"), None);
        assert_eq!(interface("./log.js"), None);
    }

    #[test]
    fn relative_imports_resolve_against_the_importing_module() {
        assert_eq!(
            join("plugin.js", "./weir-log.js").as_deref(),
            Some("weir-log.js")
        );
        assert_eq!(join("lib/a.js", "./b.js").as_deref(), Some("lib/b.js"));
        assert_eq!(join("lib/a.js", "../c.js").as_deref(), Some("c.js"));
        assert_eq!(
            join("lib/deep/a.js", "../../x/y.js").as_deref(),
            Some("x/y.js")
        );
        assert_eq!(join("plugin.js", "../outside.js"), None);
    }
}
