//! What a reload does with each key of `weir.toml`. A key is either
//! **applied**, completely (the new pipeline and the listeners use the new
//! value for everything after the swap), or **restart-only**: the running
//! gateway keeps the value it started with, and a reload that changes it
//! logs a warning naming the key. [`RULES`] decides; each restart-only key
//! is also marked "Restart-only" in its field's doc comment, and a test
//! walks every key of the schema and fails on one that no rule covers.

use serde_json::Value;

/// What a reload does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReload {
    /// The new value is used for everything after the reload.
    Applied,
    /// The value the gateway started with stays until a restart.
    RestartOnly,
}

use OnReload::{Applied, RestartOnly};

/// Every key by its dotted path; a rule for a table covers every key in
/// it. Why each restart-only key is one is in its field's doc comment.
pub const RULES: &[(&str, OnReload)] = &[
    ("listen", RestartOnly),
    ("trusted_proxies", Applied),
    ("forwarded_header", Applied),
    ("proxy_protocol", Applied),
    ("plugins_dir", RestartOnly),
    ("cache_dir", Applied),
    ("drain_timeout_ms", Applied),
    ("limits.max_header_bytes", Applied),
    ("limits.max_header_count", Applied),
    ("limits.client_body_idle_timeout_ms", Applied),
    ("limits.header_read_timeout_ms", Applied),
    ("limits.max_connections", Applied),
    ("limits.max_body_bytes", Applied),
    ("limits.hook_deadline_ms", Applied),
    ("limits.wait_max_ms", Applied),
    ("limits.waits_per_request", Applied),
    ("limits.plugin_memory_mb", RestartOnly),
    ("runtime.max_instances_per_plugin", Applied),
    ("runtime.max_calls_per_instance", Applied),
    ("runtime.pool_instances", RestartOnly),
    ("runtime.worker_threads", RestartOnly),
    ("log.format", RestartOnly),
    ("log.level", RestartOnly),
    ("log.access_log", Applied),
    ("admin", RestartOnly),
    ("reload", RestartOnly),
    ("state", RestartOnly),
    ("budgets", Applied),
    ("upstreams", Applied),
    ("discovery", Applied),
    ("plugins", Applied),
    ("tls", RestartOnly),
    ("compression", Applied),
    ("metrics", RestartOnly),
    ("tracing", RestartOnly),
];

/// The rule for `key` (dotted): its own, or its closest table's.
pub fn rule_for(key: &str) -> Option<OnReload> {
    let mut at = key;
    loop {
        if let Some((_, rule)) = RULES.iter().find(|(k, _)| *k == at) {
            return Some(*rule);
        }
        at = at.rsplit_once('.')?.0;
    }
}

/// Put the values `started` has for restart-only keys back into `new`
/// (both are whole configs as JSON values); returns the keys that differed.
pub fn keep_restart_only(started: &Value, new: &mut Value) -> Vec<&'static str> {
    let mut changed = Vec::new();
    for (key, rule) in RULES {
        if *rule != RestartOnly {
            continue;
        }
        let pointer = format!("/{}", key.replace('.', "/"));
        let before = started.pointer(&pointer);
        if new.pointer(&pointer) == before {
            continue;
        }
        changed.push(*key);
        let (parent, field) = pointer.rsplit_once('/').unwrap_or(("", &pointer));
        let Some(Value::Object(table)) = new.pointer_mut(parent) else {
            continue;
        };
        match before {
            Some(value) => table.insert(field.to_string(), value.clone()),
            None => table.remove(field),
        };
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_takes_its_own_rule_or_its_tables() {
        assert_eq!(rule_for("listen"), Some(RestartOnly));
        assert_eq!(rule_for("limits.max_connections"), Some(Applied));
        assert_eq!(rule_for("limits.plugin_memory_mb"), Some(RestartOnly));
        assert_eq!(rule_for("admin.token"), Some(RestartOnly));
        assert_eq!(rule_for("upstreams.users.health.path"), Some(Applied));
        assert_eq!(rule_for("limits.no_such_key"), None);
        assert_eq!(rule_for("no_such_table.key"), None);
    }

    #[test]
    fn restart_only_values_are_put_back_and_named() {
        let started = serde_json::json!({
            "listen": "127.0.0.1:1", "limits": {"plugin_memory_mb": 64, "max_connections": 5},
            "admin": {"token": "a"},
        });
        let mut new = serde_json::json!({
            "listen": "127.0.0.1:2", "limits": {"plugin_memory_mb": 64, "max_connections": 9},
            "admin": {"token": "b", "extra": 1},
        });
        let changed = keep_restart_only(&started, &mut new);
        assert_eq!(changed, vec!["listen", "admin"]);
        assert_eq!(new["listen"], "127.0.0.1:1");
        assert_eq!(new["admin"], started["admin"]);
        assert_eq!(new["limits"]["max_connections"], 9);
    }
}
