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

use std::path::Path;
use std::sync::Arc;

use crate::config::AcmeConfig;
use crate::gateway::Gateway;
use crate::server::tls::TlsState;

/// Start keeping `settings`' names certified in the background: http-01
/// validations (for `domains` only) are answered by `gateway`'s plain
/// listener, certificates
/// served by `tls`. Fails only on a `ca_file` that cannot be read.
pub fn start(
    settings: &AcmeConfig,
    tls: Arc<TlsState>,
    gateway: &Gateway,
    base: &Path,
) -> Result<(), String> {
    let store = store::AcmeStore::new(gateway.stores().kv.clone());
    let http = client::AcmeHttp::new(settings, base)?;
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
