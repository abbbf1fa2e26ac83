//! Weir's default aggregation plugin: answers composite endpoints itself by
//! calling several upstreams through the host's `outbound.send-all`, so the
//! calls of a stage run concurrently on the host, and merging their JSON
//! into one document.
//!
//! A request that matches no endpoint passes on untouched, so `aggregate`
//! and `router` coexist: give the router a route without an upstream for an
//! endpoint's path, so auth and rate limits apply to it by name.
//!
//! Every call is counted in the `calls` metric
//! (`weir_plugin_aggregate_calls_total{upstream, outcome}`).

mod config;
mod plan;

use std::collections::BTreeMap;

use plan::{Call, Endpoint};
use serde_json::{Map, Value, json};
use weir_sdk::metrics::Counter;
use weir_sdk::outbound::{self, CallError, CallResponse};
use weir_sdk::{Action, Hooks, Plugin, Reply, Request, export_plugin};

/// The plugin.
pub struct Aggregate {
    endpoints: Vec<Endpoint>,
    calls: Counter,
}

/// What became of one call, in the `outcome` label of the `calls` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A 2xx answer with a JSON body within the limit.
    Ok,
    /// An answer with a status other than 2xx.
    Status,
    /// A 2xx answer whose body is not JSON or is too large.
    Invalid,
    /// No answer within the call's timeout.
    Timeout,
    /// No answer: no connection could be made, or it broke.
    Error,
    /// The host did not make the call: unknown or ungranted upstream, an
    /// invalid request, or an outbound budget.
    Refused,
    /// Not made: a call it depends on failed, or a field its path needs is
    /// missing.
    Skipped,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Status => "status",
            Outcome::Invalid => "invalid",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
            Outcome::Refused => "refused",
            Outcome::Skipped => "skipped",
        }
    }
}

/// Why a call gave no usable JSON.
struct Failure {
    /// `Timeout` answers 504, anything else 502.
    outcome: Outcome,
    message: String,
}

fn failure_of(error: &CallError) -> Failure {
    let outcome = match error {
        CallError::Timeout => Outcome::Timeout,
        CallError::ConnectFailed(_) | CallError::Failed(_) => Outcome::Error,
        CallError::TooLarge(_) => Outcome::Invalid,
        CallError::UnknownUpstream(_)
        | CallError::InvalidRequest(_)
        | CallError::NotGranted(_)
        | CallError::BudgetExceeded(_) => Outcome::Refused,
    };
    Failure {
        outcome,
        message: match error {
            CallError::Timeout => "timed out".into(),
            CallError::TooLarge(limit) => format!("response larger than {limit} bytes"),
            other => other.to_string(),
        },
    }
}

impl Plugin for Aggregate {
    type Config = config::Config;
    const HOOKS: Hooks = Hooks::ON_REQUEST;

    fn new(config: config::Config) -> Result<Self, String> {
        let endpoints = config
            .endpoints
            .into_iter()
            .map(Endpoint::compile)
            .collect::<Result<Vec<_>, _>>()?;
        let calls = Counter::define(
            "calls",
            "Calls to upstreams by upstream and outcome \
             (ok, status, invalid, timeout, error, refused, skipped)",
            &["upstream", "outcome"],
        )?;
        Ok(Aggregate { endpoints, calls })
    }

    /// The endpoints' routes, when every endpoint names one.
    fn routes(&self) -> Option<Vec<String>> {
        self.endpoints.iter().map(|e| e.route.clone()).collect()
    }

