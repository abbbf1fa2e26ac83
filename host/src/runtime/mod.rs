//! The WebAssembly runtime: one [`Engine`] for the process (pooling
//! allocator, epoch interruption), the [`Linker`] holding every host
//! capability, and the epoch ticker that lets hook deadlines fire.

pub mod bindings;
pub mod budget;
pub mod capabilities;
mod compat;
pub mod compile;
mod host;
pub mod interest;
pub mod jose;
pub(crate) use capabilities::outbound::budgeted_call;
pub mod perf_map;
pub mod pool;
mod resources;
mod stdio;
pub mod ticker;
pub mod world;

pub use resources::reply_to_response;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config as EngineConfig, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

pub use capabilities::{Capabilities, LogLine, OutboundCalls};
pub use host::HostState;
pub(crate) use host::{DeadlineReached, locked_down_wasi, within};
pub(crate) use pool::bounded;

use crate::config::{Limits, RuntimeSettings};

pub use ticker::{EPOCH_TICK, SLOW_TICK};

/// The engine and linker shared by every plugin of every pipeline.
pub struct Runtime {
    engine: Engine,
    ticker: Arc<ticker::Ticker>,
    linker: Linker<HostState>,
    max_memory_bytes: u64,
}

impl Runtime {
    /// Build the engine for these limits (the pool size and the memory cap are
    /// fixed for the life of the process) and start its epoch ticker.
    pub fn new(limits: &Limits, settings: &RuntimeSettings) -> anyhow::Result<Arc<Runtime>> {
        let max_memory_bytes = limits.plugin_memory_bytes();
        let engine = Engine::new(&engine_config(max_memory_bytes, settings.pool_instances))
            .map_err(anyhow::Error::from)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        // Every contract version: 0.4.0, 0.3.0, 0.2.0 and 0.1.0 plugins
        // keep loading (`compat/`). Their interfaces have versioned names,
        // so the five sets of imports sit side by side in one linker.
        bindings::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        bindings::v0_4::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        bindings::v0_3::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        bindings::v0_2::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        bindings::v0_1::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        let ticker = ticker::Ticker::start(&engine)
            .map_err(|e| anyhow::anyhow!("cannot start the epoch ticker thread: {e}"))?;
        Ok(Arc::new(Runtime {
            engine,
            ticker,
            linker,
            max_memory_bytes,
        }))
    }

    /// The epoch ticker, which hooks keep awake.
    pub fn ticker(&self) -> &Arc<ticker::Ticker> {
        &self.ticker
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The linker with WASI (locked down) and Weir's capabilities.
    pub fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    /// The largest memory cap a pipeline may ask for without a restart.
    pub fn max_memory_bytes(&self) -> u64 {
        self.max_memory_bytes
    }
}

fn engine_config(max_memory_bytes: u64, pool_instances: u32) -> EngineConfig {
    let mut pool = PoolingAllocationConfig::default();
    // Components from heavier toolchains (componentize-py/js) hold several
    // core instances, memories and tables; Rust plugins hold one of each.
    pool.total_component_instances(pool_instances)
        .total_core_instances(pool_instances.saturating_mul(4))
        .total_memories(pool_instances.saturating_mul(2))
        .total_tables(pool_instances.saturating_mul(4))
        .total_stacks(pool_instances)
        .max_core_instances_per_component(64)
        .max_memories_per_component(8)
        .max_tables_per_component(16)
        .max_memory_size(usize::try_from(max_memory_bytes).unwrap_or(usize::MAX))
        .linear_memory_keep_resident(2 * 1024 * 1024)
        .table_keep_resident(64 * 1024)
        // Reset only the pages an instance touched, not the whole kept
        // region: a fresh instance per request (`wasi:http` components)
        // otherwise memsets 2 MiB per request (30% of its CPU, measured).
        // Linux 6.7+; elsewhere wasmtime falls back to the memset.
        .pagemap_scan(wasmtime::Enabled::Auto)
        // Freed slots keep their pages for a fast re-instantiation of the same
        // component; after a reload no instance will use the old components'
        // slots again, so keeping 100 (the default) of them warm only holds
        // ~70 MiB. 16 is plenty for instance churn within one pipeline.
        .max_unused_warm_slots(16);

    let mut config = EngineConfig::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        // Component-model async is unused; leaving it on costs ~8 µs a call.
        .concurrency_support(false)
        // A trap's backtrace names each frame's function (the name
        // section) and, when the plugin carries DWARF, its file and line.
        // The DWARF is read when the plugin is compiled (a DWARF-free
        // release build has none to read) and resolved only for a
        // backtrace, so nothing is added to a hook call.
        .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if perf_map::per_function() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}
