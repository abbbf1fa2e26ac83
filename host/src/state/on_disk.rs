//! A [`KvStore`] whose lasting entries also live on disk, so that what a
//! single gateway on the in-memory backend must not lose at a restart (its
//! ACME account and certificates, as Traefik's `acme.json` or Caddy's data
//! directory keep them) survives one.
//!
//! Entries written without a TTL are written through to one file each
//! (written to a temporary file and renamed, so a crash leaves the old
//! version or the new one, never half of one); entries with a TTL (locks,
//! pending challenges) stay in memory only, and writing one removes the
//! key's file. Reads come from memory: the files are read once, at open.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Expect, KvQuota, KvStore, KvUsage, StoreError, glob_match};

/// One entry's file.
#[derive(Serialize, Deserialize)]
struct Record {
    ns: String,
    key: String,
    value: String,
}

/// `inner`, with its TTL-less entries kept in `dir` too.
pub struct OnDiskKv {
    inner: Arc<dyn KvStore>,
    dir: PathBuf,
}

impl OnDiskKv {
    /// Open `dir` (created if missing) and load every entry it holds into
    /// `inner`. A file that does not parse is skipped with a warning: it
    /// costs that entry (an ACME certificate is then ordered again), not
    /// the start.
    pub async fn open(inner: Arc<dyn KvStore>, dir: &Path) -> Result<OnDiskKv, String> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("{}: cannot be created: {e}", dir.display()))?;
        let mut entries = tokio::fs::read_dir(dir)
            .await
            .map_err(|e| format!("{}: cannot be read: {e}", dir.display()))?;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let record = tokio::fs::read(&path)
                .await
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok());
            let Some(record) = record else {
                tracing::warn!(file = %path.display(), "not a stored entry; skipped");
                continue;
            };
            let value = hex::decode(&record.value).unwrap_or_default();
            inner
                .set(&record.ns, &record.key, value, None, KvQuota::UNLIMITED)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(OnDiskKv {
            inner,
            dir: dir.to_path_buf(),
        })
    }

    fn file(&self, ns: &str, key: &str) -> PathBuf {
        let mut hash = Sha256::new();
        hash.update(ns.as_bytes());
        hash.update([0]);
        hash.update(key.as_bytes());
        self.dir
            .join(format!("{}.json", hex::encode(hash.finalize())))
    }

    /// Make the file match a write that succeeded: the value without a TTL,
    /// or no file with one.
    async fn persist(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) {
        let file = self.file(ns, key);
        if ttl.is_some() {
            remove(&file).await;
            return;
        }
        let record = Record {
            ns: ns.to_string(),
            key: key.to_string(),
            value: hex::encode(value),
        };
        let Ok(bytes) = serde_json::to_vec(&record) else {
            return;
        };
        let temporary = file.with_extension("tmp");
        let written = async {
            tokio::fs::write(&temporary, &bytes).await?;
            tokio::fs::rename(&temporary, &file).await
        };
        if let Err(e) = written.await {
            // Memory still holds it: only a restart would lose it.
            tracing::warn!(file = %file.display(), "cannot be written: {e}");
        }
    }
}

async fn remove(file: &Path) {
    match tokio::fs::remove_file(file).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(file = %file.display(), "cannot be removed: {e}"),
    }
}

#[async_trait::async_trait]
impl KvStore for OnDiskKv {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(ns, key).await
    }

    async fn set(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        quota: KvQuota,
    ) -> Result<(), StoreError> {
        self.inner.set(ns, key, value.clone(), ttl, quota).await?;
        self.persist(ns, key, &value, ttl).await;
        Ok(())
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
        let written = self
            .inner
            .set_if(ns, key, expect, value.clone(), ttl, quota)
            .await?;
        if written {
            self.persist(ns, key, &value, ttl).await;
        }
        Ok(written)
    }

    async fn delete(&self, ns: &str, key: &str) -> Result<bool, StoreError> {
        let removed = self.inner.delete(ns, key).await?;
        remove(&self.file(ns, key)).await;
        Ok(removed)
    }

    async fn purge(&self, ns: &str, pattern: &str) -> Result<u64, StoreError> {
        let removed = self.inner.purge(ns, pattern).await?;
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else {
            return Ok(removed);
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let path = entry.path();
            let record = tokio::fs::read(&path)
                .await
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok());
            if record.is_some_and(|r| r.ns == ns && glob_match(pattern, &r.key)) {
                remove(&path).await;
            }
        }
        Ok(removed)
    }

    async fn usage(&self, ns: &str) -> Result<KvUsage, StoreError> {
        self.inner.usage(ns).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryKvStore;

    async fn open(dir: &Path) -> OnDiskKv {
        let memory: Arc<dyn KvStore> = Arc::new(MemoryKvStore::new());
        OnDiskKv::open(memory, dir).await.unwrap()
    }

    #[tokio::test]
    async fn lasting_entries_survive_a_restart_and_temporary_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let q = KvQuota::UNLIMITED;
        store
            .set("acme", "cert/a", b"A".to_vec(), None, q)
            .await
            .unwrap();
        store
            .set("acme", "cert/b", b"B".to_vec(), None, q)
            .await
            .unwrap();
        store
            .set(
                "acme",
                "lock",
                b"me".to_vec(),
                Some(Duration::from_secs(60)),
                q,
            )
            .await
            .unwrap();
        assert!(
            store
                .set_if(
                    "acme",
                    "cert/a",
                    Expect::Value(b"A"),
                    b"A2".to_vec(),
                    None,
                    q
                )
                .await
                .unwrap()
        );
        store.delete("acme", "cert/b").await.unwrap();
        drop(store);

        // A new process: only what was lasting, at its last value.
        let store = open(dir.path()).await;
        assert_eq!(
            store.get("acme", "cert/a").await.unwrap(),
            Some(b"A2".to_vec())
        );
        assert_eq!(store.get("acme", "cert/b").await.unwrap(), None);
        assert_eq!(store.get("acme", "lock").await.unwrap(), None);

        // An entry given a TTL stops being lasting.
        store
            .set(
                "acme",
                "cert/a",
                b"T".to_vec(),
                Some(Duration::from_secs(60)),
                q,
            )
            .await
            .unwrap();
        drop(store);
        let store = open(dir.path()).await;
        assert_eq!(store.get("acme", "cert/a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_damaged_file_costs_its_entry_not_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let q = KvQuota::UNLIMITED;
        store
            .set("acme", "k", b"v".to_vec(), None, q)
            .await
            .unwrap();
        drop(store);
        std::fs::write(dir.path().join("junk.json"), b"{not json").unwrap();
        let store = open(dir.path()).await;
        assert_eq!(store.get("acme", "k").await.unwrap(), Some(b"v".to_vec()));
    }
}
