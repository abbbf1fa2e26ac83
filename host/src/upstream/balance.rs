//! Choosing a target: round robin, least requests, or a consistent hash of
//! the client IP or a header (so one client keeps landing on one target while
//! the set of targets is stable). Only available targets are chosen, from
//! the lowest fallback tier (SRV priority) that has one.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::time::Instant;

use super::set::{TargetSet, Tier, fnv1a};
use super::target::Target;
use std::sync::Arc;

/// The balancing policy of an upstream and its rotation; the targets, and
/// what is precomputed from them, are in each [`TargetSet`].
#[derive(Debug)]
pub enum Balancer {
    /// Each target in turn, as often as its weight says.
    RoundRobin(AtomicUsize),
    /// The target with the fewest requests in flight for its weight (ties
    /// in turn).
    LeastRequests(AtomicUsize),
    /// The set's ring of target hashes; the key picks a point on it. The
    /// counter spreads requests without a key.
    ConsistentHash(AtomicUsize),
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

    /// Consistent hash (the ring is built with each [`TargetSet`]).
    pub fn consistent_hash() -> Self {
        Balancer::ConsistentHash(AtomicUsize::new(0))
    }

    /// Whether sets for it need a hash ring.
    pub fn hashed(&self) -> bool {
        matches!(self, Balancer::ConsistentHash(_))
    }

    /// Pick an available target not in `skip` (falling back to a skipped
    /// one if nothing else is available). `key` feeds the consistent hash.
    /// Only the lowest tier with a candidate is considered (RFC 2782: a
    /// higher SRV priority is used when the lower ones are unreachable).
    pub fn pick<'a>(
        &self,
        set: &'a TargetSet,
        key: Option<&str>,
        skip: &[usize],
    ) -> Option<(usize, &'a Arc<Target>)> {
        let now = Instant::now();
        let targets = set.targets();
        let usable = |i: usize| targets.get(i).is_some_and(|t| t.available(now));
        let fresh = |i: usize| usable(i) && !skip.contains(&i);
        let retry = !skip.is_empty();
        let chosen = self
            .choose_tier(set, key, &fresh, retry)
            .or_else(|| self.choose_tier(set, key, &usable, retry))?;
        Some((chosen, targets.get(chosen)?))
    }

    /// Choose among the lowest tier that has a target passing `ok`.
    fn choose_tier(
        &self,
        set: &TargetSet,
        key: Option<&str>,
        ok: &dyn Fn(usize) -> bool,
        retry: bool,
    ) -> Option<usize> {
        let (index, tier) = set
            .tiers()
            .iter()
            .enumerate()
            .find(|(_, tier)| tier.members.iter().any(|&i| ok(i)))?;
        let in_tier = |i: usize| set.tier_of(i) == Some(index) && ok(i);
        self.choose(set, tier, key, &in_tier, retry)
    }

    fn choose(
        &self,
        set: &TargetSet,
        tier: &Tier,
        key: Option<&str>,
        ok: &dyn Fn(usize) -> bool,
        retry: bool,
    ) -> Option<usize> {
        let targets = set.targets();
        match self {
            Balancer::RoundRobin(next) => round_robin(next, &tier.order, ok, retry),
            Balancer::LeastRequests(next) => {
                let members = &tier.members;
                let n = members.len().max(1);
                // Start the scan at a rotating offset so ties spread.
                let start = next.fetch_add(1, Ordering::Relaxed);
                // Load per unit of weight; the +1 counts the request being
                // placed, so idle targets still rank by weight.
                let load = |i: usize| {
                    let busy = targets.get(i).map_or(usize::MAX / 2, |t| t.in_flight()) as u64;
                    (busy + 1).saturating_mul(1_000_000) / u64::from(set.weight(i))
                };
                (0..members.len())
                    .filter_map(|k| members.get((start + k) % n).copied())
                    .filter(|&i| ok(i))
                    .min_by_key(|&i| load(i))
            }
            Balancer::ConsistentHash(next) => match key {
                Some(key) => {
                    let ring = set.ring();
                    let point = fnv1a(key.as_bytes());
                    let start = ring.partition_point(|(p, _)| *p < point);
                    // Walk the ring once, starting at the key's point.
                    let (head, tail) = ring.split_at(start.min(ring.len()));
                    tail.iter().chain(head).map(|&(_, i)| i).find(|&i| ok(i))
                }
                None => round_robin(next, &tier.order, ok, retry),
            },
        }
    }
}

