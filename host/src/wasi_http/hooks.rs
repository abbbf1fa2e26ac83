//! Where a `wasi:http` component's outgoing requests go. An authority that
//! names a configured upstream is a call to that upstream, allowed only by
//! the plugin's `outbound` grant, held to its outbound budgets and traced
//! like any plugin's call; any other authority (typically the incoming
//! request's own) is the **next stage**: the rest of the chain, then the
//! upstream it picks. A component sends to the next stage at most once per
//! request. No request ever reaches the network any other way.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::governance::grants::Grants;
use crate::runtime::bindings::weir::plugin::outbound;
use crate::runtime::budget::PluginBudget;
use crate::runtime::{Capabilities, HostState};

/// A request handed to the next stage, and where its response goes back.
pub struct NextCall {
    /// The request as the component sent it.
    pub request: http::Request<WasiBody>,
    /// Where the gateway sends the next stage's response.
    pub respond: oneshot::Sender<http::Response<WasiBody>>,
}

/// The component's outgoing-request routing.
pub struct Hooks {
    pub caps: Arc<Capabilities>,
    pub grants: Arc<Grants>,
    pub budget: Arc<PluginBudget>,
    pub plugin: Arc<str>,
    pub trace: Option<crate::telemetry::traces::Trace>,
    /// The next stage, until the component calls it.
    pub next: Option<oneshot::Sender<NextCall>>,
    /// Calls to upstreams made so far in this request.
    pub calls: u32,
}

type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

fn done() -> Box<dyn Future<Output = Result<(), Error>> + Send> {
    Box::new(async { Ok(()) })
}

impl Hooks {
    /// Hooks for one request of `host`'s plugin.
    pub fn new(host: &HostState, next: oneshot::Sender<NextCall>) -> Hooks {
        Hooks {
            caps: host.caps.clone(),
            grants: host.grants.clone(),
            budget: host.budget.clone(),
            plugin: host.plugin.clone(),
            trace: host.trace.clone(),
            next: Some(next),
            calls: 0,
        }
    }

    fn upstream_call(&mut self, upstream: String, request: http::Request<WasiBody>) -> Sent {
        if !self.grants.allows_upstream(&upstream) {
            let plugin = &*self.plugin;
            let message = format!(
                "outbound request refused: upstream `{upstream}` is not in the plugin's grant \
                 ([plugins.{plugin}] capabilities)"
            );
            if self.budget.admit_log(message.len()) {
                tracing::warn!(plugin, upstream, "{message}");
            }
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        if self.calls >= self.caps.budgets.outbound_calls_per_hook {
            return Box::new(async { Err(Error::ConnectionLimitReached) });
        }
        self.calls += 1;
        let (outbound, budget, max_body, trace) = (
            self.caps.outbound.clone(),
            self.budget.clone(),
            self.caps.max_body_bytes,
            self.trace.clone(),
        );
        Box::new(async move {
            let (head, body) = request.into_parts();
            let body = collect(body, max_body)
                .await
                .map_err(|_| Error::HttpRequestBodySize(Some(max_body)))?;
            let call = outbound::Call {
                upstream,
                method: head.method.to_string(),
                path_with_query: head
                    .uri
                    .path_and_query()
                    .map_or("/", |pq| pq.as_str())
                    .to_string(),
                headers: head
                    .headers
                    .iter()
                    .filter(|(name, _)| *name != http::header::HOST)
                    .filter_map(|(n, v)| {
                        Some((n.as_str().to_string(), v.to_str().ok()?.to_string()))
                    })
                    .collect(),
                body: body.to_vec(),
                timeout_ms: None,
            };
            let answer = crate::runtime::budgeted_call((outbound, budget, max_body, trace), call)
                .await
                .map_err(call_error)?;
            let mut response = http::Response::builder().status(answer.status);
            for (name, value) in &answer.headers {
                response = response.header(name, value);
            }
            let body = http_body_util::Full::new(Bytes::from(answer.body))
                .map_err(|never| match never {})
                .boxed_unsync();
            let response = response
                .body(body)
                .map_err(|e| Error::InternalError(Some(e.to_string())))?;
            Ok((response, done()))
        })
    }
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        let authority = request
            .uri()
            .authority()
            .map(|a| a.host().to_string())
            .unwrap_or_default();
        if self.caps.outbound.knows(&authority) {
            return self.upstream_call(authority, request);
        }
        let Some(next) = self.next.take() else {
            // The next stage was called already: a request is forwarded once.
            return Box::new(async { Err(Error::HttpRequestDenied) });
        };
        Box::new(async move {
            let (respond, response) = oneshot::channel();
            next.send(NextCall { request, respond })
                .map_err(|_| Error::ConnectionTerminated)?;
            let response = response.await.map_err(|_| Error::HttpResponseIncomplete)?;
            Ok((response, done()))
        })
    }

    /// Plain `http`: the gateway, not the component, decides whether the
    /// upstream or the next stage uses TLS.
    fn default_scheme(&mut self) -> Option<http::uri::Scheme> {
        Some(http::uri::Scheme::HTTP)
    }
}

async fn collect(body: WasiBody, max: u64) -> Result<Bytes, ()> {
    let limited = http_body_util::Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX));
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| ())
}

fn call_error(error: outbound::CallError) -> Error {
    use outbound::CallError as E;
    match error {
        E::UnknownUpstream(_) => Error::DestinationNotFound,
        E::InvalidRequest(_) => Error::HttpRequestUriInvalid,
        E::ConnectFailed(_) => Error::ConnectionRefused,
        E::Timeout => Error::HttpResponseTimeout,
        E::TooLarge(limit) => Error::HttpResponseBodySize(Some(limit)),
        E::Failed(why) => Error::InternalError(Some(why)),
        E::NotGranted(_) => Error::HttpRequestDenied,
        E::BudgetExceeded(_) => Error::ConnectionLimitReached,
    }
}
