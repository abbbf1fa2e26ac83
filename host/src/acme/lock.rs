//! The order lock: one entry in the store, written only if absent, so one
//! gateway of a fleet orders while the others wait and then pick the
//! certificate up. It expires on its own, so a gateway that dies while
//! ordering holds up the others for at most [`LOCK_TTL`].

use std::time::Duration;

use crate::state::{Expect, KvQuota, StoreError};

use super::store::{AcmeStore, NS};

/// How long a lock lives unless extended: longer than one order takes
/// ([`super::order::ORDER_TIMEOUT`]), extended before each name.
pub const LOCK_TTL: Duration = Duration::from_secs(300);

/// The key of the lock.
const KEY: &str = "lock";

/// This gateway's claim on the lock.
pub struct OrderLock {
    store: AcmeStore,
    /// What the entry holds while this gateway owns it: unique per process.
    owner: Vec<u8>,
}

impl OrderLock {
    /// A claim under `owner` (unique to this gateway process).
    pub fn new(store: AcmeStore, owner: &str) -> Self {
        OrderLock {
            store,
            owner: owner.as_bytes().to_vec(),
        }
    }

    /// Take the lock if nobody holds it; whether this gateway holds it now.
    pub async fn try_acquire(&self) -> Result<bool, StoreError> {
        self.store
            .kv()
            .set_if(
                NS,
                KEY,
                Expect::Absent,
                self.owner.clone(),
                Some(LOCK_TTL),
                KvQuota::UNLIMITED,
            )
            .await
    }

    /// Extend the lock this gateway holds; `false` if it lost it.
    pub async fn extend(&self) -> Result<bool, StoreError> {
        self.rewrite(LOCK_TTL).await
    }

    /// Give the lock up (only if still this gateway's). Expiring it at once
    /// through a conditional write keeps the check and the removal atomic.
    pub async fn release(&self) {
        if let Err(e) = self.rewrite(Duration::from_millis(1)).await {
            tracing::warn!("ACME order lock not released (it expires on its own): {e}");
        }
    }

    async fn rewrite(&self, ttl: Duration) -> Result<bool, StoreError> {
        self.store
            .kv()
            .set_if(
                NS,
                KEY,
                Expect::Value(&self.owner),
                self.owner.clone(),
                Some(ttl),
                KvQuota::UNLIMITED,
            )
            .await
    }

    /// Whether another gateway holds the lock.
    pub async fn held_by_other(&self) -> Result<bool, StoreError> {
        let holder = self.store.kv().get(NS, KEY).await?;
        Ok(holder.is_some_and(|h| h != self.owner))
    }

    /// Whether anyone holds the lock.
    #[cfg(test)]
    pub async fn held(&self) -> Result<bool, StoreError> {
        Ok(self.store.kv().get(NS, KEY).await?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::state::MemoryKvStore;

    #[tokio::test]
    async fn acme_lock_has_one_owner_at_a_time() {
        let store = AcmeStore::new(Arc::new(MemoryKvStore::new()));
        let (a, b) = (
            OrderLock::new(store.clone(), "a"),
            OrderLock::new(store.clone(), "b"),
        );
        assert!(a.try_acquire().await.unwrap());
        assert!(!b.try_acquire().await.unwrap());
        assert!(!b.extend().await.unwrap());
        assert!(a.extend().await.unwrap());
        b.release().await;
        assert!(a.held().await.unwrap());
        assert!(b.held_by_other().await.unwrap());
        assert!(!a.held_by_other().await.unwrap());
        a.release().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!a.held().await.unwrap());
        assert!(b.try_acquire().await.unwrap());
    }
}
