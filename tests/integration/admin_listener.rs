//! The admin listener under hostile clients: idle and dribbling
//! connections are capped (`[admin] max_connections`) and closed after the
//! header timeout, probes and the proxy keep answering at once, and running
//! out of descriptors is waited out, not spun on.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::process::Process;
use crate::support::raw;
use crate::support::*;

/// The default `[admin] max_connections`.
const ADMIN_CAP: usize = 256;
/// The admin header timeout these tests set.
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);

/// A `weir` process routing everything to `backend`.
async fn gateway(backend: &Backend) -> Process {
    let setup = Setup::new()
        .admin(&format!(
            "header_read_timeout_ms = {}",
            HEADER_TIMEOUT.as_millis()
        ))
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}]}),
        );
    Process::start(&setup.write()).await
}

/// Descriptors the process holds.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// User plus system CPU time the process has used.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// Make sure this test process may open `needed` descriptors.
fn allow_descriptors(needed: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let values: Vec<&str> = line.split_whitespace().collect();
    let (soft, hard) = (values[3], values[4]);
    if soft.parse::<u64>().is_ok_and(|soft| soft >= needed) {
        return;
    }
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={hard}:{hard}"))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cannot raise this process's descriptor limit"
    );
}

/// An idle connection: a plain non-blocking socket, so whether the server
/// closed it is one `read` away.
fn connect_idle(addr: SocketAddr) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_nonblocking(true).unwrap();
    stream
}

/// Whether the server has closed `stream` (end of input or a reset).
fn closed(mut stream: &std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// `/healthz` on a new connection answers 200 within `limit`.
async fn healthz_within(admin: SocketAddr, limit: Duration) {
    let started = Instant::now();
    let health = raw::exchange(
        admin,
        "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw::status(&health), 200, "{health}");
    assert!(
        started.elapsed() < limit,
        "/healthz answered after {:?}",
        started.elapsed()
    );
}

/// A request head sent one byte a second until the server closes.
fn dribble(mut stream: TcpStream) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n" {
            if stream.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

#[tokio::test]
async fn idle_and_dribbling_admin_connections_are_capped_and_closed_after_the_header_timeout() {
    allow_descriptors(4096);
    let backend = Backend::start().await;
    let process = gateway(&backend).await;
    let admin: SocketAddr = process.admin.as_deref().unwrap().parse().unwrap();
    let before = descriptors(process.pid());

    let idle: Vec<_> = (0..1000).map(|_| connect_idle(admin)).collect();
    let mut dribblers = Vec::new();
    for _ in 0..50 {
        dribblers.push(dribble(TcpStream::connect(admin).await.unwrap()));
    }
    // Every connection is in (accepted, or waiting in the backlog) by now.
    let opened = Instant::now();

    // Probes and proxied requests get in at once, the cap notwithstanding.
    healthz_within(admin, Duration::from_millis(500)).await;
    let started = Instant::now();
    assert_eq!(get(&process.url("/json")).await.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the proxy took {:?}",
        started.elapsed()
    );

    // The newest connections are being held, not refused: the cap makes
    // room by closing the oldest idle ones.
    let newest_open = idle[900..].iter().filter(|s| !closed(s)).count();
    assert_eq!(
        newest_open, 100,
        "the newest idle connections were closed at once"
    );
    // The process holds about the cap's worth of descriptors, never the
    // 1,050 connections.
    let mut most = 0;
    while opened.elapsed() < HEADER_TIMEOUT / 2 {
        most = most.max(descriptors(process.pid()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        most <= before + ADMIN_CAP + 16,
        "{most} descriptors held ({before} before the flood, admin cap {ADMIN_CAP})"
    );
    // After the header timeout, none is open.
    while opened.elapsed() < HEADER_TIMEOUT + Duration::from_millis(1500) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open = idle.iter().filter(|s| !closed(s)).count();
    assert_eq!(open, 0, "idle connections open past the header timeout");
    for dribbler in dribblers {
        tokio::time::timeout(Duration::from_secs(2), dribbler)
            .await
            .expect("a dribbling connection was never closed")
            .unwrap();
    }
    // (The proxied request's client and upstream connections stay open.)
    assert!(
        descriptors(process.pid()) <= before + 16,
        "{} descriptors left, {before} before",
        descriptors(process.pid())
    );
}

#[tokio::test]
async fn an_admin_listener_out_of_descriptors_backs_off_and_recovers() {
    let backend = Backend::start().await;
    let process = gateway(&backend).await;
    let admin: SocketAddr = process.admin.as_deref().unwrap().parse().unwrap();
    let pid = process.pid();
    // Leave the process a few spare descriptors once it has opened all it
    // opens at start (the watcher and signal handlers come after the
    // addresses are printed), then take them all.
    let mut settled = descriptors(pid);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        match descriptors(pid) {
            now if now == settled => break,
            now => settled = now,
        }
    }
    let limit = settled + 4;
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:"))
        .status()
        .unwrap();
    assert!(status.success());
    let held: Vec<_> = (0..32).map(|_| connect_idle(admin)).collect();
    // Every accept now fails with EMFILE while connections wait in the
    // backlog: retrying at once would spin a core.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (cpu, wall) = (cpu_time(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_time(pid) - cpu;
    assert!(
        used < wall.elapsed() / 5,
        "{used:?} of CPU in {:?} while out of descriptors",
        wall.elapsed()
    );
    // Descriptors come back: the listener serves again.
    drop(held);
    healthz_within(admin, Duration::from_secs(2)).await;
}
