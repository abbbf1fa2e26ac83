//! The epoch ticker: a thread that advances the engine's epoch, so running
//! hooks notice their deadline and yield to the other tasks of their
//! thread.
//!
//! Ticks cost a wake-up of this thread each, and most hooks end within
//! microseconds, long before any tick could matter. So the ticker runs at
//! three speeds:
//! - **asleep** while no hook has started for [`IDLE`]: an idle gateway
//!   once spent ~3% of a core on this thread alone;
//! - **slow** ([`SLOW_TICK`]) while hooks start but none is found still
//!   running at a tick: at 5,000 requests a second, ticking every 2 ms
//!   was a tenth of a context switch per request and ~2% of the gateway's
//!   CPU, all of it for hooks that had already ended;
//! - **fast** ([`EPOCH_TICK`]) from the tick that finds a hook running
//!   (its store's epoch callback calls [`Ticker::caught_running`]) until a
//!   tick finds none.
//!
//! A hook that spins is therefore caught, and yields, within [`SLOW_TICK`]
//! of starting, once more a [`SLOW_TICK`] later, and then every
//! [`EPOCH_TICK`]; its deadline is enforced at most [`SLOW_TICK`] late.
//!
//! Hooks call [`Ticker::hook_started`]: one relaxed load of a flag the
//! ticker clears once a tick, a store when it was clear, and a wake-up only
//! when the ticker is asleep (the first hook after a quiet spell).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use wasmtime::{Engine, UpdateDeadline};

/// How often the epoch advances while a hook is running: such a hook
/// notices its deadline, or yields to other tasks, at most this late.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// How often the epoch advances while hooks start but none has been found
/// running at a tick: the longest a hook runs before it is first noticed.
pub const SLOW_TICK: Duration = Duration::from_millis(10);

/// No hook started for this long: the ticker sleeps until one does.
const IDLE: Duration = Duration::from_millis(200);

/// The handle hooks use to keep the ticker awake.
pub struct Ticker {
    /// Set by hooks, cleared by the ticker each tick.
    active: AtomicBool,
    /// Set by an epoch callback: a tick found a hook still running.
    caught: AtomicBool,
    asleep: AtomicBool,
    /// Ticks so far (for tests and the curious).
    ticks: AtomicU64,
    thread: Thread,
}

impl Ticker {
    /// Start ticking `engine` until it is dropped.
    pub fn start(engine: &Engine) -> std::io::Result<Arc<Ticker>> {
        Ticker::start_with(engine, EPOCH_TICK, SLOW_TICK)
    }

    /// [`Ticker::start`] with other periods (tests use far-apart ones).
    fn start_with(engine: &Engine, fast: Duration, slow: Duration) -> std::io::Result<Arc<Ticker>> {
        let weak = engine.weak();
        let (tx, rx) = std::sync::mpsc::channel::<Arc<Ticker>>();
        let thread = std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                let Ok(ticker) = rx.recv() else { return };
                let mut last_active = Instant::now();
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    ticker.ticks.fetch_add(1, Ordering::Relaxed);
                    if ticker.active.swap(false, Ordering::Relaxed) {
                        last_active = Instant::now();
                    } else if last_active.elapsed() >= IDLE {
                        ticker.sleep();
                        last_active = Instant::now();
                        continue;
                    }
                    // The callbacks of this tick's increment run (if any
                    // hook is running) while we sleep; what they found
                    // decides the speed of the tick after next.
                    let period = if ticker.caught.swap(false, Ordering::Relaxed) {
                        fast
                    } else {
                        slow
                    };
                    std::thread::sleep(period);
                }
            })?;
        let ticker = Arc::new(Ticker {
            active: AtomicBool::new(false),
            caught: AtomicBool::new(false),
            asleep: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            thread: thread.thread().clone(),
        });
        let _ = tx.send(ticker.clone());
        Ok(ticker)
    }

    /// Park until a hook starts.
    fn sleep(&self) {
        self.asleep.store(true, Ordering::SeqCst);
        // A hook that set `active` before seeing `asleep` is seen here; one
        // after it wakes us.
        if !self.active.load(Ordering::SeqCst) {
            // Wake now and then anyway, to notice the engine going away.
            std::thread::park_timeout(Duration::from_secs(1));
        }
        self.asleep.store(false, Ordering::SeqCst);
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

    /// A tick found a hook still running: tick fast until none is.
    pub fn caught_running(&self) {
        if !self.caught.load(Ordering::Relaxed) {
            self.caught.store(true, Ordering::Relaxed);
        }
    }

    /// Ticks so far.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
}

/// What a store's epoch callback answers when a tick finds its hook
/// running: stop it at `deadline`, else let the thread's other tasks run
/// and look again at the next tick (which now comes fast).
pub fn on_tick(ticker: &Ticker, deadline: tokio::time::Instant) -> UpdateDeadline {
    if tokio::time::Instant::now() >= deadline {
        UpdateDeadline::Interrupt
    } else {
        ticker.caught_running();
        UpdateDeadline::Yield(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> (Engine, Arc<Ticker>) {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        let ticker = Ticker::start(&engine).unwrap();
        (engine, ticker)
    }

    const FAST: Duration = Duration::from_millis(1);
    const SLOW: Duration = Duration::from_millis(50);

    #[test]
    fn the_ticker_sleeps_when_idle_and_wakes_for_a_hook() {
        let (_engine, ticker) = started();
        // Idle: asleep after IDLE.
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

    /// Short hooks (none caught running) keep the ticker at its slow
    /// period; a hook caught running at every tick brings it to the fast
    /// one. (Periods 50× apart, so a loaded machine's late wake-ups cannot
    /// blur the two.)
    #[test]
    fn the_ticker_ticks_fast_only_while_a_hook_is_caught_running() {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        let ticker = Ticker::start_with(&engine, FAST, SLOW).unwrap();
        let window = Duration::from_millis(500);
        let count = |caught: bool| {
            let from = ticker.ticks();
            let end = std::time::Instant::now() + window;
            while std::time::Instant::now() < end {
                ticker.hook_started();
                if caught {
                    ticker.caught_running();
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            ticker.ticks() - from
        };
        let slow = count(false);
        let fast = count(true);
        // At most one tick per slow period (plus the ones in flight at the
        // edges), however loaded the machine: sleeps only ever run long.
        let most_slow = (window.as_millis() / SLOW.as_millis()) as u64 + 2;
        assert!(slow <= most_slow, "{slow} slow ticks in {window:?}");
        assert!(
            fast > 2 * most_slow,
            "caught hooks did not speed the ticker up: {fast} fast ticks, {slow} slow"
        );
    }

    #[test]
    fn a_tick_past_the_deadline_interrupts_and_before_it_yields() {
        let (_engine, ticker) = started();
        let now = tokio::time::Instant::now();
        assert!(matches!(
            on_tick(&ticker, now - Duration::from_millis(1)),
            UpdateDeadline::Interrupt
        ));
        assert!(!ticker.caught.load(Ordering::Relaxed));
        assert!(matches!(
            on_tick(&ticker, now + Duration::from_secs(60)),
            UpdateDeadline::Yield(1)
        ));
        assert!(ticker.caught.load(Ordering::Relaxed));
    }
}
