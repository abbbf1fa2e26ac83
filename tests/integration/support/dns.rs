//! A real DNS server for the discovery tests: Debian's `dnsmasq` on a free
//! loopback port (UDP and TCP), authoritative for `weir.test` only. A and
//! AAAA records come from a hosts directory that dnsmasq re-reads by itself
//! (inotify) when a file changes; SRV records come from its config file,
//! which it reads only at start, so changing them restarts it on the same
//! port. Killed on drop.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// A running dnsmasq.
pub struct Dns {
    pub port: u16,
    ttl: u32,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Dns {
    /// Start serving `hosts` (lines of a hosts file: `127.0.0.2 api.weir.test`)
    /// and `srv` (`srv-host=…` lines), every answer with TTL `ttl` seconds.
    pub async fn start(ttl: u32, hosts: &str, srv: &[&str]) -> Dns {
        assert!(
            std::path::Path::new(DNSMASQ).exists(),
            "{DNSMASQ} is missing: install dnsmasq-base (tools/setup-test-machine)"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hosts")).unwrap();
        let mut dns = Dns {
            port: 0,
            ttl,
            dir,
            child: None,
        };
        dns.write_hosts(hosts);
        // A name that is always there, for the readiness probe.
        std::fs::write(dns.dir.path().join("ready"), "127.0.0.1 ready.weir.test\n").unwrap();
        for _ in 0..20 {
            dns.port = free_port();
            dns.write_srv(srv);
            if dns.spawn().await {
                return dns;
            }
        }
        panic!("dnsmasq did not start:\n{}", dns.log());
    }

    /// `ip:port` for `[discovery] nameservers`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Replace the A/AAAA records; dnsmasq picks the file up by itself.
    pub fn write_hosts(&self, hosts: &str) {
        // Write beside, then rename: dnsmasq never reads half a file.
        let dir = self.dir.path().join("hosts");
        let staging = self.dir.path().join("hosts.new");
        std::fs::write(&staging, hosts).unwrap();
        std::fs::rename(&staging, dir.join("records")).unwrap();
    }

    /// Stop, and start again on the same port with these SRV records
    /// (dnsmasq reads them only at start).
    pub async fn restart_with_srv(&mut self, srv: &[&str]) {
        self.stop();
        self.write_srv(srv);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn().await {
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not restart:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kill it (the port stays unanswered).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn write_srv(&self, srv: &[&str]) {
        let mut conf = srv.join("\n");
        conf.push('\n');
        std::fs::write(self.dir.path().join("dnsmasq.conf"), conf).unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Start on `self.port` and wait until it answers; false if it exited
    /// (the port was taken) or never answered.
    async fn spawn(&mut self) -> bool {
        let d = self.dir.path();
        let mut command = Command::new(DNSMASQ);
        command
            .arg("--keep-in-foreground")
            .arg(format!("--port={}", self.port))
            .args(["--listen-address=127.0.0.1", "--bind-interfaces"])
            .args(["--no-resolv", "--no-hosts", "--local=/weir.test/"])
            .arg(format!("--local-ttl={}", self.ttl))
            .arg(format!("--conf-file={}", d.join("dnsmasq.conf").display()))
            .arg(format!("--hostsdir={}", d.join("hosts").display()))
            .arg(format!("--addn-hosts={}", d.join("ready").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-facility={}", d.join("log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            // The default user `dnsmasq` exists only with the full package.
            command.args(["--user=root", "--group=root"]);
        }
        let mut child = command.spawn().expect("start dnsmasq");
        let resolver = resolver(self.addr());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if resolver.lookup_ip("ready.weir.test.").await.is_ok() {
                self.child = Some(child);
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

/// A resolver asking only `server`, quickly giving up.
pub fn resolver(server: SocketAddr) -> TokioResolver {
    let mut udp = ConnectionConfig::udp();
    udp.port = server.port();
    let ns = NameServerConfig::new(server.ip(), true, vec![udp]);
    let mut builder = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    );
    builder.options_mut().cache_size = 0;
    builder.options_mut().timeout = Duration::from_millis(200);
    builder.options_mut().attempts = 1;
    builder.build().unwrap()
}

/// A port free for UDP and TCP on 127.0.0.1 (as far as one can tell).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
