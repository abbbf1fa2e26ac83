//! File includes in plugin configs: `{"$file": "jwks.json"}` anywhere in a
//! plugin's JSON config is replaced by that file's text, read by the host at
//! load time. Plugins themselves have no filesystem; this lets operators
//! keep keys and large documents in their own files (as Envoy's `filename`
//! data sources do). Paths are relative to the plugin directory and may not
//! leave it.

use std::path::{Component, Path};

use serde_json::Value;

/// Replace every `{"$file": PATH}` in `value` with the file's text; whether
/// anything was replaced. Errors name the offending path.
pub fn include_files(value: &mut Value, dir: &Path) -> Result<bool, String> {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("$file") => {
            let Some(Value::String(path)) = map.get("$file") else {
                return Err("`$file` must be a string path".into());
            };
            let relative = Path::new(path);
            let inside = relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
            if !inside || path.is_empty() {
                return Err(format!(
                    "`$file` `{path}` must be a relative path inside the plugin directory"
                ));
            }
            let text = std::fs::read_to_string(dir.join(relative))
                .map_err(|e| format!("`$file` `{path}` cannot be read: {e}"))?;
            *value = Value::String(text);
            Ok(true)
        }
        Value::Object(map) => {
            let mut any = false;
            for child in map.values_mut() {
                any |= include_files(child, dir)?;
            }
            Ok(any)
        }
        Value::Array(items) => {
            let mut any = false;
            for child in items {
                any |= include_files(child, dir)?;
            }
            Ok(any)
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn includes_nested_files_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keys.json"), "{\"keys\":[]}").unwrap();
        let mut config =
            json!({"jwt": {"jwks": {"$file": "keys.json"}}, "list": [{"$file": "keys.json"}]});
        assert!(include_files(&mut config, dir.path()).unwrap());
        assert_eq!(config["jwt"]["jwks"], "{\"keys\":[]}");
        assert_eq!(config["list"][0], "{\"keys\":[]}");

        for bad in ["../secret", "/etc/passwd", "a/../../b", ""] {
            let mut config = json!({"x": {"$file": bad}});
            let err = include_files(&mut config, dir.path()).unwrap_err();
            assert!(err.contains("inside the plugin directory"), "{bad}: {err}");
        }
        let mut config = json!({"x": {"$file": "missing.json"}});
        assert!(
            include_files(&mut config, dir.path())
                .unwrap_err()
                .contains("missing.json")
        );
        let mut plain = json!({"a": 1, "b": {"$file": "keys.json", "other": 2}});
        assert!(!include_files(&mut plain, dir.path()).unwrap());
    }
}
