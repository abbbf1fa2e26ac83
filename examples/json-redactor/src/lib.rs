//! Redacts fields of JSON response bodies: every value under one of the
//! configured keys, at any depth, is replaced, so a backend that leaks a
//! password hash or a card number never leaks it past the gateway.
//! Non-JSON responses pass untouched; a body too large to buffer is
//! refused (502) rather than passed on unredacted.

use serde_json::Value;
use weir_sdk::{Action, BodyError, Hooks, Plugin, Reply, Request, Response, export_plugin};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    keys: Vec<String>,
    #[serde(default = "redacted")]
    replacement: Value,
}

fn redacted() -> Value {
    Value::String("[redacted]".into())
}

struct Redactor(Config);

/// Replace the values of matching keys; whether anything changed.
fn redact(value: &mut Value, keys: &[String], replacement: &Value) -> bool {
    match value {
        Value::Object(map) => {
            let mut changed = false;
            for (key, child) in map.iter_mut() {
                if keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                    *child = replacement.clone();
                    changed = true;
                } else {
                    changed |= redact(child, keys, replacement);
                }
            }
            changed
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |acc, v| redact(v, keys, replacement) | acc),
        _ => false,
    }
}

impl Plugin for Redactor {
    type Config = Config;
    const HOOKS: Hooks = Hooks::ON_RESPONSE;

    fn new(config: Config) -> Result<Self, String> {
        if config.keys.is_empty() {
            return Err("`keys` must list at least one key".into());
        }
        Ok(Redactor(config))
    }

    fn on_response(&mut self, _req: &Request, resp: &Response) -> Action {
        let json = resp.header("content-type").is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().ends_with("json"))
        });
        if !json {
            return Action::Continue;
        }
        let body = match resp.body() {
            Ok(body) => body,
            Err(BodyError::TooLarge(limit)) => {
                weir_sdk::warn!("a JSON response over {limit} bytes could not be checked; refused");
                return Reply::json(
                    502,
                    &serde_json::json!({"error": "response too large to redact"}),
                )
                .into();
            }
            Err(BodyError::ReadFailed(why)) => {
                return Reply::json(
                    502,
                    &serde_json::json!({"error": "response failed", "cause": why}),
                )
                .into();
            }
        };
        let Ok(mut document) = serde_json::from_slice::<Value>(&body) else {
            return Action::Continue;
        };
        if redact(&mut document, &self.0.keys, &self.0.replacement) {
            resp.set_body(&serde_json::to_vec(&document).unwrap_or_default());
        }
        Action::Continue
    }
}

export_plugin!(Redactor);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_at_any_depth() {
        let mut doc = json!({"name": "ada", "password": "x", "cards": [{"Number": "4111", "exp": "12/30"}], "n": 1});
        let keys = vec!["password".to_string(), "number".to_string()];
        assert!(redact(&mut doc, &keys, &redacted()));
        assert_eq!(
            doc,
            json!({"name": "ada", "password": "[redacted]", "cards": [{"Number": "[redacted]", "exp": "12/30"}], "n": 1})
        );
        let mut clean = json!({"a": [1, 2]});
        assert!(!redact(&mut clean, &keys, &redacted()));
    }
}
