//! The gateway's own metrics: requests, upstreams, plugin hooks, reloads,
//! rate-limit decisions and the state store.
//!
//! One [`HostMetrics`] per gateway, shared by every pipeline (like the
//! stores), so counters survive reloads. Label values come only from
//! bounded sets: route names (from the router's context), upstream and
//! plugin names, status classes and fixed causes. Because a plugin chooses
//! the route name, every label value passes an interner (`labels.rs`) that caps the
//! distinct values and folds the rest into `other`: a raw path or a client
//! address can never become a series.
//!
//! Hot-path handles (a plugin's hook histograms, an upstream's duration
//! histogram) are resolved once, when the pipeline is built, so recording
//! costs an atomic add, not a lookup.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::labels::{
    Buckets, HOOK_BUCKETS, Histograms, HookLabels, Interner, PluginCause, PluginLabel,
    REQUEST_BUCKETS, RateLabels, RequestLabels, ResultLabel, RouteLabel, StoreLabel, StoreOp,
    UpstreamCause, UpstreamLabel, status_class,
};
pub use super::labels::{MAX_NAMES, MAX_ROUTES, NONE, OTHER};

/// Every metric the gateway keeps about itself.
pub struct HostMetrics {
    /// Off (`[metrics] enabled = false`): nothing is recorded.
    enabled: bool,
    routes: Interner,
    names: Interner,
    requests: Family<RequestLabels, Counter>,
    request_duration: Histograms<RouteLabel>,
    request_bytes: Family<RouteLabel, Counter>,
    response_bytes: Family<RouteLabel, Counter>,
    upstream_duration: Histograms<UpstreamLabel>,
    upstream_failures: Family<UpstreamCause, Counter>,
    upstream_retries: Family<UpstreamLabel, Counter>,
    upstream_ejections: Family<UpstreamLabel, Counter>,
    hook_duration: Histograms<HookLabels>,
    plugin_failures: Family<PluginCause, Counter>,
    instantiations: Family<PluginLabel, Counter>,
    reloads: Family<ResultLabel, Counter>,
    last_reload: Gauge<f64, AtomicU64>,
    rate_decisions: Family<RateLabels, Counter>,
    store_duration: Histograms<StoreOp>,
    store_errors: Family<StoreLabel, Counter>,
}

impl std::fmt::Debug for HostMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostMetrics").finish_non_exhaustive()
    }
}

impl Default for HostMetrics {
    fn default() -> Self {
        fn requests<L: Clone + std::hash::Hash + Eq>() -> Histograms<L> {
            Family::new_with_constructor(Buckets(&REQUEST_BUCKETS))
        }
        HostMetrics {
            enabled: true,
            routes: Interner::new(MAX_ROUTES),
            names: Interner::new(MAX_NAMES),
            requests: Family::default(),
            request_duration: requests(),
            request_bytes: Family::default(),
            response_bytes: Family::default(),
            upstream_duration: requests(),
            upstream_failures: Family::default(),
            upstream_retries: Family::default(),
            upstream_ejections: Family::default(),
            hook_duration: Family::new_with_constructor(Buckets(&HOOK_BUCKETS)),
            plugin_failures: Family::default(),
            instantiations: Family::default(),
            reloads: Family::default(),
            last_reload: Gauge::default(),
            rate_decisions: Family::default(),
            store_duration: requests(),
            store_errors: Family::default(),
        }
    }
}

/// Who answered a request, as the `answered_by` label has it.
#[derive(Debug, Clone, Copy)]
pub enum AnsweredBy<'a> {
    /// The upstream's response (possibly edited by plugins).
    Upstream,
    /// A plugin's reply or failure.
    Plugin(&'a str),
    /// The gateway's own error answer (no route, upstream down...).
    Gateway,
}

/// One finished request, as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    /// The route the router named, if any.
    pub route: Option<&'a str>,
    /// The upstream chosen, if any.
    pub upstream: Option<&'a str>,
    /// The status sent.
    pub status: u16,
    /// Who answered.
    pub answered_by: AnsweredBy<'a>,
    /// From arrival to the response head.
    pub duration: Duration,
}

impl HostMetrics {
    /// A new set, shared by the gateway's pipelines.
    pub fn new() -> Arc<Self> {
        Arc::new(HostMetrics::default())
    }

    /// A set that records only if `enabled`.
    pub fn with_enabled(enabled: bool) -> Arc<Self> {
        Arc::new(HostMetrics {
            enabled,
            ..HostMetrics::default()
        })
    }

