//! What this gateway knows of one ACME name, and how `GET /admin/tls`
//! shows it (dates and states, never keys).

use std::time::{Duration, UNIX_EPOCH};

use super::store::{CertRecord, FailureRecord};

/// What the gateway is doing about a name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Phase {
    /// Nothing under way.
    #[default]
    Idle,
    /// This gateway is ordering it.
    Ordering,
    /// Due, while another gateway holds the order lock.
    Waiting,
}

/// One name's state.
#[derive(Debug, Default)]
pub struct NameState {
    /// The certificate served (the last good one).
    pub cert: Option<CertRecord>,
    /// The last failure, as the store has it.
    pub shared_failure: Option<FailureRecord>,
    /// The last failure of this gateway's orders (when the store could
    /// not be written, this one still bounds the retries).
    pub local_failure: Option<FailureRecord>,
    /// The store's last error, if reading it failed.
    pub store_error: Option<String>,
    /// What is under way.
    pub phase: Phase,
    /// Orders this gateway made for the name since it started.
    pub orders: u64,
}

fn rfc3339_ms(ms: u64) -> String {
    crate::http::timefmt::rfc3339(UNIX_EPOCH + Duration::from_millis(ms))
}

impl NameState {
    /// The failure that decides the back-off: the later of the two.
    fn failure(&self) -> Option<&FailureRecord> {
        match (&self.shared_failure, &self.local_failure) {
            (Some(a), Some(b)) => Some(if a.next_attempt_ms >= b.next_attempt_ms {
                a
            } else {
                b
            }),
            (a, b) => a.as_ref().or(b.as_ref()),
        }
    }

    /// Failed orders in a row.
    pub fn failures(&self) -> u32 {
        self.failure().map_or(0, |f| f.failures)
    }

    /// Take what the store holds for the name: `cert`, a usable
    /// certificate, and `failure`, `None` when it could not be read.
    /// Whether the certificate changed (to be served).
    ///
    /// This gateway's own failure is forgotten once the name was certified
    /// elsewhere: a new certificate appeared, or the shared failure was
    /// cleared (which the gateway that succeeded does). Otherwise the name
    /// would show `failed` and back off from a stale count for ever.
    pub fn observe(
        &mut self,
        cert: Option<CertRecord>,
        failure: Option<Option<FailureRecord>>,
    ) -> bool {
        let changed = cert.is_some() && cert != self.cert;
        if changed {
            self.cert = cert;
            self.local_failure = None;
        }
        if let Some(failure) = failure {
            if failure.is_none() && self.shared_failure.is_some() {
                self.local_failure = None;
            }
            self.shared_failure = failure;
        }
        changed
    }

    /// When the certificate should be renewed (ms since the epoch).
    fn renew_at_ms(&self) -> Option<u64> {
        self.cert.as_ref().map(|c| c.renew_at() * 1000)
    }

    /// Whether to order now: no certificate or one to renew, and no
    /// back-off in the way.
    pub fn due(&self, now_ms: u64) -> bool {
        let wanted = self.renew_at_ms().is_none_or(|at| now_ms >= at);
        let allowed = self.failure().is_none_or(|f| now_ms >= f.next_attempt_ms);
        wanted && allowed
    }

    /// When this name next needs a look, if later than now.
    pub fn wake_at(&self, now_ms: u64) -> Option<u64> {
        let renew = self.renew_at_ms().filter(|at| *at > now_ms);
        let retry = self
            .failure()
            .map(|f| f.next_attempt_ms)
            .filter(|at| *at > now_ms);
        match (renew, retry) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The status word: `valid`, `ordering`, `waiting`, `failed` or
    /// `missing`.
    fn status(&self) -> &'static str {
        match (self.phase, self.failure(), &self.cert) {
            (Phase::Ordering, _, _) => "ordering",
            (Phase::Waiting, _, _) => "waiting",
            (Phase::Idle, Some(_), _) => "failed",
            (Phase::Idle, None, Some(_)) => "valid",
            (Phase::Idle, None, None) => "missing",
        }
    }

    /// The admin API's view.
    pub fn to_json(&self, name: &str, now_ms: u64) -> serde_json::Value {
        let failure = self.failure();
        serde_json::json!({
            "name": name,
            "status": self.status(),
            "serial": self.cert.as_ref().map(|c| c.serial.clone()),
            "not_after": self.cert.as_ref().map(|c| rfc3339_ms(c.not_after * 1000)),
            "renew_at": self.renew_at_ms().map(rfc3339_ms),
            "last_error": failure.map(|f| f.error.clone()).or_else(|| self.store_error.clone()),
            "failures": failure.map_or(0, |f| f.failures),
            "next_attempt": failure
                .map(|f| f.next_attempt_ms)
                .filter(|at| *at > now_ms)
                .map(rfc3339_ms),
            "orders": self.orders,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: u64, not_after: u64) -> CertRecord {
        CertRecord {
            chain_pem: String::new(),
            key_pem: String::new(),
            not_before,
            not_after,
            serial: "01".into(),
        }
    }

    #[test]
    fn acme_renews_at_two_thirds_of_the_lifetime() {
        let state = NameState {
            cert: Some(cert(1000, 1090)),
            ..NameState::default()
        };
        assert!(!state.due(1_059_000));
        assert!(state.due(1_060_000));
        assert_eq!(state.wake_at(1_000_000), Some(1_060_000));
        assert!(NameState::default().due(0));
    }

    #[test]
    fn acme_back_off_holds_orders_until_the_next_attempt() {
        let state = NameState {
            cert: Some(cert(0, 90)),
            shared_failure: Some(FailureRecord {
                error: "boom".into(),
                failures: 2,
                next_attempt_ms: 100_000,
            }),
            ..NameState::default()
        };
        assert!(!state.due(99_999));
        assert!(state.due(100_000));
        assert_eq!(state.status(), "failed");
        assert_eq!(state.to_json("a", 0)["failures"], 2);
    }

    fn failure(failures: u32) -> FailureRecord {
        FailureRecord {
            error: "boom".into(),
            failures,
            next_attempt_ms: 100_000,
        }
    }

    #[test]
    fn acme_local_failure_is_forgotten_when_another_gateway_certifies() {
        // A certificate another gateway obtained appears in the store.
        let mut state = NameState {
            cert: Some(cert(0, 90)),
            local_failure: Some(failure(3)),
            ..NameState::default()
        };
        assert!(!state.observe(Some(cert(0, 90)), Some(None)));
        assert_eq!(state.status(), "failed", "same certificate: still failed");
        assert!(state.observe(Some(cert(80, 170)), Some(None)));
        assert_eq!(state.status(), "valid");
        assert_eq!(state.failures(), 0);

        // The shared failure is cleared by the gateway that succeeded.
        let mut state = NameState {
            shared_failure: Some(failure(2)),
            local_failure: Some(FailureRecord {
                next_attempt_ms: 200_000,
                ..failure(3)
            }),
            ..NameState::default()
        };
        assert!(!state.observe(None, None), "store unreadable: kept");
        assert_eq!(state.failures(), 3);
        state.observe(None, Some(None));
        assert_eq!(state.failures(), 0);
        assert!(state.local_failure.is_none());

        // A failure never shared (the store was down) still bounds retries.
        let mut state = NameState {
            local_failure: Some(failure(1)),
            ..NameState::default()
        };
        state.observe(None, Some(None));
        assert_eq!(state.failures(), 1);
    }
}
