//! The host-side state of one request and its response, as plugins see them
//! through the `request` and `response` resources.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use crate::http::body::BodyState;
use crate::http::headers::{self, Bounded, EditError, HeaderLimits};

/// A request as the hook path carries it: boxed once when it arrives, so
/// handing it to a hook (into the plugin's resource table and back, through
/// each hook's future) moves a pointer instead of the whole state. Copying
/// it by value cost about 0.8 µs of CPU per hook under load (memmove).
pub type HeldRequest = Box<RequestState>;

/// A response as the hook path carries it (see [`HeldRequest`]).
pub type HeldResponse = Box<ResponseState>;

/// Which hook a call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `on-request`: the request, before the upstream.
    Request,
    /// `on-response`: the request and the response, after it.
    Response,
}

impl Hook {
    /// The name spans and logs give it.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Request => "on_request",
            Hook::Response => "on_response",
        }
    }
}

/// What a hook call is lent and gives back: the request, and in
/// `on-response` the response too. Every layer of a hook call (the
/// gateway, governance, the plugin, its instance pool, the contract
/// version) takes and returns one of these, so a hook is called along one
/// path whichever it is.
pub struct Exchange {
    /// The request.
    pub req: HeldRequest,
    /// The response, in `on-response` only.
    pub resp: Option<HeldResponse>,
}

impl Exchange {
    /// What `on-request` is lent.
    pub fn request(req: HeldRequest) -> Exchange {
        Exchange { req, resp: None }
    }

    /// What `on-response` is lent.
    pub fn response(req: HeldRequest, resp: HeldResponse) -> Exchange {
        Exchange {
            req,
            resp: Some(resp),
        }
    }

    /// The hook this exchange is for.
    pub fn hook(&self) -> Hook {
        match self.resp {
            None => Hook::Request,
            Some(_) => Hook::Response,
        }
    }
}

/// A hook call that failed: why, and the exchange when it still exists
/// (for `on_failure = "skip"` and for a canary's fallback to its stable
/// version).
pub struct HookFailure<E> {
    /// Why.
    pub error: E,
    /// What the call was lent, if the plugin did not lose it.
    pub kept: Option<Exchange>,
}

