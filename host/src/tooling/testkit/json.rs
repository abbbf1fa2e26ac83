//! The JSON shapes of the test kit: requests and responses fed to a
//! plugin, and the outcomes it produced (`weir test-plugin` reads and
//! prints these).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// A body in JSON: text, or `{"base64": "..."}` for bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BodyText {
    /// UTF-8 text.
    Text(String),
    /// Any bytes.
    Base64 {
        /// Standard base64.
        base64: String,
    },
    /// No body.
    #[default]
    None,
}

impl BodyText {
    pub(crate) fn bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            BodyText::Text(text) => Ok(text.clone().into_bytes()),
            BodyText::Base64 { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map_err(|e| format!("invalid base64 body: {e}")),
            BodyText::None => Ok(Vec::new()),
        }
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> BodyText {
        match std::str::from_utf8(bytes) {
            Ok(_) if bytes.is_empty() => BodyText::None,
            Ok(text) => BodyText::Text(text.to_string()),
            Err(_) => BodyText::Base64 {
                base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
        }
    }
}

fn is_none(body: &BodyText) -> bool {
    matches!(body, BodyText::None)
}

/// Headers: written as a JSON object (`{"name": "value"}`, repeated names
/// joined with `, `), read from an object or from `[name, value]` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Serialize for Headers {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &self.0 {
            map.entry(name.to_ascii_lowercase())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        map.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Map(BTreeMap<String, String>),
            List(Vec<(String, String)>),
        }
        Ok(match Form::deserialize(deserializer)? {
            Form::Map(map) => Headers(map.into_iter().collect()),
            Form::List(list) => Headers(list),
        })
    }
}

/// A request to feed a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// Method (default `GET`).
    #[serde(default = "get")]
    pub method: String,
    /// Path and query (default `/`).
    #[serde(default = "root")]
    pub path: String,
    /// Headers.
    #[serde(default)]
    pub headers: Headers,
    /// Body.
    #[serde(default, skip_serializing_if = "is_none")]
    pub body: BodyText,
    /// The client's address (default `127.0.0.1:40000`): the connection's
    /// peer, `request.client-addr`.
    #[serde(default = "client")]
    pub client: SocketAddr,
    /// The client's IP as the gateway resolved it through trusted proxies,
    /// `request.client-ip` (default: `client`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<std::net::IpAddr>,
    /// Context set by earlier plugins (e.g. `route`, `consumer`).
    #[serde(default)]
    pub context: BTreeMap<String, String>,
}

impl Default for TestRequest {
    fn default() -> Self {
        TestRequest {
            method: get(),
            path: root(),
            headers: Headers::default(),
            body: BodyText::None,
            client: client(),
            client_ip: None,
            context: BTreeMap::new(),
        }
    }
}

fn get() -> String {
    "GET".into()
}
fn root() -> String {
    "/".into()
}
fn client() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}
pub(crate) fn ok() -> u16 {
    200
}

/// A response to feed a plugin, or one it answered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestResponse {
    /// Status (default 200).
    #[serde(default = "ok")]
    pub status: u16,
    /// Headers.
    #[serde(default)]
    pub headers: Headers,
    /// Body.
    #[serde(default, skip_serializing_if = "is_none")]
    pub body: BodyText,
}

impl Default for TestResponse {
    fn default() -> Self {
        TestResponse {
            status: ok(),
            headers: Headers::default(),
            body: BodyText::None,
        }
    }
}

/// What a hook returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum TestAction {
    /// `continue`.
    Continue,
    /// `respond(reply)`.
    Respond {
        /// The reply.
        reply: TestResponse,
    },
    /// `respond-then-continue(reply)`: answer with the reply, and carry on
    /// with the request in the background (`on-request` only).
    RespondThenContinue {
        /// The reply.
        reply: TestResponse,
    },
    /// `wait(wait)`: park the request until the plugin's `kv` key `key`
    /// changes or `timeout_ms` passes, then run `on-request` again
    /// (`on-request` only).
    Wait {
        /// The key waited for.
        key: String,
        /// The longest wait, in milliseconds.
        timeout_ms: u32,
    },
}

/// The outcome of `on-request`.
#[derive(Debug, Clone, Serialize)]
pub struct RequestOutcome {
    /// The action.
    #[serde(flatten)]
    pub action: TestAction,
    /// The request as the plugin left it (context included).
    pub request: TestRequest,
    /// The upstream it chose, if any.
    pub upstream: Option<String>,
}

/// The outcome of `on-response`.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseOutcome {
    /// The action.
    #[serde(flatten)]
    pub action: TestAction,
    /// The response as the plugin left it.
    pub response: TestResponse,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn test_requests_parse_with_defaults() {
        let r: TestRequest =
            serde_json::from_value(json!({"path": "/x", "headers": [["a", "b"]], "body": "hi"}))
                .unwrap();
        assert_eq!(r.headers.get("A"), Some("b"));
        let r2: TestRequest = serde_json::from_value(json!({"headers": {"a": "b"}})).unwrap();
        assert_eq!(r2.headers, Headers(vec![("a".into(), "b".into())]));
        assert_eq!(
            serde_json::to_value(Headers(vec![
                ("A".into(), "1".into()),
                ("a".into(), "2".into())
            ]))
            .unwrap(),
            json!({"a": "1, 2"})
        );
        assert_eq!((r.method.as_str(), r.client), ("GET", client()));
        assert_eq!(r.body.bytes().unwrap(), b"hi");
        let r: TestRequest = serde_json::from_value(json!({"body": {"base64": "AAE="}})).unwrap();
        assert_eq!(r.body.bytes().unwrap(), [0, 1]);
        assert!(serde_json::from_value::<TestRequest>(json!({"pth": "/"})).is_err());
    }
}
