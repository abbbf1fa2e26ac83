//! The host capabilities plugins import: `log`, `outbound`, `rate`, `kv`,
//! `crypto`, `metrics`. Each is a thin adapter from the WIT types to the
//! host's mechanism, held to the plugin's budgets.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use futures::StreamExt;

use super::bindings::weir::plugin::{crypto, kv, log, metrics, outbound, rate};
use super::budget::clip_log_line;
use super::host::{HostState, LogLine, OutboundCalls, within};
use crate::error::UpstreamFailure;
use crate::http::body::{BodyState, BufferError};
use crate::http::headers::strip_hop_by_hop;
use crate::state::{RateLimit, StoreError, Take};
use crate::telemetry::plugin_metrics::{
    CounterHandle, Definition, GaugeHandle, HistogramHandle, Kind,
};
use crate::telemetry::traces::Trace;
use crate::upstream::Upstreams;
use crate::upstream::{Affinity, Head, Outgoing};

type Res<T> = wasmtime::Result<T>;

/// The name a test or log line shows for a plugin's log level.
fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Trace => "trace",
        log::Level::Debug => "debug",
        log::Level::Info => "info",
        log::Level::Warn => "warn",
        log::Level::Error => "error",
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) -> Res<()> {
        let message = clip_log_line(&message);
        if !self.budget.admit_log(message.len()) {
            return Ok(());
        }
        if let Some(sink) = &self.caps.log_sink {
            let line = LogLine {
                level: level_name(level).to_string(),
                message: message.to_string(),
            };
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(target: "weir::plugin", plugin, "{message}"),
            log::Level::Debug => tracing::debug!(target: "weir::plugin", plugin, "{message}"),
            log::Level::Info => tracing::info!(target: "weir::plugin", plugin, "{message}"),
            log::Level::Warn => tracing::warn!(target: "weir::plugin", plugin, "{message}"),
            log::Level::Error => tracing::error!(target: "weir::plugin", plugin, "{message}"),
        }
        Ok(())
    }

    fn enabled(&mut self, level: log::Level) -> Res<bool> {
        Ok(match level {
            log::Level::Trace => tracing::enabled!(target: "weir::plugin", tracing::Level::TRACE),
            log::Level::Debug => tracing::enabled!(target: "weir::plugin", tracing::Level::DEBUG),
            log::Level::Info => tracing::enabled!(target: "weir::plugin", tracing::Level::INFO),
            log::Level::Warn => tracing::enabled!(target: "weir::plugin", tracing::Level::WARN),
            log::Level::Error => tracing::enabled!(target: "weir::plugin", tracing::Level::ERROR),
        })
    }
}

type CallResult = Result<outbound::CallResponse, outbound::CallError>;

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
type CallState = (
    Arc<dyn OutboundCalls>,
    Arc<super::budget::PluginBudget>,
    u64,
    Option<Trace>,
);

