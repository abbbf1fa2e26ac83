//! `WEIR_PERF_MAP=1`: name each plugin's compiled code for `perf`.
//!
//! `perf report` names samples in JIT code from `/tmp/perf-PID.map`, one
//! `START SIZE NAME` line (hex) per code range. With the variable set, each
//! loaded plugin's code gets a line `wasm:NAME`, so a profile splits the
//! time spent in wasm by plugin. (Wasmtime's own per-function perf map needs
//! its `profiling` feature, which Weir builds without.) Off unless the
//! variable is set; a reload appends the new code's lines.

use std::io::Write;
use std::ops::Range;
use std::sync::OnceLock;

/// Whether `WEIR_PERF_MAP` is set (read once).
fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os("WEIR_PERF_MAP").is_some_and(|v| v != "0"))
}

/// Name `code` as plugin `name`'s for perf, when enabled.
pub fn record(name: &str, code: Range<*const u8>) {
    if !enabled() {
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
