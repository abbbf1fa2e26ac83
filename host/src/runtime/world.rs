//! The contract versions a plugin may implement: a compiled component is
//! checked against `weir:plugin/plugin@0.5.0` first, then `@0.4.0`,
//! `@0.3.0`, `@0.2.0` and `@0.1.0`, and the instance is driven through
//! whichever it implements (old versions through `compat/`). The gateway
//! sees one shape: 0.5.0 actions and the hooks `init` declared (all of
//! them, for a 0.1.0 plugin, whose `init` declares none).

use wasmtime::Store;
use wasmtime::component::{Component, Linker, Resource};

use super::bindings::{self, Action, Hooks, v0_1, v0_2, v0_3, v0_4};
use super::compat;
use super::host::HostState;
use crate::exchange::{HeldRequest, HeldResponse};

/// The current contract version.
pub const CURRENT: &str = "0.5.0";

/// A component checked against a contract version, ready to instantiate.
pub enum PluginPre {
    /// `weir:plugin/plugin@0.5.0`.
    V5(bindings::PluginPre<HostState>),
    /// `weir:plugin/plugin@0.4.0`.
    V4(v0_4::PluginPre<HostState>),
    /// `weir:plugin/plugin@0.3.0`.
    V3(v0_3::PluginPre<HostState>),
    /// `weir:plugin/plugin@0.2.0`.
    V2(v0_2::PluginPre<HostState>),
    /// `weir:plugin/plugin@0.1.0`.
    V1(v0_1::PluginPre<HostState>),
}

/// One instance of a plugin.
pub enum Instance {
    /// A 0.5.0 plugin.
    V5(bindings::Plugin),
    /// A 0.4.0 plugin.
    V4(v0_4::Plugin),
    /// A 0.3.0 plugin.
    V3(v0_3::Plugin),
    /// A 0.2.0 plugin.
    V2(v0_2::Plugin),
    /// A 0.1.0 plugin.
    V1(v0_1::Plugin),
}

impl PluginPre {
    /// Check `component` against the worlds the host implements, newest
    /// first. The error names every version and says what the current one
    /// misses (a component of none of them is most likely meant for the
    /// current one).
    pub fn new(linker: &Linker<HostState>, component: &Component) -> Result<PluginPre, String> {
        let world = format!(
            "does not implement the weir:plugin/plugin@{CURRENT} world (nor @0.4.0, @0.3.0, @0.2.0 or @0.1.0)"
        );
        let instance_pre = linker
            .instantiate_pre(component)
            .map_err(|e| format!("{world}: {e:#}"))?;
        let current = match bindings::PluginPre::new(instance_pre.clone()) {
            Ok(pre) => return Ok(PluginPre::V5(pre)),
            Err(current) => current,
        };
        if let Ok(pre) = v0_4::PluginPre::new(instance_pre.clone()) {
            return Ok(PluginPre::V4(pre));
        }
        if let Ok(pre) = v0_3::PluginPre::new(instance_pre.clone()) {
            return Ok(PluginPre::V3(pre));
        }
        if let Ok(pre) = v0_2::PluginPre::new(instance_pre.clone()) {
            return Ok(PluginPre::V2(pre));
        }
        match v0_1::PluginPre::new(instance_pre) {
            Ok(pre) => Ok(PluginPre::V1(pre)),
            Err(_) => Err(format!("{world}: {current:#}")),
        }
    }

    /// The contract version the plugin implements.
    pub fn version(&self) -> &'static str {
        match self {
            PluginPre::V5(_) => CURRENT,
            PluginPre::V4(_) => "0.4.0",
            PluginPre::V3(_) => "0.3.0",
            PluginPre::V2(_) => "0.2.0",
            PluginPre::V1(_) => "0.1.0",
        }
    }

    /// A new instance in `store`.
    pub async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            PluginPre::V5(pre) => Instance::V5(pre.instantiate_async(store).await?),
            PluginPre::V4(pre) => Instance::V4(pre.instantiate_async(store).await?),
            PluginPre::V3(pre) => Instance::V3(pre.instantiate_async(store).await?),
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
            Instance::V5(p) => p.weir_plugin_handler().call_init(store, config).await,
            // The same two flags as 0.5.0's: their hooks as declared.
            Instance::V4(p) => Ok(p
                .weir_plugin_handler()
                .call_init(store, config)
                .await?
                .map(compat::v0_4::hooks)),
            Instance::V3(p) => Ok(p
                .weir_plugin_handler()
                .call_init(store, config)
                .await?
                .map(compat::v0_3::hooks)),
            Instance::V2(p) => Ok(p
                .weir_plugin_handler()
                .call_init(store, config)
                .await?
                .map(compat::v0_2::hooks)),
            Instance::V1(p) => Ok(p
                .weir_plugin_handler()
                .call_init(store, config)
                .await?
                .map(|()| Hooks::all())),
        }
    }

    /// Run a hook on a borrowed request: `on-request`, or `on-response`
    /// when a borrowed response comes too.
    pub async fn call(
        &self,
        store: &mut Store<HostState>,
        req: Resource<HeldRequest>,
        resp: Option<Resource<HeldResponse>>,
    ) -> wasmtime::Result<Action> {
        match (self, resp) {
            (Instance::V5(p), None) => p.weir_plugin_handler().call_on_request(store, req).await,
            (Instance::V5(p), Some(resp)) => {
                p.weir_plugin_handler()
                    .call_on_response(store, req, resp)
                    .await
            }
            (Instance::V4(p), None) => p
                .weir_plugin_handler()
                .call_on_request(store, req)
                .await
                .map(compat::v0_4::action),
            (Instance::V4(p), Some(resp)) => p
                .weir_plugin_handler()
                .call_on_response(store, req, resp)
                .await
                .map(compat::v0_4::action),
            (Instance::V3(p), None) => p
                .weir_plugin_handler()
                .call_on_request(store, req)
                .await
                .map(compat::v0_3::action),
            (Instance::V3(p), Some(resp)) => p
                .weir_plugin_handler()
                .call_on_response(store, req, resp)
                .await
                .map(compat::v0_3::action),
            (Instance::V2(p), None) => p
                .weir_plugin_handler()
                .call_on_request(store, req)
                .await
                .map(compat::v0_2::action),
            (Instance::V2(p), Some(resp)) => p
                .weir_plugin_handler()
                .call_on_response(store, req, resp)
                .await
                .map(compat::v0_2::action),
            (Instance::V1(p), None) => p
                .weir_plugin_handler()
                .call_on_request(store, req)
                .await
                .map(compat::v0_1::action),
            (Instance::V1(p), Some(resp)) => p
                .weir_plugin_handler()
                .call_on_response(store, req, resp)
                .await
                .map(compat::v0_1::action),
        }
    }
}
