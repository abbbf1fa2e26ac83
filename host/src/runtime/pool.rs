//! Warm instances of one plugin, reused across requests.
//!
//! Each instance has its own `Store`. A hook call checks an instance out
//! (waiting, up to the hook's deadline, when all `max_instances` are busy),
//! lends it the request by pushing it into the store's resource table,
//! calls the hook under the deadline, takes the request back, and returns
//! the instance. An instance whose call failed in any way is dropped, never
//! reused; one that served `max_calls` hook calls is replaced.
//!
//! The deadline covers the hook itself (and creating an instance for it when
//! none is warm); waiting for a free instance is bounded separately, by the
//! same duration, and ends in "busy" (503). Within the hook, wasm's running
//! time is bounded by the epoch callback, and every wait the hook starts —
//! Weir's own capabilities, and WASI's too (a clock subscription under
//! `poll`, which is what `sleep` is in every language) — by [`bounded`]: a
//! timer armed only once the call first waits, so the fast path still arms
//! no timer at all: a hook that makes no waiting host call costs a pop, a
//! call and a push. A call cut at its deadline is dropped where it waits
//! and its instance with it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use wasmtime::component::Resource;
use wasmtime::{Store, Trap};

use super::Runtime;
use super::bindings::{Action, Hooks};
use super::budget::PluginBudget;
use super::capabilities::Capabilities;
use super::host::{DeadlineReached, HostState, MemoryLimitExceeded};
use super::interest::Declared;
use super::ticker::on_tick;
use super::world::{Instance, PluginPre};
use crate::error::PluginFailure;
use crate::exchange::{Exchange, HookFailure};
use crate::telemetry::host_metrics::PluginMetricsHandles;

/// A hook call's outcome: the exchange back and the plugin's action, or
/// why it failed.
pub type Called = Result<(Exchange, Action), HookFailure<PluginFailure>>;

/// Settings of one pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Wall-clock limit of one hook call (and of instantiation plus `init`).
    pub deadline: Duration,
    /// Linear-memory cap per instance.
    pub max_memory: u64,
    /// Most instances alive at once.
    pub max_instances: u32,
    /// Hook calls after which an instance is replaced (1: a fresh instance
    /// for every call).
    pub max_calls: u64,
    /// Lists of idle instances, one per worker thread and one for the
    /// others (`affinity.rs`): a worker reuses the instances it warmed, so
    /// their memory stays in its core's cache.
    pub idle_lists: usize,
}

struct Warm {
    store: Store<HostState>,
    plugin: Instance,
    /// Hook calls served.
    calls: u64,
}

/// The instances of one plugin.
pub struct InstancePool {
    runtime: Arc<Runtime>,
    pre: PluginPre,
    budget: Arc<PluginBudget>,
    /// The hooks the plugin declared in its first `init`.
    hooks: Hooks,
    /// The routes its first `init` declared through `interest`.
    declared: Declared,
    config: Arc<str>,
    caps: Arc<Capabilities>,
    settings: PoolSettings,
    /// Idle instances, one LIFO list per thread slot.
    idle: IdleLists,
    permits: Semaphore,
    /// The plugin's hook, failure and instantiation metrics.
    metrics: PluginMetricsHandles,
}

impl InstancePool {
    /// A pool for `pre`, proven by creating (and `init`-ing) a first instance,
    /// which is kept warm.
    pub async fn start(
        runtime: Arc<Runtime>,
        pre: PluginPre,
        name: &str,
        config: String,
        caps: Arc<Capabilities>,
        settings: PoolSettings,
    ) -> Result<Self, PluginFailure> {
        let mut pool = InstancePool {
            runtime,
            pre,
            budget: PluginBudget::new(name, &caps.budgets),
            hooks: Hooks::all(),
            declared: Declared::default(),
            config: Arc::from(config),
            permits: Semaphore::new(settings.max_instances as usize),
            idle: IdleLists::new(settings.idle_lists),
            metrics: caps.telemetry.plugin(name),
            caps,
            settings,
        };
        let (first, hooks, declared) = pool
            .instantiate(Instant::now() + pool.settings.deadline)
            .await?;
        pool.hooks = hooks;
        pool.declared = declared;
        pool.own_list().push(first);
        Ok(pool)
    }

    /// The hooks the plugin implements.
    pub fn hooks(&self) -> Hooks {
        self.hooks
    }

    /// The routes the plugin acts on, as its `init` declared them; `None`:
    /// every route.
    pub fn routes(&self) -> Option<&[String]> {
        self.declared.routes.as_deref()
    }

    /// The plugin's budget (for counters).
    pub fn budget(&self) -> &Arc<PluginBudget> {
        &self.budget
    }

