//! The connection cap (`limits.max_connections`), shared by every listener
//! and worker of a gateway. A listener takes a [`Slot`] before it accepts,
//! so at the cap new connections wait in the kernel's backlog rather than
//! cost memory here. The cap can change while serving (a reload): raising
//! it wakes the waiting listeners at once; lowering it closes nothing and
//! lets open connections drain below the new cap before more are accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Open connections and the cap on them.
#[derive(Debug)]
pub struct Slots {
    open: AtomicUsize,
    cap: AtomicUsize,
    /// Woken when a slot frees or the cap changes.
    changed: Notify,
}

/// One open connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

impl Slots {
    /// A cap of `cap` connections.
    pub fn new(cap: usize) -> Arc<Slots> {
        Arc::new(Slots {
            open: AtomicUsize::new(0),
            cap: AtomicUsize::new(cap),
            changed: Notify::new(),
        })
    }

    /// Change the cap (a reload).
    pub fn set_cap(&self, cap: usize) {
        if self.cap.swap(cap, Ordering::AcqRel) != cap {
            self.changed.notify_waiters();
        }
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap.load(Ordering::Acquire)
    }

    /// Connections holding a slot.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// A slot, now if one is free, else once one is.
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            // Registered before the check, so a release between the check
            // and the wait is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(slot) = self.try_acquire() {
                return slot;
            }
            changed.await;
        }
    }

    /// A slot if one is free.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        let cap = self.cap();
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < cap).then_some(open + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_a_slot_waits_for_a_release_or_a_raised_cap() {
        let slots = Slots::new(1);
        let first = slots.acquire().await;
        assert!(slots.try_acquire().is_none());
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        // A raised cap lets it in while the first is still open.
        slots.set_cap(2);
        let second = waiting.await.unwrap();
        assert_eq!(slots.open(), 2);
        // A lowered cap closes nothing; new slots wait until below it.
        slots.set_cap(1);
        drop(first);
        assert!(slots.try_acquire().is_none(), "one open, cap 1");
        drop(second);
        assert!(slots.try_acquire().is_some());
    }
}
