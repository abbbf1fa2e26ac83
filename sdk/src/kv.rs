//! The host's key-value store with expiry. Keys are private to the plugin.

use crate::bindings::weir::plugin::kv as raw;
pub use raw::KvError;

/// The value under `key`, if present and not expired.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    raw::get(key)
}

/// Store `value` under `key`, expiring after `ttl_ms` if given.
pub fn set(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), KvError> {
    raw::set(key, value, ttl_ms)
}

/// Remove `key`; returns whether it was present.
pub fn delete(key: &str) -> Result<bool, KvError> {
    raw::delete(key)
}
