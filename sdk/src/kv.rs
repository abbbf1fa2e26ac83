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

/// Store `value` under `key` only if the key holds nothing (or its value
/// has expired), expiring after `ttl_ms` if given; returns whether it was
/// stored (`Ok(false)`: another value is there, and it is left as it is).
///
/// The check and the write are one atomic step in the host's store, on
/// every gateway that shares it (Redis): of several callers at once,
/// exactly one gets `Ok(true)`. That makes it a lock or a leader election;
/// give it a TTL so a holder that never releases it (with [`delete`]) does
/// not hold it forever. Paired with [`Action::Wait`](crate::Action::Wait),
/// it collapses concurrent requests: the one that takes the lock does the
/// work, the others wait for its key.
///
/// ```no_run
/// # fn refresh() {}
/// if weir_sdk::kv::set_if_absent("refresh-lock", b"1", Some(5_000))? {
///     refresh();
///     weir_sdk::kv::delete("refresh-lock")?;
/// }
/// # Ok::<(), weir_sdk::kv::KvError>(())
/// ```
pub fn set_if_absent(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<bool, KvError> {
    raw::set_if_absent(key, value, ttl_ms)
}

/// Remove `key`; returns whether it was present.
pub fn delete(key: &str) -> Result<bool, KvError> {
    raw::delete(key)
}
