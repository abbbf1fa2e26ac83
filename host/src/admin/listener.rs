//! The admin listener, with the proxy listener's protections and limits of
//! its own (`[admin] max_connections`, `header_read_timeout_ms`):
//!
//! - **a connection cap.** At the cap, a new connection is taken in and
//!   the oldest *idle* one (no request being answered: a keep-alive
//!   connection between requests, or one still sending its request head)
//!   is closed to make room. A probe or an operator therefore gets in at
//!   once, even while hundreds of idle or slow connections fill the cap;
//!   when every connection is busy answering, the new one waits for one
//!   to finish;
//! - **a header timeout** for each request head, which is also how long a
//!   keep-alive connection may sit idle: slow and idle connections are
//!   closed after it;
//! - **back-off on accept errors** such as `EMFILE` (`server/accept.rs`).
//!
//! It speaks HTTP/1.1 only. Prometheus, browsers and curl use it, and an
//! HTTP/2 connection could stay open past the header timeout with no
//! request in flight.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::Admin;
use crate::config::AdminConfig;
use crate::lifecycle::slots::Slots;
use crate::server::accept::Acceptor;

/// The admin listener's limits.
#[derive(Debug, Clone, Copy)]
pub struct AdminLimits {
    /// Most admin connections open at once.
    pub max_connections: usize,
    /// Time allowed for each request head, and for an idle keep-alive.
    pub header_read_timeout: Duration,
}

impl AdminLimits {
    /// The limits `[admin]` sets.
    pub fn from_config(config: &AdminConfig) -> Self {
        AdminLimits {
            max_connections: config.max_connections,
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
        }
    }
}

/// The largest admin request head: a browser's headers with the dashboard
/// cookie fit with room to spare (hyper's floor is 8 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Serve the admin API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    admin: Arc<Admin>,
    limits: AdminLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(100);
    let builder = Arc::new(builder);
    let slots = Slots::new(limits.max_connections);
    let open = Arc::new(OpenConnections::default());
    let mut acceptor = Acceptor::new(listener, "admin");
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = acceptor.accept() => accepted,
            () = &mut shutdown => return,
        };
        let slot = match slots.try_acquire() {
            Some(slot) => slot,
            None => {
                // Make room by closing the oldest idle connection; if every
                // one is busy answering, wait for one to finish.
                open.evict_oldest_idle();
                tokio::select! {
                    slot = slots.acquire() => slot,
                    () = &mut shutdown => return,
                }
            }
        };
        let (admin, builder, open) = (admin.clone(), builder.clone(), open.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let (id, connection) = open.add();
            serve_connection(stream, admin, &builder, &connection).await;
            open.remove(id);
        });
    }
}

/// One connection: served until it ends or is evicted.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    admin: Arc<Admin>,
    builder: &hyper::server::conn::http1::Builder,
    connection: &Arc<Connection>,
) {
    let busy = connection.clone();
    let service = service_fn(move |request| {
        let (admin, busy) = (admin.clone(), busy.clone());
        async move {
            // Busy from the request head until the answer's last byte is
            // handed to hyper (the guard rides in the body).
            let guard = busy.request_started();
            let response = admin.handle(request).await;
            let (parts, body) = response.into_parts();
            let body = body.map_frame(move |frame| {
                let _ = &guard;
                frame
            });
            Ok::<_, Infallible>(http::Response::from_parts(
                parts,
                crate::http::body::boxed(body),
            ))
        }
    });
    let serving = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = serving => {}
        () = connection.evicted.notified() => {
            tracing::debug!("admin connection closed to make room under the cap");
        }
    }
}

/// The open admin connections, oldest first.
#[derive(Default)]
struct OpenConnections {
    next: AtomicUsize,
    by_age: Mutex<BTreeMap<usize, Arc<Connection>>>,
}

/// One open connection's state.
#[derive(Default)]
struct Connection {
    /// Requests being answered.
    requests: AtomicUsize,
    /// Set once the connection has been picked for eviction.
    picked: AtomicBool,
    evicted: Notify,
}

/// Keeps a connection counted busy while a request is answered.
struct Busy(Arc<Connection>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connection {
    fn request_started(self: &Arc<Self>) -> Busy {
        self.requests.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }
}

impl OpenConnections {
    fn add(&self) -> (usize, Arc<Connection>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection::default());
        self.lock().insert(id, connection.clone());
        (id, connection)
    }

    fn remove(&self, id: usize) {
        self.lock().remove(&id);
    }

    /// Close the oldest connection answering nothing; false if all are busy.
    fn evict_oldest_idle(&self) -> bool {
        let list = self.lock();
        let idle = list
            .values()
            .find(|c| c.requests.load(Ordering::Acquire) == 0 && !c.picked.load(Ordering::Acquire));
        match idle {
            Some(connection) => {
                connection.picked.store(true, Ordering::Release);
                // A stored permit: the connection's task sees it even if it
                // has not started waiting yet.
                connection.evicted.notify_one();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Arc<Connection>>> {
        self.by_age.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_connection_is_evicted_never_a_busy_one() {
        let open = OpenConnections::default();
        let (_, oldest) = open.add();
        let (_, second) = open.add();
        let (_, third) = open.add();
        let busy = oldest.request_started();
        assert!(open.evict_oldest_idle());
        assert!(
            !oldest.picked.load(Ordering::Acquire),
            "a busy one was picked"
        );
        assert!(second.picked.load(Ordering::Acquire));
        // The next pick skips one already picked.
        assert!(open.evict_oldest_idle());
        assert!(third.picked.load(Ordering::Acquire));
        assert!(!open.evict_oldest_idle(), "only a busy one is left");
        drop(busy);
        assert!(open.evict_oldest_idle());
    }
}
