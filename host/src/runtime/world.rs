//! The contract versions a plugin may implement: a compiled component is
//! checked against `weir:plugin/plugin@0.2.0` first, then `@0.1.0`, and the
//! instance is driven through whichever it implements. The gateway sees
//! one shape: 0.2.0 actions and the hooks `init` declared (all of them,
//! for a 0.1.0 plugin).

use wasmtime::Store;
use wasmtime::component::{Component, Linker, Resource};

use super::bindings::{self, Action, Hooks, v0_1};
use super::compat;
use super::host::HostState;
use crate::exchange::{HeldRequest, HeldResponse};

/// The current contract version.
pub const CURRENT: &str = "0.2.0";

/// A component checked against a contract version, ready to instantiate.
pub enum PluginPre {
    /// `weir:plugin/plugin@0.2.0`.
    V2(bindings::PluginPre<HostState>),
    /// `weir:plugin/plugin@0.1.0`.
    V1(v0_1::PluginPre<HostState>),
}

/// One instance of a plugin.
pub enum Instance {
    /// A 0.2.0 plugin.
    V2(bindings::Plugin),
    /// A 0.1.0 plugin.
    V1(v0_1::Plugin),
}

impl PluginPre {
    /// Check `component` against the worlds the host implements, newest
    /// first. The error says what is missing.
    pub fn new(linker: &Linker<HostState>, component: &Component) -> Result<PluginPre, String> {
        let world =
            format!("does not implement the weir:plugin/plugin@{CURRENT} world (nor @0.1.0)");
        let instance_pre = linker
            .instantiate_pre(component)
            .map_err(|e| format!("{world}: {e:#}"))?;
        match bindings::PluginPre::new(instance_pre.clone()) {
            Ok(pre) => Ok(PluginPre::V2(pre)),
            Err(current) => match v0_1::PluginPre::new(instance_pre) {
                Ok(pre) => Ok(PluginPre::V1(pre)),
                Err(_) => Err(format!("{world}: {current:#}")),
            },
        }
    }

    /// The contract version the plugin implements.
    pub fn version(&self) -> &'static str {
        match self {
            PluginPre::V2(_) => CURRENT,
            PluginPre::V1(_) => "0.1.0",
        }
    }

    /// A new instance in `store`.
    pub async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            PluginPre::V2(pre) => Instance::V2(pre.instantiate_async(store).await?),
            PluginPre::V1(pre) => Instance::V1(pre.instantiate_async(store).await?),
        })
    }
}

impl Instance {
    /// Run `init`; the hooks it declared, or its refusal.
    pub async fn init(
        &self,
        store: &mut Store<HostState>,
        config: &str,
    ) -> wasmtime::Result<Result<Hooks, String>> {
        match self {
            Instance::V2(p) => p.weir_plugin_handler().call_init(store, config).await,
            Instance::V1(p) => Ok(p
                .weir_plugin_handler()
                .call_init(store, config)
                .await?
                .map(|()| Hooks::all())),
        }
    }

    /// Run `on-request` on a borrowed request.
    pub async fn on_request(
        &self,
        store: &mut Store<HostState>,
        req: Resource<HeldRequest>,
    ) -> wasmtime::Result<Action> {
        match self {
            Instance::V2(p) => p.weir_plugin_handler().call_on_request(store, req).await,
            Instance::V1(p) => p
                .weir_plugin_handler()
                .call_on_request(store, req)
                .await
                .map(compat::action),
        }
    }

    /// Run `on-response` on a borrowed request and response.
    pub async fn on_response(
        &self,
        store: &mut Store<HostState>,
        req: Resource<HeldRequest>,
        resp: Resource<HeldResponse>,
    ) -> wasmtime::Result<Action> {
        match self {
            Instance::V2(p) => {
                p.weir_plugin_handler()
                    .call_on_response(store, req, resp)
                    .await
            }
            Instance::V1(p) => p
                .weir_plugin_handler()
                .call_on_response(store, req, resp)
                .await
                .map(compat::action),
        }
    }
}
