//! [`Gateway::handle`]: one request through the pipeline, with no socket
//! involved, so tests drive it directly.
//!
//! Phases, in order:
//! 1. **admit** (`admit.rs`): refuse oversized header blocks (431), a
//!    missing, repeated or contradictory `Host` (400); normalize the path.
//! 2. **on-request** (`hooks.rs`): each plugin that declared the hook and
//!    whose scope (`[plugins.NAME] hosts`, `routes`: `governance/scope.rs`)
//!    takes in the request, in file-name order; `respond` stops here with
//!    the plugin's reply, `respond-then-continue` too while a copy of the
//!    request carries on in the background, and `wait` parks the request
//!    and runs the same hook again (`deferred.rs`). A failing plugin with
//!    `on_failure = "skip"` is passed over.
//! 3. **proxy** (`proxy.rs`): to the upstream a plugin chose (404 if none),
//!    streaming the body unless a plugin buffered it. An upstream that
//!    fails (502, 503, 504) is answered here, and that answer goes on to
//!    phase 4 like a response.
//! 4. **on-response** (`hooks.rs`): in reverse order, for the plugins whose
//!    `on-request` continued (or that have none) and that declared the
//!    hook; `respond` replaces the response.
//!
//! Any failure becomes a [`GatewayError`], answered in one place; a panic,
//! should one slip through, becomes that request's 500 and is logged.

mod admit;
pub(crate) mod deferred;
mod governed;
pub mod grpc;
mod hooks;
mod proxy;
pub mod tunnel;

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures::FutureExt;
use http::{Request, Response};

use crate::client_ip::ClientAddressing;
use crate::config::Config;
use crate::error::GatewayError;
use crate::exchange::{RequestState, ResponseState, TlsFacts};
use crate::http::body::{self, Body, BodyState, BodyWatch, BoxError, ClientBody};
use crate::pipeline::{Pipeline, Stores};
use crate::plugin::LoadError;
use crate::runtime::Runtime;
use crate::telemetry::counted::{Counted, Sink, Tally};
use crate::telemetry::host_metrics::{AnsweredBy, RequestRecord};
use crate::telemetry::traces::Trace;
use opentelemetry::KeyValue;

/// The gateway: the current pipeline and what is needed to build the next.
pub struct Gateway {
    runtime: Arc<Runtime>,
    stores: Stores,
    current: ArcSwap<Pipeline>,
    /// Open connections and tunnels, for a graceful shutdown.
    drain: crate::lifecycle::Drain,
    /// The connection cap every listener shares; follows reloads.
    slots: Arc<crate::lifecycle::Slots>,
    /// ACME's http-01 responder, once `[tls.acme]` has started.
    acme_http01: std::sync::OnceLock<crate::acme::challenge::Http01>,
}

/// How a request ended, for the access log and the metrics.
struct Outcome {
    response: Response<Body>,
    upstream: Option<String>,
    answered_by: Option<String>,
    /// The gateway answered with an error.
    failed: bool,
}

/// What is known of a request as it goes, kept even when it fails.
#[derive(Default)]
struct Seen {
    /// The route the router named (`route` in the context).
    route: Option<String>,
    /// The request body's byte count, settled once the route is known.
    body_bytes: Option<Arc<Tally>>,
    /// The request's span, when tracing is on.
    trace: Option<Trace>,
}

/// Where a request came from.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The connection's peer: the TCP peer, or the source a PROXY protocol
    /// header named.
    pub addr: SocketAddr,
    /// How its connection was secured, if it was.
    pub tls: Option<Arc<TlsFacts>>,
    /// How the listener finds the client behind trusted proxies.
    pub clients: ClientAddressing,
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Self {
        Peer {
            addr,
            tls: None,
            clients: ClientAddressing::default(),
        }
    }
}

impl Gateway {
    /// A gateway with its own runtime and in-memory stores.
    pub async fn new(config: &Config) -> Result<Gateway, anyhow::Error> {
        let runtime = Runtime::new(&config.limits, &config.runtime)?;
        let stores = Stores::from_config(config)?;
        Ok(Gateway::with_runtime(runtime, config, stores).await?)
    }

    /// A gateway on an existing runtime (one per process) and stores.
    pub async fn with_runtime(
        runtime: Arc<Runtime>,
        config: &Config,
        stores: Stores,
    ) -> Result<Gateway, LoadError> {
        let pipeline = Pipeline::load(&runtime, config, &stores, None).await?;
        Ok(Gateway {
            runtime,
            stores,
            slots: crate::lifecycle::Slots::new(pipeline.server().max_connections),
            current: ArcSwap::from_pointee(pipeline),
            drain: crate::lifecycle::Drain::default(),
            acme_http01: std::sync::OnceLock::new(),
        })
    }