    /// Whether anything is recorded.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn name(&self, value: Option<&str>) -> Arc<str> {
        self.names.get(value.unwrap_or(NONE))
    }

    fn route(&self, value: Option<&str>) -> Arc<str> {
        self.routes.get(value.unwrap_or(NONE))
    }

    /// Count a finished request; returns the counters of its route's
    /// request and response body bytes.
    ///
    /// A request's handles are looked up by label values, which costs
    /// interner and family lookups; the last few distinct label sets are
    /// kept per thread (each worker serves its own requests), so the usual
    /// request finds its handles with a few string comparisons instead.
    pub fn request(&self, record: RequestRecord<'_>) -> Option<(Counter, Counter)> {
        if !self.enabled {
            return None;
        }
        let class = status_class(record.status);
        let owner = self as *const HostMetrics as usize;
        let cached = RESOLVED.with(|cache| {
            let cache = cache.borrow();
            cache
                .iter()
                .find(|r| r.matches(owner, &record, class))
                .map(|r| r.handles.clone())
        });
        let handles = match cached {
            Some(handles) => handles,
            None => {
                let handles = self.resolve(&record, class);
                RESOLVED.with(|cache| {
                    let mut cache = cache.borrow_mut();
                    if cache.len() >= RESOLVED_PER_THREAD {
                        cache.remove(0);
                    }
                    cache.push(Resolved::new(owner, &record, class, handles.clone()));
                });
                handles
            }
        };
        handles.requests.inc();
        handles.duration.observe(record.duration.as_secs_f64());
        Some((handles.request_bytes, handles.response_bytes))
    }

    fn resolve(&self, record: &RequestRecord<'_>, class: &'static str) -> Handles {
        let route = self.route(record.route);
        let answered_by = match record.answered_by {
            AnsweredBy::Upstream => self.names.get("upstream"),
            AnsweredBy::Plugin(name) => self.names.get(name),
            AnsweredBy::Gateway => self.names.get("gateway"),
        };
        let requests = self
            .requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                upstream: self.name(record.upstream),
                status_class: class,
                answered_by,
            })
            .clone();
        let label = RouteLabel { route };
        Handles {
            requests,
            duration: self.request_duration.get_or_create(&label).clone(),
            request_bytes: self.request_bytes.get_or_create(&label).clone(),
            response_bytes: self.response_bytes.get_or_create(&label).clone(),
        }
    }

    /// The handles one upstream records with.
    pub fn upstream(self: &Arc<Self>, name: &str) -> UpstreamMetrics {
        let label = UpstreamLabel {
            upstream: self.names.get(name),
        };
        UpstreamMetrics {
            duration: self.upstream_duration.get_or_create(&label).clone(),
            retries: self.upstream_retries.get_or_create(&label).clone(),
            ejections: self.upstream_ejections.get_or_create(&label).clone(),
            name: label.upstream,
            all: self.clone(),
        }
    }

    /// The handles one plugin records with.
    pub fn plugin(self: &Arc<Self>, name: &str) -> PluginMetricsHandles {
        let plugin = self.names.get(name);
        let hook = |hook| {
            self.hook_duration
                .get_or_create(&HookLabels {
                    plugin: plugin.clone(),
                    hook,
                })
                .clone()
        };
        PluginMetricsHandles {
            enabled: self.enabled,
            on_request: hook("on_request"),
            on_response: hook("on_response"),
            instantiations: self
                .instantiations
                .get_or_create(&PluginLabel {
                    plugin: plugin.clone(),
                })
                .clone(),
            name: plugin,
            all: self.clone(),
        }
    }

    /// Count a reload attempt.
    pub fn reloaded(&self, ok: bool) {
        if !self.enabled {
            return;
        }
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ResultLabel { result }).inc();
        if ok {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            self.last_reload.set(now.as_secs_f64());
        }
    }

    /// Count a `rate` decision of `plugin`.
    pub fn rate_decision(&self, plugin: &str, allowed: bool) {
        if !self.enabled {
            return;
        }
        let outcome = if allowed { "allowed" } else { "refused" };
        self.rate_decisions
            .get_or_create(&RateLabels {
                plugin: self.names.get(plugin),
                outcome,
            })
            .inc();
    }

    /// Record one state-store operation.
    pub fn store_op(&self, backend: &'static str, op: &'static str, took: Duration, ok: bool) {
        if !self.enabled {
            return;
        }
        self.store_duration
            .get_or_create(&StoreOp { backend, op })
            .observe(took.as_secs_f64());
        if !ok {
            self.store_errors
                .get_or_create(&StoreLabel { backend })
                .inc();
        }
    }

    /// Add every family to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry;
        r.register(
            "weir_requests",
            "Requests answered, by route, upstream, status class and who answered",
            self.requests.clone(),
        );
        r.register_with_unit(
            "weir_request_duration",
            "From a request's arrival to its response head",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        r.register_with_unit(
            "weir_request_body",
            "Request body bytes received from clients",
            Unit::Bytes,
            self.request_bytes.clone(),
        );
        r.register_with_unit(
            "weir_response_body",
            "Response body bytes sent to clients",
            Unit::Bytes,
            self.response_bytes.clone(),
        );
        r.register_with_unit(
            "weir_upstream_request_duration",
            "From sending a request to an upstream to its response head",
            Unit::Seconds,
            self.upstream_duration.clone(),
        );
        r.register(
            "weir_upstream_failures",
            "Upstream requests that failed, by cause",
            self.upstream_failures.clone(),
        );
        r.register(
            "weir_upstream_retries",
            "Upstream requests sent again after a failure",
            self.upstream_retries.clone(),
        );
        r.register(
            "weir_upstream_ejections",
            "Targets taken out of balancing after consecutive connection failures",
            self.upstream_ejections.clone(),
        );
        r.register_with_unit(
            "weir_plugin_hook_duration",
            "One hook call, including waiting for an instance",
            Unit::Seconds,
            self.hook_duration.clone(),
        );
        r.register(
            "weir_plugin_failures",
            "Hook calls that failed, by cause",
            self.plugin_failures.clone(),
        );
        r.register(
            "weir_plugin_instantiations",
            "Plugin instances created (and initialised)",
            self.instantiations.clone(),
        );
        r.register(
            "weir_reloads",
            "Pipeline reloads by result",
            self.reloads.clone(),
        );
        r.register_with_unit(
            "weir_last_reload_timestamp",
            "When the last successful reload was swapped in (Unix time)",
            Unit::Seconds,
            self.last_reload.clone(),
        );
        r.register(
            "weir_rate_limit_decisions",
            "Decisions of the rate capability, by plugin and outcome",
            self.rate_decisions.clone(),
        );
        r.register_with_unit(
            "weir_state_store_duration",
            "State store (Redis) operations",
            Unit::Seconds,
            self.store_duration.clone(),
        );
        r.register(
            "weir_state_store_errors",
            "State store (Redis) operations that failed",
            self.store_errors.clone(),
        );
    }
}

