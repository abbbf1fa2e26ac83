//! Integration tests: real backends on loopback, the real gateway (in-process
//! through its listener, or the `weir` binary), real plugins built by the
//! build script, and a real HTTP client.

mod aggregate;
mod auth;
mod cache;
mod capabilities;
mod cli;
mod containment;
mod examples;
mod failures;
mod grpc;
mod hooks;
mod instances;
mod loading;
mod normalization;
mod plugin_kit;
mod proxying;
mod rate_limit;
mod reload;
mod routing;
mod support;
mod tls;
mod upstreams;
mod validate;
mod websocket;
