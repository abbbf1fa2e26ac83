//! proxy-wasm filters as plugins: a core WebAssembly module exporting
//! `proxy_abi_version_0_2_1` (or `_0_2_0`), dropped into the plugin
//! directory as `NAME.wasm`, runs in the chain like a component plugin,
//! under the same governance (grants, deadline, memory cap, scope, failure
//! policy, quarantine, canary, metrics and traces per hook). `NAME.json`'s
//! bytes, whatever they are, are its plugin configuration.
//!
//! - `abi.rs`: the ABI's numbers and wire formats;
//! - `imports.rs`: the host functions (module `env`);
//! - `headers.rs`, `properties.rs`, `shared.rs`: what they act on;
//! - `instance.rs`: instances, each serving one stream at a time;
//! - `stream.rs`: one stream's callbacks, pauses and calls.

mod abi;
mod headers;
mod imports;
mod instance;
mod properties;
mod shared;
mod state;
mod stream;

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::time::Instant;
use wasmtime::{Linker, Module};

use crate::error::PluginFailure;
use crate::exchange::{Carried, HeldRequest, HeldResponse};
use crate::governance::grants::Capability;
use crate::runtime::bindings::{Action, Hooks, Reply};
use crate::runtime::budget::PluginBudget;
use crate::runtime::pool::PoolSettings;
use crate::runtime::{Capabilities, Runtime, bounded};
use crate::telemetry::host_metrics::PluginMetricsHandles;

use instance::{Instances, arm, settle};
pub use state::FilterState;
use stream::{Flow, Half, Held};

/// The ABI versions a filter may declare, newest first.
const ABI_EXPORTS: [(&str, &str); 2] = [
    ("proxy_abi_version_0_2_1", "proxy-wasm 0.2.1"),
    ("proxy_abi_version_0_2_0", "proxy-wasm 0.2.0"),
];

/// The linker every filter is instantiated with: WASI preview 1 (its
/// context grants nothing) and the ABI's host functions.
pub fn linker(runtime: &Runtime) -> Result<Linker<FilterState>, String> {
    let mut linker = Linker::new(runtime.engine());
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut FilterState| &mut s.wasi)
        .map_err(|e| format!("{e:#}"))?;
    imports::add_to_linker(&mut linker).map_err(|e| format!("{e:#}"))?;
    Ok(linker)
}

/// The ABI a compiled module declares, or why it is no filter.
pub fn abi_of(module: &Module) -> Result<&'static str, String> {
    ABI_EXPORTS
        .iter()
        .find(|(name, _)| module.get_export(name).is_some())
        .map(|(_, abi)| *abi)
        .ok_or_else(|| {
            "is a core WebAssembly module, not a component, and not a proxy-wasm \
             filter either (it exports no proxy_abi_version_0_2_1 nor _0_2_0)"
                .to_string()
        })
}

/// The capabilities a filter's imports can reach. The SDKs import nearly
/// every host call whether the filter uses it or not (the Rust SDK's
/// dispatcher references them all), so grants are not checked against
/// imports, as a component's are, but at each call: a call outside the
/// grant is refused and logged within the plugin's log budget.
pub fn capabilities_of(module: &Module) -> BTreeSet<Capability> {
    module
        .imports()
        .filter(|i| i.module() == "env")
        .filter_map(|import| capability_of(import.name()))
        .collect()
}

/// The capability behind a host call, if any.
pub(crate) fn capability_of(call: &str) -> Option<Capability> {
    Some(match call {
        "proxy_log" => Capability::Log,
        "proxy_get_shared_data" | "proxy_set_shared_data" => Capability::Kv,
        "proxy_http_call" => Capability::Outbound,
        "proxy_define_metric"
        | "proxy_increment_metric"
        | "proxy_record_metric"
        | "proxy_get_metric" => Capability::Metrics,
        _ => return None,
    })
}

/// One filter's stream, with the instances to give it back to.
struct Open {
    held: Option<Held>,
    instances: Arc<Instances>,
}

impl Drop for Open {
    fn drop(&mut self) {
        // The request ended without its response hook (it failed, or the
        // client went away): the instance goes back, its context deleted
        // before it serves again.
        if let Some(held) = self.held.take() {
            held.release(&self.instances, false);
        }
    }
}

/// A loaded proxy-wasm filter.
pub struct Filter {
    id: u64,
    instances: Arc<Instances>,
    metrics: PluginMetricsHandles,
    abi: &'static str,
}

