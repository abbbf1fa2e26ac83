//! The discovery task of one upstream: resolve its sources (at once, so a
//! slow one holds up no other), turn the answers into a new target set
//! when they changed (keeping the very same `Target` for an address that
//! stays, so its health and in-flight count carry over), and sleep until
//! the shortest TTL runs out. A source whose lookup fails keeps its last
//! good endpoints (from the previous pipeline too, after a reload) and is
//! retried with back-off. The task ends when its pipeline's upstreams are
//! dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::time::Instant;

use super::resolve::{Resolver, lookup};
use super::{Answers, endpoints};
use super::{Endpoint, Source};
use crate::config::DiscoveryConfig;
use crate::upstream::set::TargetSet;
use crate::upstream::target::Target;
use crate::upstream::tls::ServerNames;

/// The longest back-off between retries of a failing source (unless
/// `min_ttl_ms` is longer).
const MAX_RETRY: Duration = Duration::from_secs(10);

/// What the admin API shows of an upstream's discovery, and the signal
/// that its first round is done.
#[derive(Debug)]
pub struct Discovery {
    status: Mutex<Status>,
    ready: watch::Sender<bool>,
    /// How long a request waits for the first round.
    pub first_wait: Duration,
    /// Each source's last good endpoints, for the next pipeline to start
    /// from.
    answers: Mutex<Answers>,
}

/// The last round's outcome.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// When a round last ended with every source resolved.
    pub last_resolved: Option<SystemTime>,
    /// When the next round starts.
    pub next_refresh: Option<SystemTime>,
    /// The failure of the last round, if any source failed.
    pub last_error: Option<String>,
}

impl Discovery {
    /// Not yet resolved in this pipeline; `answers` (with their time,
    /// `last_resolved`) are what the previous one found.
    pub fn new(first_wait: Duration, answers: Answers, last_resolved: Option<SystemTime>) -> Self {
        Discovery {
            status: Mutex::new(Status {
                last_resolved,
                ..Status::default()
            }),
            ready: watch::Sender::new(false),
            first_wait,
            answers: Mutex::new(answers),
        }
    }

