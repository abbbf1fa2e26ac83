//! Endpoints compiled once in `init`: path templates, call templates, and
//! the stages calls run in (independent calls together, dependent calls
//! after what they depend on).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{CallConfig, EndpointConfig};

/// A compiled endpoint.
#[derive(Debug)]
pub struct Endpoint {
    /// Upper-case method.
    pub method: String,
    /// The router's route it answers on; `None`: any.
    pub route: Option<String>,
    segments: Vec<Segment>,
    /// Calls grouped by stage, in order.
    pub stages: Vec<Vec<Call>>,
    /// Lower-case header names to forward.
    pub forward_headers: Vec<String>,
    /// Pointers per call.
    pub select: BTreeMap<String, Vec<String>>,
    /// Largest call body accepted.
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A compiled call.
#[derive(Debug)]
pub struct Call {
    /// Its name (a key of the result).
    pub name: String,
    /// Upstream.
    pub upstream: String,
    /// Method.
    pub method: String,
    path: Vec<Part>,
    /// Failures are tolerated.
    pub optional: bool,
    /// Timeout.
    pub timeout_ms: Option<u32>,
    /// Calls this one needs.
    pub needs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A capture from the request path.
    Capture(String),
    /// A field of an earlier call's JSON: call name and field path.
    Field(String, Vec<String>),
}

impl Endpoint {
    /// Compile one endpoint; errors name it.
    pub fn compile(config: EndpointConfig) -> Result<Endpoint, String> {
        let at = |why: String| format!("endpoint `{}`: {why}", config.path);
        let segments = parse_path(&config.path).map_err(at)?;
        let captures: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(name) => Some(name.as_str()),
                Segment::Literal(_) => None,
            })
            .collect();
        let names: Vec<String> = config.calls.keys().cloned().collect();
        if names.iter().any(|n| n.starts_with('_')) {
            return Err(at("call names may not start with `_`".into()));
        }
        let mut calls = Vec::new();
        for (name, call) in &config.calls {
            calls.push(
                compile_call(name, call, &captures, &names)
                    .map_err(|why| at(format!("call `{name}`: {why}")))?,
            );
        }
        for name in config.select.keys() {
            if !names.contains(name) {
                return Err(at(format!("`select` names unknown call `{name}`")));
            }
        }
        for pointer in config.select.values().flatten() {
            if !pointer.starts_with('/') {
                return Err(at(format!(
                    "`{pointer}` is not a JSON pointer (it must start with `/`)"
                )));
            }
        }
        let stages = stages(calls).map_err(at)?;
        Ok(Endpoint {
            method: config.method.to_ascii_uppercase(),
            route: config.route,
            segments,
            stages,
            forward_headers: config
                .forward_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            select: config.select,
            max_body_bytes: config.max_body_bytes,
        })
    }

    /// The captures if `method` and `path` match this endpoint.
    pub fn matches(&self, method: &str, path: &str) -> Option<BTreeMap<String, String>> {
        if method != self.method {
            return None;
        }
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut captures = BTreeMap::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(text) if text == part => {}
                Segment::Param(name) if !part.is_empty() => {
                    captures.insert(name.clone(), part.to_string());
                }
                _ => return None,
            }
        }
        Some(captures)
    }
}

fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let rest = path
        .strip_prefix('/')
        .ok_or("the path must start with `/`")?;
    rest.split('/')
        .map(
            |part| match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name)
                    if !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    Ok(Segment::Param(name.to_string()))
                }
                Some(_) => Err(format!("`{part}` is not a valid parameter")),
                None if part.contains(['{', '}']) => {
                    Err(format!("`{part}`: a parameter must be a whole segment"))
                }
                None => Ok(Segment::Literal(part.to_string())),
            },
        )
        .collect()
}

