//! The host capabilities plugins import: `log`, `rate`, `kv`, `crypto`,
//! `metrics` (`outbound` is in `outbound.rs`). Each is a thin adapter from
//! the WIT types to the host's mechanism, held to the plugin's budgets.

use std::time::Duration;

use super::bindings::weir::plugin::{crypto, kv, log, metrics, rate};
use super::budget::clip_log_line;
use super::host::{HostState, LogLine, within};
use crate::state::{Expect, RateLimit, StoreError, Take};
use crate::telemetry::plugin_metrics::{
    CounterHandle, Definition, GaugeHandle, HistogramHandle, Kind,
};

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

    /// The store's conditional write, so the check and the write are one
    /// atomic step (a lock, or one Redis script) on every gateway sharing
    /// the store: of several callers at once exactly one wins.
    async fn set_if_absent(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Res<Result<bool, kv::KvError>> {
        let ttl = ttl_ms.map(Duration::from_millis);
        let quota = self.caps.kv_quota();
        let set = self
            .caps
            .kv
            .set_if(&self.plugin, &key, Expect::Absent, value, ttl, quota);
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
        self.table
            .get_mut(&metric)?
            .0
            .add_counter(&label_values, value);
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
        self.table
            .get_mut(&metric)?
            .0
            .set_gauge(&label_values, value);
        Ok(())
    }

    fn add(
        &mut self,
        metric: wasmtime::component::Resource<GaugeHandle>,
        label_values: Vec<String>,
        delta: f64,
    ) -> Res<()> {
        self.table
            .get_mut(&metric)?
            .0
            .add_gauge(&label_values, delta);
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
        self.table.get_mut(&metric)?.0.observe(&label_values, value);
        Ok(())
    }

    fn drop(&mut self, metric: wasmtime::component::Resource<HistogramHandle>) -> Res<()> {
        self.drop_metric(metric)
    }
}
