//! Weir's default validation plugin: requests checked per route against
//! JSON Schema (draft 2020-12 or 7) or an OpenAPI 3.0/3.1 document, before
//! the upstream sees them.
//!
//! It runs after the router (whose `route` and `route.param.*` context it
//! reads) and auth. A rule checks the JSON body, query parameters, headers
//! and path captures; with an OpenAPI document the operation is found by
//! method and path template, and its parameters, request body and content
//! types are enforced. A refusal is an RFC 9457 problem listing every
//! violation with its JSON pointer: 415 for a content type not accepted,
//! 400 for a body that is not JSON, 413 past the gateway's body limit, 422
//! for a well-formed request of the wrong shape. In report mode responses
//! are checked too, logged and counted, and never changed.
//!
//! Schemas are compiled once per instance, in `init`, with the `jsonschema`
//! crate (see `docs/validate.md` for why, and what it costs).

mod config;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod openapi;
mod operation;
mod params;
mod problem;
mod schema;
mod spec;
mod template;
mod yaml;

use std::collections::BTreeMap;

use config::{Checks, Config, Rule, Unknown};
use openapi::Found;
use schema::{Class, Violation};
use spec::{BodyProblem, Source, Spec};
use weir_sdk::metrics::Counter;
use weir_sdk::{Action, BodyError, Plugin, Request, Response, export_plugin};

/// The plugin.
pub struct Validate {
    default: Option<Rule>,
    routes: BTreeMap<String, Rule>,
    refused: Counter,
    responses_invalid: Counter,
}

/// Context key telling `on_response` which operation to check the response
/// against (`ITEM.OPERATION` in the OpenAPI document, `0.0` for schemas).
const REPORT: &str = "validate.report";

/// The request as the checks read it.
struct Live<'a> {
    req: &'a Request,
    /// OpenAPI's path captures; `None`: the router's, from the context.
    captures: Option<BTreeMap<String, Vec<String>>>,
}

impl Source for Live<'_> {
    fn path_params(&self, names: &[String]) -> BTreeMap<String, Vec<String>> {
        match &self.captures {
            Some(captures) => captures.clone(),
            None => names
                .iter()
                .filter_map(|n| {
                    let value = self.req.get_context(&format!("route.param.{n}"))?;
                    Some((n.clone(), vec![value]))
                })
                .collect(),
        }
    }

    fn query(&self) -> BTreeMap<String, Vec<String>> {
        self.req
            .query()
            .map(|q| params::parse_query(&q))
            .unwrap_or_default()
    }

    fn headers(&self) -> BTreeMap<String, Vec<String>> {
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in self.req.headers() {
            headers.entry(name).or_default().push(value);
        }
        headers
    }

    fn content_type(&self) -> Option<String> {
        self.req.header("content-type")
    }

    fn body(&self) -> Result<Vec<u8>, BodyProblem> {
        self.req.body().map_err(|e| match e {
            BodyError::TooLarge(limit) => BodyProblem::TooLarge(limit),
            BodyError::ReadFailed(why) => BodyProblem::Failed(why),
        })
    }
}

