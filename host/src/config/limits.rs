//! `[limits]`, `[budgets]` and `[runtime]`: how large and how long a
//! request may be, what each plugin may consume, and the instance pools.

use serde::{Deserialize, Serialize};

/// `[limits]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest total size of a request's header block; larger → 431. Plugin
    /// edits and replies are held to it too.
    pub max_header_bytes: usize,
    /// Most header fields in a request (more → 431), and in what a plugin
    /// builds or edits.
    pub max_header_count: usize,
    /// A client that sends no part of its request body for this long gets
    /// 408 (slow-POST protection).
    pub client_body_idle_timeout_ms: u64,
    /// A client has this long to send a complete request head (slowloris
    /// protection); idle keep-alive connections are closed after it too.
    pub header_read_timeout_ms: u64,
    /// Most client connections open at once; further ones wait in the
    /// listen backlog until one closes.
    pub max_connections: usize,
    /// Largest body the gateway buffers for a plugin (`body()`) or for an
    /// outbound call's response. Bodies no plugin reads stream unbounded.
    pub max_body_bytes: u64,
    /// Wall-clock limit of one hook call, including the host calls it makes.
    pub hook_deadline_ms: u64,
    /// Longest a request parked by a plugin's `wait` action waits at once
    /// (the plugin's own timeout is cut to this).
    pub wait_max_ms: u64,
    /// How many times one plugin may park one request; a further `wait`
    /// counts as `continue`.
    pub waits_per_request: u32,
    /// Linear-memory cap of one plugin instance, in MiB. Restart-only: the
    /// engine's instance slots are sized from it at start.
    pub plugin_memory_mb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_header_count: 100,
            client_body_idle_timeout_ms: 30_000,
            header_read_timeout_ms: 30_000,
            max_connections: 10_000,
            max_body_bytes: 10 * 1024 * 1024,
            hook_deadline_ms: 1_000,
            wait_max_ms: 30_000,
            waits_per_request: 4,
            plugin_memory_mb: 128,
        }
    }
}

impl Limits {
    /// The header limits requests, plugin edits and replies are held to.
    pub fn header_limits(&self) -> crate::http::headers::HeaderLimits {
        crate::http::headers::HeaderLimits {
            max_bytes: self.max_header_bytes,
            max_count: self.max_header_count,
        }
    }

    /// The memory cap in bytes.
    pub fn plugin_memory_bytes(&self) -> u64 {
        self.plugin_memory_mb * 1024 * 1024
    }
}

/// `[budgets]`: what one plugin may consume of resources every plugin
/// shares, so a misbehaving one costs its own requests and nothing else.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budgets {
    /// `outbound` calls one hook call may make (`send` and `send-all`
    /// together); further calls fail with `budget-exceeded`.
    pub outbound_calls_per_hook: u32,
    /// Calls of one `send-all` running at once; the rest wait their turn.
    pub outbound_in_flight_per_call: u32,
    /// `outbound` calls in flight for one plugin across all its instances;
    /// further calls fail at once with `budget-exceeded`.
    pub outbound_in_flight_per_plugin: u32,
    /// Requests in flight to one upstream target (for HTTP/1.1, connections
    /// in use), client and plugin requests together; further requests wait
    /// up to the upstream's `connect_timeout_ms`, then get 503.
    pub upstream_connections_per_target: u32,
    /// Live `kv` keys one plugin may hold.
    pub kv_max_keys: u64,
    /// Bytes (keys and values) one plugin may hold in `kv`.
    pub kv_max_bytes: u64,
    /// Largest single `kv` value.
    pub kv_max_value_bytes: u64,
    /// Log lines (the `log` capability, stdout and stderr together) one
    /// plugin may write per second; the excess is dropped and counted.
    pub log_lines_per_second: u32,
    /// Log bytes one plugin may write per second.
    pub log_bytes_per_second: u32,
    /// Metrics one plugin may define.
    pub metrics_per_plugin: u32,
    /// Distinct label sets per plugin metric; further ones fold into `other`.
    pub metric_series_per_metric: u32,
    /// Requests one plugin may have carrying on in the background after
    /// `respond-then-continue`; past it the action answers with the reply
    /// alone.
    pub background_per_plugin: u32,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            outbound_calls_per_hook: 64,
            outbound_in_flight_per_call: 16,
            outbound_in_flight_per_plugin: 256,
            upstream_connections_per_target: 512,
            kv_max_keys: 100_000,
            kv_max_bytes: 16 * 1024 * 1024,
            kv_max_value_bytes: 1024 * 1024,
            log_lines_per_second: 200,
            log_bytes_per_second: 64 * 1024,
            metrics_per_plugin: 64,
            metric_series_per_metric: 200,
            background_per_plugin: 16,
        }
    }
}

/// `[runtime]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// Most instances of one plugin alive at once; a hook waits (up to its
    /// deadline) for a free one beyond that.
    pub max_instances_per_plugin: u32,
    /// An instance is discarded and replaced after this many hook calls (a
    /// request makes up to two per plugin); 1 gives a fresh instance for
    /// every call.
    pub max_calls_per_instance: u64,
    /// Size of the engine's instance pool (all plugins, old and new pipelines
    /// during a reload). Restart-only: the engine is built with it.
    pub pool_instances: u32,
    /// Threads serving requests, each with its own event loop and upstream
    /// connections; 0 (the default) is one per core. Restart-only: the
    /// threads start with the process.
    pub worker_threads: usize,
}

impl RuntimeSettings {
    /// How many workers `worker_threads` means: 0 is one per core.
    pub fn worker_count(&self) -> usize {
        if self.worker_threads > 0 {
            return self.worker_threads;
        }
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            max_instances_per_plugin: 32,
            max_calls_per_instance: 10_000,
            pool_instances: 512,
            worker_threads: 0,
        }
    }
}
