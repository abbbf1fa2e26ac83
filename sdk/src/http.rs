//! Conveniences on the request, response, reply and action types.

use crate::{Action, BodyError, EditError, Reply, Request, Response};

/// Why a body could not be read as JSON.
#[derive(Debug)]
pub enum JsonBodyError {
    /// The body could not be read.
    Body(BodyError),
    /// The body is not the expected JSON.
    Json(serde_json::Error),
}

impl std::fmt::Display for JsonBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonBodyError::Body(BodyError::TooLarge(limit)) => {
                write!(f, "body is larger than {limit} bytes")
            }
            JsonBodyError::Body(BodyError::ReadFailed(why)) => write!(f, "body read failed: {why}"),
            JsonBodyError::Json(e) => write!(f, "invalid JSON body: {e}"),
        }
    }
}

impl std::error::Error for JsonBodyError {}

/// `(name, value)` pairs as the owned strings the bindings take.
fn owned(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
        .collect()
}

impl Request {
    /// Set several headers in one host call: each name loses its current
    /// values and gets the ones listed for it. All or nothing. One call
    /// instead of several matters most in languages whose host calls are
    /// expensive, but it is cheaper in Rust too.
    pub fn set_header_pairs(&self, headers: &[(&str, &str)]) -> Result<(), EditError> {
        self.set_headers(&owned(headers))
    }

    /// Headers for the response this request gets, whoever answers it,
    /// set from `on_request` in one host call (see
    /// `set-response-headers` in the contract): a plugin that only adds
    /// response headers needs no `on_response` hook.
    pub fn set_response_header_pairs(&self, headers: &[(&str, &str)]) -> Result<(), EditError> {
        self.set_response_headers(&owned(headers))
    }

    /// The path without the query, e.g. `/users/7`.
    pub fn path(&self) -> String {
        let pq = self.path_with_query();
        match pq.split_once('?') {
            Some((path, _)) => path.to_string(),
            None => pq,
        }
    }

    /// The raw query string without `?`, if there is one.
    pub fn query(&self) -> Option<String> {
        self.path_with_query()
            .split_once('?')
            .map(|(_, q)| q.to_string())
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, JsonBodyError> {
        let body = self.body().map_err(JsonBodyError::Body)?;
        serde_json::from_slice(&body).map_err(JsonBodyError::Json)
    }
}

impl Response {
    /// Set several headers in one host call (see [`Request::set_headers`]).
    pub fn set_header_pairs(&self, headers: &[(&str, &str)]) -> Result<(), EditError> {
        self.set_headers(&owned(headers))
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, JsonBodyError> {
        let body = self.body().map_err(JsonBodyError::Body)?;
        serde_json::from_slice(&body).map_err(JsonBodyError::Json)
    }
}

impl Reply {
    /// An empty reply with this status.
    pub fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` reply.
    pub fn text(status: u16, body: &str) -> Self {
        Reply::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body)
    }

    /// An `application/json` reply with `value` serialised as the body.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        // Serialising a `serde_json::Value` or a plain struct cannot fail;
        // fall back to `null` rather than panic if a custom impl does.
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        Reply::new(status)
            .header("content-type", "application/json")
            .body(body)
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
}

impl From<Reply> for Action {
    fn from(reply: Reply) -> Self {
        Action::Respond(reply)
    }
}
