//! The host-side state of one request and its response, as plugins see them
//! through the `request` and `response` resources.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::http::body::BodyState;

/// One client request travelling through the pipeline.
pub struct RequestState {
    /// Method, URI, version and headers, as edited so far.
    pub head: http::request::Parts,
    /// The body, streaming until a plugin reads it.
    pub body: BodyState,
    /// The client's address.
    pub client: SocketAddr,
    /// Facts plugins pass down the chain (`get-context` / `set-context`).
    pub context: Context,
    /// The upstream chosen by a plugin (`set-upstream`).
    pub upstream: Option<String>,
    /// The authority the client asked for, fixed at arrival.
    pub original_authority: Option<String>,
    /// How the client's connection was secured, if it was.
    pub tls: Option<Arc<TlsFacts>>,
    /// The span new spans of this request are children of (the request's,
    /// or a hook's while it runs); none when tracing is off.
    pub trace: Option<crate::telemetry::traces::Trace>,
    /// Chain places whose canary failed this request: their stable version
    /// serves the rest of it (empty, and unallocated, nearly always).
    pub canary_failed: Vec<usize>,
}

/// A request's context: a handful of short strings per request, kept in a
/// small list (a scan beats hashing at this size, and creating one costs
/// nothing until a plugin writes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context(Vec<(String, String)>);

impl Context {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Set `key` to `value`, replacing any value it had.
    pub fn insert(&mut self, key: String, value: String) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Every key and value, in the order first set.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl FromIterator<(String, String)> for Context {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut context = Context::default();
        for (k, v) in iter {
            context.insert(k, v);
        }
        context
    }
}

impl IntoIterator for Context {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// What a TLS listener learned of a connection, shared by its requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFacts {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: String,
    /// IANA cipher-suite name.
    pub cipher_suite: String,
    /// The server name the client asked for.
    pub sni: Option<String>,
    /// The protocol agreed by ALPN.
    pub alpn: Option<String>,
    /// The verified client certificate (mutual TLS).
    pub client_certificate: Option<ClientCertificate>,
}

/// A verified client certificate, as plugins see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCertificate {
    /// Subject distinguished name, RFC 4514 style.
    pub subject: String,
    /// Subject alternative names, `DNS:...`, `IP:...`, `URI:...`, `email:...`.
    pub sans: Vec<String>,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprint_sha256: String,
}

impl RequestState {
    /// State for a request that just arrived.
    pub fn new(head: http::request::Parts, body: BodyState, client: SocketAddr) -> Self {
        let original_authority = authority_of(&head);
        RequestState {
            head,
            body,
            client,
            context: Context::default(),
            upstream: None,
            original_authority,
            tls: None,
            trace: None,
            canary_failed: Vec::new(),
        }
    }

    /// Path and query, `/` when absent.
    pub fn path_with_query(&self) -> &str {
        self.head.uri.path_and_query().map_or("/", |pq| pq.as_str())
    }
}

/// The `Host` header, or the authority of an absolute-form target (HTTP/2
/// carries it in `:authority`, which hyper puts in the URI).
fn authority_of(head: &http::request::Parts) -> Option<String> {
    head.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| head.uri.authority().map(|a| a.as_str().to_string()))
}

/// A response on its way to the client.
pub struct ResponseState {
    /// Status, version and headers.
    pub head: http::response::Parts,
    /// The body.
    pub body: BodyState,
}

impl ResponseState {
    /// Into a response for hyper.
    pub fn into_response(self) -> http::Response<crate::http::body::Body> {
        http::Response::from_parts(self.head, self.body.into_body())
    }
}
