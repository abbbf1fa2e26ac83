//! Integration tests: real backends on loopback, the real gateway (in-process
//! through its listener, or the `weir` binary), real plugins built by the
//! build script, and a real HTTP client.

mod admin_listener;
mod aggregate;
mod architecture;
mod auth;
mod cache;
mod cache_rfc;
mod capabilities;
mod cli;
mod client_ip;
mod compression;
mod containment;
mod cors;
mod dashboard;
mod deploy;
mod examples;
mod failures;
mod first_run;
mod forward_auth;
mod governance;
mod grpc;
mod hooks;
mod instances;
mod ip_filter;
mod loading;
mod metrics;
mod normalization;
mod plugin_kit;
mod plugin_metrics;
mod proxy_wasm;
mod proxying;
mod rate_limit;
mod reload;
mod reload_settings;
mod rollout;
mod routing;
mod scoping;
mod support;
mod tls;
mod traces;
mod upstreams;
mod validate;
mod wasi_http;
mod web_ui;
mod websocket;
