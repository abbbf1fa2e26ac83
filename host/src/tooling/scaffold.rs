//! `weir new plugin NAME --lang rust|python|js`: a working plugin project
//! with a config, a test for `weir test-plugin`, and a README that says how
//! to build, test and deploy it.

use std::path::{Path, PathBuf};

/// A plugin language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the `weir-sdk` crate.
    Rust,
    /// Python, with componentize-py.
    Python,
    /// JavaScript, built by `weir build-js` (Weir's QuickJS runtime).
    Js,
}

use super::sdk_source::{self, WIT};

/// Write the project `dir/name`; returns the files written. A Rust project
/// gets the SDK the binary carries, in `weir-sdk/`, unless `sdk` names
/// another copy (an SDK checkout, for its developers).
pub fn new_plugin(
    parent: &Path,
    name: &str,
    lang: Lang,
    sdk: Option<&Path>,
) -> anyhow::Result<Vec<PathBuf>> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        anyhow::bail!(
            "`{name}`: a plugin name is lower-case letters, digits, `-` and `_`, starting with a letter"
        );
    }
    let dir = parent.join(name);
    if dir.exists() {
        anyhow::bail!("{} already exists", dir.display());
    }
    let artifact = name.replace('-', "_");
    let header = format!("x-{name}");
    let config = format!("{{\"header\": \"{header}\", \"value\": \"hello from {name}\"}}\n");
    let request = "{\"method\": \"GET\", \"path\": \"/hello\"}\n".to_string();
    let response =
        "{\"status\": 200, \"headers\": {\"content-type\": \"text/plain\"}, \"body\": \"hi\"}\n"
            .to_string();
    let expect = format!(
        "{{\n  \"on_request\": {{\"action\": \"continue\"}},\n  \"on_response\": {{\"action\": \"continue\", \"response\": {{\"headers\": {{\"{header}\": \"hello from {name}\"}}}}}}\n}}\n"
    );
    let mut files: Vec<(PathBuf, String)> = vec![
        (dir.join("config.json"), config),
        (dir.join("test/request.json"), request),
        (dir.join("test/response.json"), response),
        (dir.join("test/expect.json"), expect),
    ];
    let (build, wasm) = match lang {
        Lang::Rust => {
            let sdk = match sdk {
                Some(path) => path.to_path_buf(),
                None => {
                    for (path, text) in sdk_source::files()? {
                        files.push((dir.join("weir-sdk").join(path), text));
                    }
                    PathBuf::from("weir-sdk")
                }
            };
            files.push((dir.join("Cargo.toml"), rust_manifest(name, &sdk)));
            files.push((dir.join("src/lib.rs"), RUST_LIB.to_string()));
            (
                "cargo build --release --target wasm32-wasip2".to_string(),
                format!("target/wasm32-wasip2/release/{artifact}.wasm"),
            )
        }
        Lang::Python => {
            files.push((dir.join("app.py"), PYTHON_APP.to_string()));
            files.push((
                dir.join("requirements.txt"),
                "componentize-py==0.25.1\n".to_string(),
            ));
            for (file, text) in WIT {
                files.push((dir.join("wit").join(file), (*text).to_string()));
            }
            (
                format!(
                    "componentize-py -d wit -w weir:plugin/plugin componentize app -o {artifact}.wasm"
                ),
                format!("{artifact}.wasm"),
            )
        }
        Lang::Js => {
            files.push((dir.join("plugin.js"), JS_PLUGIN.to_string()));
            (
                format!("weir build-js plugin.js -o {artifact}.wasm"),
                format!("{artifact}.wasm"),
            )
        }
    };
    files.push((dir.join("README.md"), readme(name, lang, &build, &wasm)));
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

fn rust_manifest(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
serde = {{ version = "1", features = ["derive"] }}
weir-sdk = {{ path = {sdk:?} }}

# Small plugins: about 100 KB instead of 2 MB.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A project of its own, even inside another workspace.
[workspace]
"#,
        sdk = sdk.display().to_string()
    )
}