    /// Each source's last good endpoints.
    pub fn answers(&self) -> Answers {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The last round's outcome.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait (up to `first_wait`) until the first round is done.
    pub async fn first_round(&self) {
        let mut ready = self.ready.subscribe();
        let _ = tokio::time::timeout(self.first_wait, ready.wait_for(|done| *done)).await;
    }

    fn keep(&self, answers: Answers) {
        *self.answers.lock().unwrap_or_else(|p| p.into_inner()) = answers;
    }

    fn record(&self, error: Option<String>, next: Duration) {
        let now = SystemTime::now();
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if error.is_none() {
            status.last_resolved = Some(now);
        }
        status.last_error = error;
        status.next_refresh = Some(now + next);
        drop(status);
        self.ready.send_replace(true);
    }
}

/// What the task works on.
pub struct Watch {
    /// The upstream's name, for logs.
    pub upstream: String,
    /// Its sources to resolve.
    pub sources: Vec<Source>,
    /// Its configured addresses, always in the set.
    pub fixed: Vec<Arc<Target>>,
    /// The set requests pick from.
    pub set: Arc<ArcSwap<TargetSet>>,
    /// Whether sets need a hash ring.
    pub hashed: bool,
    /// `max_in_flight` of new targets.
    pub slots: usize,
    /// Status and first-round signal.
    pub discovery: Arc<Discovery>,
    /// The TLS names of targets, for connections to them.
    pub names: Arc<ServerNames>,
}

/// One source's state between rounds.
#[derive(Default)]
struct Known {
    endpoints: Vec<Endpoint>,
    /// SRV target hosts left out of the last answer, to log changes only.
    skipped: usize,
    /// Failed lookups in a row.
    failures: u32,
    /// The last failure, while failing.
    error: Option<String>,
    /// When to ask again.
    due: Option<Instant>,
}

/// Refresh bounds from `[discovery]`.
struct Bounds {
    min_ttl: Duration,
    max_ttl: Duration,
    /// Limit on one query (an SRV lookup asks one, then one per target
    /// host at once).
    limit: Duration,
}

impl Known {
    /// Ask again: take the answer, or keep the last one and back off.
    async fn refresh(
        &mut self,
        source: &Source,
        resolver: &Resolver,
        bounds: &Bounds,
        upstream: &str,
    ) {
        match lookup(resolver, source, bounds.limit).await {
            Ok(answer) => {
                if self.failures > 0 {
                    tracing::info!(upstream, source = source.label(), "DNS answers again");
                }
                if answer.skipped.len() != self.skipped {
                    self.skipped = answer.skipped.len();
                    if !answer.skipped.is_empty() {
                        tracing::warn!(upstream, source = source.label(), skipped = ?answer.skipped,
                            "SRV target hosts that did not resolve are left out");
                    }
                }
                self.failures = 0;
                self.error = None;
                self.endpoints = answer.endpoints;
                let ttl = refresh_after(answer.ttl, bounds.min_ttl, bounds.max_ttl);
                self.due = Some(Instant::now() + ttl);
            }
            Err(e) => {
                if self.failures == 0 {
                    tracing::warn!(
                        upstream,
                        "DNS lookup failed, keeping the last answer ({} targets): {e}",
                        self.endpoints.len()
                    );
                }
                self.failures = self.failures.saturating_add(1);
                self.error = Some(e);
                self.due = Some(Instant::now() + backoff(bounds.min_ttl, self.failures));
            }
        }
    }
}

/// Resolve `watch.sources` until `alive` is gone.
pub async fn run(watch: Watch, resolver: Resolver, config: DiscoveryConfig, alive: Weak<()>) {
    let bounds = Bounds {
        min_ttl: Duration::from_millis(config.min_ttl_ms),
        max_ttl: Duration::from_millis(config.max_ttl_ms),
        // Per query: a few attempts at a few servers.
        limit: Duration::from_millis(config.timeout_ms.saturating_mul(4)),
    };
    // Start from the answers the previous pipeline had (if any), refreshed
    // at once.
    let seeded = watch.discovery.answers();
    let mut known: Vec<Known> = watch
        .sources
        .iter()
        .map(|source| Known {
            endpoints: endpoints(&seeded, source),
            ..Known::default()
        })
        .collect();
    loop {
        let now = Instant::now();
        // Sources are asked at once: a slow one does not hold up the rest.
        let due = watch
            .sources
            .iter()
            .zip(known.iter_mut())
            .filter(|(_, state)| state.due.is_none_or(|due| due <= now))
            .map(|(source, state)| state.refresh(source, &resolver, &bounds, &watch.upstream));
        futures::future::join_all(due).await;
        publish(&watch, &known);
        watch.discovery.keep(
            watch
                .sources
                .iter()
                .zip(&known)
                .map(|(s, k)| (s.clone(), k.endpoints.clone()))
                .collect(),
        );
        let next = known
            .iter()
            .filter_map(|k| k.due)
            .min()
            .unwrap_or(now + bounds.max_ttl);
        let error = known.iter().find_map(|k| k.error.clone());
        watch
            .discovery
            .record(error, next.saturating_duration_since(Instant::now()));
        if !sleep_until(next, &alive).await {
            return;
        }
    }
}

/// How long an answer with `ttl` seconds is used: its TTL, but at least
/// `min_ttl` (a TTL of 0 would mean a lookup per request) and at most
/// `max_ttl`.
pub fn refresh_after(ttl: u32, min_ttl: Duration, max_ttl: Duration) -> Duration {
    Duration::from_secs(u64::from(ttl)).clamp(min_ttl, max_ttl.max(min_ttl))
}

/// The delay before retry number `failures`: `min_ttl`, doubling, at most
/// [`MAX_RETRY`] (or `min_ttl` if that is longer).
pub fn backoff(min_ttl: Duration, failures: u32) -> Duration {
    let doubled = min_ttl.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_RETRY.max(min_ttl))
}

/// Sleep until `deadline`, waking each second to see whether the upstreams
/// are still there; false once they are gone.
async fn sleep_until(deadline: Instant, alive: &Weak<()>) -> bool {
    loop {
        if alive.upgrade().is_none() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_secs(1))).await;
    }
}

/// Store a new set if the endpoints differ from the current one.
fn publish(watch: &Watch, known: &[Known]) {
    let current = watch.set.load();
    let targets = merge(
        &watch.fixed,
        known.iter().flat_map(|k| &k.endpoints),
        current.targets(),
        watch.slots,
    );
    let same = targets.len() == current.targets().len()
        && targets
            .iter()
            .zip(current.targets())
            .all(|(a, b)| Arc::ptr_eq(a, b));
    if same {
        return;
    }
    let joined: Vec<String> = targets
        .iter()
        .filter(|t| !current.targets().iter().any(|c| Arc::ptr_eq(c, t)))
        .map(|t| t.authority().to_string())
        .collect();
    let left: Vec<String> = current
        .targets()
        .iter()
        .filter(|c| !targets.iter().any(|t| Arc::ptr_eq(c, t)))
        .map(|t| format!("{} ({} in flight, draining)", t.authority(), t.in_flight()))
        .collect();
    tracing::info!(upstream = watch.upstream, ?joined, ?left, "targets changed");
    // Names first: a request may pick a new target as soon as it is stored.
    watch.names.update(&targets);
    watch
        .set
        .store(Arc::new(TargetSet::new(targets, watch.hashed)));
}

