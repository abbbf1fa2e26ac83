//! The two `on-request` actions of contract 0.3.0 whose effect outlives the
//! hook call: `wait` parks a request, holding no plugin instance, until a
//! `kv` key of the plugin's is gone; `respond-then-continue` answers the
//! client and carries a copy of the request on in the background. Both are
//! mechanism for a plugin's policy (a cache's request collapsing and
//! stale-while-revalidate), bounded here: waits by `limits.wait_max_ms`
//! and `limits.waits_per_request`, background requests by
//! `budgets.background_per_plugin`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::state::KvStore;

/// How often a parked request looks at its key when the store cannot say
/// when a key goes (Redis: another gateway may delete it): the first look
/// after 2 ms, doubling to this.
const POLL_MAX: Duration = Duration::from_millis(50);

/// Wait until `key` of namespace `ns` holds no value, or `timeout` passes.
/// Returns whether the key went (a store error counts as gone: the
/// request goes on rather than wait for a store that cannot answer).
pub async fn until_absent(kv: &dyn KvStore, ns: &str, key: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        // Registered before the look, so a deletion between the look and
        // the sleep still wakes us.
        let deleted = kv.deletions().map(|n| n.notified());
        match kv.get(ns, key).await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return true,
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let sleep = tokio::time::sleep(pause.min(deadline - now));
        match deleted {
            Some(deleted) => {
                tokio::select! {
                    () = deleted => {}
                    () = sleep => {}
                }
            }
            None => sleep.await,
        }
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// One plugin's requests running in the background, bounded.
#[derive(Debug, Default)]
pub struct Background {
    running: Arc<AtomicU32>,
}

/// A slot taken from [`Background`]; freed when dropped.
#[derive(Debug)]
pub struct BackgroundSlot {
    running: Arc<AtomicU32>,
}

impl Background {
    /// A slot, if fewer than `limit` are taken.
    pub fn try_take(&self, limit: u32) -> Option<BackgroundSlot> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| BackgroundSlot {
                running: self.running.clone(),
            })
    }

    /// How many are running.
    #[cfg(test)]
    pub fn running(&self) -> u32 {
        self.running.load(Ordering::Acquire)
    }
}

impl Drop for BackgroundSlot {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{KvQuota, MemoryKvStore};

    #[test]
    fn background_slots_are_bounded_and_freed() {
        let background = Background::default();
        let a = background.try_take(2).unwrap();
        let _b = background.try_take(2).unwrap();
        assert!(background.try_take(2).is_none());
        drop(a);
        assert_eq!(background.running(), 1);
        assert!(background.try_take(2).is_some());
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_key_goes_or_at_its_timeout() {
        let kv = Arc::new(MemoryKvStore::new());
        let quota = KvQuota {
            max_keys: 100,
            max_bytes: 1 << 20,
            max_value_bytes: 1 << 20,
        };
        assert!(until_absent(kv.as_ref(), "p", "lock", Duration::from_secs(5)).await);
        kv.set("p", "lock", b"1".to_vec(), None, quota)
            .await
            .unwrap();
        let started = std::time::Instant::now();
        assert!(!until_absent(kv.as_ref(), "p", "lock", Duration::from_millis(30)).await);
        assert!(started.elapsed() >= Duration::from_millis(30));
        let deleter = {
            let kv = kv.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                kv.delete("p", "lock").await.unwrap();
            })
        };
        let started = std::time::Instant::now();
        assert!(until_absent(kv.as_ref(), "p", "lock", Duration::from_secs(10)).await);
        // Woken by the deletion, not by a poll or the timeout.
        assert!(started.elapsed() < Duration::from_secs(1));
        deleter.await.unwrap();
    }
}
