//! The targets of an upstream at one moment: an immutable snapshot that a
//! request picks from, replaced as a whole when discovery finds a change,
//! so a pick never sees half an update. It carries what the balancer
//! precomputes from the targets' weights and tiers (SRV priorities): each
//! tier's members and smooth weighted round-robin order, and the
//! consistent-hash ring.

use std::sync::Arc;

use super::target::Target;

/// Virtual nodes per target of average weight on the hash ring: enough to
/// spread keys evenly.
const RING_POINTS: u64 = 160;

/// The longest round-robin order (sum of normalised weights): weights are
/// scaled down past it, so a set of huge SRV weights stays cheap to build.
const MAX_ORDER: u64 = 10_000;

/// A snapshot of an upstream's targets.
#[derive(Debug, Default)]
pub struct TargetSet {
    targets: Vec<Arc<Target>>,
    /// The fallback tiers present, lowest first (one, tier 0, unless SRV
    /// records have several priorities).
    tiers: Vec<Tier>,
    /// Index into `tiers`, by target index.
    tier_of: Vec<usize>,
    /// `(point, target index)`, sorted by point; empty unless hashing.
    ring: Vec<(u64, usize)>,
    /// Weights normalised within each tier, by target index.
    weights: Vec<u32>,
}

/// The targets of one fallback tier.
#[derive(Debug, Default)]
pub struct Tier {
    /// Target indexes, ascending.
    pub members: Vec<usize>,
    /// Target indexes in smooth weighted round-robin order; the members
    /// in turn when the weights are equal.
    pub order: Vec<usize>,
}

impl TargetSet {
    /// A snapshot of `targets`, with a hash ring when `hashed`. Weights are
    /// shares within a tier (RFC 2782: within a priority), so each tier
    /// gets its own round-robin order and its own share of ring points.
    pub fn new(targets: Vec<Arc<Target>>, hashed: bool) -> Self {
        let mut ranks: Vec<u32> = targets.iter().map(|t| t.tier()).collect();
        ranks.sort_unstable();
        ranks.dedup();
        let tier_of: Vec<usize> = targets
            .iter()
            .map(|t| ranks.partition_point(|&r| r < t.tier()))
            .collect();
        let mut weights = vec![1; targets.len()];
        let mut ring_points = Vec::new();
        let tiers = (0..ranks.len())
            .map(|tier| {
                let members: Vec<usize> = (0..targets.len())
                    .filter(|&i| tier_of.get(i) == Some(&tier))
                    .collect();
                let raw: Vec<u32> = members
                    .iter()
                    .filter_map(|&i| targets.get(i).map(|t| t.weight()))
                    .collect();
                let shares = effective_weights(&raw);
                for (&i, &w) in members.iter().zip(&shares) {
                    if let Some(slot) = weights.get_mut(i) {
                        *slot = w;
                    }
                }
                if hashed {
                    ring_points.extend(ring(&targets, &members, &shares));
                }
                let order = smooth_order(&shares)
                    .into_iter()
                    .filter_map(|k| members.get(k).copied())
                    .collect();
                Tier { members, order }
            })
            .collect();
        ring_points.sort_unstable();
        TargetSet {
            targets,
            tiers,
            tier_of,
            ring: ring_points,
            weights,
        }
    }

    /// The targets.
    pub fn targets(&self) -> &[Arc<Target>] {
        &self.targets
    }

    /// The fallback tiers, lowest first.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The index in [`TargetSet::tiers`] of target `index`'s tier.
    pub fn tier_of(&self, index: usize) -> Option<usize> {
        self.tier_of.get(index).copied()
    }

    /// The hash ring (all tiers: a pick skips points of other tiers).
    pub fn ring(&self) -> &[(u64, usize)] {
        &self.ring
    }

    /// The normalised weight of target `index` (1 if out of range).
    pub fn weight(&self, index: usize) -> u32 {
        self.weights.get(index).copied().unwrap_or(1).max(1)
    }
}

