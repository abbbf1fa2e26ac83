//! Shared data (`proxy_get_shared_data` / `proxy_set_shared_data`) on the
//! host's `kv` store, in the filter's own namespace, so gateways sharing a
//! Redis share it. The ABI's compare-and-swap number is kept in front of
//! each value (4 bytes, little-endian) and every write is a conditional
//! write of the store ([`KvStore::set_if`]): a write naming an old number
//! fails with `CasMismatch` on every gateway, as it does within one Envoy.

use crate::state::{Expect, KvQuota, KvStore, StoreError};

use super::abi::Status;

/// Tries of an unconditional write (`cas` 0) that keeps meeting writers.
const RETRIES: usize = 16;

/// The value under `key` and its CAS number.
pub async fn get(
    kv: &dyn KvStore,
    ns: &str,
    key: &str,
) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
    Ok(kv.get(ns, key).await?.and_then(|raw| split(&raw)))
}

fn split(raw: &[u8]) -> Option<(Vec<u8>, u32)> {
    let cas = u32::from_le_bytes(raw.get(..4)?.try_into().ok()?);
    Some((raw.get(4..)?.to_vec(), cas))
}

/// Store `value` under `key` if `cas` is 0 or the entry's CAS number.
pub async fn set(
    kv: &dyn KvStore,
    ns: &str,
    key: &str,
    value: &[u8],
    cas: u32,
    quota: KvQuota,
) -> Result<Status, StoreError> {
    for _ in 0..RETRIES {
        let raw = kv.get(ns, key).await?;
        let current = raw.as_deref().and_then(split).map_or(0, |(_, cas)| cas);
        if cas != 0 && cas != current {
            return Ok(Status::CasMismatch);
        }
        let next = match current.wrapping_add(1) {
            0 => 1,
            n => n,
        };
        let mut stored = Vec::with_capacity(4 + value.len());
        stored.extend_from_slice(&next.to_le_bytes());
        stored.extend_from_slice(value);
        let expect = match raw.as_deref() {
            Some(bytes) => Expect::Value(bytes),
            None => Expect::Absent,
        };
        if kv.set_if(ns, key, expect, stored, None, quota).await? {
            return Ok(Status::Ok);
        }
        if cas != 0 {
            return Ok(Status::CasMismatch);
        }
    }
    Ok(Status::CasMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryKvStore;

    #[tokio::test]
    async fn a_write_with_a_stale_cas_fails_and_a_fresh_one_lands() {
        let kv = MemoryKvStore::new();
        let quota = KvQuota::UNLIMITED;
        assert_eq!(get(&kv, "f", "k").await.unwrap(), None);
        assert_eq!(
            set(&kv, "f", "k", b"1", 0, quota).await.unwrap(),
            Status::Ok
        );
        let (value, cas) = get(&kv, "f", "k").await.unwrap().unwrap();
        assert_eq!(value, b"1");
        assert_eq!(
            set(&kv, "f", "k", b"2", cas, quota).await.unwrap(),
            Status::Ok
        );
        // `cas` is now stale: another writer got there first.
        assert_eq!(
            set(&kv, "f", "k", b"3", cas, quota).await.unwrap(),
            Status::CasMismatch
        );
        let (value, newer) = get(&kv, "f", "k").await.unwrap().unwrap();
        assert_eq!((value.as_slice(), newer != cas), (&b"2"[..], true));
    }
}
