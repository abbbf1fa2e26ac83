//! What a `wasi:http` component's `Store` carries: the governed host state
//! every plugin has ([`HostState`]: locked-down WASI, budgets, grants,
//! memory cap, deadline), wasmtime's `wasi:http` context, and the
//! [`Hooks`](super::hooks::Hooks) that decide where its outgoing requests go.

use wasmtime_wasi::{WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::hooks::Hooks;
use crate::runtime::HostState;

/// Per-request store data of a `wasi:http` component.
pub struct HandlerState {
    /// Weir's governed host state.
    pub host: HostState,
    /// wasmtime's `wasi:http` context.
    pub http: WasiHttpCtx,
    /// Where outgoing requests go.
    pub hooks: Hooks,
}

impl WasiView for HandlerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.host.ctx()
    }
}

impl WasiHttpView for HandlerState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.host.table,
            hooks: &mut self.hooks,
        }
    }
}
