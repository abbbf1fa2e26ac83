//! Definitions, label-set caps and the series each handle keeps.

use super::*;

fn counter<'a>(name: &'a str, labels: &'a [String]) -> Definition<'a> {
    Definition {
        name,
        help: "help",
        labels,
        kind: Kind::Counter,
        buckets: &[],
    }
}

#[test]
fn bases_drop_the_order_and_the_canary() {
    assert_eq!(plugin_base("60-auth"), "auth");
    assert_eq!(plugin_base("60-auth.canary"), "auth");
    assert_eq!(plugin_base("rate-limit"), "rate_limit");
    assert_eq!(plugin_base("70"), "70");
}

#[test]
fn definitions_are_checked() {
    let registry = PluginMetrics::new(2, 10);
    let plugin: Arc<str> = Arc::from("60-auth");
    let labels = vec!["method".to_string()];
    assert!(registry.define(&plugin, &counter("Bad", &labels)).is_err());
    assert!(
        registry
            .define(&plugin, &counter("x_total", &labels))
            .is_err()
    );
    let plugin_label = vec!["plugin".to_string()];
    assert!(
        registry
            .define(&plugin, &counter("x", &plugin_label))
            .is_err()
    );
    assert!(registry.define(&plugin, &counter("a", &labels)).is_ok());
    // The same definition again is the same metric.
    assert!(registry.define(&plugin, &counter("a", &labels)).is_ok());
    assert!(registry.define(&plugin, &counter("a", &[])).is_err());
    assert!(registry.define(&plugin, &counter("b", &labels)).is_ok());
    let err = registry
        .define(&plugin, &counter("c", &labels))
        .unwrap_err();
    assert!(err.contains("at most 2"), "{err}");
}

#[test]
fn label_sets_past_the_cap_fold_into_other() {
    let registry = PluginMetrics::new(8, 3);
    let plugin: Arc<str> = Arc::from("auth");
    let labels = vec!["path".to_string()];
    let mut handle = registry.define(&plugin, &counter("hits", &labels)).unwrap();
    for i in 0..100 {
        handle.add_counter(&[format!("/p{i}")], 1);
    }
    // Three real sets, then `other`.
    assert_eq!(registry.series_count("weir_plugin_auth_hits"), 3);
    let mut text = String::new();
    let mut prometheus = prometheus_client::registry::Registry::default();
    prometheus.register_collector(Box::new(registry.clone()));
    prometheus_client::encoding::text::encode(&mut text, &prometheus).unwrap();
    assert!(
        text.contains(r#"weir_plugin_auth_hits_total{plugin="auth",path="other"} 97"#),
        "{text}"
    );
    assert!(
        text.contains("weir_plugin_metric_series_folded_total"),
        "{text}"
    );
    // A folded set is looked up (and counted as folded) every time.
    handle.add_counter(&["/p99".to_string()], 1);
    handle.add_counter(&["/p99".to_string()], 1);
    let text = render(&registry).unwrap();
    assert!(
        text.contains(r#"weir_plugin_metric_series_folded_total{plugin="auth",metric="weir_plugin_auth_hits"} 99"#),
        "{text}"
    );
}

#[test]
fn series_a_handle_keeps_are_the_exported_ones() {
    let registry = PluginMetrics::new(8, 16);
    let plugin: Arc<str> = Arc::from("auth");
    let labels = vec!["outcome".to_string()];
    // Two instances of the plugin, each with its own handle.
    let mut first = registry.define(&plugin, &counter("hits", &labels)).unwrap();
    let mut second = registry.define(&plugin, &counter("hits", &labels)).unwrap();
    let allowed = ["allowed".to_string()];
    for _ in 0..3 {
        first.add_counter(&allowed, 1);
    }
    second.add_counter(&allowed, 2);
    first.add_counter(&["denied".to_string()], 1);
    let text = render(&registry).unwrap();
    assert!(
        text.contains(r#"weir_plugin_auth_hits_total{plugin="auth",outcome="allowed"} 5"#),
        "{text}"
    );
    assert!(
        text.contains(r#"weir_plugin_auth_hits_total{plugin="auth",outcome="denied"} 1"#),
        "{text}"
    );
    assert_eq!(first.resolved.len(), 2);
    // A wrong number of values is ignored, kept or not.
    first.add_counter(&[], 1);
    assert_eq!(first.resolved.len(), 2);
}
