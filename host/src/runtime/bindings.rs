//! Host bindings for the `weir:plugin/plugin` world, generated from `wit/`.
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
        "weir:plugin/types.request": crate::exchange::RequestState,
        "weir:plugin/types.response": crate::exchange::ResponseState,
        "weir:plugin/crypto.verifying-key": crate::jose::VerifyingKey,
    },
});

pub use self::weir::plugin::types::{Action, Reply};
