//! `WEIR_PERF_MAP`: name plugins' compiled code for `perf`.
//!
//! `perf report` names samples in JIT code from `/tmp/perf-PID.map`, one
//! `START SIZE NAME` line (hex) per code range.
//!
//! - `WEIR_PERF_MAP=1`: each loaded plugin's code gets one line
//!   `wasm:NAME`, so a profile splits the time spent in wasm by plugin; a
//!   reload appends the new code's lines.
//! - `WEIR_PERF_MAP=functions`: wasmtime writes a line per compiled
//!   function instead (its `PerfMap` profiler), named from the component's
//!   name section: a plugin built without `strip` shows its own functions
//!   (`dlmalloc`, `sha2::...::compress256`, `Auth::on_request`); a stripped
//!   one shows `wasm[N]::function[M]`. The engine is built with the
//!   profiler, so this is read once, at start.
//!
//! Off unless the variable is set.

use std::io::Write;
use std::ops::Range;
use std::sync::OnceLock;

/// What `WEIR_PERF_MAP` asks for (read once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Plugins,
    Functions,
}

fn mode() -> Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    *MODE.get_or_init(|| parse(std::env::var("WEIR_PERF_MAP").ok().as_deref()))
}

/// The mode a value of `WEIR_PERF_MAP` asks for.
fn parse(value: Option<&str>) -> Mode {
    match value {
        Some("functions") => Mode::Functions,
        None | Some("" | "0") => Mode::Off,
        Some(_) => Mode::Plugins,
    }
}

/// Whether wasmtime should write a perf map line per compiled function.
pub fn per_function() -> bool {
    mode() == Mode::Functions
}

/// Name `code` as plugin `name`'s for perf, when asked to.
pub fn record(name: &str, code: Range<*const u8>) {
    if mode() != Mode::Plugins {
        return;
    }
    let path = format!("/tmp/perf-{}.map", std::process::id());
    let (start, size) = (
        code.start as usize,
        (code.end as usize).saturating_sub(code.start as usize),
    );
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut file| writeln!(file, "{start:x} {size:x} wasm:{name}"));
    if let Err(e) = written {
        tracing::warn!("WEIR_PERF_MAP: cannot write {path}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_picks_the_mode() {
        assert_eq!(parse(None), Mode::Off);
        assert_eq!(parse(Some("0")), Mode::Off);
        assert_eq!(parse(Some("")), Mode::Off);
        assert_eq!(parse(Some("1")), Mode::Plugins);
        assert_eq!(parse(Some("functions")), Mode::Functions);
    }
}
