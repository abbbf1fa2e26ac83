//! The `outbound` capability: HTTP calls from a plugin to the configured
//! upstreams, only to those its capability grant names, held to its
//! outbound budgets (calls per hook call, calls in flight) and traced as
//! children of the hook's span.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::OutboundCalls;
use crate::error::UpstreamFailure;
use crate::http::body::{BodyState, BufferError};
use crate::http::headers::strip_hop_by_hop;
use crate::runtime::bindings::weir::plugin::outbound;
use crate::runtime::host::{HostState, within};
use crate::telemetry::traces::Trace;
use crate::upstream::Upstreams;
use crate::upstream::{Affinity, Head, Outgoing};

type Res<T> = wasmtime::Result<T>;

pub(crate) type CallResult = Result<outbound::CallResponse, outbound::CallError>;

impl HostState {
    /// Take `n` calls from the hook call's budget; how many were granted.
    fn take_outbound_calls(&mut self, n: usize) -> usize {
        let limit = self.caps.budgets.outbound_calls_per_hook;
        let left = limit.saturating_sub(self.outbound_calls) as usize;
        let granted = n.min(left);
        self.outbound_calls = self.outbound_calls.saturating_add(granted as u32);
        granted
    }

    /// The error for a call past the per-hook budget.
    fn over_calls_per_hook(&self) -> outbound::CallError {
        outbound::CallError::BudgetExceeded(format!(
            "a hook call may make at most {} outbound calls (budgets.outbound_calls_per_hook)",
            self.caps.budgets.outbound_calls_per_hook
        ))
    }
}

/// What every call of one `send`/`send-all` shares: the upstreams, the
/// plugin's budget, the body cap and the hook's span.
pub(crate) type CallState = (
    Arc<dyn OutboundCalls>,
    Arc<crate::runtime::budget::PluginBudget>,
    u64,
    Option<Trace>,
);

/// Make one call within the plugin's in-flight budget, with its path
/// normalized as a client's would be; traced as a child of the hook's span
/// when the request is.
pub(crate) async fn budgeted_call(state: CallState, mut call: outbound::Call) -> CallResult {
    let (outbound, budget, max_body, trace) = state;
    let span = trace.map(|hook| {
        let method = http::Method::from_bytes(call.method.as_bytes()).unwrap_or(http::Method::GET);
        let span = hook.client("outbound", &call.upstream, &method);
        let mut headers = http::HeaderMap::new();
        span.inject(&mut headers);
        call.headers.retain(|(name, _)| {
            !matches!(
                name.to_ascii_lowercase().as_str(),
                "traceparent" | "tracestate"
            )
        });
        for (name, value) in &headers {
            if let Ok(value) = value.to_str() {
                call.headers
                    .push((name.as_str().to_string(), value.to_string()));
            }
        }
        span
    });
    let result = budgeted_call_untraced(outbound, budget, max_body, call).await;
    if let Some(span) = span {
        match &result {
            Ok(response) => span.set(opentelemetry::KeyValue::new(
                "http.response.status_code",
                i64::from(response.status),
            )),
            Err(error) => span.fail(format!("{error:?}")),
        }
        span.end();
    }
    result
}

async fn budgeted_call_untraced(
    outbound: Arc<dyn OutboundCalls>,
    budget: Arc<crate::runtime::budget::PluginBudget>,
    max_body: u64,
    mut call: outbound::Call,
) -> CallResult {
    let slot = budget
        .outbound_slot()
        .map_err(outbound::CallError::BudgetExceeded)?;
    call.path_with_query = crate::http::normalize::normalize_path_and_query(&call.path_with_query)
        .map_err(|e| {
            outbound::CallError::InvalidRequest(format!("path `{}`: {e}", call.path_with_query))
        })?
        .as_str()
        .to_string();
    let result = outbound.call(call, max_body).await;
    drop(slot);
    result
}

impl HostState {
    /// `not-granted`, logged, for a call to an upstream outside the
    /// plugin's `outbound:...` grant; `None` when the call may go on. A name
    /// that is no upstream at all is left to `unknown-upstream`.
    ///
    /// The plugin decides how often this happens (a loop of calls, every
    /// request), so the warning comes out of the plugin's own log budget
    /// (`budgets.log_lines_per_second`): past it, lines are dropped and
    /// counted like the plugin's own. The refusal itself is never dropped.
    pub(crate) fn refuse_ungranted(&self, upstream: &str) -> Option<outbound::CallError> {
        if self.grants.allows_upstream(upstream) || !self.caps.outbound.knows(upstream) {
            return None;
        }
        let plugin = &*self.plugin;
        let message = format!(
            "outbound call refused: upstream `{upstream}` is not in the plugin's grant \
             ([plugins.{plugin}] capabilities)"
        );
        if self.budget.admit_log(message.len()) {
            tracing::warn!(plugin, upstream, "{message}");
        }
        Some(outbound::CallError::NotGranted(upstream.to_string()))
    }

