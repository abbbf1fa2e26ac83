//! HTTP calls to the upstreams named in `weir.toml`.
//!
//! ```no_run
//! use weir_sdk::outbound::{self, Call};
//! let user = outbound::send(&Call::get("users", "/users/7").timeout_ms(300));
//! let both = outbound::send_all(&[
//!     Call::get("users", "/users/7"),
//!     Call::get("orders", "/orders?user=7"),
//! ]);
//! ```

use crate::bindings::weir::plugin::outbound as raw;
pub use raw::{Call, CallError, CallResponse};

/// Make one call and wait for the response.
pub fn send(call: &Call) -> Result<CallResponse, CallError> {
    raw::send(call)
}

/// Make the calls concurrently; results are in the same order. Takes as long
/// as the slowest call.
pub fn send_all(calls: &[Call]) -> Vec<Result<CallResponse, CallError>> {
    raw::send_all(calls)
}

impl Call {
    /// A call with `method` to `path_with_query` on `upstream`.
    pub fn new(upstream: &str, method: &str, path_with_query: &str) -> Self {
        Call {
            upstream: upstream.to_string(),
            method: method.to_string(),
            path_with_query: path_with_query.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        }
    }

    /// A `GET` call.
    pub fn get(upstream: &str, path_with_query: &str) -> Self {
        Call::new(upstream, "GET", path_with_query)
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Give up after `ms` milliseconds.
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
        self
    }
}

impl CallResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}
