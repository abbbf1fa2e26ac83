//! Counters, gauges and histograms on the gateway's `/metrics` endpoint.
//!
//! Define metrics once, in [`Plugin::new`](crate::Plugin::new), and keep
//! them in the plugin; update them from the hooks. A metric `NAME` of the
//! plugin `60-auth` is exposed as `weir_plugin_auth_NAME` with a `plugin`
//! label (counters get `_total`).
//!
//! ```no_run
//! use weir_sdk::metrics::Counter;
//! let outcomes = Counter::define("outcomes", "Auth decisions by method and outcome",
//!                                &["method", "outcome"]).unwrap();
//! outcomes.inc(&["api_key", "allowed"]);
//! ```

use crate::bindings::weir::plugin::metrics as raw;

fn owned(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_string()).collect()
}

/// A count that only goes up.
pub struct Counter(raw::Counter);

impl Counter {
    /// Define the counter `name` (no `_total`; the gateway adds it) with
    /// these label names. Fails with the reason when the gateway refuses.
    pub fn define(name: &str, help: &str, labels: &[&str]) -> Result<Counter, String> {
        raw::Counter::define(name, help, &owned(labels)).map(Counter)
    }

    /// Add one to the series with these label values (in definition order).
    pub fn inc(&self, label_values: &[&str]) {
        self.0.add(&owned(label_values), 1);
    }

    /// Add `value` to the series with these label values.
    pub fn add(&self, label_values: &[&str], value: u64) {
        self.0.add(&owned(label_values), value);
    }
}

/// A value that goes up and down.
pub struct Gauge(raw::Gauge);

impl Gauge {
    /// Define the gauge `name` with these label names.
    pub fn define(name: &str, help: &str, labels: &[&str]) -> Result<Gauge, String> {
        raw::Gauge::define(name, help, &owned(labels)).map(Gauge)
    }

    /// Set the series with these label values.
    pub fn set(&self, label_values: &[&str], value: f64) {
        self.0.set(&owned(label_values), value);
    }

    /// Add `delta` (may be negative) to the series.
    pub fn add(&self, label_values: &[&str], delta: f64) {
        self.0.add(&owned(label_values), delta);
    }
}

/// A distribution of observations in buckets.
pub struct Histogram(raw::Histogram);

impl Histogram {
    /// Define the histogram `name` with these label names and bucket upper
    /// bounds (ascending; `+Inf` is implied). Use base units (seconds, bytes).
    pub fn define(
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<Histogram, String> {
        raw::Histogram::define(name, help, &owned(labels), buckets).map(Histogram)
    }

    /// Record one observation in the series with these label values.
    pub fn observe(&self, label_values: &[&str], value: f64) {
        self.0.observe(&owned(label_values), value);
    }
}
