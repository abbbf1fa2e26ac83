//! The data each plugin instance's `Store` carries: a locked-down WASI
//! context, the resource table through which requests and responses are
//! lent to the plugin, the memory limiter, the capabilities, and the
//! plugin's budgets.

use std::sync::Arc;

use tokio::time::Instant;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::budget::PluginBudget;
use super::capabilities::Capabilities;
use crate::governance::grants::Grants;

/// Per-instance store data.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    /// Name of the plugin, for logs and to keep its keys private.
    pub(crate) plugin: Arc<str>,
    /// What the plugin may still consume (shared by its instances).
    pub(crate) budget: Arc<PluginBudget>,
    pub(crate) caps: Arc<Capabilities>,
    /// When the current hook call must end.
    pub(crate) deadline: Instant,
    /// `outbound` calls made in the current hook call.
    pub(crate) outbound_calls: u32,
    /// Keys held through the `crypto` capability.
    pub(crate) crypto_keys: usize,
    /// Metrics defined through the `metrics` capability (handles held).
    pub(crate) metric_handles: usize,
    /// The plugin's capability grants: which upstreams `outbound` may call.
    pub(crate) grants: Arc<Grants>,
    /// The span of the hook call running, when its request is traced:
    /// `outbound` calls become its children.
    pub(crate) trace: Option<crate::telemetry::traces::Trace>,
    /// What `init` declares through `interest`: `Some` only while `init`
    /// runs.
    pub(crate) declaring: Option<Declared>,
}

/// What a plugin's `init` declared through `interest` (`interest.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    /// `None`: every route (no `only-routes` call).
    pub routes: Option<Vec<String>>,
}

impl HostState {
    /// State for a new instance of the plugin `budget` belongs to, capped at
    /// `max_memory` bytes.
    pub fn new(budget: Arc<PluginBudget>, caps: Arc<Capabilities>, max_memory: u64) -> Self {
        let plugin = budget.plugin().clone();
        let grants = caps.grants.for_plugin(&plugin);
        HostState {
            wasi: locked_down_wasi(&budget).build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(max_memory),
            plugin,
            budget,
            caps,
            deadline: Instant::now(),
            outbound_calls: 0,
            crypto_keys: 0,
            metric_handles: 0,
            grants,
            trace: None,
            declaring: None,
        }
    }

    /// Start a hook call that must end by `deadline`.
    pub(crate) fn begin_call(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.outbound_calls = 0;
    }

    /// A key in the plugin's private namespace of the shared stores.
    pub(crate) fn namespaced(&self, key: &str) -> String {
        format!("{}/{key}", self.plugin)
    }
}

/// WASI with nothing granted: no preopened directories, no environment, no
/// arguments, no network, no stdin. stdout and stderr go to the log, under
/// the plugin's log budget. Clocks and randomness stay, as language
/// runtimes need them to start.
pub(crate) fn locked_down_wasi(budget: &Arc<PluginBudget>) -> wasmtime_wasi::WasiCtxBuilder {
    use super::stdio::{LogOutput, Stream};
    let mut builder = WasiCtx::builder();
    builder
        .stdout(LogOutput::new(budget.clone(), Stream::Stdout))
        .stderr(LogOutput::new(budget.clone(), Stream::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    builder
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and remembers that the cap was hit, so the trap that
/// follows can be reported as "memory limit exceeded".
pub(crate) struct MemoryLimiter {
    max_memory: u64,
    pub(crate) exceeded: bool,
}

impl MemoryLimiter {
    fn new(max_memory: u64) -> Self {
        MemoryLimiter {
            max_memory,
            exceeded: false,
        }
    }
}

/// The error that ends a hook whose host call was still waiting (on a
/// body, an outbound call, a shared store) when the hook's deadline came.
#[derive(Debug, thiserror::Error)]
#[error("hook deadline reached while waiting in a host call")]
pub(crate) struct DeadlineReached;

/// Run a host call's wait, but no later than `deadline`: the hook's
/// deadline holds in wall-clock terms without a timer around every hook
/// call (wasm's own running time is bounded by the epoch callback).
pub(crate) async fn within<T>(
    deadline: Instant,
    wait: impl std::future::Future<Output = T>,
) -> wasmtime::Result<T> {
    tokio::time::timeout_at(deadline, wait)
        .await
        .map_err(|_| wasmtime::Error::new(DeadlineReached))
}

/// The error raised when a plugin grows its memory past the cap.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {0} bytes exceeded")]
pub(crate) struct MemoryLimitExceeded(pub u64);

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_memory {
            self.exceeded = true;
            // An error, not `Ok(false)`: trap at once rather than let the
            // guest's allocator limp on.
            return Err(wasmtime::Error::new(MemoryLimitExceeded(self.max_memory)));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
