//! The label side of the gateway's metrics: the label sets of each family,
//! the histogram buckets, and the [`Interner`] every label value passes, so
//! a plugin naming a route per path folds into `other` instead of growing
//! the registry.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::histogram::Histogram;

/// Distinct route names before the rest fold into `other` (a plugin names
/// routes, so this is the guard against a route per path).
pub const MAX_ROUTES: usize = 500;
/// Distinct upstream and plugin names (and `answered_by` values) before the
/// rest fold into `other`; reloads can rename plugins, so this is larger.
pub const MAX_NAMES: usize = 2_000;
/// The label value past the cap, and for "none".
pub const OTHER: &str = "other";
/// The label value when there is nothing to name (no route, no upstream).
pub const NONE: &str = "-";

/// Request and upstream latency buckets, in seconds: 100 µs to 10 s.
pub(super) const REQUEST_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];
/// Hook latency buckets, in seconds: 5 µs to 1 s.
pub(super) const HOOK_BUCKETS: [f64; 13] = [
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1,
    1.0,
];

/// Makes histograms with fixed buckets: a nameable constructor, so the
/// families' types can be written down (a closure's cannot).
#[derive(Clone)]
pub struct Buckets(pub(super) &'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

pub(super) type Histograms<L> = Family<L, Histogram, Buckets>;

/// Label values capped at a number of distinct ones; shared `Arc<str>`s so
/// a lookup allocates nothing once a value is known.
#[derive(Debug)]
pub struct Interner {
    values: RwLock<HashSet<Arc<str>>>,
    cap: usize,
}

impl Interner {
    /// At most `cap` distinct values, then `other`.
    pub fn new(cap: usize) -> Self {
        Interner {
            values: RwLock::default(),
            cap,
        }
    }

    /// The shared value for `value`, or `other` past the cap.
    pub fn get(&self, value: &str) -> Arc<str> {
        let read = self.values.read().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = read.get(value) {
            return known.clone();
        }
        let full = read.len() >= self.cap;
        drop(read);
        let mut write = self.values.write().unwrap_or_else(|p| p.into_inner());
        if full {
            return match write.get(OTHER) {
                Some(other) => other.clone(),
                None => {
                    let other: Arc<str> = Arc::from(OTHER);
                    write.insert(other.clone());
                    other
                }
            };
        }
        match write.get(value) {
            Some(known) => known.clone(),
            None => {
                let new: Arc<str> = Arc::from(value);
                write.insert(new.clone());
                new
            }
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RequestLabels {
    pub(super) route: Arc<str>,
    pub(super) upstream: Arc<str>,
    pub(super) status_class: &'static str,
    pub(super) answered_by: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RouteLabel {
    pub(super) route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct UpstreamLabel {
    pub(super) upstream: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct UpstreamCause {
    pub(super) upstream: Arc<str>,
    pub(super) cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct HookLabels {
    pub(super) plugin: Arc<str>,
    pub(super) hook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PluginCause {
    pub(super) plugin: Arc<str>,
    pub(super) cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PluginLabel {
    pub(super) plugin: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabel {
    pub(super) result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RateLabels {
    pub(super) plugin: Arc<str>,
    pub(super) outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StoreOp {
    pub(super) backend: &'static str,
    pub(super) op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StoreLabel {
    pub(super) backend: &'static str,
}

/// The status class label of `status`.
pub(super) fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => OTHER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_past_the_cap_fold_into_other() {
        let names = Interner::new(MAX_ROUTES);
        for i in 0..MAX_ROUTES {
            assert_eq!(&*names.get(&format!("route-{i}")), format!("route-{i}"));
        }
        assert_eq!(&*names.get("route-0"), "route-0");
        assert_eq!(&*names.get("one-too-many"), OTHER);
        assert_eq!(&*names.get("another"), OTHER);
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(999), OTHER);
    }
}
