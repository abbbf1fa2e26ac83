//! The in-memory rate store: a sharded map under short mutexes, so takes on
//! different keys rarely contend and a take on one key is atomic. Expired
//! entries are swept as the map grows, keeping memory bounded by the live
//! keys. [`Sharded`] serves the in-memory `kv` store too.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::gcra::{self, Decision};
use super::{RateStore, Take};

const SHARDS: usize = 64;
/// Sweep a shard after this many inserts since the last sweep.
const SWEEP_EVERY: usize = 1024;

pub(super) struct Shard<V, K = u64> {
    pub(super) map: HashMap<K, V>,
    inserts_since_sweep: usize,
}

/// A map split into independently locked shards.
pub(super) struct Sharded<V, K = u64> {
    hasher: RandomState,
    pub(super) shards: Vec<Mutex<Shard<V, K>>>,
}

/// Lock a shard. A poisoned lock (a panic while held) still holds
/// consistent data for these simple updates.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<V, K> Sharded<V, K> {
    pub(super) fn new() -> Self {
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

    /// The shard of a key hash.
    fn index_of(&self, hash: u64) -> usize {
        (hash as usize) % self.shards.len()
    }

    /// The shard at `index`, reduced modulo the number of shards.
    #[allow(clippy::indexing_slicing)] // `index % len` is in bounds; `new` makes SHARDS > 0 shards.
    fn shard(&self, index: usize) -> &Mutex<Shard<V, K>> {
        &self.shards[index % self.shards.len()]
    }

    /// Run `f` on the shard owning `key`.
    pub(super) fn with<R>(&self, key: &str, f: impl FnOnce(&mut Shard<V, K>) -> R) -> R {
        let index = self.index_of(self.hasher.hash_one(key));
        f(&mut lock(self.shard(index)))
    }
}

impl<V, K: std::hash::Hash + Eq> Shard<V, K> {
    /// Count an insert and, every so often, drop entries `expired` says are
    /// dead; `removed` sees each one dropped.
    pub(super) fn note_insert(
        &mut self,
        expired: impl Fn(&V) -> bool,
        mut removed: impl FnMut(&V),
    ) {
        self.inserts_since_sweep += 1;
        if self.inserts_since_sweep >= SWEEP_EVERY {
            self.map.retain(|_, v| {
                let dead = expired(v);
                if dead {
                    removed(v);
                }
                !dead
            });
            self.inserts_since_sweep = 0;
        }
    }
}

/// GCRA limiter state in process memory: per key, one 64-bit hash and one
/// 64-bit time (about 40 bytes with the table's overhead), so a million
/// live keys cost tens of megabytes. Uses tokio's clock, so tests can pause
/// and advance time.
pub struct MemoryRateStore {
    origin: Instant,
    /// Hashes keys; a collision would merge two keys' counts, which at 64
    /// bits does not happen in practice.
    hasher: RandomState,
    /// Key hash → theoretical arrival time, in nanoseconds since `origin`.
    tats: Sharded<u64>,
}

