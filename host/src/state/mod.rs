//! Shared state behind the `rate` and `kv` capabilities. Plugins own the
//! policy (which key, which limit); the host owns the state, behind these
//! traits so a shared backend (Redis) can replace the in-memory one.

mod gcra;
mod memory;
mod memory_kv;
mod on_disk;
mod redis;

use std::time::Duration;

pub use gcra::{Decision, RateLimit, allowed_blind, refused};
pub use memory::MemoryRateStore;
pub use memory_kv::MemoryKvStore;
pub use on_disk::OnDiskKv;
pub use redis::RedisStore;
pub(crate) use redis::redacted;

/// Why a store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend is unreachable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The write would pass the namespace's quota (named in the message).
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
}

/// What one namespace (one plugin) may hold in a [`KvStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    /// Live keys.
    pub max_keys: u64,
    /// Bytes of keys and values together.
    pub max_bytes: u64,
    /// Bytes of one value.
    pub max_value_bytes: u64,
}

impl KvQuota {
    /// No limit (tests and the test kit).
    pub const UNLIMITED: KvQuota = KvQuota {
        max_keys: u64::MAX,
        max_bytes: u64::MAX,
        max_value_bytes: u64::MAX,
    };

    /// Refuse a value larger than one value may be.
    pub fn check_value(&self, len: usize) -> Result<(), StoreError> {
        if len as u64 > self.max_value_bytes {
            return Err(StoreError::QuotaExceeded(format!(
                "a value may hold at most {} bytes (budgets.kv_max_value_bytes)",
                self.max_value_bytes
            )));
        }
        Ok(())
    }

    /// Whether a namespace holding `keys` keys and `bytes` bytes is within
    /// the quota; the error names the quota passed.
    pub fn check_usage(&self, keys: u64, bytes: u64) -> Result<(), StoreError> {
        if keys > self.max_keys {
            return Err(StoreError::QuotaExceeded(format!(
                "a plugin may hold at most {} keys (budgets.kv_max_keys)",
                self.max_keys
            )));
        }
        if bytes > self.max_bytes {
            return Err(StoreError::QuotaExceeded(format!(
                "a plugin may hold at most {} bytes (budgets.kv_max_bytes)",
                self.max_bytes
            )));
        }
        Ok(())
    }
}

/// What a namespace holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KvUsage {
    /// Keys (expired ones not yet swept included).
    pub keys: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
}

/// The bytes an entry counts for: its key and its value.
pub fn entry_bytes(key: &str, value_len: usize) -> u64 {
    (key.len() + value_len) as u64
}

/// Whether `text` matches `pattern`, where `*` matches any run of
/// characters and everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = rest.get(at + part.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// One take of a batch.
#[derive(Debug, Clone)]
pub struct Take {
    /// The (namespaced) key.
    pub key: String,
    /// Units to take.
    pub cost: u32,
    /// Its limit.
    pub limit: RateLimit,
}

/// An atomic rate limiter.
#[async_trait::async_trait]
pub trait RateStore: Send + Sync + 'static {
    /// Apply `takes` all or nothing: if every take is allowed all are
    /// applied, otherwise none. One decision per take, in order.
    async fn take_all(&self, takes: &[Take]) -> Vec<Decision>;

    /// Take `cost` units of `key` under `limit`.
    async fn take(&self, key: &str, cost: u32, limit: RateLimit) -> Decision {
        let take = Take {
            key: key.to_string(),
            cost,
            limit,
        };
        let decisions = self.take_all(std::slice::from_ref(&take)).await;
        decisions.into_iter().next().unwrap_or(gcra::refused(limit))
    }
}

/// What to do when a shared store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailPolicy {
    /// Allow the request (availability first).
    #[default]
    FailOpen,
    /// Refuse it (protection first).
    FailClosed,
}

/// What a conditional write ([`KvStore::set_if`]) expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect<'a> {
    /// No live entry.
    Absent,
    /// A live entry holding exactly these bytes.
    Value(&'a [u8]),
}

/// A key-value store with expiry, split into namespaces (one per plugin),
/// each held to a [`KvQuota`].
#[async_trait::async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// The live value under `key` in `ns`.
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Store `value` under `key` in `ns`, expiring after `ttl` if given,
    /// unless the namespace would pass `quota`.
    async fn set(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        quota: KvQuota,
    ) -> Result<(), StoreError>;
    /// Store `value` under `key` as [`KvStore::set`] does, but only if the
    /// live entry is what `expect` says, checked and written atomically
    /// (one lock, or one Redis script), so writers on several gateways
    /// sharing one store never lose an update. `Ok(false)`: the entry was
    /// something else, and nothing was written.
    async fn set_if(
        &self,
        ns: &str,
        key: &str,
        expect: Expect<'_>,
        value: Vec<u8>,
        ttl: Option<Duration>,
        quota: KvQuota,
    ) -> Result<bool, StoreError>;
    /// Remove `key` from `ns`; whether it was present.
    async fn delete(&self, ns: &str, key: &str) -> Result<bool, StoreError>;
    /// Remove every key of `ns` matching `pattern` (`*` is a wildcard);
    /// how many were removed.
    async fn purge(&self, ns: &str, pattern: &str) -> Result<u64, StoreError>;
    /// What `ns` holds.
    async fn usage(&self, ns: &str) -> Result<KvUsage, StoreError>;
    /// Notified whenever this store deletes keys, when it can tell (the
    /// in-memory store can; Redis, shared with other gateways, cannot, and
    /// waiters poll).
    fn deletions(&self) -> Option<&tokio::sync::Notify> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_stars_and_literals() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("*", ""));
        assert!(glob_match("GET:/users/*", "GET:/users/7"));
        assert!(!glob_match("GET:/users/*", "GET:/orders/7"));
        assert!(glob_match("*:/users/*/x", "GET:/users/7/x"));
        assert!(!glob_match("*:/users/*/x", "GET:/users/7/y"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("a*a", "aa"));
        assert!(!glob_match("a*a", "a"));
    }
}
