//! Which worker thread this is. The gateway runs one single-threaded
//! runtime per core (see `server/workers.rs`); each keeps its own upstream
//! connections, so a request and the connection it is proxied on live on
//! one thread and never wake another. Threads outside the workers (the
//! control runtime, tests) share the slot [`CONTROL`].

use std::cell::Cell;

/// The slot of threads that are not workers.
pub const CONTROL: usize = usize::MAX;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(CONTROL) };
}

/// Mark the current thread as worker `index`.
pub fn set_worker(index: usize) {
    WORKER.with(|w| w.set(index));
}

/// This thread's worker index, or [`CONTROL`].
pub fn worker() -> usize {
    WORKER.with(Cell::get)
}

/// This thread's slot among `slots` per-thread things: the worker's own,
/// or the last one for the control thread and any thread beyond them.
pub fn slot(slots: usize) -> usize {
    let last = slots.saturating_sub(1);
    worker().min(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_get_their_slot_and_others_the_last() {
        assert_eq!(slot(3), 2);
        std::thread::spawn(|| {
            set_worker(1);
            assert_eq!(slot(3), 1);
            set_worker(7);
            assert_eq!(slot(3), 2);
        })
        .join()
        .unwrap();
    }
}
