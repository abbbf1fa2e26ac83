//! A plugin version's record: calls and failures (in total, and in the
//! current window), and its quarantine. Kept per plugin file version (name
//! and SHA-256) across reloads, so a reload of an unchanged plugin neither
//! forgets a quarantine nor resets the counts a canary is judged by.
//!
//! The quarantine is a circuit breaker: past `failure_rate` over at least
//! `min_calls` calls in a `window_s` window, the plugin is not called for
//! `backoff_s`; then one request probes it. A probe that succeeds closes
//! the quarantine; one that fails reopens it for twice the back-off (at most
//! `max_backoff_s`). An operator can force or lift it (admin API).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use crate::config::QuarantineConfig;

/// What to do with the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Call the plugin.
    Call,
    /// Call it as the probe of a quarantine whose back-off has passed.
    Probe,
    /// Do not call it: it is quarantined.
    Quarantined,
}

/// One plugin version's record.
#[derive(Debug)]
pub struct Health {
    /// The plugin version, `NAME` or `NAME.canary`, for logs.
    name: String,
    config: Option<QuarantineConfig>,
    /// Time zero for the millisecond fields.
    epoch: Instant,
    calls: AtomicU64,
    failures: AtomicU64,
    window_start_ms: AtomicU64,
    window_calls: AtomicU32,
    window_failures: AtomicU32,
    /// Quarantined until this time (ms from `epoch`); 0 when not.
    until_ms: AtomicU64,
    backoff_ms: AtomicU64,
    /// A probe is running.
    probing: AtomicBool,
    /// Quarantined by an operator: only an operator lifts it.
    forced: AtomicBool,
    /// Times it was quarantined (by failures or by hand).
    quarantines: AtomicU64,
    /// Time spent in its hooks, in microseconds.
    busy_us: AtomicU64,
    /// A canary rolled back: out of service until its file changes.
    retired: AtomicBool,
}

