//! Write [Weir](https://github.com/weir-gateway/weir) gateway plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`], exported with
//! [`export_plugin!`] from a `cdylib` crate built for `wasm32-wasip2`. The host
//! calls [`Plugin::new`] once per instance with the plugin's JSON config
//! (parsed into [`Plugin::Config`] with serde), then the hooks for each
//! request. Every hook has a default that lets the request go on.
//!
//! A plugin that adds a response header:
//!
//! ```
//! use weir_sdk::{export_plugin, Action, Hooks, Plugin, Request, Response};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config { name: String, value: String }
//!
//! struct AddHeader(Config);
//!
//! impl Plugin for AddHeader {
//!     type Config = Config;
//!     fn new(config: Config) -> Result<Self, String> {
//!         Ok(AddHeader(config))
//!     }
//!     // Only `on_response` is implemented: the gateway skips `on-request`.
//!     const HOOKS: Hooks = Hooks::ON_RESPONSE;
//!
//!     fn on_response(&mut self, _req: &Request, resp: &Response) -> Action {
//!         let _ = resp.set_header(&self.0.name, &self.0.value);
//!         Action::Continue
//!     }
//! }
//!
//! export_plugin!(AddHeader);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` and drop the
//! `.wasm` (plus a `.json` config with the same stem) into the gateway's
//! plugin directory.
//!
//! # Instances and state
//!
//! The host keeps a pool of warm instances of each plugin and hands each hook
//! call to any free one, so `&mut self` is per-instance state (a cache, say),
//! not per-request state: pass facts between hooks and plugins with
//! [`Request::set_context`] / [`Request::get_context`]. A panic aborts the
//! instance; the host answers that request with a 500 and discards it.
//!
//! # Capabilities
//!
//! [`log`], [`outbound`] (HTTP calls to upstreams named in `weir.toml`),
//! [`rate`] (a host-side limiter), [`kv`] (a host-side key-value store),
//! [`crypto`] (native signature verification) and [`metrics`] (counters,
//! gauges and histograms on the gateway's `/metrics`).
//! Plugins have no filesystem, environment or sockets, and the gateway may
//! grant a plugin fewer capabilities than these.
//!
//! # Answering early and waiting
//!
//! Besides [`Action::Continue`] and [`Action::Respond`], `on_request` may
//! return two more actions (from `on_response` they are a plugin failure):
//!
//! - [`Action::RespondThenContinue`]`(reply)` answers the client with the
//!   reply at once, and carries on with the request in the background as if
//!   `Continue` had been returned: the later plugins' `on_request`, the
//!   upstream, then the `on_response` hooks of this plugin and the later
//!   ones. That background response reaches no client; the plugins before
//!   this one see only the reply. It is for refreshing what a plugin keeps
//!   (a cache's stale-while-revalidate). The gateway answers with the reply
//!   alone (as `Respond`) when the request has a body, or when the plugin
//!   already has `budgets.background_per_plugin` requests in the background.
//! - [`Action::Wait`]`(`[`Wait`]` { key, timeout_ms })` parks the request,
//!   without holding a plugin instance, until the plugin's [`kv`] key `key`
//!   holds no value (deleted or expired; at once if it holds none already),
//!   or `timeout_ms` passes, whichever is first; then this plugin's
//!   `on_request` runs again, on the same request, with the context and
//!   edits it made. It is for request collapsing: one request takes a lock
//!   with [`kv::set_if_absent`] and deletes it when done, the others wait for
//!   the lock to go. The wait is
//!   capped at `limits.wait_max_ms`, and a request waits at most
//!   `limits.waits_per_request` times per plugin; a further `Wait` counts as
//!   `Continue`.
//!
//! This SDK targets the `weir:plugin@0.5.0` contract.

pub mod bindings;
pub mod crypto;
mod http;
pub mod kv;
pub mod log;
pub mod metrics;
pub mod outbound;
pub mod rate;

pub use bindings::weir::plugin::types::{
    Action, Address, BodyError, ClientCertificate, EditError, Hooks, Reply, Request, Response,
    TlsInfo, Wait,
};
pub use http::JsonBodyError;

