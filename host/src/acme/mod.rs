//! ACME certificates (RFC 8555) for the TLS listener, `[tls.acme]`.
//!
//! The protocol is instant-acme's (`client.rs`, `order.rs`); what Weir
//! adds is sharing through the `[state]` store (`store.rs`): a fleet on
//! one Redis has one account and one certificate per name, one gateway
//! orders at a time under a lock (`lock.rs`), the others pick the
//! certificate up, and any of them answers a validation
//! (`challenge.rs`). `manager.rs` runs it all in the background;
//! `status.rs` is what `GET /admin/tls` shows.

pub mod challenge;
mod client;
mod lock;
mod manager;
mod order;
mod status;
pub mod store;

use std::sync::Arc;

use crate::config::{AcmeConfig, Config, StateBackend};
use crate::gateway::Gateway;
use crate::server::tls::TlsState;
use crate::state::{KvStore, OnDiskKv};

/// Start keeping `settings`' names certified in the background: http-01
/// validations are answered by `gateway`'s plain listener, certificates
/// served by `tls`. Everything lives in the `[state]` store; on the
/// in-memory backend its lasting records (account, certificates) are also
/// kept under `cache_dir/acme/`, so a restart neither registers nor orders
/// again. Fails only on a `ca_file` or that directory that cannot be read.
pub async fn start(
    settings: &AcmeConfig,
    tls: Arc<TlsState>,
    gateway: &Gateway,
    config: &Config,
) -> Result<(), String> {
    let kv = match config.state.backend {
        StateBackend::Memory => {
            let dir = config
                .cache_dir()
                .join("acme")
                .join(store::directory_hash(&settings.directory));
            let on_disk = OnDiskKv::open(gateway.stores().kv.clone(), &dir).await?;
            Arc::new(on_disk) as Arc<dyn KvStore>
        }
        StateBackend::Redis | StateBackend::RedisCluster => gateway.stores().kv.clone(),
    };
    let store = store::AcmeStore::new(kv).for_directory(&settings.directory);
    let http = client::AcmeHttp::new(settings, &config.base_dir)?;
    // With tls-alpn-01 the plain listener claims no path: a backend may
    // answer its own http-01 validations behind the gateway.
    if settings.challenge == crate::config::AcmeChallenge::Http01 {
        gateway.set_acme_http01(challenge::Http01::new(store.clone(), &settings.domains));
    }
    let manager = manager::Manager::new(settings.clone(), store, tls, http, &owner_id());
    tokio::spawn(manager.run());
    Ok(())
}

/// A name for this gateway process, unique across a fleet: what the order
/// lock holds while it orders.
fn owner_id() -> String {
    use ring::rand::SecureRandom;
    let mut random = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut random);
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    format!("{host}:{}:{}", std::process::id(), hex::encode(random))
}
