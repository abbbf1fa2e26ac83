//! What the gateway tells operators about itself: metrics (its own, and
//! those plugins define through the `metrics` capability) and traces.

pub mod counted;
pub mod host_metrics;
pub mod labels;
pub mod plugin_metrics;
pub mod traces;
