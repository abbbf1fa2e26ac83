//! HTTP helpers shared by the proxy, the plugin resources and the upstream
//! client: bodies that stream until a plugin reads them, header hygiene and
//! bounded edits, and the one path-normalization rule.

pub mod body;
pub mod headers;
pub mod normalize;
pub mod timefmt;
