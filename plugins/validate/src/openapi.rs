//! OpenAPI 3.0 and 3.1 documents compiled into one [`Spec`] per operation:
//! its path, query and header parameters, its request body by media type,
//! and (for report mode) its JSON response bodies.
//!
//! The whole document is registered once under one URI, and each
//! schema is compiled as a `$ref` into it, so `#/components/...`
//! references resolve without copying. 3.1 schemas are JSON Schema
//! 2020-12; 3.0 schemas are compiled as draft 4 (their base) after
//! `nullable: true` is rewritten into a `"null"` type.

use std::collections::BTreeMap;

use jsonschema::{Draft, Registry};
use serde_json::{Value, json};

use crate::operation::{Compiler, DOC_URI};
use crate::schema::Dialect;
use crate::spec::Spec;
use crate::template::Template;

/// One path of the document and its operations.
pub struct PathItem {
    pub template: Template,
    /// `(METHOD, spec)`.
    pub operations: Vec<(String, Spec)>,
}

/// A compiled document.
pub struct Api {
    items: Vec<PathItem>,
}

/// What a request finds in the document.
pub enum Found<'a> {
    /// The operation, its path captures, and its index for [`Api::spec_at`].
    Operation(&'a Spec, BTreeMap<String, Vec<String>>, (usize, usize)),
    /// The path exists for these methods only.
    MethodNotAllowed(Vec<String>),
    /// No path of the document matches.
    Nothing,
}

impl Api {
    /// Compile `doc`; `report` also compiles response schemas.
    pub fn load(doc: Value, formats: bool, report: bool) -> Result<Api, String> {
        let version = doc
            .get("openapi")
            .and_then(Value::as_str)
            .ok_or("not an OpenAPI 3 document: no `openapi` version")?;
        let (draft, doc) = if version.starts_with("3.0") {
            (Draft::Draft4, nullable_to_type(doc))
        } else if version.starts_with("3.1") {
            (Draft::Draft202012, doc)
        } else {
            return Err(format!(
                "OpenAPI {version} is not supported (3.0 and 3.1 are)"
            ));
        };
        let registry = Registry::new()
            .draft(draft)
            .add(DOC_URI, draft.create_resource_ref(&doc))
            .and_then(|builder| builder.prepare())
            .map_err(|e| format!("the document's schemas: {e}"))?;
        let compiler = Compiler {
            doc: &doc,
            registry: &registry,
            dialect: Dialect {
                draft: Some(draft),
                formats,
            },
            report,
        };
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or("the document has no `paths`")?;
        let mut items = Vec::new();
        for (path, item) in paths {
            items.push(compiler.path_item(path, item)?);
        }
        Ok(Api { items })
    }

    /// The operation for `method` on `path`; the most concrete template
    /// wins when several match.
    pub fn find(&self, method: &str, path: &str) -> Found<'_> {
        let best = self
            .items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| item.template.matches(path).map(|c| (i, item, c)))
            .min_by_key(|(_, item, _)| item.template.rank());
        let Some((i, item, captures)) = best else {
            return Found::Nothing;
        };
        match item.operations.iter().position(|(m, _)| m == method) {
            Some(j) => Found::Operation(&item.operations[j].1, captures, (i, j)),
            None => {
                Found::MethodNotAllowed(item.operations.iter().map(|(m, _)| m.clone()).collect())
            }
        }
    }

    pub fn spec_at(&self, (item, operation): (usize, usize)) -> Option<&Spec> {
        self.items
            .get(item)?
            .operations
            .get(operation)
            .map(|(_, s)| s)
    }
}

/// OpenAPI 3.0's `nullable: true` as JSON Schema: `"null"` joins `type`
/// (and `enum`).
fn nullable_to_type(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            if map.remove("nullable") == Some(Value::Bool(true)) {
                match map.get_mut("type") {
                    Some(Value::String(t)) => {
                        let t = std::mem::take(t);
                        map.insert("type".into(), json!([t, "null"]));
                    }
                    Some(Value::Array(ts)) => ts.push(json!("null")),
                    _ => {}
                }
                if let Some(Value::Array(values)) = map.get_mut("enum") {
                    values.push(Value::Null);
                }
            }
            for v in map.values_mut() {
                *v = nullable_to_type(std::mem::take(v));
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = nullable_to_type(std::mem::take(v));
            }
        }
        _ => {}
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Class;
    use crate::spec::testing::Request;

    const ORDERS: &str = r##"
