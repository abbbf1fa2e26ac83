//! Calling a loaded plugin's hooks: one path for `on-request` and
//! `on-response` over an [`Exchange`], whatever the plugin's kind, with
//! the hook's span, its latency histogram, and failures attributed to the
//! plugin within its log budget.

use std::time::{Duration, Instant};

use super::{LoadedPlugin, Runner, States};
use crate::error::{GatewayError, PluginFailure};
use crate::exchange::{Exchange, HeldRequest, HeldResponse, Hook, HookFailure};
use crate::runtime::bindings::Action;
use crate::runtime::pool::Called;
use crate::telemetry::traces::Trace;

impl LoadedPlugin {
    /// Run the hook `ex` is for (`on-request`, or `on-response` when it
    /// carries a response) on whichever kind of plugin this is, with its
    /// span and its latency histogram. A failure is attributed to the
    /// plugin, and gives the exchange back when it still exists (for the
    /// `skip` failure policy and a canary's fallback).
    pub async fn call(&self, ex: Exchange) -> Ran {
        let hook = ex.hook();
        let started = Instant::now();
        let (ex, request_span) = self.enter_span(ex, hook);
        let outcome = match &self.runner {
            Runner::Component(pool) => pool.call(ex).await,
            Runner::ProxyWasm(filter) => match ex.resp {
                None => requested(filter.on_request(ex.req).await),
                Some(resp) => responded(filter.on_response(ex.req, resp).await),
            },
            Runner::WasiHttp(handler) => match ex.resp {
                None => requested(handler.on_request(ex.req).await),
                Some(resp) => responded(handler.on_response(ex.req, resp).await),
            },
        };
        let took = started.elapsed();
        let metrics = self.metrics();
        if metrics.enabled {
            match hook {
                Hook::Request => metrics.on_request.observe(took.as_secs_f64()),
                Hook::Response => metrics.on_response.observe(took.as_secs_f64()),
            }
        }
        let outcome = match outcome {
            Ok((mut ex, action)) => {
                leave_span(&mut ex.req, request_span, Some(&action));
                Ok((ex, action))
            }
            Err(HookFailure { error, mut kept }) => {
                fail_span(kept.as_mut().map(|ex| &mut ex.req), request_span, &error);
                Err(HookFailure {
                    error: self.failed(error),
                    kept,
                })
            }
        };
        Ran { outcome, took }
    }

    /// When the request is traced: start the hook's span and make it the
    /// request's current span (so `outbound` calls are its children);
    /// returns the request's own span to restore afterwards.
    fn enter_span(&self, mut ex: Exchange, hook: Hook) -> (Exchange, Option<(Trace, Trace)>) {
        let spans = ex.req.trace.take().map(|parent| {
            let span = parent.hook(self.name(), hook.name());
            (parent, span)
        });
        ex.req.trace = spans.as_ref().map(|(_, span)| span.clone());
        (ex, spans)
    }

    /// Attribute a failure to this plugin, count it, and log it. The line
    /// (a trap's comes with its wasm backtrace) comes out of the plugin's
    /// own log budget (`budgets.log_lines_per_second`): a plugin failing
    /// on every request would otherwise write the gateway's log at the
    /// request rate. Past the budget, lines are dropped and counted like
    /// the plugin's own; the failure is always counted and answered.
    pub fn failed(&self, failure: PluginFailure) -> GatewayError {
        self.metrics().failed(failure.cause());
        let error = GatewayError::Plugin {
            plugin: self.info.name.clone(),
            failure,
        };
        let message = error.to_string();
        if self.budget().admit_log(message.len()) {
            tracing::warn!("{message}");
        }
        error
    }
}

/// A hook call's outcome, as [`LoadedPlugin::call`] gives it, and how long
/// the call took (one clock reading serves the metrics and governance's
/// record).
pub struct Ran {
    /// The exchange back and the plugin's action, or why it failed.
    pub outcome: Result<(Exchange, Action), HookFailure<GatewayError>>,
    /// How long the call took.
    pub took: Duration,
}

/// A proxy-wasm filter's or `wasi:http` handler's `on-request` outcome as
/// a hook call's.
fn requested(
    outcome: Result<(HeldRequest, Action), (PluginFailure, Option<HeldRequest>)>,
) -> Called {
    match outcome {
        Ok((req, action)) => Ok((Exchange::request(req), action)),
        Err((error, kept)) => Err(HookFailure {
            error,
            kept: kept.map(Exchange::request),
        }),
    }
}

/// [`requested`] for `on-response`.
fn responded(
    outcome: Result<(HeldRequest, HeldResponse, Action), (PluginFailure, Option<States>)>,
) -> Called {
    match outcome {
        Ok((req, resp, action)) => Ok((Exchange::response(req, resp), action)),
        Err((error, kept)) => Err(HookFailure {
            error,
            kept: kept.map(|(req, resp)| Exchange::response(req, resp)),
        }),
    }
}

/// End a hook's span with its outcome and give the request its own span back.
fn leave_span(req: &mut HeldRequest, spans: Option<(Trace, Trace)>, action: Option<&Action>) {
    if let Some((parent, hook)) = spans {
        let outcome = match action {
            Some(Action::Respond(_)) => "respond",
            Some(Action::RespondThenContinue(_)) => "respond-then-continue",
            Some(Action::Wait(_)) => "wait",
            Some(Action::Continue) | None => "continue",
        };
        hook.set(opentelemetry::KeyValue::new("weir.outcome", outcome));
        hook.end();
        req.trace = Some(parent);
    }
}

/// End a failed hook's span with the failure and give the request (when it
/// still exists) its own span back.
fn fail_span(
    req: Option<&mut HeldRequest>,
    spans: Option<(Trace, Trace)>,
    failure: &PluginFailure,
) {
    if let Some((parent, hook)) = spans {
        hook.fail(failure.to_string());
        hook.end();
        if let Some(req) = req {
            req.trace = Some(parent);
        }
    }
}
