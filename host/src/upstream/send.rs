//! Sending one request to an upstream: picking a target per attempt,
//! retrying idempotent requests with a replayable body, and classifying
//! failures (which feed passive ejection and the metrics).

use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http::{Method, Request, Response, StatusCode, Uri};

use super::{Affinity, Balancer, Head, Outgoing, Target, Upstream, target, tls};
use crate::error::UpstreamFailure;
use crate::http::body::{self, Body};

impl Upstream {
    /// Send a request (its URI holds the path and query) to a target and
    /// wait for the response head within `timeout` (capped by the upstream's
    /// own). Idempotent requests with a replayable body are retried, on
    /// another target when there is one, after a connection failure or a
    /// 502/503 answer, up to `retries` times.
    pub async fn send(
        &self,
        head: Head<'_>,
        body: Outgoing,
        affinity: Affinity<'_>,
        timeout: Option<Duration>,
    ) -> Result<Response<Body>, UpstreamFailure> {
        let started = std::time::Instant::now();
        let sent = self.send_once(head, body, affinity, timeout).await;
        match sent {
            Ok(response) => {
                if let Some(metrics) = &self.metrics {
                    metrics.duration.observe(started.elapsed().as_secs_f64());
                }
                Ok(response)
            }
            Err(failure) => Err(self.failed(failure)),
        }
    }

    /// [`Upstream::send`] without the accounting.
    async fn send_once(
        &self,
        mut head: Head<'_>,
        body: Outgoing,
        affinity: Affinity<'_>,
        timeout: Option<Duration>,
    ) -> Result<Response<Body>, UpstreamFailure> {
        let timeout = timeout.map_or(self.request_timeout, |t| t.min(self.request_timeout));
        let (replay, mut streaming) = match body {
            Outgoing::Replayable(bytes) => (Some(bytes), None),
            Outgoing::Streaming(body) => (None, Some(body)),
        };
        let attempts = if replay.is_some() && is_idempotent(head.method) {
            1 + self.retries
        } else {
            1
        };
        let key = match self.balancer {
            Balancer::ConsistentHash(_) => self.hash_key(affinity),
            _ => None,
        };
        // One set for all attempts: `tried` holds indexes into it.
        let set = self.current_set().await;
        let mut tried: Vec<usize> = Vec::new();
        let mut last_failure = None;
        for attempt in 1..=attempts {
            if attempt > 1
                && let Some(metrics) = &self.metrics
            {
                metrics.retries.inc();
            }
            let Some((index, target)) = self.balancer.pick(&set, key.as_deref(), &tried) else {
                return Err(UpstreamFailure::NoHealthyTarget);
            };
            tried.push(index);
            let body = match (&replay, streaming.take()) {
                (Some(bytes), _) => body::full(bytes.clone()),
                (None, Some(body)) => body,
                (None, None) => body::empty(),
            };
            let mut request = Request::new(body);
            *request.method_mut() = head.method.clone();
            // Keep a copy only while another attempt may need it.
            *request.headers_mut() = if attempt < attempts {
                head.headers.clone()
            } else {
                std::mem::take(&mut head.headers)
            };
            *request.uri_mut() = Uri::builder()
                .scheme(if target.https() {
                    Scheme::HTTPS
                } else {
                    Scheme::HTTP
                })
                .authority(target.authority().clone())
                .path_and_query(head.path_and_query)
                .build()
                .map_err(|e| UpstreamFailure::Protocol(format!("bad target URI: {e}")))?;
            let more = attempt < attempts;
            // A full target is not a failed one: no ejection, no retry.
            let Some(in_flight) = target.start(self.connect_timeout).await else {
                return Err(UpstreamFailure::Saturated(format!(
                    "{}: all {} connections in use (budgets.upstream_connections_per_target)",
                    target.authority(),
                    target.max_in_flight()
                )));
            };
            match tokio::time::timeout(timeout, self.client().request(request)).await {
                Err(_) => return Err(UpstreamFailure::Timeout(timeout)),
                Ok(Ok(response)) => {
                    target.succeeded();
                    let retryable = matches!(
                        response.status(),
                        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
                    );
                    if retryable && more {
                        tracing::debug!(upstream = self.name, target = %target.authority(), status = %response.status(), "retrying");
                        continue;
                    }
                    let (parts, incoming) = response.into_parts();
                    let tracked = Tracked {
                        inner: incoming,
                        _in_flight: in_flight,
                    };
                    return Ok(Response::from_parts(parts, body::boxed(tracked)));
                }
                Ok(Err(e)) => {
                    let failure = self.classify(target, &e);
                    tracing::debug!(upstream = self.name, "attempt {attempt} failed: {failure}");
                    last_failure = Some(failure);
                    if !more {
                        break;
                    }
                }
            }
        }
        Err(last_failure.unwrap_or(UpstreamFailure::NoHealthyTarget))
    }

    /// What a failed attempt on `target` was, ejecting the target after
    /// enough connection failures.
    fn classify(&self, target: &Target, e: &hyper_util::client::legacy::Error) -> UpstreamFailure {
        if let Some(verdict) = tls::verdict(e) {
            // A certificate the gateway will not trust: not the
            // target's fault in a way another try would fix.
            tracing::warn!(upstream = self.name, target = %target.authority(), "{}", source_chain(e));
            UpstreamFailure::Tls(verdict)
        } else if e.is_connect() {
            if target.connect_failed(self.ejection) {
                if let Some(metrics) = &self.metrics {
                    metrics.ejections.inc();
                }
                tracing::warn!(upstream = self.name, target = %target.authority(), "connection failures; target ejected");
            }
            UpstreamFailure::Connect(format!("{}: {}", target.authority(), source_chain(e)))
        } else {
            UpstreamFailure::Protocol(format!("{}: {}", target.authority(), source_chain(e)))
        }
    }

    /// Count a failed request by its cause and hand the failure back.
    fn failed(&self, failure: UpstreamFailure) -> UpstreamFailure {
        if let Some(metrics) = &self.metrics {
            metrics.failed(failure.cause());
        }
        failure
    }
}

/// A response body that keeps its target's in-flight count up until it has
/// been read (or dropped), forwarding everything else untouched so hyper
/// still sees the exact length and the end of the stream.
struct Tracked {
    inner: hyper::body::Incoming,
    _in_flight: target::InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Methods that may be repeated without changing the result (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// An error with its causes, `a: b: c`.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
