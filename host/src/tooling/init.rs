//! `weir init`: write a runnable gateway directory, with the default plugins
//! (compiled into this binary at build time) and a commented `weir.toml`.

use std::path::{Path, PathBuf};

/// A plugin shipped inside the binary.
pub struct DefaultPlugin {
    /// File stem in the plugin directory; the number sets the order.
    pub stem: &'static str,
    /// The component.
    pub wasm: &'static [u8],
    /// Its sample config.
    pub config: &'static str,
}

/// The default plugins, in order.
pub const DEFAULT_PLUGINS: &[DefaultPlugin] = &[
    DefaultPlugin {
        stem: "50-router",
        wasm: include_bytes!(concat!(env!("WEIR_WASM_DIR"), "/weir_plugin_router.wasm")),
        config: include_str!("../../../plugins/router/sample.json"),
    },
    DefaultPlugin {
        stem: "52-ip-filter",
        wasm: include_bytes!(concat!(
            env!("WEIR_WASM_DIR"),
            "/weir_plugin_ip_filter.wasm"
        )),
        config: include_str!("../../../plugins/ip-filter/sample.json"),
    },
    DefaultPlugin {
        stem: "55-cors",
        wasm: include_bytes!(concat!(env!("WEIR_WASM_DIR"), "/weir_plugin_cors.wasm")),
        config: include_str!("../../../plugins/cors/sample.json"),
    },
    DefaultPlugin {
        stem: "60-auth",
        wasm: include_bytes!(concat!(env!("WEIR_WASM_DIR"), "/weir_plugin_auth.wasm")),
        config: include_str!("../../../plugins/auth/sample.json"),
    },
    DefaultPlugin {
        stem: "62-forward-auth",
        wasm: include_bytes!(concat!(
            env!("WEIR_WASM_DIR"),
            "/weir_plugin_forward_auth.wasm"
        )),
        config: include_str!("../../../plugins/forward-auth/sample.json"),
    },
    DefaultPlugin {
        stem: "65-validate",
        wasm: include_bytes!(concat!(env!("WEIR_WASM_DIR"), "/weir_plugin_validate.wasm")),
        config: include_str!("../../../plugins/validate/sample.json"),
    },
    DefaultPlugin {
        stem: "70-rate-limit",
        wasm: include_bytes!(concat!(
            env!("WEIR_WASM_DIR"),
            "/weir_plugin_rate_limit.wasm"
        )),
        config: include_str!("../../../plugins/rate-limit/sample.json"),
    },
    DefaultPlugin {
        stem: "75-cache",
        wasm: include_bytes!(concat!(env!("WEIR_WASM_DIR"), "/weir_plugin_cache.wasm")),
        config: include_str!("../../../plugins/cache/sample.json"),
    },
    DefaultPlugin {
        stem: "80-aggregate",
        wasm: include_bytes!(concat!(
            env!("WEIR_WASM_DIR"),
            "/weir_plugin_aggregate.wasm"
        )),
        config: include_str!("../../../plugins/aggregate/sample.json"),
    },
];

/// The `weir.toml` written by `weir init`.
pub const SAMPLE_CONFIG: &str = include_str!("../../weir.sample.toml");

/// Write the sample config at `config_path` and the default plugins into
/// `plugins/` beside it. Refuses to overwrite anything unless `force`.
pub fn write_gateway(config_path: &Path, force: bool) -> anyhow::Result<Vec<PathBuf>> {
    let dir = config_path.parent().unwrap_or(Path::new("."));
    let plugins = dir.join("plugins");
    let mut files: Vec<(PathBuf, &[u8])> =
        vec![(config_path.to_path_buf(), SAMPLE_CONFIG.as_bytes())];
    for plugin in DEFAULT_PLUGINS {
        files.push((plugins.join(format!("{}.wasm", plugin.stem)), plugin.wasm));
        files.push((
            plugins.join(format!("{}.json", plugin.stem)),
            plugin.config.as_bytes(),
        ));
    }
    if !force && let Some((existing, _)) = files.iter().find(|(path, _)| path.exists()) {
        anyhow::bail!(
            "{} already exists (use --force to overwrite)",
            existing.display()
        );
    }
    std::fs::create_dir_all(&plugins)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", plugins.display()))?;
    for (path, bytes) in &files {
        std::fs::write(path, bytes)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}
