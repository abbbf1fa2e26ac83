//! The epoch ticker: a thread that advances the engine's epoch every
//! [`EPOCH_TICK`], so running hooks notice their deadline and yield to the
//! other tasks of their thread. It sleeps while no hook runs: an idle
//! gateway once spent ~3% of a core on this thread alone, waking a thousand
//! times a second for nothing.
//!
//! Hooks call [`Ticker::hook_started`]: one relaxed load of a flag the
//! ticker clears once a tick, a store when it was clear, and a wake-up only
//! when the ticker is asleep (the first hook after a quiet spell).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances. A running hook notices its deadline, or
/// yields to other tasks, at most this late.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Ticks without a hook starting before the ticker sleeps.
const IDLE_TICKS: u64 = 100;

/// The handle hooks use to keep the ticker awake.
pub struct Ticker {
    /// Set by hooks, cleared by the ticker each tick.
    active: AtomicBool,
    asleep: AtomicBool,
    thread: Thread,
}

impl Ticker {
    /// Start ticking `engine` until it is dropped.
    pub fn start(engine: &Engine) -> std::io::Result<Arc<Ticker>> {
        let weak = engine.weak();
        let (tx, rx) = std::sync::mpsc::channel::<Arc<Ticker>>();
        let thread = std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                let Ok(ticker) = rx.recv() else { return };
                let mut quiet = 0;
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    if ticker.active.swap(false, Ordering::Relaxed) {
                        quiet = 0;
                    } else {
                        quiet += 1;
                    }
                    if quiet >= IDLE_TICKS {
                        ticker.asleep.store(true, Ordering::SeqCst);
                        // A hook that set `active` before seeing `asleep`
                        // is seen here; one after it wakes us.
                        if !ticker.active.load(Ordering::SeqCst) {
                            // Wake now and then anyway, to notice the
                            // engine going away.
                            std::thread::park_timeout(Duration::from_secs(1));
                        }
                        ticker.asleep.store(false, Ordering::SeqCst);
                        quiet = 0;
                        continue;
                    }
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        let ticker = Arc::new(Ticker {
            active: AtomicBool::new(false),
            asleep: AtomicBool::new(false),
            thread: thread.thread().clone(),
        });
        let _ = tx.send(ticker.clone());
        Ok(ticker)
    }

    /// A hook is starting: make sure the epoch advances while it runs.
    pub fn hook_started(&self) {
        // Usually already set this tick: a read of a shared line, no write.
        if !self.active.load(Ordering::Relaxed) {
            self.active.store(true, Ordering::SeqCst);
            if self.asleep.load(Ordering::SeqCst) {
                self.thread.unpark();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ticker_sleeps_when_idle_and_wakes_for_a_hook() {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        let ticker = Ticker::start(&engine).unwrap();
        // Idle: asleep after IDLE_TICKS ticks.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !ticker.asleep.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "never went to sleep");
            std::thread::sleep(EPOCH_TICK);
        }
        // A hook wakes it at once.
        ticker.hook_started();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while ticker.asleep.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "did not wake for a hook"
            );
            std::thread::yield_now();
        }
    }
}
