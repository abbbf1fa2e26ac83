//! The in-memory limiter store on its own: memory for a million distinct
//! live keys, and the cost of one take, natively (no plugin involved).
//!
//! Run: `cargo bench -p weir --bench state`.

use std::time::{Duration, Instant};

use weir::state::{MemoryRateStore, RateLimit, RateStore};

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        const KEYS: usize = 1_000_000;
        let limit = RateLimit {
            rate: 100,
            period: Duration::from_secs(3600),
            burst: 0,
        };
        let keys: Vec<String> = (0..KEYS).map(|i| format!("60-rate-limit:per-client\u{1f}10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)).collect();
        let store = MemoryRateStore::new();
        let before = rss();
        let started = Instant::now();
        for key in &keys {
            store.take(key, 1, limit).await;
        }
        let elapsed = started.elapsed();
        let after = rss();
        println!(
            "memory store: {} live keys, RSS grew by {:.1} MiB ({:.0} bytes/key); {:.0} ns per take on a new key",
            store.len(),
            (after - before) as f64 / (1024.0 * 1024.0),
            (after - before) as f64 / KEYS as f64,
            elapsed.as_nanos() as f64 / KEYS as f64
        );
        let started = Instant::now();
        for key in keys.iter().take(100_000) {
            store.take(key, 1, limit).await;
        }
        println!(
            "memory store: {:.0} ns per take on an existing key",
            started.elapsed().as_nanos() as f64 / 100_000.0
        );
    });
}
