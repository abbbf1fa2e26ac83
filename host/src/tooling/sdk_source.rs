//! The Rust SDK (`weir-sdk`) and the contract's WIT, carried inside the
//! `weir` binary, so `weir new plugin --lang rust` writes a project that
//! builds wherever the binary runs: no checkout of Weir's repository and
//! no path into the tree the binary was built from. The SDK's manifest
//! inherits from the workspace; the copy written out is made standalone
//! (the workspace's versions and dependencies filled in).

use anyhow::Context as _;

/// The contract's WIT package, file by file.
pub const WIT: &[(&str, &str)] = &[
    ("types.wit", include_str!("../../../wit/types.wit")),
    (
        "capabilities.wit",
        include_str!("../../../wit/capabilities.wit"),
    ),
    ("world.wit", include_str!("../../../wit/world.wit")),
];

/// The SDK's sources, by path in the crate (`sdk/`).
const SOURCES: &[(&str, &str)] = &[
    ("src/lib.rs", include_str!("../../../sdk/src/lib.rs")),
    (
        "src/bindings.rs",
        include_str!("../../../sdk/src/bindings.rs"),
    ),
    ("src/crypto.rs", include_str!("../../../sdk/src/crypto.rs")),
    ("src/http.rs", include_str!("../../../sdk/src/http.rs")),
    ("src/kv.rs", include_str!("../../../sdk/src/kv.rs")),
    ("src/log.rs", include_str!("../../../sdk/src/log.rs")),
    (
        "src/metrics.rs",
        include_str!("../../../sdk/src/metrics.rs"),
    ),
    (
        "src/outbound.rs",
        include_str!("../../../sdk/src/outbound.rs"),
    ),
    ("src/rate.rs", include_str!("../../../sdk/src/rate.rs")),
    ("README.md", include_str!("../../../sdk/README.md")),
    ("LICENSE", include_str!("../../../LICENSE")),
];

const SDK_MANIFEST: &str = include_str!("../../../sdk/Cargo.toml");
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");

/// The SDK crate's files, relative to its folder: the sources, the WIT
/// (in `wit/`, where its bindings read it) and a standalone `Cargo.toml`.
pub fn files() -> anyhow::Result<Vec<(String, String)>> {
    let mut files: Vec<(String, String)> = SOURCES
        .iter()
        .map(|(path, text)| ((*path).to_string(), (*text).to_string()))
        .collect();
    files.extend(
        WIT.iter()
            .map(|(file, text)| (format!("wit/{file}"), (*text).to_string())),
    );
    files.push(("Cargo.toml".to_string(), standalone_manifest()?));
    Ok(files)
}

/// `sdk/Cargo.toml` with every `*.workspace = true` replaced by the
/// workspace's value, and without the workspace's lint table.
fn standalone_manifest() -> anyhow::Result<String> {
    let workspace: toml::Table = WORKSPACE_MANIFEST.parse().context("workspace Cargo.toml")?;
    let mut manifest: toml::Table = SDK_MANIFEST.parse().context("sdk/Cargo.toml")?;
    let shared = workspace.get("workspace").and_then(toml::Value::as_table);
    let field = |section: &str| {
        shared
            .and_then(|w| w.get(section))
            .and_then(toml::Value::as_table)
    };
    let (package_values, dependency_values) = (field("package"), field("dependencies"));
    if let Some(package) = manifest
        .get_mut("package")
        .and_then(toml::Value::as_table_mut)
    {
        for (key, value) in package.iter_mut() {
            if inherits(value) {
                *value = package_values
                    .and_then(|p| p.get(key))
                    .cloned()
                    .with_context(|| format!("the workspace has no package.{key}"))?;
            }
        }
        // The copy is the whole crate: no `include` list to keep in step.
        package.remove("include");
    }
    if let Some(dependencies) = manifest
        .get_mut("dependencies")
        .and_then(toml::Value::as_table_mut)
    {
        for (name, value) in dependencies.iter_mut() {
            if inherits(value) {
                *value = dependency_values
                    .and_then(|d| d.get(name))
                    .cloned()
                    .with_context(|| format!("the workspace has no dependency {name}"))?;
            }
        }
    }
    manifest.remove("lints");
    Ok(format!(
        "# weir-sdk, as carried by the `weir` binary that wrote this project.\n{}",
        toml::to_string(&manifest)?
    ))
}

/// `{ workspace = true }` (or `.workspace = true`).
fn inherits(value: &toml::Value) -> bool {
    value
        .as_table()
        .and_then(|t| t.get("workspace"))
        .and_then(toml::Value::as_bool)
        == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sdk_source_is_carried() {
        let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/src");
        for entry in std::fs::read_dir(&sdk).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let path = format!("src/{name}");
            assert!(
                SOURCES.iter().any(|(p, _)| *p == path),
                "sdk/{path} is not in tooling/sdk_source.rs SOURCES"
            );
        }
    }

    #[test]
    fn the_manifest_written_out_inherits_nothing() {
        let manifest = standalone_manifest().unwrap();
        assert!(!manifest.contains("workspace"), "{manifest}");
        let parsed: toml::Table = manifest.parse().unwrap();
        let package = parsed["package"].as_table().unwrap();
        assert_eq!(package["name"].as_str(), Some("weir-sdk"));
        assert!(package["version"].is_str() && package["license"].is_str());
        let wit_bindgen = parsed["dependencies"]["wit-bindgen"].as_table().unwrap();
        assert!(wit_bindgen["version"].is_str());
        assert!(parsed["dependencies"]["serde"].is_table());
        assert!(parsed.get("lints").is_none());
    }
}