impl Health {
    /// A fresh record; `config` None never quarantines by itself.
    pub fn new(name: &str, config: Option<QuarantineConfig>) -> Health {
        let backoff = config.as_ref().map_or(0, |c| c.backoff_s * 1000);
        Health {
            name: name.to_string(),
            config,
            epoch: Instant::now(),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            window_start_ms: AtomicU64::new(0),
            window_calls: AtomicU32::new(0),
            window_failures: AtomicU32::new(0),
            until_ms: AtomicU64::new(0),
            backoff_ms: AtomicU64::new(backoff),
            probing: AtomicBool::new(false),
            forced: AtomicBool::new(false),
            quarantines: AtomicU64::new(0),
            busy_us: AtomicU64::new(0),
            retired: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means "not quarantined" in `until_ms`.
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }

    /// Whether (and how) to call the plugin now.
    pub fn admit(&self) -> Admit {
        if self.forced.load(Ordering::Relaxed) {
            return Admit::Quarantined;
        }
        let until = self.until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return Admit::Call;
        }
        if self.now_ms() < until {
            return Admit::Quarantined;
        }
        // The back-off has passed: one request probes, the others wait.
        match self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => Admit::Probe,
            Err(_) => Admit::Quarantined,
        }
    }

    /// Record a call's outcome (`admitted` as [`Health::admit`] said) and
    /// the time it took.
    pub fn record(&self, admitted: Admit, ok: bool, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.busy_us.fetch_add(micros, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let Some(config) = &self.config else {
            return;
        };
        let now = self.now_ms();
        if admitted == Admit::Probe {
            self.settle_probe(config, ok, now);
            return;
        }
        let (calls, failures) = self.count_in_window(config, ok, now);
        let tripped = calls >= config.min_calls
            && f64::from(failures) >= config.failure_rate * f64::from(calls);
        if tripped && self.until_ms.load(Ordering::Relaxed) == 0 {
            let backoff = self.backoff_ms.load(Ordering::Relaxed);
            self.until_ms.store(now + backoff, Ordering::Relaxed);
            self.quarantines.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                plugin = self.name,
                calls,
                failures,
                "plugin quarantined: {failures} of its last {calls} calls failed; \
                 probed again in {} s",
                backoff / 1000
            );
        }
    }

    /// Count the call in the current window (starting a new one when it is
    /// over); returns the window's calls and failures.
    fn count_in_window(&self, config: &QuarantineConfig, ok: bool, now: u64) -> (u32, u32) {
        let start = self.window_start_ms.load(Ordering::Relaxed);
        if now.saturating_sub(start) > config.window_s * 1000
            && self
                .window_start_ms
                .compare_exchange(start, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.window_calls.store(0, Ordering::Relaxed);
            self.window_failures.store(0, Ordering::Relaxed);
        }
        let calls = self.window_calls.fetch_add(1, Ordering::Relaxed) + 1;
        let failures = match ok {
            true => self.window_failures.load(Ordering::Relaxed),
            false => self.window_failures.fetch_add(1, Ordering::Relaxed) + 1,
        };
        (calls, failures)
    }

    fn settle_probe(&self, config: &QuarantineConfig, ok: bool, now: u64) {
        if ok {
            self.lift();
            tracing::info!(
                plugin = self.name,
                "plugin probe succeeded: quarantine lifted"
            );
        } else {
            let doubled =
                (self.backoff_ms.load(Ordering::Relaxed) * 2).min(config.max_backoff_s * 1000);
            self.backoff_ms.store(doubled, Ordering::Relaxed);
            self.until_ms.store(now + doubled, Ordering::Relaxed);
            tracing::warn!(
                "plugin probe failed: quarantined for {} s more",
                doubled / 1000
            );
        }
        self.probing.store(false, Ordering::Release);
    }

    /// Quarantine by hand, until lifted by hand.
    pub fn force(&self) {
        if !self.forced.swap(true, Ordering::Relaxed) {
            self.quarantines.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// End a quarantine (forced or not) and start counting afresh.
    pub fn lift(&self) {
        self.forced.store(false, Ordering::Relaxed);
        self.until_ms.store(0, Ordering::Relaxed);
        let backoff = self.config.as_ref().map_or(0, |c| c.backoff_s * 1000);
        self.backoff_ms.store(backoff, Ordering::Relaxed);
        self.window_start_ms.store(self.now_ms(), Ordering::Relaxed);
        self.window_calls.store(0, Ordering::Relaxed);
        self.window_failures.store(0, Ordering::Relaxed);
    }

    /// Calls and failures since this version was first loaded.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// The plugin version it records.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Take a canary out of service.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// Whether this canary was rolled back.
    pub fn retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    /// Whether it is quarantined now (a probe may be due).
    pub fn quarantined(&self) -> bool {
        self.forced.load(Ordering::Relaxed) || self.until_ms.load(Ordering::Relaxed) != 0
    }

    /// For the admin API.
    pub fn status(&self) -> serde_json::Value {
        let until = self.until_ms.load(Ordering::Relaxed);
        let state = match (self.forced.load(Ordering::Relaxed), until) {
            (true, _) => "forced",
            (false, 0) => "serving",
            (false, _) => "quarantined",
        };
        let (calls, failures) = self.totals();
        let mean_us = match calls {
            0 => None,
            n => Some(self.busy_us.load(Ordering::Relaxed) / n),
        };
        let probe_in = (state == "quarantined")
            .then(|| Duration::from_millis(until.saturating_sub(self.now_ms())).as_secs_f64());
        serde_json::json!({
            "state": state,
            "calls": calls,
            "failures": failures,
            "failure_rate": if calls == 0 { 0.0 } else { failures as f64 / calls as f64 },
            "hook_mean_us": mean_us,
            "quarantines": self.quarantines.load(Ordering::Relaxed),
            "probe_in_s": probe_in,
            "automatic": self.config.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> QuarantineConfig {
        QuarantineConfig {
            failure_rate: 0.5,
            min_calls: 4,
            window_s: 60,
            backoff_s: 1,
            max_backoff_s: 4,
        }
    }

    #[test]
    fn trips_past_the_rate_then_probes_after_the_backoff() {
        let health = Health::new("t", Some(quick()));
        for ok in [true, false, true] {
            assert_eq!(health.admit(), Admit::Call);
            health.record(Admit::Call, ok, Duration::ZERO);
        }
        assert!(!health.quarantined(), "3 calls are under min_calls");
        health.record(Admit::Call, false, Duration::ZERO);
        assert!(health.quarantined(), "2 of 4 failed");
        assert_eq!(health.admit(), Admit::Quarantined);
        // As if the back-off had passed.
        health.until_ms.store(1, Ordering::Relaxed);
        assert_eq!(health.admit(), Admit::Probe);
        assert_eq!(health.admit(), Admit::Quarantined, "one probe at a time");
        health.record(Admit::Probe, false, Duration::ZERO);
        assert_eq!(health.backoff_ms.load(Ordering::Relaxed), 2000);
        assert_eq!(health.admit(), Admit::Quarantined);
        health.until_ms.store(1, Ordering::Relaxed);
        assert_eq!(health.admit(), Admit::Probe);
        health.record(Admit::Probe, true, Duration::ZERO);
        assert!(!health.quarantined());
        assert_eq!(health.admit(), Admit::Call);
        assert_eq!(health.totals(), (6, 3));
    }

    #[test]
    fn without_config_it_counts_but_never_quarantines() {
        let health = Health::new("t", None);
        for _ in 0..100 {
            health.record(Admit::Call, false, Duration::ZERO);
        }
        assert_eq!(health.admit(), Admit::Call);
        assert_eq!(health.totals(), (100, 100));
    }

    #[test]
    fn an_operator_forces_and_lifts() {
        let health = Health::new("t", None);
        health.force();
        assert_eq!(health.admit(), Admit::Quarantined);
        assert_eq!(health.status()["state"], "forced");
        health.lift();
        assert_eq!(health.admit(), Admit::Call);
        assert_eq!(health.status()["quarantines"], 1);
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = QuarantineConfig {
            failure_rate: 0.0,
            ..quick()
        };
        assert!(bad.validate("x").is_err());
        let bad = QuarantineConfig {
            max_backoff_s: 0,
            ..quick()
        };
        assert!(bad.validate("x").is_err());
        assert!(quick().validate("x").is_ok());
    }
}
