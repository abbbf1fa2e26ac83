//! Shared state behind the `rate` and `kv` capabilities. Plugins own the
//! policy (which key, which limit); the host owns the state, behind these
//! traits so a shared backend (Redis) can replace the in-memory one.

mod gcra;
mod memory;

use std::time::Duration;

pub use gcra::{Decision, RateLimit};
pub use memory::{MemoryKvStore, MemoryRateStore};

/// Why a store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend is unreachable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// An atomic rate limiter.
#[async_trait::async_trait]
pub trait RateStore: Send + Sync + 'static {
    /// Take `cost` units of `key` under `limit`.
    async fn take(&self, key: &str, cost: u32, limit: RateLimit) -> Decision;
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
