//! The 0.4.0 contract, adapted to the host's 0.5.0 implementation, so
//! plugins built for 0.4.0 load and run unchanged. Each 0.4.0 import calls
//! its 0.5.0 twin and converts the values. 0.5.0 changed no 0.4.0 function
//! or type, it only added the `interest` interface (which a 0.4.0 plugin
//! never calls, so it runs on every route, as before), so every conversion
//! is one to one and nothing is lost.
//!
//! The generated types differ only by package version, but they are
//! distinct Rust types (one module per WIT package), hence the field by
//! field copies.

use wasmtime::component::Resource;

use super::Res;
use crate::exchange::{HeldRequest, HeldResponse};
use crate::runtime::HostState;
use crate::runtime::bindings::v0_4::weir::plugin as old;
use crate::runtime::bindings::weir::plugin as new;
use crate::runtime::jose::VerifyingKey;
use crate::telemetry::plugin_metrics::{CounterHandle, GaugeHandle, HistogramHandle};

/// A 0.4.0 action as the 0.5.0 one the gateway acts on: the same case.
pub fn action(action: old::types::Action) -> new::types::Action {
    match action {
        old::types::Action::Continue => new::types::Action::Continue,
        old::types::Action::Respond(reply) => new::types::Action::Respond(reply_of(reply)),
        old::types::Action::RespondThenContinue(reply) => {
            new::types::Action::RespondThenContinue(reply_of(reply))
        }
        old::types::Action::Wait(wait) => new::types::Action::Wait(new::types::Wait {
            key: wait.key,
            timeout_ms: wait.timeout_ms,
        }),
    }
}

fn reply_of(reply: old::types::Reply) -> new::types::Reply {
    new::types::Reply {
        status: reply.status,
        headers: reply.headers,
        body: reply.body,
    }
}

/// The hooks a 0.4.0 plugin's `init` declared, as 0.5.0 flags (the same
/// two).
pub fn hooks(declared: old::types::Hooks) -> new::types::Hooks {
    let mut hooks = new::types::Hooks::empty();
    if declared.contains(old::types::Hooks::ON_REQUEST) {
        hooks |= new::types::Hooks::ON_REQUEST;
    }
    if declared.contains(old::types::Hooks::ON_RESPONSE) {
        hooks |= new::types::Hooks::ON_RESPONSE;
    }
    hooks
}

fn edit(result: Result<(), new::types::EditError>) -> Result<(), old::types::EditError> {
    use new::types::EditError as N;
    use old::types::EditError as O;
    result.map_err(|e| match e {
        N::InvalidMethod => O::InvalidMethod,
        N::InvalidPath => O::InvalidPath,
        N::InvalidAuthority => O::InvalidAuthority,
        N::InvalidHeaderName => O::InvalidHeaderName,
        N::InvalidHeaderValue => O::InvalidHeaderValue,
        N::InvalidStatus => O::InvalidStatus,
        N::UnknownUpstream => O::UnknownUpstream,
        N::LimitExceeded => O::LimitExceeded,
    })
}

fn body(result: Result<Vec<u8>, new::types::BodyError>) -> Result<Vec<u8>, old::types::BodyError> {
    result.map_err(|e| match e {
        new::types::BodyError::TooLarge(n) => old::types::BodyError::TooLarge(n),
        new::types::BodyError::ReadFailed(why) => old::types::BodyError::ReadFailed(why),
    })
}

fn tls(info: new::types::TlsInfo) -> old::types::TlsInfo {
    old::types::TlsInfo {
        version: info.version,
        cipher_suite: info.cipher_suite,
        sni: info.sni,
        alpn: info.alpn,
        client_certificate: info
            .client_certificate
            .map(|c| old::types::ClientCertificate {
                subject: c.subject,
                sans: c.sans,
                fingerprint_sha256: c.fingerprint_sha256,
            }),
    }
}

impl old::types::Host for HostState {}

