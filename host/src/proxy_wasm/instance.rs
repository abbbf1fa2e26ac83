//! Instances of one filter. A proxy-wasm VM keeps per-stream contexts
//! between callbacks, so a request's stream holds its instance from
//! `on-request` to the end of `on-response` (as the component pool does
//! for one hook): a trap then costs that request only, never the streams
//! of other requests. The root context is created (`proxy_on_vm_start`,
//! `proxy_on_configure`) once per instance, when it is made.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use wasmtime::{InstancePre, Store, TypedFunc};

use super::state::{FilterState, StreamState};
use crate::error::PluginFailure;
use crate::runtime::budget::PluginBudget;
use crate::runtime::pool::PoolSettings;
use crate::runtime::{Capabilities, HostState, Runtime, locked_down_wasi};

/// `proxy_on_http_call_response(context, token, headers, body, trailers)`.
pub type CallResponseFn = TypedFunc<(u32, u32, u32, u32, u32), ()>;

/// The filter's exported callbacks (the optional ones may be absent).
pub struct Exports {
    pub context_create: TypedFunc<(u32, u32), ()>,
    pub request_headers: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub request_body: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub response_headers: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub response_body: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub http_call_response: Option<CallResponseFn>,
    pub log: Option<TypedFunc<u32, ()>>,
    pub done: Option<TypedFunc<u32, u32>>,
    pub delete: Option<TypedFunc<u32, ()>>,
}

/// A ready instance.
pub struct Warm {
    pub store: Store<FilterState>,
    pub exports: Exports,
    /// Streams served.
    pub calls: u64,
    /// The last context id given out.
    pub last_id: u32,
    /// A stream that ended without its last callbacks (its request was
    /// dropped): its context is deleted before the instance serves again.
    pub unfinished: Option<u32>,
}

/// What every instance of one filter shares.
pub struct Instances {
    pub runtime: Arc<Runtime>,
    pub pre: InstancePre<FilterState>,
    pub config: Arc<[u8]>,
    pub caps: Arc<Capabilities>,
    pub budget: Arc<PluginBudget>,
    pub settings: PoolSettings,
    idle: Mutex<Vec<Warm>>,
    permits: Arc<Semaphore>,
}

/// Root context id of every instance (stream ids count up from it).
pub const ROOT_ID: u32 = 1;

impl Instances {
    /// The shared part of a filter's instances.
    pub fn new(
        runtime: Arc<Runtime>,
        pre: InstancePre<FilterState>,
        config: Arc<[u8]>,
        caps: Arc<Capabilities>,
        budget: Arc<PluginBudget>,
        settings: PoolSettings,
    ) -> Self {
        Instances {
            permits: Arc::new(Semaphore::new(settings.max_instances as usize)),
            idle: Mutex::new(Vec::new()),
            runtime,
            pre,
            config,
            caps,
            budget,
            settings,
        }
    }

    /// Streams holding an instance now.
    pub fn busy(&self) -> usize {
        (self.settings.max_instances as usize).saturating_sub(self.permits.available_permits())
    }

    /// Idle instances.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Warm>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for one stream, waiting at most one hook deadline.
    pub async fn permit(&self) -> Result<OwnedSemaphorePermit, PluginFailure> {
        crate::runtime::pool::slot(&self.permits, &self.settings).await
    }

    /// An idle instance, or `None` when a new one must be made.
    pub fn take_idle(&self) -> Option<Warm> {
        self.lock().pop()
    }

    /// Keep a new instance warm.
    pub fn keep(&self, warm: Warm) {
        self.lock().push(warm);
    }

    /// Give an instance back after a stream (unless it served its share).
    pub fn give_back(&self, mut warm: Warm) {
        warm.calls += 1;
        warm.store.data_mut().exchange = StreamState::default();
        warm.store.data_mut().stream_id = None;
        warm.store.data_mut().host.trace = None;
        if warm.calls < self.settings.max_calls {
            self.lock().push(warm);
        }
    }