    /// Run the hook `ex` is for on a warm instance; returns the (edited)
    /// exchange and the action. A failure gives the exchange back when it
    /// still exists (so a plugin whose failure policy is `skip` can let the
    /// request go on).
    pub async fn call(&self, ex: Exchange) -> Called {
        let (_permit, mut warm) = match self.ready().await {
            Ok(ready) => ready,
            Err(error) => {
                return Err(HookFailure {
                    error,
                    kept: Some(ex),
                });
            }
        };
        warm.store.data_mut().trace = ex.req.trace.clone();
        let lost = |e| HookFailure {
            error: table_failure(e),
            kept: None,
        };
        let table = &mut warm.store.data_mut().table;
        let req_res = table.push(ex.req).map_err(lost)?;
        let resp_res = ex.resp.map(|r| table.push(r)).transpose().map_err(lost)?;
        let req_b = Resource::new_borrow(req_res.rep());
        let resp_b = resp_res.as_ref().map(|r| Resource::new_borrow(r.rep()));
        let deadline = warm.store.data().deadline;
        let outcome = bounded(deadline, warm.plugin.call(&mut warm.store, req_b, resp_b)).await;
        let table = &mut warm.store.data_mut().table;
        let req = table.delete(req_res).ok();
        let kept = match (req, resp_res.map(|r| table.delete(r).ok())) {
            (Some(req), None) => Some(Exchange::request(req)),
            (Some(req), Some(Some(resp))) => Some(Exchange::response(req, resp)),
            _ => None,
        };
        let action = match self.settle(&warm.store, outcome) {
            Ok(action) => action,
            Err(error) => return Err(HookFailure { error, kept }),
        };
        let ex = kept.ok_or_else(|| HookFailure {
            error: PluginFailure::Trap("resource table: request lost".into()),
            kept: None,
        })?;
        self.checkin(warm);
        Ok((ex, action))
    }

    /// A permit and a warm instance with its deadline armed, for one hook.
    async fn ready(&self) -> Result<(tokio::sync::SemaphorePermit<'_>, Warm), PluginFailure> {
        let permit = self.acquire().await?;
        let deadline = Instant::now() + self.settings.deadline;
        let mut warm = self.checkout(deadline).await?;
        self.runtime.ticker().hook_started();
        arm(&mut warm.store, deadline);
        Ok((permit, warm))
    }

    /// Number of warm instances waiting for work.
    pub fn idle_count(&self) -> usize {
        self.idle.all().map(|list| lock(list).len()).sum()
    }

    /// Number of hook calls running (or waiting for an instance to start).
    pub fn busy_count(&self) -> usize {
        (self.settings.max_instances as usize).saturating_sub(self.permits.available_permits())
    }

    /// Where the plugin's hooks are timed and failures counted.
    pub fn metrics(&self) -> &PluginMetricsHandles {
        &self.metrics
    }

    /// Wait for a free instance slot, at most one hook deadline (no timer
    /// when one is free, the usual case).
    async fn acquire(&self) -> Result<tokio::sync::SemaphorePermit<'_>, PluginFailure> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        // Boxed for the same reason as instantiation in `checkout`.
        match Box::pin(tokio::time::timeout(
            self.settings.deadline,
            self.permits.acquire(),
        ))
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(PluginFailure::Busy(self.settings.max_instances)),
        }
    }

    async fn checkout(&self, deadline: Instant) -> Result<Warm, PluginFailure> {
        // This thread's most recently used instance, else any idle one
        // (taken from another thread rather than instantiating).
        // (Two statements: the first list's guard must be gone before the
        // others, which include it, are locked.)
        let own = self.own_list().pop();
        let idle = own.or_else(|| self.idle.all().find_map(|list| lock(list).pop()));
        match idle {
            Some(warm) => Ok(warm),
            // Boxed: the cold path's future is large, and every hook's
            // future would otherwise carry room for it.
            None => Ok(Box::pin(self.instantiate(deadline)).await?.0),
        }
    }

    fn checkin(&self, mut warm: Warm) {
        warm.calls += 1;
        // The span belongs to the call that ended.
        warm.store.data_mut().trace = None;
        if warm.calls < self.settings.max_calls {
            self.own_list().push(warm);
        }
    }

    /// The idle list of this thread's slot.
    fn own_list(&self) -> std::sync::MutexGuard<'_, Vec<Warm>> {
        lock(self.idle.own())
    }

    /// A new instance with `init` already run, and the hooks and routes it
    /// declared.
    async fn instantiate(
        &self,
        deadline: Instant,
    ) -> Result<(Warm, Hooks, Declared), PluginFailure> {
        let state = HostState::new(
            self.budget.clone(),
            self.caps.clone(),
            self.settings.max_memory,
        );
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|s| &mut s.limiter);
        let ticker = self.runtime.ticker().clone();
        store.epoch_deadline_callback(move |ctx| Ok(on_tick(&ticker, ctx.data().deadline)));
        self.runtime.ticker().hook_started();
        arm(&mut store, deadline);
        let outcome = tokio::time::timeout_at(deadline, async {
            let plugin = self.pre.instantiate(&mut store).await?;
            store.data_mut().declaring = Some(Declared::default());
            let init = plugin.init(&mut store, &self.config).await?;
            Ok::<_, wasmtime::Error>((plugin, init))
        })
        .await
        .unwrap_or_else(|_| Err(wasmtime::Error::new(DeadlineReached)));
        let settled = self.settle(&store, outcome)?;
        let declared = store.data_mut().declaring.take().unwrap_or_default();
        self.metrics.instantiations.inc();
        match settled {
            (plugin, Ok(hooks)) => Ok((
                Warm {
                    store,
                    plugin,
                    calls: 0,
                },
                hooks,
                declared,
            )),
            (_, Err(message)) => Err(PluginFailure::Instantiate(format!(
                "init rejected the config: {message}"
            ))),
        }
    }

    /// Map a call's outcome to a failure the gateway can report.
    fn settle<T>(
        &self,
        store: &Store<HostState>,
        outcome: wasmtime::Result<T>,
    ) -> Result<T, PluginFailure> {
        outcome.map_err(|e| failure(e, store.data().limiter.exceeded, &self.settings))
    }
}

