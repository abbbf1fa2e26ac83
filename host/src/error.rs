//! What can go wrong with a request, kept with its source (plugin, upstream,
//! downstream, internal) and mapped to an HTTP answer in one place:
//! [`GatewayError::status`] and [`GatewayError::to_response`].

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode};

use crate::http::body::{self, Body};

/// Why a plugin hook produced no usable action.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginFailure {
    /// The plugin trapped (a panic, `unreachable`, a bad memory access...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The hook ran past its deadline.
    #[error("exceeded its deadline of {} ms", .0.as_millis())]
    Deadline(Duration),
    /// The instance tried to grow its memory past the cap.
    #[error("exceeded its memory limit of {0} bytes")]
    MemoryLimit(u64),
    /// The hook returned a reply the gateway cannot send.
    #[error("returned an invalid reply: {0}")]
    BadAction(String),
    /// No instance became free before the deadline.
    #[error("has no free instance (all {0} busy)")]
    Busy(u32),
    /// A new instance could not be created or initialised.
    #[error("could not start an instance: {0}")]
    Instantiate(String),
    /// Quarantined after repeated failures (or by an operator), and its
    /// failure policy is `reject`: not called.
    #[error("is quarantined")]
    Quarantined,
}

impl PluginFailure {
    /// The `cause` label of `weir_plugin_failures_total`.
    pub fn cause(&self) -> &'static str {
        match self {
            PluginFailure::Trap(_) => "trap",
            PluginFailure::Deadline(_) => "deadline",
            PluginFailure::MemoryLimit(_) => "memory",
            PluginFailure::BadAction(_) => "invalid_reply",
            PluginFailure::Busy(_) => "busy",
            PluginFailure::Instantiate(_) => "instantiate",
            PluginFailure::Quarantined => "quarantined",
        }
    }

    /// A short, non-sensitive label for clients.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginFailure::Trap(_) => "trap",
            PluginFailure::Deadline(_) => "deadline exceeded",
            PluginFailure::MemoryLimit(_) => "memory limit exceeded",
            PluginFailure::BadAction(_) => "invalid reply",
            PluginFailure::Busy(_) => "busy",
            PluginFailure::Instantiate(_) => "instance failed to start",
            PluginFailure::Quarantined => "quarantined",
        }
    }
}

/// Why the upstream gave no usable response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamFailure {
    /// No connection could be made.
    #[error("connection failed: {0}")]
    Connect(String),
    /// No response head within the timeout.
    #[error("no response within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The connection broke or the response was malformed.
    #[error("request failed: {0}")]
    Protocol(String),
    /// Every target is out of rotation (health checks or ejection).
    #[error("no healthy target")]
    NoHealthyTarget,
    /// Every target has its `upstream_connections_per_target` in use and
    /// none freed within the connect timeout.
    #[error("saturated: {0}")]
    Saturated(String),
    /// The TLS handshake failed; the verdict says why, without names.
    #[error("{0}")]
    Tls(&'static str),
}

impl UpstreamFailure {
    /// The `cause` label of `weir_upstream_failures_total`.
    pub fn cause(&self) -> &'static str {
        match self {
            UpstreamFailure::Connect(_) => "connect",
            UpstreamFailure::Timeout(_) => "timeout",
            UpstreamFailure::Protocol(_) => "protocol",
            UpstreamFailure::NoHealthyTarget => "no_healthy_target",
            UpstreamFailure::Saturated(_) => "saturated",
            UpstreamFailure::Tls(_) => "tls",
        }
    }
}

/// Why the client's request was refused before any plugin ran.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DownstreamError {
    /// The header block is larger than `max_header_bytes`.
    #[error("request headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    /// The request has more header fields than `max_header_count`.
    #[error("request has more than {0} header fields")]
    TooManyHeaders(usize),
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The client's body was malformed or cut short.
    #[error("bad request body: {0}")]
    BadBody(String),
    /// The client stalled its body past `client_body_idle_timeout_ms`.
    #[error("request body timed out: nothing received for {} ms", .0.as_millis())]
    BodyTimeout(Duration),
}

