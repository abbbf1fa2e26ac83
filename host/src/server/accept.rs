//! Accepting connections without spinning: when `accept` fails (out of
//! file descriptors, `EMFILE`/`ENFILE`, or out of memory), the pending
//! connection stays in the backlog and the listener stays readable, so
//! retrying at once would spin a core until a descriptor frees. Every
//! listener (proxy, TLS, redirect, admin) accepts through [`Acceptor`]: it
//! waits after a failure, doubling the wait up to a cap, and logs the
//! failure at most once per second.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// The first wait after a failed accept.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// At most one warning per this long.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// A listener and its back-off state.
pub struct Acceptor {
    listener: TcpListener,
    what: &'static str,
    backoff: Duration,
    failures: u64,
    warned: Option<Instant>,
}

impl Acceptor {
    /// Accept from `listener`; `what` names it in warnings.
    pub fn new(listener: TcpListener, what: &'static str) -> Acceptor {
        Acceptor {
            listener,
            what,
            backoff: Duration::ZERO,
            failures: 0,
            warned: None,
        }
    }

    /// The next connection, with `TCP_NODELAY` set. Failures are waited
    /// out (with back-off) and never returned: a listener that once failed
    /// keeps serving once descriptors free up.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.recovered();
                    let _ = stream.set_nodelay(true);
                    return (stream, peer);
                }
                Err(e) => {
                    let wait = self.failed(&e);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Record a failure; how long to wait before the next attempt.
    fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.failures += 1;
        self.backoff = (self.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
        let now = Instant::now();
        if self.warned.is_none_or(|at| now >= at + WARN_EVERY) {
            self.warned = Some(now);
            tracing::warn!(
                listener = self.what,
                failures = self.failures,
                retry_in_ms = self.backoff.as_millis() as u64,
                "accept failed: {error}"
            );
        }
        self.backoff
    }

    fn recovered(&mut self) {
        // Said once per warning window, like the failures: a listener at
        // its descriptor limit may alternate between the two at a high rate.
        let now = Instant::now();
        if self.failures > 0 && self.warned.is_none_or(|at| now >= at + WARN_EVERY) {
            self.warned = Some(now);
            tracing::info!(
                listener = self.what,
                failures = self.failures,
                "accepting again"
            );
        }
        self.backoff = Duration::ZERO;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn back_off_doubles_up_to_its_cap_and_resets_on_success() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut acceptor = Acceptor::new(listener, "test");
        let emfile = std::io::Error::from_raw_os_error(24);
        let waits: Vec<Duration> = (0..10).map(|_| acceptor.failed(&emfile)).collect();
        assert_eq!(waits[0], FIRST_BACKOFF);
        assert_eq!(waits[1], FIRST_BACKOFF * 2);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF);
        let _client = TcpStream::connect(addr).await.unwrap();
        acceptor.accept().await;
        assert_eq!(acceptor.failed(&emfile), FIRST_BACKOFF);
    }
}