/// One client request travelling through the pipeline.
pub struct RequestState {
    /// Method, URI, version and headers, as edited so far.
    pub head: http::request::Parts,
    /// The body, streaming until a plugin reads it.
    pub body: BodyState,
    /// The connection's peer (after any PROXY protocol header).
    pub client: SocketAddr,
    /// The client's IP, resolved through trusted proxies (`client_ip/`):
    /// what rate limits, stickiness, hashing and logs key on.
    pub client_ip: IpAddr,
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
    /// Headers a plugin set for the response from `on-request`
    /// (`set-response-headers`), checked, applied when the response
    /// arrives (empty, and unallocated, unless a plugin sets some).
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
    /// A whole response a plugin gave in `on-request` with its body still
    /// streaming (a `wasi:http` component that answered without calling
    /// the next stage): the on-request phase ends with it, as with
    /// `respond`.
    pub answer: Option<HeldResponse>,
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
            client_ip: client.ip(),
            context: Context::default(),
            upstream: None,
            original_authority,
            tls: None,
            trace: None,
            canary_failed: Vec::new(),
            response_headers: Vec::new(),
            answer: None,
        }
    }

    /// A copy of a request that has no body, to carry on in the background
    /// after `respond-then-continue` while the original answers the
    /// client. `None` when the request has (or may have) a body, which
    /// cannot be read twice.
    pub fn fork(&self) -> Option<RequestState> {
        if self.body.known_len() != Some(0) {
            return None;
        }
        let (mut head, ()) = http::Request::builder()
            .method(self.head.method.clone())
            .uri(self.head.uri.clone())
            .version(self.head.version)
            .body(())
            .ok()?
            .into_parts();
        head.headers = self.head.headers.clone();
        Some(RequestState {
            head,
            body: BodyState::buffered(bytes::Bytes::new()),
            client: self.client,
            client_ip: self.client_ip,
            context: self.context.clone(),
            upstream: self.upstream.clone(),
            original_authority: self.original_authority.clone(),
            tls: self.tls.clone(),
            trace: None,
            canary_failed: self.canary_failed.clone(),
            response_headers: self.response_headers.clone(),
            answer: None,
        })
    }

    /// Keep `headers` for the response (`set-response-headers`): every
    /// name and value is parsed now, and a name given again replaces the
    /// values an earlier call gave it. All or nothing.
    pub fn set_response_headers(&mut self, headers: &[(String, String)]) -> Result<(), EditError> {
        let parsed = headers
            .iter()
            .map(|(name, value)| headers::parse(name, value))
            .collect::<Result<Vec<_>, _>>()?;
        self.response_headers
            .retain(|(kept, _)| !parsed.iter().any(|(name, _)| name == kept));
        self.response_headers.extend(parsed);
        Ok(())
    }

    /// Set the headers kept by [`Self::set_response_headers`] on `resp`,
    /// within `limits`. Past the limits none is set (logged): the response
    /// still goes out.
    pub fn apply_response_headers(&mut self, resp: &mut ResponseState, limits: HeaderLimits) {
        if self.response_headers.is_empty() {
            return;
        }
        let kept = std::mem::take(&mut self.response_headers);
        if let Err(why) = Bounded::new(&mut resp.head.headers, limits).set_parsed(kept) {
            tracing::warn!("response headers set in on-request were not applied: {why}");
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

/// What a plugin keeps for one request from its `on-request` to its
/// `on-response` (a proxy-wasm filter's stream, a `wasi:http` component
/// waiting for the next stage), by plugin, in the request's extensions.
/// Dropped with the request when the response hook never comes.
pub struct Carried<T>(std::marker::PhantomData<T>);

/// The list behind [`Carried`] (extensions need `Clone + Sync`).
struct CarriedList<T>(Arc<std::sync::Mutex<Vec<(u64, T)>>>);

impl<T> Clone for CarriedList<T> {
    fn clone(&self) -> Self {
        CarriedList(self.0.clone())
    }
}

impl<T: Send + 'static> Carried<T> {
    /// Keep `value` for plugin `id` on `req`.
    pub fn put(req: &mut RequestState, id: u64, value: T) {
        let list = req
            .head
            .extensions
            .get_or_insert_with(|| CarriedList::<T>(Arc::default()));
        lock(&list.0).push((id, value));
    }

    /// Take what plugin `id` kept on `req`, if anything.
    pub fn take(req: &RequestState, id: u64) -> Option<T> {
        let list = req.head.extensions.get::<CarriedList<T>>()?;
        let mut list = lock(&list.0);
        let at = list.iter().position(|(kept, _)| *kept == id)?;
        Some(list.remove(at).1)
    }
}

/// Lock a carried list; it is only pushed to and taken from, so a panic
/// while it was locked cannot leave it inconsistent.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A response on its way to the client.
pub struct ResponseState {
    /// Status, version and headers.
    pub head: http::response::Parts,
    /// The body.
    pub body: BodyState,
}

impl ResponseState {
    /// A response the gateway made (an error answer), for the hooks.
    pub fn from_response(response: http::Response<crate::http::body::Body>) -> Self {
        let (head, body) = response.into_parts();
        ResponseState {
            head,
            body: BodyState::streaming(body),
        }
    }

    /// Into a response for hyper.
    pub fn into_response(self) -> http::Response<crate::http::body::Body> {
        http::Response::from_parts(self.head, self.body.into_body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RequestState {
        let (head, ()) = http::Request::new(()).into_parts();
        RequestState::new(
            head,
            BodyState::buffered(Vec::new()),
            ([127, 0, 0, 1], 1).into(),
        )
    }

    fn response() -> ResponseState {
        let (head, ()) = http::Response::new(()).into_parts();
        ResponseState {
            head,
            body: BodyState::buffered(Vec::new()),
        }
    }

    const LIMITS: HeaderLimits = HeaderLimits {
        max_bytes: 1024,
        max_count: 8,
    };

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn response_headers_replace_by_name_and_are_checked_all_or_nothing() {
        let mut req = request();
        req.set_response_headers(&pairs(&[("x-a", "1"), ("x-b", "1")]))
            .unwrap();
        req.set_response_headers(&pairs(&[("X-A", "2"), ("x-a", "3")]))
            .unwrap();
        assert_eq!(
            req.set_response_headers(&pairs(&[("x-c", "1"), ("bad name", "1")])),
            Err(EditError::InvalidName)
        );
        let mut resp = response();
        resp.head
            .headers
            .insert("x-b", HeaderValue::from_static("upstream"));
        req.apply_response_headers(&mut resp, LIMITS);
        let values = |name: &str| -> Vec<&str> {
            let all = resp.head.headers.get_all(name);
            all.iter().map(|v| v.to_str().unwrap()).collect()
        };
        assert_eq!(values("x-a"), ["2", "3"]);
        assert_eq!(values("x-b"), ["1"]);
        assert!(values("x-c").is_empty());
        assert!(req.response_headers.is_empty());
    }

    #[test]
    fn response_headers_past_the_limits_are_not_applied() {
        let mut req = request();
        let many: Vec<(String, String)> = (0..9).map(|i| (format!("x-{i}"), "v".into())).collect();
        req.set_response_headers(&many).unwrap();
        let mut resp = response();
        req.apply_response_headers(&mut resp, LIMITS);
        assert!(resp.head.headers.is_empty());
    }
}
