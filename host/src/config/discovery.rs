//! `[discovery]`: how upstream targets given by a DNS name (`http://name:port`)
//! or by SRV records (`srv:_service._proto.name`) are resolved: which
//! nameservers, and the bounds on how often answers are refreshed.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[discovery]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Nameservers asked, as `ip:port`, over UDP (TCP for truncated
    /// answers); empty means the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// The shortest time an answer is used before it is asked again, even
    /// when its TTL is shorter (0 TTLs would otherwise mean a query per
    /// request); also the first retry delay after a failed lookup.
    pub min_ttl_ms: u64,
    /// The longest time an answer is used, even when its TTL is longer.
    pub max_ttl_ms: u64,
    /// Limit on one lookup (each attempt at one nameserver).
    pub timeout_ms: u64,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            nameservers: Vec::new(),
            min_ttl_ms: 1_000,
            max_ttl_ms: 300_000,
            timeout_ms: 2_000,
        }
    }
}

impl DiscoveryConfig {
    /// Check the bounds.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_ttl_ms == 0 || self.timeout_ms == 0 {
            return Err(
                "`discovery.min_ttl_ms` and `discovery.timeout_ms` must be greater than 0".into(),
            );
        }
        if self.max_ttl_ms < self.min_ttl_ms {
            return Err(format!(
                "`discovery.max_ttl_ms` ({}) must not be less than `discovery.min_ttl_ms` ({})",
                self.max_ttl_ms, self.min_ttl_ms
            ));
        }
        Ok(())
    }
}
