//! `rate`: the host's GCRA limiter, keyed in the plugin's namespace.

use std::time::Duration;

use crate::runtime::bindings::weir::plugin::rate;
use crate::runtime::host::{HostState, within};
use crate::state::{RateLimit, Take};

type Res<T> = wasmtime::Result<T>;

fn rate_limit(limit: rate::Limit) -> RateLimit {
    RateLimit {
        rate: limit.rate,
        period: Duration::from_millis(limit.period_ms),
        burst: limit.burst,
    }
}

fn rate_decision(d: crate::state::Decision) -> rate::Decision {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    rate::Decision {
        allowed: d.allowed,
        limit: d.limit,
        remaining: d.remaining,
        retry_after_ms: ms(d.retry_after),
        reset_after_ms: ms(d.reset_after),
    }
}

impl rate::Host for HostState {
    async fn take(&mut self, key: String, cost: u32, limit: rate::Limit) -> Res<rate::Decision> {
        let key = self.namespaced(&key);
        let take = self.caps.rate.take(&key, cost, rate_limit(limit));
        let decision = within(self.deadline, take).await?;
        self.caps
            .telemetry
            .rate_decision(&self.plugin, decision.allowed);
        Ok(rate_decision(decision))
    }

    async fn take_all(&mut self, takes: Vec<rate::TakeRequest>) -> Res<Vec<rate::Decision>> {
        let takes: Vec<Take> = takes
            .into_iter()
            .map(|t| Take {
                key: self.namespaced(&t.key),
                cost: t.cost,
                limit: rate_limit(t.limit),
            })
            .collect();
        let decisions = within(self.deadline, self.caps.rate.take_all(&takes)).await?;
        // One decision per request: refused if any limit refused it.
        if !decisions.is_empty() {
            let allowed = decisions.iter().all(|d| d.allowed);
            self.caps.telemetry.rate_decision(&self.plugin, allowed);
        }
        Ok(decisions.into_iter().map(rate_decision).collect())
    }
}