fn compile_call(
    name: &str,
    call: &CallConfig,
    captures: &[&str],
    calls: &[String],
) -> Result<Call, String> {
    if !call.path.starts_with('/') {
        return Err("`path` must start with `/`".into());
    }
    let mut parts = Vec::new();
    let mut needs = call.after.names();
    let mut rest = call.path.as_str();
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let close = rest[open..].find('}').ok_or("unclosed `{` in `path`")?;
        let reference = &rest[open + 1..open + close];
        match reference.split_once('.') {
            Some((other, field)) => {
                if !calls.iter().any(|c| c == other) {
                    return Err(format!("`{{{reference}}}` names unknown call `{other}`"));
                }
                if !needs.iter().any(|n| n == other) {
                    needs.push(other.to_string());
                }
                parts.push(Part::Field(
                    other.to_string(),
                    field.split('.').map(str::to_string).collect(),
                ));
            }
            None if captures.contains(&reference) => {
                parts.push(Part::Capture(reference.to_string()))
            }
            None => {
                return Err(format!(
                    "`{{{reference}}}` is not a capture of the endpoint path"
                ));
            }
        }
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    for need in &needs {
        if need == name {
            return Err("a call cannot depend on itself".into());
        }
        if !calls.contains(need) {
            return Err(format!("`after` names unknown call `{need}`"));
        }
    }
    Ok(Call {
        name: name.to_string(),
        upstream: call.upstream.clone(),
        method: call.method.to_ascii_uppercase(),
        path: parts,
        optional: call.optional,
        timeout_ms: call.timeout_ms,
        needs,
    })
}

/// Group calls into stages: each stage holds the calls whose needs are all
/// in earlier stages.
fn stages(mut pending: Vec<Call>) -> Result<Vec<Vec<Call>>, String> {
    let mut done: Vec<String> = Vec::new();
    let mut stages = Vec::new();
    while !pending.is_empty() {
        let (ready, waiting): (Vec<Call>, Vec<Call>) = pending
            .into_iter()
            .partition(|c| c.needs.iter().all(|n| done.contains(n)));
        if ready.is_empty() {
            let names: Vec<&str> = waiting.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "calls {} depend on each other in a cycle",
                names.join(", ")
            ));
        }
        done.extend(ready.iter().map(|c| c.name.clone()));
        stages.push(ready);
        pending = waiting;
    }
    Ok(stages)
}

/// Percent-encode a value for use in a path or query (RFC 3986 unreserved
/// characters stay as they are).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Like [`encode`], but an existing `%XX` escape stays as it is.
fn encode_keeping_escapes(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape = b == b'%'
            && bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        if escape {
            out.push_str(&value[i..i + 3]);
            i += 3;
            continue;
        }
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    out
}

impl Call {
    /// The path with captures and earlier results filled in, or why not.
    pub fn render(
        &self,
        captures: &BTreeMap<String, String>,
        results: &BTreeMap<String, Value>,
    ) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.path {
            match part {
                Part::Text(text) => out.push_str(text),
                // Re-encoded so a capture like `a&admin=1` cannot add
                // query parameters; escapes already in it are kept.
                Part::Capture(name) => out.push_str(&encode_keeping_escapes(
                    captures.get(name).map_or("", String::as_str),
                )),
                Part::Field(call, fields) => {
                    let mut value = results
                        .get(call)
                        .ok_or_else(|| format!("`{call}` has no result"))?;
                    for field in fields {
                        value = value.get(field).ok_or_else(|| {
                            format!("`{call}` has no field `{}`", fields.join("."))
                        })?;
                    }
                    let text = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(format!(
                                "`{call}.{}` is not a string or number",
                                fields.join(".")
                            ));
                        }
                    };
                    out.push_str(&encode(&text));
                }
            }
        }
        Ok(out)
    }
}

