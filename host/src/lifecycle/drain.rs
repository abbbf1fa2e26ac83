//! Counting what is open (connections, WebSocket tunnels) so a shutdown
//! can wait for it: each holds a [`Guard`]; [`Drain::start`] tells them all
//! to finish, and [`Drain::wait`] returns when the last guard is gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

/// Open connections and tunnels, and the signal to wind them down.
#[derive(Clone)]
pub struct Drain {
    inner: Arc<Inner>,
    stop: watch::Receiver<bool>,
}

struct Inner {
    open: AtomicUsize,
    idle: Notify,
    stop: watch::Sender<bool>,
}

/// Keeps one thing counted as open until dropped.
pub struct Guard(Arc<Inner>);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Default for Drain {
    fn default() -> Self {
        let (stop, rx) = watch::channel(false);
        Drain {
            inner: Arc::new(Inner {
                open: AtomicUsize::new(0),
                idle: Notify::new(),
                stop,
            }),
            stop: rx,
        }
    }
}

impl Drain {
    /// Count one more open thing.
    pub fn track(&self) -> Guard {
        self.inner.open.fetch_add(1, Ordering::AcqRel);
        Guard(self.inner.clone())
    }

    /// How many are open.
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Ask everything open to finish (connections close after their
    /// current requests).
    pub fn start(&self) {
        let _ = self.inner.stop.send(true);
    }

    /// Resolves once [`Drain::start`] has been called.
    pub async fn stopping(&self) {
        let mut stop = self.stop.clone();
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                return;
            }
        }
    }

    /// Resolves when nothing is open.
    pub async fn wait(&self) {
        loop {
            let idle = self.inner.idle.notified();
            if self.open() == 0 {
                return;
            }
            idle.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_returns_when_the_last_guard_drops() {
        let drain = Drain::default();
        let a = drain.track();
        let b = drain.track();
        assert_eq!(drain.open(), 2);
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move { drain.wait().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        waiter.await.unwrap();
        drain.start();
        drain.stopping().await;
    }
}
