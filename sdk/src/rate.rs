//! The host's rate limiter: GCRA, exact under concurrency, shared by all
//! instances of the plugin (and by all gateways using a shared store).
//!
//! ```no_run
//! use weir_sdk::rate::{self, Limit};
//! let d = rate::take("client:10.0.0.1", 1, Limit::per_second(100).burst(20));
//! if !d.allowed { /* answer 429, retry after d.retry_after_ms */ }
//! ```

use crate::bindings::weir::plugin::rate as raw;
pub use raw::{Decision, Limit, TakeRequest};

/// Take `cost` units for `key` under `limit`.
pub fn take(key: &str, cost: u32, limit: Limit) -> Decision {
    raw::take(key, cost, limit)
}

/// Take from several keys at once, all or nothing: either every take is
/// allowed and applied, or none is applied.
pub fn take_all(takes: &[TakeRequest]) -> Vec<Decision> {
    raw::take_all(takes)
}

impl Limit {
    /// `rate` per `period_ms` milliseconds, no burst.
    pub fn new(rate: u32, period_ms: u64) -> Self {
        Limit {
            rate,
            period_ms,
            burst: 0,
        }
    }

    /// `rate` per second.
    pub fn per_second(rate: u32) -> Self {
        Limit::new(rate, 1_000)
    }

    /// Allow `burst` extra requests at once.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }
}