    /// A new instance: WASI's `_initialize` (or `_start`), then the root
    /// context, `proxy_on_vm_start` and `proxy_on_configure` with the
    /// plugin configuration; all within `deadline`.
    pub async fn instantiate(&self, deadline: Instant) -> Result<Warm, PluginFailure> {
        let host = HostState::new(
            self.budget.clone(),
            self.caps.clone(),
            self.settings.max_memory,
        );
        let wasi = locked_down_wasi(&self.budget).build_p1();
        let state = FilterState {
            host,
            wasi,
            config: self.config.clone(),
            root_id: ROOT_ID,
            stream_id: None,
            metrics: Vec::new(),
            exchange: StreamState::default(),
        };
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|s| &mut s.host.limiter);
        let ticker = self.runtime.ticker().clone();
        store.epoch_deadline_callback(move |ctx| {
            Ok(crate::runtime::ticker::on_tick(
                &ticker,
                ctx.data().host.deadline,
            ))
        });
        arm(&mut store, deadline);
        let config_len = self.config.len() as u32;
        let started = tokio::time::timeout_at(deadline, async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            for start in ["_initialize", "_start"] {
                if let Ok(f) = instance.get_typed_func::<(), ()>(&mut store, start) {
                    f.call_async(&mut store, ()).await?;
                    break;
                }
            }
            let exports = exports(&instance, &mut store)?;
            exports
                .context_create
                .call_async(&mut store, (ROOT_ID, 0))
                .await?;
            let vm_start =
                instance.get_typed_func::<(u32, u32), u32>(&mut store, "proxy_on_vm_start")?;
            if vm_start.call_async(&mut store, (ROOT_ID, 0)).await? == 0 {
                return Ok(Err("proxy_on_vm_start returned false".to_string()));
            }
            let configure =
                instance.get_typed_func::<(u32, u32), u32>(&mut store, "proxy_on_configure")?;
            if configure
                .call_async(&mut store, (ROOT_ID, config_len))
                .await?
                == 0
            {
                return Ok(Err(
                    "proxy_on_configure rejected the plugin configuration".to_string()
                ));
            }
            Ok::<_, wasmtime::Error>(Ok(exports))
        })
        .await
        .unwrap_or_else(|_| Err(wasmtime::Error::new(crate::runtime::DeadlineReached)));
        match settle(&store, &self.settings, started)? {
            Ok(exports) => Ok(Warm {
                store,
                exports,
                calls: 0,
                last_id: ROOT_ID,
                unfinished: None,
            }),
            Err(why) => Err(PluginFailure::Instantiate(why)),
        }
    }
}

fn exports(
    instance: &wasmtime::Instance,
    store: &mut Store<FilterState>,
) -> wasmtime::Result<Exports> {
    Ok(Exports {
        context_create: instance.get_typed_func(&mut *store, "proxy_on_context_create")?,
        request_headers: optional(instance, store, "proxy_on_request_headers")?,
        request_body: optional(instance, store, "proxy_on_request_body")?,
        response_headers: optional(instance, store, "proxy_on_response_headers")?,
        response_body: optional(instance, store, "proxy_on_response_body")?,
        http_call_response: optional(instance, store, "proxy_on_http_call_response")?,
        log: optional(instance, store, "proxy_on_log")?,
        done: optional(instance, store, "proxy_on_done")?,
        delete: optional(instance, store, "proxy_on_delete")?,
    })
}

/// A callback the filter may leave out; one exported with another
/// signature than the ABI's is an error, never silently skipped.
fn optional<P, R>(
    instance: &wasmtime::Instance,
    store: &mut Store<FilterState>,
    name: &str,
) -> wasmtime::Result<Option<TypedFunc<P, R>>>
where
    P: wasmtime::WasmParams,
    R: wasmtime::WasmResults,
{
    match instance.get_func(&mut *store, name) {
        None => Ok(None),
        Some(func) => func.typed(&*store).map(Some).map_err(|e| {
            e.context(format!(
                "export `{name}` does not have the proxy-wasm 0.2 signature"
            ))
        }),
    }
}

/// Start a hook call that must end by `deadline`.
pub fn arm(store: &mut Store<FilterState>, deadline: Instant) {
    store.data_mut().host.begin_call(deadline);
    store.set_epoch_deadline(1);
}

/// Map a call's outcome to the failure the gateway reports, as the
/// component pool does.
pub fn settle<T>(
    store: &Store<FilterState>,
    settings: &PoolSettings,
    outcome: wasmtime::Result<T>,
) -> Result<T, PluginFailure> {
    outcome
        .map_err(|e| crate::runtime::pool::failure(e, store.data().host.limiter.exceeded, settings))
}