/// `value` narrowed to the given JSON pointers, rebuilt as nested objects:
/// `["/id", "/address/city"]` keeps `{"id": .., "address": {"city": ..}}`.
/// Pointers that find nothing are left out.
pub fn select(value: &Value, pointers: &[String]) -> Value {
    let mut out = Value::Object(serde_json::Map::new());
    for pointer in pointers {
        let Some(found) = value.pointer(pointer) else {
            continue;
        };
        let keys: Vec<String> = pointer[1..]
            .split('/')
            .map(|k| k.replace("~1", "/").replace("~0", "~"))
            .collect();
        let mut node = &mut out;
        for (i, key) in keys.iter().enumerate() {
            let Value::Object(map) = node else { break };
            if i + 1 == keys.len() {
                map.insert(key.clone(), found.clone());
                break;
            }
            node = map
                .entry(key.clone())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoint(calls: Value) -> Result<Endpoint, String> {
        let config: EndpointConfig =
            serde_json::from_value(json!({"path": "/users/{id}/summary", "calls": calls})).unwrap();
        Endpoint::compile(config)
    }

    #[test]
    fn calls_are_staged_by_dependency() {
        let e = endpoint(json!({
            "user": {"upstream": "u", "path": "/users/{id}"},
            "orders": {"upstream": "o", "path": "/orders?user={id}"},
            "plan": {"upstream": "b", "path": "/plans/{user.plan_id}"},
            "invoice": {"upstream": "b", "path": "/invoices/{plan.id}", "after": ["orders"]}
        }))
        .unwrap();
        let names: Vec<Vec<&str>> = e
            .stages
            .iter()
            .map(|s| s.iter().map(|c| c.name.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            vec![vec!["orders", "user"], vec!["plan"], vec!["invoice"]]
        );
    }

    #[test]
    fn bad_configs_say_why() {
        assert!(
            endpoint(json!({"a": {"upstream": "u", "path": "/{nope}"}}))
                .unwrap_err()
                .contains("not a capture")
        );
        assert!(
            endpoint(json!({"a": {"upstream": "u", "path": "/{b.x}"}}))
                .unwrap_err()
                .contains("unknown call `b`")
        );
        assert!(
            endpoint(json!({"a": {"upstream": "u", "path": "/", "after": "a"}}))
                .unwrap_err()
                .contains("itself")
        );
        let cycle = endpoint(json!({
            "a": {"upstream": "u", "path": "/{b.x}"},
            "b": {"upstream": "u", "path": "/{a.x}"}
        }))
        .unwrap_err();
        assert!(cycle.contains("cycle"), "{cycle}");
    }

    #[test]
    fn paths_match_and_render() {
        let e = endpoint(json!({
            "user": {"upstream": "u", "path": "/users/{id}"},
            "plan": {"upstream": "b", "path": "/plans/{user.plan.id}?q={id}"}
        }))
        .unwrap();
        assert!(e.matches("GET", "/users/7/summary").is_some());
        assert!(e.matches("POST", "/users/7/summary").is_none());
        assert!(e.matches("GET", "/users/7").is_none());
        assert!(e.matches("GET", "/users//summary").is_none());
        let captures = e.matches("GET", "/users/7/summary").unwrap();
        let mut results = BTreeMap::new();
        results.insert("user".to_string(), json!({"plan": {"id": "gold plan"}}));
        let plan = &e.stages[1][0];
        assert_eq!(
            plan.render(&captures, &results).unwrap(),
            "/plans/gold%20plan?q=7"
        );
        results.insert("user".to_string(), json!({}));
        assert!(
            plan.render(&captures, &results)
                .unwrap_err()
                .contains("no field `plan.id`")
        );
        // A capture cannot smuggle query parameters in.
        let sneaky = e.matches("GET", "/users/7&admin=1%2F/summary").unwrap();
        assert_eq!(
            e.stages[0][0].render(&sneaky, &results).unwrap(),
            "/users/7%26admin%3D1%2F"
        );
    }

    #[test]
    fn select_keeps_the_pointed_parts() {
        let v = json!({"id": 1, "name": "ada", "secret": "x", "address": {"city": "Paris", "zip": "75"}});
        let s = select(
            &v,
            &["/id".into(), "/address/city".into(), "/missing".into()],
        );
        assert_eq!(s, json!({"id": 1, "address": {"city": "Paris"}}));
    }
}
