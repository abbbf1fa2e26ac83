//! OpenTelemetry traces: one span per request, one per hook call, one for
//! the upstream call and one per plugin `outbound` call, exported over
//! OTLP (HTTP/protobuf or gRPC) in batches from a thread of their own.
//!
//! W3C `traceparent`/`tracestate` are read from the client (a sampled
//! parent is kept sampled: `ParentBased` over a ratio for new traces) and
//! written to the upstream and to every `outbound` request, so the trace
//! continues past the gateway. With `[tracing]` off there is no
//! [`Tracing`] at all and a request pays one `Option` check per phase.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{BatchConfigBuilder, Sampler, SdkTracer, SdkTracerProvider};

use crate::config::{OtlpProtocol, TracingConfig};

/// The tracer of one gateway, and how its spans leave.
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing").finish_non_exhaustive()
    }
}

/// How long a batch may wait before it is sent.
const EXPORT_DELAY: Duration = Duration::from_secs(1);
/// Spans held while the collector is slow; past it new spans are dropped
/// (counted by the SDK), never queued without bound.
const MAX_QUEUED_SPANS: usize = 8_192;

impl Tracing {
    /// Tracing as `[tracing]` says, or `None` when it is off.
    pub fn start(config: &TracingConfig) -> Result<Option<Arc<Tracing>>, String> {
        let Some(endpoint) = &config.otlp_endpoint else {
            return Ok(None);
        };
        let endpoint = endpoint.trim_end_matches('/');
        let exporter = match config.protocol {
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(format!("{endpoint}/v1/traces"))
                .with_headers(Default::default())
                .build(),
            OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build(),
        }
        .map_err(|e| format!("`tracing.otlp_endpoint` `{endpoint}`: {e}"))?;
        let batches = BatchConfigBuilder::default()
            .with_scheduled_delay(EXPORT_DELAY)
            .with_max_queue_size(MAX_QUEUED_SPANS)
            .build();
        let processor =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::TokioCurrentThread)
                .with_batch_config(batches)
                .build();
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .with_attributes(
                config
                    .resource
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("weir");
        Ok(Some(Arc::new(Tracing {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
        })))
    }

    /// The server span of a request arriving with `headers`, child of the
    /// client's `traceparent` when it sent one. Attributes are added only
    /// when the trace is sampled: an unsampled request allocates nothing
    /// for them.
    pub fn request(
        self: &Arc<Self>,
        method: &http::Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Trace {
        let parent = self.propagator.extract(&Headers(headers));
        let span = self
            .tracer
            .span_builder(method_name(method))
            .with_kind(SpanKind::Server)
            .start_with_context(&self.tracer, &parent);
        let trace = Trace {
            tracing: self.clone(),
            cx: parent.with_span(span),
        };
        if trace.sampled() {
            trace.set(KeyValue::new("http.request.method", method_name(method)));
            trace.set(KeyValue::new("url.path", path.to_string()));
        }
        trace
    }

    /// Send what is queued and stop exporting (at shutdown).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!("traces could not all be exported at shutdown: {e}");
        }
    }
}

/// One span of a request and what its children need.
#[derive(Clone)]
pub struct Trace {
    tracing: Arc<Tracing>,
    cx: Context,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("trace_id", &self.trace_id())
            .finish()
    }
}

impl Trace {
    /// A child span, started now. In an unsampled trace no span is made:
    /// the request's own (unrecorded) span stands in, so children cost
    /// nothing and the context still propagates.
    pub fn child(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Trace {
        if !self.sampled() {
            return self.clone();
        }
        let tracer = &self.tracing.tracer;
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes())
            .start_with_context(tracer, &self.cx);
        Trace {
            tracing: self.tracing.clone(),
            cx: self.cx.with_span(span),
        }
    }

