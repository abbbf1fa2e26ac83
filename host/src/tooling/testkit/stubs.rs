//! Canned capability answers for a plugin under test: outbound calls
//! answered from a list (and recorded), and a rate limiter that is real,
//! always allows or always refuses.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::json::{BodyText, Headers, ok};
use super::lock;
use crate::runtime::OutboundCalls;
use crate::runtime::bindings::weir::plugin::outbound;
use crate::state::{Decision, RateStore, Take};

/// Canned answers for the plugin's capabilities.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stubs {
    /// Upstream names `set-upstream` accepts; any when absent.
    #[serde(default)]
    pub upstreams: Option<Vec<String>>,
    /// Answers to outbound calls, matched by upstream, path and method.
    #[serde(default)]
    pub outbound: Vec<StubCall>,
    /// How `rate` answers.
    #[serde(default)]
    pub rate: RateStub,
}

/// One canned outbound answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StubCall {
    /// The upstream called.
    pub upstream: String,
    /// The path and query called (exact).
    pub path: String,
    /// The method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Response status.
    #[serde(default = "ok")]
    pub status: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: Headers,
    /// Response body.
    #[serde(default)]
    pub body: BodyText,
    /// Fail instead: `timeout`, `connect`, or any other text.
    #[serde(default)]
    pub error: Option<String>,
}

/// How `rate` answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateStub {
    /// A real in-memory limiter.
    #[default]
    Real,
    /// Every take is allowed.
    Allow,
    /// Every take is refused.
    Deny,
}

/// An outbound call the plugin made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedCall {
    /// Upstream.
    pub upstream: String,
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers sent.
    pub headers: Headers,
}

pub(crate) struct StubOutbound {
    pub(crate) stubs: Stubs,
    pub(crate) calls: Arc<Mutex<Vec<RecordedCall>>>,
}

#[async_trait::async_trait]
impl OutboundCalls for StubOutbound {
    fn knows(&self, name: &str) -> bool {
        self.stubs
            .upstreams
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == name))
    }

    async fn call(
        &self,
        call: outbound::Call,
        _max_body: u64,
    ) -> Result<outbound::CallResponse, outbound::CallError> {
        lock(&self.calls).push(RecordedCall {
            upstream: call.upstream.clone(),
            method: call.method.clone(),
            path: call.path_with_query.clone(),
            headers: Headers(call.headers.clone()),
        });
        let stub = self.stubs.outbound.iter().find(|s| {
            s.upstream == call.upstream
                && s.path == call.path_with_query
                && s.method
                    .as_ref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(&call.method))
        });
        let Some(stub) = stub else {
            return Err(outbound::CallError::ConnectFailed(format!(
                "no stub for {} {} on upstream `{}`",
                call.method, call.path_with_query, call.upstream
            )));
        };
        match stub.error.as_deref() {
            Some("timeout") => Err(outbound::CallError::Timeout),
            Some("connect") => Err(outbound::CallError::ConnectFailed(
                "stubbed connection failure".into(),
            )),
            Some(other) => Err(outbound::CallError::Failed(other.to_string())),
            None => Ok(outbound::CallResponse {
                status: stub.status,
                headers: stub.headers.0.clone(),
                body: stub.body.bytes().map_err(outbound::CallError::Failed)?,
            }),
        }
    }
}

pub(crate) struct FixedRate(pub(crate) bool);

#[async_trait::async_trait]
impl RateStore for FixedRate {
    async fn take_all(&self, takes: &[Take]) -> Vec<Decision> {
        takes
            .iter()
            .map(|t| {
                if self.0 {
                    crate::state::allowed_blind(t.limit)
                } else {
                    crate::state::refused(t.limit)
                }
            })
            .collect()
    }
}