fn readme(name: &str, lang: Lang, build: &str, wasm: &str) -> String {
    let setup = match lang {
        Lang::Rust => "Needs Rust with the WebAssembly target: `rustup target add wasm32-wasip2`.",
        Lang::Python => {
            "Needs componentize-py: `pip install -r requirements.txt` (in a virtualenv if you like)."
        }
        Lang::Js => {
            "Needs only the `weir` binary: `weir build-js` bundles `plugin.js` (and any \
             `.js`/`.mjs` files beside it) into Weir's JavaScript runtime. ComponentizeJS \
             builds the same source too, if you prefer it (see Weir's docs/plugins.md)."
        }
    };
    format!(
        r#"# {name}

A Weir plugin that adds a response header, as configured in `config.json`.

{setup}

## Build

```sh
{build}
```

## Test

`weir test-plugin` loads the plugin outside a gateway, runs `test/request.json`
(and `test/response.json`) through it, and compares the outcome with
`test/expect.json`:

```sh
weir test-plugin {wasm} --config config.json \
    --request test/request.json --response test/response.json --expect test/expect.json
```

Leave out `--expect` to see everything the plugin did: the action, the request
and response as it left them, the calls it made and the lines it logged.

## Deploy

Copy it into a running gateway's plugin directory; the number orders it in
the chain, and the gateway picks it up within a second:

```sh
cp {wasm} /path/to/gateway/plugins/60-{name}.wasm
cp config.json /path/to/gateway/plugins/60-{name}.json
```
"#
    )
}

const RUST_LIB: &str = r#"//! A Weir plugin: adds a response header from its config.

use weir_sdk::{Action, Hooks, Plugin, Request, Response, export_plugin};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    header: String,
    value: String,
}

struct AddHeader(Config);

impl Plugin for AddHeader {
    type Config = Config;
    // The hooks this plugin implements; the gateway calls only these.
    const HOOKS: Hooks = Hooks::ON_RESPONSE;

    fn new(config: Config) -> Result<Self, String> {
        Ok(AddHeader(config))
    }

    fn on_response(&mut self, _req: &Request, resp: &Response) -> Action {
        if let Err(e) = resp.set_header(&self.0.header, &self.0.value) {
            weir_sdk::warn!("cannot set {}: {e}", self.0.header);
        }
        Action::Continue
    }
}

export_plugin!(AddHeader);
"#;

const PYTHON_APP: &str = r#""""A Weir plugin: adds a response header from its config."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

# componentize-py calls each export on a new `Handler`, so state set by
# `init` lives at module level (one copy per plugin instance).
SETTINGS = {}


class Handler(exports.Handler):
    def init(self, config: str) -> types.Hooks:
        try:
            settings = json.loads(config or "{}")
        except ValueError as e:
            raise Err(f"invalid config: {e}")
        for key in ("header", "value"):
            if not isinstance(settings.get(key), str):
                raise Err(f"invalid config: `{key}` (a string) is required")
        SETTINGS.update(settings)
        # The hooks this plugin implements; the gateway calls only these.
        return types.Hooks.ON_RESPONSE

    def on_request(self, req: types.Request) -> types.Action:
        # Not declared in `init`, so never called; the world still requires it.
        return types.Action_Continue()

    def on_response(self, req: types.Request, resp: types.Response) -> types.Action:
        # Every call into the host costs microseconds from Python: edit
        # headers with one `set_headers` call (a list of pairs) rather than
        # a `set_header` each.
        resp.set_headers([(SETTINGS["header"], SETTINGS["value"])])
        return types.Action_Continue()
"#;

const JS_PLUGIN: &str = r#"// A Weir plugin: adds a response header from its config.

let settings = { header: '', value: '' };

export const handler = {
  init(config) {
    let parsed;
    try {
      parsed = JSON.parse(config || '{}');
    } catch (e) {
      throw `invalid config: ${e.message}`;
    }
    for (const key of ['header', 'value']) {
      if (typeof parsed[key] !== 'string') throw `invalid config: \`${key}\` (a string) is required`;
    }
    settings = parsed;
    // The hooks this plugin implements; the gateway calls only these.
    return { onRequest: false, onResponse: true };
  },

  // Not declared in `init`, so never called; the world still requires it.
  onRequest(req) {
    return { tag: 'continue' };
  },

  // One `setHeaders` call (a list of pairs) edits several headers at
  // once: each call into the host has a cost, in any language.
  onResponse(req, resp) {
    resp.setHeaders([[settings.header, settings.value]]);
    return { tag: 'continue' };
  },
};
"#;
