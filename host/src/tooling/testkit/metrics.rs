//! What a plugin under test emitted through the `metrics` capability, by
//! the names the plugin gave: `outcomes` for the family
//! `weir_plugin_auth_outcomes_total`, `latency_count` for a histogram's
//! count, without the `plugin` label.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::telemetry::plugin_metrics::{PluginMetrics, plugin_base};

/// One sample of a plugin metric.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetricSample {
    /// The name as the plugin defined it (counters without `_total`;
    /// histograms as `NAME_count`, `NAME_sum`, `NAME_bucket`).
    pub name: String,
    /// Label values by name (the `plugin` label left out).
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

impl MetricSample {
    /// `name{a=x,b=y}`: the key `weir test-plugin` prints samples under.
    pub fn key(&self) -> String {
        if self.labels.is_empty() {
            return self.name.clone();
        }
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

/// Every sample of plugin `stem`'s metrics.
pub fn samples(metrics: &Arc<PluginMetrics>, stem: &str) -> Vec<MetricSample> {
    let Ok(text) = crate::telemetry::plugin_metrics::render(metrics) else {
        return Vec::new();
    };
    let prefix = format!("weir_plugin_{}_", plugin_base(stem));
    let counters: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .map(str::to_string)
        .collect();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_line)
        .filter_map(|(name, mut labels, value)| {
            let own = name.strip_prefix(&prefix)?;
            let family_is_counter = counters.iter().any(|c| name == format!("{c}_total"));
            let own = match family_is_counter {
                true => own.strip_suffix("_total").unwrap_or(own),
                false => own,
            };
            if labels.remove("plugin").as_deref() != Some(stem) {
                return None;
            }
            Some(MetricSample {
                name: own.to_string(),
                labels,
                value,
            })
        })
        .collect()
}

/// `name{k="v",...} value` → its parts; `None` for anything else.
fn parse_line(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, labels)) = head.split_once('{') else {
        return Some((head.to_string(), BTreeMap::new(), value));
    };
    let labels = labels.strip_suffix('}')?;
    Some((name.to_string(), parse_labels(labels)?, value))
}

/// `k="v",k2="v\"2"` → the map, undoing the exposition's escapes.
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.to_string(), value);
        rest = after.get(end + 1..)?.trim_start_matches(',');
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_escaped_labels_parse() {
        let (name, labels, value) =
            parse_line(r#"weir_plugin_auth_outcomes_total{plugin="60-auth",method="a\"b,c"} 3"#)
                .unwrap();
        assert_eq!(name, "weir_plugin_auth_outcomes_total");
        assert_eq!(labels.get("method").unwrap(), "a\"b,c");
        assert_eq!(labels.get("plugin").unwrap(), "60-auth");
        assert_eq!(value, 3.0);
        assert_eq!(parse_line("up 1").unwrap().2, 1.0);
    }
}
