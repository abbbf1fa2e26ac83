//! One target of an upstream: its address, how many requests it is serving,
//! and its health as seen by active checks and by passive ejection.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use http::uri::Authority;
use tokio::time::{Duration, Instant};

/// A target and its health.
#[derive(Debug)]
pub struct Target {
    authority: Authority,
    in_flight: AtomicUsize,
    /// Result of active health checks (true until a check says otherwise).
    checked_healthy: AtomicBool,
    passive: Mutex<Passive>,
}

#[derive(Debug, Default)]
struct Passive {
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
}

/// Passive ejection settings.
#[derive(Debug, Clone, Copy)]
pub struct Ejection {
    /// Consecutive connection failures that eject a target; 0 disables.
    pub failures: u32,
    /// How long an ejected target is left out.
    pub duration: Duration,
}

impl Target {
    /// A healthy target at `authority`.
    pub fn new(authority: Authority) -> Self {
        Target {
            authority,
            in_flight: AtomicUsize::new(0),
            checked_healthy: AtomicBool::new(true),
            passive: Mutex::new(Passive::default()),
        }
    }

    /// `host:port`.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Requests in progress.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether active checks consider it healthy.
    pub fn checked_healthy(&self) -> bool {
        self.checked_healthy.load(Ordering::Relaxed)
    }

    /// Record the verdict of active health checks; returns whether it changed.
    pub fn set_checked_healthy(&self, healthy: bool) -> bool {
        self.checked_healthy.swap(healthy, Ordering::Relaxed) != healthy
    }

    fn passive(&self) -> std::sync::MutexGuard<'_, Passive> {
        self.passive.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether it is in rotation: healthy by checks and not ejected.
    pub fn available(&self, now: Instant) -> bool {
        self.checked_healthy()
            && self
                .passive()
                .ejected_until
                .is_none_or(|until| now >= until)
    }

    /// A connection to it failed; eject it after enough in a row. Returns
    /// whether this failure ejected it.
    pub fn connect_failed(&self, ejection: Ejection) -> bool {
        if ejection.failures == 0 {
            return false;
        }
        let mut passive = self.passive();
        passive.consecutive_failures += 1;
        if passive.consecutive_failures >= ejection.failures {
            passive.consecutive_failures = 0;
            passive.ejected_until = Some(Instant::now() + ejection.duration);
            return true;
        }
        false
    }

    /// A request to it got a response.
    pub fn succeeded(&self) {
        let mut passive = self.passive();
        passive.consecutive_failures = 0;
    }

    /// Count a request as in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// Decrements the target's in-flight count when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Target>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