    /// Build a new pipeline from `config` and, only if all of it loads,
    /// swap it in. Requests in flight finish on the pipeline they started on.
    pub async fn reload(&self, config: &Config) -> Result<(), LoadError> {
        let previous = self.current.load_full();
        let pipeline = Pipeline::load(&self.runtime, config, &self.stores, Some(&previous)).await?;
        let max_connections = pipeline.server().max_connections;
        self.current.store(Arc::new(pipeline));
        self.slots.set_cap(max_connections);
        Ok(())
    }

    /// The pipeline serving new requests.
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.current.load_full()
    }

    /// Open connections and WebSocket tunnels.
    pub fn drain(&self) -> &crate::lifecycle::Drain {
        &self.drain
    }

    /// The connection cap of every listener serving this gateway.
    pub fn slots(&self) -> &Arc<crate::lifecycle::Slots> {
        &self.slots
    }

    /// The stores shared by every pipeline.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Answer ACME http-01 validations on the plain listener with
    /// `responder` (set once, when ACME starts).
    pub fn set_acme_http01(&self, responder: crate::acme::challenge::Http01) {
        let _ = self.acme_http01.set(responder);
    }

    /// ACME's http-01 responder, if ACME runs.
    pub fn acme_http01(&self) -> Option<&crate::acme::challenge::Http01> {
        self.acme_http01.get()
    }

    /// Handle one request from `peer` (a client address, or a [`Peer`]
    /// with its TLS facts).
    pub fn handle<B>(
        &self,
        request: Request<B>,
        peer: impl Into<Peer>,
    ) -> impl Future<Output = Response<Body>> + Send + '_
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.handle_from(request, peer.into())
    }

    /// [`Gateway::handle`] with the peer given whole.
    pub async fn handle_from<B>(&self, request: Request<B>, peer: Peer) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        // One pipeline for the whole request, even if a reload lands meanwhile.
        let pipeline = self.current.load_full();
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let client = peer.clients.resolve(peer.addr.ip(), request.headers());
        let grpc = grpc::is_grpc(request.headers());
        // What the client accepts, read before the request is handed on.
        let compression = pipeline
            .compression()
            .map(|c| (c.clone(), c.asked(&method, request.headers())));
        let mut seen = Seen {
            trace: self.stores.tracing.as_ref().map(|t| {
                let trace = t.request(&method, &path, request.headers());
                trace.client_address(client, peer.addr);
                trace
            }),
            ..Seen::default()
        };
        // A panic is a bug, but it must cost this request only: it becomes
        // a 500 here instead of a connection dropped without an answer.
        let processed = AssertUnwindSafe(process(
            &pipeline,
            request,
            (peer, client),
            self.drain.clone(),
            &mut seen,
        ))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(GatewayError::Internal(panic_message(&panic))));
        let outcome = match processed {
            Ok(outcome) => outcome,
            Err(error) => {
                log_failure(&error);
                let (upstream, answered_by) = match &error {
                    GatewayError::Upstream { upstream, .. } => (Some(upstream.clone()), None),
                    GatewayError::Plugin { plugin, .. } => (None, Some(plugin.clone())),
                    _ => (None, None),
                };
                Outcome {
                    response: error.to_response(),
                    upstream,
                    answered_by,
                    failed: true,
                }
            }
        };
        let mut outcome = outcome;
        if grpc && (outcome.answered_by.is_some() || outcome.failed) {
            outcome.response = grpc::localize(outcome.response).await;
        }
        if let Some((compression, asked)) = &compression {
            compression.apply(*asked, &mut outcome.response);
        }
        self.count(&mut outcome, &seen, started.elapsed());
        if let Some(trace) = &seen.trace {
            finish(trace, &outcome, &seen);
        }
        if pipeline.access_log() {
            let trace_id = seen.trace.as_ref().map(Trace::trace_id);
            tracing::info!(
                target: "weir::access",
                trace_id = trace_id.as_deref().unwrap_or("-"),
                %client,
                %method,
                path,
                status = outcome.response.status().as_u16(),
                upstream = outcome.upstream.as_deref().unwrap_or("-"),
                answered_by = outcome.answered_by.as_deref().unwrap_or("-"),
                duration_us = started.elapsed().as_micros() as u64,
            );
        }
        outcome.response
    }

    /// Record a finished request in the metrics, and count its body bytes
    /// under its route from now on.
    fn count(&self, outcome: &mut Outcome, seen: &Seen, took: Duration) {
        let metrics = &self.stores.telemetry;
        if !metrics.enabled() {
            return;
        }
        let answered_by = match (&outcome.answered_by, outcome.failed) {
            (Some(plugin), _) => AnsweredBy::Plugin(plugin),
            (None, true) => AnsweredBy::Gateway,
            (None, false) => AnsweredBy::Upstream,
        };
        let Some((request_bytes, response_bytes)) = metrics.request(RequestRecord {
            route: seen.route.as_deref(),
            upstream: outcome.upstream.as_deref(),
            status: outcome.response.status().as_u16(),
            answered_by,
            duration: took,
        }) else {
            return;
        };
        if let Some(tally) = &seen.body_bytes {
            tally.settle(request_bytes);
        }
        if !http_body::Body::is_end_stream(outcome.response.body()) {
            let body = std::mem::replace(outcome.response.body_mut(), body::empty());
            *outcome.response.body_mut() =
                body::boxed(Counted::new(body, Sink::Counter(response_bytes)));
        }
    }
}