impl old::types::HostRequest for HostState {
    fn method(&mut self, r: Resource<HeldRequest>) -> Res<String> {
        new::types::HostRequest::method(self, r)
    }
    fn set_method(
        &mut self,
        r: Resource<HeldRequest>,
        method: String,
    ) -> Res<Result<(), old::types::EditError>> {
        new::types::HostRequest::set_method(self, r, method).map(edit)
    }
    fn path_with_query(&mut self, r: Resource<HeldRequest>) -> Res<String> {
        new::types::HostRequest::path_with_query(self, r)
    }
    fn set_path_with_query(
        &mut self,
        r: Resource<HeldRequest>,
        pq: String,
    ) -> Res<Result<(), old::types::EditError>> {
        new::types::HostRequest::set_path_with_query(self, r, pq).map(edit)
    }
    fn authority(&mut self, r: Resource<HeldRequest>) -> Res<Option<String>> {
        new::types::HostRequest::authority(self, r)
    }
    fn client_addr(&mut self, r: Resource<HeldRequest>) -> Res<old::types::Address> {
        let a = new::types::HostRequest::client_addr(self, r)?;
        Ok(old::types::Address {
            ip: a.ip,
            port: a.port,
        })
    }
    fn client_ip(&mut self, r: Resource<HeldRequest>) -> Res<String> {
        new::types::HostRequest::client_ip(self, r)
    }
    fn tls(&mut self, r: Resource<HeldRequest>) -> Res<Option<old::types::TlsInfo>> {
        Ok(new::types::HostRequest::tls(self, r)?.map(tls))
    }
    fn header(&mut self, r: Resource<HeldRequest>, name: String) -> Res<Option<String>> {
        new::types::HostRequest::header(self, r, name)
    }
    fn header_all(&mut self, r: Resource<HeldRequest>, name: String) -> Res<Vec<String>> {
        new::types::HostRequest::header_all(self, r, name)
    }
    fn headers(&mut self, r: Resource<HeldRequest>) -> Res<Vec<(String, String)>> {
        new::types::HostRequest::headers(self, r)
    }
    fn set_header(
        &mut self,
        r: Resource<HeldRequest>,
        name: String,
        value: String,
    ) -> Res<Result<(), old::types::EditError>> {
        new::types::HostRequest::set_header(self, r, name, value).map(edit)
    }
    fn append_header(
        &mut self,
        r: Resource<HeldRequest>,
        name: String,
        value: String,
    ) -> Res<Result<(), old::types::EditError>> {
        new::types::HostRequest::append_header(self, r, name, value).map(edit)
    }
    fn set_headers(
        &mut self,
        r: Resource<HeldRequest>,
        headers: Vec<(String, String)>,
    ) -> Res<Result<(), old::types::EditError>> {
        new::types::HostRequest::set_headers(self, r, headers).map(edit)
    }
    fn remove_header(&mut self, r: Resource<HeldRequest>, name: String) -> Res<()> {
        new::types::HostRequest::remove_header(self, r, name)
    }
    fn set_response_headers(
        &mut self,
        r: Resource<HeldRequest>,
        headers: Vec<(String, String)>,
    ) -> Res<Result<(), old::types::EditError>> {
        new::types::HostRequest::set_response_headers(self, r, headers).map(edit)
    }
    async fn body(
        &mut self,
        r: Resource<HeldRequest>,
    ) -> Res<Result<Vec<u8>, old::types::BodyError>> {
        new::types::HostRequest::body(self, r).await.map(body)
    }
    fn set_body(&mut self, r: Resource<HeldRequest>, bytes: Vec<u8>) -> Res<()> {
        new::types::HostRequest::set_body(self, r, bytes)
    }
    fn get_context(&mut self, r: Resource<HeldRequest>, key: String) -> Res<Option<String>> {
        new::types::HostRequest::get_context(self, r, key)
    }
    fn set_context(&mut self, r: Resource<HeldRequest>, key: String, value: String) -> Res<()> {
        new::types::HostRequest::set_context(self, r, key, value)
    }
    fn upstream(&mut self, r: Resource<HeldRequest>) -> Res<Option<String>> {
        new::types::HostRequest::upstream(self, r)
    }
    fn set_upstream(
        &mut self,
        r: Resource<HeldRequest>,
        name: String,
    ) -> Res<Result<(), old::types::EditError>> {
        new::types::HostRequest::set_upstream(self, r, name).map(edit)
    }
    fn drop(&mut self, r: Resource<HeldRequest>) -> Res<()> {
        new::types::HostRequest::drop(self, r)
    }
}