/// The handles of one label set of a request.
#[derive(Clone)]
struct Handles {
    requests: Counter,
    duration: Histogram,
    request_bytes: Counter,
    response_bytes: Counter,
}

/// Label sets resolved recently on this thread, most recent last.
struct Resolved {
    /// The [`HostMetrics`] they belong to (tests run several gateways in
    /// one process).
    owner: usize,
    route: Option<String>,
    upstream: Option<String>,
    /// `None` for the upstream, `Some("")` for the gateway, else the plugin.
    answered_by: Option<String>,
    class: &'static str,
    handles: Handles,
}

/// How many label sets a thread keeps resolved.
const RESOLVED_PER_THREAD: usize = 32;

thread_local! {
    static RESOLVED: std::cell::RefCell<Vec<Resolved>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn answered_key(answered_by: AnsweredBy<'_>) -> Option<&str> {
    match answered_by {
        AnsweredBy::Upstream => None,
        AnsweredBy::Gateway => Some(""),
        AnsweredBy::Plugin(name) => Some(name),
    }
}

impl Resolved {
    fn new(
        owner: usize,
        record: &RequestRecord<'_>,
        class: &'static str,
        handles: Handles,
    ) -> Self {
        Resolved {
            owner,
            route: record.route.map(str::to_string),
            upstream: record.upstream.map(str::to_string),
            answered_by: answered_key(record.answered_by).map(str::to_string),
            class,
            handles,
        }
    }

    fn matches(&self, owner: usize, record: &RequestRecord<'_>, class: &'static str) -> bool {
        self.owner == owner
            && self.class == class
            && self.route.as_deref() == record.route
            && self.upstream.as_deref() == record.upstream
            && self.answered_by.as_deref() == answered_key(record.answered_by)
    }
}

/// What one upstream records with.
#[derive(Clone)]
pub struct UpstreamMetrics {
    /// Time to the response head.
    pub duration: Histogram,
    /// Attempts after the first.
    pub retries: Counter,
    /// Targets ejected.
    pub ejections: Counter,
    name: Arc<str>,
    all: Arc<HostMetrics>,
}

impl std::fmt::Debug for UpstreamMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamMetrics")
            .field("upstream", &self.name)
            .finish_non_exhaustive()
    }
}

impl UpstreamMetrics {
    /// Count a failed request with its cause.
    pub fn failed(&self, cause: &'static str) {
        self.all
            .upstream_failures
            .get_or_create(&UpstreamCause {
                upstream: self.name.clone(),
                cause,
            })
            .inc();
    }
}

/// What one plugin records with.
#[derive(Clone)]
pub struct PluginMetricsHandles {
    /// Whether to time hooks at all.
    pub enabled: bool,
    /// `on-request` calls.
    pub on_request: Histogram,
    /// `on-response` calls.
    pub on_response: Histogram,
    /// Instances created.
    pub instantiations: Counter,
    name: Arc<str>,
    all: Arc<HostMetrics>,
}

impl std::fmt::Debug for PluginMetricsHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginMetricsHandles")
            .field("plugin", &self.name)
            .finish_non_exhaustive()
    }
}

impl PluginMetricsHandles {
    /// Count a failed call with its cause.
    pub fn failed(&self, cause: &'static str) {
        if !self.enabled {
            return;
        }
        self.all
            .plugin_failures
            .get_or_create(&PluginCause {
                plugin: self.name.clone(),
                cause,
            })
            .inc();
    }
}