/// Weights as the balancer uses them. RFC 2782: a weight-0 record gets a
/// very small share when others have weight, an equal one when all are 0;
/// so non-zero weights are scaled by 100 and a 0 becomes 1. Then divided by
/// their common divisor (3:1 stays 3:1, equal weights become 1s) and scaled
/// down if their sum exceeds [`MAX_ORDER`].
pub fn effective_weights(raw: &[u32]) -> Vec<u32> {
    if raw.iter().all(|&w| w == 0) {
        return vec![1; raw.len()];
    }
    let mut weights: Vec<u64> = raw
        .iter()
        .map(|&w| if w == 0 { 1 } else { u64::from(w) * 100 })
        .collect();
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    for w in &mut weights {
        *w /= divisor;
    }
    let sum: u64 = weights.iter().sum();
    if sum > MAX_ORDER {
        for w in &mut weights {
            *w = (*w * MAX_ORDER / sum).max(1);
        }
    }
    weights
        .into_iter()
        .map(|w| u32::try_from(w).unwrap_or(u32::MAX))
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// nginx's smooth weighted round robin, played out once: each step every
/// target gains its weight, the one with the most credit is chosen and pays
/// the total. Interleaves (5:1:1 gives a a b a c a a), and equal weights
/// give plain `0..n`.
fn smooth_order(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut credit = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, w) in credit.iter_mut().zip(weights) {
            *c += i64::from(*w);
        }
        let Some(best) = best_index(&credit) else {
            break;
        };
        if let Some(c) = credit.get_mut(best) {
            *c -= total;
        }
        order.push(best);
    }
    order
}

/// The first index with the most credit.
fn best_index(credit: &[i64]) -> Option<usize> {
    let mut best: Option<(usize, i64)> = None;
    for (i, &c) in credit.iter().enumerate() {
        if best.is_none_or(|(_, b)| c > b) {
            best = Some((i, c));
        }
    }
    best.map(|(i, _)| i)
}

/// The ring points of one tier's `members`: each gets points in
/// proportion to its share, [`RING_POINTS`] for an average one (so equal
/// weights give the ring a fixed target list always had).
fn ring(targets: &[Arc<Target>], members: &[usize], shares: &[u32]) -> Vec<(u64, usize)> {
    let n = members.len() as u64;
    let sum: u64 = shares.iter().map(|&w| u64::from(w)).sum::<u64>().max(1);
    let mut ring = Vec::new();
    for (&index, &w) in members.iter().zip(shares) {
        let Some(target) = targets.get(index) else {
            continue;
        };
        let points = (RING_POINTS * n * u64::from(w) / sum).max(1);
        for point in 0..points {
            let label = format!("{}#{point}", target.authority());
            ring.push((fnv1a(label.as_bytes()), index));
        }
    }
    ring
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_rfc_2782() {
        assert_eq!(effective_weights(&[1, 1, 1]), [1, 1, 1]);
        assert_eq!(effective_weights(&[30, 10]), [3, 1]);
        assert_eq!(effective_weights(&[0, 0]), [1, 1]);
        // A 0 among others gets a very small share, not none.
        assert_eq!(effective_weights(&[3, 1, 0]), [300, 100, 1]);
        let big = effective_weights(&[65535, 65534]);
        assert!(big.iter().map(|&w| u64::from(w)).sum::<u64>() <= MAX_ORDER);
        assert!(big.iter().all(|&w| w > 0));
    }

    #[test]
    fn smooth_order_interleaves_by_weight() {
        assert_eq!(smooth_order(&[1, 1, 1]), [0, 1, 2]);
        assert_eq!(smooth_order(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
        let order = smooth_order(&[3, 1]);
        assert_eq!(order.iter().filter(|&&i| i == 0).count(), 3);
        assert_eq!(order.len(), 4);
        assert!(smooth_order(&[]).is_empty());
    }
}
