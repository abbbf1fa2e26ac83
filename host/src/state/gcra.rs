//! GCRA (the generic cell rate algorithm): a token bucket expressed as one
//! timestamp per key, the "theoretical arrival time" (TAT). It refills
//! smoothly, so there is no burst at window edges, and needs no timer.
//!
//! A limit of `rate` per `period` with `burst` lets `rate + burst` requests
//! through at once, then one every `period / rate`.

use std::time::Duration;

/// A limit as plugins state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per period.
    pub rate: u32,
    /// The period.
    pub period: Duration,
    /// Extra requests allowed at once.
    pub burst: u32,
}

/// The outcome of one take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the take succeeded.
    pub allowed: bool,
    /// Bucket size, `rate + burst`.
    pub limit: u32,
    /// Units left after this take.
    pub remaining: u32,
    /// When refused, time until the take would succeed.
    pub retry_after: Duration,
    /// Time until the bucket is full again.
    pub reset_after: Duration,
}

impl RateLimit {
    /// Bucket size.
    pub fn capacity(&self) -> u32 {
        self.rate.saturating_add(self.burst)
    }

    /// Time to earn one unit, in nanoseconds (at least 1).
    fn interval_ns(&self) -> u128 {
        (self.period.as_nanos() / u128::from(self.rate.max(1))).max(1)
    }
}

/// Apply one take at time `now` to a key whose TAT is `tat` (both as
/// durations since any fixed origin). Returns the decision and the new TAT
/// to store (unchanged when refused).
pub fn take(
    tat: Option<Duration>,
    now: Duration,
    cost: u32,
    limit: RateLimit,
) -> (Decision, Duration) {
    let capacity = limit.capacity();
    let interval = limit.interval_ns();
    let tolerance = interval * u128::from(capacity);
    let now_ns = now.as_nanos();
    let tat_ns = tat.map_or(now_ns, |t| t.as_nanos()).max(now_ns);
    let new_tat = tat_ns + interval * u128::from(cost);
    let ns = |n: u128| Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX));
    if rate_is_zero(limit) || cost > capacity || new_tat - now_ns > tolerance {
        let retry_after = if rate_is_zero(limit) || cost > capacity {
            limit.period
        } else {
            ns(new_tat - now_ns - tolerance)
        };
        let remaining = remaining(tat_ns - now_ns, interval, tolerance);
        let decision = Decision {
            allowed: false,
            limit: capacity,
            remaining,
            retry_after,
            reset_after: ns(tat_ns - now_ns),
        };
        return (decision, ns(tat_ns));
    }
    let decision = Decision {
        allowed: true,
        limit: capacity,
        remaining: remaining(new_tat - now_ns, interval, tolerance),
        retry_after: Duration::ZERO,
        reset_after: ns(new_tat - now_ns),
    };
    (decision, ns(new_tat))
}

/// A refusal that touches nothing: for takes that cannot be decided.
pub fn refused(limit: RateLimit) -> Decision {
    Decision {
        allowed: false,
        limit: limit.capacity(),
        remaining: 0,
        retry_after: Duration::from_secs(1),
        reset_after: Duration::ZERO,
    }
}

/// An allowance that touches nothing: a shared store is down and the policy
/// is to fail open.
pub fn allowed_blind(limit: RateLimit) -> Decision {
    Decision {
        allowed: true,
        limit: limit.capacity(),
        remaining: limit.capacity(),
        retry_after: Duration::ZERO,
        reset_after: Duration::ZERO,
    }
}

/// Nanoseconds to earn one unit, and the bucket's tolerance (capacity ×
/// interval), as a shared store computes them.
pub fn interval_and_tolerance(limit: RateLimit) -> Option<(u128, u128)> {
    if rate_is_zero(limit) {
        return None;
    }
    let interval = limit.interval_ns();
    Some((interval, interval * u128::from(limit.capacity())))
}

fn rate_is_zero(limit: RateLimit) -> bool {
    limit.rate == 0 || limit.period.is_zero()
}

/// Whole units left when the bucket is `used_ns` of `tolerance` full.
fn remaining(used_ns: u128, interval: u128, tolerance: u128) -> u32 {
    u32::try_from(tolerance.saturating_sub(used_ns) / interval).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn limit(rate: u32, period_ms: u64, burst: u32) -> RateLimit {
        RateLimit {
            rate,
            period: Duration::from_millis(period_ms),
            burst,
        }
    }

    /// Run takes at the given times, returning which were allowed.
    fn run(l: RateLimit, times_ms: &[u64]) -> Vec<bool> {
        let mut tat = None;
        times_ms
            .iter()
            .map(|&t| {
                let (d, new) = take(tat, MS * t as u32, 1, l);
                tat = Some(new);
                d.allowed
            })
            .collect()
    }

    #[test]
    fn allows_rate_at_once_then_refills_smoothly() {
        // 5 per second: 5 at t=0, the 6th refused, one more every 200 ms.
        let l = limit(5, 1000, 0);
        assert_eq!(
            run(l, &[0, 0, 0, 0, 0, 0]),
            [true, true, true, true, true, false]
        );
        assert_eq!(
            run(l, &[0, 0, 0, 0, 0, 199, 200, 201]),
            [true, true, true, true, true, false, true, false]
        );
    }

    #[test]
    fn burst_adds_to_capacity() {
        let l = limit(2, 1000, 3);
        let allowed = run(l, &[0; 7]);
        assert_eq!(allowed.iter().filter(|a| **a).count(), 5);
    }

    #[test]
    fn decision_reports_remaining_and_waits() {
        let l = limit(2, 1000, 0);
        let (d1, tat) = take(None, Duration::ZERO, 1, l);
        assert!(d1.allowed);
        assert_eq!((d1.limit, d1.remaining), (2, 1));
        assert_eq!(d1.reset_after, 500 * MS);
        let (d2, tat) = take(Some(tat), Duration::ZERO, 1, l);
        assert_eq!((d2.allowed, d2.remaining), (true, 0));
        let (d3, _) = take(Some(tat), 100 * MS, 1, l);
        assert!(!d3.allowed);
        assert_eq!(d3.retry_after, 400 * MS);
        assert_eq!(d3.reset_after, 900 * MS);
    }

    #[test]
    fn refused_take_consumes_nothing_and_cost_over_capacity_is_refused() {
        let l = limit(1, 1000, 0);
        let (_, tat) = take(None, Duration::ZERO, 1, l);
        let (d, tat2) = take(Some(tat), Duration::ZERO, 1, l);
        assert!(!d.allowed);
        assert_eq!(tat, tat2);
        let (d, _) = take(None, Duration::ZERO, 5, l);
        assert!(!d.allowed);
    }

    #[test]
    fn zero_rate_refuses_everything() {
        let (d, _) = take(None, Duration::ZERO, 1, limit(0, 1000, 0));
        assert!(!d.allowed);
    }
}
