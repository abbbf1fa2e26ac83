//! `kv`: the host's key-value store, in the plugin's namespace, held to
//! its quota and the hook deadline.

use std::time::Duration;

use crate::runtime::bindings::weir::plugin::kv;
use crate::runtime::host::{HostState, within};
use crate::state::{Expect, StoreError};

type Res<T> = wasmtime::Result<T>;

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> Res<Result<Option<Vec<u8>>, kv::KvError>> {
        let get = self.caps.kv.get(&self.plugin, &key);
        Ok(within(self.deadline, get).await?.map_err(kv_error))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Res<Result<(), kv::KvError>> {
        let ttl = ttl_ms.map(Duration::from_millis);
        let quota = self.caps.kv_quota();
        let set = self.caps.kv.set(&self.plugin, &key, value, ttl, quota);
        Ok(within(self.deadline, set).await?.map_err(kv_error))
    }

    /// The store's conditional write, so the check and the write are one
    /// atomic step (a lock, or one Redis script) on every gateway sharing
    /// the store: of several callers at once exactly one wins.
    async fn set_if_absent(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Res<Result<bool, kv::KvError>> {
        let ttl = ttl_ms.map(Duration::from_millis);
        let quota = self.caps.kv_quota();
        let set = self
            .caps
            .kv
            .set_if(&self.plugin, &key, Expect::Absent, value, ttl, quota);
        Ok(within(self.deadline, set).await?.map_err(kv_error))
    }

    async fn delete(&mut self, key: String) -> Res<Result<bool, kv::KvError>> {
        let delete = self.caps.kv.delete(&self.plugin, &key);
        Ok(within(self.deadline, delete).await?.map_err(kv_error))
    }
}

fn kv_error(e: StoreError) -> kv::KvError {
    match e {
        StoreError::Unavailable(why) => kv::KvError::Unavailable(why),
        StoreError::QuotaExceeded(why) => kv::KvError::QuotaExceeded(why),
    }
}