impl Filter {
    /// Start the filter: its first instance is made (and configured) now,
    /// so a filter that rejects its configuration never loads.
    pub async fn start(
        runtime: Arc<Runtime>,
        module: &Module,
        name: &str,
        config: Vec<u8>,
        caps: Arc<Capabilities>,
        settings: PoolSettings,
    ) -> Result<Filter, PluginFailure> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let abi = abi_of(module).map_err(PluginFailure::Instantiate)?;
        let linker = linker(&runtime).map_err(PluginFailure::Instantiate)?;
        let pre = linker
            .instantiate_pre(module)
            .map_err(|e| PluginFailure::Instantiate(format!("{e:#}")))?;
        let budget = PluginBudget::new(name, &caps.budgets);
        let metrics = caps.telemetry.plugin(name);
        let instances = Arc::new(Instances::new(
            runtime.clone(),
            pre,
            Arc::from(config),
            caps,
            budget,
            settings,
        ));
        runtime.ticker().hook_started();
        let first = instances
            .instantiate(Instant::now() + instances.settings.deadline)
            .await?;
        metrics.instantiations.inc();
        instances.keep(first);
        Ok(Filter {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            instances,
            metrics,
            abi,
        })
    }

    /// `proxy-wasm 0.2.1` (or `0.2.0`).
    pub fn abi(&self) -> &'static str {
        self.abi
    }

    /// A filter has both hooks.
    pub fn hooks(&self) -> Hooks {
        Hooks::all()
    }

    /// The plugin's budget.
    pub fn budget(&self) -> &Arc<PluginBudget> {
        &self.instances.budget
    }

    /// Idle instances.
    pub fn idle_count(&self) -> usize {
        self.instances.idle()
    }

    /// Streams holding an instance.
    pub fn busy_count(&self) -> usize {
        self.instances.busy()
    }

    /// Hook timings and failures.
    pub fn metrics(&self) -> &PluginMetricsHandles {
        &self.metrics
    }

    /// A stream on a warm (or new) instance, its request hook armed.
    async fn open(&self) -> Result<Held, PluginFailure> {
        let permit = self.instances.permit().await?;
        let deadline = Instant::now() + self.instances.settings.deadline;
        let warm = match self.instances.take_idle() {
            Some(warm) => warm,
            None => {
                let warm = Box::pin(self.instances.instantiate(deadline)).await?;
                self.metrics.instantiations.inc();
                warm
            }
        };
        let mut warm = warm;
        self.instances.runtime.ticker().hook_started();
        arm(&mut warm.store, deadline);
        let opened = bounded(deadline, Box::pin(Held::open(warm, permit))).await;
        match opened {
            Ok(held) => Ok(held),
            Err(e) => Err(PluginFailure::Trap(format!("{e:#}"))),
        }
    }

    /// Run the request callbacks.
    pub async fn on_request(
        &self,
        req: HeldRequest,
    ) -> Result<(HeldRequest, Action), (PluginFailure, Option<HeldRequest>)> {
        let mut held = match self.open().await {
            Ok(held) => held,
            Err(failure) => return Err((failure, Some(req))),
        };
        held.warm.store.data_mut().host.trace = req.trace.clone();
        held.lend(req, None);
        let deadline = held.warm.store.data().host.deadline;
        let outcome = bounded(deadline, held.run_half(Half::Request)).await;
        let flow = match settle(&held.warm.store, &self.instances.settings, outcome) {
            Ok(flow) => flow,
            Err(failure) => {
                let (req, _) = held.take();
                return Err((failure, req));
            }
        };
        match flow {
            Flow::Continue => {
                let (req, _) = held.take();
                let Some(mut req) = req else {
                    return Err((PluginFailure::Trap("the request was lost".into()), None));
                };
                let open = Open {
                    held: Some(held),
                    instances: self.instances.clone(),
                };
                Carried::put(&mut req, self.id, open);
                Ok((req, Action::Continue))
            }
            Flow::Respond(reply) => {
                let finished = bounded(deadline, held.finish()).await;
                let (req, _) = held.take();
                let failure = settle(&held.warm.store, &self.instances.settings, finished).err();
                let Some(req) = req else {
                    return Err((PluginFailure::Trap("the request was lost".into()), None));
                };
                if let Some(failure) = failure {
                    return Err((failure, Some(req)));
                }
                held.release(&self.instances, true);
                Ok((req, Action::Respond(reply_of(reply))))
            }
        }
    }

    /// Run the response callbacks and end the stream.
    pub async fn on_response(
        &self,
        req: HeldRequest,
        resp: HeldResponse,
    ) -> Result<
        (HeldRequest, HeldResponse, Action),
        (PluginFailure, Option<(HeldRequest, HeldResponse)>),
    > {
        // The stream this filter's `on-request` opened, if it did.
        let open = Carried::<Open>::take(&req, self.id);
        let held = match open.and_then(|mut open| open.held.take()) {
            Some(mut held) => {
                let deadline = Instant::now() + self.instances.settings.deadline;
                self.instances.runtime.ticker().hook_started();
                arm(&mut held.warm.store, deadline);
                held
            }
            // The request hook did not run here (another version served
            // it): a stream of its own for the response.
            None => match self.open().await {
                Ok(held) => held,
                Err(failure) => return Err((failure, Some((req, resp)))),
            },
        };
        let mut held = held;
        held.warm.store.data_mut().host.trace = req.trace.clone();
        held.lend(req, Some(resp));
        let deadline = held.warm.store.data().host.deadline;
        let outcome = bounded(deadline, async {
            let flow = held.run_half(Half::Response).await?;
            held.finish().await?;
            Ok(flow)
        })
        .await;
        let settled = settle(&held.warm.store, &self.instances.settings, outcome);
        let states = match held.take() {
            (Some(req), Some(resp)) => Some((req, resp)),
            _ => None,
        };
        let flow = match settled {
            Ok(flow) => flow,
            Err(failure) => return Err((failure, states)),
        };
        let Some((req, resp)) = states else {
            return Err((PluginFailure::Trap("the response was lost".into()), None));
        };
        held.release(&self.instances, true);
        let action = match flow {
            Flow::Continue => Action::Continue,
            Flow::Respond(reply) => Action::Respond(reply_of(reply)),
        };
        Ok((req, resp, action))
    }
}

fn reply_of(reply: state::LocalReply) -> Reply {
    Reply {
        status: reply.status,
        headers: reply.headers,
        body: reply.body,
    }
}
