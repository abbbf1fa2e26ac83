//! Standard `wasi:http/proxy` components (0.2.x) as plugins: a component
//! exporting `wasi:http/incoming-handler`, dropped into the plugin
//! directory, runs at its place in the chain under the same governance as
//! any plugin. It receives the request with its body streaming, and:
//!
//! - answers it itself (the response body streams back to the client):
//!   a **handler**, which a route names by scoping the plugin to it
//!   (`[plugins.NAME] routes = ["ROUTE"]`);
//! - or sends it on with `wasi:http/outgoing-handler` to the **next stage**
//!   (the rest of the chain, then the upstream), gets that response, and
//!   answers with it, changed or not: **middleware**.
//!
//! Its other outgoing requests reach only the upstreams its `outbound`
//! grant names, addressed by upstream name (`http://users/...`);
//! `hooks.rs` decides. In Weir's two phases: `on-request` runs the
//! component until it answers or calls the next stage; `on-response` hands
//! it the next stage's response and waits for its answer. Each phase is
//! bounded by the hook deadline; a component gets a fresh instance per
//! request, as `wasmtime serve` and Spin give it.

mod hooks;
mod state;

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;
use wasmtime::Store;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpView};

use crate::error::PluginFailure;
use crate::exchange::{Carried, HeldRequest, HeldResponse, ResponseState};
use crate::http::body::{BodyState, BoxError};
use crate::runtime::bindings::{Action, Hooks as HookSet};
use crate::runtime::budget::PluginBudget;
use crate::runtime::pool::PoolSettings;
use crate::runtime::{Capabilities, HostState, Runtime};
use crate::telemetry::host_metrics::PluginMetricsHandles;
use hooks::{Hooks, NextCall};
use state::HandlerState;

/// The contract a `wasi:http` plugin implements, as `/admin/plugins` shows it.
pub const CONTRACT: &str = "wasi:http/proxy@0.2";

/// How long a component may keep running after it answered (streaming its
/// body), at least.
const BODY_TIME: Duration = Duration::from_secs(30);

/// `component` checked against the `wasi:http/proxy` world, or why not.
pub fn check(runtime: &Runtime, component: &Component) -> Result<ProxyPre<HandlerState>, String> {
    let mut linker: Linker<HandlerState> = Linker::new(runtime.engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| format!("{e:#}"))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(|e| format!("{e:#}"))?;
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| format!("{e:#}"))?;
    ProxyPre::new(pre).map_err(|e| format!("{e:#}"))
}

/// A component's request waiting for the next stage's response.
struct Pending {
    respond: oneshot::Sender<http::Response<WasiBody>>,
    answer: AnswerRx,
    task: tokio::task::JoinHandle<wasmtime::Result<()>>,
}

/// A loaded `wasi:http` component.
pub struct Handler {
    id: u64,
    runtime: Arc<Runtime>,
    pre: ProxyPre<HandlerState>,
    caps: Arc<Capabilities>,
    budget: Arc<PluginBudget>,
    settings: PoolSettings,
    permits: Arc<Semaphore>,
    metrics: PluginMetricsHandles,
}

/// Where a component's answer arrives.
type AnswerRx = oneshot::Receiver<Result<http::Response<WasiBody>, ErrorCode>>;

/// What a component did first.
enum First {
    /// It answered.
    Answered(http::Response<WasiBody>),
    /// It called the next stage; its answer will come later.
    Next(NextCall, AnswerRx),
}

