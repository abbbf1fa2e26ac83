//! The `kv` capability on Redis: values under `weir:kv:`, each namespace's
//! quota bookkeeping under `weir:kvq:`, quota-checked writes and deletes as
//! scripts over one namespace's keys (one slot on a cluster).

use std::time::Duration;

use super::super::{Expect, KvQuota, KvStore, KvUsage, StoreError, entry_bytes};
use super::RedisStore;
use super::keys::redis_glob;

impl RedisStore {
    /// A write through [`super::scripts::KV_SET`], conditional when
    /// `expect` is given.
    async fn write(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        quota: KvQuota,
        expect: Option<Expect<'_>>,
    ) -> Result<bool, StoreError> {
        quota.check_value(value.len())?;
        let keys = self.layout.kv_keys(ns, key);
        let ttl_ms = ttl.map_or(0, |ttl| {
            u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        let size = entry_bytes(key, value.len());
        let (condition, expected): (&str, &[u8]) = match expect {
            None => ("", b""),
            Some(Expect::Absent) => ("absent", b""),
            Some(Expect::Value(bytes)) => ("value", bytes),
        };
        let outcome: String = self
            .call("set", |mut c| {
                let mut invocation = self.kv_set.prepare_invoke();
                for k in &keys {
                    invocation.key(k);
                }
                invocation
                    .arg(key)
                    .arg(value.as_slice())
                    .arg(ttl_ms)
                    .arg(quota.max_keys)
                    .arg(quota.max_bytes)
                    .arg(size)
                    .arg(condition)
                    .arg(expected);
                async move { invocation.invoke_async(&mut c).await }
            })
            .await
            .map_err(StoreError::Unavailable)?;
        match outcome.as_str() {
            "ok" => Ok(true),
            "mismatch" => Ok(false),
            "keys" => quota
                .check_usage(quota.max_keys.saturating_add(1), 0)
                .map(|()| false),
            _ => quota
                .check_usage(0, quota.max_bytes.saturating_add(1))
                .map(|()| false),
        }
    }
}

#[async_trait::async_trait]
impl KvStore for RedisStore {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let [value_key, ..] = self.layout.kv_keys(ns, key);
        self.call("get", |mut c| {
            let key = value_key.clone();
            async move { redis::cmd("GET").arg(key).query_async(&mut c).await }
        })
        .await
        .map_err(StoreError::Unavailable)
    }

    async fn set(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        quota: KvQuota,
    ) -> Result<(), StoreError> {
        self.write(ns, key, value, ttl, quota, None)
            .await
            .map(|_| ())
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
        self.write(ns, key, value, ttl, quota, Some(expect)).await
    }

    async fn delete(&self, ns: &str, key: &str) -> Result<bool, StoreError> {
        let keys = self.layout.kv_keys(ns, key);
        self.call("delete", |mut c| {
            let mut invocation = self.kv_delete.prepare_invoke();
            for k in &keys {
                invocation.key(k);
            }
            invocation.arg(key);
            async move { invocation.invoke_async::<i64>(&mut c).await }
        })
        .await
        .map(|n| n > 0)
        .map_err(StoreError::Unavailable)
    }

    async fn purge(&self, ns: &str, pattern: &str) -> Result<u64, StoreError> {
        let prefix = self.layout.kv_prefix(ns);
        let matching = format!("{}{}", redis_glob(&prefix), redis_glob(pattern));
        // On a cluster SCAN names no key, so it goes where the namespace's
        // slot lives; one node holds the whole namespace.
        let slot = self.layout.kv_slot(ns);
        let found: Vec<String> = self
            .call("purge", |mut c| {
                let matching = matching.clone();
                async move {
                    let mut found = Vec::new();
                    let mut cursor: u64 = 0;
                    loop {
                        let mut scan = redis::cmd("SCAN");
                        scan.arg(cursor)
                            .arg("MATCH")
                            .arg(&matching)
                            .arg("COUNT")
                            .arg(1000);
                        let (next, keys): (u64, Vec<String>) = c.query_at(&scan, slot).await?;
                        found.extend(keys);
                        if next == 0 {
                            return Ok(found);
                        }
                        cursor = next;
                    }
                }
            })
            .await
            .map_err(StoreError::Unavailable)?;
        let mut removed = 0;
        for full in found {
            if let Some(key) = full.strip_prefix(&prefix)
                && self.delete(ns, key).await?
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn usage(&self, ns: &str) -> Result<KvUsage, StoreError> {
        let [_, index, _, total] = self.layout.kv_keys(ns, "");
        let (keys, bytes): (u64, Option<u64>) = self
            .call("usage", |mut c| {
                let (index, total) = (index.clone(), total.clone());
                async move {
                    redis::pipe()
                        .cmd("ZCARD")
                        .arg(index)
                        .cmd("GET")
                        .arg(total)
                        .query_async(&mut c)
                        .await
                }
            })
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(KvUsage {
            keys,
            bytes: bytes.unwrap_or(0),
        })
    }
}