impl old::types::HostResponse for HostState {
    fn status(&mut self, r: Resource<HeldResponse>) -> Res<u16> {
        new::types::HostResponse::status(self, r)
    }
    fn set_status(
        &mut self,
        r: Resource<HeldResponse>,
        status: u16,
    ) -> Res<Result<(), old::types::EditError>> {
        new::types::HostResponse::set_status(self, r, status).map(edit)
    }
    fn header(&mut self, r: Resource<HeldResponse>, name: String) -> Res<Option<String>> {
        new::types::HostResponse::header(self, r, name)
    }
    fn header_all(&mut self, r: Resource<HeldResponse>, name: String) -> Res<Vec<String>> {
        new::types::HostResponse::header_all(self, r, name)
    }
    fn headers(&mut self, r: Resource<HeldResponse>) -> Res<Vec<(String, String)>> {
        new::types::HostResponse::headers(self, r)
    }
    fn set_header(
        &mut self,
        r: Resource<HeldResponse>,
        name: String,
        value: String,
    ) -> Res<Result<(), old::types::EditError>> {
        new::types::HostResponse::set_header(self, r, name, value).map(edit)
    }
    fn append_header(
        &mut self,
        r: Resource<HeldResponse>,
        name: String,
        value: String,
    ) -> Res<Result<(), old::types::EditError>> {
        new::types::HostResponse::append_header(self, r, name, value).map(edit)
    }
    fn set_headers(
        &mut self,
        r: Resource<HeldResponse>,
        headers: Vec<(String, String)>,
    ) -> Res<Result<(), old::types::EditError>> {
        new::types::HostResponse::set_headers(self, r, headers).map(edit)
    }
    fn remove_header(&mut self, r: Resource<HeldResponse>, name: String) -> Res<()> {
        new::types::HostResponse::remove_header(self, r, name)
    }
    async fn body(
        &mut self,
        r: Resource<HeldResponse>,
    ) -> Res<Result<Vec<u8>, old::types::BodyError>> {
        new::types::HostResponse::body(self, r).await.map(body)
    }
    fn set_body(&mut self, r: Resource<HeldResponse>, bytes: Vec<u8>) -> Res<()> {
        new::types::HostResponse::set_body(self, r, bytes)
    }
    fn drop(&mut self, r: Resource<HeldResponse>) -> Res<()> {
        new::types::HostResponse::drop(self, r)
    }
}

impl old::log::Host for HostState {
    fn log(&mut self, level: old::log::Level, message: String) -> Res<()> {
        new::log::Host::log(self, log_level(level), message)
    }
    fn enabled(&mut self, level: old::log::Level) -> Res<bool> {
        new::log::Host::enabled(self, log_level(level))
    }
}

fn log_level(level: old::log::Level) -> new::log::Level {
    match level {
        old::log::Level::Trace => new::log::Level::Trace,
        old::log::Level::Debug => new::log::Level::Debug,
        old::log::Level::Info => new::log::Level::Info,
        old::log::Level::Warn => new::log::Level::Warn,
        old::log::Level::Error => new::log::Level::Error,
    }
}

fn call(c: old::outbound::Call) -> new::outbound::Call {
    new::outbound::Call {
        upstream: c.upstream,
        method: c.method,
        path_with_query: c.path_with_query,
        headers: c.headers,
        body: c.body,
        timeout_ms: c.timeout_ms,
    }
}

fn call_result(
    r: Result<new::outbound::CallResponse, new::outbound::CallError>,
) -> Result<old::outbound::CallResponse, old::outbound::CallError> {
    use new::outbound::CallError as N;
    use old::outbound::CallError as O;
    match r {
        Ok(resp) => Ok(old::outbound::CallResponse {
            status: resp.status,
            headers: resp.headers,
            body: resp.body,
        }),
        Err(e) => Err(match e {
            N::UnknownUpstream(s) => O::UnknownUpstream(s),
            N::InvalidRequest(s) => O::InvalidRequest(s),
            N::ConnectFailed(s) => O::ConnectFailed(s),
            N::Timeout => O::Timeout,
            N::TooLarge(n) => O::TooLarge(n),
            N::Failed(s) => O::Failed(s),
            N::NotGranted(s) => O::NotGranted(s),
            N::BudgetExceeded(s) => O::BudgetExceeded(s),
        }),
    }
}

impl old::outbound::Host for HostState {
    async fn send(
        &mut self,
        c: old::outbound::Call,
    ) -> Res<Result<old::outbound::CallResponse, old::outbound::CallError>> {
        new::outbound::Host::send(self, call(c))
            .await
            .map(call_result)
    }

    async fn send_all(
        &mut self,
        calls: Vec<old::outbound::Call>,
    ) -> Res<Vec<Result<old::outbound::CallResponse, old::outbound::CallError>>> {
        let calls = calls.into_iter().map(call).collect();
        let results = new::outbound::Host::send_all(self, calls).await?;
        Ok(results.into_iter().map(call_result).collect())
    }
}

fn limit(l: old::rate::Limit) -> new::rate::Limit {
    new::rate::Limit {
        rate: l.rate,
        period_ms: l.period_ms,
        burst: l.burst,
    }
}

fn decision(d: new::rate::Decision) -> old::rate::Decision {
    old::rate::Decision {
        allowed: d.allowed,
        limit: d.limit,
        remaining: d.remaining,
        retry_after_ms: d.retry_after_ms,
        reset_after_ms: d.reset_after_ms,
    }
}

impl old::rate::Host for HostState {
    async fn take(
        &mut self,
        key: String,
        cost: u32,
        l: old::rate::Limit,
    ) -> Res<old::rate::Decision> {
        new::rate::Host::take(self, key, cost, limit(l))
            .await
            .map(decision)
    }