openapi: 3.1.0
info: {title: orders, version: "1"}
paths:
  /orders:
    parameters:
      - {name: X-Tenant, in: header, required: true, schema: {type: string, pattern: "^[a-z]+$"}}
    post:
      parameters:
        - {name: dry_run, in: query, schema: {type: boolean}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Order"}
      responses:
        "201":
          description: created
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Order"}
  /orders/{id}:
    get:
      parameters:
        - $ref: "#/components/parameters/Id"
      responses:
        "200": {description: ok}
  /orders/mine:
    get:
      responses:
        "200": {description: ok}
  /orders/{id}/lines/{line}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
        - {name: line, in: path, required: true, schema: {type: integer, maximum: 9}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: object}
components:
  parameters:
    Id: {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
  schemas:
    Order:
      type: object
      required: [item, qty]
      additionalProperties: false
      properties:
        item: {type: string}
        qty: {type: integer, minimum: 1}
        note: {type: [string, "null"]}
"##;

    fn api(text: &str) -> Api {
        Api::load(crate::yaml::parse_document(text).unwrap(), true, true).unwrap()
    }

    fn pointers(spec: &Spec, request: &Request) -> Vec<(Class, String)> {
        spec.check(request)
            .into_iter()
            .map(|v| (v.class, v.pointer))
            .collect()
    }

    #[test]
    fn operations_are_found_by_method_and_the_most_concrete_template() {
        let api = api(ORDERS);
        assert!(matches!(
            api.find("POST", "/orders"),
            Found::Operation(_, _, (0, 0))
        ));
        match api.find("GET", "/orders/7") {
            Found::Operation(_, captures, _) => assert_eq!(captures["id"], vec!["7"]),
            _ => panic!("not found"),
        }
        assert!(
            matches!(api.find("GET", "/orders/mine"), Found::Operation(_, c, _) if c.is_empty())
        );
        match api.find("DELETE", "/orders") {
            Found::MethodNotAllowed(allowed) => assert_eq!(allowed, vec!["POST"]),
            _ => panic!("expected 405"),
        }
        assert!(matches!(api.find("GET", "/nowhere"), Found::Nothing));
        assert!(api.spec_at((0, 0)).is_some() && api.spec_at((9, 0)).is_none());
    }

    #[test]
    fn parameters_bodies_and_references_are_enforced() {
        let api = api(ORDERS);
        let Found::Operation(post, _, _) = api.find("POST", "/orders") else {
            panic!("no POST /orders");
        };
        let good =
            Request::json(r#"{"item": "tea", "qty": 2, "note": null}"#).header("x-tenant", "acme");
        assert_eq!(pointers(post, &good), vec![]);
        let bad = Request::json(r#"{"qty": 0, "extra": 1}"#)
            .header("x-tenant", "ACME")
            .query("dry_run", "maybe");
        let found = pointers(post, &bad);
        for expected in [
            "/query/dry_run",
            "/headers/x-tenant",
            "/body/item",
            "/body/qty",
            "/body/extra",
        ] {
            assert!(
                found.contains(&(Class::Shape, expected.to_string())),
                "{expected}: {found:?}"
            );
        }
        let missing = Request::json("{}");
        assert!(
            pointers(post, &missing).contains(&(Class::Shape, "/headers/x-tenant".to_string()))
        );
        let wrong_type = Request::body("text/plain", "tea").header("x-tenant", "acme");
        assert_eq!(
            pointers(post, &wrong_type),
            vec![(Class::MediaType, "/headers/content-type".to_string())]
        );
        let Found::Operation(get, captures, _) = api.find("GET", "/orders/0") else {
            panic!("no GET /orders/{{id}}");
        };
        let request = Request::default().path(captures);
        assert_eq!(
            pointers(get, &request),
            vec![(Class::Shape, "/path/id".to_string())]
        );
        assert!(post.response_schema(201).is_some() && get.response_schema(200).is_none());
        // Inline parameters of a templated path (whose pointer holds braces).
        let Found::Operation(lines, captures, _) = api.find("GET", "/orders/7/lines/10") else {
            panic!("no GET /orders/{{id}}/lines/{{line}}");
        };
        let request = Request::default().path(captures);
        assert_eq!(
            pointers(lines, &request),
            vec![(Class::Shape, "/path/line".to_string())]
        );
    }

    #[test]
    fn openapi_3_0_nullable_is_understood() {
        let doc = ORDERS.replace("openapi: 3.1.0", "openapi: 3.0.3").replace(
            r#"note: {type: [string, "null"]}"#,
            "note: {type: string, nullable: true}",
        );
        let api = api(&doc);
        let Found::Operation(post, _, _) = api.find("POST", "/orders") else {
            panic!("no POST /orders");
        };
        let ok =
            Request::json(r#"{"item": "tea", "qty": 2, "note": null}"#).header("x-tenant", "acme");
        assert_eq!(pointers(post, &ok), vec![]);
        let bad =
            Request::json(r#"{"item": "tea", "qty": 2, "note": 5}"#).header("x-tenant", "acme");
        assert_eq!(
            pointers(post, &bad),
            vec![(Class::Shape, "/body/note".to_string())]
        );
    }

    #[test]
    fn bad_documents_are_refused_with_the_place() {
        for (doc, expected) in [
            (json!({"paths": {}}), "no `openapi`"),
            (json!({"openapi": "2.0", "paths": {}}), "not supported"),
            (json!({"openapi": "3.1.0"}), "no `paths`"),
            (
                json!({"openapi": "3.1.0", "paths": {"/a": {"get": {"parameters": [{"$ref": "#/nope"}]}}}}),
                "GET /a",
            ),
            (
                json!({"openapi": "3.1.0", "paths": {"/a": {"get": {"parameters": [{"$ref": "other.yaml#/x"}]}}}}),
                "within the document",
            ),
        ] {
            let err = Api::load(doc, true, false).err().expect("refused");
            assert!(err.contains(expected), "{err}");
        }
    }
}
