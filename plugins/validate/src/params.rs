//! Parameters (query, headers, path captures) arrive as strings. They are
//! gathered into one JSON object per location and each value is coerced to
//! the type its schema asks for (`"7"` → 7 for an integer), so a schema
//! written for typed values works, and `"x"` still fails `type: integer`.

use std::collections::BTreeMap;

use jsonschema::Validator;
use serde_json::{Map, Number, Value};

use crate::schema::{self, Violation};

/// What a parameter's schema accepts, for coercion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kind {
    pub integer: bool,
    pub number: bool,
    pub boolean: bool,
    /// An array, with this kind of item.
    pub array: Option<Box<Kind>>,
}

/// Follow a local `$ref` (`#/...`) within `root`, a few hops at most.
fn resolve<'a>(mut schema: &'a Value, root: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let Some(pointer) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
        else {
            break;
        };
        match root.pointer(pointer) {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

/// The kind of `schema` (its `type`, through local references).
pub fn kind_of(schema: &Value, root: &Value) -> Kind {
    let schema = resolve(schema, root);
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    Kind {
        integer: types.contains(&"integer"),
        number: types.contains(&"number"),
        boolean: types.contains(&"boolean"),
        array: types.contains(&"array").then(|| {
            Box::new(
                schema
                    .get("items")
                    .map_or_else(Kind::default, |items| kind_of(items, root)),
            )
        }),
    }
}

/// The kinds of an object schema's `properties`.
pub fn property_kinds(schema: &Value, root: &Value) -> BTreeMap<String, Kind> {
    resolve(schema, root)
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, s)| (name.clone(), kind_of(s, root)))
                .collect()
        })
        .unwrap_or_default()
}

fn scalar(text: &str, kind: &Kind) -> Value {
    if kind.integer
        && let Ok(i) = text.parse::<i64>()
    {
        return Value::from(i);
    }
    if kind.number
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    if kind.boolean && matches!(text, "true" | "false") {
        return Value::Bool(text == "true");
    }
    Value::String(text.to_string())
}

/// How several values of one parameter are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Query (`form`, exploded): `?t=a&t=b` is an array; a scalar takes
    /// the first value.
    Form,
    /// Headers and path (`simple`): values joined with `,`; an array
    /// splits on `,`.
    Simple,
}

/// One parameter's value from its raw strings.
pub fn coerce(values: &[String], kind: &Kind, style: Style) -> Value {
    let joined;
    let items: Vec<&str> = match style {
        Style::Form => values.iter().map(String::as_str).collect(),
        Style::Simple => {
            joined = values.join(",");
            if kind.array.is_some() {
                joined.split(',').map(str::trim).collect()
            } else {
                vec![joined.as_str()]
            }
        }
    };
    match &kind.array {
        Some(item) => Value::Array(items.iter().map(|v| scalar(v, item)).collect()),
        None => items.first().map_or(Value::Null, |v| scalar(v, kind)),
    }
}

/// The checks of one location.
pub struct ParamSet {
    validator: Validator,
    kinds: BTreeMap<String, Kind>,
    style: Style,
    /// Read only these names (OpenAPI's declared parameters); `None`:
    /// everything the request has.
    names: Option<Vec<String>>,
}

impl ParamSet {
    pub fn new(
        validator: Validator,
        kinds: BTreeMap<String, Kind>,
        style: Style,
        names: Option<Vec<String>>,
    ) -> ParamSet {
        ParamSet {
            validator,
            kinds,
            style,
            names,
        }
    }

    /// The names to read when not everything is (path captures).
    pub fn names(&self) -> Option<&[String]> {
        self.names.as_deref()
    }

    /// Build the object from `present` (name → raw values) and check it.
    pub fn check(
        &self,
        present: &BTreeMap<String, Vec<String>>,
        prefix: &str,
        out: &mut Vec<Violation>,
    ) {
        let mut object = Map::new();
        for (name, values) in present {
            if self.names.as_ref().is_some_and(|n| !n.contains(name)) {
                continue;
            }
            let kind = self.kinds.get(name).cloned().unwrap_or_default();
            object.insert(name.clone(), coerce(values, &kind, self.style));
        }
        schema::check(&self.validator, &Value::Object(object), prefix, out);
    }
}

/// Percent-decode (`+` is a space, as in forms); invalid UTF-8 is replaced.
pub fn decode(text: &str) -> String {
    // `+` first: a `%2B` decodes to a `+` that stays one.
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// A query string as name → values, decoded, in order.
pub fn parse_query(query: &str) -> BTreeMap<String, Vec<String>> {
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        params.entry(decode(name)).or_default().push(decode(value));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values_take_the_type_their_schema_asks_for() {
        let root = json!({"$defs": {"n": {"type": "integer"}}});
        let int = kind_of(&json!({"$ref": "#/$defs/n"}), &root);
        assert_eq!(coerce(&values(&["7"]), &int, Style::Form), json!(7));
        assert_eq!(coerce(&values(&["x"]), &int, Style::Form), json!("x"));
        let num = kind_of(&json!({"type": ["number", "null"]}), &root);
        assert_eq!(coerce(&values(&["2.5"]), &num, Style::Form), json!(2.5));
        let flag = kind_of(&json!({"type": "boolean"}), &root);
        assert_eq!(
            coerce(&values(&["true"]), &flag, Style::Simple),
            json!(true)
        );
        assert_eq!(
            coerce(&values(&["yes"]), &flag, Style::Simple),
            json!("yes")
        );
        let text = Kind::default();
        assert_eq!(coerce(&values(&["007"]), &text, Style::Form), json!("007"));
    }

    #[test]
    fn arrays_come_from_repeats_in_queries_and_commas_in_headers() {
        let ints = kind_of(
            &json!({"type": "array", "items": {"type": "integer"}}),
            &json!({}),
        );
        assert_eq!(
            coerce(&values(&["1", "2"]), &ints, Style::Form),
            json!([1, 2])
        );
        assert_eq!(
            coerce(&values(&["1, 2", "3"]), &ints, Style::Simple),
            json!([1, 2, 3])
        );
        let text = Kind::default();
        assert_eq!(coerce(&values(&["a", "b"]), &text, Style::Form), json!("a"));
        assert_eq!(
            coerce(&values(&["a", "b"]), &text, Style::Simple),
            json!("a,b")
        );
    }

    #[test]
    fn queries_decode() {
        let q = parse_query("a=1&b=x%20y&a=2&c&d=a+b&&e=%zz");
        assert_eq!(q["a"], values(&["1", "2"]));
        assert_eq!(q["b"], values(&["x y"]));
        assert_eq!(q["c"], values(&[""]));
        assert_eq!(q["d"], values(&["a b"]));
        assert_eq!(q["e"], values(&["%zz"]));
    }
}
