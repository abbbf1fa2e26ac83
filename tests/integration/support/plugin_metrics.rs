//! The metrics plugins define through the `metrics` capability, read from
//! an in-process gateway's registry and rendered as `/metrics` renders
//! them (OpenMetrics text, by `prometheus-client`).

use std::collections::BTreeMap;

use super::Running;

/// The plugin metrics registry of `gw`, as OpenMetrics text.
pub fn text(gw: &Running) -> String {
    weir::telemetry::plugin_metrics::render(&gw.gateway.stores().metrics).unwrap()
}

/// Every sample named `sample` (e.g. `weir_plugin_auth_outcomes_total`) in
/// `text`: its label set as written (`{plugin="60-auth",method="jwt"}`, or
/// empty without labels) → its value.
pub fn samples_in(text: &str, sample: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(sample)?;
            let (labels, value) = if rest.starts_with('{') {
                let end = rest.rfind('}')?;
                (&rest[..=end], rest[end + 1..].trim())
            } else {
                ("", rest.strip_prefix(' ')?.trim())
            };
            let value = value
                .parse()
                .unwrap_or_else(|e| panic!("`{line}`: bad value ({e})"));
            Some((labels.to_string(), value))
        })
        .collect()
}

/// [`samples_in`] the plugin metrics of `gw`.
pub fn samples(gw: &Running, sample: &str) -> BTreeMap<String, f64> {
    samples_in(&text(gw), sample)
}

/// An expected [`samples`] map, from label sets and values.
pub fn expected(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}
