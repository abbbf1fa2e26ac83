//! [`Gateway::handle`]: one request through the pipeline, with no socket
//! involved, so tests drive it directly.
//!
//! Phases, in order:
//! 1. **admit**: refuse oversized header blocks (431).
//! 2. **on-request**: each plugin in file-name order; `respond` stops here
//!    with the plugin's reply.
//! 3. **proxy**: to the upstream a plugin chose (404 if none), streaming the
//!    body unless a plugin buffered it.
//! 4. **on-response**: in reverse order, for the plugins whose `on-request`
//!    continued; `respond` replaces the response.
//!
//! Any failure becomes a [`GatewayError`], answered in one place.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};

use crate::body::{self, Body, BodyState, BoxError};
use crate::config::Config;
use crate::error::{DownstreamError, GatewayError, PluginFailure};
use crate::exchange::{RequestState, ResponseState};
use crate::headers;
use crate::pipeline::{Pipeline, Stores};
use crate::plugin::LoadError;
use crate::runtime::Runtime;
use crate::runtime::bindings::Action;
use crate::upstream::{Affinity, Head, Outgoing};

/// The gateway: the current pipeline and what is needed to build the next.
pub struct Gateway {
    runtime: Arc<Runtime>,
    stores: Stores,
    current: ArcSwap<Pipeline>,
}

/// How a request ended, for the access log.
struct Outcome {
    response: Response<Body>,
    upstream: Option<String>,
    answered_by: Option<String>,
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
        let pipeline = Pipeline::load(&runtime, config, &stores).await?;
        Ok(Gateway {
            runtime,
            stores,
            current: ArcSwap::from_pointee(pipeline),
        })
    }

    /// Build a new pipeline from `config` and, only if all of it loads,
    /// swap it in. Requests in flight finish on the pipeline they started on.
    pub async fn reload(&self, config: &Config) -> Result<(), LoadError> {
        let pipeline = Pipeline::load(&self.runtime, config, &self.stores).await?;
        self.current.store(Arc::new(pipeline));
        Ok(())
    }

    /// The pipeline serving new requests.
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.current.load_full()
    }

    /// Handle one request from `client`.
    pub async fn handle<B>(&self, request: Request<B>, client: SocketAddr) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        // One pipeline for the whole request, even if a reload lands meanwhile.
        let pipeline = self.current.load_full();
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let outcome = match process(&pipeline, request, client).await {
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
                }
            }
        };
        if pipeline.access_log() {
            tracing::info!(
                target: "weir::access",
                client = %client.ip(),
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
}

fn log_failure(error: &GatewayError) {
    match error {
        GatewayError::Downstream(_) | GatewayError::NoUpstream => tracing::debug!("{error}"),
        _ => tracing::warn!("{error}"),
    }
}

async fn process<B>(
    pipeline: &Pipeline,
    request: Request<B>,
    client: SocketAddr,
) -> Result<Outcome, GatewayError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let limits = pipeline.limits();
    let header_bytes = headers::block_size(request.headers());
    if header_bytes > limits.max_header_bytes {
        return Err(DownstreamError::HeadersTooLarge(limits.max_header_bytes).into());
    }
    let (mut head, body) = request.into_parts();
    // One normal path for plugins and the upstream alike.
    if let Some(normal) = crate::normalize::normalize_uri(&head.uri)
        .map_err(|e| DownstreamError::BadRequest(e.to_string()))?
    {
        let mut parts = head.uri.clone().into_parts();
        parts.path_and_query = Some(normal);
        head.uri =
            http::Uri::from_parts(parts).map_err(|e| DownstreamError::BadRequest(e.to_string()))?;
    }
    let mut req = RequestState::new(head, BodyState::streaming(body::boxed(body)), client);

    // on-request, in order, until a plugin answers.
    let plugins = pipeline.plugins();
    let mut continued = 0;
    let mut reply = None;
    for plugin in plugins {
        let (next, action) = plugin.on_request(req).await?;
        req = next;
        match action {
            Action::Continue => continued += 1,
            Action::Respond(r) => {
                let resp = crate::runtime::reply_to_response(r)
                    .map_err(|why| plugin.failed(PluginFailure::BadAction(why)))?;
                reply = Some((plugin.name().to_string(), resp));
                break;
            }
        }
    }

    let (mut answered_by, mut resp) = match reply {
        Some((name, resp)) => (Some(name), resp),
        None => (None, proxy(pipeline, &mut req).await?),
    };

    // on-response, in reverse, for the plugins whose on-request continued.
    for plugin in plugins[..continued].iter().rev() {
        let (next_req, next_resp, action) = plugin.on_response(req, resp).await?;
        req = next_req;
        resp = next_resp;
        if let Action::Respond(r) = action {
            resp = crate::runtime::reply_to_response(r)
                .map_err(|why| plugin.failed(PluginFailure::BadAction(why)))?;
            answered_by = Some(plugin.name().to_string());
        }
    }

    Ok(Outcome {
        response: resp.into_response(),
        upstream: req.upstream.clone(),
        answered_by,
    })
}

/// Send the request to the chosen upstream and return its response head
/// with the body still streaming.
async fn proxy(pipeline: &Pipeline, req: &mut RequestState) -> Result<ResponseState, GatewayError> {
    let name = req.upstream.clone().ok_or(GatewayError::NoUpstream)?;
    let upstream = pipeline
        .upstreams()
        .get(&name)
        .ok_or_else(|| GatewayError::Internal(format!("upstream `{name}` vanished")))?;

    let mut outgoing = req.head.headers.clone();
    let headers = &mut outgoing;
    headers::strip_hop_by_hop(headers);
    // Keep the authority the client asked for (HTTP/2 clients send it as
    // `:authority`, not `Host`), as Envoy and Traefik do by default.
    if !headers.contains_key(http::header::HOST)
        && let Some(value) = req
            .original_authority
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
    {
        headers.insert(http::header::HOST, value);
    }
    headers::add_forwarded(
        headers,
        req.client.ip(),
        "http",
        req.original_authority.as_deref(),
    );

    // A buffered body (or none) can be replayed on a retry; a streaming
    // one cannot.
    let replayable = match &req.body {
        BodyState::Buffered {
            data,
            trailers: None,
        } => Some(data.clone()),
        BodyState::Streaming(b) if http_body::Body::size_hint(b).exact() == Some(0) => {
            Some(Bytes::new())
        }
        _ => None,
    };
    let body = match replayable {
        Some(bytes) => Outgoing::Replayable(bytes),
        None => Outgoing::Streaming(req.body.send()),
    };
    let head = Head {
        method: &req.head.method,
        path_and_query: req.path_with_query(),
        headers: outgoing,
    };
    let affinity = Affinity {
        client_ip: Some(req.client.ip()),
        headers: Some(&req.head.headers),
    };
    let response = upstream
        .send(head, body, affinity, None)
        .await
        .map_err(|failure| GatewayError::Upstream {
            upstream: name.clone(),
            failure,
        })?;
    let (mut head, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut head.headers);
    Ok(ResponseState {
        head,
        body: BodyState::streaming(body),
    })
}
