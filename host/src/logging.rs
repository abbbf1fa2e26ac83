//! Log setup: `tracing` to stderr, text or JSON, filtered by `[log] level`
//! or the `WEIR_LOG` variable.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Install the global subscriber (once; later calls do nothing).
pub fn init(format: LogFormat, level: &str) {
    let chosen = std::env::var("WEIR_LOG")
        .ok()
        .and_then(|text| EnvFilter::try_new(&text).ok().map(|f| (f, text)))
        .or_else(|| {
            EnvFilter::try_new(level)
                .ok()
                .map(|f| (f, level.to_string()))
        });
    let filter = match chosen {
        Some((filter, text)) => quiet_redis(filter, &text),
        None => quiet_redis(EnvFilter::new("info"), "info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The `redis` crate warns on every failed attempt to reach a node: during
/// a Redis Cluster failover that is many lines a second. The store logs
/// each outage once itself (`state::redis`), so unless the filter names
/// `redis`, only the crate's errors pass.
fn quiet_redis(filter: EnvFilter, text: &str) -> EnvFilter {
    if text.contains("redis") {
        return filter;
    }
    match "redis=error".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}