/// Every way a request can fail.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// A plugin failed.
    #[error("plugin `{plugin}` {failure}")]
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// What happened.
        failure: PluginFailure,
    },
    /// The upstream failed.
    #[error("upstream `{upstream}`: {failure}")]
    Upstream {
        /// The upstream's name.
        upstream: String,
        /// What happened.
        failure: UpstreamFailure,
    },
    /// The client's request is unacceptable.
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
    /// No plugin chose an upstream.
    #[error("no upstream was chosen for this request")]
    NoUpstream,
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// `self`, unless the client's body failed first (`watch`): then that
    /// failure (400 or 408), which is the client's, not the upstream's.
    pub fn blamed(self, watch: &body::BodyWatch) -> GatewayError {
        match watch.failure() {
            Some(body::ClientBodyError::Idle(after)) => DownstreamError::BodyTimeout(*after).into(),
            Some(body::ClientBodyError::Malformed(why)) => {
                DownstreamError::BadBody(why.clone()).into()
            }
            None => self,
        }
    }

    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Plugin {
                failure: PluginFailure::Busy(_) | PluginFailure::Quarantined,
                ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Plugin { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::Upstream {
                failure: UpstreamFailure::Timeout(_),
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Upstream {
                failure: UpstreamFailure::NoHealthyTarget | UpstreamFailure::Saturated(_),
                ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::Downstream(
                DownstreamError::HeadersTooLarge(_) | DownstreamError::TooManyHeaders(_),
            ) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GatewayError::Downstream(
                DownstreamError::BadRequest(_) | DownstreamError::BadBody(_),
            ) => StatusCode::BAD_REQUEST,
            GatewayError::Downstream(DownstreamError::BodyTimeout(_)) => {
                StatusCode::REQUEST_TIMEOUT
            }
            GatewayError::NoUpstream => StatusCode::NOT_FOUND,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body the client gets: what failed and which part, without
    /// internal detail (that goes to the log).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            GatewayError::Plugin { plugin, failure } => {
                json!({"error": "plugin failed", "plugin": plugin, "cause": failure.kind()})
            }
            GatewayError::Upstream { upstream, failure } => {
                let cause = match failure {
                    UpstreamFailure::Connect(_) => "connection failed",
                    UpstreamFailure::Timeout(_) => "timeout",
                    UpstreamFailure::Protocol(_) => "bad response",
                    UpstreamFailure::NoHealthyTarget => "no healthy target",
                    UpstreamFailure::Saturated(_) => "saturated",
                    UpstreamFailure::Tls(verdict) => verdict,
                };
                json!({"error": "upstream failed", "upstream": upstream, "cause": cause})
            }
            GatewayError::Downstream(e) => json!({"error": "bad request", "cause": e.to_string()}),
            GatewayError::NoUpstream => {
                json!({"error": "no upstream", "cause": "no plugin chose an upstream for this request"})
            }
            GatewayError::Internal(_) => json!({"error": "internal error"}),
        }
    }

    /// The complete response.
    pub fn to_response(&self) -> Response<Body> {
        json_response(self.status(), &self.to_json())
    }
}

/// A JSON response with the right content type and length.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let bytes = value.to_string().into_bytes();
    let mut response = Response::new(body::full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_source() {
        let plugin = |failure| GatewayError::Plugin {
            plugin: "p".into(),
            failure,
        };
        let upstream = |failure| GatewayError::Upstream {
            upstream: "u".into(),
            failure,
        };
        assert_eq!(plugin(PluginFailure::Trap("x".into())).status(), 500);
        assert_eq!(
            plugin(PluginFailure::Deadline(Duration::from_millis(5))).status(),
            500
        );
        assert_eq!(plugin(PluginFailure::Busy(4)).status(), 503);
        assert_eq!(plugin(PluginFailure::Quarantined).status(), 503);
        assert_eq!(upstream(UpstreamFailure::Connect("x".into())).status(), 502);
        assert_eq!(
            upstream(UpstreamFailure::Timeout(Duration::from_secs(1))).status(),
            504
        );
        assert_eq!(GatewayError::NoUpstream.status(), 404);
        assert_eq!(
            GatewayError::from(DownstreamError::HeadersTooLarge(1)).status(),
            431
        );
        assert_eq!(
            GatewayError::from(DownstreamError::BadBody("x".into())).status(),
            400
        );
        assert_eq!(
            GatewayError::from(DownstreamError::BodyTimeout(Duration::from_secs(1))).status(),
            408
        );
        assert_eq!(
            upstream(UpstreamFailure::Saturated("x".into())).status(),
            503
        );
    }

    #[test]
    fn client_body_names_the_part_but_not_internals() {
        let e = GatewayError::Plugin {
            plugin: "20-auth".into(),
            failure: PluginFailure::Trap("wasm backtrace: secret stuff".into()),
        };
        let body = e.to_json();
        assert_eq!(body["plugin"], "20-auth");
        assert_eq!(body["cause"], "trap");
        assert!(!body.to_string().contains("secret"));
    }
}