/// End the request's span with how it went.
fn finish(trace: &Trace, outcome: &Outcome, seen: &Seen) {
    if !trace.sampled() {
        // Not recorded: attributes would be dropped anyway.
        return;
    }
    let status = outcome.response.status();
    trace.set(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if let Some(route) = &seen.route {
        trace.set(KeyValue::new("http.route", route.clone()));
    }
    if let Some(upstream) = &outcome.upstream {
        trace.set(KeyValue::new("weir.upstream", upstream.clone()));
    }
    if let Some(plugin) = &outcome.answered_by {
        trace.set(KeyValue::new("weir.answered_by", plugin.clone()));
    }
    if status.is_server_error() {
        trace.fail(status.to_string());
    }
    trace.end();
}

/// The client's body, boxed, watched for stalls and breakage and counted
/// into `seen` unless it is empty. (A plain function: boxing inside the
/// async fn trips the compiler's `Send` check for the generic body.)
fn watched<B>(body: B, idle: Duration, watch: &BodyWatch, seen: &mut Seen) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if http_body::Body::is_end_stream(&body) {
        body::boxed(body)
    } else {
        let tally = Arc::new(Tally::default());
        seen.body_bytes = Some(tally.clone());
        let watched = body::boxed(ClientBody::new(body, idle, watch.clone()));
        body::boxed(Counted::new(watched, Sink::Tally(tally)))
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".to_string());
    format!("panic while handling the request: {what}")
}

fn log_failure(error: &GatewayError) {
    match error {
        // A plugin's failure was logged, within its log budget, when it
        // happened (`LoadedPlugin::failed`); a quarantine when it began.
        GatewayError::Downstream(_) | GatewayError::NoUpstream | GatewayError::Plugin { .. } => {
            tracing::debug!("{error}")
        }
        GatewayError::Internal(_) => tracing::error!("{error}"),
        _ => tracing::warn!("{error}"),
    }
}

async fn process<B>(
    pipeline: &Arc<Pipeline>,
    request: Request<B>,
    (peer, client_ip): (Peer, std::net::IpAddr),
    drain: crate::lifecycle::Drain,
    seen: &mut Seen,
) -> Result<Outcome, GatewayError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let limits = pipeline.limits();
    let (mut head, body) = request.into_parts();
    admit::admit(&mut head, limits.header_limits())?;
    // The client's body is watched: if it breaks or stalls, the failure is
    // the client's (400/408), never the upstream's.
    let watch = BodyWatch::default();
    let idle = Duration::from_millis(limits.client_body_idle_timeout_ms);
    let body = watched(body, idle, &watch, seen);
    let mut req = Box::new(RequestState::new(
        head,
        BodyState::streaming(body),
        peer.addr,
    ));
    req.client_ip = client_ip;
    req.tls = peer.tls;
    req.trace = seen.trace.clone();

    let start = hooks::Start::first(pipeline, &req);
    let (mut req, place, reply) = hooks::request_hooks(pipeline, req, seen, start, &drain).await?;
    let mut failed = false;
    let (answered_by, mut resp, reached) = match reply {
        Some((index, name, resp)) => (Some(name), Box::new(resp), index),
        None => match proxy::proxy(pipeline, &mut req, &drain).await {
            Ok(resp) => (None, Box::new(resp), pipeline.plugins().len()),
            Err(error) => {
                let error = error.blamed(&watch);
                // An upstream that failed still gets its answer (502, 503,
                // 504) through the on-response hooks, so a plugin can stand
                // in for it (a cache's stale-if-error); anything else ends
                // here.
                if !matches!(error, GatewayError::Upstream { .. }) {
                    return Err(error);
                }
                log_failure(&error);
                failed = true;
                let resp = ResponseState::from_response(error.to_response());
                (None, Box::new(resp), pipeline.plugins().len())
            }
        },
    };
    // Headers plugins set for the response in on-request, before any
    // on-response hook, so those hooks see them.
    req.apply_response_headers(&mut resp, limits.header_limits());
    let (req, resp, answered_by) =
        hooks::response_hooks(pipeline, place, 0..reached, req, resp, answered_by).await?;

    Ok(Outcome {
        response: ResponseState::into_response(*resp),
        upstream: req.upstream.clone(),
        failed: failed && answered_by.is_none(),
        answered_by,
    })
}
