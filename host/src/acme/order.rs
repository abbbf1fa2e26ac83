//! One order for one name, RFC 8555 through instant-acme: create the
//! order, publish the challenge where every replica can answer it, tell
//! the CA to validate, then finalize with a fresh key and download the
//! chain. The challenge is withdrawn whatever the outcome.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeHandle, ChallengeType, Identifier, NewOrder, Order,
    OrderStatus, RetryPolicy,
};

use crate::config::AcmeChallenge;
use crate::server::tls::TlsState;

use super::challenge::alpn_certificate;
use super::client::REQUEST_TIMEOUT;
use super::store::{AcmeStore, CertRecord};

/// One order may take this long, validation and issuance included; the
/// polls below end in time for it ([`Budget`]).
pub const ORDER_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a tls-alpn-01 challenge is published before the CA is told
/// to validate: gateways waiting on the lock load challenges from the store
/// every second (`manager.rs`), and the validation may reach any of them.
const ALPN_SPREAD: Duration = Duration::from_millis(1500);

/// The longest wait for the CA to validate.
const READY_POLL: Duration = Duration::from_secs(75);

/// What is left for finalizing and downloading when waiting for validation
/// stops: a finalize request, some polling, and a request in flight.
const CERT_RESERVE: Duration = Duration::from_secs(90);

/// What certificate polling leaves of the order's time: a poll stops only
/// between requests, so one may still be in flight at its deadline.
const LAST_REQUEST: Duration = REQUEST_TIMEOUT.saturating_add(Duration::from_secs(5));

/// The polls' share of one order's [`ORDER_TIMEOUT`]: if the CA issues, the
/// certificate is downloaded before the timeout would abandon it.
struct Budget {
    deadline: Instant,
}

impl Budget {
    fn start() -> Budget {
        Budget {
            deadline: Instant::now() + ORDER_TIMEOUT,
        }
    }

    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn policy(timeout: Duration) -> RetryPolicy {
        RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(timeout)
    }

    /// How long to wait for validation, keeping [`CERT_RESERVE`].
    fn ready_timeout(&self) -> Duration {
        READY_POLL.min(self.left().saturating_sub(CERT_RESERVE))
    }

    /// How long to wait for issuance, keeping [`LAST_REQUEST`].
    fn certificate_timeout(&self) -> Duration {
        self.left().saturating_sub(LAST_REQUEST)
    }
}

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
    /// Order a certificate for `name`, within [`ORDER_TIMEOUT`]. The
    /// challenges are withdrawn after the timeout too: it drops the order
    /// but not the clean-up.
    pub async fn order(&self, name: &str) -> Result<CertRecord, String> {
        let mut published = Vec::new();
        let outcome = tokio::time::timeout(ORDER_TIMEOUT, self.attempt(name, &mut published))
            .await
            .unwrap_or_else(|_| Err("the order timed out".into()));
        for key in &published {
            self.store.remove_challenge(key).await;
        }
        if self.challenge == AcmeChallenge::TlsAlpn01 {
            self.tls.set_challenge(name, None);
        }
        outcome
    }

    /// Create the order, answer its challenges (their keys added to
    /// `published`), then finalize and download.
    async fn attempt(&self, name: &str, published: &mut Vec<String>) -> Result<CertRecord, String> {
        let budget = Budget::start();
        let identifiers = [Identifier::Dns(name.to_string())];
        let mut order = self
            .account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("new order refused: {e}"))?;
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|e| format!("authorization: {e}"))?;
            if authorization.status == AuthorizationStatus::Valid {
                continue;
            }
            let mut challenge = authorization
                .challenge(self.challenge_type())
                .ok_or_else(|| format!("the CA offers no {} challenge", self.challenge.as_str()))?;
            self.publish(name, &challenge, published).await?;
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("challenge not accepted: {e}"))?;
        }
        let status = order
            .poll_ready(&Budget::policy(budget.ready_timeout()))
            .await
            .map_err(|e| format!("validation: {e}"))?;
        if status != OrderStatus::Ready {
            return Err(why_invalid(&mut order, status).await);
        }
        let key_pem = order
            .finalize()
            .await
            .map_err(|e| format!("finalize: {e}"))?;
        let chain_pem = order
            .poll_certificate(&Budget::policy(budget.certificate_timeout()))
            .await
            .map_err(|e| format!("certificate download: {e}"))?;
        record(chain_pem, key_pem)
    }

    fn challenge_type(&self) -> ChallengeType {
        match self.challenge {
            AcmeChallenge::Http01 => ChallengeType::Http01,
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        }
    }

    /// Publish the answer to `challenge` where every gateway serves it. The
    /// key joins `published` before the write, so a write cut short by the
    /// timeout is withdrawn too.
    async fn publish(
        &self,
        name: &str,
        challenge: &ChallengeHandle<'_>,
        published: &mut Vec<String>,
    ) -> Result<(), String> {
        let key_authorization = challenge.key_authorization();
        let store_error = |e: crate::state::StoreError| format!("challenge not published: {e}");
        match self.challenge {
            AcmeChallenge::Http01 => {
                let token = challenge.token.clone();
                published.push(format!("http01/{token}"));
                self.store
                    .put_http01(&token, key_authorization.as_str())
                    .await
                    .map_err(store_error)?;
            }
            AcmeChallenge::TlsAlpn01 => {
                let digest = key_authorization.digest();
                self.tls
                    .set_challenge(name, Some(alpn_certificate(name, digest.as_ref())?));
                published.push(format!("alpn/{name}"));
                self.store
                    .put_alpn(name, digest.as_ref())
                    .await
                    .map_err(store_error)?;
                tokio::time::sleep(ALPN_SPREAD).await;
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn acme_poll_budgets_fit_in_the_order_timeout() {
        let budget = Budget::start();
        // Validation polled in full, one request overrunning it, then a
        // finalize request: certificate polling still has time left.
        assert_eq!(budget.ready_timeout(), READY_POLL);
        tokio::time::advance(READY_POLL + REQUEST_TIMEOUT * 2).await;
        let certificate = budget.certificate_timeout();
        assert!(certificate >= Duration::from_secs(10), "{certificate:?}");
        // Its last request ends before the order times out.
        assert!(budget.left() >= certificate + REQUEST_TIMEOUT);
        // Late in the order, validation gets no more than is left for it.
        tokio::time::advance(ORDER_TIMEOUT).await;
        assert_eq!(budget.ready_timeout(), Duration::ZERO);
        assert_eq!(budget.certificate_timeout(), Duration::ZERO);
    }
}
