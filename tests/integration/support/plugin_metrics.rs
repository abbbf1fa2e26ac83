//! The metrics plugins define through the `metrics` capability, read from
//! an in-process gateway's registry and rendered as `/metrics` renders
//! them (OpenMetrics text, by `prometheus-client`).

use std::collections::BTreeMap;

use super::Running;

/// The plugin metrics registry of `gw`, as OpenMetrics text.
pub fn text(gw: &Running) -> String {
    struct Shared(std::sync::Arc<weir::telemetry::plugin_metrics::PluginMetrics>);
    impl std::fmt::Debug for Shared {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("plugin metrics")
        }
    }
    impl prometheus_client::collector::Collector for Shared {
        fn encode(
            &self,
            encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
        ) -> std::fmt::Result {
            prometheus_client::collector::Collector::encode(&*self.0, encoder)
        }
    }
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Shared(gw.gateway.stores().metrics.clone())));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
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
