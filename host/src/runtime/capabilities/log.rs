//! `log`: a plugin's lines in the gateway's log, on target `weir::plugin`,
//! tagged with the plugin, clipped and held to its log budget.

use super::LogLine;
use crate::runtime::bindings::weir::plugin::log;
use crate::runtime::budget::clip_log_line;
use crate::runtime::host::HostState;

type Res<T> = wasmtime::Result<T>;

/// The name a test or log line shows for a plugin's log level.
fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Trace => "trace",
        log::Level::Debug => "debug",
        log::Level::Info => "info",
        log::Level::Warn => "warn",
        log::Level::Error => "error",
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) -> Res<()> {
        let message = clip_log_line(&message);
        if !self.budget.admit_log(message.len()) {
            return Ok(());
        }
        if let Some(sink) = &self.caps.log_sink {
            let line = LogLine {
                level: level_name(level).to_string(),
                message: message.to_string(),
            };
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(target: "weir::plugin", plugin, "{message}"),
            log::Level::Debug => tracing::debug!(target: "weir::plugin", plugin, "{message}"),
            log::Level::Info => tracing::info!(target: "weir::plugin", plugin, "{message}"),
            log::Level::Warn => tracing::warn!(target: "weir::plugin", plugin, "{message}"),
            log::Level::Error => tracing::error!(target: "weir::plugin", plugin, "{message}"),
        }
        Ok(())
    }

    fn enabled(&mut self, level: log::Level) -> Res<bool> {
        Ok(match level {
            log::Level::Trace => tracing::enabled!(target: "weir::plugin", tracing::Level::TRACE),
            log::Level::Debug => tracing::enabled!(target: "weir::plugin", tracing::Level::DEBUG),
            log::Level::Info => tracing::enabled!(target: "weir::plugin", tracing::Level::INFO),
            log::Level::Warn => tracing::enabled!(target: "weir::plugin", tracing::Level::WARN),
            log::Level::Error => tracing::enabled!(target: "weir::plugin", tracing::Level::ERROR),
        })
    }
}
