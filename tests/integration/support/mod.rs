//! Helpers shared by the integration tests.

pub mod backend;
pub mod browser;
pub mod certs;
pub mod client;
pub mod dns;
pub mod gateway;
pub mod jwt;
pub mod openmetrics;
pub mod otlp;
pub mod pebble;
pub mod plugin_metrics;
pub mod process;
pub mod raw;
pub mod redis;
pub mod redis_cluster;
pub mod toolchains;

pub use backend::Backend;
pub use client::{get, request, send};
pub use gateway::{Running, Setup, wasm};
pub use serde_json::json;
