//! Thread-per-core serving: one listening socket per worker thread, all
//! bound to the same address with `SO_REUSEPORT` so the kernel spreads new
//! connections across them, and one single-threaded tokio runtime per
//! worker. A connection, its requests, the plugin calls and the upstream
//! connection it is proxied on all stay on one thread: no work stealing,
//! no cross-thread wake-ups (measured in docs/benchmarks.md: the
//! multi-threaded runtime spent a fifth of the gateway's CPU on futexes,
//! IPIs and context switches).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::{Mode, serve_mode};
use crate::gateway::Gateway;

/// `n` listening sockets on `addr` sharing it with `SO_REUSEPORT`. With
/// port 0, the first picks the port and the others join it.
pub fn bind_reuseport(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(n);
    let mut at = addr;
    for _ in 0..n.max(1) {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(at),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&at.into())?;
        socket.listen(4096)?;
        let listener: std::net::TcpListener = socket.into();
        at = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Worker threads serving `gateway`; [`Workers::stop`] stops them.
pub struct Workers {
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

/// What one worker serves: one socket of each listener, with its mode.
pub type WorkerListeners = Vec<(std::net::TcpListener, Mode)>;

impl Workers {
    /// One thread per entry of `per_worker`, serving its listeners.
    pub fn start(
        per_worker: Vec<WorkerListeners>,
        gateway: Arc<Gateway>,
    ) -> std::io::Result<Workers> {
        let (stop, stopped) = watch::channel(false);
        let mut threads = Vec::with_capacity(per_worker.len());
        for (index, listeners) in per_worker.into_iter().enumerate() {
            let (gateway, stopped) = (gateway.clone(), stopped.clone());
            let thread = std::thread::Builder::new()
                .name(format!("weir-worker-{index}"))
                .spawn(move || run_worker(index, listeners, gateway, stopped))?;
            threads.push(thread);
        }
        Ok(Workers { threads, stop })
    }

    /// Stop accepting everywhere and wait for every worker to drain.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

/// A worker thread: its own runtime, serving each of its listeners until
/// `stopped` says so.
fn run_worker(
    index: usize,
    listeners: WorkerListeners,
    gateway: Arc<Gateway>,
    stopped: watch::Receiver<bool>,
) {
    crate::lifecycle::affinity::set_worker(index);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("worker {index} cannot start its runtime: {e}");
            return;
        }
    };
    runtime.block_on(async move {
        let mut loops = Vec::new();
        for (listener, mode) in listeners {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::error!("worker {index} cannot listen: {e}");
                    continue;
                }
            };
            let mut stopped = stopped.clone();
            let shutdown = async move {
                while !*stopped.borrow_and_update() {
                    if stopped.changed().await.is_err() {
                        break;
                    }
                }
            };
            loops.push(serve_mode(listener, mode, gateway.clone(), shutdown));
        }
        futures::future::join_all(loops).await;
    });
}
