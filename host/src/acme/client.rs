//! The ACME client's side of the network: instant-acme speaks the protocol
//! over Weir's own hyper client (rustls on the gateway's ring provider,
//! the system's roots plus `tls.acme.ca_file`), and the account comes from
//! the store when a gateway of the fleet already registered one.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use instant_acme::{Account, BodyWrapper, BytesResponse, NewAccount};

use crate::config::AcmeConfig;
use crate::server::tls::provider;

use super::store::AcmeStore;

/// One request to the CA may take this long.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP client instant-acme sends its requests through.
#[derive(Clone)]
pub struct AcmeHttp {
    client: Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
}

impl AcmeHttp {
    /// A client trusting the system's roots and `ca_file` (relative to
    /// `base`).
    pub fn new(settings: &AcmeConfig, base: &Path) -> Result<Self, String> {
        let ca = settings.ca_file.as_ref().map(|ca| base.join(ca));
        let roots = crate::upstream::tls::trust(true, ca.as_deref())?;
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("ACME client TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(AcmeHttp { client })
    }
}

impl instant_acme::HttpClient for AcmeHttp {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let sent = self.client.request(request);
        Box::pin(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, sent).await {
                Ok(Ok(response)) => Ok(BytesResponse::from(response)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(Box::new(e))),
                Err(_) => Err(instant_acme::Error::Str("the CA did not answer in time")),
            }
        })
    }
}

/// The fleet's account at the CA: restored from the store, or registered
/// and stored (by the lock holder only, so a fleet registers once).
pub async fn account(
    settings: &AcmeConfig,
    http: &AcmeHttp,
    store: &AcmeStore,
) -> Result<Account, String> {
    let builder = || Account::builder_with_http(Box::new(http.clone()));
    let stored = store
        .account(&settings.directory)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(credentials) = stored {
        return builder()
            .from_credentials(credentials)
            .await
            .map_err(|e| format!("the stored ACME account cannot be used: {e}"));
    }
    let contact: Vec<String> = settings.contact.iter().map(|c| contact_uri(c)).collect();
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: settings.terms_of_service_agreed,
        only_return_existing: false,
    };
    let (account, credentials) = builder()
        .create(&new, settings.directory.clone(), None)
        .await
        .map_err(|e| format!("ACME account registration failed: {e}"))?;
    store
        .put_account(&settings.directory, &credentials)
        .await
        .map_err(|e| format!("the new ACME account cannot be stored: {e}"))?;
    tracing::info!(account = account.id(), "ACME account registered");
    Ok(account)
}

/// A contact as a URI: bare addresses become `mailto:`.
fn contact_uri(contact: &str) -> String {
    if contact.contains(':') {
        contact.to_string()
    } else {
        format!("mailto:{contact}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acme_contacts_become_mailto_uris() {
        assert_eq!(contact_uri("ops@example.com"), "mailto:ops@example.com");
        assert_eq!(contact_uri("mailto:a@b.c"), "mailto:a@b.c");
    }
}