impl Handler {
    /// A handler for `pre`, proven by instantiating it once.
    pub async fn start(
        runtime: Arc<Runtime>,
        pre: ProxyPre<HandlerState>,
        name: &str,
        caps: Arc<Capabilities>,
        settings: PoolSettings,
    ) -> Result<Handler, PluginFailure> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let budget = PluginBudget::new(name, &caps.budgets);
        let handler = Handler {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            permits: Arc::new(Semaphore::new(settings.max_instances as usize)),
            metrics: caps.telemetry.plugin(name),
            runtime,
            pre,
            caps,
            budget,
            settings,
        };
        let (next, _) = oneshot::channel();
        let mut store = handler.store(Instant::now() + handler.settings.deadline, None, next);
        handler
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| PluginFailure::Instantiate(format!("{e:#}")))?;
        Ok(handler)
    }

    /// Both hooks.
    pub fn hooks(&self) -> HookSet {
        HookSet::all()
    }

    /// The plugin's budget.
    pub fn budget(&self) -> &Arc<PluginBudget> {
        &self.budget
    }

    /// Hook timings and failures.
    pub fn metrics(&self) -> &PluginMetricsHandles {
        &self.metrics
    }

    /// Requests holding an instance.
    pub fn busy_count(&self) -> usize {
        (self.settings.max_instances as usize).saturating_sub(self.permits.available_permits())
    }

    fn store(
        &self,
        until: Instant,
        trace: Option<crate::telemetry::traces::Trace>,
        next: oneshot::Sender<NextCall>,
    ) -> Store<HandlerState> {
        let mut host = HostState::new(
            self.budget.clone(),
            self.caps.clone(),
            self.settings.max_memory,
        );
        host.trace = trace;
        host.begin_call(until);
        let hooks = Hooks::new(&host, next);
        let state = HandlerState {
            host,
            http: WasiHttpCtx::new(),
            hooks,
        };
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|s| &mut s.host.limiter);
        let ticker = self.runtime.ticker().clone();
        store.epoch_deadline_callback(move |ctx| {
            Ok(crate::runtime::ticker::on_tick(
                &ticker,
                ctx.data().host.deadline,
            ))
        });
        store.set_epoch_deadline(1);
        store
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, PluginFailure> {
        crate::runtime::pool::slot(&self.permits, &self.settings).await
    }

    /// Run the component until it answers or calls the next stage.
    pub async fn on_request(
        &self,
        mut req: HeldRequest,
    ) -> Result<(HeldRequest, Action), (PluginFailure, Option<HeldRequest>)> {
        let permit = match self.permit().await {
            Ok(permit) => permit,
            Err(failure) => return Err((failure, Some(req))),
        };
        let deadline = Instant::now() + self.settings.deadline;
        // The instance lives while its answer streams, within this bound.
        let life = deadline + BODY_TIME.max(self.settings.deadline * 4);
        let (next_tx, next_rx) = oneshot::channel();
        let (answer_tx, answer_rx) = oneshot::channel();
        let mut store = self.store(life, req.trace.clone(), next_tx);
        let incoming = match incoming_request(&mut req) {
            Ok(incoming) => incoming,
            Err(why) => return Err((PluginFailure::Trap(why), Some(req))),
        };
        let scheme = if req.tls.is_some() {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let resources = (|| {
            let request = store
                .data_mut()
                .http()
                .new_incoming_request(scheme, incoming)?;
            let out = store.data_mut().http().new_response_outparam(answer_tx)?;
            Ok::<_, wasmtime::Error>((request, out))
        })();
        let (request, out) = match resources {
            Ok(pair) => pair,
            Err(e) => return Err((PluginFailure::Trap(format!("{e:#}")), Some(req))),
        };
        self.runtime.ticker().hook_started();
        let pre = self.pre.clone();
        let task = tokio::spawn(async move {
            let _permit = permit;
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, out)
                    .await
            };
            tokio::time::timeout_at(life, run)
                .await
                .unwrap_or_else(|_| Err(wasmtime::Error::new(crate::runtime::DeadlineReached)))
        });
        let first = tokio::time::timeout_at(deadline, first_move(answer_rx, next_rx)).await;
        let first = match first {
            Ok(Ok(first)) => first,
            Ok(Err(())) => return Err((self.failure_of(task).await, Some(req))),
            Err(_) => {
                task.abort();
                return Err((PluginFailure::Deadline(self.settings.deadline), Some(req)));
            }
        };
        match first {
            First::Answered(response) => {
                req.answer = Some(Box::new(response_state(response)));
                Ok((req, Action::Continue))
            }
            First::Next(call, answer) => {
                let (head, body) = call.request.into_parts();
                forward(&mut req, head, body);
                let pending = Pending {
                    respond: call.respond,
                    answer,
                    task,
                };
                Carried::put(&mut req, self.id, pending);
                Ok((req, Action::Continue))
            }
        }
    }

    /// Hand the component the next stage's response and take its answer.
    pub async fn on_response(
        &self,
        req: HeldRequest,
        resp: HeldResponse,
    ) -> Result<
        (HeldRequest, HeldResponse, Action),
        (PluginFailure, Option<(HeldRequest, HeldResponse)>),
    > {
        let pending = Carried::<Pending>::take(&req, self.id);
        let Some(pending) = pending else {
            // It answered in on-request (or never ran for this request).
            return Ok((req, resp, Action::Continue));
        };
        let ResponseState { head, body } = *resp;
        let body: WasiBody = body
            .into_body()
            .map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string())))
            .boxed_unsync();
        // The component may have stopped waiting; its answer tells.
        let _ = pending.respond.send(http::Response::from_parts(head, body));
        let deadline = Instant::now() + self.settings.deadline;
        match tokio::time::timeout_at(deadline, pending.answer).await {
            Ok(Ok(Ok(answer))) => Ok((req, Box::new(response_state(answer)), Action::Continue)),
            Ok(Ok(Err(code))) => Err((
                PluginFailure::Trap(format!("the component answered with an error: {code:?}")),
                None,
            )),
            Ok(Err(_)) => Err((self.failure_of(pending.task).await, None)),
            Err(_) => {
                pending.task.abort();
                Err((PluginFailure::Deadline(self.settings.deadline), None))
            }
        }
    }

    /// Why a component's task ended without answering.
    async fn failure_of(
        &self,
        task: tokio::task::JoinHandle<wasmtime::Result<()>>,
    ) -> PluginFailure {
        match task.await {
            Ok(Ok(())) => {
                PluginFailure::Trap("the component returned without setting a response".into())
            }
            // The store went with the task: its limiter's record is in the error.
            Ok(Err(e)) => crate::runtime::pool::failure(e, false, &self.settings),
            Err(e) => PluginFailure::Trap(format!("the component's task failed: {e}")),
        }
    }
}

