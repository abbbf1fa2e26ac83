//! Choosing a target: round robin, least requests, or a consistent hash of
//! the client IP or a header (so one client keeps landing on one target while
//! the set of targets is stable). Only available targets are chosen.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::time::Instant;

use super::target::Target;

/// Virtual nodes per target on the hash ring: enough to spread keys evenly.
const RING_POINTS: usize = 160;

/// The balancing policy of an upstream.
#[derive(Debug)]
pub enum Balancer {
    /// Each target in turn.
    RoundRobin(AtomicUsize),
    /// The target with the fewest requests in flight (ties in turn).
    LeastRequests(AtomicUsize),
    /// A ring of target hashes; the key picks a point on it.
    ConsistentHash {
        /// `(point, target index)`, sorted by point.
        ring: Vec<(u64, usize)>,
        /// Fallback when a request has no key.
        next: AtomicUsize,
    },
}

/// FNV-1a: stable across processes and versions, so gateways sharing
/// targets agree on the ring.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short keys; finish with a splitmix step.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

impl Balancer {
    /// Round robin.
    pub fn round_robin() -> Self {
        Balancer::RoundRobin(AtomicUsize::new(0))
    }

    /// Least requests.
    pub fn least_requests() -> Self {
        Balancer::LeastRequests(AtomicUsize::new(0))
    }

    /// A hash ring over `targets`.
    pub fn consistent_hash(targets: &[Arc<Target>]) -> Self {
        let mut ring = Vec::with_capacity(targets.len() * RING_POINTS);
        for (index, target) in targets.iter().enumerate() {
            for point in 0..RING_POINTS {
                let label = format!("{}#{point}", target.authority());
                ring.push((fnv1a(label.as_bytes()), index));
            }
        }
        ring.sort_unstable();
        Balancer::ConsistentHash {
            ring,
            next: AtomicUsize::new(0),
        }
    }

    /// Pick an available target not in `skip` (falling back to a skipped
    /// one if nothing else is available). `key` feeds the consistent hash.
    pub fn pick<'a>(
        &self,
        targets: &'a [Arc<Target>],
        key: Option<&str>,
        skip: &[usize],
    ) -> Option<(usize, &'a Arc<Target>)> {
        let now = Instant::now();
        let usable = |i: usize| targets.get(i).is_some_and(|t| t.available(now));
        let fresh = |i: usize| usable(i) && !skip.contains(&i);
        let retry = !skip.is_empty();
        let chosen = self
            .choose(targets, key, &fresh, retry)
            .or_else(|| self.choose(targets, key, &usable, retry))?;
        Some((chosen, targets.get(chosen)?))
    }

    fn choose(
        &self,
        targets: &[Arc<Target>],
        key: Option<&str>,
        ok: &dyn Fn(usize) -> bool,
        retry: bool,
    ) -> Option<usize> {
        let n = targets.len();
        match self {
            Balancer::RoundRobin(next) => round_robin(next, n, ok, retry),
            Balancer::LeastRequests(next) => {
                // Start the scan at a rotating offset so ties spread.
                let start = next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| (start + i) % n)
                    .filter(|&i| ok(i))
                    .min_by_key(|&i| targets.get(i).map_or(usize::MAX, |t| t.in_flight()))
            }
            Balancer::ConsistentHash { ring, next } => match key {
                Some(key) => {
                    let point = fnv1a(key.as_bytes());
                    let start = ring.partition_point(|(p, _)| *p < point);
                    // Walk the ring once, starting at the key's point.
                    let (head, tail) = ring.split_at(start.min(ring.len()));
                    tail.iter().chain(head).map(|&(_, i)| i).find(|&i| ok(i))
                }
                None => round_robin(next, n, ok, retry),
            },
        }
    }
}

/// Next in turn. A retry (`skip` non-empty) starts from the current turn
/// without taking one, so retries do not shift the rotation onto the
/// target that just failed.
fn round_robin(
    next: &AtomicUsize,
    n: usize,
    ok: &dyn Fn(usize) -> bool,
    retry: bool,
) -> Option<usize> {
    let start = if retry {
        next.load(Ordering::Relaxed)
    } else {
        next.fetch_add(1, Ordering::Relaxed)
    };
    (0..n).map(|i| (start + i) % n).find(|&i| ok(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn targets(n: usize) -> Vec<Arc<Target>> {
        (0..n)
            .map(|i| {
                Arc::new(Target::new(
                    format!("127.0.0.1:{}", 5000 + i).parse().unwrap(),
                    false,
                    64,
                ))
            })
            .collect()
    }

    #[tokio::test]
    async fn round_robin_cycles_and_skips_unavailable() {
        let t = targets(3);
        let b = Balancer::round_robin();
        let picks: Vec<usize> = (0..6).map(|_| b.pick(&t, None, &[]).unwrap().0).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        t[1].set_checked_healthy(false);
        let picks: Vec<usize> = (0..4).map(|_| b.pick(&t, None, &[]).unwrap().0).collect();
        assert!(!picks.contains(&1));
        t[0].set_checked_healthy(false);
        t[2].set_checked_healthy(false);
        assert!(b.pick(&t, None, &[]).is_none());
    }

    #[tokio::test]
    async fn skip_prefers_other_targets_but_falls_back() {
        let t = targets(2);
        let b = Balancer::round_robin();
        assert_eq!(b.pick(&t, None, &[0]).unwrap().0, 1);
        assert_eq!(b.pick(&t, None, &[0]).unwrap().0, 1);
        t[1].set_checked_healthy(false);
        assert_eq!(b.pick(&t, None, &[0]).unwrap().0, 0);
    }

    #[tokio::test]
    async fn least_requests_prefers_idle_targets() {
        let t = targets(3);
        let b = Balancer::least_requests();
        let wait = Duration::from_millis(1);
        let _busy0 = t[0].start(wait).await.unwrap();
        let _busy1a = t[1].start(wait).await.unwrap();
        let _busy1b = t[1].start(wait).await.unwrap();
        for _ in 0..5 {
            assert_eq!(b.pick(&t, None, &[]).unwrap().0, 2);
        }
    }

    #[tokio::test]
    async fn a_full_target_refuses_after_the_wait() {
        let target = Arc::new(Target::new("127.0.0.1:5000".parse().unwrap(), false, 2));
        let wait = Duration::from_millis(5);
        let a = target.start(wait).await.unwrap();
        let _b = target.start(wait).await.unwrap();
        assert!(target.start(wait).await.is_none());
        drop(a);
        assert!(target.start(wait).await.is_some());
    }

    #[tokio::test]
    async fn consistent_hash_is_sticky_spreads_and_moves_few_keys() {
        let t = targets(4);
        let b = Balancer::consistent_hash(&t);
        let pick = |key: &str| b.pick(&t, Some(key), &[]).unwrap().0;
        assert_eq!(pick("alice"), pick("alice"));
        let mut counts = [0usize; 4];
        let keys: Vec<String> = (0..4000).map(|i| format!("user-{i}")).collect();
        let before: Vec<usize> = keys.iter().map(|k| pick(k)).collect();
        for &i in &before {
            counts[i] += 1;
        }
        for c in counts {
            assert!((700..1300).contains(&c), "uneven spread: {counts:?}");
        }
        // Take one target out: only its keys move.
        t[2].set_checked_healthy(false);
        let after: Vec<usize> = keys.iter().map(|k| pick(k)).collect();
        for (b, a) in before.iter().zip(&after) {
            if *b != 2 {
                assert_eq!(a, b);
            } else {
                assert_ne!(*a, 2);
            }
        }
    }
}