    /// The span for a hook call of `plugin`.
    pub fn hook(&self, plugin: &str, hook: &'static str) -> Trace {
        if !self.sampled() {
            return self.clone();
        }
        self.child(format!("{hook} {plugin}"), SpanKind::Internal, || {
            vec![
                KeyValue::new("weir.plugin", plugin.to_string()),
                KeyValue::new("weir.hook", hook),
            ]
        })
    }

    /// The span for a call to `upstream`.
    pub fn client(&self, what: &'static str, upstream: &str, method: &http::Method) -> Trace {
        if !self.sampled() {
            return self.clone();
        }
        self.child(format!("{what} {upstream}"), SpanKind::Client, || {
            vec![
                KeyValue::new("weir.upstream", upstream.to_string()),
                KeyValue::new("http.request.method", method_name(method)),
            ]
        })
    }

    /// Add an attribute.
    pub fn set(&self, attribute: KeyValue) {
        self.cx.span().set_attribute(attribute);
    }

    /// The request's client (OpenTelemetry semantic conventions:
    /// `client.address` is the client as resolved through trusted proxies,
    /// `network.peer.address` the connection's peer).
    pub fn client_address(&self, client: std::net::IpAddr, peer: std::net::SocketAddr) {
        if !self.sampled() {
            return;
        }
        self.set(KeyValue::new("client.address", client.to_string()));
        self.set(KeyValue::new("network.peer.address", peer.ip().to_string()));
        self.set(KeyValue::new("network.peer.port", i64::from(peer.port())));
    }

    /// Mark the span failed, with why.
    pub fn fail(&self, why: impl Into<Cow<'static, str>>) {
        self.cx.span().set_status(Status::error(why));
    }

    /// End the span now.
    pub fn end(&self) {
        self.cx.span().end();
    }

    /// Write `traceparent` (and `tracestate`) for this span into `headers`,
    /// replacing any the client sent.
    pub fn inject(&self, headers: &mut HeaderMap) {
        self.tracing
            .propagator
            .inject_context(&self.cx, &mut HeadersMut(headers));
    }

    /// The trace id, hex, for the access log.
    pub fn trace_id(&self) -> String {
        self.cx.span().span_context().trace_id().to_string()
    }

    /// Whether this span is recorded (the trace was sampled).
    pub fn sampled(&self) -> bool {
        self.cx.span().span_context().is_sampled()
    }
}

/// The method's name, without allocating for the standard ones.
fn method_name(method: &http::Method) -> Cow<'static, str> {
    use http::Method;
    let name = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => return Cow::Owned(method.as_str().to_string()),
    };
    Cow::Borrowed(name)
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracing(ratio: f64) -> Arc<Tracing> {
        // An endpoint nobody listens on: spans are made, export fails
        // quietly in the background.
        let config = TracingConfig {
            otlp_endpoint: Some("http://127.0.0.1:9".into()),
            sample_ratio: ratio,
            ..TracingConfig::default()
        };
        Tracing::start(&config).unwrap().unwrap()
    }

    #[test]
    fn a_client_traceparent_is_continued_and_propagated() {
        let tracing = tracing(0.0);
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let request = tracing.request(&http::Method::GET, "/", &headers);
        // Sampled by the caller: recorded even at ratio 0.
        assert!(request.sampled());
        assert_eq!(request.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let upstream = request.client("upstream", "users", &http::Method::GET);
        let mut out = HeaderMap::new();
        upstream.inject(&mut out);
        let traceparent = out.get("traceparent").unwrap().to_str().unwrap();
        assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!traceparent.contains("00f067aa0ba902b7"), "a new span id");
        assert!(traceparent.ends_with("-01"));
    }

    #[test]
    fn new_traces_follow_the_ratio() {
        let never = tracing(0.0);
        let always = tracing(1.0);
        let headers = HeaderMap::new();
        assert!(!never.request(&http::Method::GET, "/", &headers).sampled());
        assert!(always.request(&http::Method::GET, "/", &headers).sampled());
    }
}
