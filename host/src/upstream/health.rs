//! Active health checks: one task per upstream that has `[health]`, probing
//! every target each interval and flipping it out of rotation after
//! `unhealthy_after` failures in a row, back in after `healthy_after`
//! successes. Each round probes the targets of the current set, so
//! discovered targets are checked from the round after they appear. The
//! task ends when its upstream is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use http::{Request, Uri};
use http_body_util::BodyExt;

use super::set::TargetSet;
use super::target::Target;
use crate::config::HealthConfig;
use crate::http::body;

/// Run checks for the targets in `set` until `alive` can no longer be
/// upgraded (the upstream is gone).
pub async fn run(
    upstream: String,
    set: Arc<ArcSwap<TargetSet>>,
    client: super::UpstreamClient,
    config: HealthConfig,
    alive: Weak<()>,
) {
    // Streaks by target id: ids are never reused, so a target that joins
    // never inherits the streak of one that left.
    let mut streaks: HashMap<u64, (u32, u32)> = HashMap::new();
    let mut interval = tokio::time::interval(Duration::from_millis(config.interval_ms));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if alive.upgrade().is_none() {
            return;
        }
        let snapshot = set.load_full();
        let targets = snapshot.targets();
        streaks.retain(|id, _| targets.iter().any(|t| t.id() == *id));
        let probes = targets.iter().map(|t| probe(&client, t, &config));
        let results = futures::future::join_all(probes).await;
        for (target, ok) in targets.iter().zip(results) {
            let (successes, failures) = streaks.entry(target.id()).or_insert((0, 0));
            if ok {
                *successes += 1;
                *failures = 0;
            } else {
                *failures += 1;
                *successes = 0;
            }
            if !target.checked_healthy() && *successes >= config.healthy_after {
                target.set_checked_healthy(true);
                tracing::info!(upstream, target = %target.authority(), "target is healthy again");
            } else if target.checked_healthy() && *failures >= config.unhealthy_after {
                target.set_checked_healthy(false);
                tracing::warn!(upstream, target = %target.authority(), "target failed {failures} health checks; out of rotation");
            }
        }
    }
}

/// One probe: a GET of the health path answered with 2xx or 3xx in time.
async fn probe(client: &super::UpstreamClient, target: &Target, config: &HealthConfig) -> bool {
    let Ok(uri) = Uri::builder()
        .scheme(if target.https() { "https" } else { "http" })
        .authority(target.authority().clone())
        .path_and_query(config.path.as_str())
        .build()
    else {
        return false;
    };
    let Ok(request) = Request::get(uri)
        .header("user-agent", "weir-health-check")
        .body(body::empty())
    else {
        return false;
    };
    let timeout = Duration::from_millis(config.timeout_ms);
    let check = async {
        let response = client.request(request).await.ok()?;
        let status = response.status();
        // Read the (small) body so the connection can be reused.
        response.into_body().collect().await.ok()?;
        Some(status.is_success() || status.is_redirection())
    };
    matches!(tokio::time::timeout(timeout, check).await, Ok(Some(true)))
}
