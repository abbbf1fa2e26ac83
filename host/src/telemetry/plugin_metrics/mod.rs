//! Metrics plugins define through the `metrics` capability.
//!
//! One registry per process, so a metric survives reloads and a canary
//! shares its family with the stable version. A plugin's metric `NAME` is
//! the family `weir_plugin_<base>_NAME`, where `<base>` is the plugin's file
//! stem without its ordering number (`60-auth` → `auth`), with a `plugin`
//! label holding the whole stem. Definitions are checked (names, labels,
//! buckets, a cap per plugin); label sets are capped per family, and sets
//! past the cap fold into `other`, counted by
//! `weir_plugin_metric_series_folded_total`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// Label pairs of one series.
pub type Labels = Vec<(String, String)>;

type HistogramMaker = Box<dyn Fn() -> Histogram + Send + Sync>;

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

enum Values {
    Counter(Family<Labels, Counter>),
    Gauge(Family<Labels, Gauge<f64, AtomicU64>>),
    Histogram(Family<Labels, Histogram, HistogramMaker>),
}

/// Most labels a plugin metric may have (besides `plugin`).
pub const MAX_LABELS: usize = 8;
/// Most histogram buckets.
pub const MAX_BUCKETS: usize = 32;
const MAX_NAME: usize = 64;
const MAX_HELP: usize = 256;
/// The label value series fold into past the cap.
pub const OTHER: &str = "other";

/// One family: its definition, the label sets seen and the values.
pub struct PluginFamily {
    name: String,
    help: String,
    kind: Kind,
    labels: Vec<String>,
    buckets: Vec<f64>,
    seen: RwLock<HashSet<Labels>>,
    values: Values,
}

impl std::fmt::Debug for PluginFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginFamily")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A metric as one plugin holds it: the family and the plugin's name.
#[derive(Debug, Clone)]
pub struct Handle {
    family: Arc<PluginFamily>,
    plugin: Arc<str>,
    registry: Arc<PluginMetrics>,
    /// Series this handle already updated, by label values. Finding a
    /// series builds its label set (a string per label) and takes two
    /// locks; a plugin updates the same few series on every request (auth
    /// counts each decision), so each handle keeps them. Series are never
    /// removed from a family, so a kept one stays the one exported.
    resolved: HashMap<Vec<String>, Series>,
}

/// One series of a family: prometheus-client's metrics share their value
/// between clones.
#[derive(Debug, Clone)]
enum Series {
    Counter(Counter),
    Gauge(Gauge<f64, AtomicU64>),
    Histogram(Histogram),
}

/// Most series one handle keeps (past it, each update looks its series up).
const RESOLVED_PER_HANDLE: usize = 32;

/// The host value behind a `counter` resource.
#[derive(Debug, Clone)]
pub struct CounterHandle(pub Handle);
/// The host value behind a `gauge` resource.
#[derive(Debug, Clone)]
pub struct GaugeHandle(pub Handle);
/// The host value behind a `histogram` resource.
#[derive(Debug, Clone)]
pub struct HistogramHandle(pub Handle);

/// Every plugin metric of the process.
pub struct PluginMetrics {
    families: RwLock<BTreeMap<String, Arc<PluginFamily>>>,
    /// Metric names each plugin (by stem) has defined.
    per_plugin: Mutex<HashMap<String, HashSet<String>>>,
    folded: Family<Labels, Counter>,
    max_series: AtomicUsize,
    max_per_plugin: AtomicUsize,
    /// Label-count mismatches already logged, so each is logged once.
    warned: Mutex<HashSet<(String, String)>>,
}

impl std::fmt::Debug for PluginMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginMetrics").finish_non_exhaustive()
    }
}

/// What a plugin asks to define.
pub struct Definition<'a> {
    /// The metric's name as the plugin gives it.
    pub name: &'a str,
    /// Help text.
    pub help: &'a str,
    /// Label names.
    pub labels: &'a [String],
    /// The kind.
    pub kind: Kind,
    /// Histogram bucket bounds (empty otherwise).
    pub buckets: &'a [f64],
}

fn valid_name(name: &str, first_may_be_underscore: bool) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || (first_may_be_underscore && c == '_'));
    first_ok
        && name.len() <= MAX_NAME
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The family-name part for a plugin stem: `60-auth` → `auth`,
/// `60-auth.canary` → `auth`, anything outside `[a-z0-9_]` → `_`.
pub fn plugin_base(stem: &str) -> String {
    let stem = stem.strip_suffix(".canary").unwrap_or(stem);
    let without_order = stem.trim_start_matches(|c: char| c.is_ascii_digit());
    let without_order = match without_order.strip_prefix(['-', '_']) {
        Some(rest) if !rest.is_empty() => rest,
        _ => stem,
    };
    let mut base: String = without_order
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    if base.is_empty() {
        base.push_str("unnamed");
    }
    base
}

