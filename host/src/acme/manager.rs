//! The background task that keeps every `[tls.acme]` name certified.
//!
//! Each round it reads the store: certificates another gateway obtained
//! are served at once. A name is due without a certificate or past two
//! thirds of its certificate's lifetime, unless a failed order's back-off
//! (shared in the store) says not yet. For due names the gateway tries the
//! order lock; the holder orders them one by one and publishes the
//! results, the others poll every second (serving the tls-alpn-01
//! challenges the holder published for any name, due here or not) until
//! the certificates appear. A failed order
//! keeps the last good certificate serving and backs off, doubling from
//! `retry_min_ms` to `retry_max_ms`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::Account;

use crate::config::{AcmeChallenge, AcmeConfig};
use crate::server::tls::{ManagedCert, TlsState};

use super::client::{self, AcmeHttp};
use super::lock::OrderLock;
use super::order::Ordering;
use super::status::{NameState, Phase};
use super::store::{AcmeStore, CertRecord, FailureRecord, now_ms};

/// How often waiting gateways look while another one orders.
const WAITING_POLL: Duration = Duration::from_secs(1);

/// The task's state.
pub struct Manager {
    settings: AcmeConfig,
    store: AcmeStore,
    tls: Arc<TlsState>,
    http: AcmeHttp,
    lock: OrderLock,
    account: Option<Account>,
    names: BTreeMap<String, NameState>,
    /// tls-alpn-01 digests served for another gateway's orders.
    foreign_challenges: BTreeMap<String, Vec<u8>>,
}

impl Manager {
    /// A manager for `settings`, serving through `tls`.
    pub fn new(
        settings: AcmeConfig,
        store: AcmeStore,
        tls: Arc<TlsState>,
        http: AcmeHttp,
        owner: &str,
    ) -> Self {
        let names = settings
            .domains
            .iter()
            .map(|d| (d.to_ascii_lowercase(), NameState::default()))
            .collect();
        Manager {
            lock: OrderLock::new(store.clone(), owner),
            settings,
            store,
            tls,
            http,
            account: None,
            names,
            foreign_challenges: BTreeMap::new(),
        }
    }

    /// Keep the names certified, for ever.
    pub async fn run(mut self) {
        loop {
            let wait = self.round().await;
            self.publish();
            tokio::time::sleep(wait).await;
        }
    }

    /// One round; how long until the next.
    async fn round(&mut self) -> Duration {
        self.refresh().await;
        for state in self.names.values_mut() {
            state.phase = Phase::Idle;
        }
        let due = self.due();
        if due.is_empty() {
            return self.idle_round().await;
        }
        match self.lock.try_acquire().await {
            Ok(true) => {
                // Another gateway may have finished just before the lock
                // was free: read again, and order only what is still due.
                self.refresh().await;
                let due = self.due();
                self.order_all(&due).await;
                self.lock.release().await;
                self.until_next()
            }
            Ok(false) => {
                for name in &due {
                    self.state(name).phase = Phase::Waiting;
                }
                self.sync_foreign_challenges().await;
                WAITING_POLL
            }
            Err(e) => {
                tracing::warn!("ACME: the store cannot be reached, no order now: {e}");
                Duration::from_millis(self.settings.retry_min_ms.min(self.settings.poll_ms))
            }
        }
    }

    /// A round with nothing due here. With tls-alpn-01, another gateway
    /// may still be ordering one of the names (its clock, its back-off):
    /// while it holds the lock, serve its challenges and look every second.
    async fn idle_round(&mut self) -> Duration {
        if self.settings.challenge == AcmeChallenge::TlsAlpn01
            && matches!(self.lock.held_by_other().await, Ok(true))
        {
            self.sync_foreign_challenges().await;
            return WAITING_POLL;
        }
        self.clear_foreign_challenges();
        self.until_next()
    }

    fn state(&mut self, name: &str) -> &mut NameState {
        self.names.entry(name.to_string()).or_default()
    }

