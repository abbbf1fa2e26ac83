//! Host bindings for the `weir:plugin/plugin` world, generated from the WIT:
//! the current contract (`wit/`, 0.5.0) at the top level, and the previous
//! ones (`host/wit-0.4.0/` in [`v0_4`], `host/wit-0.3.0/` in [`v0_3`], `host/wit-0.2.0/` in [`v0_2`],
//! `host/wit-0.1.0/` in [`v0_1`]), so
//! plugins built for them keep loading. All map the request, response, key
//! and metric resources to the same host types, so one host value serves
//! every version; `compat/` adapts the old imports to the 0.5.0 ones.
#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "weir:plugin/plugin",
    imports: {
        "weir:plugin/types.[method]request.body": async | trappable,
        "weir:plugin/types.[method]response.body": async | trappable,
        "weir:plugin/outbound": async | trappable,
        "weir:plugin/rate": async | trappable,
        "weir:plugin/kv": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "weir:plugin/types.request": crate::exchange::HeldRequest,
        "weir:plugin/types.response": crate::exchange::HeldResponse,
        "weir:plugin/crypto.verifying-key": crate::runtime::jose::VerifyingKey,
        "weir:plugin/metrics.counter": crate::telemetry::plugin_metrics::CounterHandle,
        "weir:plugin/metrics.gauge": crate::telemetry::plugin_metrics::GaugeHandle,
        "weir:plugin/metrics.histogram": crate::telemetry::plugin_metrics::HistogramHandle,
    },
});

pub use self::weir::plugin::types::{Action, Hooks, Reply, Wait};

/// The 0.4.0 contract, kept so plugins built for it load unchanged.
pub mod v0_4 {
    wasmtime::component::bindgen!({
        path: "wit-0.4.0",
        world: "weir:plugin/plugin",
        imports: {
            "weir:plugin/types.[method]request.body": async | trappable,
            "weir:plugin/types.[method]response.body": async | trappable,
            "weir:plugin/outbound": async | trappable,
            "weir:plugin/rate": async | trappable,
            "weir:plugin/kv": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        with: {
            "weir:plugin/types.request": crate::exchange::HeldRequest,
            "weir:plugin/types.response": crate::exchange::HeldResponse,
            "weir:plugin/crypto.verifying-key": crate::runtime::jose::VerifyingKey,
            "weir:plugin/metrics.counter": crate::telemetry::plugin_metrics::CounterHandle,
            "weir:plugin/metrics.gauge": crate::telemetry::plugin_metrics::GaugeHandle,
            "weir:plugin/metrics.histogram": crate::telemetry::plugin_metrics::HistogramHandle,
        },
    });
}

/// The 0.3.0 contract, kept so plugins built for it load unchanged.
pub mod v0_3 {
    wasmtime::component::bindgen!({
        path: "wit-0.3.0",
        world: "weir:plugin/plugin",
        imports: {
            "weir:plugin/types.[method]request.body": async | trappable,
            "weir:plugin/types.[method]response.body": async | trappable,
            "weir:plugin/outbound": async | trappable,
            "weir:plugin/rate": async | trappable,
            "weir:plugin/kv": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        with: {
            "weir:plugin/types.request": crate::exchange::HeldRequest,
            "weir:plugin/types.response": crate::exchange::HeldResponse,
            "weir:plugin/crypto.verifying-key": crate::runtime::jose::VerifyingKey,
            "weir:plugin/metrics.counter": crate::telemetry::plugin_metrics::CounterHandle,
            "weir:plugin/metrics.gauge": crate::telemetry::plugin_metrics::GaugeHandle,
            "weir:plugin/metrics.histogram": crate::telemetry::plugin_metrics::HistogramHandle,
        },
    });
}

/// The 0.2.0 contract, kept so plugins built for it load unchanged.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "wit-0.2.0",
        world: "weir:plugin/plugin",
        imports: {
            "weir:plugin/types.[method]request.body": async | trappable,
            "weir:plugin/types.[method]response.body": async | trappable,
            "weir:plugin/outbound": async | trappable,
            "weir:plugin/rate": async | trappable,
            "weir:plugin/kv": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        with: {
            "weir:plugin/types.request": crate::exchange::HeldRequest,
            "weir:plugin/types.response": crate::exchange::HeldResponse,
            "weir:plugin/crypto.verifying-key": crate::runtime::jose::VerifyingKey,
            "weir:plugin/metrics.counter": crate::telemetry::plugin_metrics::CounterHandle,
            "weir:plugin/metrics.gauge": crate::telemetry::plugin_metrics::GaugeHandle,
            "weir:plugin/metrics.histogram": crate::telemetry::plugin_metrics::HistogramHandle,
        },
    });
}

/// The 0.1.0 contract, kept so plugins built for it load unchanged.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "wit-0.1.0",
        world: "weir:plugin/plugin",
        imports: {
            "weir:plugin/types.[method]request.body": async | trappable,
            "weir:plugin/types.[method]response.body": async | trappable,
            "weir:plugin/outbound": async | trappable,
            "weir:plugin/rate": async | trappable,
            "weir:plugin/kv": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        with: {
            "weir:plugin/types.request": crate::exchange::HeldRequest,
            "weir:plugin/types.response": crate::exchange::HeldResponse,
            "weir:plugin/crypto.verifying-key": crate::runtime::jose::VerifyingKey,
        },
    });
}
