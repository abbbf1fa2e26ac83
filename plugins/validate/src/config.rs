//! The validate plugin's JSON config, parsed strictly, and compiled into
//! rules (every schema compiled once, in `init`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::openapi::Api;
use crate::params::{ParamSet, Style, property_kinds};
use crate::schema::{Dialect, compile, draft_named};
use crate::spec::{BodySpec, Media, Spec, media_type};

/// The whole config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The rule for requests whose route has none (and requests with no
    /// route). Without it, only the routes listed are validated.
    #[serde(default)]
    pub default: Option<RuleConfig>,
    /// Rules by route name (the router's `route` context value).
    #[serde(default)]
    pub routes: BTreeMap<String, RuleConfig>,
    /// Draft for schemas without `$schema`: `2020-12` (default) or `7`
    /// (`2019-09`, `6` and `4` work too). OpenAPI documents set their own.
    #[serde(default)]
    pub draft: Option<String>,
    /// Assert `format` (`email`, `date-time`, `uuid`, ...).
    #[serde(default = "yes")]
    pub formats: bool,
}

/// One route's rule: JSON Schemas per location, or an OpenAPI document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Validate only these methods; others pass untouched.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Schema of the JSON body.
    #[serde(default)]
    pub body: Option<Value>,
    /// Whether a body must be present (with `body`).
    #[serde(default = "yes")]
    pub body_required: bool,
    /// Accepted content types (with `body`); `*` wildcards allowed.
    #[serde(default)]
    pub content_types: Option<Vec<String>>,
    /// Schema of the query parameters, as an object.
    #[serde(default)]
    pub query: Option<Value>,
    /// Schema of the headers, as an object with lower-case names.
    #[serde(default)]
    pub headers: Option<Value>,
    /// Schema of the router's path captures, as an object.
    #[serde(default)]
    pub path: Option<Value>,
    /// Response body schemas by status (`200`, `2XX`, `default`).
    #[serde(default)]
    pub responses: BTreeMap<String, Value>,
    /// An OpenAPI 3.0/3.1 document, or its text (`{"$file": "api.yaml"}`).
    #[serde(default)]
    pub openapi: Option<Value>,
    /// With `openapi`: what to do with a request the document does not
    /// describe: `refuse` (404 / 405, the default) or `pass`.
    #[serde(default)]
    pub unknown_operations: Option<Unknown>,
    /// Check responses against their schemas; violations are logged and
    /// counted, the response is never changed.
    #[serde(default)]
    pub report_responses: bool,
}

/// `unknown_operations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    #[default]
    Refuse,
    Pass,
}

fn yes() -> bool {
    true
}

/// What a rule checks.
pub enum Checks {
    Schemas(Box<Spec>),
    OpenApi(Api, Unknown),
}

/// A compiled rule.
pub struct Rule {
    pub methods: Option<Vec<String>>,
    pub checks: Checks,
    pub report_responses: bool,
}

impl Rule {
    pub fn applies_to(&self, method: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == method))
    }
}

/// Compile the whole config.
pub fn compile_all(config: Config) -> Result<(Option<Rule>, BTreeMap<String, Rule>), String> {
    let draft = config.draft.as_deref().map(draft_named).transpose()?;
    let dialect = Dialect {
        draft,
        formats: config.formats,
    };
    let default = config
        .default
        .map(|r| r.compile(dialect).map_err(|e| format!("default: {e}")))
        .transpose()?;
    let mut routes = BTreeMap::new();
    for (name, rule) in config.routes {
        let rule = rule
            .compile(dialect)
            .map_err(|e| format!("route `{name}`: {e}"))?;
        routes.insert(name, rule);
    }
    Ok((default, routes))
}

/// An object schema over parameters, coerced by its properties' types.
fn param_set(
    schema: Option<&Value>,
    style: Style,
    names: bool,
    dialect: Dialect,
    at: &str,
) -> Result<Option<ParamSet>, String> {
    let Some(schema) = schema else {
        return Ok(None);
    };
    let validator = compile(schema, dialect, None).map_err(|e| format!("{at}: {e}"))?;
    let kinds = property_kinds(schema, schema);
    // Path captures are read by name: those the schema mentions.
    let names = names.then(|| {
        let mut names: Vec<String> = kinds.keys().cloned().collect();
        let required = schema.get("required").and_then(Value::as_array);
        names.extend(
            required
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string),
        );
        names.sort();
        names.dedup();
        names
    });
    Ok(Some(ParamSet::new(validator, kinds, style, names)))
}