/// The identity of a discovered target: the same address reached the same
/// way with the same weight and tier is the same target.
type Key = (String, bool, Option<Arc<str>>, u32, u32);

fn key(target: &Target) -> Key {
    (
        target.authority().to_string(),
        target.https(),
        target.server_name().map(Arc::from),
        target.weight(),
        target.tier(),
    )
}

/// The fixed targets followed by one per endpoint (the same address from
/// two sources counts once: in the lower tier, with the weights of that
/// tier added), reusing a target of `current` whenever one has the same
/// key, in a stable order.
pub fn merge<'a>(
    fixed: &[Arc<Target>],
    endpoints: impl Iterator<Item = &'a Endpoint>,
    current: &[Arc<Target>],
    slots: usize,
) -> Vec<Arc<Target>> {
    let mut found: Vec<Endpoint> = Vec::new();
    for endpoint in endpoints {
        match found
            .iter_mut()
            .find(|e| e.addr == endpoint.addr && e.https == endpoint.https)
        {
            Some(e) if e.tier == endpoint.tier => {
                e.weight = e.weight.saturating_add(endpoint.weight);
            }
            Some(e) if e.tier > endpoint.tier => *e = endpoint.clone(),
            Some(_) => {}
            None => found.push(endpoint.clone()),
        }
    }
    found.sort_by_key(|e| (e.origin.clone(), e.addr));
    let existing: HashMap<Key, &Arc<Target>> = current.iter().map(|t| (key(t), t)).collect();
    let mut targets = fixed.to_vec();
    for endpoint in found {
        let Ok(authority) = endpoint.addr.to_string().parse() else {
            continue;
        };
        let target = Target::new(authority, endpoint.https, slots)
            .discovered(endpoint.weight, endpoint.origin, endpoint.server_name)
            .in_tier(endpoint.tier);
        match existing.get(&key(&target)) {
            Some(same) => targets.push(Arc::clone(same)),
            None => targets.push(Arc::new(target)),
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(addr: &str, weight: u32) -> Endpoint {
        Endpoint {
            addr: addr.parse().unwrap(),
            https: false,
            server_name: "api.test".into(),
            origin: "api.test:80".into(),
            weight,
            tier: 0,
        }
    }

    #[test]
    fn merge_keeps_targets_that_stay_and_adds_new_ones() {
        let fixed = vec![Arc::new(Target::new(
            "10.0.0.1:80".parse().unwrap(),
            false,
            8,
        ))];
        let first = merge(
            &fixed,
            [endpoint("10.0.0.2:80", 1), endpoint("10.0.0.3:80", 1)].iter(),
            &[],
            8,
        );
        assert_eq!(first.len(), 3);
        assert!(Arc::ptr_eq(&first[0], &fixed[0]));
        let second = merge(
            &fixed,
            [endpoint("10.0.0.3:80", 1), endpoint("10.0.0.4:80", 1)].iter(),
            &first,
            8,
        );
        let names: Vec<String> = second.iter().map(|t| t.authority().to_string()).collect();
        assert_eq!(names, ["10.0.0.1:80", "10.0.0.3:80", "10.0.0.4:80"]);
        assert!(
            Arc::ptr_eq(&second[1], &first[2]),
            "a staying address keeps its target"
        );
        // A changed weight is a new target; duplicates add up.
        let third = merge(
            &[],
            [endpoint("10.0.0.3:80", 2), endpoint("10.0.0.3:80", 3)].iter(),
            &second,
            8,
        );
        assert_eq!(third.len(), 1);
        assert_eq!(third[0].weight(), 5);
    }

    #[test]
    fn ttls_are_clamped() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(300));
        assert_eq!(refresh_after(0, min, max), min);
        assert_eq!(refresh_after(30, min, max), Duration::from_secs(30));
        assert_eq!(refresh_after(86_400, min, max), max);
    }

    #[test]
    fn backoff_doubles_from_min_ttl_up_to_a_bound() {
        let min = Duration::from_millis(500);
        assert_eq!(backoff(min, 1), min);
        assert_eq!(backoff(min, 2), Duration::from_secs(1));
        assert_eq!(backoff(min, 30), MAX_RETRY);
        assert_eq!(backoff(Duration::from_secs(60), 3), Duration::from_secs(60));
    }
}
