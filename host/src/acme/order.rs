//! One order for one name, RFC 8555 through instant-acme: create the
//! order, publish the challenge where every replica can answer it, tell
//! the CA to validate, then finalize with a fresh key and download the
//! chain. The challenge is withdrawn whatever the outcome.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, Order, OrderStatus,
    RetryPolicy,
};

use crate::config::AcmeChallenge;
use crate::server::tls::TlsState;

use super::challenge::alpn_certificate;
use super::store::{AcmeStore, CertRecord};

/// One order may take this long, validation and issuance included.
pub const ORDER_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a tls-alpn-01 challenge is published before the CA is told
/// to validate: gateways waiting on the lock load challenges from the store
/// every second (`manager.rs`), and the validation may reach any of them.
const ALPN_SPREAD: Duration = Duration::from_millis(1500);

/// How long to wait for the CA to validate, and then to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(75));

/// What an order needs.
pub struct Ordering<'a> {
    /// The fleet's account.
    pub account: &'a Account,
    /// Where challenges are published.
    pub store: &'a AcmeStore,
    /// Where this gateway serves tls-alpn-01 certificates.
    pub tls: &'a Arc<TlsState>,
    /// Which challenge to answer.
    pub challenge: AcmeChallenge,
}

impl Ordering<'_> {
    /// Order a certificate for `name`.
    pub async fn order(&self, name: &str) -> Result<CertRecord, String> {
        let identifiers = [Identifier::Dns(name.to_string())];
        let mut order = self
            .account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("new order refused: {e}"))?;
        let mut published = Vec::new();
        let outcome = self.complete(name, &mut order, &mut published).await;
        for key in &published {
            self.store.remove_challenge(key).await;
        }
        if self.challenge == AcmeChallenge::TlsAlpn01 {
            self.tls.set_challenge(name, None);
        }
        outcome
    }

    /// Answer the challenges, then finalize and download.
    async fn complete(
        &self,
        name: &str,
        order: &mut Order,
        published: &mut Vec<String>,
    ) -> Result<CertRecord, String> {
        let kind = match self.challenge {
            AcmeChallenge::Http01 => ChallengeType::Http01,
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|e| format!("authorization: {e}"))?;
            if authorization.status == AuthorizationStatus::Valid {
                continue;
            }
            let mut challenge = authorization
                .challenge(kind.clone())
                .ok_or_else(|| format!("the CA offers no {} challenge", self.challenge.as_str()))?;
            let key_authorization = challenge.key_authorization();
            let store_error = |e: crate::state::StoreError| format!("challenge not published: {e}");
            match self.challenge {
                AcmeChallenge::Http01 => {
                    let token = challenge.token.clone();
                    self.store
                        .put_http01(&token, key_authorization.as_str())
                        .await
                        .map_err(store_error)?;
                    published.push(format!("http01/{token}"));
                }
                AcmeChallenge::TlsAlpn01 => {
                    let digest = key_authorization.digest();
                    self.tls
                        .set_challenge(name, Some(alpn_certificate(name, digest.as_ref())?));
                    self.store
                        .put_alpn(name, digest.as_ref())
                        .await
                        .map_err(store_error)?;
                    published.push(format!("alpn/{name}"));
                    tokio::time::sleep(ALPN_SPREAD).await;
                }
            }
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("challenge not accepted: {e}"))?;
        }
        let status = order
            .poll_ready(&POLL)
            .await
            .map_err(|e| format!("validation: {e}"))?;
        if status != OrderStatus::Ready {
            return Err(why_invalid(order, status).await);
        }
        let key_pem = order
            .finalize()
            .await
            .map_err(|e| format!("finalize: {e}"))?;
        let chain_pem = order
            .poll_certificate(&POLL)
            .await
            .map_err(|e| format!("certificate download: {e}"))?;
        record(chain_pem, key_pem)
    }
}

/// The CA's reason for an order that did not become ready: the first
/// challenge error it reports.
async fn why_invalid(order: &mut Order, status: OrderStatus) -> String {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        if let Some(problem) = state.challenges.iter().find_map(|c| c.error.as_ref()) {
            return format!("validation failed: {problem}");
        }
    }
    format!("the order ended {status:?}")
}

/// The record of an issued chain: its leaf's dates and serial.
pub fn record(chain_pem: String, key_pem: String) -> Result<CertRecord, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .ok_or("the CA sent no certificate")?
        .map_err(|e| format!("the CA sent no PEM certificate: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("the CA sent an unreadable certificate: {e}"))?;
    let validity = cert.validity();
    let seconds = |t: i64| u64::try_from(t).unwrap_or(0);
    Ok(CertRecord {
        not_before: seconds(validity.not_before.timestamp()),
        not_after: seconds(validity.not_after.timestamp()),
        serial: hex::encode(cert.raw_serial()),
        chain_pem,
        key_pem,
    })
}
