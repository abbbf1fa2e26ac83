//! What ACME keeps in the `[state]` store, and where: every gateway on one
//! store reads and writes the same records, so a fleet shares one account,
//! one certificate per name, one order lock, the challenges being answered
//! and the back-off after a failed order.
//!
//! Keys, in the namespace [`NS`] (no plugin can be named so):
//! - `account/<directory>`: the account's credentials (its private key).
//! - `cert/<name>`: the certificate chain and its key (PEM), and its dates.
//! - `failure/<name>`: the last failed order: cause, count, next attempt.
//! - `lock`: who is ordering, with an expiry (`lock.rs`).
//! - `http01/<token>`: an http-01 key authorization, any replica answers.
//! - `alpn/<name>`: a tls-alpn-01 digest, any replica serves it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::state::{KvQuota, KvStore, StoreError};

/// The store namespace of ACME's records.
pub const NS: &str = "weir:acme";

/// How long a published challenge stays: longer than any validation.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(600);

/// A certificate obtained for one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// The chain, leaf first (PEM).
    pub chain_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
    /// The leaf's validity, in seconds since the epoch.
    pub not_before: u64,
    /// The leaf's expiry, in seconds since the epoch.
    pub not_after: u64,
    /// The leaf's serial number (hex), to tell certificates apart.
    pub serial: String,
}

impl CertRecord {
    /// When to renew: at two thirds of the lifetime.
    pub fn renew_at(&self) -> u64 {
        let lifetime = self.not_after.saturating_sub(self.not_before);
        self.not_before + lifetime * 2 / 3
    }
}

/// The last failed order for a name, shared so no replica retries sooner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// Why it failed.
    pub error: String,
    /// Failed orders in a row.
    pub failures: u32,
    /// No new order before this (milliseconds since the epoch).
    pub next_attempt_ms: u64,
}

/// The typed view of ACME's records in a store.
#[derive(Clone)]
pub struct AcmeStore {
    kv: Arc<dyn KvStore>,
    /// Certificates and failures are kept per directory (`<hash>/`), so
    /// moving from a staging directory to production orders anew instead
    /// of serving the staging certificate until its renewal.
    scope: String,
}

/// A short, stable name for an ACME directory URL (for keys and paths).
pub fn directory_hash(directory: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(directory.as_bytes());
    hex::encode(digest.get(..8).unwrap_or_default())
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl AcmeStore {
    /// ACME's records in `kv`.
    pub fn new(kv: Arc<dyn KvStore>) -> Self {
        AcmeStore {
            kv,
            scope: String::new(),
        }
    }

    /// Keep certificates and failures apart for each `directory`.
    pub fn for_directory(mut self, directory: &str) -> Self {
        self.scope = format!("{}/", directory_hash(directory));
        self
    }

    /// The raw store (for the lock).
    pub fn kv(&self) -> &Arc<dyn KvStore> {
        &self.kv
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self.kv.get(NS, key).await? else {
            return Ok(None);
        };
        // A record this version cannot read counts as absent (and is
        // written anew), rather than stopping the gateway.
        Ok(serde_json::from_slice(&bytes).ok())
    }

    async fn put_json<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec(value).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.kv.set(NS, key, bytes, ttl, KvQuota::UNLIMITED).await
    }

    /// The account's credentials for `directory`.
    pub async fn account(
        &self,
        directory: &str,
    ) -> Result<Option<instant_acme::AccountCredentials>, StoreError> {
        self.get_json(&format!("account/{directory}")).await
    }

    /// Keep the account's credentials.
    pub async fn put_account(
        &self,
        directory: &str,
        credentials: &instant_acme::AccountCredentials,
    ) -> Result<(), StoreError> {
        self.put_json(&format!("account/{directory}"), credentials, None)
            .await
    }

    /// Forget the account (the CA no longer knows it): the next order
    /// registers a new one.
    pub async fn forget_account(&self, directory: &str) -> Result<(), StoreError> {
        self.kv.delete(NS, &format!("account/{directory}")).await?;
        Ok(())
    }

    /// The certificate for `name`.
    pub async fn cert(&self, name: &str) -> Result<Option<CertRecord>, StoreError> {
        self.get_json(&format!("cert/{}{name}", self.scope)).await
    }

    /// Publish the certificate for `name`.
    pub async fn put_cert(&self, name: &str, record: &CertRecord) -> Result<(), StoreError> {
        self.put_json(&format!("cert/{}{name}", self.scope), record, None)
            .await
    }

    /// The last failure for `name`.
    pub async fn failure(&self, name: &str) -> Result<Option<FailureRecord>, StoreError> {
        self.get_json(&format!("failure/{}{name}", self.scope))
            .await
    }

    /// Record a failure for `name`.
    pub async fn put_failure(&self, name: &str, record: &FailureRecord) -> Result<(), StoreError> {
        self.put_json(&format!("failure/{}{name}", self.scope), record, None)
            .await
    }

    /// Forget the failures of `name` (it has a certificate now).
    pub async fn clear_failure(&self, name: &str) -> Result<(), StoreError> {
        self.kv
            .delete(NS, &format!("failure/{}{name}", self.scope))
            .await?;
        Ok(())
    }

    /// Publish an http-01 key authorization.
    pub async fn put_http01(&self, token: &str, key_authorization: &str) -> Result<(), StoreError> {
        self.kv
            .set(
                NS,
                &format!("http01/{token}"),
                key_authorization.as_bytes().to_vec(),
                Some(CHALLENGE_TTL),
                KvQuota::UNLIMITED,
            )
            .await
    }

    /// The key authorization for an http-01 token.
    pub async fn http01(&self, token: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.get(NS, &format!("http01/{token}")).await
    }

    /// Publish a tls-alpn-01 digest (SHA-256 of the key authorization).
    pub async fn put_alpn(&self, name: &str, digest: &[u8]) -> Result<(), StoreError> {
        self.kv
            .set(
                NS,
                &format!("alpn/{name}"),
                digest.to_vec(),
                Some(CHALLENGE_TTL),
                KvQuota::UNLIMITED,
            )
            .await
    }

    /// The tls-alpn-01 digest being validated for `name`.
    pub async fn alpn(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.get(NS, &format!("alpn/{name}")).await
    }

    /// Withdraw a challenge once its order is over.
    pub async fn remove_challenge(&self, key: &str) {
        let _ = self.kv.delete(NS, key).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryKvStore;

    #[tokio::test]
    async fn certificates_are_kept_per_directory() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKvStore::new());
        let staging = AcmeStore::new(kv.clone()).for_directory("https://staging.example/dir");
        let production = AcmeStore::new(kv).for_directory("https://acme.example/dir");
        let record = CertRecord {
            chain_pem: "chain".into(),
            key_pem: "key".into(),
            not_before: 1,
            not_after: 2,
            serial: "01".into(),
        };
        staging.put_cert("a.example", &record).await.unwrap();
        assert!(staging.cert("a.example").await.unwrap().is_some());
        assert!(production.cert("a.example").await.unwrap().is_none());
    }
}