impl PluginMetrics {
    /// A registry capping each plugin at `max_per_plugin` metrics and each
    /// family at `max_series` label sets.
    pub fn new(max_per_plugin: usize, max_series: usize) -> Arc<Self> {
        Arc::new(PluginMetrics {
            families: RwLock::new(BTreeMap::new()),
            per_plugin: Mutex::new(HashMap::new()),
            folded: Family::default(),
            max_series: AtomicUsize::new(max_series),
            max_per_plugin: AtomicUsize::new(max_per_plugin),
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// Change the caps (a reload with new `[budgets]`); families already
    /// past a lower cap keep their series.
    pub fn set_limits(&self, max_per_plugin: usize, max_series: usize) {
        self.max_per_plugin.store(max_per_plugin, Ordering::Relaxed);
        self.max_series.store(max_series, Ordering::Relaxed);
    }

    /// Define (or find) a metric for `plugin`.
    pub fn define(
        self: &Arc<Self>,
        plugin: &Arc<str>,
        def: &Definition<'_>,
    ) -> Result<Handle, String> {
        check(def)?;
        let family_name = format!("weir_plugin_{}_{}", plugin_base(plugin), def.name);
        {
            let mut per_plugin = lock(&self.per_plugin);
            let names = per_plugin.entry(plugin.to_string()).or_default();
            let max = self.max_per_plugin.load(Ordering::Relaxed);
            if !names.contains(def.name) && names.len() >= max {
                return Err(format!(
                    "a plugin may define at most {max} metrics (budgets.metrics_per_plugin)"
                ));
            }
            names.insert(def.name.to_string());
        }
        let mut families = self
            .families
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(existing) = families.get(&family_name) {
            if existing.kind != def.kind
                || existing.help != def.help
                || existing.labels != def.labels
                || existing.buckets != def.buckets
            {
                return Err(format!(
                    "metric `{}` is already defined with another kind, help, labels or buckets",
                    def.name
                ));
            }
            return Ok(self.handle(existing.clone(), plugin));
        }
        let values = match def.kind {
            Kind::Counter => Values::Counter(Family::default()),
            Kind::Gauge => Values::Gauge(Family::default()),
            Kind::Histogram => {
                let buckets = def.buckets.to_vec();
                let maker: HistogramMaker =
                    Box::new(move || Histogram::new(buckets.iter().copied()));
                Values::Histogram(Family::new_with_constructor(maker))
            }
        };
        let family = Arc::new(PluginFamily {
            name: family_name.clone(),
            help: def.help.to_string(),
            kind: def.kind,
            labels: def.labels.to_vec(),
            buckets: def.buckets.to_vec(),
            seen: RwLock::new(HashSet::new()),
            values,
        });
        families.insert(family_name, family.clone());
        Ok(self.handle(family, plugin))
    }

    fn handle(self: &Arc<Self>, family: Arc<PluginFamily>, plugin: &Arc<str>) -> Handle {
        Handle {
            family,
            plugin: plugin.clone(),
            registry: self.clone(),
            resolved: HashMap::new(),
        }
    }

    /// The full label set for `values`, folded to `other` past the cap, or
    /// `None` (logged once) when the number of values is wrong. The flag
    /// says whether it was folded.
    fn series(&self, handle: &Handle, values: &[String]) -> Option<(Labels, bool)> {
        let family = &handle.family;
        if values.len() != family.labels.len() {
            let key = (handle.plugin.to_string(), family.name.clone());
            if lock(&self.warned).insert(key) {
                tracing::warn!(
                    plugin = &*handle.plugin,
                    metric = family.name,
                    "metric updated with {} label values, defined with {}; updates ignored",
                    values.len(),
                    family.labels.len()
                );
            }
            return None;
        }
        let labels = label_set(
            &handle.plugin,
            &family.labels,
            values.iter().map(String::as_str),
        );
        let known = family
            .seen
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&labels);
        if known {
            return Some((labels, false));
        }
        let mut seen = family
            .seen
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.contains(&labels) || seen.len() < self.max_series.load(Ordering::Relaxed) {
            seen.insert(labels.clone());
            return Some((labels, false));
        }
        drop(seen);
        self.folded
            .get_or_create(&vec![
                ("plugin".to_string(), handle.plugin.to_string()),
                ("metric".to_string(), family.name.clone()),
            ])
            .inc();
        let other = label_set(
            &handle.plugin,
            &family.labels,
            family.labels.iter().map(|_| OTHER),
        );
        Some((other, true))
    }

    /// Label sets of a family (for tests and the admin API).
    pub fn series_count(&self, family: &str) -> usize {
        self.families
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(family)
            .map_or(0, |f| {
                f.seen
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .len()
            })
    }
}

fn label_set<'a>(plugin: &str, names: &[String], values: impl Iterator<Item = &'a str>) -> Labels {
    let mut labels = Vec::with_capacity(names.len() + 1);
    labels.push(("plugin".to_string(), plugin.to_string()));
    labels.extend(names.iter().cloned().zip(values.map(str::to_string)));
    labels
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Check a definition; the message says what is wrong.
fn check(def: &Definition<'_>) -> Result<(), String> {
    if !valid_name(def.name, false) {
        return Err(format!(
            "metric name `{}` must be lower-case letters, digits and `_`, start with a letter, \
             and be at most {MAX_NAME} characters",
            def.name
        ));
    }
    if def.kind == Kind::Counter && def.name.ends_with("_total") {
        return Err(format!(
            "counter `{}` must not end in `_total`; the gateway adds it",
            def.name
        ));
    }
    if def.help.len() > MAX_HELP || def.help.chars().any(char::is_control) {
        return Err(format!(
            "help of `{}` must be at most {MAX_HELP} bytes without control characters",
            def.name
        ));
    }
    if def.labels.len() > MAX_LABELS {
        return Err(format!(
            "metric `{}` has {} labels; at most {MAX_LABELS}",
            def.name,
            def.labels.len()
        ));
    }
    let mut names = HashSet::new();
    for label in def.labels {
        if !valid_name(label, true) || label.starts_with("__") || label == "plugin" {
            return Err(format!(
                "label `{label}` of `{}` is not a valid label name (or is `plugin`, which the gateway sets)",
                def.name
            ));
        }
        if !names.insert(label) {
            return Err(format!("label `{label}` of `{}` is repeated", def.name));
        }
    }
    if def.kind == Kind::Histogram {
        let ascending = def.buckets.windows(2).all(|w| matches!(w, [a, b] if a < b));
        if def.buckets.is_empty()
            || def.buckets.len() > MAX_BUCKETS
            || !ascending
            || def.buckets.iter().any(|b| !b.is_finite())
        {
            return Err(format!(
                "histogram `{}` needs 1 to {MAX_BUCKETS} finite, ascending bucket bounds",
                def.name
            ));
        }
    }
    Ok(())
}

impl Handle {
    /// The series for `values`: the kept one, or looked up (and kept,
    /// unless it was folded into `other`: each folded update is counted).
    fn resolve(&mut self, values: &[String]) -> Option<Series> {
        if let Some(series) = self.resolved.get(values) {
            return Some(series.clone());
        }
        let (labels, folded) = self.registry.series(self, values)?;
        let series = match &self.family.values {
            Values::Counter(family) => Series::Counter(family.get_or_create(&labels).clone()),
            Values::Gauge(family) => Series::Gauge(family.get_or_create(&labels).clone()),
            Values::Histogram(family) => Series::Histogram(family.get_or_create(&labels).clone()),
        };
        if !folded && self.resolved.len() < RESOLVED_PER_HANDLE {
            self.resolved.insert(values.to_vec(), series.clone());
        }
        Some(series)
    }

    /// Add to a counter.
    pub fn add_counter(&mut self, values: &[String], value: u64) {
        if let Some(Series::Counter(counter)) = self.resolve(values) {
            counter.inc_by(value);
        }
    }

    /// Set a gauge.
    pub fn set_gauge(&mut self, values: &[String], value: f64) {
        if let Some(Series::Gauge(gauge)) = self.resolve(values) {
            gauge.set(value);
        }
    }

    /// Add to a gauge.
    pub fn add_gauge(&mut self, values: &[String], delta: f64) {
        if let Some(Series::Gauge(gauge)) = self.resolve(values) {
            gauge.inc_by(delta);
        }
    }

    /// The value of a counter or gauge series (`None` for a histogram).
    pub fn value(&mut self, values: &[String]) -> Option<f64> {
        match self.resolve(values)? {
            Series::Counter(counter) => Some(counter.get() as f64),
            Series::Gauge(gauge) => Some(gauge.get()),
            Series::Histogram(_) => None,
        }
    }

    /// Record an observation.
    pub fn observe(&mut self, values: &[String], value: f64) {
        if let Some(Series::Histogram(histogram)) = self.resolve(values) {
            histogram.observe(value);
        }
    }
}

impl Collector for PluginMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let families = self
            .families
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for family in families.values() {
            match &family.values {
                Values::Counter(values) => {
                    let metric = encoder.encode_descriptor(
                        &family.name,
                        &family.help,
                        None,
                        values.metric_type(),
                    )?;
                    values.encode(metric)?;
                }
                Values::Gauge(values) => {
                    let metric = encoder.encode_descriptor(
                        &family.name,
                        &family.help,
                        None,
                        values.metric_type(),
                    )?;
                    values.encode(metric)?;
                }
                Values::Histogram(values) => {
                    let metric = encoder.encode_descriptor(
                        &family.name,
                        &family.help,
                        None,
                        values.metric_type(),
                    )?;
                    values.encode(metric)?;
                }
            }
        }
        let metric = encoder.encode_descriptor(
            "weir_plugin_metric_series_folded",
            "Plugin metric updates counted under `other` because the metric had reached its label-set cap",
            None,
            self.folded.metric_type(),
        )?;
        self.folded.encode(metric)?;
        Ok(())
    }
}

/// The registry as a collector a `Registry` can own (a `Registry` takes
/// its collectors boxed, and the registry itself is shared).
#[derive(Debug)]
pub struct Shared(pub Arc<PluginMetrics>);

impl Collector for Shared {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        Collector::encode(&*self.0, encoder)
    }
}

/// Every plugin metric as OpenMetrics text.
pub fn render(metrics: &Arc<PluginMetrics>) -> Result<String, std::fmt::Error> {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Shared(metrics.clone())));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

#[cfg(test)]
mod tests;
