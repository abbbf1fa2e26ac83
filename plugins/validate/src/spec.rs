//! What one operation checks, however it was configured (JSON Schemas per
//! location, or an OpenAPI operation), and the checks themselves.

use std::collections::BTreeMap;

use jsonschema::Validator;
use serde_json::Value;

use crate::params::ParamSet;
use crate::schema::{self, Class, Violation};

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyProblem {
    TooLarge(u64),
    Failed(String),
}

/// The parts of a request the checks read, each only when needed.
pub trait Source {
    /// The path parameters with these names.
    fn path_params(&self, names: &[String]) -> BTreeMap<String, Vec<String>>;
    fn query(&self) -> BTreeMap<String, Vec<String>>;
    /// Headers by lower-case name.
    fn headers(&self) -> BTreeMap<String, Vec<String>>;
    fn content_type(&self) -> Option<String>;
    fn body(&self) -> Result<Vec<u8>, BodyProblem>;
}

/// One accepted media type of a body.
pub struct Media {
    /// `application/json`, `application/*`, `*/*`, `application/*+json`.
    pub pattern: String,
    /// The body schema, for JSON media types.
    pub schema: Option<Validator>,
}

/// The body's rules.
pub struct BodySpec {
    pub required: bool,
    pub media: Vec<Media>,
}

/// Everything checked for one operation.
#[derive(Default)]
pub struct Spec {
    pub path: Option<ParamSet>,
    pub query: Option<ParamSet>,
    pub headers: Option<ParamSet>,
    pub body: Option<BodySpec>,
    /// Response body schemas by status (`200`, `2XX`, `default`), for
    /// report mode.
    pub responses: Vec<(String, Validator)>,
}