    /// `send-all` of calls already checked against the grant.
    async fn send_granted(&mut self, calls: Vec<outbound::Call>) -> Res<Vec<CallResult>> {
        let granted = self.take_outbound_calls(calls.len());
        let refused = calls.len() - granted;
        let state = (
            self.caps.outbound.clone(),
            self.budget.clone(),
            self.caps.max_body_bytes,
            self.trace.clone(),
        );
        let in_flight = self.caps.budgets.outbound_in_flight_per_call.max(1) as usize;
        // At most `in_flight` at once, results in call order.
        let calls = futures::stream::iter(calls.into_iter().take(granted))
            .map(|call| budgeted_call(state.clone(), call))
            .buffered(in_flight)
            .collect::<Vec<CallResult>>();
        let mut results = within(self.deadline, calls).await?;
        results.extend((0..refused).map(|_| Err(self.over_calls_per_hook())));
        Ok(results)
    }
}

impl outbound::Host for HostState {
    async fn send(&mut self, call: outbound::Call) -> Res<CallResult> {
        if let Some(refusal) = self.refuse_ungranted(&call.upstream) {
            return Ok(Err(refusal));
        }
        if self.take_outbound_calls(1) == 0 {
            return Ok(Err(self.over_calls_per_hook()));
        }
        let state = (
            self.caps.outbound.clone(),
            self.budget.clone(),
            self.caps.max_body_bytes,
            self.trace.clone(),
        );
        within(self.deadline, budgeted_call(state, call)).await
    }

    async fn send_all(&mut self, calls: Vec<outbound::Call>) -> Res<Vec<CallResult>> {
        // Refused calls take none of the budget; results keep call order.
        let refusals: Vec<Option<outbound::CallError>> = calls
            .iter()
            .map(|call| self.refuse_ungranted(&call.upstream))
            .collect();
        let allowed = calls
            .into_iter()
            .zip(&refusals)
            .filter(|(_, refusal)| refusal.is_none())
            .map(|(call, _)| call)
            .collect();
        let mut results = self.send_granted(allowed).await?.into_iter();
        let missing = || Err(outbound::CallError::Failed("no result for the call".into()));
        Ok(refusals
            .into_iter()
            .map(|refusal| match refusal {
                Some(error) => Err(error),
                None => results.next().unwrap_or_else(missing),
            })
            .collect())
    }
}

/// The real `outbound`: calls go only to configured upstreams, with the
/// body read into memory up to `max_body`.
#[async_trait::async_trait]
impl OutboundCalls for Upstreams {
    fn knows(&self, name: &str) -> bool {
        self.contains(name)
    }

    async fn call(
        &self,
        call: outbound::Call,
        max_body: u64,
    ) -> Result<outbound::CallResponse, outbound::CallError> {
        perform(self, call, max_body).await
    }
}

async fn perform(
    upstreams: &Upstreams,
    call: outbound::Call,
    max_body: u64,
) -> Result<outbound::CallResponse, outbound::CallError> {
    use outbound::CallError;
    let upstream = upstreams
        .get(&call.upstream)
        .ok_or_else(|| CallError::UnknownUpstream(call.upstream.clone()))?;
    let (method, headers) = build_request(&call)?;
    let timeout = call
        .timeout_ms
        .map(|ms| Duration::from_millis(u64::from(ms)));
    let affinity_headers = headers.clone();
    let head = Head {
        method: &method,
        path_and_query: &call.path_with_query,
        headers,
    };
    let body = Outgoing::Replayable(Bytes::from(call.body.clone()));
    let affinity = Affinity {
        client_ip: None,
        headers: Some(&affinity_headers),
    };
    let response = upstream
        .send(head, body, affinity, timeout)
        .await
        .map_err(|e| match e {
            UpstreamFailure::Timeout(_) => CallError::Timeout,
            UpstreamFailure::Connect(why) => CallError::ConnectFailed(why),
            UpstreamFailure::Protocol(why) => CallError::Failed(why),
            UpstreamFailure::NoHealthyTarget => {
                CallError::ConnectFailed("no healthy target".into())
            }
            UpstreamFailure::Saturated(why) => CallError::ConnectFailed(why),
            UpstreamFailure::Tls(verdict) => CallError::ConnectFailed(verdict.to_string()),
        })?;
    let (mut head, body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers);
    let bytes = match BodyState::streaming(body).buffer(max_body).await {
        Ok(bytes) => bytes,
        Err(BufferError::TooLarge(limit)) => return Err(CallError::TooLarge(limit)),
        Err(BufferError::ReadFailed(why)) => return Err(CallError::Failed(why)),
    };
    Ok(outbound::CallResponse {
        status: head.status.as_u16(),
        headers: head
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: bytes.to_vec(),
    })
}

/// Check the call's method, path and headers.
fn build_request(call: &outbound::Call) -> Result<(Method, HeaderMap), outbound::CallError> {
    use outbound::CallError::InvalidRequest;
    let method = Method::from_bytes(call.method.as_bytes())
        .map_err(|_| InvalidRequest(format!("method `{}` is not valid", call.method)))?;
    if !call.path_with_query.starts_with('/')
        || PathAndQuery::from_str(&call.path_with_query).is_err()
    {
        return Err(InvalidRequest(format!(
            "path `{}` is not valid",
            call.path_with_query
        )));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &call.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| InvalidRequest(format!("header name `{name}` is not valid")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| InvalidRequest(format!("value of header `{name}` is not valid")))?;
        headers.append(name, value);
    }
    strip_hop_by_hop(&mut headers);
    Ok((method, headers))
}
