//! Compiling schemas (once, in `init`) with the `jsonschema` crate, and
//! turning its errors into the problem details' `errors` list: one item per
//! error, each with the JSON pointer of the offending value.

use jsonschema::{Draft, Registry, ValidationError, Validator};
use serde::Serialize;
use serde_json::Value;

/// Most errors listed in one answer; a 10 MB array of wrong items must not
/// make a 10 MB reply.
pub const MAX_ERRORS: usize = 100;

/// How a schema is compiled.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// `None`: from the schema's `$schema`, else 2020-12.
    pub draft: Option<Draft>,
    /// Assert `format` (email, date-time, uuid, ...) rather than only
    /// annotate, as 2020-12 does by default.
    pub formats: bool,
}

/// Parse the config's `draft` name.
pub fn draft_named(name: &str) -> Result<Draft, String> {
    match name {
        "2020-12" => Ok(Draft::Draft202012),
        "2019-09" => Ok(Draft::Draft201909),
        "7" => Ok(Draft::Draft7),
        "6" => Ok(Draft::Draft6),
        "4" => Ok(Draft::Draft4),
        other => Err(format!(
            "draft `{other}` is not one of 2020-12, 2019-09, 7, 6, 4"
        )),
    }
}

/// Compile `schema`, resolving references in `registry` when given. No
/// reference is ever fetched: a plugin has no network or files.
pub fn compile(
    schema: &Value,
    dialect: Dialect,
    registry: Option<&Registry<'_>>,
) -> Result<Validator, String> {
    let mut options = jsonschema::options()
        .offline()
        .should_validate_formats(dialect.formats);
    if let Some(draft) = dialect.draft {
        options = options.with_draft(draft);
    }
    if let Some(registry) = registry {
        options = options.with_registry(registry);
    }
    options.build(schema).map_err(|e| e.to_string())
}

/// What kind of problem an error is, which decides the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Class {
    /// Parsed, but not the shape the schema wants: 422.
    Shape,
    /// Not parseable (not JSON): 400.
    Malformed,
    /// A content type the operation does not take: 415.
    MediaType,
    /// A body larger than the gateway buffers: 413.
    TooLarge,
}

impl Class {
    pub fn status(self) -> u16 {
        match self {
            Class::Shape => 422,
            Class::Malformed => 400,
            Class::MediaType => 415,
            Class::TooLarge => 413,
        }
    }
}

/// One problem with a request (an item of the problem's `errors`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer into `{"body": ..., "query": ..., "headers": ..., "path": ...}`.
    pub pointer: String,
    pub detail: String,
    /// The schema keyword that failed (`required`, `type`, ...) or, for
    /// problems found before any schema, what was checked.
    pub keyword: String,
    #[serde(skip)]
    pub class: Class,
}

impl Violation {
    pub fn new(class: Class, pointer: &str, keyword: &str, detail: impl Into<String>) -> Violation {
        Violation {
            pointer: pointer.to_string(),
            detail: detail.into(),
            keyword: keyword.to_string(),
            class,
        }
    }
}

/// RFC 6901 escaping of one pointer segment.
pub fn escape_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Append the errors of `instance` against `validator`, pointers under
/// `prefix` (e.g. `/body`).
pub fn check(validator: &Validator, instance: &Value, prefix: &str, out: &mut Vec<Violation>) {
    if validator.is_valid(instance) {
        return;
    }
    for error in validator.iter_errors(instance) {
        if out.len() >= MAX_ERRORS {
            return;
        }
        push_error(&error, prefix, out);
    }
}

