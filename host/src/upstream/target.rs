//! One target of an upstream: its address, how many requests it is serving,
//! and its health as seen by active checks and by passive ejection.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use http::uri::Authority;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Duration, Instant};

/// Ids of targets: never reused within a process, unlike addresses in
/// memory, so state kept by id cannot pass to a later target.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A target and its health.
#[derive(Debug)]
pub struct Target {
    /// Unique in the process.
    id: u64,
    authority: Authority,
    https: bool,
    in_flight: AtomicUsize,
    /// Result of active health checks (true until a check says otherwise).
    checked_healthy: AtomicBool,
    passive: Mutex<Passive>,
    /// Requests it may serve at once (`upstream_connections_per_target`).
    slots: Arc<Semaphore>,
    max_in_flight: usize,
    /// Its share of the traffic relative to the others (an SRV weight;
    /// 1 for configured and A/AAAA targets).
    weight: u32,
    /// Where it came from: the DNS name or `srv:` name it was resolved
    /// from, none for an address in the configuration.
    origin: Option<Arc<str>>,
    /// The name TLS sends and verifies when the authority is an address
    /// resolved from a name.
    server_name: Option<Arc<str>>,
    /// Its fallback tier: 0 for the preferred targets, 1 for an SRV
    /// source's next priority, and so on. The balancer picks from the
    /// lowest tier that has an available target.
    tier: u32,
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
    /// A healthy target at `authority` serving at most `max_in_flight`
    /// requests at once.
    pub fn new(authority: Authority, https: bool, max_in_flight: usize) -> Self {
        Target {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            authority,
            https,
            in_flight: AtomicUsize::new(0),
            checked_healthy: AtomicBool::new(true),
            passive: Mutex::new(Passive::default()),
            slots: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            weight: 1,
            origin: None,
            server_name: None,
            tier: 0,
        }
    }

    /// The same target in fallback tier `tier`.
    pub fn in_tier(mut self, tier: u32) -> Self {
        self.tier = tier;
        self
    }

    /// Its fallback tier (0 is preferred).
    pub fn tier(&self) -> u32 {
        self.tier
    }

    /// Its id, unique in the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The same target, found by discovery: its weight, the name it was
    /// resolved from, and the name TLS uses for it.
    pub fn discovered(mut self, weight: u32, origin: Arc<str>, server_name: Arc<str>) -> Self {
        self.weight = weight;
        self.origin = Some(origin);
        self.server_name = Some(server_name);
        self
    }

    /// Its relative share of the traffic.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The DNS or `srv:` name it was resolved from, if any.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The name TLS uses for it when that is not its authority's host.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Whether it is reached over TLS.
    pub fn https(&self) -> bool {
        self.https
    }

    /// The most requests it serves at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
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

    /// Count a request as in flight until the guard drops, waiting up to
    /// `wait` for a slot when all are in use; `None` if none freed.
    pub async fn start(self: &Arc<Self>, wait: Duration) -> Option<InFlight> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(wait, self.slots.clone().acquire_owned())
                .await
                .ok()?
                .ok()?,
        };
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(InFlight {
            target: self.clone(),
            _slot: permit,
        })
    }
}

/// Holds one of the target's slots and counts the request in flight until
/// dropped.
#[derive(Debug)]
pub struct InFlight {
    target: Arc<Target>,
    _slot: OwnedSemaphorePermit,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.target.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