/// A Weir plugin. Export it with [`export_plugin!`].
pub trait Plugin: Sized + 'static {
    /// The plugin's configuration, parsed from its JSON config file (`{}` when
    /// there is none). Use [`NoConfig`] for a plugin without settings, and
    /// `#[serde(deny_unknown_fields)]` so typos are reported.
    type Config: serde::de::DeserializeOwned;

    /// Build an instance from its config. An `Err` rejects the plugin at load
    /// time and the message is shown to the operator.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// The hooks this plugin implements; the gateway calls only these, so a
    /// hook left out costs nothing per request. Both by default: declare
    /// only the ones you override (e.g. `Hooks::ON_REQUEST`). A hook that is
    /// implemented but not declared is never called.
    const HOOKS: Hooks = Hooks::ON_REQUEST.union(Hooks::ON_RESPONSE);

    /// The routes this plugin acts on: the `route` names the router sets.
    /// The gateway then calls neither hook for any other request (nor for
    /// one no plugin has routed), so a plugin whose config names a few
    /// routes costs nothing on the rest. `None` (the default): every
    /// request. Asked once, right after [`Plugin::new`]; return `None` when
    /// the config has a rule for every route (a `default`), and order the
    /// plugin after the router. The operator's `[plugins.NAME] routes`
    /// still applies: the plugin runs where both allow.
    fn routes(&self) -> Option<Vec<String>> {
        None
    }

    /// Runs for every request, in plugin file-name order.
    fn on_request(&mut self, req: &Request) -> Action {
        let _ = req;
        Action::Continue
    }

    /// Runs for every response, in reverse order, if this plugin's
    /// `on_request` returned [`Action::Continue`] (or
    /// [`Action::RespondThenContinue`]: then for the background response,
    /// which reaches no client). Return `Continue` or `Respond` here:
    /// `RespondThenContinue` and `Wait` are a plugin failure.
    fn on_response(&mut self, req: &Request, resp: &Response) -> Action {
        let _ = (req, resp);
        Action::Continue
    }
}

/// The config of a plugin that takes none: accepts `{}` only.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// Export a [`Plugin`] type as the component's `weir:plugin/handler`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            struct __WeirExport;

            ::std::thread_local! {
                static __WEIR_PLUGIN: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            impl $crate::bindings::exports::weir::plugin::handler::Guest for __WeirExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<$crate::Hooks, ::std::string::String> {
                    let plugin = $crate::__private::init::<$plugin>(&config)?;
                    $crate::__private::declare(&plugin);
                    __WEIR_PLUGIN
                        .with(|cell| *cell.borrow_mut() = ::std::option::Option::Some(plugin));
                    ::std::result::Result::Ok(<$plugin as $crate::Plugin>::HOOKS)
                }

                fn on_request(req: &$crate::Request) -> $crate::Action {
                    __WEIR_PLUGIN.with(|cell| match cell.borrow_mut().as_mut() {
                        ::std::option::Option::Some(p) => $crate::Plugin::on_request(p, req),
                        ::std::option::Option::None => $crate::__private::not_initialised(),
                    })
                }

                fn on_response(req: &$crate::Request, resp: &$crate::Response) -> $crate::Action {
                    __WEIR_PLUGIN.with(|cell| match cell.borrow_mut().as_mut() {
                        ::std::option::Option::Some(p) => $crate::Plugin::on_response(p, req, resp),
                        ::std::option::Option::None => $crate::__private::not_initialised(),
                    })
                }
            }

            // Only wasm builds export the component's functions: native builds
            // of a plugin crate (for its unit tests) link without them.
            #[cfg(target_arch = "wasm32")]
    $crate::bindings::__export_world!(__WeirExport with_types_in $crate::bindings);
            #[cfg(not(target_arch = "wasm32"))]
            const _: fn(
                ::std::string::String,
            ) -> ::std::result::Result<$crate::Hooks, ::std::string::String> =
                <__WeirExport as $crate::bindings::exports::weir::plugin::handler::Guest>::init;
        };
    };
}

#[doc(hidden)]
pub mod __private {
    use crate::{Action, Plugin, Reply};

    /// Parse the config and build the plugin.
    pub fn init<P: Plugin>(config: &str) -> Result<P, String> {
        let source = if config.trim().is_empty() {
            "{}"
        } else {
            config
        };
        let parsed: P::Config =
            serde_json::from_str(source).map_err(|e| format!("invalid config: {e}"))?;
        P::new(parsed)
    }

    /// Tell the host the routes `plugin` acts on, if it names any.
    pub fn declare<P: Plugin>(plugin: &P) {
        if let Some(routes) = plugin.routes() {
            crate::bindings::weir::plugin::interest::only_routes(&routes);
        }
    }

    /// The host always calls `init` first; answer clearly if it did not.
    pub fn not_initialised() -> Action {
        Action::Respond(Reply::text(500, "plugin used before init"))
    }
}
