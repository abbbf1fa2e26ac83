//! `GET /metrics`: everything the gateway counts, in the OpenMetrics text
//! format, rendered by `prometheus-client`.
//!
//! Counters and histograms live in [`HostMetrics`] and the plugin metrics
//! registry and are only read here. Gauges that describe the current state
//! (plugins loaded, instances, targets, connections, the process) are
//! computed at scrape time, so serving requests never updates them.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::gateway::Gateway;
use crate::telemetry::plugin_metrics::Shared;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    plugin: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabel {
    upstream: String,
}

type Gauges<L> = Family<L, Gauge<i64>>;

/// The whole exposition, as text.
pub fn render(gateway: &Gateway) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    let stores = gateway.stores();
    stores.telemetry.register(&mut registry);
    registry.register_collector(Box::new(Shared(stores.metrics.clone())));
    current_state(gateway, &mut registry);
    process(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Gauges of the serving pipeline and the listeners, read now.
fn current_state(gateway: &Gateway, registry: &mut Registry) {
    let pipeline = gateway.pipeline();
    let plugins_loaded = Gauge::<i64>::default();
    plugins_loaded.set(pipeline.plugins().len() as i64);
    registry.register(
        "weir_plugins_loaded",
        "Plugins in the serving pipeline",
        plugins_loaded,
    );
    let instances = Gauges::<InstanceLabels>::default();
    for plugin in pipeline.plugins() {
        for (state, count) in [
            ("idle", plugin.idle_instances()),
            ("busy", plugin.busy_instances()),
        ] {
            let labels = InstanceLabels {
                plugin: plugin.name().to_string(),
                state,
            };
            instances.get_or_create(&labels).set(count as i64);
        }
    }
    registry.register(
        "weir_plugin_instances",
        "Plugin instances warm and idle, and hook calls running",
        instances,
    );
    governance(&pipeline, registry);
    let (targets, healthy, in_flight) = (
        Gauges::<UpstreamLabel>::default(),
        Gauges::<UpstreamLabel>::default(),
        Gauges::<UpstreamLabel>::default(),
    );
    let now = tokio::time::Instant::now();
    for upstream in pipeline.upstreams().iter() {
        let label = UpstreamLabel {
            upstream: upstream.name().to_string(),
        };
        let all = upstream.targets();
        targets.get_or_create(&label).set(all.len() as i64);
        let up = all
            .iter()
            .filter(|t| t.checked_healthy() && t.available(now))
            .count();
        healthy.get_or_create(&label).set(up as i64);
        let busy: usize = all.iter().map(|t| t.in_flight()).sum();
        in_flight.get_or_create(&label).set(busy as i64);
    }
    registry.register(
        "weir_upstream_targets",
        "Targets now: configured and found by DNS",
        targets,
    );
    registry.register(
        "weir_upstream_healthy_targets",
        "Targets passing health checks and not ejected",
        healthy,
    );
    registry.register(
        "weir_upstream_requests_in_flight",
        "Requests sent to the upstream and not yet answered",
        in_flight,
    );
    let open = Gauge::<i64>::default();
    open.set(gateway.drain().open() as i64);
    registry.register(
        "weir_connections_open",
        "Client connections and WebSocket tunnels open",
        open,
    );
}

/// Each plugin version's quarantine, and each canary's state.
fn governance(pipeline: &crate::pipeline::Pipeline, registry: &mut Registry) {
    let (quarantined, rolled_back) = (
        Gauges::<PluginLabel>::default(),
        Gauges::<PluginLabel>::default(),
    );
    for (index, plugin) in pipeline.plugins().iter().enumerate() {
        let Some(governed) = pipeline.governed(index) else {
            continue;
        };
        let label = PluginLabel {
            plugin: plugin.name().to_string(),
        };
        quarantined
            .get_or_create(&label)
            .set(i64::from(governed.health.quarantined()));
        if governed.canary_of.is_some() {
            rolled_back
                .get_or_create(&label)
                .set(i64::from(governed.health.retired()));
        }
    }
    registry.register(
        "weir_plugin_quarantined",
        "1 while the plugin is quarantined (not called)",
        quarantined,
    );
    registry.register(
        "weir_plugin_canary_rolled_back",
        "1 once the canary version was rolled back",
        rolled_back,
    );
}

/// The standard `process_*` metrics, from `/proc/self` (Linux); absent
/// elsewhere.
fn process(registry: &mut Registry) {
    let Some(stat) = ProcStat::read() else {
        return;
    };
    let rss = Gauge::<i64>::default();
    rss.set(stat.rss_bytes as i64);
    registry.register_with_unit(
        "process_resident_memory",
        "Resident memory size",
        Unit::Bytes,
        rss,
    );
    registry.register_with_unit(
        "process_cpu",
        "User and system CPU time spent",
        Unit::Seconds,
        ConstCounter::new(stat.cpu_seconds),
    );
    let fds = Gauge::<i64>::default();
    fds.set(stat.open_fds as i64);
    registry.register("process_open_fds", "Open file descriptors", fds);
    let start = Gauge::<f64, AtomicU64>::default();
    start.set(stat.start_time_seconds);
    registry.register_with_unit(
        "process_start_time",
        "Start time of the process since the Unix epoch",
        Unit::Seconds,
        start,
    );
}

/// What `/proc/self` says about the process.
struct ProcStat {
    rss_bytes: u64,
    cpu_seconds: f64,
    open_fds: usize,
    start_time_seconds: f64,
}

/// Clock ticks per second for `/proc` times: 100 on every Linux platform
/// Weir targets (the kernel's `USER_HZ`, fixed by its ABI).
const TICKS_PER_SECOND: f64 = 100.0;
/// Page size for `/proc/self/statm` (4 KiB on x86-64 and most aarch64).
const PAGE_BYTES: u64 = 4096;

impl ProcStat {
    fn read() -> Option<ProcStat> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may
        // hold spaces: state is field 3, utime 14, stime 15, starttime 22.
        let after = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
        let cpu_seconds = (field(14)? + field(15)?) / TICKS_PER_SECOND;
        let started_ticks = field(22)?;
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let rss_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
        Some(ProcStat {
            rss_bytes: rss_pages * PAGE_BYTES,
            cpu_seconds,
            open_fds,
            start_time_seconds: boot_time()? + started_ticks / TICKS_PER_SECOND,
        })
    }
}

/// When the machine booted (Unix time), from `/proc/stat`.
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reads_itself() {
        let stat = ProcStat::read().unwrap();
        assert!(stat.rss_bytes > 1024 * 1024);
        assert!(stat.open_fds >= 3);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(stat.start_time_seconds <= now + 1.0);
        assert!(stat.start_time_seconds > now - 86_400.0 * 365.0);
    }
}
