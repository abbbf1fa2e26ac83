//! A plugin's share of what every plugin shares: `outbound` calls in flight
//! (across its instances) and log volume. One [`PluginBudget`] per loaded
//! plugin, held by each of its instances. `kv` quotas live in the stores,
//! which count per plugin; calls per hook are counted in the instance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Budgets;

/// Longest log message kept; longer ones are cut (and say so).
pub const MAX_LOG_LINE: usize = 4096;

/// What one plugin may still consume.
pub struct PluginBudget {
    plugin: Arc<str>,
    outbound: Arc<Semaphore>,
    outbound_limit: u32,
    log: LogBudget,
}

impl PluginBudget {
    /// The budget of `plugin` under `budgets`.
    pub fn new(plugin: &str, budgets: &Budgets) -> Arc<Self> {
        Arc::new(PluginBudget {
            plugin: Arc::from(plugin),
            outbound: Arc::new(Semaphore::new(
                budgets.outbound_in_flight_per_plugin as usize,
            )),
            outbound_limit: budgets.outbound_in_flight_per_plugin,
            log: LogBudget::new(budgets.log_lines_per_second, budgets.log_bytes_per_second),
        })
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &Arc<str> {
        &self.plugin
    }

    /// A slot for one outbound call, or why not (at once: callers never
    /// wait for another instance's calls).
    pub fn outbound_slot(&self) -> Result<OwnedSemaphorePermit, String> {
        self.outbound.clone().try_acquire_owned().map_err(|_| {
            format!(
                "{} calls already in flight for this plugin (budgets.outbound_in_flight_per_plugin)",
                self.outbound_limit
            )
        })
    }

    /// Whether a log line of `len` bytes may be written now.
    pub fn admit_log(&self, len: usize) -> bool {
        self.log.admit(&self.plugin, len)
    }

    /// Log lines dropped since the plugin was loaded.
    pub fn log_lines_dropped(&self) -> u64 {
        self.log.dropped_total.load(Ordering::Relaxed)
    }
}

/// Lines and bytes per second, in one-second windows.
struct LogBudget {
    lines_per_second: u32,
    bytes_per_second: u32,
    window: Mutex<Window>,
    dropped_total: AtomicU64,
}

struct Window {
    start: Instant,
    lines: u32,
    bytes: u64,
    dropped_lines: u64,
    dropped_bytes: u64,
}

const WINDOW: Duration = Duration::from_secs(1);

impl LogBudget {
    fn new(lines_per_second: u32, bytes_per_second: u32) -> Self {
        LogBudget {
            lines_per_second,
            bytes_per_second,
            window: Mutex::new(Window {
                start: Instant::now(),
                lines: 0,
                bytes: 0,
                dropped_lines: 0,
                dropped_bytes: 0,
            }),
            dropped_total: AtomicU64::new(0),
        }
    }

    fn admit(&self, plugin: &str, len: usize) -> bool {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if now.duration_since(window.start) >= WINDOW {
            if window.dropped_lines > 0 {
                // One warning per window, never one per dropped line.
                tracing::warn!(
                    target: "weir::plugin",
                    plugin,
                    dropped_lines = window.dropped_lines,
                    dropped_bytes = window.dropped_bytes,
                    "plugin log over budget (budgets.log_lines_per_second, \
                     budgets.log_bytes_per_second): lines dropped"
                );
            }
            *window = Window {
                start: now,
                lines: 0,
                bytes: 0,
                dropped_lines: 0,
                dropped_bytes: 0,
            };
        }
        let len = len as u64;
        if window.lines < self.lines_per_second
            && window.bytes + len <= u64::from(self.bytes_per_second)
        {
            window.lines += 1;
            window.bytes += len;
            true
        } else {
            window.dropped_lines += 1;
            window.dropped_bytes += len;
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// `message` cut to [`MAX_LOG_LINE`] bytes at a character boundary, saying
/// how much was cut.
pub fn clip_log_line(message: &str) -> std::borrow::Cow<'_, str> {
    if message.len() <= MAX_LOG_LINE {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut end = MAX_LOG_LINE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let kept = message.get(..end).unwrap_or_default();
    std::borrow::Cow::Owned(format!("{kept}… [{} bytes cut]", message.len() - end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_past_the_budget_are_dropped_and_counted() {
        let budgets = Budgets {
            log_lines_per_second: 5,
            log_bytes_per_second: 1000,
            ..Budgets::default()
        };
        let budget = PluginBudget::new("p", &budgets);
        let admitted = (0..100).filter(|_| budget.admit_log(10)).count();
        assert_eq!(admitted, 5);
        assert_eq!(budget.log_lines_dropped(), 95);
        // Bytes are bounded too.
        let budget = PluginBudget::new("q", &budgets);
        assert!(budget.admit_log(900));
        assert!(!budget.admit_log(200));
    }

    #[test]
    fn outbound_slots_fail_fast_past_the_budget() {
        let budgets = Budgets {
            outbound_in_flight_per_plugin: 2,
            ..Budgets::default()
        };
        let budget = PluginBudget::new("p", &budgets);
        let a = budget.outbound_slot().unwrap();
        let _b = budget.outbound_slot().unwrap();
        assert!(budget.outbound_slot().is_err());
        drop(a);
        assert!(budget.outbound_slot().is_ok());
    }

    #[test]
    fn long_lines_are_clipped_on_a_char_boundary() {
        let long = "é".repeat(MAX_LOG_LINE);
        let clipped = clip_log_line(&long);
        assert!(clipped.len() < MAX_LOG_LINE + 40);
        assert!(clipped.ends_with("cut]"));
        assert_eq!(clip_log_line("short"), "short");
    }
}
