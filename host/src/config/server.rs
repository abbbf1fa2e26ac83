//! What the listeners take from `weir.toml`, as one value a pipeline
//! carries: the limits on request heads and connections, and the drain
//! timeout, and how each listener learns its clients' addresses.

use std::time::Duration;

/// What the listeners take from `weir.toml`: `[limits]` and
/// `drain_timeout_ms`. A pipeline carries the settings it was built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Largest request head hyper buffers (HTTP/1); larger → 431.
    pub max_header_bytes: usize,
    /// Most header fields hyper parses (HTTP/1); more → 431.
    pub max_header_count: usize,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub drain_timeout: Duration,
    /// Most client connections open at once.
    pub max_connections: usize,
    /// Time allowed for a request head to arrive.
    pub header_read_timeout: Duration,
    /// How each listener learns its clients' addresses (trusted proxies,
    /// PROXY protocol).
    pub clients: super::ListenerClients,
}

impl ServerSettings {
    /// The settings `config` gives.
    pub fn from_config(config: &super::Config) -> Self {
        let limits = &config.limits;
        ServerSettings {
            max_header_bytes: limits.max_header_bytes,
            max_header_count: limits.max_header_count,
            drain_timeout: Duration::from_millis(config.drain_timeout_ms),
            max_connections: limits.max_connections,
            header_read_timeout: Duration::from_millis(limits.header_read_timeout_ms),
            // Checked by `Config::validate`: a config that got this far has
            // valid blocks.
            clients: config.listener_clients().unwrap_or_default(),
        }
    }
}
