//! Weir: a hyper/tokio API gateway whose routing, authentication, rate
//! limiting and aggregation are WebAssembly component plugins, defined by the
//! `weir:plugin` WIT package and loaded from a directory.
//!
//! The host owns mechanism (connections, pools, timeouts, limiter state,
//! outbound calls); plugins own policy. Start from [`Gateway`]: build it
//! from a [`Config`] and call [`Gateway::handle`], or serve it with
//! [`server::serve`].

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

// Serving: what a request passes through, from the listener down.
pub mod acme;
pub mod client_ip;
pub mod compression;
pub mod config;
pub mod error;
pub mod exchange;
pub mod gateway;
pub mod governance;
pub mod http;
pub mod lifecycle;
pub mod pipeline;
pub mod plugin;
pub mod proxy_wasm;
pub mod runtime;
pub mod server;
pub mod state;
pub mod upstream;
pub mod wasi_http;
// Operating it: reloads, the admin API, logs, metrics and traces.
pub mod admin;
pub mod logging;
pub mod reload;
pub mod telemetry;
// Tooling around it: the `weir` commands, the demo, `weir init`,
// `weir new plugin` and the plugin test kit.
pub mod tooling;

pub use config::Config;
pub use error::GatewayError;
pub use gateway::Gateway;
pub use pipeline::{Pipeline, Stores};
pub use runtime::Runtime;

/// Where the build put the wasm crates of this workspace (default plugins,
/// examples, test fixtures), for tests and benchmarks.
#[doc(hidden)]
pub const BUILT_WASM_DIR: &str = env!("WEIR_WASM_DIR");
/// Where the build script put the proxy-wasm test filters
/// (`tests/proxy-wasm`, built for wasm32-wasip1).
pub const BUILT_PROXY_WASM_DIR: &str = env!("WEIR_PROXY_WASM_DIR");