    /// Read every name's certificate and failure from the store; serve
    /// certificates that changed.
    async fn refresh(&mut self) {
        let mut changed = false;
        let names: Vec<String> = self.names.keys().cloned().collect();
        for name in names {
            let (cert, failure) = (
                self.store.cert(&name).await,
                self.store.failure(&name).await,
            );
            let state = self.state(&name);
            state.store_error = cert
                .as_ref()
                .err()
                .or(failure.as_ref().err())
                .map(|e| e.to_string());
            let cert = cert.ok().flatten().filter(|record| {
                let usable =
                    ManagedCert::from_pem(record.chain_pem.as_bytes(), record.key_pem.as_bytes());
                if let Err(e) = &usable {
                    tracing::warn!(name, "ACME: stored certificate unusable: {e}");
                }
                usable.is_ok()
            });
            changed |= state.observe(cert, failure.ok());
        }
        if changed {
            self.install();
        }
    }

    /// Serve every name's current certificate.
    fn install(&self) {
        let certs: Vec<ManagedCert> = self
            .names
            .values()
            .filter_map(|s| s.cert.as_ref())
            .filter_map(|r| {
                ManagedCert::from_pem(r.chain_pem.as_bytes(), r.key_pem.as_bytes()).ok()
            })
            .collect();
        if let Err(e) = self.tls.set_managed(certs) {
            tracing::error!("ACME certificates not served: {e}");
        }
    }