/// Next in turn. A retry (`skip` non-empty) starts from the current turn
/// without taking one, so retries do not shift the rotation onto the
/// target that just failed.
fn round_robin(
    next: &AtomicUsize,
    order: &[usize],
    ok: &dyn Fn(usize) -> bool,
    retry: bool,
) -> Option<usize> {
    let n = order.len();
    let start = if retry {
        next.load(Ordering::Relaxed)
    } else {
        next.fetch_add(1, Ordering::Relaxed)
    };
    (0..n)
        .filter_map(|i| order.get((start + i) % n).copied())
        .find(|&i| ok(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn set(targets: &[Arc<Target>], hashed: bool) -> TargetSet {
        TargetSet::new(targets.to_vec(), hashed)
    }

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
        let s = set(&t, false);
        let b = Balancer::round_robin();
        let picks: Vec<usize> = (0..6).map(|_| b.pick(&s, None, &[]).unwrap().0).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        t[1].set_checked_healthy(false);
        let picks: Vec<usize> = (0..4).map(|_| b.pick(&s, None, &[]).unwrap().0).collect();
        assert!(!picks.contains(&1));
        t[0].set_checked_healthy(false);
        t[2].set_checked_healthy(false);
        assert!(b.pick(&s, None, &[]).is_none());
    }

    #[tokio::test]
    async fn skip_prefers_other_targets_but_falls_back() {
        let t = targets(2);
        let s = set(&t, false);
        let b = Balancer::round_robin();
        assert_eq!(b.pick(&s, None, &[0]).unwrap().0, 1);
        assert_eq!(b.pick(&s, None, &[0]).unwrap().0, 1);
        t[1].set_checked_healthy(false);
        assert_eq!(b.pick(&s, None, &[0]).unwrap().0, 0);
    }

    #[tokio::test]
    async fn least_requests_prefers_idle_targets() {
        let t = targets(3);
        let s = set(&t, false);
        let b = Balancer::least_requests();
        let wait = Duration::from_millis(1);
        let _busy0 = t[0].start(wait).await.unwrap();
        let _busy1a = t[1].start(wait).await.unwrap();
        let _busy1b = t[1].start(wait).await.unwrap();
        for _ in 0..5 {
            assert_eq!(b.pick(&s, None, &[]).unwrap().0, 2);
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
        let s = set(&t, true);
        let b = Balancer::consistent_hash();
        let pick = |key: &str| b.pick(&s, Some(key), &[]).unwrap().0;
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

    fn weighted(weights: &[u32]) -> Vec<Arc<Target>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let t = Target::new(
                    format!("127.0.0.1:{}", 6000 + i).parse().unwrap(),
                    false,
                    64,
                );
                Arc::new(t.discovered(w, "srv:x".into(), "x".into()))
            })
            .collect()
    }

    #[tokio::test]
    async fn weights_share_round_robin_least_requests_and_the_ring() {
        let t = weighted(&[3, 1]);
        let count = |b: &Balancer, s: &TargetSet, keyed: bool| {
            let mut counts = [0usize; 2];
            for i in 0..4000 {
                let key = format!("k{i}");
                let key = keyed.then_some(key.as_str());
                counts[b.pick(s, key, &[]).unwrap().0] += 1;
            }
            counts
        };
        let plain = set(&t, false);
        assert_eq!(count(&Balancer::round_robin(), &plain, false), [3000, 1000]);
        assert_eq!(count(&Balancer::least_requests(), &plain, false)[1], 0);
        let hashed = set(&t, true);
        let counts = count(&Balancer::consistent_hash(), &hashed, true);
        assert!((2700..3300).contains(&counts[0]), "{counts:?}");
        // Least requests: with load, the heavier target carries ~3x.
        let b = Balancer::least_requests();
        let mut held = Vec::new();
        for _ in 0..40 {
            let (_, target) = b.pick(&plain, None, &[]).unwrap();
            held.push(
                target
                    .start(std::time::Duration::from_millis(1))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!((t[0].in_flight(), t[1].in_flight()), (30, 10));
    }

    #[tokio::test]
    async fn lower_tiers_first_and_higher_ones_when_all_are_unavailable() {
        let tiered = |weights: &[(u32, u32)]| -> Vec<Arc<Target>> {
            weights
                .iter()
                .enumerate()
                .map(|(i, &(w, tier))| {
                    let t = Target::new(
                        format!("127.0.0.1:{}", 7000 + i).parse().unwrap(),
                        false,
                        64,
                    );
                    Arc::new(t.discovered(w, "srv:x".into(), "x".into()).in_tier(tier))
                })
                .collect()
        };
        // Tier 1 (the higher SRV priority) listed first: order does not matter.
        let t = tiered(&[(5, 1), (3, 0), (1, 0)]);
        for balancer in [
            Balancer::round_robin(),
            Balancer::least_requests(),
            Balancer::consistent_hash(),
        ] {
            let s = set(&t, balancer.hashed());
            let mut counts = [0usize; 3];
            for i in 0..400 {
                let key = format!("k{i}");
                counts[balancer.pick(&s, Some(&key), &[]).unwrap().0] += 1;
            }
            assert_eq!(counts[0], 0, "{balancer:?}: backup used: {counts:?}");
            if matches!(balancer, Balancer::RoundRobin(_)) {
                assert_eq!(counts, [0, 300, 100], "weights within the tier");
            }
            // A retry prefers an untried backup to a tried primary.
            assert_eq!(balancer.pick(&s, Some("k"), &[1, 2]).unwrap().0, 0);
            t[1].set_checked_healthy(false);
            assert_eq!(balancer.pick(&s, Some("k"), &[]).unwrap().0, 2);
            t[2].set_checked_healthy(false);
            for i in 0..10 {
                let key = format!("k{i}");
                assert_eq!(balancer.pick(&s, Some(&key), &[]).unwrap().0, 0);
            }
            t[1].set_checked_healthy(true);
            t[2].set_checked_healthy(true);
        }
    }
}