/// The failure a call's error stands for, for any kind of plugin:
/// `memory_exceeded` is what its memory limiter recorded.
pub fn failure(
    e: wasmtime::Error,
    memory_exceeded: bool,
    settings: &PoolSettings,
) -> PluginFailure {
    if memory_exceeded || e.downcast_ref::<MemoryLimitExceeded>().is_some() {
        PluginFailure::MemoryLimit(settings.max_memory)
    } else if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt))
        || e.downcast_ref::<DeadlineReached>().is_some()
    {
        PluginFailure::Deadline(settings.deadline)
    } else {
        PluginFailure::Trap(format!("{e:#}"))
    }
}

/// A slot among `permits` (one per running instance), waiting at most
/// `settings.deadline` when none is free (no timer when one is, the usual
/// case), else "busy".
pub async fn slot(
    permits: &Arc<Semaphore>,
    settings: &PoolSettings,
) -> Result<tokio::sync::OwnedSemaphorePermit, PluginFailure> {
    if let Ok(permit) = permits.clone().try_acquire_owned() {
        return Ok(permit);
    }
    match tokio::time::timeout(settings.deadline, permits.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(PluginFailure::Busy(settings.max_instances)),
    }
}

/// One idle list per thread slot (`first` is slot 0).
struct IdleLists {
    first: Mutex<Vec<Warm>>,
    more: Vec<Mutex<Vec<Warm>>>,
}

impl IdleLists {
    fn new(slots: usize) -> Self {
        IdleLists {
            first: Mutex::new(Vec::new()),
            more: (1..slots.max(1)).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// This thread's list.
    fn own(&self) -> &Mutex<Vec<Warm>> {
        match crate::lifecycle::affinity::slot(self.more.len() + 1).checked_sub(1) {
            Some(index) => self.more.get(index).unwrap_or(&self.first),
            None => &self.first,
        }
    }

    fn all(&self) -> impl Iterator<Item = &Mutex<Vec<Warm>>> {
        std::iter::once(&self.first).chain(&self.more)
    }
}

/// Lock a list; it is only pushed to and popped from, so a panic elsewhere
/// while it was locked cannot leave it inconsistent.
fn lock(list: &Mutex<Vec<Warm>>) -> std::sync::MutexGuard<'_, Vec<Warm>> {
    list.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Start a call that must end by `deadline` (its budgets start afresh)
/// and make the epoch callback run on the next tick.
fn arm(store: &mut Store<HostState>, deadline: Instant) {
    store.data_mut().begin_call(deadline);
    store.set_epoch_deadline(1);
}

/// Run a hook call, but end it at `deadline` wherever it waits: in one of
/// Weir's capabilities, or in WASI (`poll` on a clock, a stream read), which
/// the epoch callback cannot interrupt because no wasm runs meanwhile. The
/// timer is armed only when the call first waits (returns `Pending`), so a
/// hook that never waits, the common case, arms none.
///
/// A call cut here is dropped while suspended: wasmtime unwinds its fiber
/// with an error, the store survives for the host to take its resources
/// back, and the caller sees [`DeadlineReached`] and discards the instance,
/// as it does after every failure.
pub(crate) async fn bounded<T>(
    deadline: Instant,
    call: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    let mut call = std::pin::pin!(call);
    let mut timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(outcome) = call.as_mut().poll(cx) {
            return std::task::Poll::Ready(outcome);
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer
            .as_mut()
            .poll(cx)
            .map(|()| Err(wasmtime::Error::new(DeadlineReached)))
    })
    .await
}

/// A resource-table error as the plugin's failure.
fn table_failure(e: wasmtime::component::ResourceTableError) -> PluginFailure {
    PluginFailure::Trap(format!("resource table: {e}"))
}
