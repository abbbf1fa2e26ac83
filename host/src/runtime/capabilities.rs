//! The host capabilities plugins import: `log`, `outbound`, `rate`, `kv`.
//! Each is a thin adapter from the WIT types to the host's mechanism.

use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::bindings::weir::plugin::{crypto, kv, log, outbound, rate};
use super::host::{HostState, LogLine, OutboundCalls};
use crate::body::{BodyState, BufferError};
use crate::error::UpstreamFailure;
use crate::headers::strip_hop_by_hop;
use crate::state::{RateLimit, Take};
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
        if let Some(sink) = &self.caps.log_sink {
            let line = LogLine {
                level: level_name(level).to_string(),
                message: message.clone(),
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

impl outbound::Host for HostState {
    async fn send(
        &mut self,
        call: outbound::Call,
    ) -> Res<Result<outbound::CallResponse, outbound::CallError>> {
        Ok(self
            .caps
            .outbound
            .call(call, self.caps.max_body_bytes)
            .await)
    }

    async fn send_all(
        &mut self,
        calls: Vec<outbound::Call>,
    ) -> Res<Vec<Result<outbound::CallResponse, outbound::CallError>>> {
        let (outbound, max_body) = (self.caps.outbound.clone(), self.caps.max_body_bytes);
        Ok(
            futures::future::join_all(calls.into_iter().map(|call| outbound.call(call, max_body)))
                .await,
        )
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
        Ok(rate_decision(
            self.caps.rate.take(&key, cost, rate_limit(limit)).await,
        ))
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
        Ok(self
            .caps
            .rate
            .take_all(&takes)
            .await
            .into_iter()
            .map(rate_decision)
            .collect())
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> Res<Result<Option<Vec<u8>>, kv::KvError>> {
        let key = self.namespaced(&key);
        Ok(self.caps.kv.get(&key).await.map_err(kv_error))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Res<Result<(), kv::KvError>> {
        let key = self.namespaced(&key);
        let ttl = ttl_ms.map(Duration::from_millis);
        Ok(self.caps.kv.set(&key, value, ttl).await.map_err(kv_error))
    }

    async fn delete(&mut self, key: String) -> Res<Result<bool, kv::KvError>> {
        let key = self.namespaced(&key);
        Ok(self.caps.kv.delete(&key).await.map_err(kv_error))
    }
}

fn kv_error(e: crate::state::StoreError) -> kv::KvError {
    match e {
        crate::state::StoreError::Unavailable(why) => kv::KvError::Unavailable(why),
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