impl RuleConfig {
    fn compile(mut self, dialect: Dialect) -> Result<Rule, String> {
        let methods = self
            .methods
            .take()
            .map(|ms| ms.iter().map(|m| m.to_ascii_uppercase()).collect());
        let checks = match self.openapi.take() {
            Some(doc) => {
                let schemas = self.body.is_some()
                    || self.query.is_some()
                    || self.headers.is_some()
                    || self.path.is_some()
                    || !self.responses.is_empty()
                    || self.content_types.is_some();
                if schemas {
                    return Err("give `openapi` or schemas (`body`, `query`, ...), not both".into());
                }
                let doc = match doc {
                    Value::String(text) => {
                        crate::yaml::parse_document(&text).map_err(|e| format!("openapi: {e}"))?
                    }
                    other => other,
                };
                let api = Api::load(doc, dialect.formats, self.report_responses)
                    .map_err(|e| format!("openapi: {e}"))?;
                Checks::OpenApi(api, self.unknown_operations.unwrap_or_default())
            }
            None if self.unknown_operations.is_some() => {
                return Err("`unknown_operations` needs `openapi`".into());
            }
            None => Checks::Schemas(Box::new(self.schemas(dialect)?)),
        };
        Ok(Rule {
            methods,
            checks,
            report_responses: self.report_responses,
        })
    }

    fn schemas(&self, dialect: Dialect) -> Result<Spec, String> {
        let body = match &self.body {
            Some(schema) => {
                let validator = compile(schema, dialect, None).map_err(|e| format!("body: {e}"))?;
                let patterns = self
                    .content_types
                    .clone()
                    .unwrap_or_else(|| vec!["application/json".into()]);
                let media = patterns
                    .iter()
                    .map(|p| Media {
                        pattern: media_type(p),
                        schema: Some(validator.clone()),
                    })
                    .collect();
                Some(BodySpec {
                    required: self.body_required,
                    media,
                })
            }
            None if self.content_types.is_some() => {
                return Err("`content_types` needs `body`".into());
            }
            None => None,
        };
        let mut responses = Vec::new();
        for (status, schema) in &self.responses {
            let validator =
                compile(schema, dialect, None).map_err(|e| format!("responses.{status}: {e}"))?;
            responses.push((status.clone(), validator));
        }
        Ok(Spec {
            path: param_set(self.path.as_ref(), Style::Simple, true, dialect, "path")?,
            query: param_set(self.query.as_ref(), Style::Form, false, dialect, "query")?,
            headers: param_set(
                self.headers.as_ref(),
                Style::Simple,
                false,
                dialect,
                "headers",
            )?,
            body,
            responses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compiled(config: Value) -> Result<(Option<Rule>, BTreeMap<String, Rule>), String> {
        compile_all(serde_json::from_value(config).map_err(|e| e.to_string())?)
    }

    #[test]
    fn rules_compile_per_route() {
        let (default, routes) = compiled(json!({
            "routes": {"orders": {"methods": ["post"], "body": {"type": "object"}, "query": {"properties": {"n": {"type": "integer"}}}}}
        }))
        .unwrap();
        assert!(default.is_none());
        let rule = &routes["orders"];
        assert!(rule.applies_to("POST") && !rule.applies_to("GET"));
        let Checks::Schemas(spec) = &rule.checks else {
            panic!("schemas expected");
        };
        assert!(spec.body.is_some() && spec.query.is_some() && spec.headers.is_none());
    }

    #[test]
    fn bad_rules_are_refused_naming_the_place() {
        for (config, expected) in [
            (
                json!({"routes": {"o": {"body": {"type": 7}}}}),
                "route `o`: body",
            ),
            (
                json!({"routes": {"o": {"openapi": {"openapi": "3.1.0", "paths": {}}, "body": {}}}}),
                "not both",
            ),
            (json!({"routes": {"o": {"openapi": "a: [1"}}}), "openapi"),
            (
                json!({"routes": {"o": {"unknown_operations": "pass"}}}),
                "needs `openapi`",
            ),
            (
                json!({"routes": {"o": {"content_types": ["text/plain"]}}}),
                "needs `body`",
            ),
            (json!({"draft": "3"}), "draft"),
            (json!({"routes": {"o": {"bodies": {}}}}), "unknown field"),
        ] {
            let err = compiled(config).err().expect("refused");
            assert!(err.contains(expected), "{err}");
        }
    }
}
