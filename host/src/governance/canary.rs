//! Canary versions: `NAME.canary.wasm` (with its own `NAME.canary.json`)
//! beside `NAME.wasm` takes a share of the requests, chosen by a sticky key
//! so a client stays on one version. A canary failure falls back to the
//! stable version for that request (the client never sees it) and counts
//! against the canary; once the canary has been called `min_calls` times,
//! a failure rate above the stable version's (since the canary was loaded)
//! by more than `rollback_margin` takes it out of service until its file
//! changes.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::health::Health;
pub use crate::config::{CanaryConfig, Sticky};
use crate::exchange::RequestState;

/// The suffix of a canary's file stem.
pub const SUFFIX: &str = ".canary";

/// A canary in a pipeline: where it is and how it is judged.
#[derive(Debug)]
pub struct Canary {
    /// Its index in the pipeline's plugins.
    pub index: usize,
    /// Requests per 10,000 it gets.
    per_10k: u64,
    sticky: Sticky,
    margin: f64,
    min_calls: u64,
    /// Its record (kept per file version across reloads; its `retired` flag
    /// is the rollback).
    pub health: Arc<Health>,
    /// The stable version's totals when the canary was loaded.
    baseline: (u64, u64),
}

impl Canary {
    /// A canary at `index`, judged against `stable` from now on.
    pub fn new(
        index: usize,
        config: &CanaryConfig,
        health: Arc<Health>,
        stable: &Health,
    ) -> Canary {
        Canary {
            index,
            per_10k: (config.share.clamp(0.0, 1.0) * 10_000.0).round() as u64,
            sticky: Sticky::parse(&config.sticky).unwrap_or(Sticky::ClientIp),
            margin: config.rollback_margin,
            min_calls: config.min_calls,
            health,
            baseline: stable.totals(),
        }
    }

    /// Whether `req` goes to the canary.
    pub fn takes(&self, req: &RequestState) -> bool {
        if self.health.retired() {
            return false;
        }
        // A fixed-key hasher: the same key picks the same version in
        // every worker and after every reload.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        match &self.sticky {
            Sticky::Header(name) => match req.head.headers.get(name.as_str()) {
                Some(value) => value.as_bytes().hash(&mut hasher),
                None => req.client.ip().hash(&mut hasher),
            },
            Sticky::ClientIp => req.client_ip.hash(&mut hasher),
        }
        hasher.finish() % 10_000 < self.per_10k
    }

    /// After a canary call: roll it back when it fails too often next to
    /// `stable`. Returns true when this call rolled it back.
    pub fn judge(&self, stable: &Health) -> bool {
        let (calls, failures) = self.health.totals();
        if calls < self.min_calls || self.health.retired() {
            return false;
        }
        let (stable_calls, stable_failures) = stable.totals();
        let (base_calls, base_failures) = self.baseline;
        let stable_rate = rate(
            stable_failures.saturating_sub(base_failures),
            stable_calls.saturating_sub(base_calls),
        );
        let canary_rate = rate(failures, calls);
        if canary_rate > stable_rate + self.margin {
            self.health.retire();
            tracing::error!(
                plugin = self.health.name(),
                canary_calls = calls,
                canary_failures = failures,
                stable_failure_rate = stable_rate,
                "canary rolled back: its failure rate {canary_rate:.3} passes the stable \
                 version's {stable_rate:.3} by more than {}; the stable version serves all \
                 requests until the canary's file changes",
                self.margin
            );
            return true;
        }
        false
    }

    /// For the admin API.
    pub fn share(&self) -> f64 {
        self.per_10k as f64 / 10_000.0
    }
}

fn rate(failures: u64, calls: u64) -> f64 {
    if calls == 0 {
        0.0
    } else {
        failures as f64 / calls as f64
    }
}

#[cfg(test)]
mod tests {
    use super::super::health::Admit;
    use super::*;
    use std::time::Duration;

    fn request(client: &str, header: Option<&str>) -> RequestState {
        let mut builder = http::Request::builder().uri("/");
        if let Some(value) = header {
            builder = builder.header("x-user", value);
        }
        let (head, ()) = builder.body(()).unwrap().into_parts();
        RequestState::new(
            head,
            crate::http::body::BodyState::buffered(bytes::Bytes::new()),
            client.parse().unwrap(),
        )
    }

    fn canary(config: CanaryConfig, stable: &Health) -> Canary {
        Canary::new(1, &config, Arc::new(Health::new("t", None)), stable)
    }

    #[test]
    fn takes_its_share_and_sticks_to_a_client() {
        let stable = Health::new("t", None);
        let c = canary(
            CanaryConfig {
                share: 0.1,
                sticky: "header:X-User".into(),
                ..Default::default()
            },
            &stable,
        );
        let taken = (0..10_000)
            .filter(|i| c.takes(&request("192.0.2.1:1", Some(&format!("user-{i}")))))
            .count();
        assert!((800..1200).contains(&taken), "{taken}");
        for i in 0..100 {
            let user = format!("user-{i}");
            let first = c.takes(&request("192.0.2.1:1", Some(&user)));
            assert_eq!(c.takes(&request("198.51.100.9:2", Some(&user))), first);
        }
    }

    #[test]
    fn rolls_back_when_it_fails_more_than_the_stable_version() {
        let stable = Health::new("t", None);
        stable.record(Admit::Call, false, Duration::ZERO); // before the canary: not counted
        let c = canary(
            CanaryConfig {
                min_calls: 10,
                ..Default::default()
            },
            &stable,
        );
        for i in 0..20 {
            stable.record(Admit::Call, true, Duration::ZERO);
            c.health.record(Admit::Call, i % 2 == 0, Duration::ZERO);
            let judged = c.judge(&stable);
            assert_eq!(judged, i == 9, "call {i}");
        }
        assert!(!c.takes(&request("192.0.2.1:1", None)));
    }

    #[test]
    fn a_canary_as_good_as_stable_stays() {
        let stable = Health::new("t", None);
        let c = canary(
            CanaryConfig {
                min_calls: 10,
                ..Default::default()
            },
            &stable,
        );
        for i in 0..100 {
            let ok = i % 10 != 0;
            stable.record(Admit::Call, ok, Duration::ZERO);
            c.health.record(Admit::Call, ok, Duration::ZERO);
            assert!(!c.judge(&stable));
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = |f: fn(&mut CanaryConfig)| {
            let mut c = CanaryConfig::default();
            f(&mut c);
            c.validate("x").is_err()
        };
        assert!(bad(|c| c.share = 1.5));
        assert!(bad(|c| c.sticky = "cookie:x".into()));
        assert!(bad(|c| c.sticky = "header:bad name".into()));
        assert!(CanaryConfig::default().validate("x").is_ok());
    }
}
