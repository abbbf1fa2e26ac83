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
    /// The draft of a schema that declares none (no `$schema`); `None`:
    /// 2020-12. A schema's own `$schema` always wins.
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
    // The compiler prefers a draft it is given to the schema's `$schema`,
    // so it is given one only for a schema that declares none.
    let declares = schema
        .as_object()
        .is_some_and(|s| s.get("$schema").is_some_and(Value::is_string));
    if let Some(draft) = dialect.draft.filter(|_| !declares) {
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
        errors_in(None, schema, instance)
    }

    /// The errors with the config's `draft` set to `draft`.
    fn errors_in(draft: Option<&str>, schema: Value, instance: Value) -> Vec<(String, String)> {
        let dialect = Dialect {
            draft: draft.map(|name| draft_named(name).unwrap()),
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
    fn a_schemas_own_dollar_schema_wins_over_the_configs_draft() {
        // 2020-12 keywords under a config that says draft 7.
        let modern = "https://json-schema.org/draft/2020-12/schema";
        let tuple = json!({"$schema": modern, "prefixItems": [{"type": "integer"}]});
        assert_eq!(errors_in(Some("7"), tuple, json!(["x"])).len(), 1);
        let dependent = json!({"$schema": modern, "dependentRequired": {"a": ["b"]}});
        assert_eq!(errors_in(Some("7"), dependent, json!({"a": 1})).len(), 1);
        // A draft-07 schema's array-form `items` under a config that says
        // 2020-12 (where `items` must be a schema) loads and applies.
        let old = "http://json-schema.org/draft-07/schema#";
        let items = json!({"$schema": old, "items": [{"type": "integer"}, {"type": "string"}]});
        assert_eq!(
            errors_in(Some("2020-12"), items.clone(), json!([1, "a"])).len(),
            0
        );
        assert_eq!(errors_in(Some("2020-12"), items, json!(["a", 1])).len(), 2);
        // Without `$schema`, the config's draft decides.
        let bare = json!({"items": [{"type": "integer"}]});
        assert_eq!(errors_in(Some("7"), bare.clone(), json!(["x"])).len(), 1);
        let bare_tuple = json!({"prefixItems": [{"type": "integer"}]});
        assert_eq!(errors_in(Some("7"), bare_tuple, json!(["x"])).len(), 0);
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
    fn internationalised_names_and_addresses_are_asserted() {
        // Cases of the JSON Schema Test Suite (draft 2020-12,
        // optional/format/idn-hostname.json, idn-email.json): the IDNA
        // rules of RFC 5890 to 5893, contextual rules included.
        let hostname = || json!({"type": "string", "format": "idn-hostname"});
        for valid in [
            "실례.테스트",
            "xn--ihqwcrb4cv8a8dqg056pqjye",
            "l\u{b7}l",
            "\u{3b1}\u{375}\u{3b2}",
            "\u{5d0}\u{5f3}\u{5d1}",
            "\u{30fb}\u{3041}",
        ] {
            assert!(
                errors(hostname(), json!(valid)).is_empty(),
                "{valid:?} refused"
            );
        }
        for invalid in [
            "\u{302e}실례.테스트",
            "실\u{302e}례.테스트",
            "-> $1.00 <--",
            "xn--X",
            "XN--aa---o47jg78q",
            "-hello",
            "hello-",
            "a\u{b7}l",
            "A\u{5f3}\u{5d1}",
            "def\u{30fb}abc",
            "\u{660}\u{6f0}",
        ] {
            assert_eq!(
                errors(hostname(), json!(invalid)).len(),
                1,
                "{invalid:?} passed"
            );
        }
        let email = || json!({"type": "string", "format": "idn-email"});
        assert!(errors(email(), json!("실례@실례.테스트")).is_empty());
        assert!(errors(email(), json!("joe.bloggs@example.com")).is_empty());
        assert_eq!(errors(email(), json!("2962")).len(), 1);
        assert_eq!(errors(email(), json!("실례@\u{302e}실례.테스트")).len(), 1);
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
