//! Weir's default aggregation plugin: answers composite endpoints itself by
//! calling several upstreams through the host's `outbound.send-all`, so the
//! calls of a stage run concurrently on the host, and merging their JSON
//! into one document.
//!
//! A request that matches no endpoint passes on untouched, so `aggregate`
//! and `router` coexist: give the router a route without an upstream for an
//! endpoint's path, so auth and rate limits apply to it by name.

mod config;
mod plan;

use std::collections::BTreeMap;

use plan::{Call, Endpoint};
use serde_json::{Map, Value, json};
use weir_sdk::outbound::{self, CallError, CallResponse};
use weir_sdk::{Action, Hooks, Plugin, Reply, Request, export_plugin};

/// The plugin.
pub struct Aggregate {
    endpoints: Vec<Endpoint>,
}

/// Why a call gave no usable JSON.
struct Failure {
    /// 504 for a timeout, 502 otherwise.
    timeout: bool,
    message: String,
}

fn failure_of(error: &CallError) -> Failure {
    Failure {
        timeout: matches!(error, CallError::Timeout),
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
        Ok(Aggregate { endpoints })
    }

    fn on_request(&mut self, req: &Request) -> Action {
        let (method, path) = (req.method(), req.path());
        let Some((endpoint, captures)) = self
            .endpoints
            .iter()
            .find_map(|e| e.matches(&method, &path).map(|c| (e, c)))
        else {
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
                        let failure = Failure {
                            timeout: false,
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
            for ((call, _), response) in ready.iter().zip(responses) {
                match parse(response, endpoint.max_body_bytes) {
                    Ok(value) => {
                        let value = match endpoint.select.get(&call.name) {
                            Some(pointers) => plan::select(&value, pointers),
                            None => value,
                        };
                        results.insert(call.name.clone(), value);
                    }
                    Err(failure) => {
                        if let Some(reply) =
                            settle_failure(call, failure, &mut results, &mut errors)
                        {
                            return reply;
                        }
                    }
                }
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
    let (status, error) = if failure.timeout {
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
    let fail = |message: String| Failure {
        timeout: false,
        message,
    };
    if !(200..300).contains(&response.status) {
        return Err(fail(format!("status {}", response.status)));
    }
    if response.body.len() > max_body {
        return Err(fail(format!("response larger than {max_body} bytes")));
    }
    serde_json::from_slice(&response.body).map_err(|e| fail(format!("response is not JSON: {e}")))
}

export_plugin!(Aggregate);
