//! In-memory stores: sharded maps under short mutexes, so takes on different
//! keys rarely contend and a take on one key is atomic. Expired entries are
//! swept as the map grows, keeping memory bounded by the live keys.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::gcra::{self, Decision, RateLimit};
use super::{KvStore, RateStore, StoreError};

const SHARDS: usize = 64;
/// Sweep a shard after this many inserts since the last sweep.
const SWEEP_EVERY: usize = 1024;

struct Shard<V> {
    map: HashMap<String, V>,
    inserts_since_sweep: usize,
}

/// A map split into independently locked shards.
struct Sharded<V> {
    hasher: RandomState,
    shards: Vec<Mutex<Shard<V>>>,
}

impl<V> Sharded<V> {
    fn new() -> Self {
        Sharded {
            hasher: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        inserts_since_sweep: 0,
                    })
                })
                .collect(),
        }
    }

    /// Run `f` on the shard owning `key`. A poisoned lock (a panic while
    /// held) still holds consistent data for these simple updates.
    fn with<R>(&self, key: &str, f: impl FnOnce(&mut Shard<V>) -> R) -> R {
        let index = (self.hasher.hash_one(key) as usize) % self.shards.len();
        let mut guard = match self.shards[index].lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

impl<V> Shard<V> {
    /// Count an insert and, every so often, drop entries `expired` says are dead.
    fn note_insert(&mut self, expired: impl Fn(&V) -> bool) {
        self.inserts_since_sweep += 1;
        if self.inserts_since_sweep >= SWEEP_EVERY {
            self.map.retain(|_, v| !expired(v));
            self.inserts_since_sweep = 0;
        }
    }
}

/// GCRA limiter state in process memory. Uses tokio's clock, so tests can
/// pause and advance time.
pub struct MemoryRateStore {
    origin: Instant,
    tats: Sharded<Duration>,
}

impl Default for MemoryRateStore {
    fn default() -> Self {
        MemoryRateStore {
            origin: Instant::now(),
            tats: Sharded::new(),
        }
    }
}

impl MemoryRateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply a take at an explicit time since the store's origin.
    fn take_at(&self, key: &str, cost: u32, limit: RateLimit, now: Duration) -> Decision {
        self.tats.with(key, |shard| {
            let prior = shard.map.get(key).copied();
            let (decision, tat) = gcra::take(prior, now, cost, limit);
            if tat > now {
                if prior.is_none() {
                    shard.note_insert(|t| *t <= now);
                }
                shard.map.insert(key.to_string(), tat);
            } else {
                shard.map.remove(key);
            }
            decision
        })
    }
}

#[async_trait::async_trait]
impl RateStore for MemoryRateStore {
    async fn take(&self, key: &str, cost: u32, limit: RateLimit) -> Decision {
        self.take_at(key, cost, limit, self.origin.elapsed())
    }
}

struct KvEntry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl KvEntry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

/// Key-value state in process memory.
pub struct MemoryKvStore {
    entries: Sharded<KvEntry>,
}

impl Default for MemoryKvStore {
    fn default() -> Self {
        MemoryKvStore {
            entries: Sharded::new(),
        }
    }
}

impl MemoryKvStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl KvStore for MemoryKvStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        Ok(self.entries.with(key, |shard| match shard.map.get(key) {
            Some(entry) if entry.live(now) => Some(entry.value.clone()),
            Some(_) => {
                shard.map.remove(key);
                None
            }
            None => None,
        }))
    }

    async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let entry = KvEntry {
            value,
            expires: ttl.map(|ttl| now + ttl),
        };
        self.entries.with(key, |shard| {
            if shard.map.insert(key.to_string(), entry).is_none() {
                shard.note_insert(|e| !e.live(now));
            }
        });
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        Ok(self.entries.with(key, |shard| {
            shard.map.remove(key).is_some_and(|e| e.live(now))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn rate_refills_with_paused_time() {
        let store = MemoryRateStore::new();
        let limit = RateLimit {
            rate: 2,
            period: Duration::from_secs(1),
            burst: 0,
        };
        assert!(store.take("k", 1, limit).await.allowed);
        assert!(store.take("k", 1, limit).await.allowed);
        assert!(!store.take("k", 1, limit).await.allowed);
        assert!(store.take("other", 1, limit).await.allowed);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(store.take("k", 1, limit).await.allowed);
        assert!(!store.take("k", 1, limit).await.allowed);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rate_is_exact_under_concurrency() {
        let store = Arc::new(MemoryRateStore::new());
        let limit = RateLimit {
            rate: 50,
            period: Duration::from_secs(3600),
            burst: 0,
        };
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.take("shared", 1, limit).await.allowed })
            })
            .collect();
        let mut allowed = 0;
        for t in tasks {
            allowed += usize::from(t.await.unwrap());
        }
        assert_eq!(allowed, 50);
    }

    #[tokio::test]
    async fn expired_rate_keys_are_swept() {
        let store = MemoryRateStore::new();
        let limit = RateLimit {
            rate: 1,
            period: Duration::from_millis(1),
            burst: 0,
        };
        let base = Duration::from_secs(10);
        for i in 0..(SWEEP_EVERY * SHARDS * 2) {
            store.take_at(&format!("k{i}"), 1, limit, base);
        }
        // Much later, every key has expired; new inserts sweep them away.
        let later = base + Duration::from_secs(10);
        for i in 0..(SWEEP_EVERY * SHARDS * 2) {
            store.take_at(&format!("n{i}"), 1, limit, later);
        }
        let live: usize = store
            .tats
            .shards
            .iter()
            .map(|s| s.lock().unwrap().map.len())
            .sum();
        assert!(live < SWEEP_EVERY * SHARDS * 3, "{live} entries kept");
    }

    #[tokio::test(start_paused = true)]
    async fn kv_expires() {
        let kv = MemoryKvStore::new();
        kv.set("a", b"1".to_vec(), Some(Duration::from_secs(1)))
            .await
            .unwrap();
        kv.set("b", b"2".to_vec(), None).await.unwrap();
        assert_eq!(kv.get("a").await.unwrap(), Some(b"1".to_vec()));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(kv.get("a").await.unwrap(), None);
        assert_eq!(kv.get("b").await.unwrap(), Some(b"2".to_vec()));
        assert!(kv.delete("b").await.unwrap());
        assert!(!kv.delete("b").await.unwrap());
    }
}
