//! Reloads against the whole schema: every key of `weir.toml` is either
//! applied by a reload or restart-only, restart-only keys are put back and
//! named, and the field docs say which are which.

use serde_json::Value;

use super::reloading::{self, OnReload};
use super::*;

/// A config with every key set (`testdata/every-key.toml`).
const EVERY_KEY: &str = include_str!("testdata/every-key.toml");

fn every_key() -> Value {
    let config: Config = toml::from_str(EVERY_KEY).expect("testdata/every-key.toml parses");
    serde_json::to_value(&config).unwrap()
}

/// A leaf of a config: its dotted key (what [`reloading::RULES`] name)
/// and its JSON pointer (a map's keys may hold dots themselves).
struct Leaf {
    key: String,
    pointer: String,
}

/// The leaves of `value` (arrays are leaves).
fn leaves(value: &Value) -> Vec<Leaf> {
    fn walk(value: &Value, path: &mut Vec<String>, out: &mut Vec<Leaf>) {
        match value {
            Value::Object(table) if !table.is_empty() => {
                for (key, inner) in table {
                    path.push(key.clone());
                    walk(inner, path, out);
                    path.pop();
                }
            }
            _ => out.push(Leaf {
                key: path.join("."),
                pointer: path
                    .iter()
                    .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
                    .collect(),
            }),
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

/// A different value of any kind: what a changed file would hold.
fn changed(value: &Value) -> Value {
    match value {
        Value::Number(n) => Value::from(n.as_f64().unwrap_or(0.0) + 1.0),
        Value::Bool(b) => Value::Bool(!b),
        other => Value::String(format!("changed from {other}")),
    }
}

#[test]
fn the_every_key_file_sets_every_key() {
    // A key left unset (null, or an empty table) would hide the keys
    // under it from the test below.
    let value = every_key();
    let keys = leaves(&value);
    let unset: Vec<&String> = keys
        .iter()
        .filter(|leaf| {
            let at = value.pointer(&leaf.pointer).unwrap();
            at.is_null() || at.as_object().is_some_and(|t| t.is_empty())
        })
        .map(|leaf| &leaf.key)
        .collect();
    assert!(
        unset.is_empty(),
        "set these in config/testdata/every-key.toml: {unset:?}"
    );
    assert!(keys.len() > 80, "only {} keys", keys.len());
}

#[test]
fn every_key_is_applied_by_a_reload_or_restart_only() {
    let started = every_key();
    let keys = leaves(&started);
    let unlisted: Vec<&String> = keys
        .iter()
        .map(|leaf| &leaf.key)
        .filter(|key| reloading::rule_for(key).is_none())
        .collect();
    assert!(
        unlisted.is_empty(),
        "neither applied nor restart-only (config/reloading.rs RULES): {unlisted:?}"
    );
    for Leaf { key, pointer: at } in &keys {
        let mut new = started.clone();
        let different = changed(new.pointer(at).unwrap());
        *new.pointer_mut(at).unwrap() = different.clone();
        let set_aside = reloading::keep_restart_only(&started, &mut new);
        match reloading::rule_for(key) {
            Some(OnReload::RestartOnly) => {
                assert_eq!(new.pointer(at), started.pointer(at), "{key} was applied");
                assert!(
                    set_aside.len() == 1
                        && (key == set_aside[0] || key.starts_with(&format!("{}.", set_aside[0]))),
                    "a change of {key} was reported as {set_aside:?}"
                );
            }
            _ => {
                assert_eq!(new.pointer(at), Some(&different), "{key} was not applied");
                assert!(set_aside.is_empty(), "{key}: {set_aside:?} set aside");
            }
        }
    }
}

#[test]
fn a_config_survives_the_round_trip_through_json() {
    // What a reload does when it puts restart-only values back.
    let value = every_key();
    let config: Config = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(serde_json::to_value(&config).unwrap(), value);
}

#[test]
fn a_reload_keeps_restart_only_values_applies_the_rest_and_checks_the_mix() {
    let parse = |text: &str| Config::parse(text, Path::new("weir.toml"), Path::new("/etc/weir"));
    let started = parse("listen = \"127.0.0.1:1\"\n[limits]\nhook_deadline_ms = 1000").unwrap();
    let mut new =
        parse("listen = \"127.0.0.1:2\"\n[limits]\nhook_deadline_ms = 2000\nplugin_memory_mb = 64")
            .unwrap();
    let set_aside = new.keep_restart_only(&started).unwrap();
    assert_eq!(set_aside, vec!["listen", "limits.plugin_memory_mb"]);
    assert_eq!(new.listen, started.listen);
    assert_eq!(new.limits.plugin_memory_mb, started.limits.plugin_memory_mb);
    assert_eq!(new.limits.hook_deadline_ms, 2000);
    assert_eq!(new.base_dir, Path::new("/etc/weir"));
    // More instances per plugin than the pool the gateway started with.
    let mut raised =
        parse("[runtime]\nmax_instances_per_plugin = 600\npool_instances = 1000").unwrap();
    let refused = raised.keep_restart_only(&started).unwrap_err().to_string();
    assert!(refused.contains("pool_instances"), "{refused}");
}

/// Where each table's fields are declared.
const TABLES: &[(&str, &str, &str)] = &[
    ("", "Config", include_str!("mod.rs")),
    ("limits", "Limits", include_str!("limits.rs")),
    ("runtime", "RuntimeSettings", include_str!("limits.rs")),
    ("budgets", "Budgets", include_str!("limits.rs")),
    ("log", "LogSettings", include_str!("operations.rs")),
    ("admin", "AdminConfig", include_str!("operations.rs")),
    ("reload", "ReloadConfig", include_str!("operations.rs")),
    ("state", "StateConfig", include_str!("operations.rs")),
    ("metrics", "MetricsConfig", include_str!("operations.rs")),
    ("tracing", "TracingConfig", include_str!("operations.rs")),
    ("tls", "TlsConfig", include_str!("tls.rs")),
];

/// The fields of `pub struct NAME` in `source`, with their doc comments.
fn fields(source: &str, name: &str) -> Vec<(String, String)> {
    let start = source
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("no struct {name}"));
    let body = &source[start..];
    let body = &body[..body.find("\n}\n").unwrap()];
    let mut out = Vec::new();
    let mut doc = String::new();
    for line in body.lines().skip(1) {
        let line = line.trim();
        if let Some(text) = line.strip_prefix("///") {
            doc.push_str(text);
            doc.push(' ');
        } else if line.starts_with("#[") {
            continue;
        } else if let Some(rest) = line.strip_prefix("pub ") {
            let field = rest.split(':').next().unwrap().trim().to_string();
            out.push((field, std::mem::take(&mut doc)));
        } else {
            doc.clear();
        }
    }
    out
}

#[test]
fn restart_only_keys_and_only_those_say_so_at_their_fields() {
    for (table, name, source) in TABLES {
        for (field, doc) in fields(source, name) {
            let key = match *table {
                "" => field.clone(),
                _ => format!("{table}.{field}"),
            };
            let listed = reloading::RULES
                .iter()
                .any(|(k, rule)| *k == key && *rule == OnReload::RestartOnly);
            let marked = doc.contains("Restart-only");
            assert_eq!(
                listed, marked,
                "{key}: restart-only in RULES: {listed}, marked `Restart-only` in its doc: {marked}"
            );
        }
    }
}
