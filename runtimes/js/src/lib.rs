//! Weir's JavaScript plugin runtime: QuickJS inside a `weir:plugin`
//! component.
//!
//! `weir build-js plugin.js` copies this component and writes the plugin's
//! modules into it ([`bundle`]); nothing else is compiled. The JavaScript
//! API is ComponentizeJS's mapping of the contract (`export const handler =
//! {init, onRequest, onResponse}`, `import { log } from
//! 'weir:plugin/log@0.5.0'`), so plugins written for ComponentizeJS build
//! here unchanged, at a fraction of the cost per hook: QuickJS calls into
//! the host through native functions rather than JavaScript binding code
//! (docs/benchmarks.md has the figures).

pub mod api;
pub mod bundle;
pub mod convert;
pub mod globals;
pub mod live;
pub mod modules;
pub mod runtime;

/// The component's `handler` export. Only wasm builds export it: native
/// builds (the unit tests) link without the host.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Export;

impl weir_sdk::bindings::exports::weir::plugin::handler::Guest for Export {
    fn init(config: String) -> Result<weir_sdk::Hooks, String> {
        runtime::init(config)
    }

    fn on_request(req: &weir_sdk::Request) -> weir_sdk::Action {
        runtime::on_request(req)
    }

    fn on_response(req: &weir_sdk::Request, resp: &weir_sdk::Response) -> weir_sdk::Action {
        runtime::on_response(req, resp)
    }
}

#[cfg(target_arch = "wasm32")]
weir_sdk::bindings::__export_world!(Export with_types_in weir_sdk::bindings);
