//! The in-memory `kv` store: entries in a sharded map, each namespace's
//! keys and bytes counted as they come and go, so a quota check costs one
//! lookup. Expired entries count until they are swept (as the map grows,
//! or when a write would otherwise be refused), so a plugin writing with
//! TTLs is never refused for entries that are already dead. A refused write
//! sweeps only if the namespace holds entries with a TTL, and at most once
//! per [`SWEEP_INTERVAL`], so a flood of refused writes costs no more than
//! the refusals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::memory::{Sharded, lock};
use super::{Expect, KvQuota, KvStore, KvUsage, StoreError, entry_bytes, glob_match};

/// Least time between sweeps triggered by refused writes.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

struct KvEntry {
    ns: Arc<str>,
    /// The key within its namespace.
    key_len: usize,
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl KvEntry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }

    fn bytes(&self) -> u64 {
        (self.key_len + self.value.len()) as u64
    }
}

/// Key-value state in process memory.
pub struct MemoryKvStore {
    /// `NS/KEY` → entry.
    entries: Sharded<KvEntry, String>,
    /// Namespace → what it holds.
    usage: Mutex<HashMap<Arc<str>, Usage>>,
    /// When a refused write last swept.
    last_sweep: Mutex<Option<Instant>>,
    /// Woken whenever keys are deleted, for requests parked until a key
    /// goes (`wait`).
    deleted: tokio::sync::Notify,
}

/// What a namespace holds, and how much of it can expire.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    held: KvUsage,
    /// Entries with a TTL (only these can be swept).
    expiring: u64,
}

impl Default for MemoryKvStore {
    fn default() -> Self {
        MemoryKvStore {
            entries: Sharded::new(),
            usage: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(None),
            deleted: tokio::sync::Notify::new(),
        }
    }
}

/// `NS/KEY`: a namespace is a file stem, which cannot hold `/`, so no two
/// namespaces' keys can meet.
fn full_key(ns: &str, key: &str) -> String {
    format!("{ns}/{key}")
}