/// Make one call within the plugin's in-flight budget, with its path
/// normalized as a client's would be; traced as a child of the hook's span
/// when the request is.
async fn budgeted_call(state: CallState, mut call: outbound::Call) -> CallResult {
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
    budget: Arc<super::budget::PluginBudget>,
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

impl outbound::Host for HostState {
    async fn send(&mut self, call: outbound::Call) -> Res<CallResult> {
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

fn rate_limit(limit: rate::Limit) -> RateLimit {
    RateLimit {
        rate: limit.rate,
        period: Duration::from_millis(limit.period_ms),
        burst: limit.burst,
    }
}

fn rate_decision(d: crate::state::Decision) -> rate::Decision {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    rate::Decision {
        allowed: d.allowed,
        limit: d.limit,
        remaining: d.remaining,
        retry_after_ms: ms(d.retry_after),
        reset_after_ms: ms(d.reset_after),
    }
}

impl rate::Host for HostState {
    async fn take(&mut self, key: String, cost: u32, limit: rate::Limit) -> Res<rate::Decision> {
        let key = self.namespaced(&key);
        let take = self.caps.rate.take(&key, cost, rate_limit(limit));
        let decision = within(self.deadline, take).await?;
        self.caps
            .telemetry
            .rate_decision(&self.plugin, decision.allowed);
        Ok(rate_decision(decision))
    }

    async fn take_all(&mut self, takes: Vec<rate::TakeRequest>) -> Res<Vec<rate::Decision>> {
        let takes: Vec<Take> = takes
            .into_iter()
            .map(|t| Take {
                key: self.namespaced(&t.key),
                cost: t.cost,
                limit: rate_limit(t.limit),
            })
            .collect();
        let decisions = within(self.deadline, self.caps.rate.take_all(&takes)).await?;
        // One decision per request: refused if any limit refused it.
        if !decisions.is_empty() {
            let allowed = decisions.iter().all(|d| d.allowed);
            self.caps.telemetry.rate_decision(&self.plugin, allowed);
        }
        Ok(decisions.into_iter().map(rate_decision).collect())
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> Res<Result<Option<Vec<u8>>, kv::KvError>> {
        let get = self.caps.kv.get(&self.plugin, &key);
        Ok(within(self.deadline, get).await?.map_err(kv_error))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Res<Result<(), kv::KvError>> {
        let ttl = ttl_ms.map(Duration::from_millis);
        let quota = self.caps.kv_quota();
        let set = self.caps.kv.set(&self.plugin, &key, value, ttl, quota);
        Ok(within(self.deadline, set).await?.map_err(kv_error))
    }

    async fn delete(&mut self, key: String) -> Res<Result<bool, kv::KvError>> {
        let delete = self.caps.kv.delete(&self.plugin, &key);
        Ok(within(self.deadline, delete).await?.map_err(kv_error))
    }
}

fn kv_error(e: StoreError) -> kv::KvError {
    match e {
        StoreError::Unavailable(why) => kv::KvError::Unavailable(why),
        StoreError::QuotaExceeded(why) => kv::KvError::QuotaExceeded(why),
    }
}

/// Most keys one instance may hold, so a plugin cannot grow host memory
/// without bound.
const MAX_CRYPTO_KEYS: usize = 4096;

impl crypto::Host for HostState {}

impl crypto::HostVerifyingKey for HostState {
    fn from_jwk(
        &mut self,
        jwk: String,
    ) -> Res<Result<wasmtime::component::Resource<crate::jose::VerifyingKey>, String>> {
        if self.crypto_keys >= MAX_CRYPTO_KEYS {
            return Ok(Err(format!(
                "an instance may hold at most {MAX_CRYPTO_KEYS} keys"
            )));
        }
        match crate::jose::VerifyingKey::from_jwk(&jwk) {
            Ok(key) => {
                self.crypto_keys += 1;
                Ok(Ok(self.table.push(key)?))
            }
            Err(why) => Ok(Err(why)),
        }
    }

    fn accepts(
        &mut self,
        key: wasmtime::component::Resource<crate::jose::VerifyingKey>,
        alg: String,
    ) -> Res<bool> {
        Ok(self.table.get(&key)?.accepts(&alg))
    }

    fn verify(
        &mut self,
        key: wasmtime::component::Resource<crate::jose::VerifyingKey>,
        alg: String,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> Res<bool> {
        Ok(self.table.get(&key)?.verify(&alg, &message, &signature))
    }

    fn drop(&mut self, key: wasmtime::component::Resource<crate::jose::VerifyingKey>) -> Res<()> {
        self.table.delete(key)?;
        self.crypto_keys = self.crypto_keys.saturating_sub(1);
        Ok(())
    }
}

/// Most metric handles one instance may hold (every `define` makes one).
const MAX_METRIC_HANDLES: usize = 1024;

impl HostState {
    fn define_metric<T: Send + 'static>(
        &mut self,
        def: Definition<'_>,
        wrap: impl FnOnce(crate::telemetry::plugin_metrics::Handle) -> T,
    ) -> Res<Result<wasmtime::component::Resource<T>, String>> {
        if self.metric_handles >= MAX_METRIC_HANDLES {
            return Ok(Err(format!(
                "an instance may hold at most {MAX_METRIC_HANDLES} metric handles"
            )));
        }
        match self.caps.metrics.define(&self.plugin, &def) {
            Ok(handle) => {
                self.metric_handles += 1;
                Ok(Ok(self.table.push(wrap(handle))?))
            }
            Err(why) => Ok(Err(why)),
        }
    }

    fn drop_metric<T: 'static>(&mut self, handle: wasmtime::component::Resource<T>) -> Res<()> {
        self.table.delete(handle)?;
        self.metric_handles = self.metric_handles.saturating_sub(1);
        Ok(())
    }
}

impl metrics::Host for HostState {}

impl metrics::HostCounter for HostState {
    fn define(
        &mut self,
        name: String,
        help: String,
        labels: Vec<String>,
    ) -> Res<Result<wasmtime::component::Resource<CounterHandle>, String>> {
        let def = Definition {
            name: &name,
            help: &help,
            labels: &labels,
            kind: Kind::Counter,
            buckets: &[],
        };
        self.define_metric(def, CounterHandle)
    }

    fn add(
        &mut self,
        metric: wasmtime::component::Resource<CounterHandle>,
        label_values: Vec<String>,
        value: u64,
    ) -> Res<()> {
        self.table.get(&metric)?.0.add_counter(&label_values, value);
        Ok(())
    }

    fn drop(&mut self, metric: wasmtime::component::Resource<CounterHandle>) -> Res<()> {
        self.drop_metric(metric)
    }
}

impl metrics::HostGauge for HostState {
    fn define(
        &mut self,
        name: String,
        help: String,
        labels: Vec<String>,
    ) -> Res<Result<wasmtime::component::Resource<GaugeHandle>, String>> {
        let def = Definition {
            name: &name,
            help: &help,
            labels: &labels,
            kind: Kind::Gauge,
            buckets: &[],
        };
        self.define_metric(def, GaugeHandle)
    }

    fn set(
        &mut self,
        metric: wasmtime::component::Resource<GaugeHandle>,
        label_values: Vec<String>,
        value: f64,
    ) -> Res<()> {
        self.table.get(&metric)?.0.set_gauge(&label_values, value);
        Ok(())
    }

    fn add(
        &mut self,
        metric: wasmtime::component::Resource<GaugeHandle>,
        label_values: Vec<String>,
        delta: f64,
    ) -> Res<()> {
        self.table.get(&metric)?.0.add_gauge(&label_values, delta);
        Ok(())
    }

    fn drop(&mut self, metric: wasmtime::component::Resource<GaugeHandle>) -> Res<()> {
        self.drop_metric(metric)
    }
}

impl metrics::HostHistogram for HostState {
    fn define(
        &mut self,
        name: String,
        help: String,
        labels: Vec<String>,
        buckets: Vec<f64>,
    ) -> Res<Result<wasmtime::component::Resource<HistogramHandle>, String>> {
        let def = Definition {
            name: &name,
            help: &help,
            labels: &labels,
            kind: Kind::Histogram,
            buckets: &buckets,
        };
        self.define_metric(def, HistogramHandle)
    }

    fn observe(
        &mut self,
        metric: wasmtime::component::Resource<HistogramHandle>,
        label_values: Vec<String>,
        value: f64,
    ) -> Res<()> {
        self.table.get(&metric)?.0.observe(&label_values, value);
        Ok(())
    }

    fn drop(&mut self, metric: wasmtime::component::Resource<HistogramHandle>) -> Res<()> {
        self.drop_metric(metric)
    }
}
