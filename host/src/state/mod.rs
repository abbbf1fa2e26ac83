//! Shared state behind the `rate` and `kv` capabilities. Plugins own the
//! policy (which key, which limit); the host owns the state, behind these
//! traits so a shared backend (Redis) can replace the in-memory one.

mod gcra;
mod memory;
mod redis;

use std::time::Duration;

pub use gcra::{Decision, RateLimit, allowed_blind, refused};
pub use memory::{MemoryKvStore, MemoryRateStore};
pub use redis::RedisStore;

/// Why a store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend is unreachable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailPolicy {
    /// Allow the request (availability first).
    #[default]
    FailOpen,
    /// Refuse it (protection first).
    FailClosed,
}

/// A key-value store with expiry.
#[async_trait::async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// The live value under `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Store `value` under `key`, expiring after `ttl` if given.
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>)
    -> Result<(), StoreError>;
    /// Remove `key`; whether it was present.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;
}
