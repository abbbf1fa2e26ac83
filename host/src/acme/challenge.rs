//! Answering the CA's validation. Both challenges are answered from the
//! store, so whichever replica a load balancer sends the validation to
//! knows the answer, not just the one that ordered:
//! - http-01: the plain listener answers
//!   `GET /.well-known/acme-challenge/<token>` for one of `domains` with
//!   the key authorization, before plugins and before `redirect_http`.
//!   Other hosts' challenge paths go through the pipeline like any request:
//!   a backend may run its own ACME for a name Weir does not certify.
//! - tls-alpn-01 (RFC 8737): the TLS listener serves, only to a client
//!   offering ALPN `acme-tls/1`, a self-signed certificate for the name
//!   with the critical acmeIdentifier extension holding the SHA-256 of the
//!   key authorization; then closes the connection (no HTTP).

use std::collections::HashSet;
use std::sync::Arc;

use http::{Response, StatusCode};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::CertifiedKey;

use crate::http::body::{self, Body};

use super::store::AcmeStore;

/// Where the CA fetches http-01 tokens.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// The http-01 responder of the plain listener.
#[derive(Clone)]
pub struct Http01 {
    store: AcmeStore,
    /// The names ordered (lower-case): only their validations are ours.
    domains: Arc<HashSet<String>>,
}

impl Http01 {
    /// Answer tokens found in `store`, for requests to one of `domains`.
    pub fn new(store: AcmeStore, domains: &[String]) -> Self {
        Http01 {
            store,
            domains: Arc::new(domains.iter().map(|d| d.to_ascii_lowercase()).collect()),
        }
    }

    /// Whether `request` is this responder's to answer: a challenge path
    /// on one of the names ordered (the host of the URI or of `Host`,
    /// without port).
    pub fn claims<B>(&self, request: &http::Request<B>) -> bool {
        if !request.uri().path().starts_with(HTTP01_PREFIX) {
            return false;
        }
        let host = match request.uri().authority() {
            Some(authority) => Some(authority.host().to_string()),
            None => request
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
                .map(|a| a.host().to_string()),
        };
        host.is_some_and(|h| {
            let h = h.trim_end_matches('.').to_ascii_lowercase();
            self.domains.contains(&h)
        })
    }

    /// The answer for a request to `path` (under [`HTTP01_PREFIX`]): the
    /// key authorization, 404 for an unknown token, 503 when the store
    /// cannot be read (the CA retries or fails the order, which backs off).
    pub async fn answer(&self, path: &str) -> Response<Body> {
        let token = path.strip_prefix(HTTP01_PREFIX).unwrap_or_default();
        let valid = !token.is_empty()
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let found = match valid {
            true => self.store.http01(token).await,
            false => Ok(None),
        };
        let (status, text) = match found {
            Ok(Some(key_authorization)) => (StatusCode::OK, key_authorization),
            Ok(None) => (
                StatusCode::NOT_FOUND,
                b"unknown ACME challenge token\n".to_vec(),
            ),
            Err(e) => {
                tracing::warn!("ACME http-01 token not answered: {e}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    b"store unavailable\n".to_vec(),
                )
            }
        };
        let mut response = Response::new(body::full(text));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        response
    }
}

/// The tls-alpn-01 certificate for `name`: self-signed, `name` its only
/// DNS name, and the critical acmeIdentifier extension over `digest`.
pub fn alpn_certificate(name: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])
        .map_err(|e| format!("tls-alpn-01 certificate for {name}: {e}"))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| format!("tls-alpn-01 key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("tls-alpn-01 certificate for {name}: {e}"))?;
    let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| format!("tls-alpn-01 key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryKvStore;

    #[tokio::test]
    async fn acme_http01_answers_published_tokens_only() {
        let store = AcmeStore::new(Arc::new(MemoryKvStore::new()));
        store.put_http01("tok-1", "tok-1.thumb").await.unwrap();
        let responder = Http01::new(store, &["a.example.com".to_string()]);
        let found = responder.answer("/.well-known/acme-challenge/tok-1").await;
        assert_eq!(found.status(), 200);
        let unknown = responder.answer("/.well-known/acme-challenge/nope").await;
        assert_eq!(unknown.status(), 404);
        let odd = responder.answer("/.well-known/acme-challenge/../x").await;
        assert_eq!(odd.status(), 404);
    }

    #[test]
    fn acme_http01_claims_only_its_own_names() {
        let store = AcmeStore::new(Arc::new(MemoryKvStore::new()));
        let responder = Http01::new(store, &["A.example.com".to_string()]);
        let request = |uri: &str, host: Option<&str>| {
            let mut builder = http::Request::get(uri);
            if let Some(host) = host {
                builder = builder.header("host", host);
            }
            builder.body(()).unwrap()
        };
        let path = "/.well-known/acme-challenge/tok";
        assert!(responder.claims(&request(path, Some("a.example.com"))));
        assert!(responder.claims(&request(path, Some("A.Example.com:80"))));
        assert!(responder.claims(&request(
            "http://a.example.com:8080/.well-known/acme-challenge/tok",
            None
        )));
        assert!(!responder.claims(&request(path, Some("b.example.com"))));
        assert!(!responder.claims(&request(path, None)));
        assert!(!responder.claims(&request("/other", Some("a.example.com"))));
    }

    #[test]
    fn acme_alpn_certificate_names_one_host() {
        let cert = alpn_certificate("a.example.com", &[7; 32]).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.cert[0].as_ref()).unwrap();
        let ext = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .unwrap();
        assert!(ext.critical);
    }
}