impl MemoryKvStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn forget(&self, entry: &KvEntry) {
        let mut usage = lock(&self.usage);
        if let Some(u) = usage.get_mut(&entry.ns) {
            u.held.keys = u.held.keys.saturating_sub(1);
            u.held.bytes = u.held.bytes.saturating_sub(entry.bytes());
            if entry.expires.is_some() {
                u.expiring = u.expiring.saturating_sub(1);
            }
            if u.held.keys == 0 {
                usage.remove(&entry.ns);
            }
        }
    }

    /// Whether a refused write in `ns` should sweep now: only if the
    /// namespace has entries that can expire, and not too often.
    fn may_sweep(&self, ns: &str, now: Instant) -> bool {
        let expiring = lock(&self.usage).get(ns).is_some_and(|u| u.expiring > 0);
        if !expiring {
            return false;
        }
        let mut last = lock(&self.last_sweep);
        if last.is_some_and(|at| now.duration_since(at) < SWEEP_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Drop every expired entry of every namespace.
    fn sweep(&self, now: Instant) {
        for shard in &self.entries.shards {
            let mut shard = lock(shard);
            shard.map.retain(|_, entry| {
                let live = entry.live(now);
                if !live {
                    self.forget(entry);
                }
                live
            });
        }
    }

    /// A write, conditional when `expect` is given (see [`KvStore::set_if`]).
    fn write(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        quota: KvQuota,
        expect: Option<Expect<'_>>,
    ) -> Result<bool, StoreError> {
        quota.check_value(value.len())?;
        let now = Instant::now();
        let ns: Arc<str> = Arc::from(ns);
        let full = full_key(&ns, key);
        let entry = KvEntry {
            ns: ns.clone(),
            key_len: key.len(),
            value,
            expires: ttl.map(|ttl| now + ttl),
        };
        debug_assert_eq!(entry.bytes(), entry_bytes(key, entry.value.len()));
        match self.try_insert(&full, entry, quota, now, expect) {
            Ok(written) => Ok(written),
            Err((_, entry)) if self.may_sweep(&ns, now) => {
                // Dead entries may be holding the quota: sweep, then retry once.
                self.sweep(now);
                self.try_insert(&full, entry, quota, now, expect)
                    .map_err(|(e, _)| e)
            }
            Err((e, _)) => Err(e),
        }
    }

    /// Insert if the namespace stays within `quota`; the old entry under
    /// the key, if any, is replaced and its share given back.
    /// On refusal the entry comes back, so a retry need not copy it.
    /// With `expect`, nothing is written (`Ok(false)`) unless the live
    /// entry is what it says, checked under the same lock as the write.
    fn try_insert(
        &self,
        full: &str,
        entry: KvEntry,
        quota: KvQuota,
        now: Instant,
        expect: Option<Expect<'_>>,
    ) -> Result<bool, (StoreError, KvEntry)> {
        self.entries.with(full, |shard| {
            if let Some(expect) = expect {
                let live = shard
                    .map
                    .get(full)
                    .filter(|e| e.live(now))
                    .map(|e| e.value.as_slice());
                let matches = match expect {
                    Expect::Absent => live.is_none(),
                    Expect::Value(bytes) => live == Some(bytes),
                };
                if !matches {
                    return Ok(false);
                }
            }
            let old = shard
                .map
                .get(full)
                .map(|e| (e.bytes(), e.expires.is_some()));
            {
                let mut usage = lock(&self.usage);
                let current = usage.get(&entry.ns).copied().unwrap_or_default();
                let (old_bytes, old_expiring) = old.unwrap_or((0, false));
                let keys = current.held.keys + u64::from(old.is_none());
                let bytes = current.held.bytes - old_bytes.min(current.held.bytes) + entry.bytes();
                if let Err(e) = quota.check_usage(keys, bytes) {
                    return Err((e, entry));
                }
                let expiring = current.expiring - u64::from(old_expiring).min(current.expiring)
                    + u64::from(entry.expires.is_some());
                usage.insert(
                    entry.ns.clone(),
                    Usage {
                        held: KvUsage { keys, bytes },
                        expiring,
                    },
                );
            }
            if shard.map.insert(full.to_string(), entry).is_none() {
                shard.note_insert(|e| !e.live(now), |e| self.forget(e));
            }
            Ok(true)
        })
    }
}

#[async_trait::async_trait]
impl KvStore for MemoryKvStore {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        let full = full_key(ns, key);
        Ok(self
            .entries
            .with(&full, |shard| match shard.map.get(&full) {
                Some(entry) if entry.live(now) => Some(entry.value.clone()),
                Some(_) => {
                    if let Some(dead) = shard.map.remove(&full) {
                        self.forget(&dead);
                    }
                    None
                }
                None => None,
            }))
    }

    async fn set(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        quota: KvQuota,
    ) -> Result<(), StoreError> {
        self.write(ns, key, value, ttl, quota, None).map(|_| ())
    }

    async fn set_if(
        &self,
        ns: &str,
        key: &str,
        expect: Expect<'_>,
        value: Vec<u8>,
        ttl: Option<Duration>,
        quota: KvQuota,
    ) -> Result<bool, StoreError> {
        self.write(ns, key, value, ttl, quota, Some(expect))
    }

    async fn delete(&self, ns: &str, key: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        let full = full_key(ns, key);
        let removed = self.entries.with(&full, |shard| shard.map.remove(&full));
        Ok(match removed {
            Some(entry) => {
                self.forget(&entry);
                self.deleted.notify_waiters();
                entry.live(now)
            }
            None => false,
        })
    }

    async fn purge(&self, ns: &str, pattern: &str) -> Result<u64, StoreError> {
        let prefix = full_key(ns, "");
        let mut removed = 0;
        for shard in &self.entries.shards {
            let mut shard = lock(shard);
            shard.map.retain(|full, entry| {
                let matches = full
                    .strip_prefix(&prefix)
                    .is_some_and(|key| &*entry.ns == ns && glob_match(pattern, key));
                if matches {
                    self.forget(entry);
                    removed += 1;
                }
                !matches
            });
        }
        if removed > 0 {
            self.deleted.notify_waiters();
        }
        Ok(removed)
    }

    fn deletions(&self) -> Option<&tokio::sync::Notify> {
        Some(&self.deleted)
    }

    async fn usage(&self, ns: &str) -> Result<KvUsage, StoreError> {
        Ok(lock(&self.usage)
            .get(ns)
            .map(|u| u.held)
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_QUOTA: KvQuota = KvQuota::UNLIMITED;

    #[tokio::test(start_paused = true)]
    async fn kv_expires() {
        let kv = MemoryKvStore::new();
        kv.set(
            "p",
            "a",
            b"1".to_vec(),
            Some(Duration::from_secs(1)),
            NO_QUOTA,
        )
        .await
        .unwrap();
        kv.set("p", "b", b"2".to_vec(), None, NO_QUOTA)
            .await
            .unwrap();
        assert_eq!(kv.get("p", "a").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(
            kv.get("q", "a").await.unwrap(),
            None,
            "namespaces are apart"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(kv.get("p", "a").await.unwrap(), None);
        assert_eq!(kv.get("p", "b").await.unwrap(), Some(b"2".to_vec()));
        assert!(kv.delete("p", "b").await.unwrap());
        assert!(!kv.delete("p", "b").await.unwrap());
        assert_eq!(kv.usage("p").await.unwrap(), KvUsage::default());
    }

    #[tokio::test]
    async fn quotas_refuse_and_count_exactly() {
        let kv = MemoryKvStore::new();
        let quota = KvQuota {
            max_keys: 3,
            max_bytes: 80,
            max_value_bytes: 40,
        };
        let big = vec![0u8; 41];
        assert!(matches!(
            kv.set("p", "k", big, None, quota).await,
            Err(StoreError::QuotaExceeded(m)) if m.contains("kv_max_value_bytes")
        ));
        for key in ["a", "b", "c"] {
            kv.set("p", key, vec![0; 10], None, quota).await.unwrap();
        }
        let err = kv
            .set("p", "d", vec![0; 10], None, quota)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("kv_max_keys"), "{err}");
        // Overwriting a key takes no new key; bytes are counted anew.
        kv.set("p", "a", vec![0; 39], None, quota).await.unwrap();
        assert_eq!(
            kv.usage("p").await.unwrap(),
            KvUsage {
                keys: 3,
                bytes: 3 + 39 + 20
            }
        );
        let err = kv
            .set("p", "b", vec![0; 40], None, quota)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("kv_max_bytes"), "{err}");
        // Another namespace has its own quota.
        kv.set("q", "a", vec![0; 10], None, quota).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_do_not_hold_the_quota() {
        let kv = MemoryKvStore::new();
        let quota = KvQuota {
            max_keys: 2,
            max_bytes: 1000,
            max_value_bytes: 100,
        };
        let ttl = Some(Duration::from_secs(1));
        kv.set("p", "a", vec![1], ttl, quota).await.unwrap();
        kv.set("p", "b", vec![1], ttl, quota).await.unwrap();
        assert!(kv.set("p", "c", vec![1], ttl, quota).await.is_err());
        tokio::time::advance(Duration::from_secs(2)).await;
        kv.set("p", "c", vec![1], ttl, quota).await.unwrap();
        assert_eq!(kv.usage("p").await.unwrap().keys, 1);
    }

    /// `kv.set-if-absent` of the plugin contract: of concurrent callers on
    /// several threads exactly one stores its value; once it expires, the
    /// key is free again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn set_if_absent_has_exactly_one_winner_until_the_entry_expires() {
        let kv = std::sync::Arc::new(MemoryKvStore::new());
        let ttl = Some(Duration::from_millis(50));
        let tasks: Vec<_> = (0..32u8)
            .map(|i| {
                let kv = kv.clone();
                tokio::spawn(async move {
                    kv.set_if("p", "lock", Expect::Absent, vec![i], ttl, NO_QUOTA)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.unwrap());
        }
        assert_eq!(winners, 1);
        let held = kv.get("p", "lock").await.unwrap().unwrap();
        assert!(
            !kv.set_if("p", "lock", Expect::Absent, vec![99], ttl, NO_QUOTA)
                .await
                .unwrap()
        );
        assert_eq!(kv.get("p", "lock").await.unwrap(), Some(held));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(
            kv.set_if("p", "lock", Expect::Absent, vec![99], ttl, NO_QUOTA)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn purge_removes_matching_keys_of_one_namespace() {
        let kv = MemoryKvStore::new();
        for key in ["GET:/users/1", "GET:/users/2", "GET:/orders/1"] {
            kv.set("cache", key, vec![1], None, NO_QUOTA).await.unwrap();
        }
        kv.set("other", "GET:/users/1", vec![1], None, NO_QUOTA)
            .await
            .unwrap();
        assert_eq!(kv.purge("cache", "GET:/users/*").await.unwrap(), 2);
        assert_eq!(kv.get("cache", "GET:/users/1").await.unwrap(), None);
        assert!(kv.get("cache", "GET:/orders/1").await.unwrap().is_some());
        assert!(kv.get("other", "GET:/users/1").await.unwrap().is_some());
        assert_eq!(kv.usage("cache").await.unwrap().keys, 1);
    }
}
