//! What the gateway tells operators about itself: metrics (its own, and
//! those plugins define through the `metrics` capability) and traces.

pub mod plugin_metrics;