fn push_error(error: &ValidationError<'_>, prefix: &str, out: &mut Vec<Violation>) {
    use jsonschema::error::ValidationErrorKind as Kind;
    let at = format!("{prefix}{}", error.instance_path().as_str());
    let keyword = error.kind().keyword().to_string();
    match error.kind() {
        // Point at the member itself, which is where a client looks.
        Kind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string);
            let pointer = format!("{at}/{}", escape_segment(&name));
            out.push(Violation::new(
                Class::Shape,
                &pointer,
                &keyword,
                "is required",
            ));
        }
        Kind::AdditionalProperties { unexpected } => {
            for name in unexpected {
                let pointer = format!("{at}/{}", escape_segment(name));
                out.push(Violation::new(
                    Class::Shape,
                    &pointer,
                    &keyword,
                    "is not allowed",
                ));
            }
        }
        // The value is masked: a client's data is never echoed back.
        _ => out.push(Violation::new(
            Class::Shape,
            &at,
            &keyword,
            error.masked().to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(schema: Value, instance: Value) -> Vec<(String, String)> {
        let dialect = Dialect {
            draft: None,
            formats: true,
        };
        let validator = compile(&schema, dialect, None).unwrap();
        let mut out = Vec::new();
        check(&validator, &instance, "/body", &mut out);
        out.into_iter().map(|v| (v.pointer, v.keyword)).collect()
    }

    #[test]
    fn every_error_is_listed_with_its_pointer() {
        let schema = json!({
            "type": "object",
            "required": ["name", "qty"],
            "additionalProperties": false,
            "properties": {"name": {"type": "string"}, "qty": {"type": "integer"},
                           "items": {"type": "array", "items": {"type": "integer"}},
                           "a/b": {"type": "string"}}
        });
        let found = errors(
            schema,
            json!({"qty": "x", "items": [1, "2"], "a/b": 1, "extra": 1}),
        );
        let p = |a: &str, b: &str| (a.to_string(), b.to_string());
        for expected in [
            p("/body/name", "required"),
            p("/body/qty", "type"),
            p("/body/items/1", "type"),
            p("/body/a~1b", "type"),
            p("/body/extra", "additionalProperties"),
        ] {
            assert!(found.contains(&expected), "{expected:?} not in {found:?}");
        }
        assert_eq!(found.len(), 5, "{found:?}");
    }

    #[test]
    fn drafts_come_from_dollar_schema_or_the_config() {
        // Draft 7: `exclusiveMinimum` is a number; 2020-12 `$defs`/`prefixItems` work.
        let draft7 =
            json!({"$schema": "http://json-schema.org/draft-07/schema#", "exclusiveMinimum": 5});
        assert_eq!(errors(draft7, json!(5)).len(), 1);
        let modern = json!({"prefixItems": [{"type": "string"}], "items": false});
        assert_eq!(errors(modern.clone(), json!(["a"])).len(), 0);
        assert_eq!(errors(modern, json!(["a", 1])).len(), 1);
        assert!(draft_named("7").is_ok() && draft_named("3").is_err());
    }

    #[test]
    fn formats_are_asserted_and_values_never_echoed() {
        let schema = json!({"type": "string", "format": "email"});
        let validator = compile(
            &schema,
            Dialect {
                draft: None,
                formats: true,
            },
            None,
        )
        .unwrap();
        let mut out = Vec::new();
        check(&validator, &json!("secret-not-an-email"), "/body", &mut out);
        assert_eq!(out.len(), 1);
        assert!(!out[0].detail.contains("secret"), "{}", out[0].detail);
    }

    #[test]
    fn listing_stops_at_the_cap() {
        let many: Vec<Value> = (0..500).map(|_| json!("x")).collect();
        let found = errors(json!({"items": {"type": "integer"}}), Value::Array(many));
        assert_eq!(found.len(), MAX_ERRORS);
    }

    #[test]
    fn bad_schemas_are_refused() {
        let dialect = Dialect {
            draft: None,
            formats: true,
        };
        assert!(compile(&json!({"type": 5}), dialect, None).is_err());
        assert!(
            compile(
                &json!({"$ref": "https://example.com/x.json"}),
                dialect,
                None
            )
            .is_err()
        );
    }
}
