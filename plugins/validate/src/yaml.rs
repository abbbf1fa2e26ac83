//! Documents given as text (a `$file` include): JSON, or YAML 1.2 read with
//! `saphyr` (pure Rust, maintained; `serde_yaml` is deprecated) and turned
//! into the JSON value the schema compiler takes.

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{Map, Number, Value};

/// Parse `text` as JSON, or else as a single YAML document.
pub fn parse_document(text: &str) -> Result<Value, String> {
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let docs = Yaml::load_from_str(text).map_err(|e| format!("neither JSON nor YAML: {e}"))?;
    let mut docs = docs.into_iter();
    let (Some(doc), None) = (docs.next(), docs.next()) else {
        return Err("expected exactly one YAML document".into());
    };
    to_json(doc)
}

fn scalar(value: Scalar<'_>) -> Result<Value, String> {
    Ok(match value {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(b),
        Scalar::Integer(i) => Value::from(i),
        Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner())
            .map(Value::Number)
            .ok_or_else(|| format!("{f} has no JSON form"))?,
        Scalar::String(s) => Value::String(s.into_owned()),
    })
}

/// A mapping key as the string JSON needs (`200:` is the key `"200"`).
fn key(node: Yaml<'_>) -> Result<String, String> {
    match to_json(node)? {
        Value::String(s) => Ok(s),
        Value::Null => Ok("null".into()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err("mapping keys must be scalars".into()),
    }
}

fn to_json(node: Yaml<'_>) -> Result<Value, String> {
    match node {
        Yaml::Value(v) => scalar(v),
        Yaml::Representation(text, _, _) => Ok(Value::String(text.into_owned())),
        Yaml::Sequence(items) => items
            .into_iter()
            .map(to_json)
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Yaml::Mapping(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                map.insert(key(k)?, to_json(v)?);
            }
            Ok(Value::Object(map))
        }
        Yaml::Tagged(_, inner) => to_json(*inner),
        Yaml::Alias(_) => Err("YAML aliases are not supported; write the value out".into()),
        Yaml::BadValue => Err("a YAML value could not be read".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_becomes_json() {
        let doc = parse_document(
            "openapi: 3.1.0\npaths:\n  /orders:\n    post:\n      responses:\n        200:\n          description: ok\nnums: [1, 2.5, true, null, '7']\n",
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({
                "openapi": "3.1.0",
                "paths": {"/orders": {"post": {"responses": {"200": {"description": "ok"}}}}},
                "nums": [1, 2.5, true, null, "7"]
            })
        );
    }

    #[test]
    fn anchors_and_aliases_are_expanded() {
        assert_eq!(
            parse_document("a: &x [1]\nb: *x\n").unwrap(),
            json!({"a": [1], "b": [1]})
        );
    }

    #[test]
    fn json_text_is_read_as_json() {
        assert_eq!(parse_document(r#"{"a": [1]}"#).unwrap(), json!({"a": [1]}));
    }

    #[test]
    fn bad_documents_are_refused() {
        assert!(parse_document("a: [1, 2").is_err());
        assert!(parse_document("a: 1\n---\nb: 2\n").is_err());
    }
}
