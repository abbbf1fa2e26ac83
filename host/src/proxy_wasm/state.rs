//! What one proxy-wasm instance's `Store` carries: the same governed host
//! state a component plugin has ([`HostState`]: budgets, grants, memory
//! cap, deadline, the hook's span), a WASI preview 1 context with nothing
//! granted, the filter's configuration bytes, its metrics, and the
//! [`StreamState`] the running callback works on.

use std::sync::Arc;

use wasmtime_wasi::p1::WasiP1Ctx;

use crate::exchange::{HeldRequest, HeldResponse};
use crate::runtime::HostState;
use crate::runtime::bindings::weir::plugin::outbound;
use crate::telemetry::plugin_metrics::Handle;

/// Per-instance store data.
pub struct FilterState {
    /// Weir's governed host state, shared in shape with component plugins.
    pub host: HostState,
    /// WASI preview 1: clocks, random, stdout/stderr to the log; nothing else.
    pub wasi: WasiP1Ctx,
    /// `NAME.json`'s bytes, given unchanged as the plugin configuration.
    pub config: Arc<[u8]>,
    /// The root context's id.
    pub root_id: u32,
    /// The HTTP context being served, if any.
    pub stream_id: Option<u32>,
    /// Metrics the filter defined, by id (index + 1).
    pub metrics: Vec<Metric>,
    /// The request and response the running callback sees.
    pub exchange: StreamState,
}

/// A metric a filter defined.
pub struct Metric {
    /// The Prometheus family's handle.
    pub handle: Handle,
    /// `abi::metric::*`.
    pub kind: u32,
    /// The name the filter gave.
    pub name: String,
}

/// The state of one HTTP stream while its callbacks run.
#[derive(Default)]
pub struct StreamState {
    /// The request (lent for the request callbacks, and for reading in the
    /// response ones).
    pub req: Option<HeldRequest>,
    /// The response, in the response callbacks.
    pub resp: Option<HeldResponse>,
    /// The body being filtered (`HttpRequestBody` or `HttpResponseBody`).
    pub body: Option<Vec<u8>>,
    /// Set when the filter replaced the body.
    pub body_changed: bool,
    /// `proxy_send_local_response` was called.
    pub local: Option<LocalReply>,
    /// `proxy_continue_stream` was called since the stream paused.
    pub resumed: bool,
    /// `proxy_close_stream` was called: the stream ends without an answer
    /// from the upstream.
    pub closed: bool,
    /// Calls dispatched by the running callback, not yet sent.
    pub dispatched: Vec<(u32, outbound::Call)>,
    /// The answer of the call whose callback is running.
    pub call_response: Option<outbound::CallResponse>,
    /// The next call token.
    pub next_token: u32,
}

/// A reply the filter sent instead of the upstream's.
#[derive(Debug, Clone)]
pub struct LocalReply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}