impl Plugin for Validate {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let (default, routes) = config::compile_all(config)?;
        let refused = Counter::define(
            "requests_refused",
            "Requests refused by validation, by route and status",
            &["route", "status"],
        )?;
        let responses_invalid = Counter::define(
            "responses_invalid",
            "Responses that do not match their schema (report mode), by route",
            &["route"],
        )?;
        Ok(Validate {
            default,
            routes,
            refused,
            responses_invalid,
        })
    }

    /// The routes with a rule, unless a `default` rule covers every route.
    fn routes(&self) -> Option<Vec<String>> {
        match self.default {
            Some(_) => None,
            None => Some(self.routes.keys().cloned().collect()),
        }
    }

    fn on_request(&mut self, req: &Request) -> Action {
        let route = req.get_context("route");
        let Some(rule) = self.rule(route.as_deref()) else {
            return Action::Continue;
        };
        let method = req.method();
        if !rule.applies_to(&method) {
            return Action::Continue;
        }
        let (spec, captures, index) = match &rule.checks {
            Checks::Schemas(spec) => (&**spec, None, (0, 0)),
            Checks::OpenApi(api, unknown) => match api.find(&method, &req.path()) {
                Found::Operation(spec, captures, index) => (spec, Some(captures), index),
                _ if *unknown == Unknown::Pass => return Action::Continue,
                Found::MethodNotAllowed(allowed) => {
                    let detail = format!("the document has no {method} operation here");
                    let reply = self.refuse(
                        405,
                        route.as_deref(),
                        &[Violation::new(Class::Shape, "", "operation", detail)],
                    );
                    return reply.header("allow", &allowed.join(", ")).into();
                }
                Found::Nothing => {
                    let detail = "the document describes no such path".to_string();
                    return self
                        .refuse(
                            404,
                            route.as_deref(),
                            &[Violation::new(Class::Shape, "", "operation", detail)],
                        )
                        .into();
                }
            },
        };
        let violations = spec.check(&Live { req, captures });
        if !violations.is_empty() {
            let status = problem::status_of(&violations);
            return self.refuse(status, route.as_deref(), &violations).into();
        }
        if rule.report_responses && !spec.responses.is_empty() {
            req.set_context(REPORT, &format!("{}.{}", index.0, index.1));
        }
        Action::Continue
    }

    fn on_response(&mut self, req: &Request, resp: &Response) -> Action {
        let Some(index) = req.get_context(REPORT) else {
            return Action::Continue;
        };
        let route = req.get_context("route");
        let Some(spec) = self.rule(route.as_deref()).and_then(|r| spec_at(r, &index)) else {
            return Action::Continue;
        };
        let violations = check_response(spec, resp);
        if let Some(first) = violations.first() {
            let route = route.unwrap_or_default();
            weir_sdk::warn!(
                "response {} on route `{route}` does not match its schema at `{}`: {} ({} violations in all)",
                resp.status(),
                first.pointer,
                first.detail,
                violations.len()
            );
            self.responses_invalid.inc(&[&route]);
        }
        Action::Continue
    }
}

impl Validate {
    fn rule(&self, route: Option<&str>) -> Option<&Rule> {
        route
            .and_then(|r| self.routes.get(r))
            .or(self.default.as_ref())
    }

    fn refuse(
        &self,
        status: u16,
        route: Option<&str>,
        violations: &[Violation],
    ) -> weir_sdk::Reply {
        self.refused
            .inc(&[route.unwrap_or(""), &status.to_string()]);
        problem::refusal(status, route, violations)
    }
}

/// The operation an `ITEM.OPERATION` index names.
fn spec_at<'a>(rule: &'a Rule, index: &str) -> Option<&'a Spec> {
    match &rule.checks {
        Checks::Schemas(spec) => Some(spec),
        Checks::OpenApi(api, _) => {
            let (item, op) = index.split_once('.')?;
            api.spec_at((item.parse().ok()?, op.parse().ok()?))
        }
    }
}

/// A response's violations of its schema (JSON bodies only).
fn check_response(spec: &Spec, resp: &Response) -> Vec<Violation> {
    let Some(validator) = spec.response_schema(resp.status()) else {
        return Vec::new();
    };
    let media = resp.header("content-type").map(|c| spec::media_type(&c));
    if !media.as_deref().is_some_and(spec::is_json) {
        return Vec::new();
    }
    // A body too large to buffer streams on unchecked.
    let Ok(body) = resp.body() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match serde_json::from_slice(&body) {
        Ok(value) => schema::check(validator, &value, "/body", &mut out),
        Err(e) => {
            let detail = format!("not valid JSON: {e}");
            out.push(Violation::new(Class::Malformed, "/body", "json", detail));
        }
    }
    out
}

export_plugin!(Validate);