/// Wait for the component's answer or its call to the next stage; the
/// answer channel comes back with the call.
async fn first_move(
    mut answer: AnswerRx,
    mut next: oneshot::Receiver<NextCall>,
) -> Result<First, ()> {
    let mut next_open = true;
    loop {
        tokio::select! {
            answered = &mut answer => return match answered {
                Ok(Ok(response)) => Ok(First::Answered(response)),
                _ => Err(()),
            },
            call = &mut next, if next_open => match call {
                Ok(call) => return Ok(First::Next(call, answer)),
                // The component dropped its next stage unused; keep
                // waiting for its answer.
                Err(_) => next_open = false,
            },
        }
    }
}

/// The request as the component receives it: the head as the chain left
/// it, the body streaming.
fn incoming_request(req: &mut HeldRequest) -> Result<http::Request<WasiBody>, String> {
    let mut builder = http::Request::builder()
        .method(req.head.method.clone())
        .uri(req.head.uri.clone())
        .version(req.head.version);
    if let Some(headers) = builder.headers_mut() {
        *headers = req.head.headers.clone();
        // wasi:http requires an authority; the gateway admits no request
        // without one, but the plugin test kit's may have none.
        if req.head.uri.authority().is_none() && !headers.contains_key(http::header::HOST) {
            headers.insert(
                http::header::HOST,
                http::HeaderValue::from_static("localhost"),
            );
        }
    }
    let body = req
        .body
        .send()
        .map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string())))
        .boxed_unsync();
    builder.body(body).map_err(|e| e.to_string())
}

/// The request the component sent to the next stage replaces the chain's:
/// method, path, headers and body (streaming).
fn forward(req: &mut HeldRequest, head: http::request::Parts, body: WasiBody) {
    req.head.method = head.method;
    if let Some(pq) = head.uri.path_and_query() {
        let mut parts = req.head.uri.clone().into_parts();
        parts.path_and_query = Some(pq.clone());
        if let Ok(uri) = http::Uri::from_parts(parts) {
            req.head.uri = uri;
        }
    }
    req.head.headers = head.headers;
    let body = body.map_err(|e| Box::new(e) as BoxError).boxed_unsync();
    req.body = BodyState::streaming(body);
}

fn response_state(response: http::Response<WasiBody>) -> ResponseState {
    let (head, body) = response.into_parts();
    let body = body.map_err(|e| Box::new(e) as BoxError).boxed_unsync();
    ResponseState {
        head,
        body: BodyState::streaming(body),
    }
}