impl Default for MemoryRateStore {
    fn default() -> Self {
        MemoryRateStore {
            origin: Instant::now(),
            hasher: RandomState::new(),
            tats: Sharded::new(),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl MemoryRateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Live keys (for tests and memory accounting).
    pub fn len(&self) -> usize {
        self.tats.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// Whether no key is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Apply a batch at an explicit time since the store's origin: lock the
    /// shards involved (in index order, so batches cannot deadlock), decide
    /// every take on a private copy, and write back only if all are allowed.
    fn take_all_at(&self, takes: &[Take], now: Duration) -> Vec<Decision> {
        let hashes: Vec<u64> = takes
            .iter()
            .map(|t| self.hasher.hash_one(t.key.as_str()))
            .collect();
        let mut shard_ids: Vec<usize> = hashes.iter().map(|h| self.tats.index_of(*h)).collect();
        shard_ids.sort_unstable();
        shard_ids.dedup();
        let mut guards: Vec<(usize, std::sync::MutexGuard<'_, Shard<u64>>)> = shard_ids
            .iter()
            .map(|&i| (i, lock(self.tats.shard(i))))
            .collect();
        let mut pending: Vec<(u64, u64)> = Vec::with_capacity(takes.len());
        let mut decisions = Vec::with_capacity(takes.len());
        for (take, hash) in takes.iter().zip(&hashes) {
            let shard = self.tats.index_of(*hash);
            let prior = pending
                .iter()
                .rev()
                .find(|(h, _)| h == hash)
                .map(|(_, tat)| *tat)
                .or_else(|| {
                    guards
                        .iter()
                        .find(|(i, _)| *i == shard)
                        .and_then(|(_, g)| g.map.get(hash).copied())
                });
            let (decision, tat) =
                gcra::take(prior.map(Duration::from_nanos), now, take.cost, take.limit);
            if decision.allowed {
                pending.push((*hash, nanos(tat)));
            }
            decisions.push(decision);
        }
        if decisions.iter().all(|d| d.allowed) {
            let now_ns = nanos(now);
            for (hash, tat) in pending {
                let shard = self.tats.index_of(hash);
                if let Some((_, guard)) = guards.iter_mut().find(|(i, _)| *i == shard) {
                    if tat > now_ns {
                        if guard.map.insert(hash, tat).is_none() {
                            guard.note_insert(|t| *t <= now_ns, |_| {});
                        }
                    } else {
                        guard.map.remove(&hash);
                    }
                }
            }
        }
        decisions
    }
}

#[async_trait::async_trait]
impl RateStore for MemoryRateStore {
    async fn take_all(&self, takes: &[Take]) -> Vec<Decision> {
        self.take_all_at(takes, self.origin.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::super::RateLimit;
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
    async fn a_batch_is_all_or_nothing() {
        let store = MemoryRateStore::new();
        let hour = Duration::from_secs(3600);
        let one = RateLimit {
            rate: 1,
            period: hour,
            burst: 0,
        };
        let many = RateLimit {
            rate: 100,
            period: hour,
            burst: 0,
        };
        let batch = |a: &str, b: &str| {
            vec![
                Take {
                    key: a.to_string(),
                    cost: 1,
                    limit: many,
                },
                Take {
                    key: b.to_string(),
                    cost: 1,
                    limit: one,
                },
            ]
        };
        let first = store.take_all(&batch("wide", "narrow")).await;
        assert!(first.iter().all(|d| d.allowed));
        assert_eq!(first[0].remaining, 99);
        // The narrow limit refuses: the wide one is not charged.
        let second = store.take_all(&batch("wide", "narrow")).await;
        assert!(second[0].allowed && !second[1].allowed);
        let third = store.take("wide", 1, many).await;
        assert_eq!(third.remaining, 98);
        // The same key twice in one batch counts twice.
        let twice = store.take_all(&batch("twice", "twice")).await;
        assert!(!twice[1].allowed, "a rate-1 key allowed two takes");
    }

    #[tokio::test]
    async fn expired_rate_keys_are_swept() {
        let store = MemoryRateStore::new();
        let limit = RateLimit {
            rate: 1,
            period: Duration::from_millis(1),
            burst: 0,
        };
        let take = |key: String, at: Duration| {
            store.take_all_at(
                &[Take {
                    key,
                    cost: 1,
                    limit,
                }],
                at,
            );
        };
        let base = Duration::from_secs(10);
        for i in 0..(SWEEP_EVERY * SHARDS * 2) {
            take(format!("k{i}"), base);
        }
        // Much later, every key has expired; new inserts sweep them away.
        let later = base + Duration::from_secs(10);
        for i in 0..(SWEEP_EVERY * SHARDS * 2) {
            take(format!("n{i}"), later);
        }
        let live = store.len();
        assert!(live < SWEEP_EVERY * SHARDS * 3, "{live} entries kept");
    }
}