    async fn take_all(
        &mut self,
        takes: Vec<old::rate::TakeRequest>,
    ) -> Res<Vec<old::rate::Decision>> {
        let takes = takes
            .into_iter()
            .map(|t| new::rate::TakeRequest {
                key: t.key,
                cost: t.cost,
                limit: limit(t.limit),
            })
            .collect();
        let decisions = new::rate::Host::take_all(self, takes).await?;
        Ok(decisions.into_iter().map(decision).collect())
    }
}

fn kv<T>(r: Result<T, new::kv::KvError>) -> Result<T, old::kv::KvError> {
    r.map_err(|e| match e {
        new::kv::KvError::Unavailable(s) => old::kv::KvError::Unavailable(s),
        new::kv::KvError::QuotaExceeded(s) => old::kv::KvError::QuotaExceeded(s),
    })
}

impl old::kv::Host for HostState {
    async fn get(&mut self, key: String) -> Res<Result<Option<Vec<u8>>, old::kv::KvError>> {
        new::kv::Host::get(self, key).await.map(kv)
    }
    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Res<Result<(), old::kv::KvError>> {
        new::kv::Host::set(self, key, value, ttl_ms).await.map(kv)
    }
    async fn delete(&mut self, key: String) -> Res<Result<bool, old::kv::KvError>> {
        new::kv::Host::delete(self, key).await.map(kv)
    }
    async fn set_if_absent(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Res<Result<bool, old::kv::KvError>> {
        new::kv::Host::set_if_absent(self, key, value, ttl_ms)
            .await
            .map(kv)
    }
}

impl old::crypto::Host for HostState {}

impl old::crypto::HostVerifyingKey for HostState {
    fn from_jwk(&mut self, jwk: String) -> Res<Result<Resource<VerifyingKey>, String>> {
        new::crypto::HostVerifyingKey::from_jwk(self, jwk)
    }
    fn accepts(&mut self, key: Resource<VerifyingKey>, alg: String) -> Res<bool> {
        new::crypto::HostVerifyingKey::accepts(self, key, alg)
    }
    fn verify(
        &mut self,
        key: Resource<VerifyingKey>,
        alg: String,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> Res<bool> {
        new::crypto::HostVerifyingKey::verify(self, key, alg, message, signature)
    }
    fn drop(&mut self, key: Resource<VerifyingKey>) -> Res<()> {
        new::crypto::HostVerifyingKey::drop(self, key)
    }
}

// Metrics: the handles are the same host types in both versions, so these
// only forward.

impl old::metrics::Host for HostState {}

impl old::metrics::HostCounter for HostState {
    fn define(
        &mut self,
        name: String,
        help: String,
        labels: Vec<String>,
    ) -> Res<Result<Resource<CounterHandle>, String>> {
        new::metrics::HostCounter::define(self, name, help, labels)
    }
    fn add(
        &mut self,
        metric: Resource<CounterHandle>,
        label_values: Vec<String>,
        value: u64,
    ) -> Res<()> {
        new::metrics::HostCounter::add(self, metric, label_values, value)
    }
    fn drop(&mut self, metric: Resource<CounterHandle>) -> Res<()> {
        new::metrics::HostCounter::drop(self, metric)
    }
}

impl old::metrics::HostGauge for HostState {
    fn define(
        &mut self,
        name: String,
        help: String,
        labels: Vec<String>,
    ) -> Res<Result<Resource<GaugeHandle>, String>> {
        new::metrics::HostGauge::define(self, name, help, labels)
    }
    fn set(
        &mut self,
        metric: Resource<GaugeHandle>,
        label_values: Vec<String>,
        value: f64,
    ) -> Res<()> {
        new::metrics::HostGauge::set(self, metric, label_values, value)
    }
    fn add(
        &mut self,
        metric: Resource<GaugeHandle>,
        label_values: Vec<String>,
        delta: f64,
    ) -> Res<()> {
        new::metrics::HostGauge::add(self, metric, label_values, delta)
    }
    fn drop(&mut self, metric: Resource<GaugeHandle>) -> Res<()> {
        new::metrics::HostGauge::drop(self, metric)
    }
}

impl old::metrics::HostHistogram for HostState {
    fn define(
        &mut self,
        name: String,
        help: String,
        labels: Vec<String>,
        buckets: Vec<f64>,
    ) -> Res<Result<Resource<HistogramHandle>, String>> {
        new::metrics::HostHistogram::define(self, name, help, labels, buckets)
    }
    fn observe(
        &mut self,
        metric: Resource<HistogramHandle>,
        label_values: Vec<String>,
        value: f64,
    ) -> Res<()> {
        new::metrics::HostHistogram::observe(self, metric, label_values, value)
    }
    fn drop(&mut self, metric: Resource<HistogramHandle>) -> Res<()> {
        new::metrics::HostHistogram::drop(self, metric)
    }
}