    /// The names to order now.
    fn due(&self) -> Vec<String> {
        let now = now_ms();
        self.names
            .iter()
            .filter(|(_, s)| s.due(now))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// How long until a name may need attention.
    fn until_next(&self) -> Duration {
        let now = now_ms();
        let poll = self.settings.poll_ms;
        let wait = self
            .names
            .values()
            .filter_map(|s| s.wake_at(now))
            .map(|at| at.saturating_sub(now))
            .fold(poll, u64::min);
        Duration::from_millis(wait.max(50))
    }

    /// Order each of `due`, holding the lock.
    async fn order_all(&mut self, due: &[String]) {
        for name in due {
            if !matches!(self.lock.extend().await, Ok(true)) {
                tracing::warn!("ACME: the order lock was lost; ordering stops for now");
                return;
            }
            self.state(name).phase = Phase::Ordering;
            self.state(name).orders += 1;
            self.publish();
            let outcome = match self.account().await {
                Ok(account) => {
                    let ordering = Ordering {
                        account: &account,
                        store: &self.store,
                        tls: &self.tls,
                        challenge: self.settings.challenge,
                    };
                    ordering.order(name).await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(record) => self.issued(name, record).await,
                Err(e) => {
                    if e.contains("accountDoesNotExist") {
                        self.forget_account().await;
                    }
                    self.failed(name, e).await;
                }
            }
        }
    }

    /// The fleet's account, loaded (or registered) once.
    async fn account(&mut self) -> Result<Account, String> {
        if let Some(account) = &self.account {
            return Ok(account.clone());
        }
        let account = client::account(&self.settings, &self.http, &self.store).await?;
        self.account = Some(account.clone());
        Ok(account)
    }

    /// The CA does not know the stored account (a CA that lost its
    /// data, a deactivated account): drop it, so the next attempt, after
    /// the back-off, registers a new one instead of failing for ever.
    async fn forget_account(&mut self) {
        tracing::warn!("ACME: the CA does not know the account; a new one will be registered");
        self.account = None;
        if let Err(e) = self.store.forget_account(&self.settings.directory).await {
            tracing::warn!("ACME: the old account stays in the store: {e}");
        }
    }

    async fn issued(&mut self, name: &str, record: CertRecord) {
        let renewal = self.state(name).cert.is_some();
        tracing::info!(
            name,
            serial = record.serial,
            not_after = record.not_after,
            "ACME certificate {}",
            if renewal { "renewed" } else { "issued" }
        );
        let published = self.store.put_cert(name, &record).await;
        let _ = self.store.clear_failure(name).await;
        let state = self.state(name);
        state.cert = Some(record);
        state.shared_failure = None;
        state.local_failure = None;
        state.phase = Phase::Idle;
        self.install();
        if let Err(e) = published {
            // Served here; the others order their own once the store is
            // back, which the back-off bounds.
            self.failed(name, format!("certificate not stored: {e}"))
                .await;
        }
    }

    async fn failed(&mut self, name: &str, error: String) {
        let (min, max) = (self.settings.retry_min_ms, self.settings.retry_max_ms);
        let state = self.state(name);
        let failures = state.failures() + 1;
        let backoff = min.saturating_mul(1u64 << (failures - 1).min(32)).min(max);
        let record = FailureRecord {
            error: error.clone(),
            failures,
            next_attempt_ms: now_ms().saturating_add(backoff),
        };
        tracing::warn!(
            name,
            failures,
            retry_in_ms = backoff,
            "ACME order failed; the current certificate (if any) keeps serving: {error}"
        );
        state.local_failure = Some(record.clone());
        state.phase = Phase::Idle;
        // `shared_failure` mirrors the store only, so that its clearing
        // tells that an order succeeded somewhere (`NameState::observe`).
        match self.store.put_failure(name, &record).await {
            Ok(()) => self.state(name).shared_failure = Some(record),
            Err(e) => tracing::warn!(name, "ACME failure not shared through the store: {e}"),
        }
    }

    /// Serve the tls-alpn-01 challenges another gateway published, for
    /// every configured name whether due here or not (the orderer judged
    /// it due), so a validation reaching this gateway succeeds too.
    async fn sync_foreign_challenges(&mut self) {
        if self.settings.challenge != AcmeChallenge::TlsAlpn01 {
            return;
        }
        let names: Vec<String> = self.names.keys().cloned().collect();
        for name in &names {
            let digest = self.store.alpn(name).await.ok().flatten();
            if self.foreign_challenges.get(name) == digest.as_ref() {
                continue;
            }
            match &digest {
                Some(digest) => match super::challenge::alpn_certificate(name, digest) {
                    Ok(cert) => self.tls.set_challenge(name, Some(cert)),
                    Err(e) => tracing::warn!(name, "{e}"),
                },
                None => self.tls.set_challenge(name, None),
            }
            match digest {
                Some(digest) => self.foreign_challenges.insert(name.clone(), digest),
                None => self.foreign_challenges.remove(name),
            };
        }
    }

    fn clear_foreign_challenges(&mut self) {
        for name in std::mem::take(&mut self.foreign_challenges).keys() {
            self.tls.set_challenge(name, None);
        }
    }

    /// Show the state in `GET /admin/tls`.
    fn publish(&self) {
        let names: Vec<serde_json::Value> = self
            .names
            .iter()
            .map(|(name, state)| state.to_json(name, now_ms()))
            .collect();
        self.tls.set_acme_status(serde_json::json!({
            "directory": self.settings.directory,
            "challenge": self.settings.challenge.as_str(),
            "account": self.account.as_ref().map(|a| a.id().to_string()),
            "names": names,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryKvStore;

    fn manager(kv: &Arc<MemoryKvStore>) -> Manager {
        let text = "listen = \"127.0.0.1:0\"\n[tls]\nlisten = \"127.0.0.1:1\"\n[tls.acme]\n\
                    directory = \"https://ca.example/dir\"\n\
                    domains = [\"a.example.com\", \"b.example.com\"]\n\
                    challenge = \"tls-alpn-01\"\n";
        let base = std::path::Path::new(".");
        let config = crate::config::Config::parse(text, &base.join("weir.toml"), base).unwrap();
        let tls_config = config.tls.clone().unwrap();
        let settings = tls_config.acme.clone().unwrap();
        let tls = TlsState::load(&config, &tls_config).unwrap();
        let http = AcmeHttp::new(&settings, base).unwrap();
        Manager::new(settings, AcmeStore::new(kv.clone()), tls, http, "here")
    }

    #[tokio::test]
    async fn acme_alpn_challenges_of_another_orderer_are_served_even_when_not_due_here() {
        let kv = Arc::new(MemoryKvStore::new());
        let mut here = manager(&kv);
        // Both names certified here, nothing due: this gateway would not order.
        let now = now_ms() / 1000;
        for state in here.names.values_mut() {
            state.cert = Some(CertRecord {
                chain_pem: String::new(),
                key_pem: String::new(),
                not_before: now,
                not_after: now + 90 * 86_400,
                serial: "01".into(),
            });
        }
        // Another gateway judges b due, holds the lock and publishes.
        let store = AcmeStore::new(kv.clone());
        let other = OrderLock::new(store.clone(), "there");
        assert!(other.try_acquire().await.unwrap());
        store.put_alpn("b.example.com", &[7; 32]).await.unwrap();
        assert_eq!(here.round().await, WAITING_POLL);
        assert!(here.tls.has_challenge("b.example.com"));
        assert!(!here.tls.has_challenge("a.example.com"));
        // Once the lock is given up, the challenge is withdrawn here too.
        other.release().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(here.round().await > WAITING_POLL);
        assert!(!here.tls.has_challenge("b.example.com"));
    }
}