/// The media type of a `Content-Type` value: lower-case, no parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether `media` is JSON: `application/json` or a `+json` type.
pub fn is_json(media: &str) -> bool {
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// Whether `media` fits `pattern` (`*` matches within the type or the
/// subtype, e.g. `application/*+json`).
pub fn media_matches(pattern: &str, media: &str) -> bool {
    let (Some((pt, ps)), Some((mt, ms))) = (pattern.split_once('/'), media.split_once('/')) else {
        return false;
    };
    let part = |p: &str, m: &str| match p.split_once('*') {
        None => p == m,
        Some((head, tail)) => {
            m.len() >= head.len() + tail.len() && m.starts_with(head) && m.ends_with(tail)
        }
    };
    part(pt, mt) && part(ps, ms)
}

impl Spec {
    /// Check a request; every violation is listed.
    pub fn check(&self, source: &dyn Source) -> Vec<Violation> {
        let mut out = Vec::new();
        if let Some(path) = &self.path {
            path.check(
                &source.path_params(path.names().unwrap_or_default()),
                "/path",
                &mut out,
            );
        }
        if let Some(query) = &self.query {
            query.check(&source.query(), "/query", &mut out);
        }
        if let Some(headers) = &self.headers {
            headers.check(&source.headers(), "/headers", &mut out);
        }
        if let Some(body) = &self.body {
            body.check(source, &mut out);
        }
        out
    }

    /// The response schema for `status`: exact, then `NXX`, then `default`.
    pub fn response_schema(&self, status: u16) -> Option<&Validator> {
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        [exact.as_str(), range.as_str(), "default"]
            .into_iter()
            .find_map(|wanted| {
                self.responses
                    .iter()
                    .find(|(s, _)| s.eq_ignore_ascii_case(wanted))
                    .map(|(_, v)| v)
            })
    }
}

impl BodySpec {
    fn check(&self, source: &dyn Source, out: &mut Vec<Violation>) {
        let body = match source.body() {
            Ok(body) => body,
            Err(BodyProblem::TooLarge(limit)) => {
                let detail = format!("the body is larger than {limit} bytes");
                out.push(Violation::new(Class::TooLarge, "/body", "size", detail));
                return;
            }
            Err(BodyProblem::Failed(why)) => {
                out.push(Violation::new(Class::Malformed, "/body", "read", why));
                return;
            }
        };
        if body.is_empty() {
            if self.required {
                let detail = "a body is required";
                out.push(Violation::new(Class::Shape, "/body", "required", detail));
            }
            return;
        }
        let Some((media, rule)) = self.accepted(source.content_type(), out) else {
            return;
        };
        if !is_json(&media) {
            return;
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(value) => {
                if let Some(validator) = &rule.schema {
                    schema::check(validator, &value, "/body", out);
                }
            }
            Err(e) => {
                let detail = format!("not valid JSON: {e}");
                out.push(Violation::new(Class::Malformed, "/body", "json", detail));
            }
        }
    }

    /// The media type of a body and the rule that accepts it, or a
    /// violation when none does.
    fn accepted(
        &self,
        content_type: Option<String>,
        out: &mut Vec<Violation>,
    ) -> Option<(String, &Media)> {
        let media = content_type.as_deref().map(media_type);
        let rule = media
            .as_deref()
            .and_then(|m| self.media.iter().find(|r| media_matches(&r.pattern, m)));
        if let (Some(media), Some(rule)) = (&media, rule) {
            return Some((media.clone(), rule));
        }
        let accepted: Vec<&str> = self.media.iter().map(|m| m.pattern.as_str()).collect();
        let detail = match media {
            Some(media) => format!("`{media}` is not accepted: {}", accepted.join(", ")),
            None => format!("a body needs a content type: {}", accepted.join(", ")),
        };
        let at = "/headers/content-type";
        out.push(Violation::new(Class::MediaType, at, "content-type", detail));
        None
    }
}

/// A request for unit tests.
#[cfg(test)]
pub mod testing {
    use super::*;

    #[derive(Debug, Clone, Default)]
    pub struct Request {
        pub path: BTreeMap<String, Vec<String>>,
        pub query: BTreeMap<String, Vec<String>>,
        pub headers: BTreeMap<String, Vec<String>>,
        pub content_type: Option<String>,
        pub body: Vec<u8>,
    }

    impl Request {
        pub fn body(content_type: &str, body: &str) -> Request {
            Request {
                content_type: Some(content_type.into()),
                body: body.as_bytes().to_vec(),
                ..Request::default()
            }
        }
        pub fn json(body: &str) -> Request {
            Request::body("application/json", body)
        }
        pub fn header(mut self, name: &str, value: &str) -> Request {
            self.headers
                .entry(name.into())
                .or_default()
                .push(value.into());
            self
        }
        pub fn query(mut self, name: &str, value: &str) -> Request {
            self.query
                .entry(name.into())
                .or_default()
                .push(value.into());
            self
        }
        pub fn path(mut self, captures: BTreeMap<String, Vec<String>>) -> Request {
            self.path = captures;
            self
        }
    }

    impl Source for Request {
        fn path_params(&self, names: &[String]) -> BTreeMap<String, Vec<String>> {
            self.path
                .iter()
                .filter(|(k, _)| names.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
        fn query(&self) -> BTreeMap<String, Vec<String>> {
            self.query.clone()
        }
        fn headers(&self) -> BTreeMap<String, Vec<String>> {
            self.headers.clone()
        }
        fn content_type(&self) -> Option<String> {
            self.content_type.clone()
        }
        fn body(&self) -> Result<Vec<u8>, BodyProblem> {
            Ok(self.body.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Dialect, compile};
    use serde_json::json;

    struct Fake {
        content_type: Option<&'static str>,
        body: Result<Vec<u8>, BodyProblem>,
    }

    impl Source for Fake {
        fn path_params(&self, _: &[String]) -> BTreeMap<String, Vec<String>> {
            BTreeMap::new()
        }
        fn query(&self) -> BTreeMap<String, Vec<String>> {
            BTreeMap::new()
        }
        fn headers(&self) -> BTreeMap<String, Vec<String>> {
            BTreeMap::new()
        }
        fn content_type(&self) -> Option<String> {
            self.content_type.map(str::to_string)
        }
        fn body(&self) -> Result<Vec<u8>, BodyProblem> {
            self.body.clone()
        }
    }

    fn body_spec(required: bool) -> Spec {
        let dialect = Dialect {
            draft: None,
            formats: true,
        };
        let schema = compile(
            &json!({"type": "object", "required": ["id"]}),
            dialect,
            None,
        )
        .unwrap();
        Spec {
            body: Some(BodySpec {
                required,
                media: vec![
                    Media {
                        pattern: "application/json".into(),
                        schema: Some(schema),
                    },
                    Media {
                        pattern: "text/*".into(),
                        schema: None,
                    },
                ],
            }),
            ..Spec::default()
        }
    }

    fn classes(
        spec: &Spec,
        content_type: Option<&'static str>,
        body: &str,
    ) -> Vec<(Class, String)> {
        let fake = Fake {
            content_type,
            body: Ok(body.as_bytes().to_vec()),
        };
        spec.check(&fake)
            .into_iter()
            .map(|v| (v.class, v.pointer))
            .collect()
    }

    #[test]
    fn bodies_are_checked_by_media_type_then_syntax_then_schema() {
        let spec = body_spec(true);
        let json = Some("application/json; charset=utf-8");
        assert_eq!(classes(&spec, json, r#"{"id": 1}"#), vec![]);
        assert_eq!(
            classes(&spec, json, "{}"),
            vec![(Class::Shape, "/body/id".into())]
        );
        assert_eq!(
            classes(&spec, json, "{nope"),
            vec![(Class::Malformed, "/body".into())]
        );
        let ct = "/headers/content-type".to_string();
        assert_eq!(
            classes(&spec, Some("application/xml"), "<a/>"),
            vec![(Class::MediaType, ct.clone())]
        );
        assert_eq!(classes(&spec, None, "{}"), vec![(Class::MediaType, ct)]);
        // Accepted but not JSON: no schema applies.
        assert_eq!(classes(&spec, Some("text/plain"), "hello"), vec![]);
        assert_eq!(
            classes(&spec, None, ""),
            vec![(Class::Shape, "/body".into())]
        );
        assert_eq!(classes(&body_spec(false), None, ""), vec![]);
        let large = Fake {
            content_type: json,
            body: Err(BodyProblem::TooLarge(10)),
        };
        assert_eq!(spec.check(&large)[0].class, Class::TooLarge);
    }

    #[test]
    fn media_types_match_with_wildcards() {
        assert!(media_matches("application/json", "application/json"));
        assert!(media_matches(
            "application/*+json",
            "application/merge-patch+json"
        ));
        assert!(!media_matches("application/*+json", "application/json"));
        assert!(media_matches("*/*", "text/plain"));
        assert!(!media_matches("application/json", "application/jsonx"));
        assert!(is_json("application/problem+json") && !is_json("text/json"));
        assert_eq!(
            media_type(" Application/JSON ; charset=utf-8"),
            "application/json"
        );
    }

    #[test]
    fn response_schemas_are_found_exact_then_range_then_default() {
        let dialect = Dialect {
            draft: None,
            formats: true,
        };
        let v = |t: &str| compile(&json!({"type": t}), dialect, None).unwrap();
        let spec = Spec {
            responses: vec![
                ("201".into(), v("object")),
                ("2XX".into(), v("array")),
                ("default".into(), v("string")),
            ],
            ..Spec::default()
        };
        assert!(spec.response_schema(201).unwrap().is_valid(&json!({})));
        assert!(spec.response_schema(200).unwrap().is_valid(&json!([])));
        assert!(spec.response_schema(500).unwrap().is_valid(&json!("x")));
        assert!(Spec::default().response_schema(200).is_none());
    }
}
