//! `take_all` on Redis.
//!
//! On one Redis, and on a cluster when every key of the batch hashes to one
//! slot, the batch is one [`super::scripts::GCRA`] run: exact, all or
//! nothing, as in memory.
//!
//! On a cluster a batch whose keys live in several slots cannot be one
//! script (Redis refuses a script across slots), so it runs in two phases:
//!
//! 1. a read-only check per slot ("would every take be allowed?"), all
//!    slots at once; if any take is refused nothing is written, and the
//!    checks' decisions are the answer;
//! 2. otherwise the normal take per slot, each atomic on its slot.
//!
//! Between the phases another gateway may take from the same keys. Then a
//! phase-2 script can refuse what phase 1 allowed: the request is refused,
//! while the slots whose scripts succeeded keep their takes (a refused
//! request was charged there). A race can therefore only refuse more, never
//! let more through than the limits allow.

use std::time::Duration;

use super::super::gcra::{self, Decision};
use super::super::{FailPolicy, RateStore, Take};
use super::RedisStore;

fn micros(ns: u128) -> u64 {
    u64::try_from(ns / 1_000).unwrap_or(u64::MAX).max(1)
}

/// Whether a script applies the takes or only checks them.
#[derive(Clone, Copy)]
enum Mode {
    Take,
    Check,
}

/// One batch, prepared: the Redis keys and GCRA parameters of its takes.
struct Batch<'a> {
    takes: &'a [Take],
    keys: Vec<String>,
    /// Interval and tolerance in µs, per take.
    params: Vec<(u64, u64)>,
}

impl RedisStore {
    /// Run the GCRA script over the takes at `group` (positions in
    /// `batch`); one decision per position.
    async fn gcra(
        &self,
        batch: &Batch<'_>,
        group: &[usize],
        mode: Mode,
    ) -> Result<Vec<Decision>, String> {
        let op = match mode {
            Mode::Take => "take",
            Mode::Check => "take_check",
        };
        let values: Vec<i64> = self
            .call(op, |mut connection| {
                let mut invocation = self.gcra.prepare_invoke();
                for &i in group {
                    if let (Some(key), Some(take), Some((interval, tolerance))) =
                        (batch.keys.get(i), batch.takes.get(i), batch.params.get(i))
                    {
                        invocation
                            .key(key)
                            .arg(take.cost)
                            .arg(*interval)
                            .arg(*tolerance);
                    }
                }
                invocation.arg(match mode {
                    Mode::Take => "take",
                    Mode::Check => "check",
                });
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await?;
        if values.len() != group.len() * 4 {
            return Err(format!(
                "the rate script answered {} values for {} keys",
                values.len(),
                group.len()
            ));
        }
        let takes: Vec<&Take> = group.iter().filter_map(|&i| batch.takes.get(i)).collect();
        Ok(takes
            .iter()
            .zip(values.chunks_exact(4))
            .map(|(take, v)| {
                let &[allowed, remaining, retry_after, reset_after] = v else {
                    return gcra::refused(take.limit);
                };
                let micros = |v: i64| Duration::from_micros(u64::try_from(v.max(0)).unwrap_or(0));
                Decision {
                    allowed: allowed == 1,
                    limit: take.limit.capacity(),
                    remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                    retry_after: micros(retry_after),
                    reset_after: micros(reset_after),
                }
            })
            .collect())
    }

    /// Run the script on every group at once; the decisions back in the
    /// batch's order.
    async fn gcra_groups(
        &self,
        batch: &Batch<'_>,
        groups: &[Vec<usize>],
        mode: Mode,
    ) -> Result<Vec<Decision>, String> {
        let answers =
            futures::future::join_all(groups.iter().map(|g| self.gcra(batch, g, mode))).await;
        let mut decisions: Vec<Option<Decision>> = vec![None; batch.takes.len()];
        for (group, answer) in groups.iter().zip(answers) {
            for (&i, decision) in group.iter().zip(answer?) {
                if let Some(place) = decisions.get_mut(i) {
                    *place = Some(decision);
                }
            }
        }
        decisions
            .into_iter()
            .collect::<Option<Vec<Decision>>>()
            .ok_or_else(|| "a take got no decision".to_string())
    }

    /// What the fail policy answers for `takes`.
    fn by_policy(&self, takes: &[Take]) -> Vec<Decision> {
        takes
            .iter()
            .map(|t| match self.policy {
                FailPolicy::FailOpen => gcra::allowed_blind(t.limit),
                FailPolicy::FailClosed => gcra::refused(t.limit),
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl RateStore for RedisStore {
    async fn take_all(&self, takes: &[Take]) -> Vec<Decision> {
        let mut params = Vec::with_capacity(takes.len());
        for take in takes {
            match gcra::interval_and_tolerance(take.limit) {
                Some((interval, tolerance)) if take.cost <= take.limit.capacity() => {
                    params.push((micros(interval), micros(tolerance)));
                }
                // Nothing a store could allow: refuse the batch locally.
                _ => return takes.iter().map(|t| gcra::refused(t.limit)).collect(),
            }
        }
        let batch = Batch {
            takes,
            keys: takes.iter().map(|t| self.layout.rate_key(&t.key)).collect(),
            params,
        };
        let groups = self.layout.script_groups(&batch.keys);
        let outcome = if groups.len() <= 1 {
            self.gcra_groups(&batch, &groups, Mode::Take).await
        } else {
            match self.gcra_groups(&batch, &groups, Mode::Check).await {
                Ok(checked) if checked.iter().all(|d| d.allowed) => {
                    self.gcra_groups(&batch, &groups, Mode::Take).await
                }
                other => other,
            }
        };
        outcome.unwrap_or_else(|_| self.by_policy(takes))
    }
}