    fn on_request(&mut self, req: &Request) -> Action {
        let (method, path) = (req.method(), req.path());
        // Asked at most once, and only if an endpoint names a route.
        let mut route: Option<Option<String>> = None;
        let Some((endpoint, captures)) = self.endpoints.iter().find_map(|e| {
            let captures = e.matches(&method, &path)?;
            if let Some(wanted) = &e.route {
                let routed = route.get_or_insert_with(|| req.get_context("route"));
                if routed.as_ref() != Some(wanted) {
                    return None;
                }
            }
            Some((e, captures))
        }) else {
            return Action::Continue;
        };
        let headers: Vec<(String, String)> = endpoint
            .forward_headers
            .iter()
            .flat_map(|name| {
                req.header_all(name)
                    .into_iter()
                    .map(move |v| (name.clone(), v))
            })
            .collect();

        let mut results: BTreeMap<String, Value> = BTreeMap::new();
        let mut errors = Map::new();
        for stage in &endpoint.stages {
            // Calls whose dependencies failed fail too, without being made.
            let mut ready: Vec<(&Call, String)> = Vec::new();
            for call in stage {
                let failed_need = call
                    .needs
                    .iter()
                    .find(|n| !results.contains_key(*n) || results[*n].is_null());
                let rendered = match failed_need {
                    Some(need) => Err(format!("depends on `{need}`, which failed")),
                    None => call.render(&captures, &results),
                };
                match rendered {
                    Ok(path) => ready.push((call, path)),
                    Err(message) => {
                        self.count(call, Outcome::Skipped);
                        let failure = Failure {
                            outcome: Outcome::Skipped,
                            message,
                        };
                        if let Some(reply) =
                            settle_failure(call, failure, &mut results, &mut errors)
                        {
                            return reply;
                        }
                    }
                }
            }
            let calls: Vec<outbound::Call> = ready
                .iter()
                .map(|(call, path)| {
                    let mut c = outbound::Call::new(&call.upstream, &call.method, path)
                        .header("accept", "application/json");
                    c.headers.extend(headers.iter().cloned());
                    c.timeout_ms = call.timeout_ms;
                    c
                })
                .collect();
            let responses = outbound::send_all(&calls);
            // Every call made is counted, those after a required failure too.
            let mut failed: Option<Action> = None;
            for ((call, _), response) in ready.iter().zip(responses) {
                let parsed = parse(response, endpoint.max_body_bytes);
                self.count(
                    call,
                    parsed.as_ref().map_or_else(|f| f.outcome, |_| Outcome::Ok),
                );
                if failed.is_some() {
                    continue;
                }
                match parsed {
                    Ok(value) => {
                        let value = match endpoint.select.get(&call.name) {
                            Some(pointers) => plan::select(&value, pointers),
                            None => value,
                        };
                        results.insert(call.name.clone(), value);
                    }
                    Err(failure) => {
                        failed = settle_failure(call, failure, &mut results, &mut errors);
                    }
                }
            }
            if let Some(reply) = failed {
                return reply;
            }
        }

        let mut document: Map<String, Value> = results.into_iter().collect();
        let partial = !errors.is_empty();
        if partial {
            document.insert("_errors".into(), Value::Object(errors));
        }
        let mut reply = Reply::json(200, &Value::Object(document));
        if partial {
            reply = reply.header("x-weir-partial", "true");
        }
        reply.into()
    }
}

impl Aggregate {
    fn count(&self, call: &Call, outcome: Outcome) {
        self.calls.inc(&[&call.upstream, outcome.label()]);
    }
}

/// Record a failed call: `null` and an `_errors` entry if it is optional,
/// else the error reply for the whole request.
fn settle_failure(
    call: &Call,
    failure: Failure,
    results: &mut BTreeMap<String, Value>,
    errors: &mut Map<String, Value>,
) -> Option<Action> {
    if call.optional {
        results.insert(call.name.clone(), Value::Null);
        errors.insert(call.name.clone(), Value::String(failure.message));
        return None;
    }
    let (status, error) = if failure.outcome == Outcome::Timeout {
        (504, "upstream call timed out")
    } else {
        (502, "upstream call failed")
    };
    weir_sdk::warn!(
        "call `{}` to `{}` failed: {}",
        call.name,
        call.upstream,
        failure.message
    );
    let body = json!({"error": error, "call": call.name, "cause": failure.message});
    Some(Reply::json(status, &body).into())
}

/// A call's response as JSON: a 2xx status, a body within the limit, valid JSON.
fn parse(response: Result<CallResponse, CallError>, max_body: usize) -> Result<Value, Failure> {
    let response = response.map_err(|e| failure_of(&e))?;
    let fail = |outcome: Outcome, message: String| Failure { outcome, message };
    if !(200..300).contains(&response.status) {
        return Err(fail(Outcome::Status, format!("status {}", response.status)));
    }
    if response.body.len() > max_body {
        return Err(fail(
            Outcome::Invalid,
            format!("response larger than {max_body} bytes"),
        ));
    }
    serde_json::from_slice(&response.body)
        .map_err(|e| fail(Outcome::Invalid, format!("response is not JSON: {e}")))
}

export_plugin!(Aggregate);
