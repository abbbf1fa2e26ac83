//! Logging through the gateway's log; lines are tagged with the plugin name.
//!
//! ```no_run
//! weir_sdk::info!("routing {} to {}", "/users", "users");
//! ```

use crate::bindings::weir::plugin::log as raw;
pub use raw::Level;

/// Write `message` at `level`.
pub fn log(level: Level, message: &str) {
    raw::log(level, message);
}

/// Whether a line at `level` would be written.
pub fn enabled(level: Level) -> bool {
    raw::enabled(level)
}

#[doc(hidden)]
pub fn __log(level: Level, args: std::fmt::Arguments<'_>) {
    if raw::enabled(level) {
        raw::log(level, &args.to_string());
    }
}

/// Log at trace level, `format!` style.
#[macro_export]
macro_rules! trace { ($($arg:tt)*) => { $crate::log::__log($crate::log::Level::Trace, format_args!($($arg)*)) } }
/// Log at debug level, `format!` style.
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log::__log($crate::log::Level::Debug, format_args!($($arg)*)) } }
/// Log at info level, `format!` style.
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log::__log($crate::log::Level::Info, format_args!($($arg)*)) } }
/// Log at warn level, `format!` style.
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log::__log($crate::log::Level::Warn, format_args!($($arg)*)) } }
/// Log at error level, `format!` style.
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log::__log($crate::log::Level::Error, format_args!($($arg)*)) } }
