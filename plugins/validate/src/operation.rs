//! Compiling one OpenAPI operation: its parameters by location into object
//! schemas, its request body by media type, and its JSON responses; every
//! schema a `$ref` into the registered document.

use std::collections::BTreeMap;

use jsonschema::Registry;
use serde_json::{Map, Value, json};

use crate::openapi::PathItem;
use crate::params::{ParamSet, Style, kind_of};
use crate::schema::{Dialect, compile, escape_segment};
use crate::spec::{BodySpec, Media, Spec, media_type};
use crate::template::Template;

/// The document's URI in the schema registry.
pub const DOC_URI: &str = "urn:weir:openapi";

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Header parameters OpenAPI says to ignore (the body and security
/// sections describe them).
const IGNORED_HEADERS: &[&str] = &["accept", "content-type", "authorization"];

/// A parameter, its schema by pointer into the document.
struct Param {
    name: String,
    location: String,
    required: bool,
    schema: Option<String>,
}

/// What compiling one document needs at hand.
pub struct Compiler<'a> {
    pub doc: &'a Value,
    pub registry: &'a Registry<'a>,
    pub dialect: Dialect,
    pub report: bool,
}

impl Compiler<'_> {
    /// Follow local `$ref`s: the value and its pointer.
    fn deref<'v>(
        &'v self,
        mut value: &'v Value,
        mut pointer: String,
    ) -> Result<(&'v Value, String), String> {
        for _ in 0..16 {
            let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
                return Ok((value, pointer));
            };
            let target = reference.strip_prefix('#').ok_or_else(|| {
                format!("`{reference}`: only references within the document (#/...) are supported")
            })?;
            value = self
                .doc
                .pointer(target)
                .ok_or_else(|| format!("`{reference}` points at nothing"))?;
            pointer = target.to_string();
        }
        Err(format!("references at {pointer} loop"))
    }

    /// A schema compiled as a reference into the document.
    fn schema_at(&self, pointer: &str) -> Result<jsonschema::Validator, String> {
        compile(&reference(pointer), self.dialect, Some(self.registry))
    }

    pub fn path_item(&self, path: &str, item: &Value) -> Result<PathItem, String> {
        let (item, pointer) = self.deref(item, format!("/paths/{}", escape_segment(path)))?;
        let template = Template::parse(path)?;
        let mut operations = Vec::new();
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                let upper = method.to_ascii_uppercase();
                let spec = self
                    .operation(item, &pointer, op, method)
                    .map_err(|e| format!("{upper} {path}: {e}"))?;
                operations.push((upper, spec));
            }
        }
        Ok(PathItem {
            template,
            operations,
        })
    }

    fn operation(
        &self,
        item: &Value,
        item_pointer: &str,
        op: &Value,
        method: &str,
    ) -> Result<Spec, String> {
        let op_pointer = format!("{item_pointer}/{method}");
        let mut params: Vec<Param> = Vec::new();
        for (owner, pointer) in [(item, item_pointer), (op, op_pointer.as_str())] {
            let list = owner.get("parameters").and_then(Value::as_array);
            for (i, value) in list.into_iter().flatten().enumerate() {
                let param = self.param(value, format!("{pointer}/parameters/{i}"))?;
                // An operation's parameter replaces the path item's.
                params.retain(|p| !(p.name == param.name && p.location == param.location));
                params.push(param);
            }
        }
        Ok(Spec {
            path: self.param_set(&params, "path", Style::Simple)?,
            query: self.param_set(&params, "query", Style::Form)?,
            headers: self.param_set(&params, "header", Style::Simple)?,
            body: self.body(op, &op_pointer)?,
            responses: if self.report {
                self.responses(op, &op_pointer)?
            } else {
                Vec::new()
            },
        })
    }

    fn param(&self, value: &Value, pointer: String) -> Result<Param, String> {
        let (value, pointer) = self.deref(value, pointer)?;
        let text = |key: &str| value.get(key).and_then(Value::as_str);
        let (Some(name), Some(location)) = (text("name"), text("in")) else {
            return Err(format!("the parameter at {pointer} needs `name` and `in`"));
        };
        let name = if location == "header" {
            name.to_ascii_lowercase()
        } else {
            name.to_string()
        };
        Ok(Param {
            name,
            location: location.to_string(),
            required: value
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(location == "path"),
            schema: value.get("schema").map(|_| format!("{pointer}/schema")),
        })
    }

    /// One location's parameters as an object schema.
    fn param_set(
        &self,
        params: &[Param],
        location: &str,
        style: Style,
    ) -> Result<Option<ParamSet>, String> {
        let chosen: Vec<&Param> = params
            .iter()
            .filter(|p| p.location == location)
            .filter(|p| !(location == "header" && IGNORED_HEADERS.contains(&p.name.as_str())))
            .collect();
        if chosen.is_empty() {
            return Ok(None);
        }
        let (mut properties, mut required) = (Map::new(), Vec::new());
        let mut kinds = BTreeMap::new();
        for p in &chosen {
            let schema = match &p.schema {
                Some(pointer) => {
                    if let Some(target) = self.doc.pointer(pointer) {
                        kinds.insert(p.name.clone(), kind_of(target, self.doc));
                    }
                    reference(pointer)
                }
                None => json!({}),
            };
            properties.insert(p.name.clone(), schema);
            if p.required {
                required.push(p.name.clone());
            }
        }
        let mut object = json!({"type": "object", "properties": properties});
        if !required.is_empty() {
            object["required"] = json!(required);
        }
        let validator = compile(&object, self.dialect, Some(self.registry))?;
        let names = chosen.iter().map(|p| p.name.clone()).collect();
        Ok(Some(ParamSet::new(validator, kinds, style, Some(names))))
    }

    fn body(&self, op: &Value, op_pointer: &str) -> Result<Option<BodySpec>, String> {
        let Some(body) = op.get("requestBody") else {
            return Ok(None);
        };
        let (body, pointer) = self.deref(body, format!("{op_pointer}/requestBody"))?;
        let content = body
            .get("content")
            .and_then(Value::as_object)
            .ok_or("`requestBody` has no `content`")?;
        let mut media = Vec::new();
        for (name, entry) in content {
            let schema = match entry.get("schema") {
                Some(_) => Some(self.schema_at(&format!(
                    "{pointer}/content/{}/schema",
                    escape_segment(name)
                ))?),
                None => None,
            };
            media.push(Media {
                pattern: media_type(name),
                schema,
            });
        }
        Ok(Some(BodySpec {
            required: body
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            media,
        }))
    }

    /// JSON response schemas by status, for report mode.
    fn responses(
        &self,
        op: &Value,
        op_pointer: &str,
    ) -> Result<Vec<(String, jsonschema::Validator)>, String> {
        let mut out = Vec::new();
        let responses = op.get("responses").and_then(Value::as_object);
        for (status, response) in responses.into_iter().flatten() {
            let (response, pointer) = self.deref(
                response,
                format!("{op_pointer}/responses/{}", escape_segment(status)),
            )?;
            let content = response.get("content").and_then(Value::as_object);
            let json = content.into_iter().flatten().find(|(name, entry)| {
                crate::spec::is_json(&media_type(name)) && entry.get("schema").is_some()
            });
            if let Some((name, _)) = json {
                let validator = self.schema_at(&format!(
                    "{pointer}/content/{}/schema",
                    escape_segment(name)
                ))?;
                out.push((status.clone(), validator));
            }
        }
        Ok(out)
    }
}

/// `{"$ref": ...}` to the schema at `pointer` in the document. The pointer
/// is percent-encoded as a URI fragment must be (RFC 6901 §6): templated
/// paths hold `{` and `}`.
fn reference(pointer: &str) -> Value {
    let mut fragment = String::with_capacity(pointer.len());
    for byte in pointer.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&byte) {
            fragment.push(char::from(byte));
        } else {
            fragment.push_str(&format!("%{byte:02X}"));
        }
    }
    json!({"$ref": format!("{DOC_URI}#{fragment}")})
}
